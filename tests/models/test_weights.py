"""workbench/weights.py: predicted weight bytes equal what a loaded tiny twin actually holds."""

from __future__ import annotations

import warnings

import pytest

from workbench.models import LoadSettings, load, registry
from workbench.weights import count_weights, meta_model, weight_bytes

# One id per family: tiny twins are per family (trained twins load only their committed weights).
FAMILY_IDS = sorted({registry.family_adapter(m).family: next(iter(ids)) for m, ids in registry._NATIVE.items()
                     if m not in registry.TRAINED_TWINS}.values())
QUANTS = [("none", False), ("8bit", False), ("4bit-nf4", False), ("4bit-fp4", True)]


@pytest.mark.parametrize("model_id", FAMILY_IDS)
def test_predicted_weight_bytes_match_loaded_tiny_twin(model_id):
    adapter, _ = registry.get(model_id)
    counts = count_weights(meta_model(adapter, adapter.tiny_config()), adapter.skip_modules)
    measured = {}
    for quantization, double in QUANTS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = load(model_id, LoadSettings(source="tiny", dtype="bfloat16", quantization=quantization,
                                                 double_quant=double))
        predicted = weight_bytes(counts, quantization, "bfloat16", double)
        measured[quantization] = loaded.report.memory_bytes
        # buffers kept in fp32 by some families shift a few bytes; weights themselves match exactly
        assert loaded.report.memory_bytes == pytest.approx(predicted, rel=0.002, abs=4096), \
            f"{model_id} {quantization}: measured {loaded.report.memory_bytes}, predicted {predicted}"
        loaded.unload()
    assert measured["8bit"] < measured["none"] and measured["4bit-fp4"] < measured["8bit"]


@pytest.mark.parametrize("model_id", ["qwen2-vl-2b", "blip2-opt-2.7b"])
def test_both_16bit_policies_match_loaded_tiny_twin(model_id):
    """quantize_vision (bitsandbytes' default: only the output head stays 16-bit) against the family's list."""
    import bitsandbytes as bnb

    adapter, _ = registry.get(model_id)
    measured = {}
    for quantize_vision in (False, True):
        counts = count_weights(meta_model(adapter, adapter.tiny_config()), adapter.kept_modules(quantize_vision))
        for quantization in ("8bit", "4bit-nf4"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                loaded = load(model_id, LoadSettings(source="tiny", dtype="bfloat16", quantization=quantization,
                                                     quantize_vision=quantize_vision))
            predicted = weight_bytes(counts, quantization, "bfloat16")
            assert loaded.report.memory_bytes == pytest.approx(predicted, rel=0.002, abs=4096), \
                (model_id, quantization, quantize_vision)
            measured[(quantization, quantize_vision)] = loaded.report.memory_bytes
            vision = [m for name, m in loaded.model.named_modules()
                      if name.startswith(adapter.skip_modules[0])
                      and isinstance(m, (bnb.nn.Linear8bitLt, bnb.nn.Linear4bit))]
            assert bool(vision) == quantize_vision, (model_id, quantization, quantize_vision)
            loaded.unload()
    for quantization in ("8bit", "4bit-nf4"):
        assert measured[(quantization, True)] < measured[(quantization, False)]
