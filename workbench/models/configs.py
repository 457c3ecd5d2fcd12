"""Pure helpers on embedded configs (plain dicts): no torch, no transformers, no family module."""

from __future__ import annotations

from typing import Any


def merge_config(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Nested dict merge: overrides win, sub-dicts are merged rather than replaced.

    >>> merge_config({"a": 1, "v": {"depth": 32, "heads": 16}}, {"v": {"depth": 2}})
    {'a': 1, 'v': {'depth': 2, 'heads': 16}}
    """
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = value
    return merged
