"""Measure one configuration's memory, phase by phase, in a fresh process.

    python -m workbench.memory.probe CONFIG.json [--out RESULT.json]     (CONFIG may be - for stdin)

A kernel that still holds an earlier model gives wrong peaks, so every measurement runs in its own
process: `run_probe(config)` starts one, waits, and always returns a result dict (schema below), also
when the child ran out of memory, was killed by the OS, timed out or crashed.

Result schema (`SCHEMA_VERSION` 1; bytes are ints, seconds floats):
    status          ok | oom | failed | killed | timeout
    phase           where a non-ok run stopped (load, vision, prefill, generation), else None
    error, signal   message; the signal name for killed children (e.g. SIGKILL)
    device, device_name, memory_kind   cpu + "cpu_live_tensor_bytes" or cuda + "cuda_allocated"
    phases          [{phase, peak_bytes, reserved_peak_bytes, start_bytes, end_bytes, seconds, segments}]
    peak_bytes, reserved_peak_bytes    the largest phase peak (the configuration's memory need)
    cuda_context_bytes, device_used_peak_bytes    CUDA only: the device memory in use before any tensor
                    (the CUDA context and libraries), and that plus the reserved peak: about what nvidia-smi
                    shows for the process at its peak
    weights_bytes, inputs_bytes, kv_cache_bytes
    tokens          {frames_used, visual_tokens, encoder_seq_len, text_tokens, input_tokens, generated_tokens}
    prediction      the predictor's breakdown for the same configuration (predictor.Prediction.as_dict())
    predicted_peak_bytes, error_pct    (predicted - measured) / measured * 100
    config, notes, preprocess_seconds, wall_seconds, versions
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal as signal_module
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from workbench.models.configs import merge_config  # noqa: F401  (a pure helper; imported from here too)
from workbench.settings import ProbeConfig  # noqa: F401  (declared with LoadSettings in the light module)

if TYPE_CHECKING:
    import numpy as np

SCHEMA_VERSION = 1
STATUSES = ("ok", "oom", "failed", "killed", "timeout")

# The mid-size Qwen2-VL the tests and benchmarks measure (model qwen2-vl-2b, source random): the 2B config
# shrunk to ~85M parameters, 2 LLM layers with half the MLP width, a small vocabulary and a 2-block vision
# tower of half the width (16 heads kept). Activations are a large share of its peak, and a probe takes a few
# seconds on one CPU thread. (params/02_memory_probe.midsize_cpu.yaml spells the same numbers.)
MIDSIZE_QWEN2_VL_OVERRIDES: dict[str, Any] = {
    "num_hidden_layers": 2, "intermediate_size": 4480, "vocab_size": 8192,
    "vision_config": {"depth": 2, "embed_dim": 640},
}


def resolve_model(config: ProbeConfig) -> tuple[Any, Any]:
    """Adapter and spec for a configuration, the spec's config merged with `config_overrides`."""
    from workbench.models import get

    adapter, spec = get(config.model)
    if config.config_overrides:
        spec = dataclasses.replace(spec, config=merge_config(spec.config, config.config_overrides))
    return adapter, spec


def synthetic_clip(n_frames: int, height: int, width: int, seed: int = 0) -> tuple["np.ndarray", "np.ndarray"]:
    """Seeded random frames (T,H,W,3 uint8), 0.5 s apart: memory depends on sizes, not content."""
    import numpy as np

    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(n_frames, height, width, 3), dtype=np.uint8)
    return frames, np.arange(n_frames, dtype=float) * 0.5


# ---- the measurement, inside the fresh process ------------------------------------------------------

