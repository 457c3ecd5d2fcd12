"""Reference captions from subtitle files and dense-caption JSON, alignment scoring, and subtitles written back."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from workbench.quality import references
from workbench.quality.references import ReferenceFileError, ReferenceSegment

VTT = """WEBVTT

NOTE written by hand

intro
00:00:00.000 --> 00:00:01.500 align:start
A rabbit &amp; a <b>butterfly</b>
on the grass

00:00:01.500 --> 00:00:03.250
The rabbit stretches.
"""

SRT = """1
00:00:00,000 --> 00:00:01,500
A rabbit <i>sits</i>

2
00:00:02,000 --> 00:00:04,000
It stands up
"""


def test_webvtt_cues_become_segments_with_exact_times_and_plain_text(tmp_path):
    path = tmp_path / "clip.vtt"
    path.write_text(VTT)
    assert references.read_references(path) == [
        ReferenceSegment(0.0, 1.5, "A rabbit & a butterfly on the grass"),
        ReferenceSegment(1.5, 3.25, "The rabbit stretches."),
    ]


def test_srt_subtitles_become_segments(tmp_path):
    path = tmp_path / "clip.srt"
    path.write_text(SRT)
    assert references.read_references(path) == [ReferenceSegment(0.0, 1.5, "A rabbit sits"),
                                                 ReferenceSegment(2.0, 4.0, "It stands up")]


def test_activitynet_layout_picks_the_entry_by_file_name(tmp_path):
    path = tmp_path / "val_1.json"
    path.write_text(json.dumps({
        "v_abc": {"duration": 10.0, "timestamps": [[5.0, 9.5], [0.0, 4.0]], "sentences": ["Then B.", " First A. "]},
        "v_other": {"duration": 3.0, "timestamps": [[0, 3]], "sentences": ["Other."]},
    }))
    expected = [ReferenceSegment(0.0, 4.0, "First A."), ReferenceSegment(5.0, 9.5, "Then B.")]
    assert references.read_references(path, "videos/abc.mp4") == expected  # "v_" prefix optional
    assert references.read_references(path, "v_abc.mkv") == expected
    with pytest.raises(ReferenceFileError, match="has no entry for video 'zzz' \\(it holds v_abc, v_other\\)"):
        references.read_references(path, "zzz.mp4")
    with pytest.raises(ReferenceFileError, match="holds 2 videos; say which one"):
        references.read_references(path)


def test_youcook2_layout(tmp_path):
    path = tmp_path / "youcookii_annotations.json"
    path.write_text(json.dumps({"database": {"GLd3aX16zBg": {"duration": 241.62, "subset": "training",
                                                             "annotations": [
        {"segment": [90, 102], "id": 0, "sentence": "spread margarine on two slices of white bread"},
        {"segment": [114, 127], "id": 1, "sentence": "place a slice of cheese on the bread"}]}}}))
    segments = references.read_references(path, "GLd3aX16zBg.mp4")
    assert [(s.start_s, s.end_s) for s in segments] == [(90.0, 102.0), (114.0, 127.0)]
    assert segments[1].text == "place a slice of cheese on the bread"


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("bad.vtt", "not a subtitle file\n", "not a readable WebVTT file"),
    ("bad.srt", "1\nnonsense --> more\ntext\n", "not a readable SRT file"),
    ("empty.vtt", "WEBVTT\n", "holds no reference segments"),
    ("backwards.srt", "1\n00:00:02,000 --> 00:00:01,000\nx\n", "must have 0 <= start < end"),
    ("broken.json", "{", "not valid JSON"),
    ("other.json", '{"seconds": []}', "not a dense-caption layout"),
    ("mismatch.json", '{"v": {"timestamps": [[0, 1]], "sentences": ["a", "b"]}}', "has 1 timestamps but 2 sentences"),
    ("pair.json", '{"v": {"timestamps": [[0]], "sentences": ["a"]}}', "is not a [start, end] pair"),
    ("notes.txt", "a", "unknown reference format '.txt'"),
])
def test_bad_reference_files_name_the_file_and_the_problem(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ReferenceFileError) as caught:
        references.read_references(path)
    assert str(path) in str(caught.value) and problem in str(caught.value)


def test_references_are_found_beside_the_video_but_not_a_probe_videos_truth(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    assert references.find_references(video) is None
    (tmp_path / "clip.json").write_text('{"seconds": []}')  # a probe video's ground truth, not references
    assert references.find_references(video) is None
    (tmp_path / "clip.srt").write_text(SRT)
    assert references.find_references(video) == tmp_path / "clip.srt"
    (tmp_path / "clip.vtt").write_text(VTT)
    assert references.find_references(video) == tmp_path / "clip.vtt"
    assert references.resolve_references("", video) == tmp_path / "clip.vtt"
    assert references.resolve_references("none", video) is None
    assert references.resolve_references(str(tmp_path / "clip.srt"), video) == tmp_path / "clip.srt"
    with pytest.raises(ReferenceFileError, match="reference file not found"):
        references.resolve_references(str(tmp_path / "missing.vtt"), video)


def _table(captions: list[str], statuses: list[str] | None = None, window_s: float = 1.0) -> pd.DataFrame:
    statuses = statuses or ["ok"] * len(captions)
    return pd.DataFrame({"window": range(len(captions)), "start_s": [i * window_s for i in range(len(captions))],
                         "end_s": [(i + 1) * window_s for i in range(len(captions))], "caption": captions,
                         "status": statuses})


def test_scores_align_windows_with_overlapping_segments():
    segments = [ReferenceSegment(0.0, 2.0, "a rabbit sits on the grass"),
                ReferenceSegment(2.0, 3.0, "a butterfly lands on the rabbit"),
                ReferenceSegment(10.0, 12.0, "the rabbit runs away")]  # after the captioned span
    table = _table(["a rabbit sits on the grass", "a rabbit sits on the grass", "", "something else"],
                   ["ok", "ok", "error", "ok"])
    scored = references.score_timeline(table, segments)
    windows = scored.per_window
    assert windows["n_references"].tolist() == [1, 1, 1, 0]
    assert windows["rouge_l"].iloc[:2].tolist() == [1.0, 1.0]
    assert windows["rouge_l"].iloc[2] == 0.0  # the failed window counts as an empty caption
    assert pd.isna(windows["rouge_l"].iloc[3])  # no reference says anything about [3, 4)
    segment_rows = scored.per_segment
    assert segment_rows["covered"].tolist() == [True, False, False]
    assert segment_rows["best_rouge_l"].tolist() == [1.0, 0.0, 0.0]
    summary = scored.summary
    assert summary["ref_segments"] == 3
    assert summary["ref_windows_aligned"] == 0.75
    assert summary["ref_segments_covered"] == pytest.approx(1 / 3)
    assert summary["ref_segment_best_rouge_l"] == pytest.approx(1 / 3)
    assert 0 < summary["ref_rouge_l"] < 1
    assert set(references.summary_table(summary)["metric"]) == set(references.SUMMARY_METRICS)


def test_better_captions_score_higher():
    segments = [ReferenceSegment(0.0, 1.0, "a red car drives along the road"),
                ReferenceSegment(1.0, 2.0, "a man rides a bicycle past the car")]
    good = references.score_timeline(_table(["a red car drives on the road", "a man rides a bicycle"]), segments)
    bad = references.score_timeline(_table(["a kitchen with plates", "a kitchen with plates"]), segments)
    for key in ("ref_bleu_1", "ref_rouge_l", "ref_segment_best_rouge_l"):
        assert good.summary[key] > bad.summary[key], key


def test_timeline_written_as_vtt_and_srt_reads_back_cue_for_cue(tmp_path):
    table = _table(["a <b> & c --> d", "", "two\n\nlines\x01\x7f"], ["ok", "error", "ok"], window_s=0.5)
    table.loc[2, "end_s"] = 1.75
    paths = references.write_subtitles(table, tmp_path)
    vtt, srt_file = paths["vtt"], paths["srt"]
    assert vtt.read_text().startswith("WEBVTT")
    expected_times = [(0.0, 0.5), (0.5, 1.0), (1.0, 1.75)]
    from_vtt = references.read_references(vtt)
    assert [(s.start_s, s.end_s) for s in from_vtt] == expected_times
    assert [s.text for s in from_vtt] == ["a <b> & c --> d", "[error]", "two lines"]
    from_srt = references.read_references(srt_file)
    assert [(s.start_s, s.end_s) for s in from_srt] == expected_times
    # SRT has no escaping: the caption is written as it is, and a reader takes "<b>" for a formatting tag.
    assert "a <b> & c -> d" in srt_file.read_text()
    assert [s.text for s in from_srt] == ["a & c -> d", "[error]", "two lines"]


def test_player_page_embeds_one_track_per_timeline(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0" * 100)
    cues = references.timeline_cues(_table(["one", "two"]))
    out = tmp_path / "run"
    out.mkdir()
    page = references.write_player(out, video, [("model A", references.vtt_text(cues)), ("model <B>", "WEBVTT\n")],
                                   "Clip & captions")
    text = page.read_text()
    assert (out / "video.mp4").read_bytes() == video.read_bytes()
    assert 'src="video.mp4"' in text and text.count("<track ") == 2 and "label=\"model &lt;B&gt;\"" in text
    assert "<title>Clip &amp; captions</title>" in text
    linked = references.write_player(out, video, [("a", "WEBVTT\n")], "t", copy_limit_bytes=10)
    assert 'src="../clip.mp4"' in linked.read_text()
