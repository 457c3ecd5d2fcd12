"""Qwen2-VL: token geometry against the real processor, token-id alignment, and the tiny twin on CPU."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from workbench.models import GenerationSettings, LoadSettings, load, registry
from workbench.models.qwen2_vl import ADAPTER, frame_metadata

MODEL_ID = "qwen2-vl-2b"
GEN = GenerationSettings(max_new_tokens=8, min_new_tokens=4)


@dataclasses.dataclass(frozen=True)
class PixelSettings(LoadSettings):
    """LoadSettings with a per-frame pixel budget, as build_inputs reads it when LoadSettings has one."""

    max_pixels: int | None = None


@pytest.fixture(scope="module")
def loaded():
    model = load(MODEL_ID, source="tiny", dtype="float32", quantization="none")
    yield model
    model.unload()


def _count(inputs, token_id: int) -> int:
    return int((inputs["input_ids"] == token_id).sum())


def test_specs_resolve_by_hub_id_and_take_native_video():
    assert registry.resolve("Qwen/Qwen2-VL-7B-Instruct") == "qwen2-vl-7b"
    assert registry.resolve("qwen2-vl-2b-instruct") == MODEL_ID
    assert all(spec.frame_mode == "video" and spec.fixed_frames is None for spec in ADAPTER.specs.values())


def test_visual_tokens_follow_the_published_formula():
    tokens = ADAPTER.visual_tokens(8, 480, 640, max_pixels=448 * 448)
    h, w = tokens.resized_height, tokens.resized_width
    assert h % 28 == 0 and w % 28 == 0 and h * w <= 448 * 448
    assert tokens.llm_tokens == (8 // 2) * (h // 28) * (w // 28)
    assert tokens.encoder_tokens == 4 * tokens.llm_tokens
    assert ADAPTER.visual_tokens(7, 480, 640).n_segments == 4  # odd counts pad with the last frame


@pytest.mark.parametrize("n_frames, height, width, max_pixels, min_pixels", [
    (4, 240, 320, None, None),  # checkpoint budget: near-native size
    (5, 480, 640, 200704, None),  # per-frame cap, odd frame count
    (2, 90, 700, 50176, None),  # wide frame, rounding on both sides
    (2, 20, 30, None, 56 * 56 * 4),  # tiny frame scaled up to min_pixels
])
def test_visual_tokens_match_what_the_processor_produces(loaded, n_frames, height, width, max_pixels, min_pixels):
    frames = np.random.default_rng(0).integers(0, 255, (n_frames, height, width, 3), dtype=np.uint8)
    inputs = ADAPTER.build_inputs(loaded, frames, None, "x", max_pixels=max_pixels, min_pixels=min_pixels)
    expected = ADAPTER.visual_tokens(n_frames, height, width, max_pixels=max_pixels, min_pixels=min_pixels)
    grid = inputs["video_grid_thw"][0].tolist()
    assert grid == [expected.n_segments, expected.patch_grid[0], expected.patch_grid[1]]
    assert inputs["pixel_values_videos"].shape[0] == expected.encoder_tokens
    assert _count(inputs, loaded.model.config.video_token_id) == expected.llm_tokens


def test_vision_encoder_returns_one_embedding_per_llm_token(loaded, probe_clip):
    import torch

    frames, timestamps = probe_clip(4)
    inputs = ADAPTER.build_inputs(loaded, frames, timestamps, "x")
    with torch.inference_mode():
        out = loaded.model.model.visual(inputs["pixel_values_videos"], grid_thw=inputs["video_grid_thw"])
    embeds = out.pooler_output if hasattr(out, "pooler_output") else out
    expected = ADAPTER.visual_tokens(4, frames.shape[1], frames.shape[2])
    assert embeds.shape[0] == expected.llm_tokens


def test_pixel_budget_comes_from_settings_when_they_carry_one(loaded, probe_clip):
    frames, timestamps = probe_clip(4)
    small = dataclasses.replace(loaded, settings=PixelSettings(source="tiny", max_pixels=112 * 112))
    inputs = ADAPTER.build_inputs(small, frames, timestamps, "x")
    expected = ADAPTER.visual_tokens(4, frames.shape[1], frames.shape[2], max_pixels=112 * 112)
    assert _count(inputs, loaded.model.config.video_token_id) == expected.llm_tokens
    assert expected.llm_tokens < ADAPTER.visual_tokens(4, frames.shape[1], frames.shape[2]).llm_tokens


def test_prompt_is_a_chat_turn_with_one_wrapped_video(loaded, probe_clip):
    frames, timestamps = probe_clip(4)
    inputs = ADAPTER.build_inputs(loaded, frames, timestamps, "Describe.")
    text = loaded.processor.tokenizer.decode(inputs["input_ids"][0])
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    assert text.count("<|vision_start|>") == 1 and text.endswith("Describe.<|im_end|>\n<|im_start|>assistant\n")


def test_frame_metadata_keeps_timestamps_and_sampling_rate():
    meta = frame_metadata(4, np.array([1.0, 3.0, 5.0, 7.0]))
    assert [i / meta["fps"] for i in meta["frames_indices"]] == [1.0, 3.0, 5.0, 7.0]
    assert len(meta["frames_indices"]) / meta["total_num_frames"] * meta["fps"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="3 timestamps for 4 frames"):
        frame_metadata(4, [0.0, 1.0, 2.0])


def test_random_config_points_special_tokens_at_the_tiny_tokenizer(loaded):
    tokenizer = loaded.processor.tokenizer
    config = ADAPTER.random_config(ADAPTER.specs["qwen2-vl-7b"], loaded.processor)
    assert config.video_token_id == tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert config.vision_start_token_id == tokenizer.convert_tokens_to_ids("<|vision_start|>")
    assert config.text_config.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert config.text_config.hidden_size == 3584  # the real architecture otherwise


@pytest.mark.parametrize("quantization", ["none", "8bit", "4bit-nf4"])
def test_tiny_twin_captions_probe_frames(quantization, loaded, probe_clip):
    model = loaded if quantization == "none" else load(
        MODEL_ID, source="tiny", dtype="float32", quantization=quantization)
    frames, timestamps = probe_clip(4)
    first = model.describe(frames, timestamps, generation=GEN)
    second = model.describe(frames, timestamps, generation=GEN)
    assert first.status == "ok", first.error
    assert first.n_tokens >= GEN.min_new_tokens and first.n_frames == 4
    assert first.text == second.text  # greedy and seeded
    report = model.report
    assert report.n_params == loaded.report.n_params > 0
    if quantization == "none":
        assert report.unquantized_modules == []
    else:
        assert report.memory_bytes < loaded.report.memory_bytes
        assert any(name.startswith("model.visual") for name in report.unquantized_modules)
        assert not any(name.startswith("model.language_model") for name in report.unquantized_modules)
        model.unload()
