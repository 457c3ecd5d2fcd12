"""Peak memory per phase: CUDA allocator statistics on a GPU, a live-tensor tracker on the CPU.

On CPU there is no allocator to ask, so `LiveTensorTracker` (a TorchDispatchMode) watches every tensor an
operator returns, keeps a weak reference to its storage and adds the storage's bytes until the storage
dies. torch ships the same idea as `torch.distributed._tools.mem_tracker.MemTracker`, but its peak
cannot be reset between phases without touching private fields, it cannot enforce a budget, and it walks
every tracked module after every operator (slow for a 7B model's thousands of ops per step). The tracker
here is the small part of it we need: live bytes, a resettable peak, and an optional budget that raises
`MemoryBudgetExceeded` from inside the operator that crossed it, so an artificial "GPU" of any size can
run out of memory on a CPU in the phase where a real one would.

`PhaseRecorder` turns either source into per-phase rows (peak, start and end bytes, seconds); forward
hooks (`install_phase_hooks`) move it through the phases of one `generate()` call.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch

PHASES = ("load", "vision", "prefill", "generation")

try:  # the base class must exist at class-definition time; torch is needed for any measurement anyway
    from torch.utils._python_dispatch import TorchDispatchMode as _DispatchModeBase
except ImportError:  # pragma: no cover - workbench.memory.predictor works without torch
    _DispatchModeBase = object  # type: ignore[assignment, misc]


class MemoryBudgetExceeded(RuntimeError):
    """Live tensor bytes went over the artificial budget (the CPU stand-in for CUDA out-of-memory)."""

    def __init__(self, phase: str, live_bytes: int, budget_bytes: int, op: str) -> None:
        self.phase = phase
        self.live_bytes = live_bytes
        self.budget_bytes = budget_bytes
        self.op = op
        super().__init__(
            f"memory budget exceeded in phase {phase!r}: {live_bytes} live tensor bytes > budget "
            f"{budget_bytes} after {op}"
        )


class LiveTensorTracker(_DispatchModeBase):
    """Live bytes of the tensor storages operators return (and of those `adopt`ed), with a resettable peak.

    A storage is counted once, however many tensors view it, from the first time an operator returns it
    until it is freed (a weakref callback). Meta tensors are ignored. The peak is sampled after each
    operator, so memory an operator allocates and frees internally is not seen.
    """

    def __init__(self, budget_bytes: int | None = None, record_origin: bool = False) -> None:
        super().__init__()
        self.budget_bytes = budget_bytes
        self.live_bytes = 0
        self.peak_bytes = 0
        self.phase = "untracked"
        self._storages: dict[int, list[Any]] = {}  # id(storage) -> [weakref, nbytes, origin]
        # Debugging aid: remember which op made each storage, and what was live at each phase's peak.
        self.record_origin = record_origin
        self._op = "adopted"
        self.peak_snapshots: dict[str, list[tuple[str, int]]] = {}

    # ---- bookkeeping -------------------------------------------------------------------------------
    def _forget(self, key: int) -> None:
        entry = self._storages.pop(key, None)
        if entry is not None:
            self.live_bytes -= entry[1]

    def _add_tensor(self, tensor: "torch.Tensor") -> None:
        if tensor.device.type == "meta":
            return
        try:
            storage = tensor.untyped_storage()
        except (RuntimeError, NotImplementedError):  # sparse or wrapper tensors without a plain storage
            return
        key = id(storage)
        nbytes = storage.nbytes()
        entry = self._storages.get(key)
        if entry is not None:
            if entry[0]() is storage:
                if entry[1] != nbytes:  # resized in place (out= variants)
                    self.live_bytes += nbytes - entry[1]
                    entry[1] = nbytes
                return
            self._forget(key)  # a dead storage's id was reused before its callback ran
        ref = weakref.ref(storage, lambda _ref, key=key: self._forget(key))
        origin = f"{self._op} {tuple(tensor.shape)} {tensor.dtype}" if self.record_origin else ""
        self._storages[key] = [ref, nbytes, origin]
        self.live_bytes += nbytes

    def adopt(self, tensors: Any) -> int:
        """Count tensors made outside the tracker (weights, inputs); returns the bytes newly counted."""
        import torch
        from torch.utils._pytree import tree_flatten

        before = self.live_bytes
        leaves = tensors if isinstance(tensors, list) else tree_flatten(tensors)[0]
        for leaf in leaves:
            if isinstance(leaf, torch.Tensor):
                self._add_tensor(leaf)
        self._update_peak("adopt")
        return self.live_bytes - before

    def _update_peak(self, op: str) -> None:
        if self.live_bytes > self.peak_bytes:
            self.peak_bytes = self.live_bytes
            if self.record_origin:
                self.peak_snapshots[self.phase] = self.live_storages()
            if self.budget_bytes is not None and self.live_bytes > self.budget_bytes:
                raise MemoryBudgetExceeded(self.phase, self.live_bytes, self.budget_bytes, op)

    def reset_peak(self) -> int:
        """Return the peak since the last reset and restart it from the current live bytes."""
        peak = max(self.peak_bytes, self.live_bytes)
        self.peak_bytes = self.live_bytes
        return peak

    @property
    def n_storages(self) -> int:
        return len(self._storages)

    def live_storages(self) -> list[tuple[str, int]]:
        """(origin, bytes) of every live storage, largest first (origin is "" unless record_origin)."""
        return sorted(((entry[2], entry[1]) for entry in self._storages.values()), key=lambda item: -item[1])

    # ---- the dispatch hook -------------------------------------------------------------------------
    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        import torch
        from torch.utils._pytree import tree_flatten

        out = func(*args, **(kwargs or {}))
        if self.record_origin:
            self._op = str(func)
        for leaf in tree_flatten(out)[0]:
            if isinstance(leaf, torch.Tensor):
                self._add_tensor(leaf)
        self._update_peak(str(func))
        return out


@dataclass
class PhaseRow:
    phase: str
    peak_bytes: int = 0
    reserved_peak_bytes: int | None = None  # CUDA only: the caching allocator's reserved peak
    start_bytes: int = 0
    end_bytes: int = 0
    seconds: float = 0.0
    segments: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class PhaseRecorder:
    """Peak memory and wall time per phase; exactly one phase is current, and a phase may recur.

    `device` "cpu" reads a `LiveTensorTracker`; "cuda" reads torch.cuda's peak statistics, reset at every
    phase change (torch.cuda.reset_peak_memory_stats), synchronizing first so times and peaks belong to
    the phase that did the work.
    """

    device: str
    tracker: LiveTensorTracker | None = None
    current: str | None = None
    rows: dict[str, PhaseRow] = field(default_factory=dict)
    _since: float = 0.0

    def __post_init__(self) -> None:
        if self.device == "cpu" and self.tracker is None:
            raise ValueError("a CPU PhaseRecorder needs a LiveTensorTracker")

    # ---- the memory source ---------------------------------------------------------------------------
    def _sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def current_bytes(self) -> int:
        if self.device == "cuda":
            import torch

            return int(torch.cuda.memory_allocated())
        return self.tracker.live_bytes

    def _take_peaks(self) -> tuple[int, int | None]:
        """Peak (and reserved peak) since the last reset, then reset."""
        if self.device == "cuda":
            import torch

            peak = int(torch.cuda.max_memory_allocated())
            reserved = int(torch.cuda.max_memory_reserved())
            torch.cuda.reset_peak_memory_stats()
            return peak, reserved
        return self.tracker.reset_peak(), None

    # ---- phase changes -------------------------------------------------------------------------------
    def start(self, phase: str) -> None:
        """Close the current phase's segment and open `phase` (a no-op if it is already current)."""
        if phase == self.current:
            return
        self._sync()
        now = time.perf_counter()
        self._close(now)
        self.current = phase
        self._since = now
        row = self.rows.setdefault(phase, PhaseRow(phase, start_bytes=self.current_bytes()))
        row.segments += 1
        if self.tracker is not None:
            self.tracker.phase = phase

    def stop(self) -> None:
        """Close the current phase (at the end of a run, or where it failed)."""
        if self.current is None:
            return
        self._sync()
        self._close(time.perf_counter())
        self.current = None
        if self.tracker is not None:
            self.tracker.phase = "untracked"

    def _close(self, now: float) -> None:
        if self.current is None:
            self._take_peaks()  # time between phases belongs to none of them
            return
        row = self.rows[self.current]
        peak, reserved = self._take_peaks()
        row.peak_bytes = max(row.peak_bytes, peak)
        if reserved is not None:
            row.reserved_peak_bytes = max(row.reserved_peak_bytes or 0, reserved)
        row.end_bytes = self.current_bytes()
        row.seconds += now - self._since

    def table(self) -> list[dict[str, Any]]:
        """One row per phase in PHASES order (then any others), as plain dicts."""
        order = {name: i for i, name in enumerate(PHASES)}
        return [r.as_dict() for r in sorted(self.rows.values(), key=lambda r: order.get(r.phase, len(order)))]


