"""Run a notebook headless with papermill into its own run folder.

outputs/<notebook>/<run-id>/
    notebook.ipynb   the executed notebook (partial, with the error, when a cell failed)
    notebook.html    the same, for sharing
    manifest.json    what ran, on what, with which inputs, when and how it ended
    results/*.csv|json, figures/*.png   written by the notebook through workbench.context

Parameters are validated before any kernel starts. Every file is written atomically, and secrets
from the environment are removed from everything the run leaves behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from workbench import atomic, manifest, paths
from workbench.params import ParameterError, load_yaml, notebook_parameters, validate

STATUSES = ("ok", "failed", "oom", "timeout", "killed")  # killed: the kernel died (a signal, os._exit)
INTERRUPTED = "interrupted"  # stopped by Ctrl-C / SIGTERM: sealed, but never counted as finished
EXIT_INTERRUPTED = 130
PARTIAL_NAME = ".notebook.partial.ipynb"
# Files of these kinds in a run folder are searched for secrets when it is sealed.
TEXT_SUFFIXES = {".csv", ".json", ".txt", ".md", ".html", ".yaml", ".yml", ".ipynb", ".log", ".vtt", ".srt",
                 ".tsv", ".svg"}


@dataclass
class RunResult:
    dir: Path
    status: str
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def params_hash(notebook: str, values: dict[str, Any]) -> str:
    """Short stable hash of a notebook + parameters (run ids, sweep resume keys)."""
    payload = json.dumps({"notebook": notebook, "parameters": values}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:8]


def new_run_dir(notebook: str, values: dict[str, Any], suffix: str | None = None) -> Path:
    """A new, unique run folder: outputs/<notebook>/<YYYYmmdd-HHMMSS>-<params hash>[-suffix][-n]."""
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


def resolve_parameters(notebook: str, params_file: str | None = None,
                       overrides: dict[str, Any] | None = None) -> tuple[Path, dict[str, Any]]:
    """Notebook path and the merged, validated parameter values (file, then overrides)."""
    nb_path = paths.notebook_path(notebook)
    values: dict[str, Any] = {}
    if params_file:
        values.update(load_yaml(paths.params_path(params_file)))
    values.update(overrides or {})
    declared = notebook_parameters(nb_path)
    if "run_dir" in values:
        raise ParameterError(f"{nb_path.stem}: run_dir is set by the runner; do not pass it")
    validate(declared, values, nb_path.stem)
    _refuse_secret_values(values, nb_path.stem)
    _check_model_ids(values, nb_path.stem)
    return nb_path, values


# ---- stopping: Ctrl-C / SIGTERM, and every child dying with its run --------------------------------------

STOP = threading.Event()  # set by the first SIGINT/SIGTERM: start nothing new, stop what runs
_stop_signal: list[str] = []


def descendants(pid: int | None = None) -> list[Any]:
    """Every live process below `pid` (default: this one): run processes, kernels, probe processes."""
    import psutil

    try:
        return psutil.Process(pid or os.getpid()).children(recursive=True)
    except psutil.Error:
        return []


def kill_tree(pid: int | None = None, include_root: bool = False, wait_s: float = 5.0) -> list[int]:
    """SIGKILL every process below `pid` (and `pid` itself if asked), children listed before anything
    dies so that none escapes by being re-parented; waits for them to go. Returns the pids signalled."""
    import psutil

    targets = descendants(pid)
    if include_root and pid:
        try:
            targets.insert(0, psutil.Process(pid))
        except psutil.Error:
            pass
    for process in targets:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(targets, timeout=wait_s)
    return [p.pid for p in targets]


def _on_signal(signum: int, _frame: Any) -> None:
    name = signal.Signals(signum).name
    if STOP.is_set():  # the second Ctrl-C: no more waiting
        kill_tree()
        os._exit(EXIT_INTERRUPTED)
    STOP.set()
    _stop_signal.append(name)
    print(f"\n{name}: stopping (what finished is kept; the running run is stopped and sealed as "
          f"'{INTERRUPTED}'). Press Ctrl-C again to kill at once.", file=sys.stderr, flush=True)
    kill_tree()


@contextmanager
def interruptible() -> Iterator[threading.Event]:
    """While inside: SIGINT and SIGTERM set STOP and kill this process's children (kernels, run
    processes, probes) instead of raising somewhere inside papermill; a second signal exits at once (130).
    Only the main thread can take signals; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield STOP
        return
    STOP.clear()
    _stop_signal.clear()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, _on_signal)
    try:
        yield STOP
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stop_reason() -> str:
    return f"interrupted by {_stop_signal[0] if _stop_signal else 'a signal'} before it finished"


