"""LLaVA-NeXT-Video: pooled token geometry, the real architecture on the meta device, the tiny twin on CPU."""

from __future__ import annotations

import pytest

from workbench.models import GenerationSettings, load, registry
from workbench.models.llava_next_video import ADAPTER, pooled_video_tokens

MODEL_ID = "llava-next-video-7b"
N_FRAMES = 4
GEN = GenerationSettings(max_new_tokens=8, min_new_tokens=4)
VISION_MODULES = ("model.vision_tower", "model.multi_modal_projector")


def test_visual_tokens_are_pooled_to_144_per_frame():
    tokens = ADAPTER.visual_tokens(32, 480, 640)
    assert tokens.segment_len == 24 * 24 + 1  # 336 px / patch 14, plus CLS
    assert tokens.llm_tokens_per_segment == 144  # CLS dropped, 24 x 24 pooled 2 x 2
    assert tokens.llm_tokens == 32 * 144
    assert ADAPTER.visual_tokens(5, 100, 900).llm_tokens == 5 * 144  # every frame is cropped square


def test_odd_patch_grid_cannot_be_pooled():
    with pytest.raises(ValueError, match="cannot be pooled"):
        pooled_video_tokens(1, 336, 336, crop=322)  # 23 x 23 patches


def test_spec_resolves_by_hub_id_and_takes_native_video():
    assert registry.resolve("llava-hf/LLaVA-NeXT-Video-7B-hf") == MODEL_ID
    spec = ADAPTER.specs[MODEL_ID]
    assert spec.frame_mode == "video" and spec.fixed_frames is None


def test_real_architecture_matches_published_parameter_count():
    import torch

    spec = ADAPTER.specs[MODEL_ID]
    config = ADAPTER.real_config(spec)
    assert config.text_config.rope_parameters["rope_type"] == "linear"
    with torch.device("meta"):
        model = ADAPTER.model_cls()._from_config(config)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == pytest.approx(spec.published_params, rel=0.01)


@pytest.fixture(scope="module")
def loaded():
    model = load(MODEL_ID, source="tiny", dtype="float32", quantization="none")
    yield model
    model.unload()


def test_tiny_twin_keeps_the_real_geometry(loaded):
    vision = loaded.model.config.vision_config
    assert (vision.image_size, vision.patch_size) == (336, 14)
    assert vision.num_hidden_layers >= 2  # vision_feature_layer=-2
    assert loaded.processor.video_processor.crop_size["height"] == 336


def test_processor_emits_the_predicted_video_tokens(loaded, probe_clip):
    frames, timestamps = probe_clip(N_FRAMES)
    inputs = ADAPTER.build_inputs(loaded, frames, timestamps, loaded.spec.prompt)
    expected = ADAPTER.visual_tokens(N_FRAMES, frames.shape[1], frames.shape[2])
    n_video = int((inputs["input_ids"] == loaded.model.config.video_token_id).sum())
    assert n_video == expected.llm_tokens == N_FRAMES * 144
    assert tuple(inputs["pixel_values_videos"].shape) == (
        1, N_FRAMES, 3, expected.resized_height, expected.resized_width)


def test_vision_encoder_and_pooler_lengths_per_frame(loaded, probe_clip):
    import torch

    frames, timestamps = probe_clip(N_FRAMES)
    pixels = ADAPTER.build_inputs(loaded, frames, timestamps, "x")["pixel_values_videos"]
    expected = ADAPTER.visual_tokens(N_FRAMES, frames.shape[1], frames.shape[2])
    with torch.inference_mode():
        hidden = loaded.model.model.vision_tower(pixels[0, :1]).last_hidden_state
        video = loaded.model.model.get_video_features(pixels).pooler_output
    assert hidden.shape[1] == expected.segment_len
    assert video.shape[1] == expected.llm_tokens


def test_tiny_caption_is_deterministic_and_reported(loaded, probe_clip):
    frames, timestamps = probe_clip(N_FRAMES)
    first = loaded.describe(frames, timestamps, generation=GEN)
    second = loaded.describe(frames, timestamps, generation=GEN)
    assert first.status == "ok", first.error
    assert 4 <= first.n_tokens <= 8
    assert first.n_frames == N_FRAMES and first.notes == []
    assert second.text == first.text
    report = loaded.report
    assert report.n_params > 0 and report.memory_bytes > 0
    assert report.unquantized_modules == []


@pytest.mark.parametrize("quantization", ["8bit", "4bit-nf4"])
def test_quantized_tiny_twin_captions_and_keeps_vision_in_full_precision(loaded, probe_clip, quantization):
    frames, timestamps = probe_clip(N_FRAMES)
    quantized = load(MODEL_ID, source="tiny", dtype="float32", quantization=quantization)
    try:
        record = quantized.describe(frames, timestamps, generation=GEN)
        report = quantized.report
    finally:
        quantized.unload()
    assert record.status == "ok", record.error
    assert record.n_tokens >= 4 and record.n_frames == N_FRAMES
    assert report.n_params == loaded.report.n_params
    assert 0 < report.memory_bytes < loaded.report.memory_bytes
    kept = " ".join(report.unquantized_modules)
    assert all(module in kept for module in VISION_MODULES + ("lm_head",))
    assert "language_model" not in kept


def test_random_source_points_real_config_at_the_tiny_tokenizer(loaded):
    config = ADAPTER.random_config(loaded.spec, loaded.processor)
    tokenizer = loaded.processor.tokenizer
    assert config.video_token_index == tokenizer.convert_tokens_to_ids("<video>")
    assert config.image_token_index == tokenizer.convert_tokens_to_ids("<image>")
    assert config.text_config.eos_token_id == tokenizer.eos_token_id
    assert config.text_config.vocab_size == 32064 and config.text_config.hidden_size == 4096
