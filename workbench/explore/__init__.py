"""The interactive explorer: pick a video, a model and its settings, then load, predict or probe memory,
caption per second and look at attention, from JupyterLab widgets or from code.

    selection   Selection: the choices, spelled like notebooks/00_explore.ipynb's parameters
    controller  Explorer: one method per action, returning ActionResult (never raising); cancel()
    runs        save_results (into a notebook's run folder), save_as_run (a new run folder + params.yaml)
    render      show (a result in a notebook's output), HTML / PNG for the widgets
    view        ExplorerView: the ipywidgets front end (imported on first use)
"""

from importlib import import_module
from typing import Any

from workbench.explore.controller import ActionResult, Cancelled, ExploreError, Explorer
from workbench.explore.render import show
from workbench.explore.selection import ACTIONS, Selection

_LAZY = {"ExplorerView": "view", "save_results": "runs", "save_as_run": "runs", "SavedRun": "runs"}
__all__ = ["ACTIONS", "ActionResult", "Cancelled", "ExploreError", "Explorer", "Selection", "show", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'workbench.explore' has no attribute {name!r}")
    value = getattr(import_module(f"workbench.explore.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
