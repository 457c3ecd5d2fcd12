"""AuroraCap-7B-VID: the published xtuner layout, the real architecture on the meta device, token merging as
the LLM sees it, and the tiny twin through loading, captioning, memory prediction, attention and timelines."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest

from workbench.models import GenerationSettings, LoadSettings, load, registry
from workbench.models.auroracap import (
    ADAPTER,
    HUB_ID,
    MODEL_ID,
    fabricate_xtuner_checkpoint,
    prompt_text,
    set_token_kept_ratio,
)
from workbench.models.base import UnsafeLoadError, WeightsUnavailableError, WorkbenchModelError

GEN = GenerationSettings(max_new_tokens=8, min_new_tokens=4)
VISION_MODULES = ("vision_tower", "multi_modal_projector")


# ---- geometry and the real architecture (no weights) ------------------------------------------------------

def test_visual_tokens_follow_the_merge_rule_and_shrink_with_the_ratio():
    default = ADAPTER.visual_tokens(8, 480, 640, model_id=MODEL_ID)
    assert default.segment_len == 27 * 27 + 1  # 378 px, patch 14, [CLS]
    assert default.llm_tokens_per_segment == 171 and default.llm_tokens == 8 * 171  # default ratio 0.2
    per_frame = [ADAPTER.visual_tokens(8, 480, 640, model_id=MODEL_ID, options={"token_kept_ratio": r})
                 .llm_tokens_per_segment
                 for r in (0.2, 0.4, 0.8, 1.0)]
    assert per_frame == [171, 326, 605, 729]
    options = {"token_kept_ratio": 0.4}  # a runtime option or a config override: the same key
    assert ADAPTER.visual_tokens(8, 480, 640, model_id=MODEL_ID, options=options).llm_tokens_per_segment == 326
    assert ADAPTER.visual_tokens(8, 480, 640, model_id=None).llm_tokens_per_segment == 729 - 3 * 145  # tiny: 4 layers


def test_spec_resolves_by_hub_id_and_prompt_follows_the_vicuna_template():
    assert registry.resolve(HUB_ID) == MODEL_ID
    assert prompt_text(3, "Describe.") == "USER: <image> <image> <image>\nDescribe. ASSISTANT:"


def test_real_architecture_matches_published_parameter_count():
    """Published parts: Vicuna-7B 6,738,415,616 + visual_encoder 2.53 GB fp32 + projector 88.1 MB fp32 = 7.39B."""
    import torch

    spec = ADAPTER.specs[MODEL_ID]
    with torch.device("meta"):
        model = ADAPTER.model_cls()._from_config(ADAPTER.real_config(spec))
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert count(model) == pytest.approx(spec.published_params, rel=0.01)
    assert count(model.language_model) == 6_738_415_616
    assert count(model.multi_modal_projector) == 1280 * 4096 + 4096 + 4096 * 4096 + 4096
    assert count(model.vision_tower) * 4 == pytest.approx(2.53e9, rel=0.01)  # fp32 bytes of visual_encoder/
    assert model.config.text_config.rope_parameters["factor"] == 4.0  # vicuna-7b-v1.5-16k


def test_memory_predictor_uses_the_merged_geometry():
    from workbench.memory import predict
    from workbench.memory.predictor import architecture

    arch = architecture(MODEL_ID)
    assert (arch.vision.width, arch.vision.layers, arch.vision.mlp_copies) == (1280, 32, 3)  # quick_gelu
    assert not arch.vision.all_hidden_states and arch.text.hidden == 4096
    p = predict(MODEL_ID, frames=8, height=480, width=640, attn_implementation="eager")
    assert p.tokens["visual_tokens"] == 8 * 171 and p.tokens["encoder_seq_len"] == 8 * 730
    assert p.peak_bytes > p.weights_bytes
    more = predict(MODEL_ID, frames=16, height=480, width=640, attn_implementation="eager")
    assert more.phases["prefill"]["kv_cache"] > p.phases["prefill"]["kv_cache"]


def test_lower_kept_ratio_predicts_lower_prefill():
    from workbench.memory import predict

    low, high = (predict(MODEL_ID, frames=8, height=480, width=640, config_overrides={"token_kept_ratio": r})
                 for r in (0.2, 0.8))
    assert low.tokens["visual_tokens"] == 8 * 171 and high.tokens["visual_tokens"] == 8 * 605
    assert sum(low.phases["prefill"].values()) < sum(high.phases["prefill"].values())


def test_model_options_set_the_ratio_in_measured_probes_and_their_predictions():
    """The runtime option reaches a measured probe (any source, here the tiny twin) and its prediction."""
    from workbench.memory import ProbeConfig
    from workbench.memory.grid import predict_config
    from workbench.memory.probe import measure

    tokens = {}
    for ratio in (0.2, 0.8):
        config = ProbeConfig(model=MODEL_ID, source="tiny", dtype="float32", frames=2, height=240, width=320,
                             max_new_tokens=2, model_options={"token_kept_ratio": ratio})
        result = measure(config)
        assert result["status"] == "ok", result["error"]
        assert result["load_report"]["options"] == {"token_kept_ratio": ratio}
        predicted = predict_config(config, device="cpu").tokens["visual_tokens"]
        assert result["tokens"]["visual_tokens"] == predicted
        tokens[ratio] = predicted
    assert tokens[0.2] < tokens[0.8]
    bad = ProbeConfig(model=MODEL_ID, source="tiny", frames=2, height=240, width=320, max_new_tokens=2,
                      model_options={"kept_ratio": 0.4})
    assert "has no option 'kept_ratio'" in measure(bad)["error"]


# ---- the tiny twin and the published layout ---------------------------------------------------------------

@pytest.fixture(scope="module")
def loaded():
    model = load(MODEL_ID, source="tiny", dtype="float32")
    yield model
    model.unload()


@pytest.fixture(scope="module")
def xtuner_dir(loaded, tmp_path_factory):
    """The tiny twin's weights written in the published xtuner layout (read-only for the tests)."""
    return fabricate_xtuner_checkpoint(tmp_path_factory.mktemp("auroracap") / "AuroraCap-7B-VID-xtuner")


