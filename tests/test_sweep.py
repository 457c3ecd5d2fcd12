"""Sweeps: expansion and validation, isolation of failing runs, exactly-once resume after SIGKILL, the
aggregate table and index, and the Ray executor on a local Ray instance."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

from workbench import paths
from workbench.sweep import SweepError, expand_points, load_sweep, run_sweep

TRIVIAL = Path(__file__).parent / "data" / "trivial.ipynb"


def _sweep_file(tmp_path: Path, name: str, **spec) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"notebook": str(TRIVIAL), "name": name, **spec}))
    return path


def _records(sweep_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((sweep_dir / "records").glob("*.json"))]


def test_expansion_grid_times_zip():
    points = expand_points({"a": [1, 2], "b": [3, 4, 5]}, {"c": ["x", "y"], "d": [0, 1]})
    assert len(points) == 2 * 3 * 2
    assert {"a": 2, "b": 5, "c": "y", "d": 1} in points
    assert all((p["c"], p["d"]) in {("x", 0), ("y", 1)} for p in points)


@pytest.mark.parametrize("spec, message", [
    ({"grid": {"value": [1, "two"]}}, "run 1"),  # wrong type in the second point
    ({"grid": {"valeu": [1, 2]}}, "valeu"),  # unknown parameter
    ({"zip": {"value": [1, 2], "sleep_s": [0.0]}}, "equal lengths"),
    ({"grid": {"value": [1]}, "zip": {"value": [2]}}, "both grid and zip"),
    ({"grid": {"value": []}}, "non-empty list"),
    ({"grdi": {"value": [1]}}, "unknown keys"),
    ({"grid": {"value": [1, 1]}}, "repeats an earlier run"),
])
def test_invalid_sweeps_fail_before_any_run(tmp_path, spec, message):
    path = _sweep_file(tmp_path, "invalid", **spec)
    with pytest.raises(SweepError, match=message):
        run_sweep(path, progress=False)
    assert not (paths.outputs_dir() / "sweeps" / "invalid").exists()


def test_every_sweep_file_in_params_is_valid():
    files = sorted((paths.PARAMS_DIR / "sweeps").glob("*.yaml"))
    assert len(files) >= 4  # memory grid and caption comparison, each with a smoke variant
    for path in files:
        sweep = load_sweep(path)
        assert len(sweep.runs) >= 2, path


def test_isolation_statuses_aggregate_and_index(tmp_path):
    """ok, failed, oom, a killed kernel and a timeout each get their status; the sweep goes on."""
    path = _sweep_file(tmp_path, "isolation", timeout_s=40, workers=2,
                       zip={"action": ["ok", "fail", "oom", "die", "ok"], "value": [2, 3, 4, 5, 6],
                            "sleep_s": [0.0, 0.0, 0.0, 0.0, 300.0]})
    sweep_dir = run_sweep(path, progress=False)
    records = {r["point"]["value"]: r for r in _records(sweep_dir)}
    assert {v: r["status"] for v, r in records.items()} == {
        2: "ok", 3: "failed", 4: "oom", 5: "killed", 6: "timeout"}
    assert "asked to fail" in records[3]["error"]
    # the timeout ended in its own run process, which saved its kernel's stacks before killing it
    assert records[6]["error"].startswith("the run passed its time limit of 40 s and was stopped; it was at cell")
    assert "Current thread" in (sweep_dir / records[6]["run_dir"] / "stacks.txt").read_text()
    for record in records.values():  # every run folder is sealed with the status the sweep recorded
        manifest = json.loads((sweep_dir / record["run_dir"] / "manifest.json").read_text())
        assert manifest["status"] == record["status"]
    runs = pd.read_parquet(sweep_dir / "runs.parquet")
    assert len(runs) == 5 and sorted(runs["value"]) == [2, 3, 4, 5, 6]
    numbers = pd.read_csv(sweep_dir / "results" / "numbers.csv")
    assert numbers[["value", "square"]].values.tolist() == [[2, 4]]  # only the ok run has results
    assert (sweep_dir / records[2]["run_dir"] / "results" / "nothing.csv").exists()
    assert not (sweep_dir / "results" / "nothing.csv").exists()  # an empty table is skipped, not an error
    index = (sweep_dir / "index.html").read_text()
    assert index.count("<tr>") == 6 and index.count('href="') >= 2
    linked = records[2]["run_dir"] + "/notebook.html"
    assert linked in index and (sweep_dir / linked).exists()


def test_resume_skips_finished_and_retry_redoes_failed(tmp_path):
    path = _sweep_file(tmp_path, "resume", workers=2, zip={"value": [1, 2, 3], "action": ["ok", "fail", "ok"]})
    sweep_dir = run_sweep(path, progress=False)
    first = {r["key"]: r for r in _records(sweep_dir)}
    assert sorted(r["status"] for r in first.values()) == ["failed", "ok", "ok"]
    run_sweep(path, progress=False)  # nothing to do
    assert {r["key"]: r for r in _records(sweep_dir)} == first
    assert len(list((sweep_dir / "runs").iterdir())) == 3
    run_sweep(path, retry_failed=True, progress=False)
    again = {r["key"]: r for r in _records(sweep_dir)}
    retried = [k for k in again if again[k] != first[k]]
    assert len(retried) == 1 and first[retried[0]]["status"] == "failed" and again[retried[0]]["attempt"] == 2
    assert len(list((sweep_dir / "runs").iterdir())) == 4  # the failed attempt's folder is kept


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume_records_each_run_exactly_once(tmp_path):
    path = _sweep_file(tmp_path, "killed", workers=1, grid={"value": [1, 2, 3, 4]}, base={"sleep_s": 2.0})
    sweep_dir = paths.outputs_dir() / "sweeps" / "killed"
    process = subprocess.Popen([sys.executable, "-m", "workbench", "sweep", str(path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # kill while the second run is executing
        done = len(list((sweep_dir / "records").glob("*.json"))) if (sweep_dir / "records").exists() else 0
        started = len(list((sweep_dir / "runs").iterdir())) if (sweep_dir / "runs").exists() else 0
        if done >= 1 and started >= 2:
            break
        time.sleep(0.2)
    time.sleep(1.0)
    tree = psutil.Process(process.pid).children(recursive=True)  # run process and kernel
    assert tree
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_records = len(_records(sweep_dir))
    assert 1 <= killed_records < 4
    _, alive = psutil.wait_procs(tree, timeout=15)  # the run process gets SIGKILL (PR_SET_PDEATHSIG)
    assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []

    assert subprocess.run([sys.executable, "-m", "workbench", "sweep", str(path)],
                          capture_output=True).returncode == 0
    records = _records(sweep_dir)
    assert len(records) == 4 and {r["status"] for r in records} == {"ok"}
    assert sorted(r["point"]["value"] for r in records) == [1, 2, 3, 4]
    numbers = pd.read_csv(sweep_dir / "results" / "numbers.csv")
    assert sorted(numbers["value"]) == [1, 2, 3, 4]
    # the interrupted attempt's folder stays, unrecorded; every recorded folder is complete
    folders = {p.name for p in (sweep_dir / "runs").iterdir()}
    recorded = {Path(r["run_dir"]).name for r in records}
    assert recorded < folders
    unrecorded = [json.loads((sweep_dir / "runs" / f / "manifest.json").read_text()) for f in folders - recorded
                  if (sweep_dir / "runs" / f / "manifest.json").exists()]
    assert {m["status"] for m in unrecorded} <= {"killed"}  # the restarted sweep sealed the dead attempt
    for record in records:
        json.loads((sweep_dir / record["run_dir"] / "manifest.json").read_text())
        assert (sweep_dir / record["run_dir"] / "notebook.html").exists()


@pytest.mark.slow
def test_ray_executor_on_a_local_ray_instance(tmp_path):
    pytest.importorskip("ray")
    path = _sweep_file(tmp_path, "ray", grid={"value": [7, 8]}, cpus_per_run=1)
    sweep_dir = run_sweep(path, executor="ray", progress=False)
    records = _records(sweep_dir)
    assert sorted(r["status"] for r in records) == ["ok", "ok"]
    numbers = pd.read_csv(sweep_dir / "results" / "numbers.csv")
    assert sorted(numbers["square"]) == [49, 64]
