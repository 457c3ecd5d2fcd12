"""`make demo`'s list (params/demo.yaml) and its scheduler: runs at a time, and entries that wait."""

from __future__ import annotations

import threading
import time

import pytest

from workbench import demo
from workbench.runner import resolve_parameters
from workbench.sweep import load_sweep


def test_every_demo_entry_is_valid_with_its_overrides():
    assert demo.demo_workers() >= 1
    short, full = demo.demo_runs(full=False), demo.demo_runs()
    assert short == full[:len(short)] and len(full) > len(short)
    # the short demo runs each notebook once (04 twice: two twins for 05 to rank), 05 last and waiting
    notebooks = [run["notebook"] for run in short]
    assert sorted(set(notebooks)) == sorted(p.stem for p in demo.paths.NOTEBOOKS_DIR.glob("*.ipynb"))
    assert notebooks[-1] == "05_compare_models" and short[-1]["wait"] is True
    for run in full:
        if "sweep" in run:
            load_sweep(run["sweep"])
        else:
            resolve_parameters(run["notebook"], run.get("params"), run.get("overrides"))


def test_scheduler_keeps_to_the_workers_and_waits_where_told(monkeypatch):
    runs = [{"notebook": "a"}, {"notebook": "b"}, {"notebook": "c"}, {"notebook": "d", "wait": True},
            {"notebook": "e"}]
    events: list[tuple[str, str]] = []
    running: list[str] = []
    most = [0]
    lock = threading.Lock()

    def fake_run(run):
        with lock:
            events.append(("start", run["notebook"]))
            running.append(run["notebook"])
            most[0] = max(most[0], len(running))
        time.sleep({"a": 0.3, "b": 0.05, "c": 0.1}.get(run["notebook"], 0.02))
        with lock:
            running.remove(run["notebook"])
            events.append(("end", run["notebook"]))
        return run["notebook"] != "e"

    monkeypatch.setattr(demo, "demo_runs", lambda full=False: runs)
    monkeypatch.setattr(demo, "demo_workers", lambda: 2)
    monkeypatch.setattr(demo, "_run_one", fake_run)
    monkeypatch.setattr("workbench.runner.resolve_parameters", lambda *args: None)
    assert demo.run_demo() is False  # e failed
    assert most[0] == 2
    start_d = events.index(("start", "d"))
    assert all(events.index(("end", name)) < start_d for name in "abc")  # d waited for a, b and c
    assert events.index(("start", "c")) < events.index(("end", "a"))  # c did not wait: it took b's place


def test_bad_workers_value_is_an_error(monkeypatch):
    monkeypatch.setattr(demo, "load_yaml", lambda path: {"workers": 0, "runs": [{"notebook": "x"}]})
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        demo.demo_workers()


class _Finished:
    def __init__(self, status: str, code: int, error: str = "", folder: str = "outputs/x/run"):
        self.stdout, self.stderr, self.returncode = f"{status}: {folder}\n", error, code


HUNG = """## The kernel

Thread 0x1 (most recent call first):
  File "site-packages/zmq/sugar/__init__.py", line 21 in device

Current thread 0x2 (most recent call first):
  File "site-packages/decord/video_reader.py", line 180 in get_batch
  File "workbench/video.py", line 801 in _decode
  File "ipykernel_7/123.py", line 4 in <module>
  File "site-packages/IPython/core/interactiveshell.py", line 3823 in run_code
"""


@pytest.mark.parametrize("outcomes, ok, attempts", [
    ([("timeout", 1), ("ok", 0)], True, 2),
    ([("timeout", 1), ("timeout", 1)], False, 2),
    ([("failed", 1)], False, 1),  # only a time limit is tried again
])
def test_a_run_past_the_time_limit_is_said_and_started_again(monkeypatch, capsys, tmp_path, outcomes, ok,
                                                              attempts):
    (tmp_path / "stacks.txt").write_text(HUNG)
    commands = []
    results = iter(_Finished(status, code, "error: the run passed its time limit of 10 min and was stopped"
                             if status == "timeout" else "error: cell 3: ValueError: x", str(tmp_path))
                   for status, code in outcomes)

    def fake_run(command, **kwargs):
        commands.append(command)
        return next(results)

    monkeypatch.setattr("subprocess.run", fake_run)
    monkeypatch.setattr(demo, "demo_time_limit", lambda: (600.0, 1))
    assert demo._run_one({"notebook": "03_attention", "params": "params/03_attention.twin.yaml"}) is ok
    assert len(commands) == attempts
    assert all(c[-2:] == ["--time-limit", "600.0"] for c in commands)
    out = capsys.readouterr().out
    assert out.count("[timeout] 03_attention") == sum(s == "timeout" for s, _ in outcomes)
    assert ("starting it again (1 of 1 after a time limit)" in out) == (outcomes[0][0] == "timeout")
    if outcomes[0][0] == "timeout":  # the error, then the hung thread's stack down to its cell
        assert "error: the run passed its time limit of 10 min" in out
        assert ('      File "site-packages/decord/video_reader.py", line 180 in get_batch\n'
                '      File "workbench/video.py", line 801 in _decode\n'
                '      File "ipykernel_7/123.py", line 4 in <module>\n') in out
        assert "interactiveshell" not in out and "zmq" not in out


def test_demo_time_limit_is_set_and_checked(monkeypatch):
    limit, retries = demo.demo_time_limit()
    assert limit is not None and limit >= 300 and retries >= 0  # the demo never waits on a hang forever
    for spec, message in [({"time_limit_s": 0}, "time_limit_s must be"), ({"time_limit_s": "10"}, "time_limit_s"),
                          ({"timeout_retries": -1}, "timeout_retries must be"),
                          ({"timeout_retries": True}, "timeout_retries")]:
        monkeypatch.setattr(demo, "load_yaml", lambda path, spec=spec: spec)
        with pytest.raises(ValueError, match=message):
            demo.demo_time_limit()
    monkeypatch.setattr(demo, "load_yaml", lambda path: {})
    assert demo.demo_time_limit() == (None, 0)
