"""Video-LLaVA: token geometry, the real architecture on the meta device, and the tiny twin on CPU."""

from __future__ import annotations

import dataclasses

import pytest

from workbench.models import GenerationSettings, LoadSettings, load, registry
from workbench.models.base import FrameCountError
from workbench.models.video_llava import ADAPTER, video_llava_tokens

MODEL_ID = "video-llava-7b"
GEN = GenerationSettings(max_new_tokens=8, min_new_tokens=4)
VISION_MODULES = ("model.video_tower", "model.image_tower", "model.multi_modal_projector")


def test_visual_tokens_keep_cls_and_always_count_eight_frames():
    tokens = ADAPTER.visual_tokens(4, 480, 640)  # the model resamples 4 frames to 8
    assert tokens.frames_used == 8
    assert tokens.segment_len == 16 * 16 + 1
    assert tokens.llm_tokens_per_segment == 257  # CLS kept for video
    assert tokens.llm_tokens == 2056 == ADAPTER.specs[MODEL_ID].config["video_seq_length"]
    assert video_llava_tokens(3, 100, 50).llm_tokens == 3 * 257


def test_spec_resolves_by_hub_id_and_is_fixed_frame():
    assert registry.resolve("LanguageBind/Video-LLaVA-7B-hf") == MODEL_ID
    spec = ADAPTER.specs[MODEL_ID]
    assert (spec.frame_mode, spec.fixed_frames, spec.default_frames) == ("fixed", 8, 8)


def test_real_architecture_matches_published_parameter_count():
    import torch

    spec = ADAPTER.specs[MODEL_ID]
    with torch.device("meta"):
        model = ADAPTER.model_cls()._from_config(ADAPTER.real_config(spec))
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == pytest.approx(spec.published_params, rel=0.01)
    # two full CLIP ViT-L/14 towers, one per modality
    tower = sum(p.numel() for p in model.model.video_tower.parameters())
    assert tower == sum(p.numel() for p in model.model.image_tower.parameters())
    assert tower == pytest.approx(303e6, rel=0.01)


@pytest.fixture(scope="module")
def loaded():
    model = load(MODEL_ID, source="tiny", dtype="float32", quantization="none")
    yield model
    model.unload()


def test_processor_emits_the_predicted_video_tokens(loaded, probe_clip):
    frames, timestamps = probe_clip(8)
    inputs = ADAPTER.build_inputs(loaded, frames, timestamps, loaded.spec.prompt)
    expected = ADAPTER.visual_tokens(8, frames.shape[1], frames.shape[2])
    n_video = int((inputs["input_ids"] == loaded.model.config.video_token_id).sum())
    assert n_video == expected.llm_tokens == 2056
    assert tuple(inputs["pixel_values_videos"].shape) == (
        1, 8, 3, expected.resized_height, expected.resized_width)
    assert inputs["input_ids"][0, 0] == loaded.processor.tokenizer.bos_token_id  # Llama adds <s>


def test_vision_encoder_sequence_length_per_frame(loaded, probe_clip):
    import torch

    frames, timestamps = probe_clip(8)
    pixels = ADAPTER.build_inputs(loaded, frames, timestamps, "x")["pixel_values_videos"][0, :1]
    with torch.inference_mode():
        hidden = loaded.model.model.video_tower(pixels).last_hidden_state
    expected = ADAPTER.visual_tokens(8, frames.shape[1], frames.shape[2])
    assert hidden.shape[1] == expected.segment_len


def test_tiny_caption_is_deterministic_and_reported(loaded, probe_clip):
    frames, timestamps = probe_clip(8)
    first = loaded.describe(frames, timestamps, generation=GEN)
    second = loaded.describe(frames, timestamps, generation=GEN)
    assert first.status == "ok", first.error
    assert 4 <= first.n_tokens <= 8
    assert first.n_frames == 8 and first.notes == []
    assert first.n_input_tokens > 2056
    assert second.text == first.text
    report = loaded.report
    assert report.n_params > 0 and report.memory_bytes > 0
    assert report.unquantized_modules == []


def test_other_frame_counts_are_resampled_loudly_or_refused(loaded, probe_clip):
    frames, timestamps = probe_clip(4)
    with pytest.warns(UserWarning, match="exactly 8 frames"):
        record = loaded.describe(frames, timestamps, generation=GEN)
    assert record.status == "ok", record.error
    assert record.n_frames == 8 and "resampled 4 given frames to 8" in record.notes[0]
    refusing = dataclasses.replace(loaded, settings=LoadSettings(source="tiny", dtype="float32",
                                                                 frame_policy="refuse"))
    with pytest.raises(FrameCountError, match="exactly 8 frames"):
        refusing.describe(frames, timestamps, generation=GEN)


@pytest.mark.parametrize("quantization", ["8bit", "4bit-nf4"])
def test_quantized_tiny_twin_captions_and_keeps_vision_in_full_precision(loaded, probe_clip, quantization):
    frames, timestamps = probe_clip(8)
    quantized = load(MODEL_ID, source="tiny", dtype="float32", quantization=quantization)
    try:
        record = quantized.describe(frames, timestamps, generation=GEN)
        report = quantized.report
    finally:
        quantized.unload()
    assert record.status == "ok", record.error
    assert record.n_tokens >= 4 and record.n_frames == 8
    assert report.n_params == loaded.report.n_params  # 4-bit counts logical elements, not packed bytes
    assert 0 < report.memory_bytes < loaded.report.memory_bytes
    kept = " ".join(report.unquantized_modules)
    assert all(module in kept for module in VISION_MODULES + ("lm_head",))
    assert "language_model" not in kept


def test_random_source_points_real_config_at_the_tiny_tokenizer(loaded):
    config = ADAPTER.random_config(loaded.spec, loaded.processor)
    tokenizer = loaded.processor.tokenizer
    assert config.video_token_index == tokenizer.convert_tokens_to_ids("<video>")
    assert config.image_token_index == tokenizer.convert_tokens_to_ids("<image>")
    assert (config.text_config.bos_token_id, config.text_config.eos_token_id) == (
        tokenizer.bos_token_id, tokenizer.eos_token_id)
    assert config.text_config.vocab_size == 32064 and config.text_config.hidden_size == 4096
