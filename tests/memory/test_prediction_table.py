"""The prediction table (issue 19, item 8): predictions for every model id over a grid, kept exactly.

The committed fixture (tests/memory/data/prediction_table.json) was computed by the predictor before the
family / predictor seams were redesigned; redesigns must leave every integer of it unchanged. A deliberate
change of the predictor's results regenerates it, with the reason in the commit:

    .venv/bin/python tests/memory/test_prediction_table.py --write
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).parent / "data" / "prediction_table.json"

FRAMES = (1, 7, 16)
SIZES = ((480, 640), (1080, 1920), (900, 300))  # (height, width): 4:3, 16:9 and a portrait strip
QUANTIZATIONS = ("none", "8bit", "4bit-nf4")
ATTENTIONS = ("eager", "sdpa")
# bitsandbytes' two CPU paths (fixed here, so the table does not depend on this machine)
CPU_KERNELS = {"avx512": ("AVX512", True, "0.50.2"), "avx2": ("AVX2", False, "0.50.2")}
MIDSIZE_QWEN2_VL = {"vision_config": {"depth": 4, "embed_dim": 256, "num_heads": 4, "hidden_size": 512},
                    "text_config": {"hidden_size": 512, "intermediate_size": 1536, "num_hidden_layers": 4,
                                    "num_attention_heads": 8, "num_key_value_heads": 2}}


def model_ids() -> list[str]:
    """Every registry id with an embedded config (the trained twins included)."""
    from workbench.models import registry

    ids = []
    for model_id, entry in registry.ENTRIES.items():
        if entry.module is None:
            continue
        adapter, spec = registry.get(model_id)
        if spec.config:
            ids.append(model_id)
    return ids


def configurations(model_id: str) -> list[dict[str, Any]]:
    """predict() keyword sets for one model: the full grid on CUDA plus the options checked where cheap."""
    base = {"model": model_id}
    configs = [base | {"frames": f, "height": h, "width": w, "quantization": q, "attn_implementation": a}
               for f, (h, w), q, a in itertools.product(FRAMES, SIZES, QUANTIZATIONS, ATTENTIONS)]
    one = base | {"frames": 7, "height": 1080, "width": 1920}
    for q, a in itertools.product(QUANTIZATIONS[1:], ATTENTIONS):
        configs.append(one | {"quantization": q, "attn_implementation": a, "quantize_vision": True})
        configs.append(one | {"quantization": q, "attn_implementation": a, "device": "cpu", "cpu_kernels": "avx512"})
        configs.append(one | {"quantization": q, "attn_implementation": a, "device": "cpu", "cpu_kernels": "avx2",
                              "quantize_vision": True})
    configs.append(one | {"quantization": "4bit-nf4", "double_quant": True})
    for a in ATTENTIONS:
        configs.append(one | {"attn_implementation": a, "device": "cpu", "cpu_kernels": "avx512"})
        configs.append(base | {"frames": 16, "height": 1080, "width": 1920, "attn_implementation": a,
                               "max_pixels": 200704})
        configs.append(base | {"frames": 4, "height": 480, "width": 640, "attn_implementation": a,
                               "source": "tiny"})
        for era in ("4.5x", "4.4x"):
            configs.append(one | {"attn_implementation": a, "transformers_era": era})
    configs.append(one | {"transformers_era": "4.5x", "masked_sdpa": "math"})
    configs.append(one | {"vision_attention_scope": "clip", "attn_implementation": "eager"})
    configs.append(one | {"dtype": "float16", "max_new_tokens": 64, "text_tokens": 200})
    configs.append(one | {"dtype": "float32", "quantization": "8bit"})
    if model_id == "auroracap-7b-vid":
        for ratio in (0.1, 0.4, 1.0):
            configs.append(one | {"model_options": {"token_kept_ratio": ratio}})
    if model_id == "qwen2-vl-2b":  # the mid-size model the memory tests measure
        for f, a in itertools.product((4, 16), ATTENTIONS):
            configs.append(base | {"frames": f, "height": 280, "width": 280, "attn_implementation": a,
                                   "config_overrides": MIDSIZE_QWEN2_VL, "device": "cpu", "cpu_kernels": "avx512"})
    return configs


def predict_row(config: dict[str, Any]) -> dict[str, Any]:
    from workbench.cpu_kernels import CpuKernels
    from workbench.memory.predictor import predict

    kwargs = dict(config)
    if "cpu_kernels" in kwargs:
        kwargs["cpu_kernels"] = CpuKernels(*CPU_KERNELS[kwargs["cpu_kernels"]])
    model = kwargs.pop("model")
    try:
        prediction = predict(model, **kwargs)
    except ValueError as err:  # a configuration the processor refuses (Qwen3-VL's single frame) stays refused
        return {"config": config, "error": f"{type(err).__name__}: {err}"}
    return {"config": config, "family": prediction.family, "tokens": prediction.tokens,
            "phases": prediction.phases, "notes": prediction.notes,
            "vision_attention_scope": prediction.vision_attention_scope}


def build_table() -> list[dict[str, Any]]:
    return [predict_row(config) for model_id in model_ids() for config in configurations(model_id)]


def dump(rows: list[dict[str, Any]]) -> str:
    """One row per line, keys sorted: a changed prediction shows as a one-line diff."""
    return "[\n" + ",\n".join(json.dumps(row, sort_keys=True, separators=(",", ":")) for row in rows) + "\n]\n"


def test_prediction_table_unchanged(isolated_cache: Path) -> None:
    expected = json.loads(FIXTURE.read_text())
    assert len(expected) > 1500
    configs = [row["config"] for row in expected]
    assert configs == [c for m in model_ids() for c in configurations(m)], \
        "the grid changed: regenerate the fixture deliberately (see the module docstring)"
    changed = []
    for row in expected:
        actual = json.loads(json.dumps(predict_row(row["config"])))
        if actual != row:
            changed.append((row["config"], {k: (row[k], actual[k]) for k in row if row[k] != actual[k]}))
    assert not changed, f"{len(changed)} of {len(expected)} predictions changed; first: {changed[0]}"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    table = build_table()
    FIXTURE.write_text(dump(table))
    print(f"wrote {len(table)} predictions to {FIXTURE}")