def measure(config: ProbeConfig) -> dict[str, Any]:
    """Load, preprocess and generate once, recording per-phase peaks; never raises for OOM or errors."""
    import torch

    from workbench.memory.tracker import MemoryBudgetExceeded
    from workbench.models.base import free_memory

    wall_start = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    settings = config.load
    result: dict[str, Any] = empty_result(config)
    recording: _Recording | None = None
    try:
        device = settings.resolved_device()
        result.update(device_fields(device))
        adapter, spec = resolve_model(config)
        if config.source in ("tiny", "random"):
            adapter.ensure_tiny()  # fabricated once, outside the measurement
        recording = _Recording(device, config.budget_bytes)
        loaded = _load(adapter, spec, settings, config.model_options, recording, result)
        inputs = _inputs(adapter, spec, loaded, config, recording, result)
        _generate(loaded, inputs, config, recording, result)
        result["status"] = "ok"
    except MemoryBudgetExceeded as err:
        result.update(status="oom", phase=err.phase, error=str(err))
    except Exception as err:  # every outcome is a result row
        phase = recording.recorder.current if recording is not None else None
        if isinstance(err, torch.OutOfMemoryError):
            result.update(status="oom", phase=phase, error=f"OutOfMemoryError: {str(err)[:500]}")
        else:
            result.update(status="failed", phase=phase, error=f"{type(err).__name__}: {err}")
    finally:
        if recording is not None:
            result["phases"] = recording.close()
        free_memory()
    summarize_phases(result)
    attach_prediction(result, config)
    result["wall_seconds"] = time.perf_counter() - wall_start
    return result


class _Recording:
    """The phase recorder and, on CPU, the live-tensor tracker it reads (entered and left safely)."""

    def __init__(self, device: str, budget_bytes: int | None) -> None:
        import torch

        from workbench.memory.tracker import LiveTensorTracker, PhaseRecorder

        self.tracker = None
        self.active = False
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            if budget_bytes is not None:  # a smaller GPU: the allocator refuses beyond this fraction
                total = torch.cuda.get_device_properties(0).total_memory
                torch.cuda.set_per_process_memory_fraction(min(1.0, budget_bytes / total))
            self.recorder = PhaseRecorder("cuda")
        else:
            self.tracker = LiveTensorTracker(budget_bytes)
            self.recorder = PhaseRecorder("cpu", self.tracker)
        self.track(True)

    def track(self, on: bool) -> None:
        """Enter or leave the CPU tracker (dispatch modes nest, so only ever leave the one we entered)."""
        if self.tracker is None or on == self.active:
            return
        if on:
            self.tracker.__enter__()
        else:
            self.tracker.__exit__(None, None, None)
        self.active = on

    def adopt(self, tensors: list[Any]) -> None:
        if self.tracker is not None:
            self.tracker.adopt(tensors)

    def close(self) -> list[dict[str, Any]]:
        self.recorder.stop()
        self.track(False)
        return self.recorder.table()


def _load(adapter: Any, spec: Any, settings: Any, options: dict[str, Any], recording: _Recording,
          result: dict[str, Any]) -> Any:
    from workbench.models.base import model_tensors, tensor_bytes

    recording.recorder.start("load")
    loaded = adapter.load(spec, settings)
    recording.adopt(model_tensors(loaded.model))  # weights read from disk are made outside any operator
    recording.recorder.stop()
    loaded.configure(options)
    result["weights_bytes"] = tensor_bytes(loaded.model)
    result["load_report"] = {k: v for k, v in loaded.report.to_dict().items() if k != "unquantized_modules"}
    return loaded


def _inputs(adapter: Any, spec: Any, loaded: Any, config: ProbeConfig, recording: _Recording,
            result: dict[str, Any]) -> dict[str, Any]:
    """Synthetic frames through the family's processor (host work, untracked), then onto the device."""
    import torch

    from workbench.models.base import resample_frames

    if config.batch_windows > 1:
        from workbench.batching import batch_support

        reason = batch_support(loaded)
        if reason is not None:
            raise ValueError(f"batch_windows={config.batch_windows} cannot be measured: {reason}")
    clips = []
    for i in range(config.batch_windows):  # one clip, or one per window of a batched call (different pixels)
        frames, timestamps = synthetic_clip(config.frames, config.height, config.width, config.seed + i)
        if spec.fixed_frames is not None:
            frames, timestamps, notes = resample_frames(frames, timestamps, spec.fixed_frames, "resample",
                                                        spec.model_id)
            result["notes"] += [n for n in notes if n not in result["notes"]]
        clips.append((frames, timestamps))
    start = time.perf_counter()
    recording.track(False)
    kwargs = pixel_kwargs(adapter, config, result)
    built = [adapter.build_inputs(loaded, f, t, config.prompt or spec.prompt, **kwargs) for f, t in clips]
    if len(built) == 1:
        inputs = built[0]
    else:
        from workbench.batching import collate, pad_id

        inputs = collate([dict(b) for b in built], pad_id(loaded))
    result["preprocess_seconds"] = time.perf_counter() - start
    recording.recorder.start("prefill")  # the inputs on the device belong to generate()'s footprint
    recording.track(True)
    inputs = adapter.move_inputs(inputs, loaded)
    tensors = [v for v in inputs.values() if isinstance(v, torch.Tensor)]
    recording.adopt(tensors)
    result["inputs_bytes"] = sum(v.numel() * v.element_size() for v in tensors)
    result["tokens"] = token_counts(loaded, inputs, int(frames.shape[0]), adapter, config)
    return inputs


