"""Sweeps under faults, performed for real: Ctrl-C mid-sweep, a second sweep on the same folder, kill -9 of
the holder and the takeover of its lock, concurrent attempt numbering. Each test checks records, tables,
manifests, the lock file and the process table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

from workbench import runner
from workbench.sweep import LOCK_NAME, new_attempt_dir

CHILDREN = Path(__file__).parent / "data" / "children.ipynb"
_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_leftovers():
    """A failing test must not leave its sweep process (and what it started) running."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            runner.kill_tree(proc.pid, include_root=True)
            proc.communicate()


def _env(outputs: Path) -> dict[str, str]:
    return {**os.environ, "WORKBENCH_OUTPUTS": str(outputs), "PYTHONUNBUFFERED": "1"}


def _start(args: list[str], outputs: Path) -> subprocess.Popen:
    """A CLI process in a session of its own: signals reach only it, as Ctrl-C reaches a terminal's job."""
    proc = subprocess.Popen([sys.executable, "-m", "workbench", *args], env=_env(outputs), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    _STARTED.append(proc)
    return proc


def _wait_for(predicate, timeout: float = 180.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _tree(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def _all_gone(processes: list[psutil.Process], timeout: float = 15.0) -> list[int]:
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return [p.pid for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def _sweep_file(tmp_path: Path, name: str, **spec) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"notebook": str(CHILDREN), "name": name, "workers": 1, **spec}))
    return path


def _records(sweep_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((sweep_dir / "records").glob("*.json"))]


def _busy_run(sweep_dir: Path):
    """The run folder whose children started and which has no record yet."""
    done = {r["run_dir"] for r in _records(sweep_dir)} if (sweep_dir / "records").exists() else set()
    for info in sorted(sweep_dir.glob("runs/*/results/children.json")):
        folder = info.parent.parent
        if f"runs/{folder.name}" not in done:
            return folder
    return None


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_mid_sweep_stops_seals_aggregates_and_says_how_to_resume(tmp_path, sig):
    outputs = tmp_path / "outputs"
    path = _sweep_file(tmp_path, "stopped", zip={"children": [0, 2, 0], "sleep_s": [0.0, 300.0, 0.0], "seed": [0, 0, 1]})
    sweep_dir = outputs / "sweeps" / "stopped"
    proc = _start(["sweep", str(path)], outputs)
    busy = _wait_for(lambda: _busy_run(sweep_dir) if len(_records(sweep_dir) if (sweep_dir / "records").exists()
                                                          else []) == 1 else None, what="the second run")
    info = json.loads((busy / "results" / "children.json").read_text())
    tree = _tree(proc.pid)
    assert len(tree) >= 4  # run process, kernel, two children
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert f"resume with: python -m workbench sweep {path}" in err and "1 of 3 runs" in err
    assert _all_gone(tree) == []
    assert not any(Path(folder).exists() for folder in info["folders"])
    assert len(_records(sweep_dir)) == 1
    assert json.loads((busy / "manifest.json").read_text())["status"] == "interrupted"
    assert (busy / "notebook.html").exists()
    assert len(list((sweep_dir / "runs").iterdir())) == 2  # the third run never started
    runs = pd.read_csv(sweep_dir / "runs.csv")
    assert list(runs["status"]) == ["ok"] and "1 not run" not in (sweep_dir / "index.html").read_text()
    assert "2 not run" in (sweep_dir / "index.html").read_text()
    assert (sweep_dir / LOCK_NAME).read_text() == ""  # released

    # resuming redoes the interrupted run and the one never started (keys as this sweep computed them: the
    # code version in them changes whenever a workbench file does)
    keys = {run["key"] for run in json.loads((sweep_dir / "sweep.json").read_text())["runs"]}
    assert len(keys - {r["key"] for r in _records(sweep_dir)}) == 2


def test_second_sweep_refuses_then_takes_over_a_dead_holders_lock(tmp_path):
    outputs = tmp_path / "outputs"
    path = _sweep_file(tmp_path, "locked", base={"children": 1, "sleep_s": 300.0}, grid={"seed": [0]})
    sweep_dir = outputs / "sweeps" / "locked"
    holder = _start(["sweep", str(path)], outputs)
    busy = _wait_for(lambda: _busy_run(sweep_dir), what="the first sweep's run")
    info = json.loads((busy / "results" / "children.json").read_text())

    second = subprocess.run([sys.executable, "-m", "workbench", "sweep", str(path)], env=_env(outputs),
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 2
    assert f"in use by another sweep: pid {holder.pid} on host" in second.stderr and "started 20" in second.stderr
    assert len(list((sweep_dir / "runs").iterdir())) == 1  # it started nothing

    tree = _tree(holder.pid)
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=30)
    assert _all_gone(tree, timeout=20) == []  # run process, kernel and child die with the sweep
    assert json.loads((sweep_dir / LOCK_NAME).read_text())["pid"] == holder.pid  # left behind

    path.write_text(yaml.safe_dump({"notebook": str(CHILDREN), "name": "locked", "workers": 1,
                                    "base": {"children": 1, "sleep_s": 0.0}, "grid": {"seed": [0]}}))
    third = subprocess.run([sys.executable, "-m", "workbench", "sweep", str(path)], env=_env(outputs),
                           capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr[-2000:]
    assert f"taking over the lock of sweep folder {sweep_dir} from pid {holder.pid}" in third.stderr
    killed = json.loads((busy / "manifest.json").read_text())
    assert killed["status"] == "killed" and (busy / "notebook.html").exists()
    assert not any(Path(folder).exists() for folder in info["folders"])
    assert [r["status"] for r in _records(sweep_dir)] == ["ok"]
    assert (sweep_dir / LOCK_NAME).read_text() == ""


def test_attempt_numbers_cannot_race(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "k-a1").mkdir()
    got: list[int] = []
    barrier = threading.Barrier(8)

    def take() -> None:
        barrier.wait()
        got.append(new_attempt_dir(tmp_path, "k")[0])

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got) == list(range(2, 10))
