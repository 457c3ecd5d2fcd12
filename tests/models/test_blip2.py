"""BLIP-2: specs and parameter counts, visual tokens against the real processor, frame-by-frame captioning of
the tiny twin (batch and sequential) in every quantization."""

from __future__ import annotations

import pytest

from workbench.models import GenerationSettings, load, registry
from workbench.models.blip2 import ADAPTER, join_captions
from workbench.weights import meta_model

MODEL_ID = "blip2-opt-2.7b"
GEN = GenerationSettings(max_new_tokens=8, min_new_tokens=4)
QUANTIZATIONS = ("none", "8bit", "4bit-nf4")


@pytest.fixture(scope="module")
def twins():
    """Tiny twins in float32 (so memory compares like for like), loaded once per quantization."""
    loaded = {}

    def get(quantization: str):
        if quantization not in loaded:
            loaded[quantization] = load(MODEL_ID, source="tiny", dtype="float32", quantization=quantization)
        return loaded[quantization]

    yield get
    for model in loaded.values():
        model.unload()


def test_specs_resolve_by_hub_id_and_take_frames_as_images():
    assert registry.resolve("Salesforce/blip2-opt-6.7b") == "blip2-opt-6.7b"
    assert registry.resolve("Salesforce/blip2-flan-t5-xl") == "blip2-flan-t5-xl"
    assert set(ADAPTER.specs) == {"blip2-opt-2.7b", "blip2-opt-6.7b", "blip2-flan-t5-xl"}
    assert all(s.frame_mode == "images" and s.fixed_frames is None for s in ADAPTER.specs.values())


@pytest.mark.parametrize("model_id", sorted(ADAPTER.specs))
def test_real_architecture_matches_published_parameter_count(model_id):
    spec = ADAPTER.specs[model_id]
    model = meta_model(ADAPTER, ADAPTER.real_config(spec))
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == pytest.approx(spec.published_params, rel=0.01)


def test_flan_t5_keeps_its_own_lm_head():
    """5.23's T5Config forces tied embeddings; the adapter's model class unties the head as the checkpoint has."""
    model = meta_model(ADAPTER, ADAPTER.real_config(ADAPTER.specs["blip2-flan-t5-xl"]))
    language_model = model.language_model
    assert language_model.lm_head.weight is not language_model.shared.weight
    assert language_model.encoder.embed_tokens.weight is language_model.shared.weight  # these stay tied
    opt = meta_model(ADAPTER, ADAPTER.real_config(ADAPTER.specs["blip2-opt-2.7b"])).language_model
    assert opt.lm_head.weight is opt.model.decoder.embed_tokens.weight  # OPT ties, as published


def test_skip_modules_name_real_modules():
    model = meta_model(ADAPTER, ADAPTER.real_config(ADAPTER.specs[MODEL_ID]))
    names = {name for name, _ in model.named_modules()}
    assert all(prefix in names for prefix in ADAPTER.skip_modules)


def test_visual_tokens_match_the_processor_and_vision_tower(twins, probe_clip):
    import torch

    loaded = twins("none")
    frames, timestamps = probe_clip(3)
    expected = ADAPTER.visual_tokens(3, frames.shape[1], frames.shape[2])
    assert (expected.llm_tokens_per_segment, expected.llm_tokens, expected.segment_len) == (32, 96, 257)
    inputs = ADAPTER.build_inputs(loaded, frames, timestamps, "What is shown?")
    image_id = loaded.model.config.image_token_index
    per_row = (inputs["input_ids"] == image_id).sum(dim=1).tolist()
    assert per_row == [expected.llm_tokens_per_segment] * 3
    assert tuple(inputs["pixel_values"].shape) == (3, 3, 224, 224)
    with torch.inference_mode():
        hidden = loaded.model.vision_model(inputs["pixel_values"]).last_hidden_state
    assert hidden.shape[1] == expected.segment_len


def test_question_prompts_use_the_blip2_format():
    assert ADAPTER.format_prompt("What is happening?") == "Question: What is happening? Answer:"
    assert ADAPTER.format_prompt("") == ""
    assert ADAPTER.format_prompt("Question: x? Answer:") == "Question: x? Answer:"


def test_random_config_points_token_ids_at_the_tiny_tokenizer(twins):
    processor = twins("none").processor
    config = ADAPTER.random_config(ADAPTER.specs[MODEL_ID], processor)
    tokenizer = processor.tokenizer
    assert config.image_token_index == tokenizer.convert_tokens_to_ids("<image>")
    assert config.text_config.eos_token_id == tokenizer.encode("\n", add_special_tokens=False)[0]
    assert config.text_config.hidden_size == 2560  # still the real architecture


@pytest.mark.parametrize("quantization", QUANTIZATIONS)
def test_tiny_twin_captions_each_frame_with_its_timestamp(twins, probe_clip, quantization):
    loaded = twins(quantization)
    frames, timestamps = probe_clip(3)
    record = loaded.describe(frames, timestamps, generation=GEN)
    assert record.status == "ok", record.error
    assert record.n_frames == 3
    assert record.n_tokens >= 3 * GEN.min_new_tokens
    assert record.n_tokens <= 3 * GEN.max_new_tokens
    for t in timestamps:
        assert f"[{float(t):.1f}s]" in record.text
    report = loaded.report
    assert report.n_params > 0 and report.memory_bytes > 0
    if quantization == "none":
        assert report.unquantized_modules == []
    else:
        joined = " ".join(report.unquantized_modules)
        assert "vision_model" in joined and "qformer" in joined and "language_model.lm_head" in joined
        assert not any(name.startswith("language_model.model") for name in report.unquantized_modules)


def test_quantized_twins_hold_fewer_bytes(twins):
    none, int8, nf4 = (twins(q).report for q in QUANTIZATIONS)
    assert none.n_params == int8.n_params == nf4.n_params
    assert int8.memory_bytes < none.memory_bytes
    assert nf4.memory_bytes < int8.memory_bytes


def test_captions_are_deterministic_and_batch_equals_sequential(twins, probe_clip):
    loaded = twins("none")
    frames, timestamps = probe_clip(3)
    first = loaded.describe(frames, timestamps, generation=GEN)
    again = loaded.describe(frames, timestamps, generation=GEN)
    one_by_one = ADAPTER.describe(loaded, frames, timestamps, generation=GEN, mode="sequential")
    assert first.text == again.text
    assert one_by_one.text == first.text and one_by_one.n_tokens == first.n_tokens
    assert "mode=sequential" in one_by_one.notes and "mode=batch" in first.notes


def test_unknown_mode_is_an_error(twins, probe_clip):
    frames, timestamps = probe_clip(3)
    with pytest.raises(ValueError, match="batch' or 'sequential"):
        ADAPTER.describe(twins("none"), frames, timestamps, generation=GEN, mode="parallel")


def test_join_captions_without_timestamps_numbers_frames():
    assert join_captions(["x", "y"], None) == "[frame 1] x [frame 2] y"
