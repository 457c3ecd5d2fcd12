"""`make demo`: run each demo notebook once with its smoke parameters, listed in params/demo.yaml.

`runs` is the short demo (each notebook once, about five minutes on two CPU cores); `full` adds the rest
(more models and videos in 04, the sweeps and the comparisons of their runs: `make demo-full`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from workbench import paths
from workbench.params import load_yaml

ENTRY_KEYS = {"notebook", "params", "overrides", "sweep", "wait"}


def demo_workers() -> int:
    """Runs at a time (params/demo.yaml `workers`, default 1)."""
    workers = load_yaml(paths.PARAMS_DIR / "demo.yaml").get("workers", 1)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"{paths.PARAMS_DIR / 'demo.yaml'}: workers must be a positive integer, got {workers!r}")
    return workers


def demo_time_limit() -> tuple[float | None, int]:
    """(seconds a notebook run may take before its kernel's stacks are saved and it is stopped, how many
    times a run stopped so is started again): params/demo.yaml `time_limit_s` (default none) and
    `timeout_retries` (default 0)."""
    source = paths.PARAMS_DIR / "demo.yaml"
    spec = load_yaml(source)
    limit, retries = spec.get("time_limit_s"), spec.get("timeout_retries", 0)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit > 0):
        raise ValueError(f"{source}: time_limit_s must be a number of seconds > 0, got {limit!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"{source}: timeout_retries must be an integer >= 0, got {retries!r}")
    return (float(limit) if limit is not None else None), retries


def demo_runs(full: bool = True) -> list[dict[str, Any]]:
    """The entries of params/demo.yaml in order: `runs`, then (full) `full`."""
    source = paths.PARAMS_DIR / "demo.yaml"
    spec = load_yaml(source)
    runs = spec.get("runs")
    if not isinstance(runs, list) or not runs:
        raise ValueError(f"{source}: needs a non-empty 'runs' list")
    more = spec.get("full") or []
    if not isinstance(more, list):
        raise ValueError(f"{source}: 'full' must be a list of runs")
    entries = runs + more if full else runs
    for entry in entries:
        unknown = set(entry) - ENTRY_KEYS if isinstance(entry, dict) else {"(not a mapping)"}
        if unknown or not isinstance(entry, dict) or ("sweep" in entry) == ("notebook" in entry):
            raise ValueError(f"{source}: an entry is a notebook (notebook, params, overrides) or a sweep "
                             f"(sweep), got {entry!r}")
    return entries


def run_demo(only: list[str] | None = None, full: bool = False) -> bool:
    """Run the demo; True when every run ended ok. Each run's folder and time are printed as it finishes.

    An entry is a notebook run (`notebook`, `params`, optional `overrides`) or a sweep (`sweep`: a sweep
    file). Up to `workers` runs go at a time (each kernel on one torch thread then, unless OMP_NUM_THREADS is
    set); an entry with `wait: true` (05, which reads the runs before it) starts when all before it ended.
    """
    import os
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from workbench.runner import STOP, interruptible, resolve_parameters
    from workbench.sweep import load_sweep

    runs = [r for r in demo_runs(full)
            if not only or r.get("notebook") in only or (r.get("sweep") and "sweep" in only)]
    for run in runs:  # validate every run before starting any
        if "sweep" in run:
            load_sweep(run["sweep"])
        else:
            resolve_parameters(run["notebook"], run.get("params"), run.get("overrides"))
    workers = demo_workers()
    demo_time_limit()  # a bad value is an error before any run starts
    if workers > 1:  # kernels and probe processes inherit it: threads would spin against each other
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    started = time.perf_counter()
    results: list[bool] = []
    with interruptible(), ThreadPoolExecutor(max_workers=workers) as pool:
        running: set[Any] = set()
        for run in runs:
            if run.get("wait"):
                wait(running)
                results += [future.result() for future in running]
                running = set()
            while len(running) >= workers:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                results += [future.result() for future in done]
            if STOP.is_set():
                break
            running.add(pool.submit(_run_one, run))
        results += [future.result() for future in running]
    print(f"demo: {len(results)} runs in {time.perf_counter() - started:.0f} s, {workers} at a time", flush=True)
    return len(results) == len(runs) and all(results)


def _run_one(run: dict[str, Any]) -> bool:
    """One demo entry; prints its status, time and page; True when it ended ok.

    A notebook runs in its own `python -m workbench run` process: the runner kills what a run leaves behind
    among its process's children when the run ends, which in a shared process would be the kernel of the
    run beside it. A run that passes the demo's time limit is stopped with its kernel's stacks in its folder
    (`workbench.watchdog`), said so, and started again up to `timeout_retries` times.
    """
    import json
    import subprocess
    import sys

    from workbench.runner import STOP

    start = time.perf_counter()
    if "sweep" in run:
        import pandas as pd

        from workbench.sweep import run_sweep

        sweep_dir = run_sweep(run["sweep"], progress=False)
        statuses = pd.read_csv(sweep_dir / "runs.csv")["status"]
        print(f"[sweep {statuses.value_counts().to_dict()}] {run['sweep']} "
              f"({time.perf_counter() - start:.0f} s): {sweep_dir / 'index.html'}", flush=True)
        return bool((statuses == "ok").all())
    limit_s, retries = demo_time_limit()
    command = [sys.executable, "-m", "workbench", "run", run["notebook"], "--no-progress"]
    if run.get("params"):
        command += ["-f", run["params"]]
    if run.get("overrides"):
        command += ["-y", json.dumps(run["overrides"])]
    if limit_s is not None:
        command += ["--time-limit", str(limit_s)]
    for attempt in range(retries + 1):
        if attempt:
            print(f"    {run['notebook']}: starting it again ({attempt} of {retries} after a time limit)", flush=True)
            start = time.perf_counter()
        process = subprocess.run(command, cwd=str(paths.REPO_ROOT), capture_output=True, text=True)
        lines = process.stdout.strip().splitlines()
        status, _, folder = (lines[-1] if lines else "failed: (no run folder)").partition(": ")
        print(f"[{status}] {run['notebook']} ({time.perf_counter() - start:.0f} s): {folder}/notebook.html",
              flush=True)
        if process.returncode != 0:
            stderr = process.stderr.strip().splitlines()
            errors = [line for line in stderr if line.startswith("error:")]
            print(f"    {(errors or stderr or ['exit code ' + str(process.returncode)])[-1]}", flush=True)
        if status == "timeout":
            _print_hung_stack(Path(folder))
        if status != "timeout" or STOP.is_set():
            break
    return process.returncode == 0


def _print_hung_stack(run_dir: Path, most: int = 30) -> None:
    """The stack of the kernel thread that was in a cell when the time limit passed (from the run's
    stacks.txt), down to the cell's own frame: the demo's output (and CI's log) shows where it hung."""
    from workbench.watchdog import STACKS_NAME, cell_thread

    try:
        block = cell_thread((run_dir / STACKS_NAME).read_text(encoding="utf-8"))
    except OSError:
        block = None
    if block is None:
        return
    lines = block.splitlines()
    cell = next((i for i, line in enumerate(lines) if "ipykernel_" in line), len(lines) - 1)
    shown = lines[: min(cell + 1, most)]
    print("\n".join(f"      {line.strip()}" for line in shown), flush=True)
