"""The `random` weights source: a full architecture with random weights, quantized through from_pretrained.

A mid-size Qwen2-VL (the 2B spec shrunk to ~120M parameters) stands in for the real sizes, which are too
big for CPU tests. Two departures from the 2B shape keep its captions readable: the vocabulary is the tiny
tokenizer's (the random source decodes with the tiny tokenizer, so ids beyond it decode to nothing), and
the embeddings are untied (a random tied model mostly repeats the prompt's last token, "\\n").
"""

from __future__ import annotations

import dataclasses
import functools

import pytest

from workbench.models import GenerationSettings, LoadSettings
from workbench.models.qwen2_vl import ADAPTER
from workbench.weights import count_weights, meta_model, weight_bytes

GEN = GenerationSettings(max_new_tokens=8, min_new_tokens=4)


@functools.lru_cache(maxsize=1)
def mid_size_spec():
    base = ADAPTER.specs["qwen2-vl-2b"]
    tokenizer = ADAPTER.tiny_tokenizer()
    config = {
        **base.config,
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "tie_word_embeddings": False,
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 6,
        "max_window_layers": 6,
        "num_attention_heads": 16,  # head_dim 64: sections sum to 32
        "num_key_value_heads": 2,
        "rope_scaling": {"type": "mrope", "mrope_section": [8, 12, 12]},
        "vision_config": {**base.config["vision_config"], "depth": 4, "embed_dim": 640, "num_heads": 10,
                          "hidden_size": 1024},
    }
    counts = count_weights(meta_model(ADAPTER, ADAPTER.real_config(
        dataclasses.replace(base, config=config))), ADAPTER.skip_modules)
    spec = dataclasses.replace(base, model_id="qwen2-vl-mid", config=config,
                               published_params=float(counts.total_params))
    return spec, counts


@pytest.fixture(scope="module")
def mid():
    spec, counts = mid_size_spec()
    loaded = ADAPTER.load(spec, LoadSettings(source="random", dtype="bfloat16", quantization="8bit"))
    yield loaded, counts
    loaded.unload()


def _linear_layers(model, prefix: str):
    import torch

    return [(name, m) for name, m in model.named_modules()
            if name.startswith(prefix) and isinstance(m, torch.nn.Linear)]


def test_mid_size_architecture_is_between_tiny_and_2b(mid):
    loaded, counts = mid
    assert 100e6 < counts.total_params < 300e6
    assert loaded.report.n_params == counts.total_params
    assert loaded.report.source == "random"


def test_language_model_linears_are_int8_and_vision_stays_16_bit(mid):
    import bitsandbytes as bnb
    import torch

    loaded, counts = mid
    language = _linear_layers(loaded.model, "model.language_model")
    assert len(language) == counts.quantized_layers == 6 * 7
    for name, module in language:
        assert isinstance(module, bnb.nn.Linear8bitLt), name
        assert module.weight.dtype == torch.int8, f"{name} holds {module.weight.dtype} weights: not quantized"
    for name, module in _linear_layers(loaded.model, "model.visual") + _linear_layers(loaded.model, "lm_head"):
        assert type(module) is torch.nn.Linear and module.weight.dtype == torch.bfloat16, name
    assert any(n.startswith("model.visual") for n in loaded.report.unquantized_modules)
    assert "lm_head" in loaded.report.unquantized_modules


def test_memory_is_int8_weights_plus_16_bit_rest(mid):
    loaded, counts = mid
    predicted = weight_bytes(counts, "8bit", "bfloat16")
    assert loaded.report.memory_bytes == pytest.approx(predicted, rel=0.15)
    assert loaded.report.memory_bytes < 0.85 * weight_bytes(counts, "none", "bfloat16")


def test_weights_are_initialized_not_empty(mid):
    import torch

    loaded, _ = mid
    module = loaded.model.model.language_model.layers[0].mlp.up_proj
    int8 = module.weight.data
    assert (int8 != 0).float().mean() > 0.9
    scale = module.weight.SCB if getattr(module.weight, "SCB", None) is not None else module.state.SCB
    dequantized = int8.float() * scale.float()[:, None] / 127
    initializer_range = loaded.model.config.text_config.initializer_range
    assert dequantized.std().item() == pytest.approx(initializer_range, rel=0.1)
    assert loaded.model.model.language_model.embed_tokens.weight.float().std().item() == pytest.approx(
        initializer_range, rel=0.1)
    assert torch.all(loaded.model.model.language_model.norm.weight == 1)
    for name, param in loaded.model.named_parameters():
        if param.dtype.is_floating_point:
            assert torch.isfinite(param).all(), f"{name} is not initialized"


def test_random_mid_size_model_captions_probe_frames(mid, probe_clip):
    loaded, _ = mid
    frames, timestamps = probe_clip(4)
    record = loaded.describe(frames, timestamps, generation=GEN)
    assert record.status == "ok", record.error
    assert record.n_tokens >= GEN.min_new_tokens and record.n_frames == 4


def test_random_mid_size_model_in_4bit(probe_clip):
    import bitsandbytes as bnb
    import torch

    spec, counts = mid_size_spec()
    loaded = ADAPTER.load(spec, LoadSettings(source="random", dtype="bfloat16", quantization="4bit-nf4"))
    language = _linear_layers(loaded.model, "model.language_model")
    assert all(isinstance(m, bnb.nn.Linear4bit) and m.weight.dtype == torch.uint8 for _, m in language)
    assert loaded.report.memory_bytes == pytest.approx(weight_bytes(counts, "4bit-nf4", "bfloat16"), rel=0.15)
    biases = [m.bias for _, m in language if m.bias is not None]
    assert biases and all(torch.isfinite(b).all() for b in biases)  # q/k/v biases are initialized
    frames, timestamps = probe_clip(4)
    record = loaded.describe(frames, timestamps, generation=GEN)
    assert record.status == "ok", record.error
    loaded.unload()
