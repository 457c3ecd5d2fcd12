"""Tarsier2-Recap-7b: the published-layout converter, the adapter's frame settings, and the tiny twin through
the registry, the memory predictor, attention capture and the caption timeline (CPU, no real weights)."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from workbench.models import GenerationSettings, load, registry
from workbench.models import convert_tarsier2 as convert
from workbench.models.base import UnsafeLoadError, WeightsUnavailableError
from workbench.models.tarsier2 import (
    ADAPTER,
    CHAT_TEMPLATE,
    HUB_ID,
    MAX_PIXELS,
    fabricate_published_checkpoint,
    frame_budget,
    processing_from_published,
)

MODEL_ID = "tarsier2-recap-7b"
GEN = GenerationSettings(max_new_tokens=6, min_new_tokens=3)

# what the family file hands the converter (its processor settings and chat template)
FAMILY_PROCESSOR = {"processing": processing_from_published, "chat_template": CHAT_TEMPLATE}


def _quiet_load(source, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load(MODEL_ID, source=str(source), dtype="float32", **kwargs)


@pytest.fixture(scope="module")
def tiny():
    loaded = _quiet_load("tiny")
    yield loaded
    loaded.unload()


@pytest.fixture(scope="module")
def published(tiny, tmp_path_factory) -> Path:
    """The tiny twin's weights written in the published Tarsier2 layout (two shards)."""
    return fabricate_published_checkpoint(tmp_path_factory.mktemp("tarsier2_published") / "Tarsier2-Recap-7b")


@pytest.fixture(scope="module")
def converted(published):
    loaded = _quiet_load(published)
    yield loaded
    loaded.unload()


