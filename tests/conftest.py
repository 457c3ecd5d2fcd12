"""Shared pytest fixtures. Generated videos are session-scoped, written under pytest's tmp dir, read-only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tests never write into the repo: outputs and the cache (probe videos, tiny twins) go to tmp dirs.

    WORKBENCH_TEST_CACHE keeps fabricated twins between local runs.
    """
    shared = os.environ.get("WORKBENCH_TEST_CACHE")
    cache = Path(shared) if shared else tmp_path_factory.mktemp("cache")
    saved = {k: os.environ.get(k) for k in ("WORKBENCH_CACHE", "WORKBENCH_OUTPUTS")}
    os.environ["WORKBENCH_CACHE"] = str(cache)
    os.environ["WORKBENCH_OUTPUTS"] = str(tmp_path_factory.mktemp("outputs"))
    yield cache
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def index_video(tmp_path_factory) -> Path:
    """45 frames at 10 fps, 160x120; frame i shows i (read it with probe_videos.read_frame_index)."""
    from workbench.probe_videos import write_index_video

    return write_index_video(tmp_path_factory.mktemp("index_video") / "index_10fps.mp4", 45, 10, size=(160, 120))


@pytest.fixture(scope="session")
def index_video_25fps(tmp_path_factory) -> Path:
    """100 frames at 25 fps, 192x144 (4 s, keyframe every 2 s)."""
    from workbench.probe_videos import write_index_video

    return write_index_video(tmp_path_factory.mktemp("index_video") / "index_25fps.mp4", 100, 25, size=(192, 144))


@pytest.fixture(scope="session")
def probe_video_paths(tmp_path_factory) -> dict[str, Path]:
    """The default probe videos (seed 0), generated into a temporary directory, never the repo."""
    from workbench.probe_videos import ensure_probe_videos

    return ensure_probe_videos(seed=0, out_dir=tmp_path_factory.mktemp("probe_videos"))


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
