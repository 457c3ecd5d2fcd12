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