def _copy(published: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(published, target)
    return target


def _all_keys(folder: Path) -> list[str]:
    from safetensors import safe_open

    keys = []
    for shard in sorted(folder.glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as handle:
            keys += list(handle.keys())
    return keys


# ---- the converter ------------------------------------------------------------------------------------------


def test_published_layout_is_the_llava_wrapper(published):
    config = json.loads((published / "config.json").read_text())
    assert config["model_type"] == "llava" and config["architectures"] == ["TarsierForConditionalGeneration"]
    assert config["text_config"]["model_type"] == "qwen2_vl" and config["vision_config"]["model_type"] == "qwen2_vl"
    prefixes = {key.split(".")[0] for key in _all_keys(published)}
    assert prefixes == {"vision_tower", "language_model"}
    assert len(list(published.glob("*.safetensors"))) == 2


def test_every_published_key_maps_to_exactly_one_qwen2vl_key(published):
    keys = _all_keys(published)
    targets = [convert.to_qwen2vl_key(key) for key in keys]
    assert None not in targets
    assert len(set(targets)) == len(keys)  # injective
    config = convert.qwen2vl_config(convert.read_published_config(published))
    assert set(targets) == set(convert.expected_shapes(config))  # nothing left over on either side
    assert all(convert.to_published_key(t) == k for k, t in zip(keys, targets))
    plan = convert.plan(published, config)
    assert sum(len(v) for v in plan.values()) == len(keys)


def test_converted_folder_is_native_qwen2vl_and_streamed_per_shard(published, converted):
    out = convert.converted_dir(published)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == 2  # one output shard per input shard
    assert all(k.startswith(("model.visual.", "model.language_model.", "lm_head.")) for k in index["weight_map"])
    assert json.loads((out / "config.json").read_text())["model_type"] == "qwen2_vl"
    assert converted.report.source == str(published)  # the report names what was asked for


def test_converted_model_gives_identical_logits_and_caption(tiny, converted, probe_clip):
    import torch

    frames, timestamps = probe_clip(4)
    inputs = ADAPTER.build_inputs(tiny, frames, timestamps, ADAPTER.specs[MODEL_ID].prompt)
    assert torch.equal(inputs["input_ids"],
                       ADAPTER.build_inputs(converted, frames, timestamps, ADAPTER.specs[MODEL_ID].prompt)["input_ids"])
    with torch.inference_mode():
        assert torch.equal(tiny.model(**inputs).logits, converted.model(**inputs).logits)
    original = tiny.describe(frames, timestamps, generation=GEN)
    again = converted.describe(frames, timestamps, generation=GEN)
    assert original.status == again.status == "ok", (original.error, again.error)
    assert original.text == again.text and original.n_tokens == again.n_tokens


def test_registry_load_of_the_published_folder_captions_a_probe_clip(converted, probe_clip):
    frames, timestamps = probe_clip(4)
    record = converted.describe(frames, timestamps, generation=GEN)
    assert record.status == "ok" and record.n_tokens >= GEN.min_new_tokens and record.n_frames == 4
    expected = ADAPTER.visual_tokens(4, frames.shape[1], frames.shape[2]).llm_tokens
    inputs = ADAPTER.build_inputs(converted, frames, timestamps, "x")
    assert int((inputs["input_ids"] == converted.model.config.video_token_id).sum()) == expected
    assert converted.report.n_params > 0 and converted.report.family == "tarsier2"


def test_second_load_reuses_the_cached_conversion(published, converted, monkeypatch):
    out = convert.converted_dir(published)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    def must_not_run(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(convert, "_write_weights", must_not_run)
    again = _quiet_load(published)
    assert Path(again.model.name_or_path) == out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    again.unload()


def test_changed_source_gets_a_new_cache_key(published, tmp_path):
    folder = _copy(published, tmp_path)
    key = convert.source_identity(folder)
    assert key != convert.source_identity(published)  # another folder
    (folder / "config.json").write_text((folder / "config.json").read_text() + "\n")
    assert convert.source_identity(folder) != key


def test_pickle_only_folder_is_refused_unless_allowed(tiny, tmp_path):
    import torch

    folder = fabricate_published_checkpoint(tmp_path / "pickled", pickle=True)
    assert not list(folder.glob("*.safetensors"))
    with pytest.raises(UnsafeLoadError, match=r"pickled: holds only pickle weights .*allow_pickle=True"):
        _quiet_load(folder)
    allowed = _quiet_load(folder, allow_pickle=True)
    out = convert.converted_dir(folder)
    assert list(out.glob("*.safetensors")) and not list(out.glob("*.bin"))  # converted to safetensors
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.inference_mode():
        assert torch.equal(allowed.model(input_ids=ids).logits, tiny.model(input_ids=ids).logits)
    allowed.unload()


def test_missing_config_is_named(published, tmp_path):
    folder = _copy(published, tmp_path)
    (folder / "config.json").unlink()
    with pytest.raises(convert.ConversionError, match=r"copy: no config.json"):
        convert.convert_checkpoint(folder, **FAMILY_PROCESSOR)


def test_unexpected_keys_are_named(published, tmp_path):
    import torch
    from safetensors.torch import save_file

    folder = _copy(published, tmp_path)
    save_file({"multi_modal_projector.linear_1.weight": torch.zeros(2, 2)}, str(folder / "extra.safetensors"))
    with pytest.raises(convert.ConversionError, match=r"copy: 1 unexpected weight.*multi_modal_projector"):
        convert.convert_checkpoint(folder, **FAMILY_PROCESSOR)
    assert not convert.converted_dir(folder).exists()  # nothing half-written


def test_missing_keys_are_named(published, tmp_path):
    folder = _copy(published, tmp_path)
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(convert.ConversionError, match=r"copy: \d+ weight\(s\) missing .*model\."):
        convert.convert_checkpoint(folder, **FAMILY_PROCESSOR)


def test_wrong_model_type_is_named(published, tmp_path):
    folder = _copy(published, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["text_config"]["model_type"] = "llama"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(convert.ConversionError, match="copy: text_config.model_type is 'llama'"):
        convert.convert_checkpoint(folder, **FAMILY_PROCESSOR)


# ---- the registry, hub ids and the embedded architecture ------------------------------------------------------


def test_hub_id_and_aliases_resolve():
    assert registry.resolve(HUB_ID) == MODEL_ID
    assert registry.resolve("omni-research/tarsier2-recap-7b") == MODEL_ID
    assert registry.resolve("tarsier2-recap") == MODEL_ID
    adapter, spec = registry.get(HUB_ID)
    assert adapter is ADAPTER and spec.hub_id == HUB_ID


def test_unreachable_hub_id_says_how_to_get_the_weights(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # read at import time
    monkeypatch.setenv("HF_HOME", str(Path(os.environ["WORKBENCH_CACHE"]) / "empty_hf_home"))
    with pytest.raises(WeightsUnavailableError, match=rf"hf download {HUB_ID}"):
        _quiet_load(HUB_ID)


def test_embedded_config_is_qwen2_vl_7b_with_the_published_size():
    from workbench.weights import meta_model

    spec = ADAPTER.specs[MODEL_ID]
    config = ADAPTER.real_config(spec)
    assert config.get_text_config().vocab_size == 152064
    assert (config.image_token_id, config.video_token_id, config.vision_start_token_id) == (151655, 151656, 151652)
    n_params = sum(p.numel() for p in meta_model(ADAPTER, config).parameters())
    assert n_params == pytest.approx(spec.published_params, rel=0.01)
    qwen_adapter, qwen_spec = registry.get("qwen2-vl-7b")
    qwen = meta_model(qwen_adapter, qwen_adapter.real_config(qwen_spec))
    assert n_params == sum(p.numel() for p in qwen.parameters())


def test_random_config_points_special_tokens_at_the_tiny_tokenizer(tiny):
    config = ADAPTER.random_config(ADAPTER.specs[MODEL_ID], tiny.processor)
    assert config.video_token_id == tiny.processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert config.get_text_config().hidden_size == 3584


# ---- frame settings -----------------------------------------------------------------------------------------


def test_frame_defaults_are_tarsier2s():
    spec = ADAPTER.specs[MODEL_ID]
    assert spec.default_frames == 16 and spec.frame_mode == "images" and spec.fixed_frames is None
    assert spec.prompt == "Describe the video in detail."
    assert frame_budget(16) == MAX_PIXELS == 460800
    assert frame_budget(40) == 128 * 384 * 384 // 80  # the per-sample budget takes over past 20 frames
    tokens = ADAPTER.visual_tokens(16, 1080, 1920)
    assert tokens.resized_height * tokens.resized_width <= MAX_PIXELS
    # frames as images: one temporal patch per frame, twice Qwen2-VL's video tokens at the same size
    qwen = registry.get("qwen2-vl-7b")[0].visual_tokens(16, 1080, 1920, max_pixels=MAX_PIXELS)
    assert tokens.llm_tokens == 2 * qwen.llm_tokens == 16 * tokens.llm_tokens_per_segment


@pytest.mark.parametrize("n_frames, height, width, max_pixels", [
    (4, 240, 320, None),  # below the budget: near-native size
    (3, 480, 640, 50176),  # odd count, explicit per-frame cap
    (1, 90, 700, None),  # one frame, wide
    (24, 720, 1280, None),  # past 20 frames the per-sample budget shrinks each frame
])
def test_visual_tokens_match_what_the_processor_produces(tiny, n_frames, height, width, max_pixels):
    frames = np.random.default_rng(0).integers(0, 255, (n_frames, height, width, 3), dtype=np.uint8)
    inputs = ADAPTER.build_inputs(tiny, frames, None, "x", max_pixels=max_pixels)
    expected = ADAPTER.visual_tokens(n_frames, height, width, max_pixels=max_pixels)
    assert inputs["video_grid_thw"][0].tolist() == [n_frames, expected.patch_grid[0], expected.patch_grid[1]]
    assert inputs["pixel_values_videos"].shape[0] == expected.encoder_tokens
    assert int((inputs["input_ids"] == tiny.model.config.video_token_id).sum()) == expected.llm_tokens


def test_each_temporal_patch_holds_one_frame(tiny):
    """Patch rows carry (channel, time, y, x): both time slices of every patch are the same frame."""
    frames = np.random.default_rng(1).integers(0, 255, (2, 56, 56, 3), dtype=np.uint8)
    pixels = ADAPTER.build_inputs(tiny, frames, None, "x")["pixel_values_videos"].reshape(-1, 3, 2, 14, 14)
    np.testing.assert_array_equal(pixels[:, :, 0].numpy(), pixels[:, :, 1].numpy())


# ---- memory, attention, timeline ----------------------------------------------------------------------------


def test_memory_prediction_for_the_random_source():
    from workbench.memory.predictor import predict

    small = predict(MODEL_ID, source="random", frames=8, height=480, width=640)
    large = predict(MODEL_ID, source="random", frames=16, height=720, width=1280)
    assert large.peak_bytes > small.peak_bytes
    assert large.tokens["visual_tokens"] == ADAPTER.visual_tokens(16, 720, 1280).llm_tokens
    assert large.tokens["n_segments"] == 16  # one vision attention segment per frame
    qwen = predict("qwen2-vl-7b", source="random", frames=16, height=720, width=1280)
    assert large.weights_bytes == qwen.weights_bytes  # same architecture
    capped = predict(MODEL_ID, source="random", frames=16, height=720, width=1280, max_pixels=200704)
    assert capped.peak_bytes < large.peak_bytes


def test_attention_capture_maps_every_visual_token_to_its_frame(tiny, probe_clip):
    from workbench.attention import attend
    from workbench.attention.capture import CaptureSettings

    frames, timestamps = probe_clip(4)
    plain = tiny.describe(frames, timestamps, generation=GEN)
    maps = attend(tiny, frames, timestamps, generation=GEN, settings=CaptureSettings(heads="all"))
    assert maps.capture.caption.text == plain.text
    assert maps.layout.n_tokens == maps.capture.n_visual == ADAPTER.visual_tokens(
        4, frames.shape[1], frames.shape[2]).llm_tokens
    assert maps.layout.n_frames == 4
    per_frame = maps.layout.frame_mass(maps.select())
    clip = maps.layout.to_cells(maps.select())[:, maps.layout.clip_cell]
    np.testing.assert_allclose(per_frame.sum(-1) + clip, maps.select().sum(-1), rtol=1e-4, atol=1e-5)
    assert np.all(per_frame > 0)  # every frame has its own tokens (no shared frame pairs)


def test_quality_timeline_runs_on_the_tiny_twin(tiny, tmp_path):
    from workbench.probe_videos import ensure_probe_videos
    from workbench.quality.timeline import TimelineSettings, caption_timeline

    video = ensure_probe_videos(["events"], seed=0, duration_s=3, out_dir=tmp_path)["events"]
    timeline = caption_timeline(tiny, video, TimelineSettings(frames_per_window=2, max_new_tokens=4,
                                                              track_memory=False), progress=False)
    table = timeline.table
    assert list(table["start_s"]) == [0.0, 1.0, 2.0]
    assert (table["status"] == "ok").all() and (table["n_frames"] == 2).all()
    assert (table["tokens"] > 0).all()
