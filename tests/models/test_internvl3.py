"""InternVL3 (-hf): 256 visual tokens per 448 px frame against the real processor, the untied lm_head
(pitfall 6), and the tiny twin in every quantization."""

from __future__ import annotations

import pytest

from workbench.models import GenerationSettings, load, registry
from workbench.models.internvl3 import ADAPTER
from workbench.weights import meta_model

MODEL_ID = "internvl3-1b"
GEN = GenerationSettings(max_new_tokens=8, min_new_tokens=4)
QUANTIZATIONS = ("none", "8bit", "4bit-nf4")


@pytest.fixture(scope="module")
def twins():
    loaded = {}

    def get(quantization: str):
        if quantization not in loaded:
            loaded[quantization] = load(MODEL_ID, source="tiny", dtype="float32", quantization=quantization)
        return loaded[quantization]

    yield get
    for model in loaded.values():
        model.unload()


def test_specs_resolve_by_hub_id_and_take_native_video():
    assert registry.resolve("OpenGVLab/InternVL3-8B-hf") == "internvl3-8b"
    assert registry.resolve("internvl3-1b-hf") == MODEL_ID
    assert all(s.frame_mode == "video" and s.fixed_frames is None for s in ADAPTER.specs.values())


@pytest.mark.parametrize("model_id", sorted(ADAPTER.specs))
def test_real_architecture_matches_published_parameter_count(model_id):
    spec = ADAPTER.specs[model_id]
    model = meta_model(ADAPTER, ADAPTER.real_config(spec))
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(spec.published_params, rel=0.01)
    names = {name for name, _ in model.named_modules()}
    assert all(prefix in names for prefix in ADAPTER.skip_modules)


def test_top_level_flag_unties_the_lm_head():
    """InternVLConfig ties by default and only the top-level flag counts in 5.x: tied, 1B would be 0.80B."""
    spec = ADAPTER.specs[MODEL_ID]
    untied = meta_model(ADAPTER, ADAPTER.real_config(spec))
    assert untied.lm_head.weight is not untied.model.language_model.embed_tokens.weight
    tied = meta_model(ADAPTER, ADAPTER.config_cls().from_dict({**spec.config, "tie_word_embeddings": True}))
    difference = sum(p.numel() for p in untied.parameters()) - sum(p.numel() for p in tied.parameters())
    assert difference == untied.lm_head.weight.numel()


def test_visual_tokens_match_the_processor_and_vision_tower(twins, probe_clip):
    import torch

    loaded = twins("none")
    frames, timestamps = probe_clip(3)
    expected = ADAPTER.visual_tokens(3, frames.shape[1], frames.shape[2])
    assert (expected.llm_tokens_per_segment, expected.llm_tokens, expected.segment_len) == (256, 768, 1025)
    inputs = ADAPTER.build_inputs(loaded, frames, timestamps, "What happens?")
    assert int((inputs["input_ids"] == loaded.model.config.image_token_id).sum()) == expected.llm_tokens
    assert tuple(inputs["pixel_values"].shape) == (3, 3, 448, 448)
    text = loaded.processor.tokenizer.decode(inputs["input_ids"][0])
    assert all(f"Frame{i}: <img>" in text for i in (1, 2, 3))
    with torch.inference_mode():
        hidden = loaded.model.model.vision_tower(inputs["pixel_values"]).last_hidden_state
        features = loaded.model.model.get_image_features(inputs["pixel_values"]).pooler_output
    assert hidden.shape[:2] == (3, expected.segment_len)
    assert features.shape[:2] == (3, expected.llm_tokens_per_segment)


@pytest.mark.parametrize("quantization", QUANTIZATIONS)
def test_tiny_twin_captions_the_clip(twins, probe_clip, quantization):
    loaded = twins(quantization)
    frames, timestamps = probe_clip(3)
    record = loaded.describe(frames, timestamps, generation=GEN)
    assert record.status == "ok", record.error
    assert record.n_frames == 3
    assert GEN.min_new_tokens <= record.n_tokens <= GEN.max_new_tokens
    assert record.n_input_tokens > ADAPTER.visual_tokens(3, 0, 0).llm_tokens
    report = loaded.report
    assert report.n_params > 0 and report.memory_bytes > 0
    if quantization == "none":
        assert report.unquantized_modules == []
    else:
        joined = " ".join(report.unquantized_modules)
        assert "model.vision_tower" in joined and "model.multi_modal_projector" in joined and "lm_head" in joined
        assert not any(name.startswith("model.language_model") for name in report.unquantized_modules)


def test_quantized_twins_hold_fewer_bytes(twins):
    none, int8, nf4 = (twins(q).report for q in QUANTIZATIONS)
    assert none.n_params == int8.n_params == nf4.n_params
    assert nf4.memory_bytes < int8.memory_bytes < none.memory_bytes


def test_captions_are_deterministic(twins, probe_clip):
    loaded = twins("none")
    frames, timestamps = probe_clip(3)
    first, again = (loaded.describe(frames, timestamps, generation=GEN) for _ in range(2))
    assert first.text == again.text and first.n_tokens == again.n_tokens


def test_random_config_points_token_ids_at_the_tiny_tokenizer(twins):
    processor = twins("none").processor
    config = ADAPTER.random_config(ADAPTER.specs["internvl3-8b"], processor)
    assert config.image_token_id == processor.tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    assert config.text_config.eos_token_id == processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert config.text_config.hidden_size == 3584
