"""Pointing game on hand-made attention: a word whose attention peaks on its object's cell is a hit, one that
peaks elsewhere is a miss, chance is the share of cells overlapping the box (no model needed)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from workbench import probe_videos as pv
from workbench.attention import pointing
from workbench.attention.aggregate import AttentionMaps
from workbench.models.layout import per_frame_grids

ROWS, COLS = 5, 6  # the video twin's merged grid for 240x320 frames (140x168 resized)


@pytest.fixture(scope="module")
def truth():
    # static seed 0: a yellow circle at (0.162, 0.464) and a purple triangle at (0.824, 0.467)
    return pv.ground_truth("static", 0, (320, 240), 10, 6)


def _maps(texts: list[str], peaks: list[tuple[int, int]]) -> AttentionMaps:
    """Two frames (one Qwen temporal patch), each word's attention all on one (row, col) token."""
    n_tokens = ROWS * COLS
    layout = per_frame_grids(np.arange(n_tokens), 2, ROWS, COLS, frames_per_group=2)
    attention = np.full((len(texts), 2, 2, n_tokens), 1e-4, dtype=np.float16)
    for w, (r, c) in enumerate(peaks):
        attention[w, :, :, r * COLS + c] = 0.5
    capture = SimpleNamespace(attention=attention, layers=[0, 1],
                              words=pd.DataFrame({"word": range(len(texts)), "text": texts}))
    frames = np.zeros((2, 240, 320, 3), dtype=np.uint8)
    return AttentionMaps(capture, layout, frames, np.array([0.25, 0.75]), "hand-made")


def test_object_words_name_one_object_each(truth):
    maps = _maps(["On", " a", " yellow", " circle", " and", " a", " purple", " triangle", " red"],
                 [(0, 0)] * 9)
    named = pointing.object_words(maps, truth)
    assert [(w.text, w.kind, w.track) for w in named] == [
        ("yellow", "colour", "a"), ("circle", "shape", "a"), ("purple", "colour", "b"), ("triangle", "shape", "b")]
    # "red" names nothing on screen: not scored
    assert pointing.object_words(maps, None) == []


def test_peak_on_the_object_is_a_hit_elsewhere_a_miss(truth):
    # yellow circle at x=0.162, y=0.464: column 0 (0-1/6), row 2 (0.4-0.6); the triangle's cell is (2, 4)
    maps = _maps([" yellow", " circle", " purple", " triangle"], [(2, 0), (0, 5), (2, 4), (2, 1)])
    rows = pointing.score_maps(maps, truth)
    mean = rows[rows["aggregation"] == "layer mean"].set_index("text")
    assert mean.loc["yellow", "hit"] and not mean.loc["circle", "hit"]
    assert mean.loc["purple", "hit"] and not mean.loc["triangle", "hit"]
    summary = pointing.summarize(rows).set_index("aggregation")
    assert summary.loc["layer mean", "score"] == 0.5 and summary.loc["layer mean", "words"] == 4
    assert {"layer 0", "layer 1", "layer mean", "layer mean, head max"} == set(summary.index)
    # a box 0.165 wide and 0.22 high overlaps 2 columns x 2 rows of a 6 x 5 grid: chance = 4 / 30
    assert 0 < summary.loc["layer mean", "chance"] <= 6 / 30


def test_no_ground_truth_scores_nothing():
    maps = _maps([" red"], [(0, 0)])
    assert pointing.score_maps(maps, None).empty
    assert pointing.summarize(pointing.score_maps(maps, None)).empty
