"""Qwen3-VL: whole-clip pixel budget, timestamped frame pairs, deepstack specs, and the tiny twin on CPU."""

from __future__ import annotations

import re

import numpy as np
import pytest

from workbench.models import GenerationSettings, load, registry
from workbench.models.qwen3_vl import ADAPTER

MODEL_ID = "qwen3-vl-2b"
GEN = GenerationSettings(max_new_tokens=8, min_new_tokens=4)


@pytest.fixture(scope="module")
def loaded():
    model = load(MODEL_ID, source="tiny", dtype="float32", quantization="none")
    yield model
    model.unload()


def _count(inputs, token_id: int) -> int:
    return int((inputs["input_ids"] == token_id).sum())


def test_specs_resolve_and_keep_deepstack_below_the_vision_depth():
    assert registry.resolve("Qwen/Qwen3-VL-8B-Instruct") == "qwen3-vl-8b"
    ties = {}
    for model_id, spec in ADAPTER.specs.items():
        config = ADAPTER.real_config(spec)
        vision = config.vision_config
        assert max(vision.deepstack_visual_indexes) < vision.depth
        assert int(vision.num_position_embeddings ** 0.5) ** 2 == vision.num_position_embeddings
        text = config.text_config
        assert sum(text.rope_parameters["mrope_section"]) == text.head_dim // 2
        assert text.rope_parameters["mrope_interleaved"] is True
        assert vision.out_hidden_size == text.hidden_size
        ties[model_id] = config.tie_word_embeddings
    assert ties == {"qwen3-vl-2b": True, "qwen3-vl-4b": True, "qwen3-vl-8b": False}


def test_visual_tokens_use_32_pixel_tokens_and_a_per_frame_budget():
    tokens = ADAPTER.visual_tokens(8, 480, 640, max_pixels=256 * 32 * 32)
    h, w = tokens.resized_height, tokens.resized_width
    assert h % 32 == 0 and w % 32 == 0 and h * w <= 256 * 32 * 32
    assert tokens.llm_tokens == 4 * (h // 32) * (w // 32) and tokens.extra_prompt_tokens == 4 * (2 + 6)
    assert tokens.encoder_tokens == 4 * tokens.llm_tokens
    # the budget is per frame: twice the frames at the same cap keep the same size per frame
    doubled = ADAPTER.visual_tokens(16, 480, 640, max_pixels=256 * 32 * 32)
    assert (doubled.resized_height, doubled.resized_width) == (h, w)


@pytest.mark.parametrize("n_frames, height, width, max_pixels, min_pixels", [
    (4, 240, 320, None, None),  # checkpoint clip budget (25M pixels): near-native size
    (5, 480, 640, 100 * 32 * 32, None),  # per-frame cap, odd frame count
    (16, 480, 848, None, None),  # many frames under the whole-clip budget
    (2, 24, 40, None, 64 * 64),  # frame smaller than a token, scaled up
])
def test_visual_tokens_match_what_the_processor_produces(loaded, n_frames, height, width, max_pixels, min_pixels):
    frames = np.random.default_rng(2).integers(0, 255, (n_frames, height, width, 3), dtype=np.uint8)
    inputs = ADAPTER.build_inputs(loaded, frames, None, "x", max_pixels=max_pixels, min_pixels=min_pixels)
    expected = ADAPTER.visual_tokens(n_frames, height, width, max_pixels=max_pixels, min_pixels=min_pixels)
    assert inputs["video_grid_thw"][0].tolist() == [expected.n_segments, expected.patch_grid[0], expected.patch_grid[1]]
    assert inputs["pixel_values_videos"].shape[0] == expected.encoder_tokens
    config = loaded.model.config
    assert _count(inputs, config.video_token_id) == expected.llm_tokens
    assert _count(inputs, config.vision_start_token_id) == expected.n_segments


def test_each_frame_pair_carries_its_mean_timestamp(loaded, probe_clip):
    frames, timestamps = probe_clip(4)
    inputs = ADAPTER.build_inputs(loaded, frames, timestamps, "Describe.")
    text = loaded.processor.tokenizer.decode(inputs["input_ids"][0])
    stamps = [float(t) for t in re.findall(r"<([\d.]+) seconds><\|vision_start\|>", text)]
    expected = [(timestamps[0] + timestamps[1]) / 2, (timestamps[2] + timestamps[3]) / 2]
    assert stamps == pytest.approx(expected, abs=0.05)
    assert text.startswith("<|im_start|>user\n<") and text.count("<|vision_start|>") == 2


def test_checkpoint_template_that_wraps_the_video_is_collapsed(loaded, probe_clip):
    """A hub template writes <|vision_start|><|video_pad|><|vision_end|>; markers must not double."""
    import copy
    import dataclasses

    processor = copy.copy(loaded.processor)
    processor.chat_template = loaded.processor.chat_template.replace(
        "{{ '<|video_pad|>' }}", "{{ '<|vision_start|><|video_pad|><|vision_end|>' }}")
    wrapped = dataclasses.replace(loaded, processor=processor)
    frames, timestamps = probe_clip(4)
    assert "<|vision_start|><|video_pad|>" in processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}]}], tokenize=False)
    inputs = ADAPTER.build_inputs(wrapped, frames, timestamps, "x")
    assert _count(inputs, loaded.model.config.vision_start_token_id) == 2  # one per frame pair


@pytest.mark.parametrize("quantization", ["none", "8bit", "4bit-nf4"])
def test_tiny_twin_captions_probe_frames(quantization, loaded, probe_clip):
    model = loaded if quantization == "none" else load(
        MODEL_ID, source="tiny", dtype="float32", quantization=quantization)
    frames, timestamps = probe_clip(4)
    first = model.describe(frames, timestamps, generation=GEN)
    second = model.describe(frames, timestamps, generation=GEN)
    assert first.status == "ok", first.error
    assert first.n_tokens >= GEN.min_new_tokens and first.n_frames == 4
    assert first.text == second.text
    report = model.report
    assert report.n_params == loaded.report.n_params > 0
    if quantization != "none":
        assert report.memory_bytes < loaded.report.memory_bytes
        assert any(name.startswith("model.visual") for name in report.unquantized_modules)
        assert not any(name.startswith("model.language_model") for name in report.unquantized_modules)
        model.unload()
