"""The run folder's life, in one place: create it, record what ran and on what, save results into it, and seal
it (finish, fail, interrupted, killed).

outputs/<notebook>/<run-id>/
    manifest.json    what ran, on what, with which inputs, when and how it ended (workbench.manifest)
    notebook.ipynb   the executed notebook (partial, with the error, when a cell failed)
    notebook.html    the same, for sharing
    results/*.csv|json, figures/*.png, inputs.json, frames.json

`RunFolder` is used by every writer of run folders: the runner (`python -m workbench run`, sweep workers),
the notebook's own handle (`workbench.context.Run`, a RunFolder), the explorer's "Save as run" and the sweep
(which seals an attempt with the outcome it saw). Every file is written atomically, and secrets from the
environment are removed from everything a sealed folder holds.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from workbench import atomic, manifest, paths

STATUSES = ("ok", "failed", "oom", "timeout", "killed")  # killed: the kernel died (a signal, os._exit)
INTERRUPTED = "interrupted"  # stopped by Ctrl-C / SIGTERM: sealed, but never counted as finished
MANIFEST_NAME = "manifest.json"
PARTIAL_NAME = ".notebook.partial.ipynb"  # papermill writes here while the notebook runs
INPUTS_FILE = "inputs.json"
FRAMES_FILE = "frames.json"
# Files of these kinds in a run folder are searched for secrets when it is sealed.
TEXT_SUFFIXES = {".csv", ".json", ".txt", ".md", ".html", ".yaml", ".yml", ".ipynb", ".log", ".vtt", ".srt",
                 ".tsv", ".svg"}


def params_hash(notebook: str, values: dict[str, Any]) -> str:
    """Short stable hash of a notebook + parameters (run ids, sweep resume keys)."""
    payload = json.dumps({"notebook": notebook, "parameters": values}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:8]


def new_run_dir(notebook: str, values: dict[str, Any], suffix: str | None = None) -> Path:
    """A new, unique run folder: outputs/<notebook>/<YYYYmmdd-HHMMSS>-<params hash>[-suffix][-n] (mkdir is
    atomic, so two processes never get the same folder)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{params_hash(notebook, values)}" + (f"-{suffix}" if suffix else "")
    root = paths.run_root(notebook)
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        candidate = root / (base if attempt == 0 else f"{base}-{attempt}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a unique run folder under {root}")


