"""Fixtures for the model tests: probe-video frames (the isolated cache is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def probe_clip(isolated_cache: Path):
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
