"""Grids of configurations: predicted for all of them, measured (one fresh process each) where asked.

Tables are tidy (one row per configuration, or per configuration x phase / component) so the notebook only
plots and saves them.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from workbench.memory.probe import run_probe
from workbench.settings import LoadSettings, ProbeConfig, carries_load_settings

if TYPE_CHECKING:
    import pandas as pd

    from workbench.memory.predictor import Prediction


def parse_size(text: str) -> tuple[int, int]:
    """'1920x1080' (width x height) -> (height, width).

    >>> parse_size("1920x1080")
    (1080, 1920)
    """
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"frame size {text!r} is not WIDTHxHEIGHT, e.g. 1920x1080")
    return int(match.group(2)), int(match.group(1))


@carries_load_settings
@dataclass(frozen=True)
class Grid:
    """The parameter grid of notebook 02: one model, its base load settings (`load`; the load fields may be
    given flat, e.g. `Grid(model=..., source="random", dtype="float16")`), and the axes compared;
    `configurations()` expands it (max_pixels 0 = no cap). Axes named like a load field (`max_pixels`,
    `quantize_vision`) are the grid's tuples, not the base settings'."""

    model: str
    load: LoadSettings = field(default_factory=lambda: LoadSettings(source="random"))
    frames: tuple[int, ...] = (8,)
    frame_sizes: tuple[str, ...] = ("1920x1080",)
    max_pixels: tuple[int, ...] = (0,)
    quantizations: tuple[str, ...] = ("none",)
    quantize_vision: tuple[bool, ...] = (False,)  # False: vision tower kept 16-bit; True: bitsandbytes' default
    attn_implementations: tuple[str, ...] = ("sdpa",)
    max_new_tokens: int = 16
    config_overrides: tuple[tuple[str, Any], ...] = ()
    seed: int = 0

    def configurations(self) -> list[ProbeConfig]:
        configs = []
        for size in self.frame_sizes:
            height, width = parse_size(size)
            for cap in self.max_pixels:
                for quantization in self.quantizations:
                    # the policy only matters with quantization: one configuration for "none"
                    policies = sorted(set(self.quantize_vision)) if quantization != "none" else [False]
                    for quantize_vision in policies:
                        for attn in self.attn_implementations:
                            load = self.load.replace(quantization=quantization, quantize_vision=quantize_vision,
                                                     attn_implementation=attn, max_pixels=cap or None)
                            for n_frames in self.frames:
                                configs.append(ProbeConfig(
                                    model=self.model, load=load, frames=n_frames, height=height, width=width,
                                    max_new_tokens=self.max_new_tokens,
                                    config_overrides=dict(self.config_overrides), seed=self.seed))
        return configs


def config_label(config: ProbeConfig | dict[str, Any]) -> str:
    """Short label of a configuration's non-frame settings.

    >>> config_label(ProbeConfig(model="qwen2-vl-7b", quantization="8bit", attn_implementation="eager",
    ...                          max_pixels=602112))
    '8bit/eager/1920x1080/cap 602112'
    >>> config_label(ProbeConfig(model="auroracap-7b-vid", model_options={"token_kept_ratio": 0.4}))
    'none/sdpa/1920x1080/no cap/token_kept_ratio=0.4'
    >>> config_label(ProbeConfig(model="qwen2-vl-7b", quantization="8bit", quantize_vision=True))
    '8bit+vision/sdpa/1920x1080/no cap'
    """
    c = config if isinstance(config, dict) else config.as_dict()
    cap = f"cap {c['max_pixels']}" if c.get("max_pixels") else "no cap"
    options = "".join(f"/{k}={v}" for k, v in (c.get("model_options") or {}).items())
    quantization = c["quantization"] + ("+vision" if c.get("quantize_vision") and c["quantization"] != "none" else "")
    return f"{quantization}/{c['attn_implementation']}/{c['width']}x{c['height']}/{cap}{options}"


def predict_config(config: ProbeConfig, device: str = "cuda", text_tokens: int | None = None,
                   **options: Any) -> "Prediction":
    """The prediction for one configuration (predictor.predict_config, the one builder every caller uses);
    `options` are predict-only settings (transformers_era, masked_sdpa, vision_attention_scope)."""
    from workbench.memory.predictor import predict_config as build

    return build(config, device, text_tokens, **options)


def _config_columns(config: ProbeConfig | dict[str, Any]) -> dict[str, Any]:
    c = config if isinstance(config, dict) else config.as_dict()
    return {"model_id": c["model"], "source": c["source"], "quantization": c["quantization"],
            "quantize_vision": bool(c.get("quantize_vision")),
            "attn_implementation": c["attn_implementation"], "dtype": c["dtype"], "frames": c["frames"],
            "frame_size": f"{c['width']}x{c['height']}", "max_pixels": c.get("max_pixels") or 0,
            "config": config_label(c)}


def prediction_row(config: ProbeConfig, prediction: "Prediction") -> dict[str, Any]:
    """One tidy row: configuration, tokens, predicted peak, its phase and dominant component."""
    return {**_config_columns(config), "mode": "predicted", "status": "predicted",
            "frames_used": prediction.tokens["frames_used"], "visual_tokens": prediction.tokens["visual_tokens"],
            "encoder_seq_len": prediction.tokens["encoder_seq_len"],
            "segment_len": prediction.tokens["segment_len"], "text_tokens": prediction.tokens["text_tokens"],
            "input_tokens": prediction.tokens["input_tokens"], "context_limit": prediction.tokens["context_limit"],
            "within_context": prediction.within_context,
            "predicted_peak_bytes": prediction.peak_bytes, "predicted_phase": prediction.peak_phase,
            "dominant": prediction.dominant, "weights_bytes": prediction.weights_bytes,
            "kv_cache_bytes": prediction.kv_cache_bytes, "device": prediction.device}


def predict_grid(configs: Iterable[ProbeConfig], device: str = "cuda", **options: Any
                 ) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """(one row per configuration, one row per configuration x component of its peak phase); `options` as
    in predict_config."""
    import pandas as pd

    rows, parts = [], []
    for config in configs:
        prediction = predict_config(config, device, **options)
        assumed = {"transformers_era": prediction.transformers_era,
                   "vision_attention_scope": prediction.vision_attention_scope}
        rows.append(prediction_row(config, prediction) | assumed)
        for component, value in prediction.breakdown.items():
            parts.append({**_config_columns(config), "component": component, "bytes": value,
                          "phase": prediction.peak_phase} | assumed)
    return pd.DataFrame(rows), pd.DataFrame(parts)


def run_grid(configs: list[ProbeConfig], parallel: int = 1, timeout_s: float | None = None,
             threads: int | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Measure each configuration in its own fresh process, `parallel` at a time (CPU), in order."""
    from tqdm.auto import tqdm

    if threads is not None:
        configs = [c.replace(threads=threads) for c in configs]
    prepare_sources(configs)
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = [pool.submit(run_probe, config, timeout_s) for config in configs]
        return [f.result() for f in tqdm(futures, desc="probes", disable=not progress)]


