"""Frontier search: same boundary as an exhaustive sweep, O(log n) probes, predictor skips."""

from __future__ import annotations

import math
import random

import pytest

from workbench.memory import (exhaustive, frame_values, pixel_values, predict_config, predicted_frontier,
                              search)
from workbench.memory.probe import ProbeConfig
from workbench.units import from_gib


def _probe_below(threshold, calls):
    def probe(value):
        calls.append(value)
        return value <= threshold, {"peak_bytes": value}
    return probe


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 33, 128, 200])
def test_search_matches_exhaustive_with_log_probes(n):
    values = list(range(2, 2 * n + 2, 2))
    rng = random.Random(n)
    for threshold in {0, values[0], values[-1], values[-1] + 5, *rng.sample(values, min(5, n))}:
        calls = []
        result = search(values, _probe_below(threshold, calls), budget_bytes=threshold)
        assert result.best == exhaustive(values, lambda v: v <= threshold)
        assert len(calls) == len(set(calls)) == result.n_probes  # never the same value twice
        assert result.n_probes <= 2 * math.ceil(math.log2(n + 1)) + 1
        if n >= 8:
            assert result.n_probes < n
        if result.best is not None and result.best != values[-1]:
            assert result.first_failing == values[values.index(result.best) + 1]


def test_predictor_skips_only_what_cannot_fit_and_keeps_the_boundary():
    values = list(range(1, 257))
    budget = 100
    calls = []
    # true cost = value; the predictor overestimates by 5 %, within the 10 % margin
    result = search(values, _probe_below(budget, calls), budget, predicted_peak=lambda v: int(v * 1.05), margin=0.1)
    assert result.best == 100
    assert result.skipped and all(s["value"] * 1.05 * 0.9 > budget for s in result.skipped)
    assert not set(calls) & {s["value"] for s in result.skipped}
    no_predictor = search(values, _probe_below(budget, []), budget)
    assert result.n_probes < no_predictor.n_probes  # the skipped ones would have been the out-of-memory probes


def test_frontier_on_measured_midsize_data_matches_the_exhaustive_sweep(midsize, midsize_results):
    """Budgets between the measured peaks: the search over the measured frames finds the exhaustive boundary."""
    for attn in ("eager", "sdpa"):
        peaks = {f: midsize_results[("none", attn, f)]["peak_bytes"] for f in midsize.scaling_frames}
        predicted = {f: midsize_results[("none", attn, f)]["predicted_peak_bytes"] for f in midsize.scaling_frames}
        ordered = sorted(peaks.values())
        for budget in [ordered[0] - 1, *[(a + b) // 2 for a, b in zip(ordered, ordered[1:])], ordered[-1] + 1]:
            result = search(list(peaks), lambda f: (peaks[f] <= budget, {"peak_bytes": peaks[f]}), budget,
                            predicted_peak=predicted.get, margin=0.1)
            assert result.best == exhaustive(list(peaks), lambda f: peaks[f] <= budget), (attn, budget)


def test_predicted_frontier_of_the_7b_matches_a_dense_sweep_with_few_evaluations():
    config = ProbeConfig(model="qwen2-vl-7b", source="random", quantization="8bit", attn_implementation="sdpa",
                         dtype="float16", max_pixels=602112)
    values = frame_values("qwen2-vl-7b", 256)
    budget = from_gib(24.0)
    result = predicted_frontier(config, budget, "frames", values)
    dense = exhaustive(values, lambda f: predict_config(config.replace(frames=f)).peak_bytes <= budget)
    assert result.best == dense and 2 <= dense < 256
    assert result.n_probes <= 2 * math.ceil(math.log2(len(values))) + 1 < len(values)


def test_domains_follow_each_family():
    assert frame_values("qwen2-vl-7b", 16) == [2, 4, 6, 8, 10, 12, 14, 16]  # odd counts cost as the next even
    assert frame_values("video-llava-7b", 64) == [8]  # a fixed-frame model
    assert frame_values("llava-onevision-0.5b", 4) == [1, 2, 3, 4]
    caps = pixel_values("qwen2-vl-7b", 1080, 1920, n_values=64)
    assert all(c % 784 == 0 for c in caps) and caps == sorted(caps) and caps[-1] >= 1080 * 1920
    assert len(caps) <= 66
    assert pixel_values("video-llava-7b", 1080, 1920) == []  # frames are resized to a fixed size anyway


def test_pixel_frontier_by_prediction():
    config = ProbeConfig(model="qwen2-vl-7b", source="random", attn_implementation="eager", dtype="float16",
                         frames=16)
    caps = pixel_values("qwen2-vl-7b", 1080, 1920, n_values=128)
    result = predicted_frontier(config, from_gib(44.5), "max_pixels", caps)
    fits = lambda c: predict_config(config.replace(max_pixels=c)).peak_bytes <= from_gib(44.5)  # noqa: E731
    assert result.best == exhaustive(caps, fits)
    assert caps[0] < result.best < caps[-1]
