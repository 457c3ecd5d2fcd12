"""03 on the trained video twin (the demo's run): the caption reads like a reference sentence and the pointing
game is scored (when the caption names an object on screen) and drawn with the ground-truth box."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from workbench.runner import run_notebook

pytestmark = pytest.mark.notebook


def test_attention_on_the_trained_video_twin():
    result = run_notebook("03_attention", "03_attention.twin.yaml")
    assert result.status == "ok", result.error
    results = result.dir / "results"
    summary = json.loads((results / "summary.json").read_text())
    assert summary["model"] == "twin-qwen2-vl-video" and summary["frames"] == 2
    assert summary["caption"].startswith("On a grey background")
    assert json.loads((results / "caption_check.json").read_text())["equal"]
    words = pd.read_csv(results / "pointing_words.csv")
    assert {"text", "kind", "object", "aggregation", "hit", "chance"} <= set(words.columns)
    assert set(words["kind"]) <= {"colour", "shape"}
    table = pd.read_csv(results / "pointing.csv")
    assert {"aggregation", "words", "score", "chance"} <= set(table.columns)
    if len(words):  # the caption named an object on screen: every aggregation is scored beside chance
        assert {"layer 0", "layer 1", "layer mean"} <= set(table["aggregation"])
        assert ((table["chance"] > 0) & (table["chance"] < 0.5)).all()
    assert (result.dir / "figures" / "pointing.png").stat().st_size > 3000
