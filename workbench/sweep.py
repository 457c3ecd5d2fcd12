"""Parameter sweeps over a notebook: expand a grid, validate every run, run each in its own kernel, resume.

A sweep file (YAML, in params/) names a notebook, base parameters, and a `grid` (cartesian product) and/or
`zip` (lists walked together):

    notebook: 02_memory_probe
    name: memory_grid            # folder under outputs/sweeps/ (default: the file's stem)
    base: {model: qwen2-vl-2b, source: tiny}
    base_file: params/02_memory_probe.smoke.yaml   # optional: base parameters from a params file
    grid: {quantizations: [[none], [8bit]], attn_implementations: [[eager], [sdpa]]}
    zip: {frame_counts: [[4], [8]], frame_sizes: [["280x280"], ["140x140"]]}
    timeout_s: 900               # per run (wall clock): the kernel's stacks saved (stacks.txt), the run killed, timeout
    workers: 2                   # local executor on CPU (a GPU machine runs one at a time)
    gpus_per_run: 0              # Ray: the GPU request of each task

Each run is identified by a hash of the notebook, its parameters and the code version (the notebook file
and every workbench source file), so a restarted sweep skips finished runs and a code change reruns them.
Layout under outputs/sweeps/<name>/:

    runs/<key>-a<attempt>/   each attempt's run folder (a new folder per attempt: a run killed with the
                             sweep can never write into its successor's folder)
    records/<key>.json       one record per run, written atomically when the run ends: the only truth
                             about what finished (status ok / failed / oom / timeout / killed)
    runs.csv, runs.parquet   every run's parameters, status, duration and folder
    results/<table>.csv|parquet  each results table of every finished run, with the run's parameters
    index.html               links to every run's executed notebook (HTML), for sharing
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from workbench import atomic, paths
from workbench import manifest as manifest_module
from workbench.params import ParameterError, load_yaml
from workbench.run_folder import INTERRUPTED, RunFolder, mark_dead_runs
from workbench.run_folder import STATUSES as FINAL_STATUSES

SWEEP_KEYS = {"notebook", "name", "base", "base_file", "grid", "zip", "timeout_s", "workers", "gpus_per_run",
              "cpus_per_run", "description"}


class SweepError(ValueError):
    """A sweep file that cannot run; the message names the file and the problem."""


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: its notebook, parameters (base + grid point) and resume key."""

    notebook: str
    parameters: dict[str, Any]
    key: str
    point: dict[str, Any]  # the grid / zip values that vary across the sweep


@dataclass
class Sweep:
    path: Path
    name: str
    notebook: str
    runs: list[RunSpec]
    timeout_s: float | None
    workers: int | None
    gpus_per_run: float
    cpus_per_run: float
    code_version: str
    varying: list[str] = field(default_factory=list)

    @property
    def dir(self) -> Path:
        return paths.outputs_dir() / "sweeps" / self.name


# ---- expansion and validation (pure, no kernels) -----------------------------------------------------

def expand_points(grid: dict[str, list[Any]] | None, zipped: dict[str, list[Any]] | None,
                  source: str = "sweep") -> list[dict[str, Any]]:
    """Grid points: the cartesian product of `grid` times the rows of `zip` (lists of equal length).

    >>> expand_points({"a": [1, 2], "b": ["x", "y"]}, None)
    [{'a': 1, 'b': 'x'}, {'a': 1, 'b': 'y'}, {'a': 2, 'b': 'x'}, {'a': 2, 'b': 'y'}]
    >>> expand_points({"a": [1, 2]}, {"c": [10, 20], "d": [True, False]})  # doctest: +NORMALIZE_WHITESPACE
    [{'a': 1, 'c': 10, 'd': True}, {'a': 1, 'c': 20, 'd': False},
     {'a': 2, 'c': 10, 'd': True}, {'a': 2, 'c': 20, 'd': False}]
    """
    grid, zipped = grid or {}, zipped or {}
    for label, table in (("grid", grid), ("zip", zipped)):
        if not isinstance(table, dict):
            raise SweepError(f"{source}: '{label}' must be a mapping of parameter -> list of values")
        for name, values in table.items():
            if not isinstance(values, list) or not values:
                raise SweepError(f"{source}: {label}.{name} must be a non-empty list, got {values!r}")
    overlap = set(grid) & set(zipped)
    if overlap:
        raise SweepError(f"{source}: {sorted(overlap)} appear in both grid and zip")
    lengths = {name: len(values) for name, values in zipped.items()}
    if len(set(lengths.values())) > 1:
        raise SweepError(f"{source}: zip lists must have equal lengths, got {lengths}")
    zip_rows = [dict(zip(zipped, row)) for row in zip(*zipped.values())] if zipped else [{}]
    grid_rows = [dict(zip(grid, row)) for row in itertools.product(*grid.values())] if grid else [{}]
    return [{**g, **z} for g in grid_rows for z in zip_rows]