@dataclass
class RunFolder:
    """One run folder and its manifest (`record`, kept in memory and written on every change)."""

    dir: Path
    record: dict[str, Any] = field(default_factory=dict, kw_only=True, repr=False)
    inputs: list[dict[str, Any]] = field(default_factory=list, kw_only=True, repr=False)

    # ---- create / open ----------------------------------------------------------------------------------
    @classmethod
    def create(cls, notebook: str | Path, values: dict[str, Any], *, runner: str, dir: Path | None = None,
               suffix: str | None = None, hash_inputs: bool = False, **fields: Any) -> "RunFolder":
        """Create the folder (a new unique one under outputs/<notebook>/, or `dir`) and write its manifest:
        status 'running', every parameter (the notebook's defaults where `notebook` is a notebook file, then
        `values`), code, software, hardware, the process, plus `fields` (params_file, overrides...). With
        `hash_inputs`, parameter values that name existing files are hashed into its inputs."""
        stem = Path(notebook).stem
        parameters = dict(values)
        if Path(notebook).suffix == ".ipynb":
            from workbench.params import notebook_parameters

            parameters = {name: p.default for name, p in notebook_parameters(notebook).items() if name != "run_dir"}
            parameters.update(values)
        inputs = [manifest.describe_input(p) for p in input_paths(parameters)] if hash_inputs else []
        directory = Path(dir) if dir is not None else new_run_dir(stem, values, suffix)
        directory.mkdir(parents=True, exist_ok=True)
        folder = cls(directory)
        folder.record = manifest.start_manifest(stem, parameters, directory.name, runner=runner, inputs=inputs)
        folder.record.update(fields)
        folder.write()
        return folder

    @classmethod
    def open(cls, directory: str | Path, fallback: dict[str, Any] | None = None) -> "RunFolder":
        """An existing folder with the manifest it holds (`fallback` where it has none yet)."""
        folder = cls(Path(directory))
        path = folder.dir / MANIFEST_NAME
        folder.record = json.loads(path.read_text()) if path.exists() else dict(fallback or {})
        return folder

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST_NAME

    @property
    def status(self) -> str | None:
        return self.record.get("status")

    def write(self) -> None:
        """Write the manifest (strict JSON, secrets removed)."""
        manifest.write_manifest(self.manifest_path, self.record)

    def update(self, **fields: Any) -> None:
        self.record.update(fields)
        self.write()

    # ---- what a run saves ----------------------------------------------------------------------------------
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
        """Hash an input file (or folder) into the run's record of what it read (inputs.json, merged into the
        manifest when the folder is sealed)."""
        entry = {"role": role, **manifest.describe_input(path)}
        self.inputs = [i for i in self.inputs if i["path"] != entry["path"]] + [entry]
        atomic.write_json(self.dir / INPUTS_FILE, self.inputs)
        return entry

    def record_frames(self, frames: Any, label: str = "frames") -> None:
        """Record the exact frames a step sampled (a video Clip, or records with index and timestamp_s, and
        window / window_start_s / window_end_s where windowed) into the manifest, so a run can be repeated."""
        records = frames.to_records() if hasattr(frames, "to_records") and not hasattr(frames, "columns") else (
            frames.to_dict("records") if hasattr(frames, "columns") else list(frames))
        path = self.dir / FRAMES_FILE
        known = json.loads(path.read_text()) if path.exists() else []
        known = [entry for entry in known if entry.get("source") != label] + [{"source": label, "frames": records}]
        atomic.write_json(path, known)

    # ---- the end: finish, fail, killed -------------------------------------------------------------------
    def finish(self, status: str = "ok", error: str | None = None, seconds: float | None = None) -> None:
        """Scrub, export and seal: the partial notebook becomes notebook.ipynb (with its provenance header) and
        notebook.html, every text file loses the environment's secrets, and the manifest gets the inputs, the
        weights, the frames, the outputs and how the run ended. Safe to call after a failure at any point."""
        record = self.record
        secrets = manifest.secret_values()
        partial = self.dir / PARTIAL_NAME
        notebook_text = None
        record["weights"] = weights(record.get("parameters") or {}, record.get("inputs", []))
        if partial.exists():
            from workbench import page  # provenance header cell at the top of the shared page

            notebook_text = manifest.redact(page.add_header(partial.read_text(encoding="utf-8"),
                                                            {**record, "status": status}, self.dir), secrets)
            atomic.write_text(self.dir / "notebook.ipynb", notebook_text)
            partial.unlink()
        elif (self.dir / "notebook.ipynb").exists() and not (self.dir / "notebook.html").exists():
            # an earlier seal was cut short (kill -9 between the two exports): finish it from the notebook it wrote
            notebook_text = (self.dir / "notebook.ipynb").read_text(encoding="utf-8")
        for path in sorted(self.dir.rglob("*")):  # results, figures, inputs.json, params.yaml, logs
            if path.is_file() and path.name != MANIFEST_NAME:
                _scrub_text_file(path, secrets)
        if notebook_text is not None:
            try:
                atomic.write_text(self.dir / "notebook.html", manifest.redact(export_html(notebook_text), secrets))
            except Exception as err:  # an export failure must not hide the run's own outcome
                record["html_error"] = f"{type(err).__name__}: {err}"
        recorded_inputs = self.dir / INPUTS_FILE
        if recorded_inputs.exists():
            known = {i["path"] for i in record.get("inputs", [])}
            record["inputs"] = record.get("inputs", []) + [
                i for i in json.loads(recorded_inputs.read_text()) if i["path"] not in known]
        record["frames"] = sampled_frames(self.dir)
        record.update(
            status=status,
            error=manifest.redact(error, secrets) if error else None,
            ended_at=manifest.now_iso(),
            duration_s=round(seconds, 3) if seconds is not None else None,
            outputs=_list_outputs(self.dir),
        )
        self.write()

    def fail(self, err: BaseException, seconds: float | None = None) -> tuple[str, str]:
        """Seal with the status an exception means (failed, oom, timeout, killed); returns (status, error)."""
        status, error = classify_failure(err)
        self.finish(status, error, seconds)
        return status, error

    def mark_killed(self, marked_by: str) -> None:
        """Seal a folder whose process died without finishing as 'killed'; its end time is the last file's."""
        last_seen = max((p.stat().st_mtime for p in self.dir.rglob("*") if p.is_file()), default=None)
        error = (f"the run's process (pid {self.record.get('pid')}) ended without finishing (killed or lost); "
                 f"found by {marked_by}")
        self.record.update(marked_killed_by=marked_by, marked_killed_at=manifest.now_iso())
        self.finish("killed", error, None)
        if last_seen is not None:  # the end is not known: the last file written is the best estimate
            self.update(ended_at=datetime.fromtimestamp(last_seen).astimezone().isoformat(timespec="milliseconds"))


def finish_run(run_dir: Path, record: dict[str, Any], status: str, error: str | None,
               seconds: float | None) -> None:
    """Seal a run folder whose manifest is `record` (RunFolder.finish)."""
    RunFolder(Path(run_dir), record=record).finish(status, error, seconds)


def process_alive(pid: int | None, started: float | None = None, host: str | None = None) -> bool | None:
    """Whether the process that wrote a manifest still runs: False if gone (or its pid was reused by a
    process started later), None when it cannot be told (another host, no pid recorded)."""
    import socket

    import psutil

    if not pid or (host and host != socket.gethostname()):
        return None
    try:
        process = psutil.Process(int(pid))
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(process.create_time() - float(started)) < 1.0
    except psutil.Error:
        return False


