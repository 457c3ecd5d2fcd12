"""Notebook 04 over a set of videos: pooling weighted by seconds, stacked tables, 05's comparison player."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from workbench.quality import references, videoset


def _result(name: str, span_s: float, values: dict, peak: int | None = 100, notes=()) -> videoset.VideoResult:
    table = pd.DataFrame({"window": [0], "start_s": [0.0], "end_s": [span_s], "caption": ["x"], "status": ["ok"]})
    summary = {"video": f"/machine/path/{name}.mp4", "video_duration_s": span_s, "span_s": span_s, "n_rows": 1,
               "n_calls": 1, "compute_s": span_s / 2, "compute_per_video_s": 0.5, "wall_s": span_s,
               "peak_bytes": peak, "memory_kind": "cpu", "notes": list(notes), "setting_mode": "windows"}
    captioned = SimpleNamespace(table=table, calls=table, span_s=span_s, summary=lambda: dict(summary))
    return videoset.VideoResult(name, Path(f"{name}.mp4"), name, captioned, table.assign(usable=True), values)


def test_pooled_values_weight_by_seconds_and_skip_nan():
    results = [_result("a", 1.0, {"coverage": 1.0, "ref_rouge_l": 0.5, "ref_segments": 3}),
               _result("b", 3.0, {"coverage": 0.0, "ref_rouge_l": float("nan")}),
               _result("c", 4.0, {"coverage": float("nan")})]
    pooled = videoset.pooled_values(results)
    assert pooled["coverage"] == pytest.approx(1.0 * 1 / 4)  # (1*1 + 0*3) / 4; c has no value
    assert pooled["ref_rouge_l"] == 0.5 and pooled["ref_segments"] == 3
    assert videoset.pooled_values(results[:1]) == results[0].values
    only_nan = videoset.pooled_values([_result("d", 1.0, {"x": float("nan")}), _result("e", 1.0, {})])
    assert math.isnan(only_nan["x"])


def test_pooled_cost_sums_time_and_keeps_the_largest_peak_without_machine_paths():
    results = [_result("a", 2.0, {}, peak=100, notes=["n1"]), _result("b", 6.0, {}, peak=300, notes=["n1", "n2"])]
    cost = videoset.pooled_cost(results)
    assert (cost["span_s"], cost["compute_s"], cost["peak_bytes"]) == (8.0, 4.0, 300)
    assert cost["compute_per_video_s"] == 0.5 and cost["notes"] == ["n1", "n2"] and cost["n_videos"] == 2
    assert cost["video"] == "2 videos: a, b"
    assert videoset.pooled_cost(results[:1])["video"] == "a"


def test_stacked_tables_put_the_video_first():
    results = [_result("a", 1.0, {}), _result("b", 2.0, {})]
    timeline = videoset.stacked(results, "timeline")
    assert list(timeline.columns)[:2] == ["video", "window"] and timeline["video"].tolist() == ["a", "b"]
    assert videoset.stacked(results, "ref_windows").empty  # no references: an empty table, not an error


def test_comparison_player_offers_each_runs_timeline(tmp_path):
    root = tmp_path / "runs"
    table = pd.DataFrame({"window": [0, 1], "start_s": [0.0, 1.0], "end_s": [1.0, 2.0], "caption": ["a", "b"],
                          "status": ["ok", "ok"]})
    for run, caption in (("r1", "first model"), ("r2", "second model"), ("r3", None)):
        run_dir = root / run
        run_dir.mkdir(parents=True)
        (run_dir / "video.mp4").write_bytes(b"\0" * 10)
        if caption:
            references.write_subtitles(table.assign(caption=caption), run_dir / "captions")
    runs = pd.DataFrame({"run": ["r1", "r2", "r3", "r4"], "video": ["v", "v", "v", "w"],
                         "config": ["model A", "model B", "model C", "model D"]})
    out = tmp_path / "out"
    page = videoset.comparison_player(runs, root, out).read_text()
    assert page.count("<track ") == 2 and 'label="model A"' in page and 'label="model B"' in page
    assert (out / "video.mp4").is_file()
    assert videoset.comparison_player(runs[runs["video"] == "w"], root, tmp_path / "none") is None
