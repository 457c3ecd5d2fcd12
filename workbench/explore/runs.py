"""Explorer results into run folders: the notebook's own run, and "Save as run" from the widgets.

"Save as run" makes a folder like `python -m workbench run` does (outputs/00_explore/<run-id>/ with
manifest.json, results/, figures/) plus `params.yaml`: the parameters that repeat the exploration with
`python -m workbench run 00_explore -f <that file>`. It validates the parameters as the runner does, and
creates, fills and seals the folder with `workbench.run_folder.RunFolder`, as every run does.

This module takes the explorer's results as plain objects (anything with `current()`, or a list of action
results): it does not import the controller, which imports it to save (no import cycle).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.run_folder import RunFolder, mark_dead_runs

if TYPE_CHECKING:
    from workbench.context import Run
    from workbench.explore.controller import ActionResult, Explorer

NOTEBOOK = "00_explore"


@dataclass
class SavedRun:
    dir: Path
    params_file: Path
    results: list["ActionResult"]  # saved, in action order
    left_out: list["ActionResult"]  # stale: computed with other settings than the saved parameters


def save_results(run: "Run | RunFolder", source: "Explorer | list[ActionResult]") -> list[Path]:
    """Write each result's tables, records and figures into the run folder, plus results/actions.json
    (every action's status and message) and the video as a hashed input. Returns the files written."""
    results = source.current() if hasattr(source, "current") else list(source)
    written: list[Path] = []
    for result in results:
        for name, table in result.tables.items():
            written.append(run.save_table(table, name))
        for name, record in result.records.items():
            written.append(run.save_json(record, name))
        for name, figure in result.figures.items():
            written.append(run.save_figure(figure, name))
    written.append(run.save_json([{"action": r.action, "status": r.status, "message": r.message,
                                   "seconds": round(r.seconds, 3)} for r in results], "actions"))
    videos = {r.selection.video: r.selection.seed for r in results if r.selection is not None and r.action != "load"}
    for name, seed in videos.items():
        from workbench import inputs

        path = inputs.resolve_video(name, seed)
        if path.exists():
            run.record_input(path, "video")
    return written


def outcome(results: list["ActionResult"]) -> tuple[str, str | None]:
    """A run status (ok / oom / failed) and error for a set of action results, as a headless run would end."""
    failed = [r for r in results if r.status != "ok"]
    if not failed:
        return "ok", None
    error = "; ".join(f"{r.action}: {r.message}" for r in failed)
    return ("oom" if "out of memory" in error.lower() else "failed"), error


def save_as_run(explorer: "Explorer") -> SavedRun:
    """The explorer's current results as a new run folder with the parameters that repeat them."""
    import yaml

    from workbench import atomic, manifest, paths, runner

    start = time.perf_counter()
    results = [r for r in explorer.current() if r.status in ("ok", "error")]
    left_out = explorer.stale()
    parameters: dict[str, Any] = {**explorer.selection.to_parameters(), "actions": [r.action for r in results]}
    nb_path, values = runner.resolve_parameters(NOTEBOOK, None, parameters)
    mark_dead_runs(paths.run_root(nb_path.stem), marked_by="explorer")  # no dead run passes for live
    folder = RunFolder.create(nb_path, values, runner="explorer", suffix="explorer", overrides=values,
                              left_out=[{"action": r.action, "message": r.message} for r in left_out])
    params_file = folder.dir / "params.yaml"
    header = (f"# Saved from the explorer. Repeat headless with:\n"
              f"#   python -m workbench run {nb_path.stem} -f {params_file}\n")
    atomic.write_text(params_file, manifest.redact(header + yaml.safe_dump(values, sort_keys=False)))
    folder.update(params_file=str(params_file))
    save_results(folder, results)
    status, error = outcome(results)
    folder.finish(status, error, time.perf_counter() - start)
    return SavedRun(folder.dir, params_file, results, left_out)
