"""Memory: measure a configuration's peak per phase in a fresh process, predict it analytically, find frontiers.

    probe      ProbeConfig, run_probe (fresh process, JSON result), measure (inside that process)
    tracker    LiveTensorTracker (CPU live tensor bytes, budget), PhaseRecorder, install_phase_hooks
    predictor  predict -> Prediction (per phase and component), architecture (cached counts)
    frontier   search (grow then bisect, predictor skips), predicted_frontier, measured_frontier
    grid       Grid, predict_grid, run_grid, measured_table, phase_table
    report     predicted_frontiers, measured_frontiers, combined_table, findings
    figures    seaborn figures of notebook 02 (imported on its own: `from workbench.memory import figures`)

Submodules load on first use; predicting needs neither weights nor a GPU, measuring runs in a fresh process.
"""

from importlib import import_module
from typing import Any

# name -> submodule; imported on first use, so `python -m workbench.memory.probe` runs its module fresh
_EXPORTS = {
    "FrontierResult": "frontier", "exhaustive": "frontier", "frame_values": "frontier",
    "measured_frontier": "frontier", "pixel_values": "frontier", "predicted_frontier": "frontier",
    "search": "frontier",
    "Grid": "grid", "config_label": "grid", "measured_table": "grid", "parse_size": "grid", "phase_table": "grid",
    "predict_config": "grid", "predict_grid": "grid", "run_grid": "grid",
    "Architecture": "predictor", "Prediction": "predictor", "architecture": "predictor", "predict": "predictor",
    "visual_geometry": "predictor",
    "ProbeConfig": "probe", "measure": "probe", "resolve_device": "probe", "run_probe": "probe",
    "combined_table": "report", "findings": "report", "findings_text": "report", "frontier_rows": "report",
    "measured_frontiers": "report", "predicted_frontiers": "report",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'workbench.memory' has no attribute {name!r}")
    value = getattr(import_module(f"workbench.memory.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
