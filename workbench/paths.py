"""Where notebooks, parameter files, outputs and generated inputs live. Nothing else builds these paths."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
PARAMS_DIR = REPO_ROOT / "params"
DOCS_DIR = REPO_ROOT / "docs"


def outputs_dir() -> Path:
    """Root of all run folders; WORKBENCH_OUTPUTS overrides it (tests, shared cluster storage)."""
    return Path(os.environ.get("WORKBENCH_OUTPUTS", REPO_ROOT / "outputs")).resolve()


def portable_run_dir(run_dir: Path) -> str:
    """How a run folder is named to its kernel (the parameters cell a shared notebook shows): relative to the
    outputs root, so no machine path appears; a folder outside the root keeps its absolute path.
    `resolve_run_dir` turns it back into the folder.

    >>> portable_run_dir(outputs_dir() / "04_caption_quality" / "20261127-101010-abcd")
    '04_caption_quality/20261127-101010-abcd'
    """
    try:
        return Path(run_dir).resolve().relative_to(outputs_dir()).as_posix()
    except ValueError:
        return str(Path(run_dir).resolve())


def resolve_run_dir(run_dir: str) -> Path:
    """The folder a notebook's `run_dir` parameter names: absolute as given, else under the outputs root."""
    path = Path(run_dir)
    path = path if path.is_absolute() else outputs_dir() / path
    try:  # shown in notebooks (run.dir): relative to the kernel's folder where it can be, not a machine path
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def cache_dir() -> Path:
    """Generated, reproducible inputs (probe videos, tiny model twins); safe to delete."""
    return Path(os.environ.get("WORKBENCH_CACHE", outputs_dir() / "_cache")).resolve()


def probe_videos_dir() -> Path:
    return cache_dir() / "probe_videos"


def notebook_path(name: str) -> Path:
    """Resolve a notebook by file name, stem (`00_video_input`) or path."""
    candidate = Path(name)
    if candidate.suffix == ".ipynb" and candidate.exists():
        return candidate.resolve()
    stem = candidate.stem if candidate.suffix == ".ipynb" else candidate.name
    path = NOTEBOOKS_DIR / f"{stem}.ipynb"
    if not path.exists():
        available = ", ".join(sorted(p.stem for p in NOTEBOOKS_DIR.glob("*.ipynb"))) or "none"
        raise FileNotFoundError(f"notebook {name!r} not found; available notebooks: {available}")
    return path


def params_path(name: str) -> Path:
    """Resolve a parameter file by path or by name under params/."""
    candidate = Path(name)
    if candidate.exists():
        return candidate.resolve()
    for path in (PARAMS_DIR / name, PARAMS_DIR / f"{name}.yaml"):
        if path.exists():
            return path
    raise FileNotFoundError(f"parameter file {name!r} not found (looked in {PARAMS_DIR})")


def run_root(notebook_stem: str) -> Path:
    return outputs_dir() / notebook_stem
