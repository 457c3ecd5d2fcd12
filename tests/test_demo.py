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