def code_version(notebook_path: Path) -> str:
    """Hash of the notebook file and every workbench source file: what a run's results depend on."""
    digest = hashlib.sha256()
    files = [notebook_path, *sorted((paths.REPO_ROOT / "workbench").rglob("*.py"))]
    for path in files:
        inside = path.resolve().is_relative_to(paths.REPO_ROOT)
        digest.update(str(path.resolve().relative_to(paths.REPO_ROOT) if inside else path.name).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def run_key(notebook: str, parameters: dict[str, Any], version: str) -> str:
    """Resume key of a run.

    >>> run_key("nb", {"a": 1, "b": [2]}, "v1") == run_key("nb", {"b": [2], "a": 1}, "v1")
    True
    >>> run_key("nb", {"a": 1}, "v1") == run_key("nb", {"a": 1}, "v2")
    False
    """
    payload = json.dumps({"notebook": notebook, "parameters": parameters, "code": version},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def load_sweep(path: str | Path) -> Sweep:
    """Read, expand and validate a sweep file: every run's parameters are checked before any starts."""
    from workbench.runner import resolve_parameters

    path = paths.params_path(str(path)) if not Path(path).exists() else Path(path)
    spec = load_yaml(path)
    source = str(path)
    unknown = set(spec) - SWEEP_KEYS
    if unknown:
        raise SweepError(f"{source}: unknown keys {sorted(unknown)}; valid keys: {sorted(SWEEP_KEYS)}")
    notebook = spec.get("notebook")
    if not isinstance(notebook, str):
        raise SweepError(f"{source}: 'notebook' (a notebook name such as 02_memory_probe) is required")
    base = dict(load_yaml(paths.params_path(spec["base_file"]))) if spec.get("base_file") else {}
    if not isinstance(spec.get("base", {}), dict):
        raise SweepError(f"{source}: 'base' must be a mapping of parameter -> value")
    base.update(spec.get("base") or {})
    points = expand_points(spec.get("grid"), spec.get("zip"), source)
    nb_path = paths.notebook_path(notebook)
    version = code_version(nb_path)
    runs, seen = [], set()
    for index, point in enumerate(points):
        parameters = {**base, **point}
        try:
            resolve_parameters(notebook, overrides=parameters)
        except ParameterError as err:
            raise SweepError(f"{source}: run {index} ({point}): {err}") from err
        key = run_key(nb_path.stem, parameters, version)
        if key in seen:
            raise SweepError(f"{source}: run {index} ({point}) repeats an earlier run")
        seen.add(key)
        runs.append(RunSpec(str(nb_path), parameters, key, point))
    for name in ("timeout_s", "workers", "gpus_per_run", "cpus_per_run"):
        value = spec.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise SweepError(f"{source}: {name} must be a non-negative number, got {value!r}")
    return Sweep(
        path=path, name=str(spec.get("name") or path.name.removesuffix(".yaml")), notebook=nb_path.stem,
        runs=runs, timeout_s=spec.get("timeout_s"), workers=spec.get("workers"),
        gpus_per_run=float(spec.get("gpus_per_run") or 0), cpus_per_run=float(spec.get("cpus_per_run") or 1),
        code_version=version, varying=sorted({k for p in points for k in p}),
    )


# ---- one run, in its own process -----------------------------------------------------------------------

def read_record(sweep_dir: Path, key: str) -> dict[str, Any] | None:
    path = sweep_dir / "records" / f"{key}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the sweep process dies (Linux), so no run outlives its sweep."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    os.setsid()  # own process group: a timeout kills the run's kernel with it


def new_attempt_dir(sweep_dir: Path, key: str) -> tuple[int, Path]:
    """The next attempt's folder runs/<key>-a<n>, created here: mkdir is atomic, so two callers can never
    get the same attempt number (one of them moves on to the next)."""
    runs = sweep_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name.rsplit("-a", 1)[1]) for p in runs.glob(f"{key}-a*") if p.name.rsplit("-a", 1)[1].isdigit()]
    attempt = max(numbers, default=0) + 1
    while True:
        try:
            (runs / f"{key}-a{attempt}").mkdir()
            return attempt, runs / f"{key}-a{attempt}"
        except FileExistsError:
            attempt += 1


