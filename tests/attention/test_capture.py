"""Attention capture on every family's tiny twin: the caption is unchanged, the kept rows are the
model's own attention probabilities, and each visual token lands where the model put it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from workbench.attention import aggregate, attend
from workbench.attention.capture import AttentionCapture, CaptureSettings
from workbench.models.base import GenerationSettings

# one model per family
FAMILY_MODELS = [
    "qwen2-vl-2b", "qwen2.5-vl-3b", "qwen3-vl-2b", "video-llava-7b", "llava-next-video-7b",
    "llava-onevision-0.5b", "smolvlm2-2.2b", "internvl3-1b", "blip2-opt-2.7b", "instructblip-video",
    "tarsier2-recap-7b", "auroracap-7b-vid", "minigpt4-video-llama2",
]
QFORMER = {"blip2-opt-2.7b", "instructblip-video"}
GENERATION = GenerationSettings(max_new_tokens=5, min_new_tokens=5)


def _load(model_id: str, attention: str = "sdpa", dtype: str = "bfloat16"):
    from workbench import models

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return models.load(model_id, source="tiny", attn_implementation=attention, dtype=dtype)


def _frames(loaded, n: int = 4, height: int = 240, width: int = 320, value: int = 128) -> np.ndarray:
    n = loaded.spec.fixed_frames or n
    return np.full((n, height, width, 3), value, dtype=np.uint8)


@pytest.mark.parametrize("model_id", FAMILY_MODELS)
def test_capture_keeps_caption_and_maps_every_token(model_id, probe_clip):
    """Per family: with capture == without, under sdpa; shapes and mass conservation of the layout."""
    loaded = _load(model_id)
    frames, timestamps = probe_clip(loaded.spec.fixed_frames or 4)
    plain = loaded.describe(frames, timestamps, generation=GENERATION)
    maps = attend(loaded, frames, timestamps, generation=GENERATION, settings=CaptureSettings(heads="all"))
    assert plain.status == "ok"
    assert maps.capture.caption.text == plain.text
    words, layers, heads, visual = maps.capture.attention.shape
    assert words == len(maps.capture.words) > 0
    assert layers == len(maps.capture.layers) == 2  # tiny twins have 2 LLM layers
    assert heads == loaded.model.config.get_text_config().num_attention_heads
    assert visual == maps.layout.n_tokens
    # the visual part of each row is a share of a probability distribution: in (0, 1]
    mass = maps.capture.attention.astype(np.float32).sum(-1)
    assert np.all(mass > 0) and np.all(mass <= 1.0 + 1e-2)
    # carrying mass from tokens to frames (+ the whole-clip cell) loses none of it
    per_frame = maps.layout.frame_mass(maps.select())
    clip = maps.layout.to_cells(maps.select())[:, maps.layout.clip_cell]
    np.testing.assert_allclose(per_frame.sum(-1) + clip, maps.select().sum(-1), rtol=1e-4, atol=1e-5)
    # after the capture the model is back to its own attention implementation
    assert loaded.model.config.get_text_config()._attn_implementation == "sdpa"
    assert "generate" not in vars(loaded.model)


@pytest.mark.parametrize("model_id", ["qwen2-vl-2b", "llava-onevision-0.5b", "blip2-opt-2.7b"])
def test_recomputed_rows_equal_eager_probabilities(model_id, probe_clip):
    """`recompute` keeps softmax(q.K) of the last query; eager attention's own probabilities must agree."""
    loaded = _load(model_id, "eager")
    frames, timestamps = probe_clip(4)
    recomputed = attend(loaded, frames, timestamps, generation=GENERATION,
                        settings=CaptureSettings(heads="all", mode="recompute"))
    eager = attend(loaded, frames, timestamps, generation=GENERATION,
                   settings=CaptureSettings(heads="all", mode="eager"))
    assert recomputed.capture.caption.text == eager.capture.caption.text
    np.testing.assert_allclose(recomputed.capture.attention.astype(np.float32),
                               eager.capture.attention.astype(np.float32), atol=2e-3)
    assert eager.capture.eager_transient_bytes > 0 == recomputed.capture.eager_transient_bytes