def test_fabricated_folder_has_the_published_layout(xtuner_dir):
    import json

    from safetensors import safe_open

    assert json.loads((xtuner_dir / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    projector = json.loads((xtuner_dir / "projector" / "config.json").read_text())
    assert projector["auto_map"]["AutoModel"] == "modeling_projector.ProjectorModel"
    assert (projector["depth"], projector["hidden_act"]) == (2, "gelu")
    with safe_open(str(xtuner_dir / "projector" / "model.safetensors"), "pt") as f:
        assert sorted(f.keys()) == ["model.0.bias", "model.0.weight", "model.2.bias", "model.2.weight"]
    with safe_open(str(xtuner_dir / "visual_encoder" / "model.safetensors"), "pt") as f:
        assert "vision_model.embeddings.class_embedding" in f.keys()
    assert (xtuner_dir / "visual_encoder" / "preprocessor_config.json").exists()
    assert list(xtuner_dir.glob("tokenizer*"))


def test_registry_loads_the_published_layout_and_captions_like_the_tiny_twin(loaded, xtuner_dir, probe_clip):
    frames, timestamps = probe_clip(4)
    twin = loaded.describe(frames, timestamps, generation=GEN)
    published = load(MODEL_ID, source=str(xtuner_dir), dtype="float32")
    try:
        record = published.describe(frames, timestamps, generation=GEN)
        assert published.report.n_params == loaded.report.n_params
    finally:
        published.unload()
    assert twin.status == "ok", twin.error
    assert 4 <= twin.n_tokens <= 8
    assert record.text == twin.text and record.n_input_tokens == twin.n_input_tokens


def test_uncached_hub_id_says_how_to_get_the_weights():
    with pytest.raises(WeightsUnavailableError, match=f"hf download {HUB_ID}"):
        load(MODEL_ID, source=HUB_ID, dtype="float32")


def test_missing_parts_and_pickles_are_refused_by_name(xtuner_dir, tmp_path):
    broken = tmp_path / "no_projector"
    shutil.copytree(xtuner_dir, broken)
    shutil.rmtree(broken / "projector")
    with pytest.raises(WeightsUnavailableError, match=r"no projector/ folder: the projector is missing"):
        load(MODEL_ID, source=str(broken), dtype="float32")
    no_vision = tmp_path / "no_vision"
    shutil.copytree(xtuner_dir, no_vision)
    shutil.rmtree(no_vision / "visual_encoder")
    with pytest.raises(WeightsUnavailableError, match="vision tower is missing"):
        load(MODEL_ID, source=str(no_vision), dtype="float32")
    pickled = fabricate_xtuner_checkpoint(tmp_path / "pickled", pickle=True)
    with pytest.raises(UnsafeLoadError, match="pickle weights"):
        load(MODEL_ID, source=str(pickled), dtype="float32")
    vision_only_pickle = tmp_path / "vision_pickle"
    shutil.copytree(xtuner_dir, vision_only_pickle)
    (vision_only_pickle / "visual_encoder" / "model.safetensors").unlink()
    shutil.copy(pickled / "visual_encoder" / "pytorch_model.bin", vision_only_pickle / "visual_encoder")
    with pytest.raises(UnsafeLoadError, match=r"visual_encoder holds only pickle weights"):
        load(MODEL_ID, source=str(vision_only_pickle), dtype="float32")


def test_pickles_load_when_allowed_by_name(loaded, tmp_path, probe_clip):
    pickled = fabricate_xtuner_checkpoint(tmp_path / "pickled", pickle=True)
    frames, timestamps = probe_clip(2)
    allowed = load(MODEL_ID, LoadSettings(source=str(pickled), dtype="float32", allow_pickle=True))
    try:
        assert allowed.describe(frames, timestamps, generation=GEN).text == \
            loaded.describe(frames, timestamps, generation=GEN).text
    finally:
        allowed.unload()


def test_token_kept_ratio_changes_the_visual_tokens_the_llm_sees(loaded, probe_clip):
    frames, timestamps = probe_clip(4)
    counts = {}
    try:
        for ratio in (0.2, 0.8, 1.0):
            loaded.configure({"token_kept_ratio": ratio})  # the notebooks' model_options route
            inputs = ADAPTER.build_inputs(loaded, frames, timestamps, loaded.spec.prompt)
            n_visual = int((inputs["input_ids"] == loaded.model.config.image_token_index).sum())
            record = loaded.describe(frames, timestamps, generation=GEN)
            assert record.status == "ok", record.error
            assert loaded.model.last_merge_owner.max() + 1 == n_visual // 4  # what the tower really produced
            counts[ratio] = n_visual
    finally:
        set_token_kept_ratio(loaded, ADAPTER.specs[MODEL_ID].config["token_kept_ratio"])
    expected = {r: ADAPTER.visual_tokens(4, 1, 1, model_id=None, options={"token_kept_ratio": r}).llm_tokens
                for r in counts}
    assert counts == expected
    assert counts[0.2] < counts[0.8] < counts[1.0] == 4 * 729
    assert inputs["pixel_values"].shape == (4, 3, 378, 378)
    assert inputs["input_ids"][0, 0] == loaded.processor.tokenizer.bos_token_id
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        set_token_kept_ratio(loaded, 1.2)
    with pytest.raises(TypeError, match="token_kept_ratio must be a number"):
        loaded.configure({"token_kept_ratio": "0.4"})
    with pytest.raises(WorkbenchModelError, match="has no option 'kept_ratio'; its options: token_kept_ratio"):
        loaded.configure({"kept_ratio": 0.4})


def test_random_source_points_real_config_at_the_tiny_tokenizer(loaded):
    config = ADAPTER.random_config(loaded.spec, loaded.processor)
    tokenizer = loaded.processor.tokenizer
    assert config.image_token_index == tokenizer.unk_token_id
    assert (config.text_config.bos_token_id, config.text_config.eos_token_id) == (
        tokenizer.bos_token_id, tokenizer.eos_token_id)
    assert config.text_config.vocab_size == 32000 and config.vision_config.hidden_size == 1280


def test_quantized_tiny_twin_keeps_vision_projector_and_head_in_16_bit(loaded, probe_clip):
    frames, timestamps = probe_clip(2)
    quantized = load(MODEL_ID, source="tiny", dtype="float32", quantization="8bit")
    try:
        record = quantized.describe(frames, timestamps, generation=GEN)
        report = quantized.report
    finally:
        quantized.unload()
    assert record.status == "ok", record.error
    assert report.n_params == loaded.report.n_params
    assert 0 < report.memory_bytes < loaded.report.memory_bytes
    kept = " ".join(report.unquantized_modules)
    assert all(module in kept for module in VISION_MODULES + ("lm_head",))
    assert "language_model.model" not in kept


# ---- attention and timelines ---------------------------------------------------------------------------------

def test_attention_maps_each_merged_token_onto_the_patches_of_its_own_frame(probe_clip):
    from workbench.attention import attend
    from workbench.attention.capture import CaptureSettings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eager = load(MODEL_ID, source="tiny", dtype="float32", attn_implementation="eager")
    try:
        frames, timestamps = probe_clip(3)
        plain = eager.describe(frames, timestamps, generation=GEN)
        maps = attend(eager, frames, timestamps, generation=GEN, settings=CaptureSettings(heads="all"))
    finally:
        eager.unload()
    layout = maps.layout
    assert maps.capture.caption.text == plain.text
    per_frame = ADAPTER.visual_tokens(3, 1, 1, model_id=None).llm_tokens_per_segment
    assert layout.n_tokens == maps.capture.n_visual == 3 * per_frame
    assert (layout.grid_rows, layout.grid_cols) == (27, 27)
    table = layout.token_table()
    assert (table["kind"] == "patch").all()
    assert (table["frame"] == table["token"] // per_frame).all()  # a merged token stays in its frame
    weights = table.groupby("token")["weight"].agg(["sum", "count", "min", "max"])
    np.testing.assert_allclose(weights["sum"], 1.0, atol=1e-5)
    assert (weights["count"] > 1).any()  # merged tokens spread over several patches
    np.testing.assert_allclose(weights["min"], weights["max"])  # evenly
    assert table.groupby(["frame", "row", "col"]).size().eq(1).all()  # every patch belongs to one token
    selected = maps.select()
    np.testing.assert_allclose(layout.frame_mass(selected).sum(-1), selected.sum(-1), rtol=1e-4, atol=1e-5)


def test_quality_timeline_runs_on_the_tiny_twin(loaded, tmp_path_factory):
    from workbench.probe_videos import ensure_probe_videos
    from workbench.quality.timeline import TimelineSettings, caption_timeline

    video = ensure_probe_videos(["events"], seed=0, duration_s=3,
                                out_dir=tmp_path_factory.mktemp("auroracap_probe"))["events"]
    timeline = caption_timeline(loaded, video, TimelineSettings(frames_per_window=2, max_new_tokens=4,
                                                                track_memory=False), progress=False)
    table = timeline.table
    assert list(table["start_s"]) == [0.0, 1.0, 2.0]
    assert (table["status"] == "ok").all() and (table["n_frames"] == 2).all()
    assert (table["tokens"] > 0).all()
