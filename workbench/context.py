"""The run folder as seen from inside a notebook: where its tables, figures and inputs are saved.

`python -m workbench run` creates the folder and passes it as the `run_dir` parameter; a notebook run
by plain papermill or opened in JupyterLab gets a fresh folder of its own (with a manifest written here),
so every number a notebook shows is saved beside its parameters either way. Creating, saving into and
sealing the folder is `workbench.run_folder.RunFolder`'s; `Run` is that folder with the notebook's name and
parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench import paths
from workbench.params import notebook_parameters, validate
from workbench.run_folder import RunFolder


@dataclass
class Run(RunFolder):
    notebook: str
    parameters: dict[str, Any]
    standalone: bool  # True when no runner manages this folder (plain papermill, JupyterLab)

    def finish(self, status: str = "ok", error: str | None = None, seconds: float | None = None) -> None:
        """End the notebook's run: its warnings are summarized, and a standalone folder is sealed (the runner
        seals the folders it manages itself, with the executed notebook)."""
        from workbench import page

        page.finish(self)  # the run's warnings: once per kind, collapsed at the end, kept in warnings.log
        if not self.standalone:
            return
        if not self.record:
            self.record = RunFolder.open(self.dir).record
        super().finish(status, error, seconds)


def open_run(run_dir: str, notebook: str, namespace: dict[str, Any]) -> Run:
    """Open the run folder for `notebook`, taking its parameter values from the notebook's namespace.

    The values are checked against the notebook's parameters cell again here, so a run started by
    plain papermill with a wrong type fails in its first cell with the list of valid parameters.
    """
    notebook_file = paths.notebook_path(notebook)
    notebook = notebook_file.stem
    declared = notebook_parameters(notebook_file)
    values = {name: namespace[name] for name in declared if name in namespace and name != "run_dir"}
    validate(declared, values, notebook)
    directory = paths.resolve_run_dir(run_dir) if run_dir else None
    standalone = directory is None or not (directory / "manifest.json").exists()
    if standalone:
        folder = RunFolder.create(notebook_file, values, runner="notebook", dir=directory, suffix="interactive")
        run = Run(folder.dir, notebook, values, standalone, record=folder.record)
    else:
        directory.mkdir(parents=True, exist_ok=True)
        run = Run(directory, notebook, values, standalone)
    from workbench import page

    page.start(run)  # readable tables, warnings into the run folder's log, provenance for standalone runs
    return run