def test_layer_selection_and_head_mean(probe_clip):
    loaded = _load("qwen2-vl-2b")
    frames, timestamps = probe_clip(4)
    every = attend(loaded, frames, timestamps, generation=GENERATION, settings=CaptureSettings(heads="all"))
    last = attend(loaded, frames, timestamps, generation=GENERATION,
                  settings=CaptureSettings(layers=(-1,), heads="mean"))
    assert last.capture.layers == [1]
    assert last.capture.attention.shape[1:3] == (1, 1)
    np.testing.assert_allclose(last.capture.attention[:, 0, 0].astype(np.float32),
                               every.capture.attention[:, 1].astype(np.float32).mean(axis=1), atol=1e-3)
    assert last.capture.kept_bytes * 8 == every.capture.kept_bytes  # 1 of 2 layers, 1 of 4 heads
    with pytest.raises(ValueError, match="layer 5 does not exist"):
        AttentionCapture(loaded, CaptureSettings(layers=(5,)))
    with pytest.raises(ValueError, match="heads"):
        CaptureSettings(heads="max")


def _llm_inputs(loaded, frames: np.ndarray) -> np.ndarray:
    """The language model's first-layer input at the visual positions (V, D), from one prefill."""
    import torch

    from workbench.attention.capture import _llm_attention_modules

    module = _llm_attention_modules(loaded.model)[0]
    seen = {}

    def hook(_module, args, kwargs):
        seen.setdefault("hidden", (kwargs.get("hidden_states", args[0] if args else None)).detach().float())

    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    capture_ids = {}
    original = loaded.model.generate

    def generate(**kwargs):
        capture_ids["ids"] = kwargs["input_ids"]
        return original(**kwargs)

    loaded.model.generate = generate
    try:
        loaded.describe(frames, np.arange(len(frames)) * 0.5, generation=GenerationSettings(max_new_tokens=1))
    finally:
        handle.remove()
        del loaded.model.generate
    ids = capture_ids["ids"]
    visual = torch.isin(ids, torch.tensor(sorted(loaded.adapter.visual_token_ids(loaded))))
    return torch.cat([seen["hidden"][r][visual[r]] for r in range(ids.shape[0])]).numpy()


def _make_vision_local(loaded) -> None:
    """Zero the vision tower's attention output projections: each patch token then depends on its own
    pixels only, so a pixel change shows which LLM token holds that place."""
    import torch

    names = {"proj", "out_proj", "o_proj", "projection_layer", "projection"}
    zeroed = 0
    for name, module in loaded.model.named_modules():
        lowered = name.lower()
        if not any(part in lowered for part in ("visual", "vision", "tower")) or "qformer" in lowered:
            continue
        if isinstance(module, torch.nn.Linear) and name.split(".")[-1] in names and (
                "attn" in lowered or "attention" in lowered):
            with torch.no_grad():
                module.weight.zero_()
                if module.bias is not None:
                    module.bias.zero_()
            zeroed += 1
    assert zeroed > 0


@pytest.mark.parametrize("model_id", [m for m in FAMILY_MODELS if m not in QFORMER])
def test_layout_points_where_the_model_put_the_pixels(model_id):
    """Brighten one grid cell of one frame; the LLM input token that changes most is the one the layout
    puts at that frame, row and column, and an attention pattern on it lights the figure up there."""
    loaded = _load(model_id)
    if "token_kept_ratio" in loaded.adapter.runtime_options:
        # AuroraCap: merging depends on the content, so a perturbed frame merges differently and token i of
        # two runs is not the same token; the grid is checked unmerged (the merged map is the model's own
        # record of which patches each token took, tested in tests/models/test_auroracap.py)
        loaded.configure({"token_kept_ratio": 1.0})
    _make_vision_local(loaded)
    base = _frames(loaded, n=4)
    n_frames = len(base)
    maps = attend(loaded, base, np.arange(n_frames) * 0.5, generation=GenerationSettings(max_new_tokens=1))
    layout = maps.layout
    frame, row, col = n_frames - 2, layout.grid_rows // 2, layout.grid_cols // 3
    x0, y0, x1, y1 = layout.box
    height, width = base.shape[1:3]
    cell_w, cell_h = (x1 - x0) * width / layout.grid_cols, (y1 - y0) * height / layout.grid_rows
    left, top = x0 * width + col * cell_w, y0 * height + row * cell_h
    perturbed = base.copy()
    # noise in the middle of the cell, so resizing does not bleed into neighbours (a flat change can vanish
    # in a layer norm)
    rows = slice(int(top + cell_h * 0.3), int(top + cell_h * 0.7) + 1)
    cols = slice(int(left + cell_w * 0.3), int(left + cell_w * 0.7) + 1)
    shape = perturbed[frame, rows, cols].shape
    perturbed[frame, rows, cols] = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    change = np.abs(_llm_inputs(loaded, perturbed) - _llm_inputs(loaded, base)).sum(-1)
    token = int(change.argmax())
    pattern = np.zeros(layout.n_tokens, dtype=np.float32)
    pattern[token] = 1.0
    grids = layout.spatial(pattern)
    assert grids[frame, row, col] == pytest.approx(grids.max())
    assert grids[frame, row, col] > 0
    lit_frames = np.flatnonzero(layout.frame_mass(pattern) > 0)
    assert frame in lit_frames and len(lit_frames) <= 2  # Qwen temporal patches cover 2 frames
    # and only tokens of the perturbed frame (or its temporal patch) changed at all
    changed = np.flatnonzero(change > change.max() * 1e-3)
    changed_frames = set(np.flatnonzero(layout.frame_mass(np.isin(np.arange(layout.n_tokens), changed)) > 0))
    assert changed_frames <= set(lit_frames.tolist())


