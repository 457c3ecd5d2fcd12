"""LLaVA-OneVision / LLaVA-Video: token geometry, the three real architectures, the shared tiny twin."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from workbench.models import GenerationSettings, load, registry
from workbench.models.llava_onevision import ADAPTER, onevision_video_tokens, time_instruction

MODEL_ID = "llava-onevision-0.5b"
N_FRAMES = 4
GEN = GenerationSettings(max_new_tokens=8, min_new_tokens=4)
VISION_MODULES = ("model.vision_tower", "model.multi_modal_projector")


def test_visual_tokens_are_196_per_frame_plus_one_per_video():
    tokens = ADAPTER.visual_tokens(32, 480, 640)
    assert tokens.segment_len == 27 * 27  # 384 px / patch 14, SigLIP has no CLS
    assert tokens.llm_tokens_per_segment == 196  # ceil(27 / 2) ** 2
    assert tokens.llm_tokens - 32 * tokens.llm_tokens_per_segment == 1  # one newline per video
    assert tokens.llm_tokens == 32 * 196 + 1
    assert onevision_video_tokens(1, 10, 10).llm_tokens == 197


def test_specs_resolve_by_hub_id():
    assert registry.resolve("llava-hf/llava-onevision-qwen2-0.5b-ov-hf") == "llava-onevision-0.5b"
    assert registry.resolve("llava-hf/llava-onevision-qwen2-7b-ov-hf") == "llava-onevision-7b"
    assert registry.resolve("llava-hf/LLaVA-Video-7B-Qwen2-hf") == "llava-video-7b"
    assert all(spec.frame_mode == "video" for spec in ADAPTER.specs.values())


def test_real_architectures_match_published_parameter_counts():
    import torch

    counts = {}
    for model_id in ("llava-onevision-0.5b", "llava-onevision-7b"):
        spec = ADAPTER.specs[model_id]
        with torch.device("meta"):
            model = ADAPTER.model_cls()._from_config(ADAPTER.real_config(spec))
        counts[model_id] = sum(p.numel() for p in model.parameters())
        assert counts[model_id] == pytest.approx(spec.published_params, rel=0.01), model_id
    # LLaVA-Video-7B is the OneVision-7B architecture with other weights
    assert ADAPTER.specs["llava-video-7b"].config == ADAPTER.specs["llava-onevision-7b"].config
    assert ADAPTER.real_config(ADAPTER.specs["llava-onevision-0.5b"]).tie_word_embeddings is True


def test_time_instruction_names_each_frame_time():
    text = time_instruction(np.array([0.5, 1.5, 2.5, 3.5]))
    assert "lasts for 4.50 seconds" in text and "4 frames" in text  # estimated when no duration is given
    assert "0.50s,1.50s,2.50s,3.50s.Please answer" in text  # LLaVA-NeXT writes no space after the period
    assert "lasts for 10.01 seconds" in time_instruction(np.array([0.5, 9.5]), duration_s=300 / 29.97)


@pytest.fixture(scope="module")
def loaded():
    model = load(MODEL_ID, source="tiny", dtype="float32", quantization="none")
    yield model
    model.unload()


def test_processor_emits_the_predicted_video_tokens(loaded, probe_clip):
    frames, timestamps = probe_clip(N_FRAMES)
    inputs = ADAPTER.build_inputs(loaded, frames, timestamps, loaded.spec.prompt)
    expected = ADAPTER.visual_tokens(N_FRAMES, frames.shape[1], frames.shape[2])
    n_video = int((inputs["input_ids"] == loaded.model.config.video_token_id).sum())
    assert n_video == expected.llm_tokens == N_FRAMES * 196 + 1
    assert tuple(inputs["pixel_values_videos"].shape) == (
        1, N_FRAMES, 3, expected.resized_height, expected.resized_width)


def test_vision_encoder_and_pooled_lengths(loaded, probe_clip):
    import torch

    frames, timestamps = probe_clip(N_FRAMES)
    pixels = ADAPTER.build_inputs(loaded, frames, timestamps, "x")["pixel_values_videos"]
    expected = ADAPTER.visual_tokens(N_FRAMES, frames.shape[1], frames.shape[2])
    with torch.inference_mode():
        hidden = loaded.model.model.vision_tower(pixels[0, :1]).last_hidden_state
        video = loaded.model.model.get_video_features(pixels).pooler_output
    assert hidden.shape[1] == expected.segment_len
    assert video.shape[1] == expected.llm_tokens


def test_only_llava_video_gets_the_time_instruction(loaded, probe_clip):
    frames, timestamps = probe_clip(N_FRAMES)
    decode = loaded.processor.tokenizer.decode
    onevision = decode(ADAPTER.build_inputs(loaded, frames, timestamps, "hello")["input_ids"][0],
                       skip_special_tokens=True)
    as_video = dataclasses.replace(loaded, spec=ADAPTER.specs["llava-video-7b"])
    llava_video = decode(ADAPTER.build_inputs(as_video, frames, timestamps, "hello")["input_ids"][0],
                         skip_special_tokens=True)
    assert "frames are uniformly sampled" not in onevision
    assert f"{N_FRAMES} frames are uniformly sampled" in llava_video
    assert f"{timestamps[0]:.2f}s," in llava_video and llava_video.rstrip().endswith("hello\nassistant")


def test_llava_video_is_told_the_duration_of_the_video_it_was_given(loaded, probe_clip, monkeypatch):
    """The caller's duration (a window's, or the whole clip's) reaches the time instruction."""
    frames, timestamps = probe_clip(N_FRAMES)
    as_video = dataclasses.replace(loaded, spec=ADAPTER.specs["llava-video-7b"])
    told = []
    build, decode = ADAPTER.build_inputs, loaded.processor.tokenizer.decode

    def recording_build(*args):
        inputs = build(*args)
        told.append(decode(inputs["input_ids"][0], skip_special_tokens=True))
        return inputs

    monkeypatch.setattr(ADAPTER, "build_inputs", recording_build)
    as_video.describe(frames, timestamps, generation=GEN, duration_s=12.5)
    as_video.describe(frames, timestamps, generation=GEN)
    assert "lasts for 12.50 seconds" in told[0]
    assert "lasts for 12.50 seconds" not in told[1]  # the duration does not outlive its call


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


@pytest.mark.parametrize("model_id", ["llava-onevision-0.5b", "llava-onevision-7b"])
def test_random_source_points_real_config_at_the_tiny_tokenizer(loaded, model_id):
    spec = ADAPTER.specs[model_id]
    config = ADAPTER.random_config(spec, loaded.processor)
    tokenizer = loaded.processor.tokenizer
    assert config.video_token_index == tokenizer.convert_tokens_to_ids("<video>")
    assert config.image_token_index == tokenizer.convert_tokens_to_ids("<image>")
    assert config.text_config.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert config.text_config.vocab_size == spec.config["text_config"]["vocab_size"] > len(tokenizer)
