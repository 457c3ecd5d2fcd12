"""Qwen2.5-VL: windowed ViT specs, real-time temporal positions, and the tiny twin on CPU."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.models import GenerationSettings, load, registry
from workbench.models.qwen2_5_vl import ADAPTER

MODEL_ID = "qwen2.5-vl-3b"
GEN = GenerationSettings(max_new_tokens=8, min_new_tokens=4)


@pytest.fixture(scope="module")
def loaded():
    model = load(MODEL_ID, source="tiny", dtype="float32", quantization="none")
    yield model
    model.unload()


def test_specs_resolve_and_keep_the_windowed_vit():
    assert registry.resolve("Qwen/Qwen2.5-VL-7B-Instruct") == "qwen2.5-vl-7b"
    for spec in ADAPTER.specs.values():
        config = ADAPTER.real_config(spec)
        assert config.vision_config.fullatt_block_indexes == [7, 15, 23, 31]
        assert config.vision_config.out_hidden_size == config.text_config.hidden_size
        assert config.vision_config.tokens_per_second == 2
    assert type(ADAPTER.real_config(ADAPTER.specs[MODEL_ID])).__name__ == "Qwen2_5_VLConfig"


def test_tiny_twin_keeps_real_geometry_and_attention_pattern(loaded):
    vision = loaded.model.config.vision_config
    real = ADAPTER.real_config(ADAPTER.specs[MODEL_ID]).vision_config
    for key in ("patch_size", "spatial_merge_size", "temporal_patch_size", "window_size"):
        assert getattr(vision, key) == getattr(real, key)
    assert vision.fullatt_block_indexes == [1] and vision.depth == 2  # one windowed, one full block
    assert type(loaded.processor).__name__ == "Qwen2_5_VLProcessor"


@pytest.mark.parametrize("n_frames, height, width, max_pixels", [
    (4, 240, 320, None),
    (3, 360, 640, 160 * 28 * 28),
])
def test_visual_tokens_match_what_the_processor_produces(loaded, n_frames, height, width, max_pixels):
    frames = np.random.default_rng(1).integers(0, 255, (n_frames, height, width, 3), dtype=np.uint8)
    inputs = ADAPTER.build_inputs(loaded, frames, None, "x", max_pixels=max_pixels)
    expected = ADAPTER.visual_tokens(n_frames, height, width, max_pixels=max_pixels)
    assert inputs["video_grid_thw"][0].tolist() == [expected.n_segments, expected.patch_grid[0], expected.patch_grid[1]]
    assert inputs["pixel_values_videos"].shape[0] == expected.encoder_tokens
    assert int((inputs["input_ids"] == loaded.model.config.video_token_id).sum()) == expected.llm_tokens


def test_seconds_per_frame_pair_follow_the_timestamps_and_stay_float32(probe_clip):
    import torch

    model = load(MODEL_ID, source="tiny", dtype="bfloat16")
    frames, _ = probe_clip(4)
    offset = np.array([10.25, 10.75, 11.25, 11.75])  # a clip from the middle of a video, 2 fps
    inputs = ADAPTER.build_inputs(model, frames, offset, "x")
    assert inputs["second_per_grid_ts"].tolist() == [1.0]  # 2 frames x 0.5 s per temporal patch
    third = ADAPTER.build_inputs(model, frames, np.array([0.0, 1 / 3, 2 / 3, 1.0]), "x")
    moved = ADAPTER.move_inputs(third, model)
    assert moved["second_per_grid_ts"].dtype == torch.float32
    assert moved["pixel_values_videos"].dtype == torch.bfloat16
    assert float(moved["second_per_grid_ts"][0]) * 3 == pytest.approx(2.0)  # 2/3 s, not bf16's 0.666
    model.unload()


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
