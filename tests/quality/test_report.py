"""Timeline metrics from hand-made timelines: a faithful timeline beats a static generic one."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from workbench.probe_videos import ground_truth
from workbench.quality import report

GENERIC = "A modern office environment featuring contemporary furniture."


def _timeline(captions: list[str], statuses: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    statuses = statuses or ["ok"] * len(captions)
    table = pd.DataFrame({"window": range(len(captions)), "start_s": [float(i) for i in range(len(captions))],
                          "end_s": [float(i + 1) for i in range(len(captions))], "caption": captions,
                          "tokens": 10, "latency_s": 0.5, "status": statuses, "message": ""})
    calls = pd.DataFrame({"call": range(len(captions)), "status": statuses, "text": captions})
    return table, calls


@pytest.fixture(scope="module")
def truth() -> dict:
    return ground_truth("events", 0, (320, 240), 10, 8)


def test_faithful_timeline_beats_static_generic_one(truth):
    faithful = [s["description"] for s in truth["seconds"]]
    results = {}
    for name, captions in {"faithful": faithful, "generic": [GENERIC] * 8}.items():
        table, calls = _timeline(captions)
        windows = report.per_window(table, truth)
        results[name] = report.summary(table, calls, windows, 8.0, truth)
    good, bad = results["faithful"], results["generic"]
    assert good["fact_recall"] == 1.0 and bad["fact_recall"] == 0.0
    assert good["hallucination_rate"] == 0.0 and math.isnan(bad["hallucination_rate"])
    assert bad["staticness"] == 1.0 and good["staticness"] < 0.8
    assert bad["genericness"] > 0.8 > 0.2 > good["genericness"]
    assert good["cider"] > bad["cider"] and good["bleu_4"] > 0.9 > 0.01 > bad["bleu_4"]
    assert good["success_rate"] == bad["success_rate"] == 1.0  # generic is still a success, just a poor one


def test_failures_lower_success_and_coverage(truth):
    captions = [s["description"] for s in truth["seconds"]]
    captions[2], captions[5] = "circle circle circle circle circle", ""
    statuses = ["ok"] * 8
    statuses[5] = "error"
    table, calls = _timeline(captions, statuses)
    windows = report.per_window(table, truth)
    values = report.summary(table, calls, windows, 8.0, truth)
    assert values["success_rate"] == pytest.approx(6 / 8)
    assert values["coverage"] == pytest.approx(6 / 8)
    assert values["degenerate_rate"] == pytest.approx(1 / 7)
    assert windows.loc[2, "degeneration"] == "token repeated 5 times in a row"
    assert not windows.loc[2, "usable"] and windows.loc[2, "n_mentioned"] == 0  # a loop earns no facts


def test_a_hallucinating_timeline_is_caught(truth):
    captions = [s["description"].replace("green", "black") for s in truth["seconds"]]
    table, calls = _timeline(captions)
    values = report.summary(table, calls, report.per_window(table, truth), 8.0, truth)
    assert values["hallucination_rate"] > 0.1 and values["hallucinations_per_caption"] == 1.0
    assert values["recall_colour"] < 1.0


def test_without_ground_truth_only_text_metrics(truth):
    table, calls = _timeline([GENERIC] * 3)
    windows = report.per_window(table, None)
    values = report.summary(table, calls, windows, 3.0, None)
    assert "reference" not in windows
    assert values["staticness"] == 1.0 and math.isnan(values["fact_recall"]) and math.isnan(values["cider"])
