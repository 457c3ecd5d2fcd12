"""MiniGPT4-Video: embedded architectures against published sizes, the published-layout loader (pickle gate, EVA
and LoRA key names, LoRA merge) on a checkpoint fabricated from the tiny twin, the 4-token concatenation geometry,
prompts with subtitles, quantization, the memory predictor, attention capture with its layout, and the timeline."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.models import GenerationSettings, LoadSettings, load, registry
from workbench.models.base import UnsafeLoadError, WeightsUnavailableError
from workbench.models.minigpt4_video import (
    ADAPTER,
    EVA_FILE,
    LLM_DIR,
    fabricate_published_checkpoint,
    interleaved_prompt,
    subtitles_per_frame,
)
from workbench.weights import meta_model

MODEL_ID = "minigpt4-video-llama2"
GEN = GenerationSettings(max_new_tokens=8, min_new_tokens=4)
# Published sizes: Llama-2-7b-chat-hf 6.74B and Mistral-7B-Instruct-v0.2 7.24B (their model cards), EVA ViT-g as
# LAVIS builds it (39 of EVA-CLIP-g's 40 blocks, ~0.985B of its ~1.0B), llama_proj 5632 x 4096 + 4096.
PUBLISHED = {"minigpt4-video-llama2": 6.74e9 + 0.985e9 + 23.07e6, "minigpt4-video-mistral": 7.24e9 + 0.985e9 + 23.07e6}


@pytest.fixture(scope="module")
def tiny():
    loaded = load(MODEL_ID, source="tiny", dtype="float32")
    yield loaded
    loaded.unload()


@pytest.fixture(scope="module")
def published_folder(tmp_path_factory, tiny):
    """The tiny twin written back in the published layout (checkpoint .pth, eva_vit_g.pth, llm/)."""
    return fabricate_published_checkpoint(tmp_path_factory.mktemp("minigpt4_video") / "published")


@pytest.fixture(scope="module")
def published(published_folder):
    loaded = load(MODEL_ID, source=str(published_folder), dtype="float32", allow_pickle=True)
    yield loaded
    loaded.unload()


# ---- specs and architecture -----------------------------------------------------------------------------------

def test_ids_aliases_and_hub_repo_resolve():
    assert registry.resolve("minigpt4-video") == MODEL_ID
    assert registry.resolve("Vision-CAIR/MiniGPT4-Video") == MODEL_ID  # one repo holds both; Llama-2 is its first
    assert registry.resolve("video_mistral_checkpoint_last.pth") == "minigpt4-video-mistral"
    assert set(ADAPTER.specs) == {"minigpt4-video-llama2", "minigpt4-video-mistral"}


@pytest.mark.parametrize("model_id", sorted(PUBLISHED))
def test_real_architecture_matches_published_parameter_count(model_id):
    spec = ADAPTER.specs[model_id]
    assert spec.published_params == pytest.approx(PUBLISHED[model_id], rel=0.001)
    model = meta_model(ADAPTER, ADAPTER.real_config(spec))
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(spec.published_params, rel=0.01)
    vision = sum(p.numel() for p in model.vision_model.parameters())
    assert vision == pytest.approx(0.985e9, rel=0.01)
    assert tuple(model.llama_proj.weight.shape) == (4096, 1408 * 4)


def test_real_configs_carry_the_published_numbers():
    llama = ADAPTER.real_config(ADAPTER.specs["minigpt4-video-llama2"])
    mistral = ADAPTER.real_config(ADAPTER.specs["minigpt4-video-mistral"])
    assert (llama.vision_config.num_hidden_layers, llama.vision_config.num_attention_heads) == (39, 16)
    assert llama.vision_config.intermediate_size == 6144 and llama.vision_norm_eps == 1e-5
    assert (llama.text_config.model_type, llama.text_config.max_position_embeddings) == ("llama", 4096)
    assert (mistral.text_config.model_type, mistral.text_config.num_key_value_heads) == ("mistral", 8)
    assert llama.get_text_config() is llama.text_config and llama.tie_word_embeddings is False


def test_skip_modules_name_real_modules():
    model = meta_model(ADAPTER, ADAPTER.real_config(ADAPTER.specs[MODEL_ID]))
    names = {name for name, _ in model.named_modules()}
    assert all(prefix in names for prefix in ADAPTER.skip_modules)


# ---- geometry and prompt ---------------------------------------------------------------------------------------

def test_geometry_is_64_concatenated_tokens_per_frame_in_the_model_input(tiny, probe_clip):
    import torch

    frames, timestamps = probe_clip(3)
    geometry = ADAPTER.visual_tokens(3, frames.shape[1], frames.shape[2])
    assert (geometry.llm_tokens_per_segment, geometry.llm_tokens, geometry.segment_len) == (64, 192, 257)
    inputs = ADAPTER.build_inputs(tiny, frames, timestamps, "Describe this video.")
    assert int((inputs["input_ids"] == tiny.model.config.image_token_id).sum()) == geometry.llm_tokens
    assert tuple(inputs["pixel_values"].shape) == (3, 3, 224, 224)
    with torch.inference_mode():
        hidden = tiny.model.vision_model(inputs["pixel_values"]).last_hidden_state
        features = tiny.model.get_image_features(inputs["pixel_values"])
        # token k of a frame is patches 4k..4k+3 side by side, projected
        expected = tiny.model.llama_proj(hidden[1, 1:][8:12].reshape(-1))
    assert hidden.shape[1] == geometry.segment_len
    assert tuple(features.shape) == (3, 64, tiny.model.config.text_config.hidden_size)
    torch.testing.assert_close(features[1, 2], expected)


def test_prompt_follows_the_published_template(tiny, probe_clip):
    frames, timestamps = probe_clip(2)
    text = ADAPTER.format_prompt("Describe this video.", 2)
    assert text == "<s>[INST] <Img><ImageHere><Img><ImageHere>\nDescribe this video. [/INST]"
    ids = ADAPTER.build_inputs(tiny, frames, timestamps, "Describe this video.")["input_ids"][0].tolist()
    bos = tiny.processor.tokenizer.bos_token_id
    assert ids[:2] == [bos, bos]  # the tokenizer's BOS, then the literal "<s>" of the template
    assert ids.count(tiny.model.config.image_token_id) == 128


def test_subtitles_are_interleaved_after_their_frames(tiny, probe_clip):
    frames, timestamps = probe_clip(3)
    cues = [(float(timestamps[0]), float(timestamps[1]), "a red circle"), (float(timestamps[2]) - 0.01, 99.0, "bye")]
    subtitles = subtitles_per_frame(timestamps, cues)
    assert subtitles == ["a red circle", None, "bye"]
    prompt = interleaved_prompt("Describe this video.", 3, subtitles)
    assert prompt.count("<Cap>") == 2 and prompt.index("<Cap>a red circle") < prompt.index("<Img>", 1)
    record = tiny.describe(frames, timestamps, prompt=prompt, generation=GEN)
    plain = tiny.describe(frames, timestamps, generation=GEN)
    assert record.status == "ok" and record.n_input_tokens > plain.n_input_tokens
    with pytest.raises(ValueError, match="2 <ImageHere> slots for 3 frames"):
        ADAPTER.format_prompt(interleaved_prompt("x", 2), 3)


# ---- the published layout -------------------------------------------------------------------------------------

def test_fabricated_folder_uses_the_published_names(published_folder):
    import torch
    from safetensors import safe_open

    checkpoint = torch.load(published_folder / "video_llama_checkpoint_last.pth", weights_only=True)
    keys = set(checkpoint["model"])
    assert {"llama_proj.weight", "llama_proj.bias"} <= keys
    assert "llama_model.base_model.model.model.layers.1.self_attn.v_proj.lora_B.default.weight" in keys
    assert not any(".k_proj." in k or "vision" in k for k in keys)
    eva = torch.load(published_folder / EVA_FILE, weights_only=True)
    assert {"cls_token", "pos_embed", "blocks.0.attn.qkv.weight", "blocks.0.attn.q_bias",
            "blocks.1.mlp.fc2.bias"} <= set(eva)
    assert tuple(eva["pos_embed"].shape[:2]) == (1, 257)
    with safe_open(str(published_folder / LLM_DIR / "model.safetensors"), framework="pt") as handle:
        assert "model.layers.0.self_attn.q_proj.weight" in set(handle.keys())


def test_published_layout_is_refused_without_allow_pickle(published_folder):
    with pytest.raises(UnsafeLoadError) as info:
        load(MODEL_ID, source=str(published_folder), dtype="float32")
    message = str(info.value)
    assert "video_llama_checkpoint_last.pth" in message and EVA_FILE in message and "allow_pickle=True" in message


def test_missing_pieces_and_hub_ids_say_what_to_prepare(tmp_path):
    (tmp_path / "video_llama_checkpoint_last.pth").write_bytes(b"")
    with pytest.raises(WeightsUnavailableError, match="eva_vit_g.pth .*llm/"):
        load(MODEL_ID, source=str(tmp_path), allow_pickle=True)
    with pytest.raises(WeightsUnavailableError, match="not a local folder"):
        load(MODEL_ID, source="Vision-CAIR/MiniGPT4-Video")


def test_published_layout_loads_to_the_twin_it_was_made_from(published, tiny, probe_clip):
    """LoRA merged back (W0 + scale * B @ A == W), EVA keys mapped, q/v biases joined: same weights, same caption."""
    import torch

    twin, assembled = tiny.model.state_dict(), published.model.state_dict()
    assert set(twin) == set(assembled)
    for key in twin:
        torch.testing.assert_close(assembled[key].float(), twin[key].float(), atol=1e-6, rtol=0)
    frames, timestamps = probe_clip(4)
    first = published.describe(frames, timestamps, generation=GEN)
    again = tiny.describe(frames, timestamps, generation=GEN)
    assert first.status == "ok" and first.n_tokens >= GEN.min_new_tokens
    assert (first.text, first.n_input_tokens) == (again.text, again.n_input_tokens)
    assert published.report.n_params == tiny.report.n_params


def test_lora_merge_changes_q_and_v_only(published_folder):
    """The llm/ folder alone (no LoRA) differs from the twin exactly in q_proj and v_proj."""
    from safetensors.torch import load_file

    base = load_file(str(published_folder / LLM_DIR / "model.safetensors"))
    twin = load_file(str(ADAPTER.ensure_tiny() / "model.safetensors"))
    changed = {k for k, v in base.items() if not (twin[f"language_model.{k}"] == v).all()}
    assert changed and all(".q_proj." in k or ".v_proj." in k for k in changed)


@pytest.mark.parametrize("quantization", ["8bit", "4bit-nf4"])
def test_quantized_published_layout_keeps_vision_and_projection_16_bit(published_folder, probe_clip, quantization):
    loaded = load(MODEL_ID, source=str(published_folder), dtype="float32", allow_pickle=True,
                  quantization=quantization)
    frames, timestamps = probe_clip(2)
    record = loaded.describe(frames, timestamps, generation=GEN)
    assert record.status == "ok", record.error
    joined = " ".join(loaded.report.unquantized_modules)
    assert "vision_model" in joined and "llama_proj" in joined and "language_model.lm_head" in joined
    assert not any(name.startswith("language_model.model") for name in loaded.report.unquantized_modules)
    loaded.unload()


# ---- random source, memory, attention, timeline --------------------------------------------------------------

def test_random_source_builds_the_real_architecture_with_the_tiny_tokenizer(tiny):
    """The full-size random model is too big for CPU tests: its config is checked instead."""
    config = ADAPTER.random_config(ADAPTER.specs["minigpt4-video-mistral"], tiny.processor)
    tokenizer = tiny.processor.tokenizer
    assert config.image_token_id == tokenizer.unk_token_id
    assert config.text_config.eos_token_id == tokenizer.eos_token_id
    assert (config.text_config.hidden_size, config.vision_config.hidden_size) == (4096, 1408)


def test_memory_predictor_scales_with_frames():
    from workbench.memory.predictor import predict

    few = predict(MODEL_ID, frames=8, height=480, width=640, attn_implementation="eager")
    many = predict(MODEL_ID, frames=32, height=480, width=640, attn_implementation="eager")
    assert (few.tokens["visual_tokens"], few.tokens["encoder_seq_len"]) == (512, 8 * 257)
    assert many.tokens["visual_tokens"] == 4 * few.tokens["visual_tokens"]
    assert many.peak_bytes > few.peak_bytes > few.weights_bytes
    # the 45-frame default overflows neither model's context; 90 frames overflow Llama-2's 4096 positions
    assert predict(MODEL_ID, frames=45).within_context
    assert not predict(MODEL_ID, frames=90).within_context
    assert predict("minigpt4-video-mistral", frames=90).within_context


def test_attention_capture_maps_each_token_to_its_frame_and_four_patches(probe_clip):
    from workbench.attention import attend
    from workbench.attention.capture import CaptureSettings

    loaded = load(MODEL_ID, source="tiny", dtype="float32", attn_implementation="eager")
    frames, timestamps = probe_clip(2)
    plain = loaded.describe(frames, timestamps, generation=GEN)
    maps = attend(loaded, frames, timestamps, generation=GEN, settings=CaptureSettings(heads="all"))
    assert maps.capture.caption.text == plain.text
    layout = maps.layout
    assert layout.n_tokens == maps.capture.n_visual == 128 and (layout.grid_rows, layout.grid_cols) == (16, 16)
    table = layout.token_table()
    token_70 = table[table.token == 70]  # frame 1, token 6: row 1, columns 8..11
    assert token_70.frame.tolist() == [1] * 4 and token_70.row.tolist() == [1] * 4
    assert token_70.col.tolist() == [8, 9, 10, 11] and np.allclose(token_70.weight, 0.25)
    attention = maps.select()
    np.testing.assert_allclose(layout.frame_mass(attention).sum(-1), attention.sum(-1), rtol=1e-4, atol=1e-6)
    loaded.unload()


def test_quality_timeline_runs_on_the_tiny_twin(tiny, tmp_path):
    from workbench.probe_videos import ensure_probe_videos
    from workbench.quality.timeline import TimelineSettings, caption_timeline

    video = ensure_probe_videos(["events"], seed=0, duration_s=3, out_dir=tmp_path)["events"]
    timeline = caption_timeline(tiny, video, TimelineSettings(frames_per_window=2, max_new_tokens=5,
                                                              track_memory=False), progress=False)
    table = timeline.table
    assert list(table["start_s"]) == [0.0, 1.0, 2.0]
    assert (table["status"] == "ok").all() and (table["n_frames"] == 2).all()


def test_load_settings_reach_the_model(published_folder):
    loaded = load(MODEL_ID, LoadSettings(source=str(published_folder), dtype="bfloat16", allow_pickle=True,
                                         attn_implementation="eager"))
    assert loaded.model.llama_proj.weight.dtype.is_floating_point and str(loaded.model.dtype) == "torch.bfloat16"
    assert loaded.model.config.text_config._attn_implementation == "eager"
    loaded.unload()
