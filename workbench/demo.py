"""`make demo`: run each demo notebook once with its smoke parameters, listed in params/demo.yaml.

`runs` is the short demo (each notebook once, about five minutes on two CPU cores); `full` adds the rest
(more models and videos in 04, the sweeps and the comparisons of their runs: `make demo-full`).
"""

from __future__ import annotations

import time
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
    run beside it.
    """
    import json
    import subprocess
    import sys

    start = time.perf_counter()
    if "sweep" in run:
        import pandas as pd

        from workbench.sweep import run_sweep

        sweep_dir = run_sweep(run["sweep"], progress=False)
        statuses = pd.read_csv(sweep_dir / "runs.csv")["status"]
        print(f"[sweep {statuses.value_counts().to_dict()}] {run['sweep']} "
              f"({time.perf_counter() - start:.0f} s): {sweep_dir / 'index.html'}", flush=True)
        return bool((statuses == "ok").all())
    command = [sys.executable, "-m", "workbench", "run", run["notebook"], "--no-progress"]
    if run.get("params"):
        command += ["-f", run["params"]]
    if run.get("overrides"):
        command += ["-y", json.dumps(run["overrides"])]
    process = subprocess.run(command, cwd=str(paths.REPO_ROOT), capture_output=True, text=True)
    lines = process.stdout.strip().splitlines()
    status, _, folder = (lines[-1] if lines else "failed: (no run folder)").partition(": ")
    print(f"[{status}] {run['notebook']} ({time.perf_counter() - start:.0f} s): {folder}/notebook.html",
          flush=True)
    if process.returncode != 0:
        errors = [line for line in process.stderr.strip().splitlines() if line.startswith("error:")]
        print(f"    {(errors or process.stderr.strip().splitlines() or ['exit code ' + str(process.returncode)])[-1]}",
              flush=True)
    return process.returncode == 0
