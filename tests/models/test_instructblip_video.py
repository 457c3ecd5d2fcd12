"""InstructBLIP-Video: 4 frames exactly (resampled loudly or refused), 128 visual tokens, Q-Former prompt input,
the video token on real checkpoints, and the tiny twin in every quantization."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from workbench.models import GenerationSettings, load, registry
from workbench.models.base import FrameCountError
from workbench.models.instructblip_video import ADAPTER, _reconcile_video_token
from workbench.weights import meta_model

MODEL_ID = "instructblip-video-vicuna-7b"
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


def test_spec_is_the_image_checkpoint_with_four_fixed_frames():
    assert registry.resolve("Salesforce/instructblip-vicuna-7b") == MODEL_ID
    spec = ADAPTER.specs[MODEL_ID]
    assert (spec.frame_mode, spec.fixed_frames, spec.default_frames) == ("fixed", 4, 4)


def test_real_architecture_matches_published_parameter_count():
    spec = ADAPTER.specs[MODEL_ID]
    model = meta_model(ADAPTER, ADAPTER.real_config(spec))
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(spec.published_params, rel=0.01)
    names = {name for name, _ in model.named_modules()}
    assert all(prefix in names for prefix in ADAPTER.skip_modules)


def test_visual_tokens_match_the_processor_and_vision_tower(twins, probe_clip):
    import torch

    loaded = twins("none")
    frames, timestamps = probe_clip(4)
    expected = ADAPTER.visual_tokens(4, frames.shape[1], frames.shape[2])
    assert (expected.llm_tokens_per_segment, expected.llm_tokens, expected.segment_len) == (32, 128, 257)
    assert ADAPTER.visual_tokens(16, 480, 640).llm_tokens == 128  # more frames never means more tokens
    inputs = ADAPTER.build_inputs(loaded, frames, timestamps, "What happens?")
    assert int((inputs["input_ids"] == loaded.model.config.video_token_index).sum()) == expected.llm_tokens
    assert tuple(inputs["pixel_values"].shape) == (1, 4, 3, 224, 224)
    assert inputs["qformer_input_ids"].shape[0] == 1  # the instruction also goes to the Q-Former
    with torch.inference_mode():
        hidden = loaded.model.vision_model(inputs["pixel_values"][0]).last_hidden_state
    assert hidden.shape[:2] == (4, expected.segment_len)


def test_build_inputs_refuses_other_frame_counts(twins, probe_clip):
    frames, timestamps = probe_clip(6)
    with pytest.raises(ValueError, match="exactly 4 frames"):
        ADAPTER.build_inputs(twins("none"), frames, timestamps, "x")


@pytest.mark.parametrize("quantization", QUANTIZATIONS)
def test_tiny_twin_captions_four_frames(twins, probe_clip, quantization):
    loaded = twins(quantization)
    frames, timestamps = probe_clip(4)
    record = loaded.describe(frames, timestamps, generation=GEN)
    assert record.status == "ok", record.error
    assert (record.n_frames, record.notes) == (4, [])
    assert GEN.min_new_tokens <= record.n_tokens <= GEN.max_new_tokens
    assert record.n_input_tokens > ADAPTER.visual_tokens(4, 0, 0).llm_tokens
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
    assert nf4.memory_bytes < int8.memory_bytes < none.memory_bytes


def test_captions_are_deterministic(twins, probe_clip):
    loaded = twins("none")
    frames, timestamps = probe_clip(4)
    first, again = (loaded.describe(frames, timestamps, generation=GEN) for _ in range(2))
    assert first.text == again.text and first.n_tokens == again.n_tokens


def test_other_frame_counts_are_resampled_with_a_warning(twins, probe_clip):
    loaded = twins("none")
    frames, timestamps = probe_clip(6)
    with pytest.warns(UserWarning, match="takes exactly 4 frames: resampled 6"):
        record = loaded.describe(frames, timestamps, generation=GEN)
    assert record.status == "ok", record.error
    assert record.n_frames == 4
    assert any("source positions [0, 2, 3, 5]" in note for note in record.notes)


def test_refuse_policy_raises_frame_count_error(twins, probe_clip):
    loaded = twins("none")
    refusing = dataclasses.replace(loaded, settings=dataclasses.replace(loaded.settings, frame_policy="refuse"))
    frames, timestamps = probe_clip(6)
    with pytest.raises(FrameCountError, match="exactly 4 frames per clip, got 6"):
        refusing.describe(frames, timestamps, generation=GEN)


def test_real_checkpoints_use_their_image_token_as_the_video_placeholder(twins):
    """The hub tokenizer knows <image> (32000) but the processor appends <video> past the embedding table."""
    tokenizer = twins("none").processor.tokenizer
    fake_tokenizer = SimpleNamespace(convert_tokens_to_ids={"<video>": 32001, "<image>": 32000}.get)
    processor = SimpleNamespace(tokenizer=fake_tokenizer, video_token=SimpleNamespace(content="<video>"))
    config = SimpleNamespace(video_token_index=None, text_config=SimpleNamespace(vocab_size=32001))
    loaded = SimpleNamespace(processor=processor, model=SimpleNamespace(config=config))
    _reconcile_video_token(loaded)
    assert config.video_token_index == 32000
    assert processor.video_token.content == "<image>"
    # the tiny twin already agrees with itself
    twin = twins("none")
    assert twin.model.config.video_token_index == tokenizer.convert_tokens_to_ids("<video>")


def test_random_config_points_token_ids_at_the_tiny_tokenizer(twins):
    processor = twins("none").processor
    config = ADAPTER.random_config(ADAPTER.specs[MODEL_ID], processor)
    assert config.video_token_index == processor.tokenizer.convert_tokens_to_ids("<video>")
    assert config.text_config.eos_token_id == processor.tokenizer.eos_token_id
    assert config.text_config.hidden_size == 4096
