"""The model zoo: one file per family, one registry table, one adapter interface."""

from workbench.models.base import (
    CaptionRecord,
    GenerationSettings,
    LoadedModel,
    LoadReport,
    LoadSettings,
    ModelSpec,
)
from workbench.models.registry import get, model_ids, resolve


def load(model: str, settings: LoadSettings | None = None, **kwargs) -> LoadedModel:
    """Load a model by id, alias or hub id. kwargs build LoadSettings when `settings` is not given."""
    adapter, spec = get(model)
    return adapter.load(spec, settings or LoadSettings(**kwargs))


__all__ = [
    "CaptionRecord", "GenerationSettings", "LoadReport", "LoadSettings", "LoadedModel", "ModelSpec",
    "get", "load", "model_ids", "resolve",
]
