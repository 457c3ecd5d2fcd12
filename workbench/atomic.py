"""Atomic file writes: a killed process leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is fsynced and renamed over `path`.

    The temporary name starts with '.' and ends with '.tmp', so readers that glob for results never
    mistake it for a finished file. On an exception it is removed and `path` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix or ".tmp", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _default_file_mode())  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Strict JSON (RFC 8259): NaN and infinities become null, and a top-level mapping gets
    `null_reasons` naming each such value and what it was, so readers never meet a bare NaN."""
    return write_text(path, dumps_strict(obj) + "\n")


def dumps_strict(obj: Any, indent: int | None = 2) -> str:
    """json.dumps that never writes NaN/Infinity (which strict parsers and browsers reject).

    >>> dumps_strict({"a": float("nan"), "b": [1.0, float("inf")]}, indent=None)
    '{"a": null, "b": [1.0, null], "null_reasons": {"a": "NaN: not computable", "b[1]": "inf: infinite"}}'
    """
    reasons: dict[str, str] = {}
    clean = finite(obj, reasons)
    if reasons and isinstance(clean, dict):
        known = clean.get("null_reasons") if isinstance(clean.get("null_reasons"), dict) else {}
        clean = {**clean, "null_reasons": {**reasons, **known}}
    return json.dumps(clean, indent=indent, sort_keys=False, default=str, allow_nan=False)


def finite(obj: Any, reasons: dict[str, str] | None = None, where: str = "") -> Any:
    """A copy of `obj` with every non-finite float (also numpy's) replaced by None; `reasons` collects
    'path': 'NaN: not computable' / 'inf: infinite' for each replacement."""
    import math

    if isinstance(obj, float) or type(obj).__name__ in ("float32", "float64", "float16"):
        value = float(obj)
        if math.isfinite(value):
            return value if not isinstance(obj, float) else obj
        if reasons is not None:
            reasons[where or "value"] = "NaN: not computable" if math.isnan(value) else (
                f"{'inf' if value > 0 else '-inf'}: infinite")
        return None
    if isinstance(obj, dict):
        return {key: finite(value, reasons, f"{where}.{key}" if where else str(key)) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(value, reasons, f"{where}[{i}]") for i, value in enumerate(obj)]
    return obj


def _default_file_mode() -> int:
    """0o666 less the process umask: the mode an ordinary open() would have given the file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_dir(path: str | os.PathLike, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it is renamed to `path` in one step.

    A fabricator killed half way leaves only a hidden '.name.*.tmp' folder, never a folder at `path`
    that looks complete. If another process finished `path` first, its copy wins and ours is dropped,
    unless `replace`: then an existing folder at `path` is moved aside, ours renamed in, and the old one
    removed (a kill between the two renames leaves the old folder as '.name.*.old', not a mix of both).
    """
    import shutil

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old: Path | None = None
    try:
        yield tmp
        if replace and target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.rename(target, old / target.name)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.exists():
                raise
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            if not target.exists():  # ours never arrived: put the old folder back
                os.rename(old / target.name, target)
            shutil.rmtree(old, ignore_errors=True)
