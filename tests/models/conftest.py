"""Fixtures for the model tests: an isolated cache for tiny twins, and probe-video frames."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def isolated_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny twins are fabricated once per session into a temporary cache, never into the repo."""
    shared = os.environ.get("WORKBENCH_TEST_CACHE")  # reuse fabricated twins across local runs
    cache = Path(shared) if shared else tmp_path_factory.mktemp("cache")
    previous = os.environ.get("WORKBENCH_CACHE")
    os.environ["WORKBENCH_CACHE"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("WORKBENCH_CACHE", None)
    else:
        os.environ["WORKBENCH_CACHE"] = previous


@pytest.fixture(scope="session")
def probe_clip(isolated_model_cache: Path):
    """probe_clip(n) -> (frames (n,H,W,3) uint8, timestamps_s) sampled uniformly from the 'events' probe video."""
    from workbench import probe_videos, video

    path = probe_videos.ensure_probe_videos(["events"], seed=0)["events"]
    cache: dict[int, tuple] = {}

    def sample(n_frames: int = 4):
        if n_frames not in cache:
            clip = video.sample_uniform(path, n_frames)
            cache[n_frames] = (clip.frames, clip.timestamps_s)
        return cache[n_frames]

    return sample
