"""Ranking configurations under a memory budget, on a hand-made table of runs."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from workbench.quality import compare
from workbench.units import GiB


def _runs() -> pd.DataFrame:
    rows = [
        # big and good, medium and fair, small and poor, and one without a measured peak
        {"model_id": "big-7b", "peak_bytes": 20 * GiB, "success_rate": 1.0, "coverage": 1.0, "fact_recall": 0.8,
         "hallucination_rate": 0.05, "genericness": 0.2, "staticness": 0.3, "compute_per_video_s": 2.0},
        {"model_id": "mid-3b", "peak_bytes": 9 * GiB, "success_rate": 0.9, "coverage": 0.9, "fact_recall": 0.5,
         "hallucination_rate": 0.2, "genericness": 0.4, "staticness": 0.5, "compute_per_video_s": 0.8},
        {"model_id": "small-1b", "peak_bytes": 3 * GiB, "success_rate": 0.5, "coverage": 0.6, "fact_recall": 0.2,
         "hallucination_rate": 0.4, "genericness": 0.7, "staticness": 0.9, "compute_per_video_s": 0.3},
        {"model_id": "unmeasured", "peak_bytes": float("nan"), "success_rate": 1.0, "coverage": 1.0,
         "fact_recall": 1.0, "hallucination_rate": 0.0, "genericness": 0.0, "staticness": 0.0},
    ]
    table = pd.DataFrame(rows)
    table["config"] = table["model_id"] + "/none"
    return table


@pytest.mark.parametrize("budget, winner, n_fitting", [
    (24.0, "big-7b", 3), (16.0, "mid-3b", 2), (8.0, "small-1b", 1), (2.0, None, 0),
])
def test_recommendation_changes_with_the_budget(budget, winner, n_fitting):
    ranking = compare.rank(_runs(), budget)
    choice = compare.recommend(ranking, budget)
    assert choice["model_id"] == winner and choice["n_fitting"] == n_fitting
    excluded = {e["config"]: e["reason"] for e in choice["excluded"]}
    assert excluded["unmeasured/none"] == "no peak memory measured"  # never recommended blind
    assert len(excluded) == 4 - n_fitting
    ranked = ranking.dropna(subset=["rank"])
    assert list(ranked["rank"]) == list(range(1, n_fitting + 1))
    assert ranked["quality_score"].is_monotonic_decreasing
    assert ranking["rank"].isna().sum() == 4 - n_fitting


def test_exclusion_reasons_and_the_words_of_the_recommendation():
    choice = compare.recommend(compare.rank(_runs(), 16.0), 16.0)
    excluded = {e["config"]: e for e in choice["excluded"]}
    assert excluded["big-7b/none"]["reason"] == "peak 20 GiB > budget 16 GiB"
    assert excluded["big-7b/none"]["peak_gib"] == pytest.approx(20.0)
    assert choice["why"].startswith("mid-3b/none has the highest quality score")
    assert "runner-up small-1b/none" in choice["why"]
    assert "better on success_rate, coverage, fact_recall, hallucination_rate, genericness, staticness" in choice["why"]
    nothing = compare.recommend(compare.rank(_runs(), 2.0), 2.0)
    assert nothing["recommended"] is None and "smallest peak is 3 GiB (small-1b/none)" in nothing["why"]
    json.dumps(choice)  # saved as JSON by the notebook


def test_evidence_sets_the_winner_beside_the_runner_up():
    proof = compare.evidence(compare.rank(_runs(), 24.0)).set_index("metric")
    assert proof.loc["success_rate", "recommended"] == 1.0 and proof.loc["success_rate", "runner_up"] == 0.9
    assert proof.loc["peak_gib", "difference"] == pytest.approx(11.0)
    assert proof.loc["quality_score", "difference"] > 0


def test_ties_go_to_the_smaller_peak():
    table = _runs().iloc[:2].copy()
    for column in compare.QUALITY_COMPONENTS:
        table[column] = 0.5
    ranking = compare.rank(table, 24.0)
    assert list(ranking["model_id"]) == ["mid-3b", "big-7b"]


def test_quality_score_leaves_out_missing_components():
    assert compare.quality_score({"success_rate": 1.0, "hallucination_rate": 0.25}) == pytest.approx(0.875)
    assert math.isnan(compare.quality_score({}))


def test_collect_runs_skips_failed_and_unfinished_runs(tmp_path):
    def make(name, status, summary=None, error=None):
        run = tmp_path / name
        (run / "results").mkdir(parents=True)
        (run / "manifest.json").write_text(json.dumps({"status": status, "error": error,
                                                        "started_at": f"2026-01-01T00:00:0{name[-1]}"}))
        if summary is not None:
            (run / "results" / "summary.json").write_text(json.dumps(summary))

    summary = {"model_id": "qwen2-vl-2b", "quantization": "none", "attn_implementation": "sdpa", "mode": "windows",
               "window_s": 1.0, "frames_per_window": 1, "peak_bytes": 100, "success_rate": 1.0}
    make("run1", "ok", summary)
    make("run2", "failed", error="cell 5: OutOfMemoryError: CUDA out of memory\ntraceback")
    make("run3", "running")
    make("run4", "ok")  # finished without a summary
    make("run5", "ok", {**summary, "success_rate": 0.5})
    runs, skipped = compare.collect_runs(root=tmp_path)
    assert list(runs["run"]) == ["run1", "run5"]
    assert runs["config"].iloc[0] == "qwen2-vl-2b/none/sdpa/windows 1s x1"
    reasons = dict(zip(skipped["run"], skipped["reason"]))
    assert reasons == {"run2": "cell 5: OutOfMemoryError: CUDA out of memory",
                       "run3": "unfinished (no end recorded)", "run4": "no results/summary.json"}
    latest = compare.latest_per_config(runs)
    assert list(latest["run"]) == ["run5"]


def test_ranking_nothing_says_what_to_run_first():
    with pytest.raises(ValueError, match="run notebook 04_caption_quality first"):
        compare.rank(pd.DataFrame(), 1.0)


def test_kinds_of_weights_are_ranked_apart_unless_mixed():
    table = _runs().iloc[:3].copy()
    table["source"] = ["Qwen/Qwen2-VL-7B-Instruct", "tiny", "tiny"]
    apart = compare.rank(table, 24.0)
    assert list(zip(apart["model_id"], apart["rank"])) == [("big-7b", 1), ("mid-3b", 1), ("small-1b", 2)]
    assert apart["weights"].iloc[0] != apart["weights"].iloc[1]
    mixed = compare.rank(table, 24.0, mix_sources=True)
    assert list(zip(mixed["model_id"], mixed["rank"])) == [("big-7b", 1), ("mid-3b", 2), ("small-1b", 3)]
