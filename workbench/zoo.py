"""Load-and-caption survey over models x quantizations (the engine of notebooks/01_load_models)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from workbench.settings import LoadSettings


def survey(models: list[str], quantizations: list[str], settings: "LoadSettings | None" = None,
           frames: "np.ndarray | None" = None, timestamps_s: "np.ndarray | None" = None,
           max_new_tokens: int = 16, seed: int = 0, progress: bool = True, **load_fields: Any) -> "pd.DataFrame":
    """Load each (model, quantization) with `settings` (the other load settings: source, dtype, attention,
    quantize_vision, device, max_pixels, allow_pickle, model_options; or given flat as `load_fields`), record its
    load report (and a caption of `frames` if given).

    A configuration that fails (no bitsandbytes, weights not available, out of memory) becomes a row with
    status 'error' and the message; the survey goes on. Models are unloaded between rows.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from workbench.models import GenerationSettings, get, load
    from workbench.settings import LoadSettings
    from workbench.weights import count_weights, meta_model, weight_bytes

    base = (settings or LoadSettings()).replace(**load_fields)

    rows: list[dict[str, Any]] = []
    configs = [(m, q) for m in models for q in quantizations]
    for model_id, quantization in tqdm(configs, desc="loading", disable=not progress):
        row: dict[str, Any] = {"model_id": model_id, "quantization": quantization, "source": base.source,
                               "dtype": base.dtype, "attn_implementation": base.attn_implementation,
                               "quantize_vision": base.quantize_vision}
        loaded = None
        try:
            adapter, spec = get(model_id)
            loaded = load(model_id, base.replace(quantization=quantization))
            report = loaded.report.to_dict()
            report["unquantized_modules"] = "; ".join(report["unquantized_modules"])
            row.update(report, status="ok", error="")
            # counted on the unquantized architecture: a loaded 4-bit layer holds packed shapes
            counts = count_weights(meta_model(adapter, loaded.model.config, base.dtype),
                                   adapter.kept_modules(loaded.settings.quantize_vision))
            row["predicted_weight_bytes"] = weight_bytes(counts, quantization, base.dtype)
            if frames is not None:
                record = loaded.describe(frames, timestamps_s,
                                         generation=GenerationSettings(max_new_tokens=max_new_tokens, seed=seed))
                row.update(caption=record.text, caption_tokens=record.n_tokens,
                           caption_latency_s=record.latency_s, caption_status=record.status,
                           caption_error=record.error or "", input_tokens=record.n_input_tokens,
                           frames_given=int(frames.shape[0]), frames_used=record.n_frames,
                           caption_notes=" ".join(record.notes))
        except Exception as err:  # a failing configuration is a row, not the end of the survey
            row.update(status="error", error=f"{type(err).__name__}: {err}")
        finally:
            if loaded is not None:
                loaded.unload()
        rows.append(row)
    table = pd.DataFrame(rows)
    if "memory_bytes" in table:
        from workbench.units import GiB

        table["memory_mib"] = table["memory_bytes"] / 2**20
        table["memory_gib"] = table["memory_bytes"] / GiB
    return table


def spec_table(models: list[str]) -> "pd.DataFrame":
    """Published facts per model id from the embedded specs: hub id, parameters, frame handling."""
    import pandas as pd

    from workbench.models import get

    rows = []
    for model_id in models:
        adapter, spec = get(model_id)
        rows.append({"model_id": spec.model_id, "family": adapter.family, "hub_id": spec.hub_id,
                     "published_params_b": spec.published_params / 1e9, "frame_mode": spec.frame_mode,
                     "fixed_frames": spec.fixed_frames, "default_frames": spec.default_frames,
                     "prompt": spec.prompt})
    return pd.DataFrame(rows)


LOAD_COLUMNS = ["model_id", "quantization", "status", "seconds", "n_params", "memory_mib",
                "predicted_weight_bytes", "memory_bytes", "unquantized_modules", "error"]
CAPTION_COLUMNS = ["model_id", "quantization", "caption_status", "caption_tokens", "caption_latency_s",
                   "frames_given", "frames_used", "caption", "caption_notes", "caption_error"]


def load_summary(table: "pd.DataFrame") -> "pd.DataFrame":
    """The load report columns a reader compares, with prediction error in percent."""
    view = table[[c for c in LOAD_COLUMNS if c in table]].copy()
    if {"memory_bytes", "predicted_weight_bytes"} <= set(view):
        view["prediction_error_pct"] = 100 * (view["predicted_weight_bytes"] / view["memory_bytes"] - 1)
    return view


def caption_summary(table: "pd.DataFrame") -> "pd.DataFrame":
    return table[[c for c in CAPTION_COLUMNS if c in table]]
