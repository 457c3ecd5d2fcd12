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

import functools
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch

PHASES = ("load", "vision", "prefill", "generation")

try:  # the base class must exist at class-definition time; torch is needed for any measurement anyway
    from torch import Tensor as _Tensor
    from torch.utils._python_dispatch import TorchDispatchMode as _DispatchModeBase
except ImportError:  # pragma: no cover - workbench.memory.predictor works without torch
    _DispatchModeBase = object  # type: ignore[assignment, misc]

    class _Tensor:  # type: ignore[no-redef]  # nothing is an instance of it
        pass


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
        if tensor.is_meta:
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

    def _update_peak(self, op: Any) -> None:
        if self.live_bytes > self.peak_bytes:
            self.peak_bytes = self.live_bytes
            if self.record_origin:
                self.peak_snapshots[self.phase] = self.live_storages()
            if self.budget_bytes is not None and self.live_bytes > self.budget_bytes:
                raise MemoryBudgetExceeded(self.phase, self.live_bytes, self.budget_bytes, str(op))

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
        # Runs after every operator: the common outputs (a tensor, a flat tuple of tensors) skip the pytree
        # walk, and the operator's name is formatted only where it is recorded or reported.
        out = func(*args, **(kwargs or {}))
        if self.record_origin:
            self._op = str(func)
        if isinstance(out, _Tensor):
            self._add_tensor(out)
        elif isinstance(out, (tuple, list)) and all(isinstance(leaf, _Tensor) or leaf is None for leaf in out):
            for leaf in out:
                if leaf is not None:
                    self._add_tensor(leaf)
        elif out is not None:
            from torch.utils._pytree import tree_flatten

            for leaf in tree_flatten(out)[0]:
                if isinstance(leaf, _Tensor):
                    self._add_tensor(leaf)
        if self.live_bytes > self.peak_bytes:
            self._update_peak(func)
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


def _new_positions(args: Any, kwargs: Any) -> int:
    """Positions a decoder call adds (the prompt at prefill, 1 per generated token): dim 1 of its input."""
    x = kwargs.get("inputs_embeds")
    if x is None:
        x = kwargs.get("input_ids")
    if x is None and args:
        x = args[0]
    return int(x.shape[1]) if isinstance(x, _Tensor) and x.dim() >= 2 else 1


class _ForwardCounter:
    """The one wrapper around a decoder's `forward` that every attached DecoderRuns listens to."""

    ATTRIBUTE = "_workbench_forward_counter"

    def __init__(self, module: Any) -> None:
        self.listeners: list[DecoderRuns] = []
        self.before = vars(module).get("forward")  # a wrapper someone set earlier (accelerate's hooks)
        inner = module.forward

        @functools.wraps(inner)
        def forward(*args: Any, **kwargs: Any) -> Any:
            positions = _new_positions(args, kwargs)
            for listener in self.listeners:
                listener._count(positions)
            return inner(*args, **kwargs)

        self.wrapper = forward
        module.forward = forward
        object.__setattr__(module, self.ATTRIBUTE, self)

    @classmethod
    def attach(cls, module: Any, listener: "DecoderRuns") -> None:
        counter = vars(module).get(cls.ATTRIBUTE) or cls(module)
        counter.listeners.append(listener)

    @classmethod
    def detach(cls, module: Any, listener: "DecoderRuns") -> None:
        counter = vars(module).get(cls.ATTRIBUTE)
        if counter is None or listener not in counter.listeners:
            return
        counter.listeners.remove(listener)
        if counter.listeners or vars(module).get("forward") is not counter.wrapper:
            return  # still listened to, or wrapped again on top since: left as a pass-through
        if counter.before is None:
            del module.forward
        else:
            module.forward = counter.before
        delattr(module, cls.ATTRIBUTE)


class DecoderRuns:
    """The most decoder calls of one generation seen while attached (a call adding more than one position,
    the prefill, starts a generation): the length that sets the largest KV cache.

    It counts in a wrapper around the decoder stack's `forward` (an instance attribute, shared by every
    DecoderRuns attached at once; the last to close gives back what was there before), not in a forward
    pre-hook: a module with a hook takes nn.Module's slower call path on every call, about 9 us a decoder
    call against under 2 here (a generated token of a tiny model takes about 1 ms)."""

    def __init__(self, model: Any) -> None:
        self.longest = 0
        self._run = 0
        self._module = decoder_module(model)
        _ForwardCounter.attach(self._module, self)

    def _count(self, positions: int) -> None:
        self._run = 1 if positions > 1 else self._run + 1
        if self._run > self.longest:
            self.longest = self._run

    def close(self) -> None:
        if self._module is not None:
            _ForwardCounter.detach(self._module, self)
            self._module = None


