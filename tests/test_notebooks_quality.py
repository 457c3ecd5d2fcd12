"""Notebooks 04 (caption quality) and 05 (compare models) on tiny twins: the tables, charts and a
recommendation that follows the memory budget."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from workbench.runner import run_notebook

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

SECONDS = 3  # caption the first 3 s of the events probe video: enough to compare, quick on two cores
RUNS_04 = {"qwen2-vl-2b": "04_caption_quality.smoke.yaml", "smolvlm2-256m": "04_caption_quality.smoke_smolvlm2.yaml",
           "blip2-opt-2.7b": "04_caption_quality.smoke_blip2.yaml"}


@pytest.fixture(scope="module")
def demo_outputs(isolated_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    """Three ok 04 runs (one per tiny family) and a failed one, in a fresh outputs folder."""
    outputs = tmp_path_factory.mktemp("quality_outputs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WORKBENCH_OUTPUTS", str(outputs))
        patch.setenv("WORKBENCH_CACHE", str(isolated_cache))
        # one torch thread per kernel: two OpenMP threads on a shared 2-core machine spin against other jobs
        patch.setenv("OMP_NUM_THREADS", "1")
        runs = {}
        for model, params in RUNS_04.items():
            result = run_notebook("04_caption_quality", params, overrides={"max_seconds": float(SECONDS)})
            assert result.status == "ok", result.error
            runs[model] = result.dir
        failed = outputs / "04_caption_quality" / "20000101-000000-deadbeef"
        failed.mkdir(parents=True)
        (failed / "manifest.json").write_text(json.dumps({"status": "oom", "error": "cell 6: OutOfMemoryError: x"}))
        yield outputs, runs, patch


def _run_05(patch, budget_gib: float):
    result = run_notebook("05_compare_models", "05_compare_models.smoke.yaml", overrides={"budget_gib": budget_gib})
    assert result.status == "ok", result.error
    return result.dir


def _csv(run_dir: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(run_dir / "results" / f"{name}.csv")


def test_caption_quality_run_saves_timeline_metrics_and_costs(demo_outputs):
    _, runs, _ = demo_outputs
    for model, run_dir in runs.items():
        timeline = _csv(run_dir, "timeline")
        timing = _csv(run_dir, "timing")  # durations live apart, so a rerun's other results compare byte for byte
        assert list(timeline["start_s"]) == [0.0, 1.0, 2.0] and (timing["latency_s"] > 0).all(), model
        per_window = _csv(run_dir, "per_window")
        assert len(per_window) == SECONDS and (per_window["n_facts"] > 0).all()
        summary = json.loads((run_dir / "results" / "summary.json").read_text())
        assert summary["model_id"] == model and summary["span_s"] == SECONDS
        assert summary["peak_bytes"] > summary["memory_after_load_bytes"] > 0
        totals = json.loads((run_dir / "results" / "timing.json").read_text())
        assert totals["compute_per_video_s"] == pytest.approx(timing["latency_s"].sum() / SECONDS)
        assert 0 <= summary["success_rate"] <= 1 and 0 <= summary["coverage"] <= 1
        for figure in ("timeline_view", "metrics", "per_window"):
            assert (run_dir / "figures" / f"{figure}.png").stat().st_size > 10_000, (model, figure)
    blip2 = json.loads((runs["blip2-opt-2.7b"] / "results" / "summary.json").read_text())
    qwen = json.loads((runs["qwen2-vl-2b"] / "results" / "summary.json").read_text())
    assert blip2["n_components"] == 4 and "Q-Former" in blip2["components"]
    assert qwen["n_components"] == 3 and "projector (model.visual.merger)" in qwen["components"]


def test_compare_models_recommendation_follows_the_budget(demo_outputs):
    _, runs, patch = demo_outputs
    roomy = _run_05(patch, 1.0)
    table = _csv(roomy, "comparison")
    assert len(table) == 3 and set(table["model_id"]) == set(RUNS_04)
    assert list(table["rank"]) == [1, 2, 3] and table["quality_score"].is_monotonic_decreasing
    skipped = _csv(roomy, "skipped_runs")
    assert list(skipped["status"]) == ["oom"] and skipped["reason"][0].startswith("cell 6: OutOfMemoryError")
    first = json.loads((roomy / "results" / "recommendation.json").read_text())
    assert first["recommended"] == table["config"][0] and first["excluded"] == []
    for figure in ("quality_vs_memory", "metrics"):
        assert (roomy / "figures" / f"{figure}.png").stat().st_size > 10_000
    # every compared model's timeline as a track on the video they all captioned, played from the copy
    page = (roomy / "player.html").read_text()
    assert page.count("<track ") == 3 and (roomy / "video.mp4").is_file()
    for config in table["config"]:
        assert f'label="{config}"' in page
    for run_dir in runs.values():  # each 04 run wrote its timeline as subtitles and its own player
        assert (run_dir / "captions" / "timeline.vtt").read_text().count(" --> ") == SECONDS
        assert (run_dir / "captions" / "timeline.srt").is_file() and (run_dir / "player.html").is_file()

    # a budget just under the winner's peak: it drops out and the best of the rest wins
    budget = float(table["peak_gib"][0]) * (1 - 1e-6)
    tight = _run_05(patch, budget)
    second = json.loads((tight / "results" / "recommendation.json").read_text())
    fitting = table[table["peak_gib"] <= budget].sort_values("quality_score", ascending=False, kind="stable")
    assert second["recommended"] != first["recommended"]
    assert second["recommended"] == fitting["config"].iloc[0]
    assert first["recommended"] in [e["config"] for e in second["excluded"]]
    evidence = _csv(tight, "evidence").set_index("metric")
    assert evidence.loc["peak_gib", "recommended"] <= budget
    excluded = _csv(tight, "excluded")
    assert excluded["reason"].str.contains("> budget").all()