@pytest.mark.parametrize("model_id", sorted(QFORMER))
def test_qformer_queries_belong_to_their_frame(model_id):
    """Changing one frame changes exactly that frame's 32 query tokens; the traced layout sends each
    query's mass to its own frame's patches. (float32: the tiny twins' Q-Former outputs barely move with
    the pixels, below bfloat16's resolution.)"""
    loaded = _load(model_id, dtype="float32")
    base = _frames(loaded, n=4)
    n_frames = len(base)
    maps = attend(loaded, base, np.arange(n_frames) * 0.5, generation=GenerationSettings(max_new_tokens=1))
    perturbed = base.copy()
    perturbed[2] = np.random.default_rng(0).integers(0, 256, base[2].shape, dtype=np.uint8)
    change = np.abs(_llm_inputs(loaded, perturbed) - _llm_inputs(loaded, base)).sum(-1)
    changed = np.flatnonzero(change > change.max() * 1e-3)
    per_frame = maps.layout.frame_mass(np.isin(np.arange(maps.layout.n_tokens), changed).astype(np.float32))
    assert np.flatnonzero(per_frame > 0).tolist() == [2]
    assert per_frame[2] == pytest.approx(32.0, rel=1e-4)
    table = maps.layout.token_table()
    assert set(table.loc[table.token < 32, "frame"]) == {0}


def test_aggregates_follow_an_attention_pattern(probe_clip):
    """A hand-set pattern (word 0 on frame 3's tokens, the rest uniform) shows up in every table."""
    loaded = _load("llava-onevision-0.5b")
    frames, timestamps = probe_clip(4)
    maps = attend(loaded, frames, timestamps, generation=GENERATION)
    words = len(maps.capture.words)
    pattern = np.full((words, 1, 1, maps.layout.n_tokens), 0.5 / maps.layout.n_tokens, dtype=np.float16)
    frame3 = maps.layout.token_table().query("frame == 3 and kind == 'patch'")["token"].to_numpy()
    pattern[0, 0, 0] = 0
    pattern[0, 0, 0, frame3] = 0.9 / len(frame3)
    maps.capture.attention = pattern
    maps.capture.layers = [0]
    per_word = aggregate.word_summary(maps)
    assert per_word.loc[0, "top_frame"] == 3
    assert per_word.loc[0, "top_time_s"] == pytest.approx(timestamps[3])
    assert per_word.loc[0, "visual_mass"] == pytest.approx(0.9, abs=1e-3)
    table = aggregate.frame_table(maps)
    assert table.groupby("word")["share"].sum().to_numpy() == pytest.approx(np.ones(words), abs=1e-5)
    grids = aggregate.spatial_maps(maps, word=0)
    assert grids[3].sum() == pytest.approx(0.9, abs=1e-3) and grids[:3].sum() == 0
    with pytest.raises(ValueError, match="word 99"):
        aggregate.spatial_maps(maps, word=99)
