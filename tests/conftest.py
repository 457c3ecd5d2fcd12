"""Shared pytest fixtures. Generated videos are session-scoped, written under pytest's tmp dir, read-only.

`make test` runs the suite on two pytest-xdist workers without the tests marked `slow` (notebook and sweep
runs, the browser tests, measured memory grids, full-size random architectures): a plain `pytest` leaves them
out, `pytest -m slow` runs only them, and tests named on the command line run whatever their marks.
`make test-all` (what .ci/run does) runs both. README "Times" has the measured split.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

# Nothing downloads in the tests: a hub call fails at once instead of waiting on the network (huggingface_hub
# reads the variable when it is first imported, so set it before, and in the module if it already was).
os.environ["HF_HUB_OFFLINE"] = "1"
if "huggingface_hub.constants" in sys.modules:
    sys.modules["huggingface_hub.constants"].HF_HUB_OFFLINE = True

# Two workers on two cores: one torch thread each (and in the kernels and probe processes they start),
# or OpenMP threads spin against each other.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

# `slow`, besides the tests marked slow, `notebook` or `browser` themselves: the modules whose tests each start
# kernels or process trees (sweeps, fault injection) or build mid-size/full-size random architectures, the
# tests that use the measured mid-size grids (tens of probe processes per session, tests/memory/conftest.py),
# and single tests that take tens of seconds (README "Times" lists what each tier costs).
SLOW_MODULES = {
    "tests/test_sweep.py",
    "tests/test_sweep_faults.py",
    "tests/test_run_faults.py",
    "tests/models/test_random_source.py",
}
SLOW_FIXTURES = {"midsize_results", "forced_path_results", "vision_quantized_results"}
SLOW_TESTS = {
    "tests/models/test_auroracap.py::test_real_architecture_matches_published_parameter_count",
    "tests/memory/test_gpu_check.py::test_gpu_check_smoke_writes_predicted_vs_measured",
    "tests/memory/test_predictor.py::test_tiny_twin_of_each_other_vision_tower_measures_close_to_its_prediction",
    "tests/test_video.py::test_memory_grows_with_frames_asked_for_not_video_length",
}


# pytest-timeout's limit (pyproject.toml) raises in the test from a signal handler, which never runs while native
# code holds the interpreter (a decoder stuck in C, say). Past this backstop the worker writes every thread's
# Python traceback to a file the summary prints, and exits: xdist reports the test as crashed and goes on with a
# new worker.
HANG_BACKSTOP_S = int(os.environ.get("WORKBENCH_TEST_HANG_S", 1200))
_HANG_DIR = "WORKBENCH_TEST_HANG_DIR"
_terminal_stderr = sys.stderr


def pytest_configure(config: pytest.Config) -> None:
    global _terminal_stderr
    if os.environ.get("PYTEST_XDIST_WORKER") is None:  # pytest captures fd 2 later: keep the terminal's
        _terminal_stderr = os.fdopen(os.dup(2), "w")
    if getattr(config.option, "numprocesses", None) and _HANG_DIR not in os.environ:  # xdist's workers inherit it
        os.environ[_HANG_DIR] = tempfile.mkdtemp(prefix="workbench-test-hangs-")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    # a worker's stderr is not shown: it writes to a file the controller's summary prints
    with (open(Path(os.environ[_HANG_DIR]) / f"{worker}-{os.getpid()}.txt", "a") if worker
          else contextlib.nullcontext(_terminal_stderr)) as out:
        if worker:
            out.write(f"{item.nodeid} ran past {HANG_BACKSTOP_S} s:\n")
            out.flush()
        faulthandler.dump_traceback_later(HANG_BACKSTOP_S, exit=True, file=out)
        try:
            yield
        finally:
            faulthandler.cancel_dump_traceback_later()
            if worker:
                out.truncate(0)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or _HANG_DIR not in os.environ:  # the controller prints what workers left
        return
    folder = Path(os.environ[_HANG_DIR])
    for dump in sorted(folder.glob("*.txt")):
        if text := dump.read_text().strip():
            terminalreporter.write_sep("=", f"hung test ({dump.stem})")
            terminalreporter.write_line(text)
    shutil.rmtree(folder, ignore_errors=True)


def _is_slow(item: pytest.Item) -> bool:
    module = item.nodeid.split("::", 1)[0]
    return (module in SLOW_MODULES or item.nodeid.split("[", 1)[0] in SLOW_TESTS
            or bool(SLOW_FIXTURES & set(getattr(item, "fixturenames", ())))
            or any(item.get_closest_marker(name) for name in ("slow", "notebook", "browser")))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the slow tests; leave them out of a plain run (no test paths, no -m), as `make test` is."""
    for item in items:
        if _is_slow(item):
            item.add_marker(pytest.mark.slow)
    if config.args_source != pytest.Config.ArgsSource.TESTPATHS or config.option.markexpr:
        return
    kept = [item for item in items if not item.get_closest_marker("slow")]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("slow")])
        items[:] = kept


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tests never write into the repo: outputs and the cache (probe videos, tiny twins) go to tmp dirs.

    WORKBENCH_TEST_CACHE keeps fabricated twins between local runs. xdist workers share one cache folder
    (twins are fabricated into it atomically, so two workers asking at once both get a whole twin).
    """
    shared = os.environ.get("WORKBENCH_TEST_CACHE")
    if shared:
        cache = Path(shared)
    elif os.environ.get("PYTEST_XDIST_WORKER"):
        cache = tmp_path_factory.getbasetemp().parent / "shared_cache"
        cache.mkdir(exist_ok=True)
    else:
        cache = tmp_path_factory.mktemp("cache")
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
