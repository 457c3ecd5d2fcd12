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


def test_the_probe_measures_a_batched_call_and_predicts_it():
    """A measured probe of B windows per call (tiny twin, CPU): more memory than one window, predicted with
    the batch term, and the frontier over batch_windows by prediction is monotone."""
    from workbench.memory import ProbeConfig, run_probe
    from workbench.memory.frontier import predicted_frontier

    base = dict(model="qwen2-vl-2b", source="tiny", device="cpu", dtype="float32", frames=2, height=96,
                width=128, max_new_tokens=4, threads=1)
    one = run_probe(ProbeConfig(**base))
    four = run_probe(ProbeConfig(batch_windows=4, **base))
    assert one["status"] == four["status"] == "ok", (one.get("error"), four.get("error"))
    assert four["tokens"]["input_tokens"] == 4 * one["tokens"]["input_tokens"]
    assert four["tokens"]["encoder_seq_len"] == 4 * one["tokens"]["encoder_seq_len"]
    assert four["peak_bytes"] > one["peak_bytes"]
    assert four["prediction"]["batch_windows"] == 4
    assert abs(four["error_pct"]) < 10, four["error_pct"]
    budget = (one["predicted_peak_bytes"] + four["predicted_peak_bytes"]) // 2
    frontier = predicted_frontier(ProbeConfig(**base), budget, axis="batch_windows", device="cpu")
    assert frontier.best is not None and 1 <= frontier.best < 4


def test_a_family_that_cannot_batch_is_a_failed_probe_naming_why():
    from workbench.memory import ProbeConfig, run_probe

    result = run_probe(ProbeConfig(model="blip2-opt-2.7b", source="tiny", device="cpu", dtype="float32", frames=2,
                                   height=96, width=128, max_new_tokens=2, batch_windows=2, threads=1))
    assert result["status"] == "failed" and "batch_windows=2 cannot be measured" in result["error"]