def mark_dead_runs(root: Path, marked_by: str = "workbench") -> list[Path]:
    """Seal every run folder under `root` whose manifest says 'running' but whose process is gone (kill -9,
    a lost machine): status 'killed', and the partial notebook exported, redacted, as notebook.ipynb/html.
    Returns the folders sealed. Safe to call while other runs are alive: their processes are checked."""
    sealed = []
    for manifest_path in sorted(Path(root).glob(f"*/{MANIFEST_NAME}")) if Path(root).exists() else []:
        try:
            folder = RunFolder.open(manifest_path.parent)
        except (OSError, ValueError):
            continue
        record = folder.record
        if record.get("status") != "running":
            continue
        if process_alive(record.get("pid"), record.get("pid_started"), record.get("host")) is not False:
            continue
        folder.mark_killed(marked_by)
        sealed.append(folder.dir)
    return sealed


def classify_failure(err: BaseException) -> tuple[str, str]:
    """Map an execution exception to (status, message)."""
    name = type(err).__name__
    ename = getattr(err, "ename", name)
    evalue = str(getattr(err, "evalue", err))
    message = f"{ename}: {evalue}".strip()
    if name == "CellTimeoutError" or "timed out" in evalue.lower() and "cell" in evalue.lower():
        return "timeout", message
    if "OutOfMemoryError" in ename or "out of memory" in evalue.lower():
        return "oom", message
    if name == "DeadKernelError":
        return "killed", f"DeadKernelError: the kernel died ({evalue})"
    if name == "PapermillExecutionError":
        cell = getattr(err, "exec_count", None)
        return "failed", f"cell {cell}: {message}"
    return "failed", message


def weights(parameters: dict[str, Any], inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The revision of every model's weights a run named (model / models + source)."""
    models = [parameters["model"]] if isinstance(parameters.get("model"), str) else []
    models += [m for m in parameters.get("models") or [] if isinstance(m, str)]
    source = parameters.get("source")
    if not models or not isinstance(source, str):
        return []
    from workbench.weights import weights_revision

    return [weights_revision(model, source, inputs) for model in models]


def sampled_frames(run_dir: Path) -> list[dict[str, Any]]:
    """Every sampled frame a run recorded (RunFolder.record_frames), plus any results table with `index` and
    `timestamp_s` columns (00's sampled_frames): frame index, timestamp and window, per table."""
    import csv

    found: list[dict[str, Any]] = []
    recorded = run_dir / FRAMES_FILE
    if recorded.exists():
        found += json.loads(recorded.read_text())
    for table in sorted((run_dir / "results").glob("*.csv")) if (run_dir / "results").exists() else []:
        with open(table, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = set(reader.fieldnames or [])
            wanted = {"index", "timestamp_s"} <= columns or {"window", "start_s", "end_s", "frame_times_s"} <= columns
            rows = list(reader) if wanted else []  # other tables: the header is enough
        if rows and {"index", "timestamp_s"} <= set(rows[0]):
            found.append({"source": f"results/{table.name}", "frames": [
                {key: _number(row[key]) for key in ("index", "timestamp_s", "window", "window_start_s",
                                                   "window_end_s") if row.get(key) not in (None, "")}
                for row in rows]})
        elif rows and {"window", "start_s", "end_s", "frame_times_s"} <= set(rows[0]):  # 04's timeline
            found.append({"source": f"results/{table.name}", "windows": [
                {**({"video": row["video"]} if "video" in row else {}),
                 "window": _number(row["window"]), "start_s": _number(row["start_s"]),
                 "end_s": _number(row["end_s"]),
                 **({"indices": [int(i) for i in row["frame_indices"].split(";") if i]}
                    if row.get("frame_indices") is not None else {}),
                 "timestamps_s": [_number(t) for t in row["frame_times_s"].split(";") if t]}
                for row in rows]})
    return found


def _number(text: str) -> int | float | str:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def export_html(notebook_text: str) -> str:
    """The executed notebook as a standalone HTML page (images embedded)."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.reads(notebook_text, as_version=4))
    return body


def _scrub_text_file(path: Path, secrets: list[str]) -> None:
    if not secrets or path.suffix not in TEXT_SUFFIXES:
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    clean = manifest.redact(text, secrets)
    if clean != text:
        atomic.write_text(path, clean)


def _list_outputs(run_dir: Path) -> list[dict[str, Any]]:
    files = []
    for folder in ("results", "figures"):
        for path in sorted((run_dir / folder).glob("*")) if (run_dir / folder).exists() else []:
            if path.is_file() and not path.name.startswith("."):
                files.append({"path": f"{folder}/{path.name}", "bytes": path.stat().st_size,
                              "sha256": manifest.sha256_file(path)})
    return files


def input_paths(values: dict[str, Any]) -> list[Path]:
    """Parameter values that name existing files or folders (hashed into the manifest at the start)."""
    found: list[Path] = []
    for value in values.values():
        for item in value if isinstance(value, list) else [value]:
            looks_like_path = isinstance(item, str) and (os.sep in item or Path(item).suffix != "")
            if looks_like_path and Path(item).exists() and Path(item).resolve() not in found:
                found.append(Path(item).resolve())
    return found