def _find_module(model: Any, names: tuple[str, ...]) -> Any:
    for owner in (getattr(model, "model", None), model):
        if owner is None:
            continue
        for name in names:
            module = getattr(owner, name, None)
            if module is not None:
                return module
    return None


VISION_MODULE_NAMES = ("visual", "video_tower", "vision_tower", "vision_model")


def vision_module(model: Any) -> Any:
    """The vision encoder a family's forward calls (Qwen `visual`, LLaVA `vision_tower`, BLIP `vision_model`)."""
    return _find_module(model, VISION_MODULE_NAMES)


def decoder_module(model: Any) -> Any:
    """The decoder stack that runs exactly once per generated token (prefill = its first call)."""
    module = model
    for _ in range(4):  # VLM -> language model -> decoder stack (T5: the decoder, not the encoder)
        getter = getattr(module, "get_decoder", None)
        if getter is None:
            break
        try:
            inner = getter()
        except (AttributeError, NotImplementedError):
            break
        if inner is None or inner is module:
            break
        module = inner
    return module


def install_phase_hooks(model: Any, recorder: PhaseRecorder,
                        on_step: Callable[[int], None] | None = None) -> list[Any]:
    """Forward hooks that move `recorder` through vision -> prefill -> generation inside generate().

    The caller starts "prefill" before generate(); the vision tower's forward is "vision" (then back to
    whatever phase was current); the decoder stack's second and later calls are "generation".
    Returns the hook handles (call .remove() on each).
    """
    handles = []
    calls = {"decoder": 0}
    resume: list[str] = []

    vision = vision_module(model)
    if vision is not None:
        def vision_pre(_module: Any, _args: Any) -> None:
            resume.append(recorder.current or "prefill")
            recorder.start("vision")

        def vision_post(_module: Any, _args: Any, _out: Any) -> None:
            recorder.start(resume.pop() if resume else "prefill")

        handles.append(vision.register_forward_pre_hook(vision_pre))
        handles.append(vision.register_forward_hook(vision_post))  # not on error: the phase stays

    def decoder_pre(_module: Any, _args: Any) -> None:
        calls["decoder"] += 1
        if on_step is not None:
            on_step(calls["decoder"])
        recorder.start("prefill" if calls["decoder"] == 1 else "generation")

    handles.append(decoder_module(model).register_forward_pre_hook(decoder_pre))
    return handles
