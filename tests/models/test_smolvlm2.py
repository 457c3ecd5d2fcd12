"""SmolVLM2: 64 or 81 visual tokens per frame against the real processor settings, timestamped frame prompts
from the clip's own times, and the tiny twin (256M geometry) in every quantization."""

from __future__ import annotations

import pytest

from workbench.models import GenerationSettings, load, registry
from workbench.models.smolvlm2 import ADAPTER, video_metadata
from workbench.weights import meta_model

MODEL_ID = "smolvlm2-256m"
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
    assert registry.resolve("HuggingFaceTB/SmolVLM2-2.2B-Instruct") == "smolvlm2-2.2b"
    assert registry.resolve("HuggingFaceTB/SmolVLM2-500M-Video-Instruct") == "smolvlm2-500m"
    assert registry.resolve("smolvlm2-256m-video-instruct") == MODEL_ID
    assert all(s.frame_mode == "video" and s.fixed_frames is None for s in ADAPTER.specs.values())


@pytest.mark.parametrize("model_id", sorted(ADAPTER.specs))
def test_real_architecture_matches_published_parameter_count(model_id):
    spec = ADAPTER.specs[model_id]
    model = meta_model(ADAPTER, ADAPTER.real_config(spec))
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(spec.published_params, rel=0.01)
    assert model.lm_head.weight is not model.model.text_model.embed_tokens.weight  # untied, as published
    names = {name for name, _ in model.named_modules()}
    assert all(prefix in names for prefix in ADAPTER.skip_modules)


@pytest.mark.parametrize("model_id, per_frame, side, vision_seq", [
    ("smolvlm2-256m", 64, 512, 1024),  # SigLIP base, 512 px / 16, 4x4 shuffle
    ("smolvlm2-2.2b", 81, 384, 729),  # SigLIP so400m, 384 px / 14 = 27 (floor), 3x3 shuffle
])
def test_visual_tokens_match_what_the_real_processor_settings_produce(twins, probe_clip, model_id, per_frame,
                                                                      side, vision_seq):
    loaded = twins("none")
    frames, timestamps = probe_clip(3)
    expected = ADAPTER.visual_tokens(3, frames.shape[1], frames.shape[2], model_id=model_id)
    assert (expected.llm_tokens_per_segment, expected.llm_tokens) == (per_frame, 3 * per_frame)
    assert expected.segment_len == vision_seq
    processor = ADAPTER.build_processor(ADAPTER.specs[model_id], loaded.processor.tokenizer)
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "x"}]}],
        add_generation_prompt=True, tokenize=False)
    inputs = processor(text=text, videos=[frames], video_metadata=[video_metadata(frames.shape, timestamps)],
                       return_tensors="pt")
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert int((inputs["input_ids"] == image_id).sum()) == expected.llm_tokens
    assert tuple(inputs["pixel_values"].shape) == (1, 3, 3, side, side)


def test_vision_tower_sequence_per_frame(twins, probe_clip):
    import torch

    loaded = twins("none")
    frames, timestamps = probe_clip(2)
    inputs = ADAPTER.build_inputs(loaded, frames, timestamps, "x")
    with torch.inference_mode():
        hidden = loaded.model.model.vision_model(inputs["pixel_values"][0]).last_hidden_state
    assert hidden.shape[:2] == (2, ADAPTER.visual_tokens(2, 0, 0).segment_len)


def test_frame_prompts_carry_the_clips_own_timestamps(twins, probe_clip):
    loaded = twins("none")
    frames, timestamps = probe_clip(4)
    inputs = ADAPTER.build_inputs(loaded, frames, timestamps, "What happens?")
    text = loaded.processor.tokenizer.decode(inputs["input_ids"][0])
    for t in timestamps:
        seconds = int(t)
        assert f"Frame from {seconds // 60:02d}:{seconds % 60:02d}:" in text
    assert "series of four frames" in text
    assert text.rstrip().endswith("Assistant:")


def test_video_metadata_defaults_to_one_frame_per_second():
    meta = video_metadata((3, 10, 10, 3), None)
    assert meta.timestamps == [0.0, 1.0, 2.0]
    assert meta.duration == pytest.approx(2.5)


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
        assert "model.vision_model" in joined and "model.connector" in joined and "lm_head" in joined
        assert not any(name.startswith("model.text_model") for name in report.unquantized_modules)


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
    config = ADAPTER.random_config(ADAPTER.specs["smolvlm2-2.2b"], processor)
    assert config.image_token_id == processor.tokenizer.convert_tokens_to_ids("<image>")
    assert config.text_config.eos_token_id == processor.tokenizer.convert_tokens_to_ids("<end_of_utterance>")
    assert config.text_config.hidden_size == 2048
