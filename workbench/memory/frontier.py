"""The most a budget allows: largest frame count, largest pixels per frame, or most windows per generate call
(`batch_windows`, at fixed frames and frame size) that fits.

Search over a sorted list of candidate values whose cost grows with the value: probe index 0, 1, 3, 7, ...
(geometric growth) until one does not fit, then bisect between the last fit and the first failure, so a
domain of n values costs about 2·log2(n) probes. Before each probe the predictor is asked; a value it
predicts will not fit even after shrinking the prediction by `margin` is not measured (recorded as skipped
and treated as a failure), which saves the slowest probes — the ones that would run out of memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    import pandas as pd

    from workbench.memory.probe import ProbeConfig

Probe = Callable[[int], tuple[bool, dict[str, Any]]]


@dataclass
class FrontierResult:
    axis: str
    budget_bytes: int
    values: list[int]
    best: int | None = None  # the largest value that fits (None: not even the smallest)
    first_failing: int | None = None
    probes: list[dict[str, Any]] = field(default_factory=list)  # measured, in order
    skipped: list[dict[str, Any]] = field(default_factory=list)  # not measured: the predictor ruled them out

    @property
    def n_probes(self) -> int:
        return len(self.probes)

    def table(self) -> "pd.DataFrame":
        import pandas as pd

        rows = [{"order": i, "action": "probed", **p} for i, p in enumerate(self.probes)]
        rows += [{"order": None, "action": "skipped", **s} for s in self.skipped]
        return pd.DataFrame(rows)

    def summary(self) -> dict[str, Any]:
        return {"axis": self.axis, "budget_bytes": self.budget_bytes, "best": self.best,
                "first_failing": self.first_failing, "n_values": len(self.values), "n_probes": self.n_probes,
                "n_skipped": len(self.skipped)}


def search(values: Sequence[int], probe: Probe, budget_bytes: int, axis: str = "frames",
           predicted_peak: Callable[[int], int] | None = None, margin: float = 0.1) -> FrontierResult:
    """Largest value in sorted `values` for which `probe(value)` fits, assuming fitting is monotone.

    `probe(value)` returns (fits, record); `predicted_peak(value)` (bytes) lets values predicted to exceed the
    budget by more than `margin` be skipped.

    >>> result = search([2, 4, 6, 8, 10, 12, 14, 16], lambda v: (v <= 11, {}), budget_bytes=11)
    >>> result.best, result.first_failing, [p["value"] for p in result.probes]
    (10, 12, [2, 4, 8, 16, 12, 10])
    """
    values = sorted(set(int(v) for v in values))
    result = FrontierResult(axis, int(budget_bytes), values)
    if not values:
        return result
    known: dict[int, bool] = {}

    def fits(index: int) -> bool:
        if index in known:
            return known[index]
        value = values[index]
        if predicted_peak is not None:
            predicted = int(predicted_peak(value))
            if predicted * (1 - margin) > budget_bytes:
                result.skipped.append({"value": value, "predicted_peak_bytes": predicted, "fits": False})
                known[index] = False
                return False
        ok, record = probe(value)
        result.probes.append({"value": value, "fits": bool(ok), **record})
        known[index] = bool(ok)
        return known[index]

    if not fits(0):
        result.first_failing = values[0]
        return result
    last_fit, first_fail = 0, None
    step = 1
    while first_fail is None:  # grow: indices 1, 3, 7, 15, ...
        index = min(last_fit + step, len(values) - 1)
        if fits(index):
            last_fit = index
            if index == len(values) - 1:
                break
            step *= 2
        else:
            first_fail = index
    while first_fail is not None and first_fail - last_fit > 1:  # bisect
        middle = (last_fit + first_fail) // 2
        if fits(middle):
            last_fit = middle
        else:
            first_fail = middle
    result.best = values[last_fit]
    result.first_failing = values[first_fail] if first_fail is not None else None
    return result


def exhaustive(values: Sequence[int], fits: Callable[[int], bool]) -> int | None:
    """The largest value that fits by checking every one (the reference the search must match)."""
    passing = [v for v in sorted(values) if fits(v)]
    return passing[-1] if passing else None


# ---- domains ------------------------------------------------------------------------------------------------

def frame_values(model_id: str, max_frames: int = 256, min_frames: int = 1) -> list[int]:
    """Frame counts worth probing: even counts for Qwen (an odd count costs as the next even one), the one
    fixed count for fixed-frame models, else every count."""
    from workbench.models import get

    adapter, spec = get(model_id)
    if spec.fixed_frames is not None:
        return [spec.fixed_frames]
    temporal = getattr(adapter, "processing", {}).get("temporal_patch_size", 1)
    start = max(min_frames, temporal)
    start += (-start) % temporal
    return list(range(start, max_frames + 1, temporal))


def pixel_values(model_id: str, height: int, width: int, n_values: int = 256) -> list[int]:
    """Per-frame pixel caps worth probing, from the smallest the processor allows up to the source's own size,
    in multiples of the resize factor squared (caps in between round to the same size). Empty for families
    that resize every frame to a fixed size."""
    from workbench.models import get

    adapter, _spec = get(model_id)
    processing = getattr(adapter, "processing", None)
    if not processing or "merge_size" not in processing:
        return []
    factor = processing["patch_size"] * processing["merge_size"]
    unit = factor * factor
    low = max(processing["size"]["shortest_edge"], unit)
    first = -(-low // unit) * unit
    last = -(-max(low, height * width) // unit) * unit
    count = (last - first) // unit + 1
    stride = max(1, -(-count // n_values))
    values = [first + i * unit for i in range(0, count, stride)]
    if values[-1] != last:
        values.append(last)
    return values


# ---- the two ways to answer "what fits" ------------------------------------------------------------------

def predicted_frontier(config: "ProbeConfig", budget_bytes: int, axis: str = "frames",
                       values: Sequence[int] | None = None, device: str = "cuda", **options: Any
                       ) -> FrontierResult:
    """The frontier the predictor alone gives (no measurement; a few microseconds per value)."""
    from workbench.memory.grid import predict_config

    values = list(values) if values is not None else _default_values(config, axis)

    def probe(value: int) -> tuple[bool, dict[str, Any]]:
        peak = predict_config(_with(config, axis, value), device, **options).peak_bytes
        return peak <= budget_bytes, {"predicted_peak_bytes": peak, "status": "predicted"}

    return search(values, probe, budget_bytes, axis)


def measured_frontier(config: "ProbeConfig", budget_bytes: int, axis: str = "frames",
                      values: Sequence[int] | None = None, use_predictor: bool = True, margin: float = 0.1,
                      device: str | None = None, timeout_s: float | None = None) -> FrontierResult:
    """The frontier measured with fresh-process probes under the budget (CPU: the tracker's artificial
    budget; CUDA: the process's memory fraction), skipping what the predictor rules out."""
    from workbench.memory.grid import predict_config
    from workbench.memory.probe import resolve_device, run_probe

    values = list(values) if values is not None else _default_values(config, axis)
    predict_device = device or resolve_device(config.device)

    def probe(value: int) -> tuple[bool, dict[str, Any]]:
        result = run_probe(_with(config, axis, value).replace(budget_bytes=int(budget_bytes)), timeout_s)
        return result["status"] == "ok", {
            "status": result["status"], "phase": result.get("phase"), "peak_bytes": result.get("peak_bytes"),
            "predicted_peak_bytes": result.get("predicted_peak_bytes"), "error": result.get("error"),
        }

    predicted = None
    if use_predictor:
        def predicted(value: int) -> int:
            return predict_config(_with(config, axis, value), predict_device).peak_bytes

    return search(values, probe, budget_bytes, axis, predicted, margin)


AXES = ("frames", "max_pixels", "batch_windows")
MAX_BATCH_WINDOWS = 64


def _with(config: "ProbeConfig", axis: str, value: int) -> "ProbeConfig":
    if axis == "frames":
        return config.replace(frames=int(value))
    if axis == "max_pixels":
        return config.replace(max_pixels=int(value))
    if axis == "batch_windows":  # the most windows per generate call at fixed frames and frame size
        return config.replace(batch_windows=int(value))
    raise ValueError(f"axis must be one of {', '.join(AXES)}, got {axis!r}")


def _default_values(config: "ProbeConfig", axis: str) -> list[int]:
    if axis == "frames":
        return frame_values(config.model)
    if axis == "batch_windows":
        return list(range(1, MAX_BATCH_WINDOWS + 1))
    return pixel_values(config.model, config.height, config.width)