# Seconds past a run's time limit its process gets to stop its kernel, save the stacks and seal its folder
# before the sweep kills it.
_SEAL_GRACE_S = 60.0


def execute(run: RunSpec, sweep_dir: str | Path, timeout_s: float | None = None) -> dict[str, Any] | None:
    """Run one sweep run in a fresh `python -m workbench.sweep _worker` process and write its record.

    The record is written last and atomically; a run without a record did not finish (its folder is kept
    under its attempt number and the run is redone on resume). Returns None, writing no record, when the
    sweep is being stopped (Ctrl-C / SIGTERM): the run is not started, or its folder is sealed 'interrupted'.
    """
    from workbench.memory.probe import remove_stale_temp_folders
    from workbench.runner import STOP, kill_tree, stop_reason

    if STOP.is_set():
        return None
    sweep_dir = Path(sweep_dir)
    attempt, run_dir = new_attempt_dir(sweep_dir, run.key)
    # the parameters go through stdin, not argv: a prompt holding a token is not shown to `ps`
    payload = json.dumps({"notebook": run.notebook, "parameters": run.parameters, "run_dir": str(run_dir),
                          "time_limit_s": timeout_s})
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "workbench.sweep", "_worker"], stdin=subprocess.PIPE,
                               cwd=str(paths.REPO_ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               preexec_fn=_die_with_parent)
    status = error = None
    if STOP.is_set():  # the signal came while this run was being started
        kill_tree(process.pid, include_root=True)
    try:
        # the run process stops its own kernel at the limit, saving its stacks (workbench.watchdog); this kill
        # is for a run process that cannot
        output, _ = process.communicate(payload.encode(),
                                        timeout=None if timeout_s is None else timeout_s + _SEAL_GRACE_S)
    except subprocess.TimeoutExpired:
        kill_tree(process.pid, include_root=True)  # the worker, its kernel (own session) and the kernel's probes
        output, _ = process.communicate()
        status, error = "timeout", f"the run passed its time limit of {timeout_s} s and was killed"
    seconds = time.perf_counter() - started
    kill_tree(process.pid, include_root=False)  # anything left below a worker that ended
    remove_stale_temp_folders()  # those of a killed worker's kernel and probes
    folder = RunFolder.open(run_dir, fallback={"notebook": run.notebook, "parameters": run.parameters, "inputs": []})
    manifest = folder.record if folder.manifest_path.exists() else {}
    if STOP.is_set() and status is None and manifest.get("status") in (None, "running", INTERRUPTED):
        status, error = INTERRUPTED, stop_reason()
    if status is None:
        status, error = manifest.get("status"), manifest.get("error")
        if status not in FINAL_STATUSES and status != INTERRUPTED:
            code = process.returncode
            status = "killed"
            error = (f"the run process ended with {'signal ' + str(-code) if code < 0 else 'exit code ' + str(code)}"
                     f" before finishing: {manifest_module.redact(output.decode(errors='replace')[-500:])}")
    if manifest.get("status") != status:  # seal the run folder with the outcome the sweep saw
        folder.finish(status, error, seconds)
    if status == INTERRUPTED:
        return None
    record = {
        "key": run.key, "notebook": run.notebook, "parameters": run.parameters, "point": run.point,
        "status": status, "error": error, "seconds": round(seconds, 3), "attempt": attempt,
        "run_dir": str(run_dir.relative_to(sweep_dir)), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    record = manifest_module.redact_value(record)  # a token in a prompt stays out of every sweep file
    manifest_module.write_manifest(sweep_dir / "records" / f"{run.key}.json", record)
    return record


def _worker(payload: str) -> int:
    """Inside the run process: execute the notebook into the given folder (the runner never raises)."""
    from workbench.runner import run_notebook

    args = json.loads(payload)
    result = run_notebook(args["notebook"], overrides=args["parameters"], run_dir=Path(args["run_dir"]),
                          time_limit_s=args.get("time_limit_s"))
    return 130 if result.status == INTERRUPTED else 0 if result.ok else 1


# ---- the sweep ------------------------------------------------------------------------------------------

def default_workers() -> int:
    """One run at a time on a GPU (runs would share its memory); half the cores (at least 1) on CPU."""
    try:
        import torch

        if torch.cuda.is_available():
            return 1
    except ImportError:
        pass
    return max(1, (os.cpu_count() or 2) // 2)


def pending_runs(sweep: Sweep, retry_failed: bool = False) -> tuple[list[RunSpec], list[dict[str, Any]]]:
    """Runs still to do, and the records of those already done (skipped)."""
    todo, done = [], []
    for run in sweep.runs:
        record = read_record(sweep.dir, run.key)
        if record is None or (retry_failed and record["status"] != "ok"):
            todo.append(run)
        else:
            done.append(record)
    return todo, done


class SweepInterrupted(Exception):
    """The sweep was stopped by Ctrl-C / SIGTERM; what finished is aggregated. The message says how to resume."""

    def __init__(self, sweep: "Sweep", finished: int, command: str) -> None:
        self.sweep, self.finished = sweep, finished
        super().__init__(f"sweep {sweep.name} interrupted: {finished} of {len(sweep.runs)} runs have a record "
                         f"(aggregate and index written to {sweep.dir}); resume with: {command}")


class SweepLocked(SweepError):
    """Another live process is running the same sweep (same output folder)."""


def run_sweep(path: str | Path, *, executor: str = "local", workers: int | None = None,
              retry_failed: bool = False, address: str | None = None, progress: bool = True) -> Path:
    """Expand, validate, run what is not done yet, then write the aggregate tables and index.html.

    The sweep holds a lock on its folder while it runs (a second process refuses, naming the holder).
    Ctrl-C / SIGTERM: no new run starts, the running ones are killed (kernels and probes with them) and
    sealed 'interrupted' without a record, the aggregate of what finished is written, and SweepInterrupted
    is raised (the CLI exits 130 with the resume command); a second Ctrl-C exits at once.
    """
    from workbench.runner import STOP, interruptible

    sweep = load_sweep(path)
    sweep.dir.mkdir(parents=True, exist_ok=True)
    with sweep_lock(sweep.dir), interruptible():
        sealed = mark_dead_runs(sweep.dir / "runs", marked_by=f"sweep {sweep.name} (pid {os.getpid()})")
        if sealed and progress:
            print(f"marked {len(sealed)} run folder(s) of a dead earlier sweep as killed", file=sys.stderr)
        manifest_module.write_manifest(sweep.dir / "sweep.json", {
            "file": str(sweep.path), "notebook": sweep.notebook, "code_version": sweep.code_version,
            "runs": [{"key": r.key, "point": r.point} for r in sweep.runs],
        })
        todo, done = pending_runs(sweep, retry_failed)
        counts = {"skipped": len(done), **{s: 0 for s in FINAL_STATUSES}}
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(sweep.runs), initial=len(done), desc=f"sweep {sweep.name}", unit="run")
            bar.set_postfix(counts)

        def finished(record: dict[str, Any] | None) -> None:
            if record is None:  # not started, or interrupted: no record, redone on resume
                return
            counts[record["status"]] = counts.get(record["status"], 0) + 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(counts)

        try:
            if executor == "local":
                _run_local(sweep, todo, workers or sweep.workers or default_workers(), finished)
            elif executor == "ray":
                _run_ray(sweep, todo, address, finished)
            else:
                raise SweepError(f"executor must be 'local' or 'ray', got {executor!r}")
        finally:
            if bar is not None:
                bar.close()
            write_aggregate(sweep)
        if STOP.is_set():
            recorded = sum(read_record(sweep.dir, r.key) is not None for r in sweep.runs)
            command = f"python -m workbench sweep {sweep.path}" + (f" --executor {executor}" if executor != "local" else "")
            raise SweepInterrupted(sweep, recorded, command)
    return sweep.dir


# ---- the lock on a sweep's folder -------------------------------------------------------------------------

LOCK_NAME = ".lock"


@contextmanager
def sweep_lock(sweep_dir: Path) -> Iterator[dict[str, Any]]:
    """Hold the sweep folder's lock: an exclusive flock on <sweep>/.lock, which records the holder (pid,
    host, start time). The kernel drops a flock when its process dies however it dies, so a lock left by a
    dead sweep (kill -9, a crash) is simply taken over; a live holder makes this raise SweepLocked."""
    import fcntl
    import platform

    path = Path(sweep_dir) / LOCK_NAME
    handle = open(path, "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = _holder(handle.read())
        handle.close()
        raise SweepLocked(
            f"sweep folder {sweep_dir} is in use by another sweep: pid {holder.get('pid', '?')} on host "
            f"{holder.get('host', '?')}, started {holder.get('started_at', '?')} "
            f"({holder.get('command', '')}). Wait for it, or stop it (Ctrl-C / kill {holder.get('pid', 'PID')})"
            f" and run again to resume.") from None
    handle.seek(0)
    previous = _holder(handle.read())
    if previous.get("pid"):
        print(f"taking over the lock of sweep folder {sweep_dir} from pid {previous['pid']} on "
              f"{previous.get('host', '?')} (started {previous.get('started_at', '?')}), which is no longer "
              f"running", file=sys.stderr)
    holder = {"pid": os.getpid(), "host": platform.node(), "started_at": manifest_module.now_iso(),
              "command": manifest_module.redact(" ".join(sys.argv))}
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(holder) + "\n")
    handle.flush()
    try:
        yield holder
    finally:
        handle.seek(0)
        handle.truncate()  # an empty lock file: nobody holds it
        handle.flush()
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


def _holder(text: str) -> dict[str, Any]:
    try:
        found = json.loads(text) if text.strip() else {}
        return found if isinstance(found, dict) else {}
    except ValueError:
        return {}


def _run_local(sweep: Sweep, todo: list[RunSpec], workers: int, finished: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from workbench.runner import STOP, kill_tree

    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        futures = [pool.submit(execute, run, sweep.dir, sweep.timeout_s) for run in todo]
        for future in as_completed(futures):
            finished(future.result())
            if STOP.is_set():
                for waiting in futures:
                    waiting.cancel()
                kill_tree()  # a worker started just as the signal came


def _run_ray(sweep: Sweep, todo: list[RunSpec], address: str | None, finished: Any) -> None:
    try:
        import ray
    except ImportError as err:
        raise SweepError("--executor ray needs the ray package: pip install 'workbench[ray]'") from err
    from workbench.runner import STOP

    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"WORKBENCH_OUTPUTS": str(paths.outputs_dir()),
                                               "WORKBENCH_CACHE": str(paths.cache_dir())}})
        except Exception as err:  # no cluster at that address, a local node that did not come up
            try:
                ray.shutdown()  # stops the processes this init started, if any
            except Exception:
                pass
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            raise SweepError(f"sweep {sweep.name}: could not start or reach {where}: {type(err).__name__}: "
                             f"{first}; no run was started (rerun the same command once Ray is up)") from err
    try:
        task = ray.remote(num_gpus=sweep.gpus_per_run, num_cpus=sweep.cpus_per_run, max_retries=0)(execute)
        pending = [task.remote(run, str(sweep.dir), sweep.timeout_s) for run in todo]
        while pending and not STOP.is_set():
            try:
                ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                if ready:
                    finished(ray.get(ready[0]))
            except Exception:
                if not STOP.is_set():
                    raise
                break  # the stop ended the local node with the rest of the process tree: seal what is left
        for ref in pending if STOP.is_set() else []:  # stopped: cancel what is queued or running
            try:
                ray.cancel(ref, force=True)
            except Exception:  # a local Ray may already be gone with the killed children
                pass
    finally:
        if started_here:
            try:
                ray.shutdown()
            except Exception:
                if not STOP.is_set():
                    raise
        if STOP.is_set():  # the killed Ray workers could not seal their runs nor remove their temp folders
            from workbench.memory.probe import remove_stale_temp_folders

            remove_stale_temp_folders()
            mark_dead_runs(sweep.dir / "runs", marked_by=f"sweep {sweep.name} (pid {os.getpid()}), stopped")


