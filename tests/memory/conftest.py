"""Fixtures for the memory tests: one measured grid of a mid-size Qwen2-VL (tests/conftest.py isolates the cache).

The grid is measured once per session (each configuration in its own fresh process, two at a time with one
torch thread each) and shared by the scaling, accuracy and frontier tests.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from workbench.memory.probe import MIDSIZE_QWEN2_VL_OVERRIDES as MIDSIZE_OVERRIDES

MIDSIZE_SIZE = 280  # square source frames -> a 20 x 20 patch grid per frame pair
SCALING_FRAMES = (4, 8, 12, 16)
ACCURACY_FRAMES = (4, 16)
QUANTIZATIONS = ("none", "8bit", "4bit-nf4")


def midsize_config(frames: int, attn: str, quantization: str = "none"):
    from workbench.memory import ProbeConfig

    return ProbeConfig(model="qwen2-vl-2b", source="random", config_overrides=MIDSIZE_OVERRIDES, device="cpu",
                       frames=frames, height=MIDSIZE_SIZE, width=MIDSIZE_SIZE, attn_implementation=attn,
                       quantization=quantization, max_new_tokens=8)


@pytest.fixture(scope="session")
def midsize() -> SimpleNamespace:
    """The mid-size model's settings for tests (conftest is not importable under --import-mode=importlib)."""
    return SimpleNamespace(config=midsize_config, overrides=MIDSIZE_OVERRIDES, size=MIDSIZE_SIZE,
                           scaling_frames=SCALING_FRAMES, accuracy_frames=ACCURACY_FRAMES,
                           quantizations=QUANTIZATIONS)


@pytest.fixture(scope="session")
def midsize_results(isolated_cache: Path) -> dict[tuple[str, str, int], dict]:
    """{(quantization, attention, frames): probe result} for the mid-size model, measured on CPU."""
    from workbench.memory import run_grid

    keys = [("none", attn, f) for attn in ("eager", "sdpa") for f in SCALING_FRAMES]
    keys += [(q, attn, f) for q in QUANTIZATIONS[1:] for attn in ("eager", "sdpa") for f in ACCURACY_FRAMES]
    configs = [midsize_config(f, attn, q) for q, attn, f in keys]
    results = run_grid(configs, parallel=2, threads=1, timeout_s=600, progress=False)
    return dict(zip(keys, results))
