"""What users do to runs and sweeps, performed for real: Ctrl-C and SIGTERM (once and twice), kill -9 at
each phase, two sweeps on one folder. Each test checks what is left on disk (manifests, notebooks, records,
temp folders) and in the process table (kernels, run processes, probe-style children)."""

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

from workbench import runner

DATA = Path(__file__).parent / "data"
CHILDREN = DATA / "children.ipynb"
TRIVIAL = DATA / "trivial.ipynb"


def _env(outputs: Path) -> dict[str, str]:
    """The CLI's environment: its outputs, and a temp folder of the test's own. Every run and probe removes the
    wb-probe folders of dead processes in its temp folder, so under the shared /tmp a test on the other worker
    could remove a killed run's folders before this test looks at them."""
    private_tmp = outputs.parent / "tmp"
    private_tmp.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "WORKBENCH_OUTPUTS": str(outputs), "PYTHONUNBUFFERED": "1", "TMPDIR": str(private_tmp)}


_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_leftovers():
    """A failing test must not leave its CLI process (and what it started) running."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            runner.kill_tree(proc.pid, include_root=True)
            proc.communicate()


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


def _children_started(root: Path):
    found = sorted(root.glob("*/results/children.json")) if root.exists() else []
    return found[0] if found else None


def _tree(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def _all_gone(processes: list[psutil.Process], timeout: float = 15.0) -> list[int]:
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return [p.pid for p in alive if p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_a_run_kills_its_children_and_seals_it_interrupted(tmp_path, sig):
    outputs = tmp_path / "outputs"
    proc = _start(["run", str(CHILDREN), "-p", "children", "2", "-p", "sleep_s", "300"], outputs)
    info_path = _wait_for(lambda: _children_started(outputs / "children"), what="the children to start")
    info = json.loads(info_path.read_text())
    tree = _tree(proc.pid)
    assert set(info["pids"]) <= {p.pid for p in tree} and len(tree) >= 3  # kernel + 2 children
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "python -m workbench rerun" in err
    run_dir = info_path.parent.parent
    record = json.loads((run_dir / "manifest.json").read_text())
    assert record["status"] == "interrupted" and signal.Signals(sig).name in record["error"]
    assert record["ended_at"] and record["duration_s"] > 0
    assert (run_dir / "notebook.ipynb").exists() and (run_dir / "notebook.html").exists()
    assert not (run_dir / runner.PARTIAL_NAME).exists()
    assert _all_gone(tree) == []  # the kernel and both children
    assert not any(Path(folder).exists() for folder in info["folders"])


def test_second_ctrl_c_exits_at_once(tmp_path):
    outputs = tmp_path / "outputs"
    proc = _start(["run", str(CHILDREN), "-p", "sleep_s", "300"], outputs)
    _wait_for(lambda: _children_started(outputs / "children"), what="the child to start")
    tree = _tree(proc.pid)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.monotonic() - started < 10
    assert _all_gone(tree) == []


@pytest.mark.parametrize("phase", ["manifest", "children"])
def test_kill_9_of_a_run_takes_its_children_and_the_next_run_marks_it_killed(tmp_path, phase):
    """kill -9 before the kernel starts, and while the kernel and its probe-style children run: every child
    dies with the run; the next run of the notebook seals the dead folder as killed, exports its partial
    notebook (redacted) and removes the temp folders the children left."""
    outputs = tmp_path / "outputs"
    root = outputs / "children"
    proc = _start(["run", str(CHILDREN), "-p", "children", "2", "-p", "sleep_s", "300"], outputs)
    if phase == "manifest":
        _wait_for(lambda: list(root.glob("*/manifest.json")), timeout=120, what="the manifest")
        info = None
    else:
        info = json.loads(_wait_for(lambda: _children_started(root), what="the children").read_text())
    tree = _tree(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert _all_gone(tree, timeout=20) == []  # kernel (its parent poller) and children (PR_SET_PDEATHSIG)
    (dead,) = root.iterdir()
    assert json.loads((dead / "manifest.json").read_text())["status"] == "running"
    if info:
        assert all(Path(folder).is_relative_to(tmp_path / "tmp") for folder in info["folders"])
        assert all(Path(folder).exists() for folder in info["folders"])  # nobody could clean up yet

    again = subprocess.run([sys.executable, "-m", "workbench", "run", str(CHILDREN), "-p", "children", "0"],
                           env=_env(outputs), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    record = json.loads((dead / "manifest.json").read_text())
    assert record["status"] == "killed" and "ended without finishing" in record["error"]
    assert record["ended_at"] and record["marked_killed_by"]
    assert not (dead / runner.PARTIAL_NAME).exists()
    if info:
        assert (dead / "notebook.ipynb").exists() and (dead / "notebook.html").exists()
        assert not any(Path(folder).exists() for folder in info["folders"])
    assert sorted(json.loads((d / "manifest.json").read_text())["status"] for d in root.iterdir()) == ["killed", "ok"]


_SEAL_THEN_HANG = """
import sys, time
from pathlib import Path
from workbench import run_folder
folder = run_folder.RunFolder.create(sys.argv[1], {}, runner="test", dir=Path(sys.argv[2]))
Path(sys.argv[3]).replace(folder.dir / run_folder.PARTIAL_NAME)
def export_hangs(text):
    print("exporting", flush=True)
    time.sleep(300)
