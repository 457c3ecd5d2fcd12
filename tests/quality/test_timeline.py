"""Per-second captioning: parsing timestamped captions, and timelines from tiny twins on a probe video."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from workbench.models.base import CaptionRecord
from workbench.quality import report
from workbench.quality.timeline import (
    Segment,
    TimelineSettings,
    caption_timeline,
    parse_timestamped,
    segments_per_second,
)

PROBE_SECONDS = 4


@pytest.fixture(scope="module")
def probe_video(tmp_path_factory) -> Path:
    """A 4-second events probe video (its ground-truth JSON beside it)."""
    from workbench.probe_videos import ensure_probe_videos

    out = tmp_path_factory.mktemp("quality_probe")
    return ensure_probe_videos(["events"], seed=0, duration_s=PROBE_SECONDS, out_dir=out)["events"]


# ---- parsing ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("0-1s: a red circle\n1-2s: it moves right",
     [Segment(0.0, 1.0, "a red circle"), Segment(1.0, 2.0, "it moves right")]),
    ("[0.5s] a dot [1.5s] two dots", [Segment(0.5, None, "a dot"), Segment(1.5, None, "two dots")]),
    ("[00:02-00:03] a square", [Segment(2.0, 3.0, "a square")]),
    ("0 s - 2 s: a circle; 2 to 3 seconds: a square", [Segment(0.0, 2.0, "a circle"), Segment(2.0, 3.0, "a square")]),
    ("1: first\n2: second", [Segment(1.0, None, "first"), Segment(2.0, None, "second")]),
    ("A red circle next to 2-3 squares", []),
])
def test_parse_timestamped(text, expected):
    assert parse_timestamped(text) == expected


def test_segments_map_to_the_seconds_they_cover():
    segments = parse_timestamped("0-2s: a red circle 2-3s: a blue square")
    assert segments_per_second(segments, 4) == ["a red circle", "a red circle", "a blue square", ""]
    # BLIP-2 style point stamps: each lasts until the next
    assert segments_per_second(parse_timestamped("[0.0s] a [1.0s] b [2.0s] c"), 3) == ["a", "b", "c"]


def test_whole_clip_mode_turns_timestamp_lines_into_rows(probe_video):
    """A stand-in model that answers with timestamp lines (no weights needed)."""
    text = "0-1s: a green triangle on the right\n1-2s: an orange circle appears\n3-4s: a square disappears"
    calls = []

    def describe(frames, timestamps_s, prompt=None, generation=None, **options):
        calls.append((frames.shape, list(timestamps_s), prompt))
        return CaptionRecord(text, 30, 0.8, "ok", None, int(frames.shape[0]), 100)

    stub = SimpleNamespace(describe=describe, report=SimpleNamespace(device="cpu"),
                           spec=SimpleNamespace(model_id="stub"))
    timeline = caption_timeline(stub, probe_video, TimelineSettings(mode="whole_clip", clip_frames=4,
                                                                    track_memory=False), progress=False)
    assert len(calls) == 1 and calls[0][0][0] == 4 and "0-1s to 3-4s" in calls[0][2]
    table = timeline.table
    assert list(table["start_s"]) == [0.0, 1.0, 2.0, 3.0]
    assert list(table["status"]) == ["ok", "ok", "missing", "ok"]
    assert table.loc[1, "caption"] == "an orange circle appears"
    assert table["latency_s"].sum() == pytest.approx(0.8)  # one call's latency, split over its rows
    assert timeline.compute_per_video_s == pytest.approx(0.8 / PROBE_SECONDS)
    assert len(timeline.thumbnails) == 4


# ---- tiny twins ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_smolvlm(isolated_cache):
    from workbench.models import LoadSettings, load

    loaded = load("smolvlm2-256m", LoadSettings(source="tiny"))
    yield loaded
    loaded.unload()


def test_windows_timeline_has_one_row_per_second_with_latencies(tiny_smolvlm, probe_video):
    settings = TimelineSettings(frames_per_window=2, max_new_tokens=6)
    timeline = caption_timeline(tiny_smolvlm, probe_video, settings, progress=False)
    table = timeline.table
    assert len(table) == PROBE_SECONDS == len(timeline.calls) == len(timeline.thumbnails)
    assert list(table["start_s"]) == [0.0, 1.0, 2.0, 3.0]
    assert list(table["end_s"]) == [1.0, 2.0, 3.0, 4.0]
    assert (table["latency_s"] > 0).all() and (table["status"] == "ok").all()
    assert (table["tokens"] > 0).all() and (table["tokens"] <= 6).all()
    assert (table["n_frames"] == 2).all()
    for row in table.itertuples():  # both frames lie inside their own window
        times = [float(t) for t in row.frame_times_s.split(";")]
        assert len(times) == 2 and all(row.start_s <= t < row.end_s for t in times)
    assert timeline.compute_per_video_s == pytest.approx(table["latency_s"].sum() / PROBE_SECONDS)
    # the CPU peak holds the weights and more
    assert timeline.memory_kind == "cpu_live_tensor_bytes"
    assert timeline.peak_bytes > tiny_smolvlm.report.memory_bytes
    assert any("peak memory" in note for note in timeline.notes)


def test_max_seconds_and_window_length(tiny_smolvlm, probe_video):
    settings = TimelineSettings(window_s=1.5, max_seconds=3.0, max_new_tokens=4, track_memory=False)
    timeline = caption_timeline(tiny_smolvlm, probe_video, settings, progress=False)
    assert list(zip(timeline.table["start_s"], timeline.table["end_s"])) == [(0.0, 1.5), (1.5, 3.0)]
    assert timeline.peak_bytes is None and timeline.span_s == 3.0


def test_metrics_of_a_tiny_twin_timeline(tiny_smolvlm, probe_video):
    from workbench.inputs import ground_truth_for

    timeline = caption_timeline(tiny_smolvlm, probe_video, TimelineSettings(max_new_tokens=6, track_memory=False),
                                progress=False)
    truth = ground_truth_for(probe_video)
    windows = report.per_window(timeline.table, truth)
    values = report.summary(timeline.table, timeline.calls, windows, timeline.span_s, truth)
    assert len(windows) == PROBE_SECONDS and (windows["n_facts"] > 0).all()
    assert windows["reference"].str.startswith("On a grey background").all()
    assert 0.0 <= values["success_rate"] <= 1.0 and 0.0 <= values["coverage"] <= 1.0
    assert values["coverage"] == pytest.approx(windows["usable"].mean())
    assert set(report.metric_table(values)["metric"]) == set(report.METRICS)


def test_batched_windows_give_the_same_timeline(probe_video):
    """batch_windows=B captions B windows per generate call: same captions, fewer calls (trained twin)."""
    from workbench.models import load

    loaded = load("twin-qwen2-vl-video", source="trained", dtype="float32", device="cpu")
    one = caption_timeline(loaded, probe_video, TimelineSettings(track_memory=False), progress=False)
    three = caption_timeline(loaded, probe_video, TimelineSettings(batch_windows=3), progress=False)
    assert list(three.table["caption"]) == list(one.table["caption"])
    assert list(three.table["frame_indices"]) == list(one.table["frame_indices"])
    assert list(three.table["call"]) == [0, 0, 0, 1] and list(one.table["call"]) == [0, 1, 2, 3]
    assert any("batch of 3 windows" in n for n in three.notes)
    assert three.peak_bytes and three.peak_bytes > 0  # the first (batched) call is tracked on CPU
    with pytest.raises(ValueError, match="batch_windows must be >= 1"):
        TimelineSettings(batch_windows=0)


def test_a_family_that_cannot_batch_runs_one_window_per_call_and_says_so(probe_video):
    from workbench.models import load

    loaded = load("twin-blip2-frame", source="trained", dtype="float32", device="cpu")
    timeline = caption_timeline(loaded, probe_video, TimelineSettings(batch_windows=4, track_memory=False,
                                                                      max_seconds=2), progress=False)
    assert list(timeline.table["call"]) == [0, 1]
    assert any("batch_windows=4 asked for, one window per call used" in n for n in timeline.notes)
