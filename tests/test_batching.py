"""Several windows per generate call give the captions of one call per window (greedy, 32-bit, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.batching import Window, batch_support, collate, describe_batch, generated_length, shape_groups
from workbench.models import load
from workbench.models.base import GenerationSettings

# One published model per family that batches, plus a trained twin (real captions, not noise).
BATCHABLE = ["qwen2-vl-2b", "qwen2.5-vl-3b", "qwen3-vl-2b", "video-llava-7b", "llava-next-video-7b",
             "llava-onevision-0.5b", "llava-video-7b", "smolvlm2-256m", "internvl3-1b", "tarsier2-recap-7b",
             "auroracap-7b-vid", "instructblip-video-vicuna-7b", "twin-qwen2-vl-video"]
ONE_PER_CALL = ["blip2-opt-2.7b", "minigpt4-video-llama2"]


def windows(counts: list[int], seed: int = 0) -> list[Window]:
    rng = np.random.default_rng(seed)
    return [Window(rng.integers(0, 255, (n, 96, 128, 3), dtype=np.uint8), np.arange(n) * (1.0 / n) + i, 1.0)
            for i, n in enumerate(counts)]


def source(model: str) -> str:
    return "trained" if model.startswith("twin-") else "tiny"


@pytest.mark.parametrize("model", BATCHABLE)
def test_batched_captions_equal_one_per_call(model: str) -> None:
    torch.set_num_threads(1)
    loaded = load(model, source=source(model), dtype="float32", device="cpu")
    assert batch_support(loaded) is None
    # Unequal frame counts: Qwen-VL and InternVL stack them in one padded call (different prompt lengths),
    # families with a per-window pixel axis split them into calls by shape.
    wins = windows([2, 4, 2, 4, 4])
    generation = GenerationSettings(max_new_tokens=10)
    single = [loaded.describe(w.frames, w.timestamps_s, generation=generation, duration_s=w.duration_s)
              for w in wins]
    batched = describe_batch(loaded, wins, generation=generation)
    assert [r.status for r in batched] == ["ok"] * len(wins), [r.error for r in batched]
    assert [r.text for r in batched] == [r.text for r in single]
    assert [r.n_tokens for r in batched] == [r.n_tokens for r in single]
    assert [r.n_input_tokens for r in batched] == [r.n_input_tokens for r in single]
    assert all("batch of" in " ".join(r.notes) for r in batched)


@pytest.mark.parametrize("model", ONE_PER_CALL)
def test_families_with_their_own_describe_say_they_cannot_batch(model: str) -> None:
    loaded = load(model, source="tiny", dtype="float32", device="cpu")
    reason = batch_support(loaded)
    assert reason is not None and model in reason and "one window per call" in reason
    with pytest.raises(ValueError, match="one window per call"):
        describe_batch(loaded, windows([2]))


def test_collate_pads_text_on_the_left_and_stacks_the_rest() -> None:
    a = {"input_ids": torch.tensor([[5, 6, 7]]), "attention_mask": torch.ones(1, 3, dtype=torch.long),
         "pixel_values": torch.zeros(4, 8), "grid": torch.tensor([[1, 2, 2]]), "flag": True}
    b = {"input_ids": torch.tensor([[9]]), "attention_mask": torch.ones(1, 1, dtype=torch.long),
         "pixel_values": torch.ones(2, 8), "grid": torch.tensor([[1, 1, 2]]), "flag": True}
    out = collate([a, b], pad_token_id=0)
    assert out["input_ids"].tolist() == [[5, 6, 7], [0, 0, 9]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert out["pixel_values"].shape == (6, 8) and out["grid"].tolist() == [[1, 2, 2], [1, 1, 2]]
    assert out["flag"] is True
    with pytest.raises(ValueError, match="'flag' differs"):
        collate([a, b | {"flag": False}], pad_token_id=0)
    with pytest.raises(ValueError, match="window 1 has inputs"):
        collate([a, {"input_ids": b["input_ids"]}], pad_token_id=0)


def test_shape_groups_split_windows_whose_pixels_cannot_stack() -> None:
    def item(frames: int, length: int) -> dict:
        return {"input_ids": torch.zeros(1, length, dtype=torch.long), "pixel_values_videos": torch.zeros(1, frames, 3)}

    assert shape_groups([item(2, 5), item(4, 9), item(2, 7), item(4, 9)]) == [[0, 2], [1, 3]]


def test_generated_length_stops_at_the_first_stop_token() -> None:
    assert generated_length(torch.tensor([4, 5, 2, 0, 0]), {2}) == 3
    assert generated_length(torch.tensor([4, 5, 6]), {2}) == 3


def test_the_explorer_selection_carries_batch_windows_into_captioning():
    from workbench.explore.selection import ACTION_FIELDS, Selection

    assert "batch_windows" in ACTION_FIELDS["caption"]
    assert Selection(batch_windows=4).key("caption") != Selection().key("caption")
    assert Selection(batch_windows=4).key("load") == Selection().key("load")
    with pytest.raises(ValueError, match="batch_windows must be positive"):
        Selection(batch_windows=0)