run_folder.export_html = export_hangs
folder.finish("ok")
"""


def test_kill_9_while_sealing_then_the_next_look_finishes_the_seal(tmp_path):
    """kill -9 between writing notebook.ipynb and notebook.html: the folder says running, and whoever marks it
    killed (the next run, a sweep, 05, the explorer) exports the page from the notebook that was written."""
    import nbformat

    run_dir = tmp_path / "outputs" / "trivial" / "sealing"
    partial = tmp_path / "partial.ipynb"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1", execution_count=1, outputs=[
        nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)])])
    partial.write_text(nbformat.writes(notebook))
    proc = subprocess.Popen([sys.executable, "-c", _SEAL_THEN_HANG, str(TRIVIAL), str(run_dir), str(partial)],
                            env=_env(tmp_path / "outputs"), stdout=subprocess.PIPE, text=True)
    _STARTED.append(proc)
    assert proc.stdout.readline().strip() == "exporting"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "running"
    assert (run_dir / "notebook.ipynb").exists() and not (run_dir / "notebook.html").exists()
    assert not (run_dir / runner.PARTIAL_NAME).exists()

    assert runner.mark_dead_runs(run_dir.parent, marked_by="test") == [run_dir]
    record = json.loads((run_dir / "manifest.json").read_text())
    assert record["status"] == "killed" and record["ended_at"]
    html = (run_dir / "notebook.html").read_text()
    assert "<pre>2</pre>" in html and "provenance" in html.lower()  # the cell's output, below the header


def test_mark_dead_runs_leaves_live_and_finished_runs_alone(tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    runner.manifest.write_manifest(live / "manifest.json", runner.manifest.start_manifest("nb", {}, "live", "test"))
    reused = tmp_path / "reused"  # the pid is alive but belongs to a process started later
    reused.mkdir()
    record = runner.manifest.start_manifest("nb", {}, "reused", "test")
    record["pid_started"] -= 3600
    runner.manifest.write_manifest(reused / "manifest.json", record)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    record = {**runner.manifest.start_manifest("nb", {}, "elsewhere", "test"), "host": "another-host", "pid": 1}
    runner.manifest.write_manifest(elsewhere / "manifest.json", record)
    assert runner.mark_dead_runs(tmp_path) == [reused]
    assert json.loads((live / "manifest.json").read_text())["status"] == "running"
    assert json.loads((elsewhere / "manifest.json").read_text())["status"] == "running"
    assert json.loads((reused / "manifest.json").read_text())["status"] == "killed"


def test_05_collector_reports_a_dead_run_as_killed(tmp_path):
    from workbench.quality import compare

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_dir = tmp_path / "run1"
    run_dir.mkdir()
    record = {**runner.manifest.start_manifest("04_caption_quality", {}, "run1", "test"), "pid": dead.pid,
              "pid_started": None}
    runner.manifest.write_manifest(run_dir / "manifest.json", record)
    (run_dir / runner.PARTIAL_NAME).write_text(json.dumps({
        "cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    runs, skipped = compare.collect_runs(root=tmp_path)
    assert runs.empty and list(skipped["status"]) == ["killed"]
    assert "ended without finishing" in skipped["reason"][0] and "05 collector" in skipped["reason"][0]
    assert (run_dir / "notebook.ipynb").exists() and not (run_dir / runner.PARTIAL_NAME).exists()


def test_probe_temp_folders_of_dead_owners_are_removed_and_live_ones_kept(tmp_path):
    from workbench.memory import probe

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{probe.TEMP_PREFIX}{dead.pid}-abc"
    live = tmp_path / f"{probe.TEMP_PREFIX}{os.getpid()}-def"
    other = tmp_path / f"{probe.TEMP_PREFIX}legacy"  # no owner pid in the name: not ours to judge
    for folder in (stale, live, other):
        folder.mkdir()
        (folder / "config.json").write_text("{}")
    assert probe.remove_stale_temp_folders(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other.exists()
    with probe.temp_folder() as name:
        assert Path(name).name.startswith(f"{probe.TEMP_PREFIX}{os.getpid()}-")


def test_probe_children_get_killed_when_their_parent_dies(tmp_path):
    """The parent (standing in for a kernel) starts a probe-style child and is killed with SIGKILL."""
    script = ("import sys, time\nfrom workbench.memory import probe\n"
              "child = probe.start_child([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
              "print(child.pid, flush=True)\ntime.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    _STARTED.append(parent)
    child = psutil.Process(int(parent.stdout.readline()))
    parent.kill()
    parent.wait()
    assert _all_gone([child], timeout=10) == []


HANG = DATA / "hang.ipynb"


@pytest.mark.parametrize("hold_gil", [False, True])
def test_time_limit_saves_the_kernels_stacks_and_stops_a_hung_run(tmp_path, hold_gil):
    """A run past --time-limit ends as 'timeout' with its kernel's stacks saved, even when the kernel waits in
    native code that holds the GIL (where SIGINT, SIGTERM and papermill's cell timeout get no answer)."""
    outputs = tmp_path / "outputs"
    started = time.monotonic()
    proc = _start(["run", str(HANG), "-p", "sleep_s", "600", "-p", "hold_gil", str(hold_gil).lower(),
                   "--time-limit", "15"], outputs)
    kernels = _wait_for(lambda: [p for p in _tree(proc.pid) if "ipykernel" in " ".join(p.cmdline())],
                       what="the kernel to start")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and out.startswith("timeout: "), (out, err[-2000:])
    assert time.monotonic() - started < 60
    run_dir = Path(out.split(": ", 1)[1].strip())
    record = json.loads((run_dir / "manifest.json").read_text())
    assert record["status"] == "timeout"
    cell_line = 3 if hold_gil else 5  # the libc sleep / time.sleep line of the cell
    assert record["error"].startswith(f"the run passed its time limit of 15 s and was stopped; it was at cell "
                                      f"line {cell_line} ")
    assert "stacks.txt" in record["error"] and "error: the run passed its time limit" in err
    stacks = (run_dir / "stacks.txt").read_text()
    kernel, runner_part = stacks.split("## The runner")
    assert "Current thread" in kernel and "ipykernel_launcher.py" in kernel and "in <module>" in kernel
    assert "workbench/watchdog.py" in runner_part  # the runner's own threads, the watchdog's among them
    assert str(runner.paths.REPO_ROOT) not in stacks and str(tmp_path) not in stacks and '"/' not in stacks
    assert (run_dir / "notebook.ipynb").exists() and not (run_dir / runner.PARTIAL_NAME).exists()
    assert not list((tmp_path / "tmp").glob("workbench-stacks-*"))  # the kernel's raw dump is removed
    assert _all_gone(kernels) == []


def test_a_run_within_its_time_limit_is_untouched(tmp_path):
    outputs = tmp_path / "outputs"
    proc = _start(["run", str(HANG), "-p", "sleep_s", "1", "--time-limit", "120"], outputs)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and out.startswith("ok: "), err[-2000:]
    run_dir = Path(out.split(": ", 1)[1].strip())
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "ok"
    assert not (run_dir / "stacks.txt").exists() and not list((tmp_path / "tmp").glob("workbench-stacks-*"))


@pytest.mark.parametrize("value", ["0", "-3", "soon"])
def test_time_limit_must_be_positive_seconds(tmp_path, value):
    proc = _start(["run", str(HANG), "--time-limit", value], tmp_path / "outputs")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--time-limit" in err and repr(value) in err
    assert not (tmp_path / "outputs").exists()
