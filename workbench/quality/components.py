"""The separate model components a captioning model needs (vision encoder, projector / Q-Former, LLM).

Read from the loaded model's module tree, so it holds for every family without a per-family list:
the top-level sub-modules of the model (or of its inner `.model`) are named by role. Qwen-VL keeps its
projector (`merger`) inside the vision tower; it is listed as a projector of its own.
"""

from __future__ import annotations

from typing import Any

# Sub-module name -> role. Names are those of transformers 5.x's VLM classes.
ROLES: dict[str, str] = {
    "visual": "vision encoder", "vision_tower": "vision encoder", "vision_model": "vision encoder",
    "video_tower": "vision encoder (video)", "image_tower": "vision encoder (image)",
    "qformer": "Q-Former", "query_tokens": "Q-Former",
    "multi_modal_projector": "projector", "language_projection": "projector", "connector": "projector",
    "mlp1": "projector", "merger": "projector",
    "vision_resampler": "resampler",
    "language_model": "language model", "text_model": "language model", "lm_head": "language model",
}
# Roles a model needs to caption a video; an image tower Video-LLaVA does not use for video is listed, not needed.
UNUSED_FOR_VIDEO = {"vision encoder (image)"}


def model_components(model: Any) -> list[dict[str, Any]]:
    """One row per named component with parameters: module path, role, class and parameter count."""
    owners = [("", model)]
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(inner, "named_children"):
        owners.append(("model.", inner))
    rows = []
    for prefix, owner in owners:
        for name, module in owner.named_children():
            role = ROLES.get(name)
            if role is None:
                continue
            n_params = sum(p.numel() for p in module.parameters())
            if n_params == 0:
                continue  # a parameter-free pooling step is a function, not a component
            rows.append({"module": prefix + name, "role": role, "class": type(module).__name__,
                         "n_params": n_params})
            merger = getattr(module, "merger", None) if role == "vision encoder" else None
            if merger is not None and hasattr(merger, "parameters"):
                merged = sum(p.numel() for p in merger.parameters())
                rows[-1]["n_params"] -= merged
                rows.append({"module": f"{prefix}{name}.merger", "role": "projector",
                             "class": type(merger).__name__, "n_params": merged})
    # lm_head belongs to the language model: one component, its parameters added
    heads = [r for r in rows if r["module"] == "lm_head"]
    language = [r for r in rows if r["role"] == "language model" and r["module"] != "lm_head"]
    if heads and language:
        language[0]["n_params"] += heads[0]["n_params"]
        rows = [r for r in rows if r["module"] != "lm_head"]
    return rows


def count_components(rows: list[dict[str, Any]]) -> int:
    """Components a model needs to caption video (distinct roles, towers it does not use for video left out).

    >>> count_components([{"role": "vision encoder"}, {"role": "projector"}, {"role": "language model"}])
    3
    >>> count_components([{"role": "vision encoder (video)"}, {"role": "vision encoder (image)"},
    ...                   {"role": "projector"}, {"role": "language model"}])
    3
    """
    return len({r["role"] for r in rows if r["role"] not in UNUSED_FOR_VIDEO})
