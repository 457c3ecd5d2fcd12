"""The run folder as seen from inside a notebook: where its tables, figures and inputs are saved.

`python -m workbench run` creates the folder and passes it as the `run_dir` parameter; a notebook run
by plain papermill or opened in JupyterLab gets a fresh folder of its own (with a manifest written here),
so every number a notebook shows is saved beside its parameters either way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import atomic, manifest, paths
from workbench.params import notebook_parameters, validate


@dataclass
class Run:
    dir: Path
    notebook: str
    parameters: dict[str, Any]
    standalone: bool  # True when no runner manages this folder (plain papermill, JupyterLab)
    inputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def results_dir(self) -> Path:
        return self.dir / "results"

    @property
    def figures_dir(self) -> Path:
        return self.dir / "figures"

    def save_table(self, table: Any, name: str, columns: list[str] | None = None) -> Path:
        """Save a pandas DataFrame (tidy, one row per observation) as results/<name>.csv, atomically.

        The CSV always has a header row, so readers can parse an empty table: a table without columns
        (`pd.DataFrame()` of no rows) gets `columns` as its header, else the single column `no_data`.
        """
        import pandas as pd

        if len(table.columns) == 0:
            table = pd.DataFrame(columns=list(columns or ["no_data"]))
        path = self.results_dir / f"{name}.csv"
        with atomic.atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
        return path

    def save_json(self, obj: Any, name: str) -> Path:
        return atomic.write_json(self.results_dir / f"{name}.json", obj)

    def save_figure(self, figure: Any, name: str, dpi: int = 110) -> Path:
        """Save a matplotlib figure (or seaborn grid) as figures/<name>.png, atomically."""
        figure = getattr(figure, "figure", figure)  # seaborn grids and axes carry their figure
        path = self.figures_dir / f"{name}.png"
        with atomic.atomic_path(path, suffix=".png") as tmp:
            figure.savefig(tmp, dpi=dpi, bbox_inches="tight")
        return path

    def record_input(self, path: str | Path, role: str = "input") -> dict[str, Any]:
        """Hash an input file (or folder) into the run's record of what it read."""
        entry = {"role": role, **manifest.describe_input(path)}
        self.inputs = [i for i in self.inputs if i["path"] != entry["path"]] + [entry]
        atomic.write_json(self.dir / "inputs.json", self.inputs)
        return entry

    def record_frames(self, frames: Any, label: str = "frames") -> None:
        """Record the exact frames a step sampled (a video Clip, or records with index and timestamp_s, and
        window / window_start_s / window_end_s where windowed) into the manifest, so a run can be repeated."""
        from workbench.runner import FRAMES_FILE

        records = frames.to_records() if hasattr(frames, "to_records") and not hasattr(frames, "columns") else (
            frames.to_dict("records") if hasattr(frames, "columns") else list(frames))
        path = self.dir / FRAMES_FILE
        known = json.loads(path.read_text()) if path.exists() else []
        known = [entry for entry in known if entry.get("source") != label] + [{"source": label, "frames": records}]
        atomic.write_json(path, known)

    def finish(self) -> None:
        """Mark a standalone run finished (the runner does this itself for runs it manages)."""
        from workbench import page

        page.finish(self)  # the run's warnings: once per kind, collapsed at the end, kept in warnings.log
        if not self.standalone:
            return
        record = json.loads((self.dir / "manifest.json").read_text())
        record.update(status="ok", ended_at=manifest.now_iso(), inputs=self.inputs)
        manifest.write_manifest(self.dir / "manifest.json", record)


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
    if run_dir:
        directory = Path(run_dir)
        directory.mkdir(parents=True, exist_ok=True)
        standalone = not (directory / "manifest.json").exists()
    else:
        from workbench.runner import new_run_dir

        directory, standalone = new_run_dir(notebook, values, suffix="interactive"), True
    run = Run(directory, notebook, values, standalone)
    if standalone:
        manifest.write_manifest(directory / "manifest.json",
                                manifest.start_manifest(notebook, values, directory.name, runner="notebook"))
    from workbench import page

    page.start(run)  # readable tables, warnings into the run folder's log, provenance for standalone runs
    return run