def run_notebook(notebook: str, params_file: str | None = None, overrides: dict[str, Any] | None = None,
                 *, cell_timeout_s: float | None = None, kernel_name: str = "python3",
                 run_dir: Path | None = None, cwd: str | Path | None = None, progress: bool = False) -> RunResult:
    """Execute `notebook` into a run folder; never raises for a failing notebook (see the status).

    Ctrl-C or SIGTERM kills the kernel and everything it started and seals the folder as 'interrupted'.
    `cwd`: the kernel's working directory (default the repository); `progress`: papermill's per-cell progress
    line on stderr.
    """
    nb_path, values = resolve_parameters(notebook, params_file, overrides)
    with interruptible():
        return _run(nb_path, values, params_file, cell_timeout_s, kernel_name, run_dir, cwd, progress)


def _run(nb_path: Path, values: dict[str, Any], params_file: str | None, cell_timeout_s: float | None,
         kernel_name: str, run_dir: Path | None, cwd: str | Path | None = None,
         progress: bool = False) -> RunResult:
    import papermill

    stem = nb_path.stem
    mark_dead_runs(paths.run_root(stem))
    run_dir = run_dir or new_run_dir(stem, values)
    run_dir.mkdir(parents=True, exist_ok=True)
    effective = {name: p.default for name, p in notebook_parameters(nb_path).items() if name != "run_dir"}
    effective.update(values)
    inputs = [manifest.describe_input(p) for p in _input_paths(effective)]
    record = manifest.start_manifest(stem, effective, run_dir.name, runner="workbench run", inputs=inputs)
    record.update(params_file=str(params_file) if params_file else None, overrides=values,
                  notebook_path=_repo_relative(nb_path))
    manifest.write_manifest(run_dir / "manifest.json", record)

    partial = run_dir / PARTIAL_NAME
    kernel_cwd = Path(cwd).resolve() if cwd else paths.REPO_ROOT  # run_dir is passed relative to it
    status, error = "ok", None
    started = time.perf_counter()
    before = {(p.pid, p.create_time()) for p in descendants()}
    try:
        if STOP.is_set():
            raise InterruptedError(stop_reason())
        papermill.execute_notebook(
            str(nb_path), str(partial), parameters={**values, "run_dir": os.path.relpath(run_dir, kernel_cwd)},
            kernel_name=kernel_name, cwd=str(kernel_cwd), progress_bar=progress,
            execution_timeout=cell_timeout_s, request_save_on_cell_execute=True,
        )
    except Exception as err:  # the run's outcome is recorded, whatever it was
        status, error = classify_failure(err)
    finally:
        _kill_new_children(before)  # nothing the kernel started outlives the run (probes, their children)
        _remove_temp_folders()
    if STOP.is_set():
        status, error = INTERRUPTED, stop_reason()
    finish_run(run_dir, record, status, error, time.perf_counter() - started)
    return RunResult(run_dir, status, error)


def _kill_new_children(before: set[tuple[int, float]]) -> None:
    """Kill what this run started (its kernel's leftovers) and not what the calling process had before."""
    import psutil

    for process in descendants():
        try:
            if (process.pid, process.create_time()) not in before:
                kill_tree(process.pid, include_root=True)
        except psutil.Error:
            pass


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
    for manifest_path in sorted(Path(root).glob("*/manifest.json")) if Path(root).exists() else []:
        try:
            record = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("status") != "running":
            continue
        if process_alive(record.get("pid"), record.get("pid_started"), record.get("host")) is not False:
            continue
        run_dir = manifest_path.parent
        last_seen = max((p.stat().st_mtime for p in run_dir.rglob("*") if p.is_file()), default=None)
        error = (f"the run's process (pid {record.get('pid')}) ended without finishing (killed or lost); "
                 f"found by {marked_by}")
        record.update(marked_killed_by=marked_by, marked_killed_at=manifest.now_iso())
        finish_run(run_dir, record, "killed", error, None)
        if last_seen is not None:  # the end is not known: the last file written is the best estimate
            record = json.loads(manifest_path.read_text())
            record["ended_at"] = datetime.fromtimestamp(last_seen).astimezone().isoformat(timespec="milliseconds")
            manifest.write_manifest(manifest_path, record)
        sealed.append(run_dir)
    return sealed


def _remove_temp_folders() -> None:
    try:
        from workbench.memory.probe import remove_stale_temp_folders

        remove_stale_temp_folders()
    except ImportError:  # pragma: no cover
        pass


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


