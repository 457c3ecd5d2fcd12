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
    """Run the demo; True when every run ended ok. Each run's folder is printed as it finishes."""
    from workbench.runner import resolve_parameters, run_notebook

    runs = [r for r in demo_runs() if not only or r["notebook"] in only]
    for run in runs:  # validate every run before starting any
        resolve_parameters(run["notebook"], run.get("params"))
    all_ok = True
    for run in runs:
        result = run_notebook(run["notebook"], run.get("params"))
        print(f"[{result.status}] {run['notebook']}: {result.dir / 'notebook.html'}")
        if result.error:
            print(f"    {result.error.splitlines()[0]}")
        all_ok &= result.ok
    return all_ok