# ---- aggregate and index --------------------------------------------------------------------------------

def write_aggregate(sweep: Sweep) -> None:
    """runs.csv/.parquet, results/<table>.csv/.parquet (every finished run's table with its parameters),
    and index.html; all written atomically."""
    import pandas as pd

    records = [r for r in (read_record(sweep.dir, run.key) for run in sweep.runs) if r is not None]
    columns = ["key", "status", "seconds", "attempt", "run_dir", "error", *sweep.varying]
    runs = pd.DataFrame([{
        "key": r["key"], "status": r["status"], "seconds": r["seconds"], "attempt": r["attempt"],
        "run_dir": r["run_dir"], "error": r["error"], **{k: _cell(v) for k, v in r["point"].items()},
    } for r in records], columns=columns)  # a header even before any run finished
    _write_table(runs, sweep.dir / "runs")
    tables: dict[str, list[Any]] = {}
    for record in records:
        results = sweep.dir / record["run_dir"] / "results"
        for csv in sorted(results.glob("*.csv")) if record["status"] == "ok" else []:
            try:
                frame = pd.read_csv(csv)
            except pd.errors.EmptyDataError:  # an old run's table without a header: nothing to pool
                continue
            if frame.empty:  # a table of no rows adds nothing to the pooled table
                continue
            for name, value in reversed(list(record["point"].items())):
                # a results column of the same name wins; the parameter is kept beside it
                frame.insert(0, name if name not in frame.columns else f"param_{name}", _cell(value))
            frame.insert(0, "key", record["key"])
            tables.setdefault(csv.stem, []).append(frame)
    for name, frames in tables.items():
        _write_table(pd.concat(frames, ignore_index=True), sweep.dir / "results" / name)
    from workbench import sweep_page  # varying values as written, weights, result figures, provenance

    atomic.write_text(sweep.dir / "index.html", manifest_module.redact(sweep_page.index_html(sweep, records)))


def _cell(value: Any) -> Any:
    """Lists and dicts as compact JSON in a table cell (Parquet needs one type per column)."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _write_table(frame: Any, stem: Path) -> None:
    """CSV and Parquet of a table, every secret removed from its text cells and column names."""
    secrets = manifest_module.secret_values()
    if secrets:
        frame = frame.map(lambda v: manifest_module.redact(v, secrets) if isinstance(v, str) else v)
        frame.columns = [manifest_module.redact(str(c), secrets) for c in frame.columns]
    stem.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(stem.with_suffix(".csv"), frame.to_csv(index=False))
    with atomic.atomic_path(stem.with_suffix(".parquet")) as tmp:
        frame.astype({c: str for c in frame.columns if frame[c].dtype == object}).to_parquet(tmp, index=False)


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] == "_worker":
        sys.exit(_worker(sys.stdin.read()))
    sys.exit("usage: python -m workbench sweep FILE (this module's own entry point is internal)")