def finish_run(run_dir: Path, record: dict[str, Any], status: str, error: str | None,
               seconds: float | None) -> None:
    """Scrub, export and seal a run folder; safe to call after a failure at any point."""
    secrets = manifest.secret_values()
    partial = run_dir / PARTIAL_NAME
    notebook_text = None
    record["weights"] = _weights(record.get("parameters") or {}, record.get("inputs", []))
    if partial.exists():
        from workbench import page  # provenance header cell at the top of the shared page

        notebook_text = manifest.redact(page.add_header(partial.read_text(encoding="utf-8"),
                                                        {**record, "status": status}, run_dir), secrets)
        atomic.write_text(run_dir / "notebook.ipynb", notebook_text)
        partial.unlink()
    for path in sorted(run_dir.rglob("*")):  # results, figures, inputs.json, params.yaml, logs
        if path.is_file() and path.name != "manifest.json":
            _scrub_text_file(path, secrets)
    if notebook_text is not None:
        try:
            atomic.write_text(run_dir / "notebook.html", manifest.redact(export_html(notebook_text), secrets))
        except Exception as err:  # an export failure must not hide the run's own outcome
            record["html_error"] = f"{type(err).__name__}: {err}"
    context_inputs = run_dir / "inputs.json"
    if context_inputs.exists():
        known = {i["path"] for i in record.get("inputs", [])}
        record["inputs"] = record.get("inputs", []) + [
            i for i in json.loads(context_inputs.read_text()) if i["path"] not in known]
    record["frames"] = sampled_frames(run_dir)
    record.update(
        status=status,
        error=manifest.redact(error, secrets) if error else None,
        ended_at=manifest.now_iso(),
        duration_s=round(seconds, 3) if seconds is not None else None,
        outputs=_list_outputs(run_dir),
    )
    manifest.write_manifest(run_dir / "manifest.json", record)


def _weights(parameters: dict[str, Any], inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The revision of every model's weights a run named (model / models + source)."""
    models = [parameters["model"]] if isinstance(parameters.get("model"), str) else []
    models += [m for m in parameters.get("models") or [] if isinstance(m, str)]
    source = parameters.get("source")
    if not models or not isinstance(source, str):
        return []
    from workbench.weights import weights_revision

    return [weights_revision(model, source, inputs) for model in models]


FRAMES_FILE = "frames.json"


def sampled_frames(run_dir: Path) -> list[dict[str, Any]]:
    """Every sampled frame a run recorded (Run.record_frames), plus any results table with `index` and
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


def _repo_relative(path: Path) -> str:
    resolved = Path(path).resolve()
    return str(resolved.relative_to(paths.REPO_ROOT)) if resolved.is_relative_to(paths.REPO_ROOT) else str(resolved)


def rerun(run_dir: str | Path, *, cell_timeout_s: float | None = None) -> RunResult:
    """Run a run folder's notebook again with exactly the parameters its manifest recorded (all of them,
    defaults included, so a changed default does not change the repeat) into a new run folder."""
    run_dir = Path(run_dir)
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{run_dir}: no manifest.json, so this is not a run folder")
    record = json.loads(manifest_path.read_text())
    notebook = record.get("notebook_path") or record["notebook"]
    if not Path(notebook).is_absolute() and (paths.REPO_ROOT / notebook).exists():
        notebook = str(paths.REPO_ROOT / notebook)
    parameters = dict(record.get("parameters") or {})
    hidden = sorted(k for k, v in parameters.items() if manifest.REDACTED in json.dumps(v))
    if hidden:
        raise ParameterError(f"{run_dir}: parameters {hidden} held a secret and were redacted in the manifest; "
                             f"run the notebook with -f/-p instead, passing them again")
    result = run_notebook(notebook, overrides=parameters, cell_timeout_s=cell_timeout_s)
    new = json.loads((result.dir / "manifest.json").read_text())
    new["rerun_of"] = {"run_dir": str(run_dir), "run_id": record.get("run_id"), "git": record.get("git"),
                       "weights": record.get("weights")}
    manifest.write_manifest(result.dir / "manifest.json", new)
    return result


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


def _input_paths(values: dict[str, Any]) -> list[Path]:
    """Parameter values that name existing files or folders (hashed into the manifest)."""
    found: list[Path] = []
    for value in values.values():
        for item in value if isinstance(value, list) else [value]:
            looks_like_path = isinstance(item, str) and (os.sep in item or Path(item).suffix != "")
            if looks_like_path and Path(item).exists() and Path(item).resolve() not in found:
                found.append(Path(item).resolve())
    return found


def _refuse_secret_values(values: dict[str, Any], notebook: str) -> None:
    secrets = set(manifest.secret_values())
    for name, value in values.items():
        if isinstance(value, str) and value in secrets:
            raise ParameterError(
                f"{notebook}: parameter {name!r} holds the value of a secret environment variable; "
                f"parameters are written into the executed notebook, so pass secrets through the environment"
            )


def _check_model_ids(values: dict[str, Any], notebook: str) -> None:
    """`model` / `models` parameters must name registry models: fail before the kernel, listing valid ids."""
    from workbench.models.registry import resolve

    names = [values["model"]] if isinstance(values.get("model"), str) else []
    names += [m for m in values.get("models", []) if isinstance(m, str)]
    for name in names:
        try:
            resolve(name)
        except KeyError as err:
            raise ParameterError(f"{notebook}: {err}") from err
