"""Ctrl-C on a sweep run by the Ray executor (`--executor ray`, a local Ray the sweep starts itself), performed
for real: the sweep stops as the local executor's does (issue 21, item 1): exit 130 with the command that
resumes it, the running run's processes gone (Ray's workers, the kernel, the probe-like children) and their
temp folders removed, the run's folder sealed, an aggregate of what finished, the lock released."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from workbench import runner
from workbench.sweep import LOCK_NAME

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

CHILDREN = Path(__file__).parent / "data" / "children.ipynb"


def _records(sweep_dir: Path) -> list[dict]:
    folder = sweep_dir / "records"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []


def _busy_run(sweep_dir: Path) -> Path | None:
    """The run folder whose children started and which has no record yet."""
    done = {r["run_dir"] for r in _records(sweep_dir)}
    for info in sorted(sweep_dir.glob("runs/*/results/children.json")):
        folder = info.parent.parent
        if f"runs/{folder.name}" not in done:
            return folder
    return None


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def _in_session(session: int) -> list[int]:
    found = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == session:
                found.append(process.pid)
        except (psutil.Error, ProcessLookupError, PermissionError):
            pass
    return found


def _left_in_session(session: int) -> list[str]:
    """Processes still alive in the sweep's session (it was started as a session leader); killed, and named."""
    left = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            if os.getsid(process.pid) == session and process.status() != psutil.STATUS_ZOMBIE:
                command = process.info["cmdline"] or [process.name()]
                left.append(f"pid {process.pid}: {' '.join('/'.join(Path(a).parts[-3:]) for a in command[:2])}")
                process.kill()
        except (psutil.Error, ProcessLookupError, PermissionError):
            pass
    return left


def test_ctrl_c_on_a_ray_sweep_stops_its_runs_and_says_how_to_resume(tmp_path):
    outputs = tmp_path / "outputs"
    path = tmp_path / "ray_stopped.yaml"
    # The first run ends at once; the second starts two sleeping children and waits 300 s.
    path.write_text(yaml.safe_dump({"notebook": str(CHILDREN), "name": "ray_stopped", "cpus_per_run": 1,
                                    "zip": {"children": [0, 2], "sleep_s": [0.0, 300.0], "seed": [0, 1]}}))
    sweep_dir = outputs / "sweeps" / "ray_stopped"
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "sweep", str(path), "--executor", "ray"],
                            env={**os.environ, "WORKBENCH_OUTPUTS": str(outputs), "PYTHONUNBUFFERED": "1"},
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)

    def second_run_busy() -> Path | None:
        if proc.poll() is not None:  # the sweep ended before its second run started: say why
            err = proc.communicate()[1]
            left = _left_in_session(proc.pid)
            if "node timed out during startup" in err:  # Ray waits 30 s (fixed) for its raylet to register
                if left:
                    pytest.xfail(f"Ray's local node did not start within Ray's fixed 30 s (machine too loaded), "
                                 f"and the sweep exited leaving Ray's processes alive: {left}")
                pytest.skip("Ray's local node did not start within Ray's fixed 30 s (machine too loaded)")
            raise AssertionError(f"the sweep ended early (exit {proc.returncode}): {err[-3000:]}")
        return _busy_run(sweep_dir) if len(_records(sweep_dir)) == 1 else None

    try:
        busy = _wait_for(second_run_busy, 600, "the first run's record and the second run's children")
        info = json.loads((busy / "results" / "children.json").read_text())
        tree = sorted({*_in_session(proc.pid), *info["pids"]} - {proc.pid})  # Ray's, the kernel, the children
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            runner.kill_tree(proc.pid, include_root=True)
            proc.communicate()
    assert proc.returncode == 130, err[-3000:]
    assert f"resume with: python -m workbench sweep {path} --executor ray" in err and "1 of 2 runs" in err
    deadline = time.monotonic() + 30
    while _alive(tree) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _alive(tree) == [], [psutil.Process(p).cmdline()[:3] for p in _alive(tree)]
    assert _left_in_session(proc.pid) == []  # nothing of the sweep's outlives it (Ray's daemons included)
    assert not any(Path(folder).exists() for folder in info["folders"])
    assert [r["status"] for r in _records(sweep_dir)] == ["ok"]
    assert (sweep_dir / "runs.csv").exists() and "1 not run" in (sweep_dir / "index.html").read_text()
    assert (sweep_dir / LOCK_NAME).read_text() == ""
    status = json.loads((busy / "manifest.json").read_text())["status"]
    assert status in ("interrupted", "killed"), status  # sealed either way: never left 'running'


def test_no_ray_cluster_at_the_address_is_one_plain_error(tmp_path):
    """`--address auto` with no Ray running: one line naming the sweep and the address, exit 2, no traceback,
    no run started, no Ray process left, the lock released."""
    outputs = tmp_path / "outputs"
    path = tmp_path / "noray.yaml"
    path.write_text(yaml.safe_dump({"notebook": str(CHILDREN), "name": "noray", "grid": {"seed": [0, 1]}}))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    before = {p.pid for p in psutil.process_iter()}
    done = subprocess.run([sys.executable, "-m", "workbench", "sweep", str(path), "--executor", "ray",
                           "--address", "auto"], env={**env, "WORKBENCH_OUTPUTS": str(outputs)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "sweep noray: could not start or reach the Ray cluster at auto" in done.stderr
    assert "no run was started" in done.stderr
    sweep_dir = outputs / "sweeps" / "noray"
    assert not (sweep_dir / "runs").exists() or not any((sweep_dir / "runs").iterdir())
    assert (sweep_dir / LOCK_NAME).read_text() == ""
    started = [p for p in psutil.process_iter(["pid", "cmdline"]) if p.pid not in before
               and any("ray" in part for part in (p.info["cmdline"] or [])[:2])]
    assert started == []