def prepare_sources(configs: Iterable[ProbeConfig]) -> None:
    """Fabricate the tiny twins (and processors for `random`) once, before parallel probes race to do it."""
    from workbench.models import get

    for model_id in sorted({c.model for c in configs if c.source in ("tiny", "random")}):
        get(model_id)[0].ensure_tiny()


MEASURED_COLUMNS = [
    "model_id", "source", "quantization", "quantize_vision", "attn_implementation", "dtype", "frames", "frame_size",
    "max_pixels", "config", "mode", "status", "phase", "error", "device", "memory_kind", "peak_bytes",
    "reserved_peak_bytes", "cuda_context_bytes", "device_used_peak_bytes", "weights_bytes", "kv_cache_bytes", "inputs_bytes", "predicted_peak_bytes", "error_pct", "predicted_phase",
    "dominant", "frames_used", "visual_tokens", "encoder_seq_len", "text_tokens", "generated_tokens",
    "wall_seconds",
]


def measured_table(results: list[dict[str, Any]]) -> "pd.DataFrame":
    """One row per measured configuration: status, measured and predicted peaks, error, tokens."""
    import pandas as pd

    rows = []
    for result in results:
        prediction = result.get("prediction") or {}
        tokens = result.get("tokens") or {}
        rows.append({
            **_config_columns(result["config"]), "mode": "measured", "status": result["status"],
            "phase": result.get("phase"), "error": result.get("error"), "device": result.get("device"),
            "memory_kind": result.get("memory_kind"), "peak_bytes": result.get("peak_bytes"),
            "reserved_peak_bytes": result.get("reserved_peak_bytes"), "weights_bytes": result.get("weights_bytes"),
            "cuda_context_bytes": result.get("cuda_context_bytes"),
            "device_used_peak_bytes": result.get("device_used_peak_bytes"),
            "kv_cache_bytes": result.get("kv_cache_bytes"), "inputs_bytes": result.get("inputs_bytes"),
            "predicted_peak_bytes": result.get("predicted_peak_bytes"), "error_pct": result.get("error_pct"),
            "predicted_phase": prediction.get("peak_phase"), "dominant": prediction.get("dominant"),
            "frames_used": tokens.get("frames_used"), "visual_tokens": tokens.get("visual_tokens"),
            "encoder_seq_len": tokens.get("encoder_seq_len"), "text_tokens": tokens.get("text_tokens"),
            "generated_tokens": tokens.get("generated_tokens"), "wall_seconds": result.get("wall_seconds"),
        })
    return pd.DataFrame(rows, columns=MEASURED_COLUMNS)


