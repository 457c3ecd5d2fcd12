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


# ---- reading ahead -------------------------------------------------------------------------------------------


def _pixel_stub(log: list | None = None):
    """A windows-mode model whose caption is its frames' mean and times (any other frame shows), logging its
    calls' start and end."""
    import time

    import numpy as np

    def describe(frames, timestamps_s, prompt=None, generation=None, **options):
        if log is not None:
            log.append(("call", time.perf_counter()))
        text = f"{np.asarray(frames, dtype=np.float64).mean():.6f} at {list(np.round(timestamps_s, 6))}"
        if log is not None:
            log.append(("done", time.perf_counter()))
        return CaptionRecord(text, 3, 0.01, "ok", None, int(frames.shape[0]), 10)

    return SimpleNamespace(describe=describe, report=SimpleNamespace(device="cpu"),
                           spec=SimpleNamespace(model_id="stub"))


def _reader_threads_end() -> bool:
    import threading

    for thread in threading.enumerate():
        if thread.name.startswith("workbench-read"):
            thread.join(timeout=10)
    return not any(t.name.startswith("workbench-read") and t.is_alive() for t in threading.enumerate())


@pytest.mark.parametrize("chunk_windows", [1, 3])
@pytest.mark.parametrize("spare", [1, None])
def test_a_timeline_read_in_chunks_equals_one_read_whole(probe_video, chunk_windows, spare, monkeypatch):
    import numpy as np

    from workbench.quality import timeline as timeline_module

    monkeypatch.setattr(timeline_module, "_read_ahead_threads", lambda device: spare)
    whole = caption_timeline(_pixel_stub(), probe_video, TimelineSettings(track_memory=False, chunk_windows=64),
                             progress=False)
    chunked = caption_timeline(_pixel_stub(), probe_video,
                               TimelineSettings(track_memory=False, chunk_windows=chunk_windows), progress=False)
    for column in ("caption", "frame_indices", "frame_times_s", "start_s", "end_s"):
        assert list(chunked.table[column]) == list(whole.table[column])
    assert len(chunked.thumbnails) == len(whole.thumbnails) == PROBE_SECONDS
    for a, b in zip(chunked.thumbnails, whole.thumbnails):
        np.testing.assert_array_equal(a, b)


def _log_reads(monkeypatch, log: list) -> None:
    import threading
    import time

    from workbench import video

    real = video.sample_windows

    def sample_windows(path, *args, start_s=0.0, **kwargs):
        log.append((f"read {start_s:g}", time.perf_counter(), video._DECODER_THREADS.get(),
                    threading.current_thread().name))
        return real(path, *args, start_s=start_s, **kwargs)

    monkeypatch.setattr(video, "sample_windows", sample_windows)


def test_the_next_chunk_is_read_ahead_after_the_first_call_with_one_decoder_thread(probe_video, monkeypatch):
    """Chunks of 2 windows: the first read while the caller waits (FFmpeg's own thread count), the second in the
    background from the end of the first call on, with one decoder thread, and only then."""
    from workbench.quality import timeline as timeline_module

    monkeypatch.setattr(timeline_module, "_read_ahead_threads", lambda device: 1)
    log: list = []
    _log_reads(monkeypatch, log)
    timeline = caption_timeline(_pixel_stub(log), probe_video, TimelineSettings(track_memory=False,
                                                                                chunk_windows=2), progress=False)
    assert len(timeline.table) == PROBE_SECONDS
    reads = {entry[0]: entry for entry in log if entry[0].startswith("read")}
    assert set(reads) == {"read 0", "read 2"}
    assert reads["read 0"][2] == 0 and reads["read 2"][2] == 1
    assert all(entry[3].startswith("workbench-read") for entry in reads.values())
    first_call_done = next(t for name, t, *_ in log if name == "done")
    assert reads["read 2"][1] > first_call_done
    assert _reader_threads_end()


def test_without_a_spare_core_each_chunk_is_read_when_it_is_needed(probe_video, monkeypatch):
    """Every core busy with the model: no read ahead, chunks of chunk_windows, FFmpeg's own thread count."""
    from workbench.quality import timeline as timeline_module

    monkeypatch.setattr(timeline_module, "_read_ahead_threads", lambda device: None)
    log: list = []
    _log_reads(monkeypatch, log)
    caption_timeline(_pixel_stub(log), probe_video, TimelineSettings(track_memory=False, chunk_windows=3),
                     progress=False)
    assert [(entry[0], entry[2]) for entry in log if entry[0].startswith("read")] == [("read 0", 0), ("read 3", 0)]
    # the second chunk read only when the first is captioned
    assert [entry[0] for entry in log] == ["read 0", *["call", "done"] * 3, "read 3", "call", "done"]
    assert _reader_threads_end()


def test_reading_ahead_takes_the_cores_torch_leaves_free(monkeypatch):
    """A CPU model: the usable cores beyond torch's threads, none left meaning no reading ahead; a GPU model:
    FFmpeg's own number (0)."""
    import os

    import torch

    from workbench.quality.timeline import _read_ahead_threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    for torch_threads, ahead in [(1, 7), (6, 2), (8, None), (12, None)]:
        monkeypatch.setattr(torch, "get_num_threads", lambda n=torch_threads: n)
        assert _read_ahead_threads("cpu") == ahead
        assert _read_ahead_threads("cuda") == 0


@pytest.mark.parametrize("spare", [1, None])
def test_an_error_reading_a_later_chunk_is_raised_after_the_earlier_windows(probe_video, monkeypatch, spare):
    from workbench import video
    from workbench.quality import timeline as timeline_module

    monkeypatch.setattr(timeline_module, "_read_ahead_threads", lambda device: spare)

    real = video.sample_windows

    def sample_windows(path, *args, start_s=0.0, **kwargs):
        if start_s >= 2:
            raise video.VideoError(path, "damaged from 2 s on")
        return real(path, *args, start_s=start_s, **kwargs)

    monkeypatch.setattr(video, "sample_windows", sample_windows)
    log: list = []
    with pytest.raises(video.VideoError, match="damaged from 2 s on"):
        caption_timeline(_pixel_stub(log), probe_video, TimelineSettings(track_memory=False, chunk_windows=2),
                         progress=False)
    assert [name for name, _ in log].count("call") == 2  # the first chunk's windows, then the error
    assert _reader_threads_end()


def test_cancelling_between_windows_stops_captioning_and_reading(probe_video, monkeypatch):
    from workbench.quality import timeline as timeline_module

    monkeypatch.setattr(timeline_module, "_read_ahead_threads", lambda device: 1)

    class Cancelled(Exception):
        pass

    def on_window(done, total):
        if done == 1:
            raise Cancelled

    log: list = []
    with pytest.raises(Cancelled):
        caption_timeline(_pixel_stub(log), probe_video, TimelineSettings(track_memory=False, chunk_windows=1),
                         progress=False, on_window=on_window)
    assert [name for name, _ in log].count("call") == 1
    assert _reader_threads_end()


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