def cache_bytes(cache: Any) -> int | None:
    """Bytes of the tensors a transformers `Cache` holds (every layer's keys and values, and whatever else its
    layers keep as tensors, each storage once); None for anything that is not such a cache."""
    layers = getattr(cache, "layers", None)
    if not isinstance(layers, list):
        return None
    storages: dict[int, int] = {}
    for layer in layers:
        for value in vars(layer).values():
            if isinstance(value, _Tensor) and not value.is_meta:
                storage = value.untyped_storage()
                storages[id(storage)] = storage.nbytes()
    return sum(storages.values())


class FirstStepsPeak:
    """Peak live tensor bytes of one captioning call, tracked only through its first decoder calls.

    Tracking every operator of a caption slows it several-fold on CPU (each operator goes through Python),
    so this tracks one call's processor and model work (inputs, vision tower, projector, prefill) through
    `steps` decoder calls (default 2: the prefill and the first generated token) and then stops, letting the
    call finish at full speed. Later decoder calls differ from the measured ones by the KV cache growing by
    the same bytes per token, so the peak of decoder call n is the last measured call's peak plus (n - K)
    times that growth: `peak_bytes(n_calls)` returns that with every measured peak. The growth is read from
    the cache the decoder is given (`cache_bytes` at the start of decoder call 2 and at the end of the model
    call that holds it, no operator tracked: tracking stops there); a decoder given no readable cache is
    tracked through 4 calls and the growth is the difference of the last two calls' peaks. (Eager
    attention's scores grow too, by a few bytes per head and token in one layer at a time, under 1 % of the
    cache's growth for Qwen2-VL-7B: not counted.) A generation that ends before tracking stops is tracked
    whole and needs no growth.

    The tracker is entered and left inside the adapter's `build_inputs` / `move_inputs` and inside module
    calls (forward pre- and post-hooks on the model, its children and grandchildren; the outermost one
    counts), never across them: generate() and inference_mode save and restore the dispatch state around
    the whole call, so a mode left in the middle of it would come back. The weights and each tracked module
    call's tensor arguments are adopted, so the peak includes them (like CUDA's allocated peak).

    >>> FirstStepsPeak.extrapolate([50, 100, 120], n_calls=10, growth=6)  # call 10: 120 + 6 x 8
    168
    >>> FirstStepsPeak.extrapolate([500, 100, 120], n_calls=10, growth=6)  # the vision tower's peak is larger
    500
    >>> FirstStepsPeak.extrapolate([50, 100, 120, 130, 140], n_calls=10)  # no cache: the last two peaks' step
    200
    """

    PEAKS_FOR_GROWTH = 4  # decoder calls tracked when the growth must come from the peaks (calls 3 and 4)

    def __init__(self, loaded: Any, steps: int = 2) -> None:
        if steps < 2:
            raise ValueError(f"steps must be >= 2 (the prefill and one generated token), got {steps}")
        self.loaded = loaded
        self.steps = steps
        self.tracker = LiveTensorTracker()
        self.segment_peaks: list[int] = []  # [before the first decoder call, decoder call 1, 2, ...]
        self.cache_sizes: list[int | None] = []  # the decoder's cache bytes at the start of each call
        self.stopped_early = False
        self._enabled = False
        self._depth = 0  # tracked calls in progress; the tracker is on while it is > 0
        self._handles: list[Any] = []
        self._patched: list[str] = []
        self._cache: Any = None  # the cache the last tracked decoder call was given

    def _modules(self) -> list[Any]:
        """The model, its children and grandchildren, and the decoder stack (each once)."""
        model = self.loaded.model
        found: dict[int, Any] = {id(model): model}
        for child in model.children():
            found.setdefault(id(child), child)
            for grandchild in child.children():
                found.setdefault(id(grandchild), grandchild)
        decoder = decoder_module(model)
        found.setdefault(id(decoder), decoder)
        return list(found.values())

    def __enter__(self) -> "FirstStepsPeak":
        from workbench.models.base import model_tensors

        self.tracker.adopt(model_tensors(self.loaded.model))
        adapter = self.loaded.adapter
        for name in ("build_inputs", "move_inputs"):  # the processor's tensors (an instance attribute, removed later)
            if name not in vars(adapter):
                setattr(adapter, name, self._tracked(getattr(adapter, name)))
                self._patched.append(name)
        for module in self._modules():
            self._handles.append(module.register_forward_pre_hook(self._enter_module, with_kwargs=True))
            self._handles.append(module.register_forward_hook(self._leave_module, always_call=True))
        self._handles.append(decoder_module(self.loaded.model).register_forward_pre_hook(self._decoder_call,
                                                                                          with_kwargs=True))
        self._enabled = True
        return self

    def _tracked(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            if not self._enabled:
                return function(*args, **kwargs)
            self._open()
            try:
                return function(*args, **kwargs)
            finally:
                self._close()

        return run

    def _open(self) -> None:
        if self._depth == 0:
            self.tracker.__enter__()
        self._depth += 1

    def _close(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            if self._enabled:
                self._stop_if_measured()
            self.tracker.__exit__(None, None, None)
            if not self._enabled:
                self._detach()

    def _stop_if_measured(self) -> None:
        """At the end of an outermost tracked module call: once `steps` decoder calls have run and the cache
        they were given can still be read, its bytes now are what the next decoder call would start with, so
        stop here. (Stopping at the next decoder call's pre-hook, inside the model call that holds it, left that
        whole call tracked: the tracker is only left where it was entered.)"""
        if len(self.segment_peaks) != self.steps or self._cache is None or self.cache_sizes[-1] is None:
            return
        size = cache_bytes(self._cache)
        if size is None:
            return
        self.segment_peaks.append(self.tracker.reset_peak())
        self.cache_sizes.append(size)
        self._enabled = False  # the rest of the generation runs untracked
        self.stopped_early = True

    def _enter_module(self, _module: Any, args: Any, kwargs: Any) -> None:
        if self._enabled:
            if self._depth == 0:
                self.tracker.adopt([args, kwargs])  # inputs made outside the tracker (cache, mask, ids)
            self._open()

    def _leave_module(self, _module: Any, _args: Any, _out: Any) -> None:
        if self._depth > 0:
            self._close()

    def _decoder_call(self, _module: Any, args: Any, kwargs: Any) -> None:
        if not self._enabled:
            return
        if len(self.segment_peaks) > 1 and _new_positions(args, kwargs) > 1:
            self._enabled = False  # a second generation in the same call: the first was tracked whole
            return
        self.segment_peaks.append(self.tracker.reset_peak())
        self._cache = kwargs.get("past_key_values")
        self.cache_sizes.append(cache_bytes(self._cache))
        measured = self.measured_calls  # this call is the next one
        if measured >= self.steps and (self._cache_growth() is not None or measured >= self.PEAKS_FOR_GROWTH):
            self._enabled = False  # stop here: the rest of the generation runs untracked
            self.stopped_early = True

    def _cache_growth(self) -> int | None:
        """The cache's bytes added by the last measured decoder call, when that was a generated token's."""
        if len(self.cache_sizes) < 3 or self.cache_sizes[-1] is None or self.cache_sizes[-2] is None:
            return None  # [-2] is at the start of decoder call 2 or later: after the prefill
        return max(0, self.cache_sizes[-1] - self.cache_sizes[-2])

    def _detach(self) -> None:
        self._cache = None
        for handle in self._handles:
            handle.remove()
        self._handles = []
        for name in self._patched:
            delattr(self.loaded.adapter, name)
        self._patched = []

    def __exit__(self, *exc: Any) -> None:
        if self._depth > 0:  # a call that raised past its hooks
            self._depth = 0
            self.tracker.__exit__(None, None, None)
        if not self.stopped_early:  # the rest of a generation tracked whole
            self.segment_peaks.append(self.tracker.reset_peak())
        self._enabled = False
        self._detach()

    @property
    def measured_calls(self) -> int:
        """Decoder calls whose peaks are in `segment_peaks` (its first entry is the work before them)."""
        return len(self.segment_peaks) - 1

    @property
    def growth_per_token(self) -> int | None:
        """Bytes a generated token adds to the peak (None: the call was tracked whole)."""
        if not self.stopped_early:
            return None
        growth = self._cache_growth()
        return growth if growth is not None else max(0, self.segment_peaks[-1] - self.segment_peaks[-2])

    @property
    def growth_source(self) -> str | None:
        """Where `growth_per_token` came from: "KV cache" (its tensors' bytes), "peaks" or None (tracked whole)."""
        if not self.stopped_early:
            return None
        return "KV cache" if self._cache_growth() is not None else "peaks"

    def peak_bytes(self, n_calls: int) -> int:
        """The call's peak for a generation of `n_calls` decoder calls (one per generated token)."""
        if not self.stopped_early:
            return max(self.segment_peaks)
        return self.extrapolate(self.segment_peaks, n_calls, self.growth_per_token)

    @staticmethod
    def extrapolate(segment_peaks: list[int], n_calls: int, growth: int | None = None) -> int:
        """max(measured peaks, last measured decoder call's peak + growth per call x the calls after it); the
        growth defaults to the difference of the last two measured peaks."""
        measured_calls = len(segment_peaks) - 1
        if growth is None:
            growth = max(0, segment_peaks[-1] - segment_peaks[-2])
        return max(max(segment_peaks), segment_peaks[-1] + max(0, n_calls - measured_calls) * growth)