def _generate(loaded: Any, inputs: dict[str, Any], config: ProbeConfig, recording: _Recording,
              result: dict[str, Any]) -> None:
    """One greedy generate() of exactly max_new_tokens, the hooks moving the recorder through its phases."""
    import torch

    from workbench.memory.tracker import install_phase_hooks
    from workbench.models.base import GenerationSettings

    generation = GenerationSettings(max_new_tokens=config.max_new_tokens, min_new_tokens=config.max_new_tokens,
                                    seed=config.seed)
    kwargs = generation.generate_kwargs()
    if config.batch_windows > 1:
        from workbench.batching import pad_id

        kwargs["pad_token_id"] = pad_id(loaded)
    handles = install_phase_hooks(loaded.model, recording.recorder)
    torch.manual_seed(config.seed)
    try:
        with torch.inference_mode():
            output = loaded.model.generate(**inputs, **kwargs, return_dict_in_generate=True)
        recording.recorder.stop()
    finally:
        for handle in handles:
            handle.remove()
    prompt_length = int(inputs["input_ids"].shape[-1]) if "input_ids" in inputs else 0
    generated = int(output.sequences.shape[-1])
    # decoder-only models return prompt + new tokens; encoder-decoders (T5) only the new ones
    result["tokens"]["generated_tokens"] = generated - prompt_length if generated > prompt_length else generated
    result["kv_cache_bytes"] = cache_bytes(getattr(output, "past_key_values", None))


def empty_result(config: ProbeConfig) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION, "config": config.as_dict(), "status": "failed", "phase": None,
        "error": None, "signal": None, "device": None, "device_name": None, "memory_kind": None,
        "phases": [], "peak_bytes": None, "reserved_peak_bytes": None, "weights_bytes": None,
        "cuda_context_bytes": None, "device_used_peak_bytes": None,
        "inputs_bytes": None, "kv_cache_bytes": None, "tokens": {}, "notes": [], "prediction": None,
        "predicted_peak_bytes": None, "error_pct": None, "preprocess_seconds": None, "wall_seconds": None,
        "versions": versions(),
    }


def device_fields(device: str) -> dict[str, Any]:
    import platform

    import torch

    if device == "cuda":
        name = torch.cuda.get_device_name(0)
        torch.cuda.init()
        free, total = torch.cuda.mem_get_info()  # the driver's view, as nvidia-smi reports it
        context = total - free - torch.cuda.memory_reserved()  # other processes on the GPU would count here too
        return {"device": "cuda", "device_name": name, "memory_kind": "cuda_allocated",
                "cuda_context_bytes": int(context)}
    return {"device": "cpu", "device_name": platform.processor() or platform.machine(),
            "memory_kind": "cpu_live_tensor_bytes"}


def versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for package in ("torch", "transformers", "bitsandbytes"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "missing"
    return found


def pixel_kwargs(adapter: Any, config: ProbeConfig, result: dict[str, Any]) -> dict[str, Any]:
    """max_pixels for families whose processor resizes to a pixel budget (their build_inputs takes it); a note
    where it is ignored."""
    if config.max_pixels is None:
        return {}
    if adapter.memory.pixel_budget:
        return {"max_pixels": config.max_pixels}
    result["notes"].append(f"max_pixels ignored: {adapter.family} resizes every frame to a fixed size")
    return {}


_VISUAL_TOKEN_KEYS = ("video_token_id", "video_token_index", "image_token_id", "image_token_index")


def token_counts(loaded: Any, inputs: dict[str, Any], frames_used: int, adapter: Any,
                 config: ProbeConfig) -> dict[str, int]:
    """Visual placeholders, text tokens and vision-encoder sequence length of the built inputs."""
    ids = inputs.get("input_ids")
    n_input = int(ids.numel()) if ids is not None else 0  # all rows (BLIP-2 sends one prompt per frame)
    visual_ids = {getattr(loaded.model.config, key, None) for key in _VISUAL_TOKEN_KEYS} - {None}
    visual = int(sum(int((ids == token).sum()) for token in visual_ids)) if ids is not None else 0
    grid = inputs.get("video_grid_thw", inputs.get("image_grid_thw"))
    if grid is not None:
        encoder = int(grid.prod(-1).sum())
    else:
        from workbench.memory.predictor import visual_geometry

        encoder = visual_geometry(config.model, frames_used, config.height, config.width, config.max_pixels,
                                  config.source, config.geometry_overrides()).windows(config.batch_windows
                                                                                      ).encoder_tokens
    return {"frames_used": frames_used, "visual_tokens": visual, "encoder_seq_len": encoder,
            "text_tokens": n_input - visual, "input_tokens": n_input, "generated_tokens": 0}


def cache_bytes(cache: Any) -> int | None:
    """Bytes of every tensor a generate() cache object holds (each storage once)."""
    if cache is None:
        return None
    import torch

    seen: set[int] = set()
    total = 0
    stack = [cache]
    visited: set[int] = set()
    while stack:
        obj = stack.pop()
        if id(obj) in visited:
            continue
        visited.add(id(obj))
        if isinstance(obj, torch.Tensor):
            storage = obj.untyped_storage()
            if storage.data_ptr() not in seen and obj.device.type != "meta":
                seen.add(storage.data_ptr())
                total += storage.nbytes()
        elif isinstance(obj, (list, tuple)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif type(obj).__module__.startswith("transformers.cache_utils"):
            stack.extend(vars(obj).values())
    return total


def summarize_phases(result: dict[str, Any]) -> None:
    phases = result["phases"]
    if not phases:
        return
    result["peak_bytes"] = max(row["peak_bytes"] for row in phases)
    reserved = [row["reserved_peak_bytes"] for row in phases if row.get("reserved_peak_bytes") is not None]
    result["reserved_peak_bytes"] = max(reserved) if reserved else None
    if result["reserved_peak_bytes"] is not None and result.get("cuda_context_bytes") is not None:
        result["device_used_peak_bytes"] = result["cuda_context_bytes"] + result["reserved_peak_bytes"]


def attach_prediction(result: dict[str, Any], config: ProbeConfig) -> None:
    """Store the predictor's breakdown beside the measurement, so its error is always visible."""
    try:
        from workbench.memory.predictor import predict_config

        text_tokens = (result.get("tokens") or {}).get("text_tokens")  # all rows: per clip for the predictor
        text_tokens = text_tokens // config.batch_windows if text_tokens else None
        prediction = predict_config(config, result.get("device") or _requested_device(config), text_tokens)
    except Exception as err:  # a missing family table must not lose a measurement
        result["prediction_error"] = f"{type(err).__name__}: {err}"
        return
    result["prediction"] = prediction.as_dict()
    result["predicted_peak_bytes"] = prediction.peak_bytes
    if result.get("status") == "ok" and result.get("peak_bytes"):
        result["error_pct"] = 100.0 * (prediction.peak_bytes - result["peak_bytes"]) / result["peak_bytes"]


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cpu' and 'cuda' unchanged."""
    if device != "auto":
        return device
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover
        return "cpu"


def _requested_device(config: ProbeConfig) -> str:
    return resolve_device(config.device)


# ---- the parent side: one fresh process per configuration ----------------------------------------------

def run_probe(config: ProbeConfig | dict[str, Any], timeout_s: float | None = None,
              on_start: Callable[[subprocess.Popen], None] | None = None) -> dict[str, Any]:
    """Measure `config` in a fresh `python -m workbench.memory.probe` process; always returns a result.

    A child killed by a signal (the OS out-of-memory killer sends SIGKILL) is status "killed" with the
    signal's name; one that outlives `timeout_s` is killed and reported as "timeout". `on_start` receives
    the child process (tests use it to kill the child).
    """
    from workbench import paths

    config = config if isinstance(config, ProbeConfig) else ProbeConfig.from_dict(config)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(paths.REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if env.pop("PYTHONDONTWRITEBYTECODE", None) and "PYTHONPYCACHEPREFIX" not in env:
        # Each probe is a fresh interpreter: without cached bytecode it recompiles torch and transformers
        # (~10 s). Keep the bytecode under the cache dir so the checkout itself stays clean.
        env["PYTHONPYCACHEPREFIX"] = str(paths.cache_dir() / "pycache")
    remove_stale_temp_folders()
    with temp_folder() as tmp:
        config_file = Path(tmp) / "config.json"
        out_file = Path(tmp) / "result.json"
        config_file.write_text(json.dumps(config.as_dict()))
        start = time.perf_counter()
        process = start_child(
            [sys.executable, "-m", "workbench.memory.probe", str(config_file), "--out", str(out_file)],
            cwd=str(paths.REPO_ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        if on_start is not None:
            on_start(process)
        timed_out = False
        try:
            _stdout, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()  # our own child, by its handle
            _stdout, stderr = process.communicate()
            timed_out = True
        seconds = time.perf_counter() - start
        if out_file.exists() and not timed_out:
            result = json.loads(out_file.read_text())
        else:
            result = child_failure(config, process.returncode, stderr, timed_out, timeout_s)
    result["process_seconds"] = seconds
    return result


# ---- child lifecycle: a probe process and its temp folder never outlive the process that started them ----

TEMP_PREFIX = "wb-probe-"


def temp_folder() -> "tempfile.TemporaryDirectory[str]":
    """A temp folder named after this process (wb-probe-<pid>-*), so a later process can remove it when
    this one was killed before its own cleanup ran (remove_stale_temp_folders)."""
    return tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-")


def remove_stale_temp_folders(root: str | Path | None = None) -> list[Path]:
    """Remove wb-probe-<pid>-* folders whose process is gone; returns those removed."""
    import shutil

    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*-*"):
        owner = folder.name[len(TEMP_PREFIX):].split("-", 1)[0]
        if owner.isdigit() and not _pid_alive(int(owner)) and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    try:  # a zombie is dead for this purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _death_signal_setter() -> Callable[[], None] | None:
    """prctl(PR_SET_PDEATHSIG, SIGKILL) resolved here in the parent: the child only calls it (no imports
    after fork, which can deadlock in a threaded parent)."""
    try:
        import ctypes

        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the child may outlive a killed parent
        return None
    return lambda: prctl(1, signal_module.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def start_child(command: list[str], **popen_kwargs: Any) -> subprocess.Popen:
    """Popen a child that gets SIGKILL when the starting process dies, however it dies (Linux)."""
    setter = _death_signal_setter()
    return subprocess.Popen(command, preexec_fn=setter, **popen_kwargs)


def child_failure(config: ProbeConfig, returncode: int | None, stderr: str, timed_out: bool,
                  timeout_s: float | None) -> dict[str, Any]:
    """The result for a child that left no result: killed by a signal, timed out, or crashed."""
    result = empty_result(config)
    tail = (stderr or "").strip().splitlines()[-5:]
    if timed_out:
        result.update(status="timeout", error=f"no result within {timeout_s} s")
    elif returncode is not None and returncode < 0:
        name = signal_module.Signals(-returncode).name
        hint = " (the OS out-of-memory killer sends SIGKILL)" if name == "SIGKILL" else ""
        result.update(status="killed", signal=name, error=f"probe process killed by {name}{hint}")
    else:
        result.update(status="failed", error=f"probe process exited with {returncode}: " + " | ".join(tail))
    attach_prediction(result, config)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.memory.probe",
                                     description="Measure one configuration's memory per phase (JSON in, JSON out).")
    parser.add_argument("config", help="JSON file with ProbeConfig fields, or - for stdin")
    parser.add_argument("--out", help="write the result JSON here (default: stdout)")
    args = parser.parse_args(argv)
    text = sys.stdin.read() if args.config == "-" else Path(args.config).read_text()
    result = measure(ProbeConfig.from_dict(json.loads(text)))
    payload = json.dumps(result, indent=1, default=str)
    if args.out:
        from workbench import atomic

        atomic.write_text(Path(args.out), payload)
    else:
        print(payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
