"""`make demo`: run each demo notebook with its smoke parameters, listed in params/demo.yaml."""

from __future__ import annotations

from typing import Any

from workbench import paths
from workbench.params import load_yaml


def demo_runs() -> list[dict[str, Any]]:
    """The (notebook, params file) pairs of params/demo.yaml, in order."""
    spec = load_yaml(paths.PARAMS_DIR / "demo.yaml")
    runs = spec.get("runs")
    if not isinstance(runs, list) or not runs:
        raise ValueError(f"{paths.PARAMS_DIR / 'demo.yaml'}: needs a non-empty 'runs' list")
    return runs


def run_demo(only: list[str] | None = None) -> bool:
    """Run the demo; True when every run ended ok. Each run's folder is printed as it finishes.

    An entry is a notebook run (`notebook`, `params`) or a sweep (`sweep`: a sweep file).
    """
    from workbench.runner import resolve_parameters, run_notebook
    from workbench.sweep import load_sweep, run_sweep

    runs = [r for r in demo_runs()
            if not only or r.get("notebook") in only or (r.get("sweep") and "sweep" in only)]
    for run in runs:  # validate every run before starting any
        if "sweep" in run:
            load_sweep(run["sweep"])
        else:
            resolve_parameters(run["notebook"], run.get("params"))
    all_ok = True
    for run in runs:
        if "sweep" in run:
            import pandas as pd

            sweep_dir = run_sweep(run["sweep"], progress=False)
            statuses = pd.read_csv(sweep_dir / "runs.csv")["status"]
            print(f"[sweep {statuses.value_counts().to_dict()}] {run['sweep']}: {sweep_dir / 'index.html'}")
            all_ok &= bool((statuses == "ok").all())
            continue
        result = run_notebook(run["notebook"], run.get("params"))
        print(f"[{result.status}] {run['notebook']}: {result.dir / 'notebook.html'}")
        if result.error:
            print(f"    {result.error.splitlines()[0]}")
        all_ok &= result.ok
    return all_ok
