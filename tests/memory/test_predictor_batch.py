"""The batch term: B windows per generate call (workbench.batching) in the memory predictor."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from workbench.memory.predictor import predict

H100 = Path(__file__).parents[2] / "docs" / "gpu" / "bench_batch_h100.csv"
QWEN_720P = dict(source="random", frames=2, height=720, width=1280, max_pixels=602112)


def test_one_window_per_call_is_the_default():
    assert predict("qwen2-vl-2b", **QWEN_720P).as_dict() == predict("qwen2-vl-2b", **QWEN_720P,
                                                                    batch_windows=1).as_dict()


@pytest.mark.parametrize("model", ["qwen2-vl-7b", "llava-onevision-7b", "internvl3-8b"])
def test_weights_stay_and_what_each_window_brings_scales(model):
    one = predict(model, source="random", frames=4, height=720, width=1280, max_new_tokens=24)
    four = predict(model, source="random", frames=4, height=720, width=1280, max_new_tokens=24, batch_windows=4)
    assert four.weights_bytes == one.weights_bytes
    assert four.kv_cache_bytes == 4 * one.kv_cache_bytes  # decoder-only: one cache row per window
    assert four.tokens["llm_batch"] == 4 * one.tokens["llm_batch"]
    assert four.tokens["input_tokens"] == 4 * one.tokens["input_tokens"]
    assert four.tokens["encoder_seq_len"] == 4 * one.tokens["encoder_seq_len"]
    assert four.tokens["segment_len"] == one.tokens["segment_len"]  # a segment's attention does not grow
    assert one.peak_bytes < four.peak_bytes < 4 * one.peak_bytes
    assert four.batch_windows == 4 and four.as_dict()["batch_windows"] == 4


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "4"])
def test_batch_windows_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="batch_windows must be an int >= 1"):
        predict("qwen2-vl-2b", **QWEN_720P, batch_windows=bad)


def test_predicted_against_the_h100_measurements_at_every_batch():
    """docs/gpu/bench_batch_h100.csv: the CUDA allocator's peak over 16 windows at B = 1, 4, 8, 16 (random
    full-size Qwen2-VL-2B/7B, bf16, sdpa, 2 frames of 720p per window, 24 new tokens), measured on an H100."""
    rows = list(csv.DictReader(H100.open()))
    assert len(rows) == 8
    for row in rows:
        prediction = predict(row["model"], **QWEN_720P, max_new_tokens=24, batch_windows=int(row["B"]))
        measured = int(float(row["peak_allocated_bytes"]))
        error = (prediction.peak_bytes - measured) / measured
        assert abs(error) < 0.02, (row["model"], row["B"], f"{error:+.2%}")
