"""Run a notebook headless with papermill into its own run folder.

The run folder (outputs/<notebook>/<run-id>/: notebook.ipynb/html, manifest.json, results/, figures/) is created,
recorded and sealed by `workbench.run_folder.RunFolder`; this module validates the parameters before any kernel
starts, executes the notebook, and stops it and everything it started on Ctrl-C / SIGTERM or a timeout.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from workbench import manifest, paths
from workbench.params import ParameterError, load_yaml, notebook_parameters, validate
from workbench.run_folder import (  # noqa: F401  (the run folder's names, as callers have imported them from here)
    FRAMES_FILE,
    INTERRUPTED,
    PARTIAL_NAME,
    STATUSES,
    TEXT_SUFFIXES,
    RunFolder,
    classify_failure,
    export_html,
    finish_run,
    mark_dead_runs,
    new_run_dir,
    params_hash,
    process_alive,
    sampled_frames,
)
from workbench.run_folder import weights as _weights  # noqa: F401

EXIT_INTERRUPTED = 130
@dataclass
class RunResult:
    dir: Path
    status: str
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


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
                 *, cell_timeout_s: float | None = None, time_limit_s: float | None = None,
                 kernel_name: str = "python3", run_dir: Path | None = None, cwd: str | Path | None = None,
                 progress: bool = False) -> RunResult:
    """Execute `notebook` into a run folder; never raises for a failing notebook (see the status).

    Ctrl-C or SIGTERM kills the kernel and everything it started and seals the folder as 'interrupted'.
    `cell_timeout_s`: seconds per cell (papermill's); `time_limit_s`: seconds for the whole run, after which the
    kernel's Python stacks are saved and it is killed (`workbench.watchdog`); either ends the run as 'timeout'.
    `cwd`: the kernel's working directory (default the repository); `progress`: papermill's per-cell progress
    line on stderr.
    """
    nb_path, values = resolve_parameters(notebook, params_file, overrides)
    if time_limit_s is not None and (isinstance(time_limit_s, bool) or not isinstance(time_limit_s, (int, float))
                                     or not time_limit_s > 0):
        raise ParameterError(f"time limit must be a number of seconds > 0, got {time_limit_s!r}")
    with interruptible():
        return _run(nb_path, values, params_file, cell_timeout_s, kernel_name, run_dir, cwd, progress,
                    time_limit_s)


def _run(nb_path: Path, values: dict[str, Any], params_file: str | None, cell_timeout_s: float | None,
         kernel_name: str, run_dir: Path | None, cwd: str | Path | None = None,
         progress: bool = False, time_limit_s: float | None = None) -> RunResult:
    import papermill

    from workbench.watchdog import Watchdog

    stem = nb_path.stem
    mark_dead_runs(paths.run_root(stem))
    folder = RunFolder.create(nb_path, values, runner="workbench run", dir=run_dir, hash_inputs=True,
                              params_file=str(params_file) if params_file else None, overrides=values,
                              notebook_path=_repo_relative(nb_path))
    run_dir = folder.dir

    partial = run_dir / PARTIAL_NAME
    kernel_cwd = Path(cwd).resolve() if cwd else paths.REPO_ROOT
    status, error = "ok", None
    started = time.perf_counter()
    before = {(p.pid, p.create_time()) for p in descendants()}
    watchdog = (Watchdog(time_limit_s, run_dir, children=lambda: _new_children(before),
                         kill=lambda pid: kill_tree(pid, include_root=True)) if time_limit_s else None)
    try:
        if STOP.is_set():
            raise InterruptedError(stop_reason())
        if watchdog:
            watchdog.start()
        papermill.execute_notebook(
            str(nb_path), str(partial), parameters={**values, "run_dir": paths.portable_run_dir(run_dir)},
            kernel_name=kernel_name, cwd=str(kernel_cwd), progress_bar=progress,
            execution_timeout=cell_timeout_s, request_save_on_cell_execute=True,
            **({"extra_arguments": watchdog.kernel_arguments()} if watchdog else {}),
        )
    except Exception as err:  # the run's outcome is recorded, whatever it was
        status, error = classify_failure(err)
    finally:
        if watchdog:
            watchdog.stop()
        _kill_new_children(before)  # nothing the kernel started outlives the run (probes, their children)
        _remove_temp_folders()
    if watchdog and watchdog.fired:
        status, error = "timeout", watchdog.error
    if STOP.is_set():
        status, error = INTERRUPTED, stop_reason()
    folder.finish(status, error, time.perf_counter() - started)
    return RunResult(run_dir, status, error)


def _new_children(before: set[tuple[int, float]]) -> list[Any]:
    """This process's descendants that were not there `before` (pid, start time): what the run started."""
    import psutil

    found = []
    for process in descendants():
        try:
            if (process.pid, process.create_time()) not in before:
                found.append(process)
        except psutil.Error:
            pass
    return found


def _kill_new_children(before: set[tuple[int, float]]) -> None:
    """Kill what this run started (its kernel's leftovers) and not what the calling process had before."""
    for process in _new_children(before):
        kill_tree(process.pid, include_root=True)


def _remove_temp_folders() -> None:
    try:
        from workbench.memory.probe import remove_stale_temp_folders

        remove_stale_temp_folders()
    except ImportError:  # pragma: no cover
        pass


def _repo_relative(path: Path) -> str:
    resolved = Path(path).resolve()
    return str(resolved.relative_to(paths.REPO_ROOT)) if resolved.is_relative_to(paths.REPO_ROOT) else str(resolved)


def rerun(run_dir: str | Path, *, cell_timeout_s: float | None = None,
          time_limit_s: float | None = None) -> RunResult:
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
    result = run_notebook(notebook, overrides=parameters, cell_timeout_s=cell_timeout_s, time_limit_s=time_limit_s)
    RunFolder.open(result.dir).update(rerun_of={"run_dir": str(run_dir), "run_id": record.get("run_id"),
                                                "git": record.get("git"), "weights": record.get("weights")})
    return result


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