def phase_table(results: list[dict[str, Any]]) -> "pd.DataFrame":
    """One row per measured configuration x phase: measured and predicted peak, seconds."""
    import pandas as pd

    rows = []
    for result in results:
        predicted = (result.get("prediction") or {}).get("phase_peaks", {})
        for phase in result.get("phases", []):
            rows.append({**_config_columns(result["config"]), "phase": phase["phase"],
                         "peak_bytes": phase["peak_bytes"], "reserved_peak_bytes": phase["reserved_peak_bytes"],
                         "predicted_peak_bytes": predicted.get(phase["phase"]), "seconds": phase["seconds"]})
    return pd.DataFrame(rows, columns=[*_config_columns(ProbeConfig("x")), "phase", "peak_bytes",
                                       "reserved_peak_bytes", "predicted_peak_bytes", "seconds"])


def dominant_summary(predicted: "pd.DataFrame") -> "pd.DataFrame":
    """How often each component is the largest non-weight part of the peak, by configuration group."""
    return (predicted.groupby(["config", "dominant"]).size().rename("configurations").reset_index()
            .sort_values(["config", "configurations"], ascending=[True, False]))


def fits_table(predicted: "pd.DataFrame", budgets_gib: dict[str, float], min_frames: dict[str, int]
               ) -> "pd.DataFrame":
    """For each configuration group and budget: the most frames that fit, and whether >= the required count.

    `budgets_gib` names budgets ({"44.5 GiB": 44.5}); `min_frames` the frames each must reach.
    """
    import pandas as pd

    from workbench.units import from_gib

    rows = []
    for config, group in predicted.groupby("config", sort=False):
        group = group.sort_values("frames")
        for name, gib in budgets_gib.items():
            fitting = group[group["predicted_peak_bytes"] <= from_gib(gib)]["frames"]
            most = int(fitting.max()) if not fitting.empty else 0
            rows.append({"config": config, "quantization": group["quantization"].iloc[0],
                         "attn_implementation": group["attn_implementation"].iloc[0],
                         "max_pixels": group["max_pixels"].iloc[0], "budget": name, "budget_gib": gib,
                         "max_frames_that_fit": most, "required_frames": min_frames[name],
                         "fits_required": most >= min_frames[name]})
    return pd.DataFrame(rows)
