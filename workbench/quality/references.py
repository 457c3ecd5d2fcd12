"""A team's own reference captions, aligned with a captioned timeline and scored; the timeline as subtitles.

References come in the formats people already have:
- WebVTT (.vtt, read with webvtt-py) and SRT (.srt, read with srt): one segment per cue;
- dense-caption JSON as ActivityNet Captions ships it, `{video_id: {"duration", "timestamps": [[s, e], ...],
  "sentences": [...]}}`, and as YouCook2 ships it, `{"database": {video_id: {"duration",
  "annotations": [{"segment": [s, e], "sentence": "..."}]}}}`; the entry is chosen by the video's file
  name (ActivityNet's "v_" prefix optional).

A notebook names the file, or finds it beside the video (same stem: clip.mp4 -> clip.vtt / clip.srt /
clip.json). `score_timeline` aligns every timeline window with the reference segments that overlap it and
scores the captions against them (metrics.align_references / metrics.reference_scores).

The timeline is written back as WebVTT and SRT (one cue per window, its caption or, for a window without
one, its status in brackets), and `player_page` makes an HTML page that plays the video with one or more
timelines as selectable caption tracks.
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from workbench.quality import metrics

if TYPE_CHECKING:
    import pandas as pd

REFERENCE_SUFFIXES = (".vtt", ".srt", ".json")


class ReferenceFileError(ValueError):
    """A reference file that cannot be read as asked; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


@dataclass(frozen=True)
class ReferenceSegment:
    start_s: float
    end_s: float
    text: str


# ----------------------------------------------------------------------------------------------
# Reading


def read_references(path: str | Path, video: str | Path | None = None) -> list[ReferenceSegment]:
    """The reference segments of a .vtt, .srt or dense-caption .json file, in time order.

    `video` (a path or an id) picks the entry of a JSON file that holds several videos.
    """
    path = Path(path)
    if not path.is_file():
        raise ReferenceFileError(path, "reference file not found" if not path.exists() else "is not a file")
    suffix = path.suffix.lower()
    if suffix == ".vtt":
        segments = _read_vtt(path)
    elif suffix == ".srt":
        segments = _read_srt(path)
    elif suffix == ".json":
        segments = _read_dense_json(path, video)
    else:
        raise ReferenceFileError(path, f"unknown reference format {suffix!r}; use {', '.join(REFERENCE_SUFFIXES)}")
    if not segments:
        raise ReferenceFileError(path, "holds no reference segments")
    return sorted(segments, key=lambda s: (s.start_s, s.end_s))


def _segment(path: Path, start: Any, end: Any, text: Any, where: str) -> ReferenceSegment:
    try:
        start_s, end_s = float(start), float(end)
    except (TypeError, ValueError):
        raise ReferenceFileError(path, f"{where}: times {start!r}, {end!r} are not numbers") from None
    if not (math.isfinite(start_s) and math.isfinite(end_s)) or start_s < 0 or end_s <= start_s:
        raise ReferenceFileError(path, f"{where}: segment [{start_s}, {end_s}] must have 0 <= start < end")
    if not isinstance(text, str):
        raise ReferenceFileError(path, f"{where}: sentence is {type(text).__name__}, not text")
    return ReferenceSegment(start_s, end_s, " ".join(text.split()))


def _read_vtt(path: Path) -> list[ReferenceSegment]:
    import webvtt
    from webvtt.errors import MalformedCaptionError, MalformedFileError

    try:
        cues = webvtt.read(str(path))
    except (MalformedFileError, MalformedCaptionError, UnicodeDecodeError) as err:
        raise ReferenceFileError(path, f"not a readable WebVTT file ({err})") from err
    segments = []
    for number, cue in enumerate(cues, start=1):
        # webvtt-py strips tags but leaves character references (&amp;) as written.
        segments.append(_segment(path, _vtt_seconds(cue.start_time), _vtt_seconds(cue.end_time),
                                 html.unescape(cue.text), f"cue {number} ({cue.start} --> {cue.end})"))
    return segments


def _vtt_seconds(stamp: Any) -> float:
    return stamp.hours * 3600 + stamp.minutes * 60 + stamp.seconds + stamp.milliseconds / 1000


def _read_srt(path: Path) -> list[ReferenceSegment]:
    import srt

    try:
        subtitles = list(srt.parse(path.read_text(encoding="utf-8-sig")))
    except (srt.SRTParseError, UnicodeDecodeError) as err:
        raise ReferenceFileError(path, f"not a readable SRT file ({err})") from err
    return [_segment(path, s.start.total_seconds(), s.end.total_seconds(), re.sub(r"<[^>]+>", "", s.content),
                     f"subtitle {s.index}") for s in subtitles]


def _read_dense_json(path: Path, video: str | Path | None) -> list[ReferenceSegment]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReferenceFileError(path, f"not valid JSON ({err})") from err
    if isinstance(data, dict) and isinstance(data.get("database"), dict):  # YouCook2
        key, entry = _pick_entry(path, data["database"], video)
        annotations = entry.get("annotations") if isinstance(entry, dict) else None
        if not isinstance(annotations, list):
            raise ReferenceFileError(path, f"database entry {key!r} has no 'annotations' list (YouCook2 layout)")
        return [_segment(path, *_pair(path, a.get("segment") if isinstance(a, dict) else None, key, i),
                         a.get("sentence"), f"{key} annotation {i}") for i, a in enumerate(annotations)]
    if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()) \
            and any("sentences" in v for v in data.values()):  # ActivityNet Captions
        key, entry = _pick_entry(path, data, video)
        timestamps, sentences = entry.get("timestamps"), entry.get("sentences")
        if not isinstance(timestamps, list) or not isinstance(sentences, list):
            raise ReferenceFileError(path, f"entry {key!r} needs 'timestamps' and 'sentences' lists "
                                           "(ActivityNet Captions layout)")
        if len(timestamps) != len(sentences):
            raise ReferenceFileError(path, f"entry {key!r} has {len(timestamps)} timestamps but "
                                           f"{len(sentences)} sentences")
        return [_segment(path, *_pair(path, pair, key, i), sentence, f"{key} sentence {i}")
                for i, (pair, sentence) in enumerate(zip(timestamps, sentences))]
    raise ReferenceFileError(path, "not a dense-caption layout: expected ActivityNet Captions "
                                   "({video: {timestamps, sentences}}) or YouCook2 ({database: {video: {annotations}}})")


def _pair(path: Path, pair: Any, key: str, i: int) -> tuple[Any, Any]:
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
        raise ReferenceFileError(path, f"{key} segment {i}: {pair!r} is not a [start, end] pair")
    return pair[0], pair[1]


def _pick_entry(path: Path, entries: dict[str, Any], video: str | Path | None) -> tuple[str, Any]:
    """The entry for `video` (matched on its file stem, ActivityNet's "v_" prefix optional)."""
    if video is None:
        if len(entries) == 1:
            return next(iter(entries.items()))
        raise ReferenceFileError(path, f"holds {len(entries)} videos; say which one")
    stem = Path(str(video)).stem
    for candidate in (str(video), stem, f"v_{stem}", stem[2:] if stem.startswith("v_") else None):
        if candidate is not None and candidate in entries:
            return candidate, entries[candidate]
    known = ", ".join(sorted(entries)[:5]) + (" ..." if len(entries) > 5 else "")
    raise ReferenceFileError(path, f"has no entry for video {stem!r} (it holds {known})")


def find_references(video_path: str | Path) -> Path | None:
    """A reference file beside the video with the same stem (.vtt, then .srt, then a dense-caption .json)."""
    video_path = Path(video_path)
    for suffix in REFERENCE_SUFFIXES:
        candidate = video_path.with_suffix(suffix)
        if not candidate.is_file():
            continue
        if suffix == ".json" and not _is_dense_caption_json(candidate):
            continue  # e.g. a probe video's ground-truth timeline
        return candidate
    return None


def _is_dense_caption_json(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict):
        return False
    return isinstance(data.get("database"), dict) or any(isinstance(v, dict) and "sentences" in v
                                                         for v in data.values())


def resolve_references(parameter: str, video_path: str | Path) -> Path | None:
    """The reference file a notebook parameter names: a path, "" to look beside the video, "none" for none."""
    if parameter.strip().lower() == "none":
        return None
    if not parameter.strip():
        return find_references(video_path)
    path = Path(parameter).expanduser()
    if not path.is_file():
        raise ReferenceFileError(path, "reference file not found (the `references` parameter names it)")
    return path


def segments_table(segments: Sequence[ReferenceSegment]) -> "pd.DataFrame":
    import pandas as pd

    return pd.DataFrame([{"segment": i, "start_s": s.start_s, "end_s": s.end_s, "reference": s.text}
                         for i, s in enumerate(segments)], columns=["segment", "start_s", "end_s", "reference"])


# ----------------------------------------------------------------------------------------------
# Scoring a timeline against them


@dataclass
class ReferenceScores:
    per_window: "pd.DataFrame"  # window, start_s, end_s, caption, usable, n_references, references, scores
    per_segment: "pd.DataFrame"  # segment, start_s, end_s, reference, n_windows, covered, best_rouge_l
    summary: dict[str, Any]  # ref_* values (see SUMMARY_METRICS)


SUMMARY_METRICS: dict[str, tuple[str, str]] = {
    "ref_windows_aligned": ("", "timeline windows that overlap at least one reference segment"),
    "ref_segments_covered": ("higher", "reference segments overlapped by at least one window with a usable caption"),
    "ref_bleu_4": ("higher", "BLEU-4 of each aligned window's caption against its overlapping references"),
    "ref_rouge_l": ("higher", "ROUGE-L of each aligned window's caption against its overlapping references"),
    "ref_cider": ("higher", "CIDEr-D over the aligned windows (IDF over this video's references)"),
    "ref_segment_best_rouge_l": ("higher", "per reference segment, the best ROUGE-L of a window overlapping it"),
}


def score_timeline(table: "pd.DataFrame", segments: Sequence[ReferenceSegment]) -> ReferenceScores:
    """Align a timeline table (timeline.TABLE_COLUMNS) with reference segments and score its captions.

    A window is scored against every segment that overlaps it; a window no segment overlaps is left out
    of the scores (the references say nothing about it). A window without a usable caption is scored as
    an empty caption, so failures count against the model.
    """
    import pandas as pd

    spans = list(zip(table["start_s"].astype(float), table["end_s"].astype(float)))
    captions = [c if isinstance(c, str) else "" for c in table["caption"]]
    usable = [metrics.is_usable(status, caption) for status, caption in zip(table["status"], captions)]
    segment_spans = [(s.start_s, s.end_s) for s in segments]
    aligned = metrics.align_references(spans, segment_spans)
    scored = [i for i, refs in enumerate(aligned) if refs]
    scores = metrics.reference_scores([captions[i] if usable[i] else "" for i in scored],
                                      [[segments[j].text for j in aligned[i]] for i in scored])
    per_caption = dict(zip(scored, scores["per_caption"]))
    nan = float("nan")
    windows = pd.DataFrame([{
        "window": int(window), "start_s": start, "end_s": end, "caption": captions[i], "usable": usable[i],
        "n_references": len(aligned[i]), "references": " | ".join(segments[j].text for j in aligned[i]),
        **{key: per_caption.get(i, {}).get(key, nan) for key in ("bleu_4", "rouge_l", "cider")},
    } for i, (window, (start, end)) in enumerate(zip(table["window"], spans))])
    covered = metrics.segments_covered(spans, usable, segment_spans)
    rows = []
    for j, segment in enumerate(segments):
        overlapping = [i for i in scored if j in aligned[i]]
        best = max((per_caption[i]["rouge_l"] for i in overlapping), default=0.0)
        rows.append({"segment": j, "start_s": segment.start_s, "end_s": segment.end_s, "reference": segment.text,
                     "n_windows": len(overlapping), "covered": covered[j], "best_rouge_l": best})
    per_segment = pd.DataFrame(rows, columns=["segment", "start_s", "end_s", "reference", "n_windows", "covered",
                                              "best_rouge_l"])
    summary = {
        "ref_segments": len(segments),
        "ref_windows_aligned": len(scored) / len(spans) if spans else nan,
        "ref_segments_covered": sum(covered) / len(covered) if covered else nan,
        "ref_bleu_1": scores["bleu_1"], "ref_bleu_4": scores["bleu_4"], "ref_rouge_l": scores["rouge_l"],
        "ref_cider": scores["cider"],
        "ref_segment_best_rouge_l": float(per_segment["best_rouge_l"].mean()) if len(per_segment) else nan,
    }
    return ReferenceScores(per_window=windows, per_segment=per_segment, summary=summary)


def summary_table(summary: dict[str, Any]) -> "pd.DataFrame":
    """The ref_* summary as a table: metric, value, which way is better, what it measures."""
    import pandas as pd

    return pd.DataFrame([{"metric": name, "value": summary.get(name, float("nan")), "better": better,
                          "meaning": meaning} for name, (better, meaning) in SUMMARY_METRICS.items()])


# ----------------------------------------------------------------------------------------------
# Writing the timeline as subtitles, and a page that plays them


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def timeline_cues(table: "pd.DataFrame") -> list[ReferenceSegment]:
    """One cue per timeline window: its caption on one line, or "[status]" where it has none."""
    cues = []
    for row in table.itertuples():
        # one line, without control characters (a tiny twin's noise holds some; players show them as boxes)
        caption = " ".join(_CONTROL.sub(" ", row.caption).split()) if isinstance(row.caption, str) else ""
        cues.append(ReferenceSegment(float(row.start_s), float(row.end_s), caption or f"[{row.status}]"))
    return cues


def _vtt_time(seconds: float) -> str:
    """WebVTT timestamp, rounded to the millisecond.

    >>> _vtt_time(3725.25)
    '01:02:05.250'
    """
    millis = int(round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def vtt_text(cues: Sequence[ReferenceSegment]) -> str:
    """The cues as a WebVTT document (text escaped, so "<", "&" and "-->" in a caption stay text)."""
    import webvtt

    document = webvtt.WebVTT(captions=[
        webvtt.Caption(_vtt_time(c.start_s), _vtt_time(c.end_s), html.escape(c.text, quote=False),
                       identifier=str(i + 1))
        for i, c in enumerate(cues)])
    return document.content


def srt_text(cues: Sequence[ReferenceSegment]) -> str:
    """The cues as an SRT document ("-->" inside a caption is written "->" so it cannot read as a timing)."""
    from datetime import timedelta

    import srt

    return srt.compose([srt.Subtitle(index=i + 1, start=timedelta(seconds=round(c.start_s, 3)),
                                     end=timedelta(seconds=round(c.end_s, 3)), content=c.text.replace("-->", "->"))
                        for i, c in enumerate(cues)], reindex=False)


def write_subtitles(table: "pd.DataFrame", directory: str | Path, name: str = "timeline") -> dict[str, Path]:
    """Write a timeline as <directory>/<name>.vtt and .srt, atomically; returns both paths."""
    from workbench.atomic import write_text

    cues = timeline_cues(table)
    directory = Path(directory)
    return {"vtt": write_text(directory / f"{name}.vtt", vtt_text(cues)),
            "srt": write_text(directory / f"{name}.srt", srt_text(cues))}


def player_page(video_src: str, tracks: Sequence[tuple[str, str]], title: str) -> str:
    """An HTML page playing `video_src` with each (label, WebVTT text) as a selectable caption track.

    The tracks are embedded as data: URLs, so the page works opened straight from disk (browsers refuse
    to load a .vtt beside a file:// page). The first track is shown by default; a menu switches tracks.
    """
    import base64

    elements, options = [], []
    for i, (label, vtt) in enumerate(tracks):
        data = base64.b64encode(vtt.encode("utf-8")).decode("ascii")
        default = " default" if i == 0 else ""
        elements.append(f'<track kind="captions" srclang="en" label="{html.escape(label)}" '
                        f'src="data:text/vtt;charset=utf-8;base64,{data}"{default}>')
        options.append(f'<option value="{i}">{html.escape(label)}</option>')
    return _PAGE.format(title=html.escape(title), src=html.escape(video_src), tracks="\n    ".join(elements),
                        options="".join(options))


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
  body {{ font-family: system-ui, sans-serif; margin: 1.5rem; max-width: 60rem; }}
  video {{ width: 100%; max-height: 70vh; background: #000; }}
  #cue {{ min-height: 3em; font-size: 1.1rem; }}
</style>
</head>
<body>
<h1>{title}</h1>
<video id="player" controls preload="auto" src="{src}">
    {tracks}
</video>
<p><label>Captions: <select id="track">{options}<option value="-1">off</option></select></label></p>
<p id="cue" aria-live="polite"></p>
<script>
  const video = document.getElementById("player");
  const menu = document.getElementById("track");
  const shown = document.getElementById("cue");
  function choose(index) {{
    for (let i = 0; i < video.textTracks.length; i++) {{
      video.textTracks[i].mode = (i === index) ? "showing" : "disabled";
    }}
  }}
  function show() {{
    const track = video.textTracks[Number(menu.value)];
    const cues = track && track.activeCues ? Array.from(track.activeCues) : [];
    shown.textContent = cues.map((cue) => cue.getCueAsHTML().textContent).join(" ");
  }}
  menu.addEventListener("change", () => {{ choose(Number(menu.value)); show(); }});
  for (const track of video.textTracks) track.addEventListener("cuechange", show);
  choose(0);
</script>
</body>
</html>
"""


def write_player(directory: str | Path, video_path: str | Path, tracks: Sequence[tuple[str, str]], title: str,
                 name: str = "player", copy_limit_bytes: int = 64 * 2**20) -> Path:
    """Write <directory>/<name>.html; the video is copied beside it when small, else linked by relative path.

    A copied video (video.<ext> for the page "player", else <name>.<ext>) keeps the page working when the
    run folder is moved or sent; a large one is linked (the page then needs the video where it was).
    """
    import os
    import shutil

    from workbench.atomic import atomic_path, write_text

    directory, video_path = Path(directory), Path(video_path).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    suffix = video_path.suffix.lower()
    if video_path.stat().st_size <= copy_limit_bytes:
        local = directory / (f"video{suffix}" if name == "player" else f"{name}{suffix}")
        with atomic_path(local, suffix=suffix) as tmp:
            shutil.copyfile(video_path, tmp)
        src = local.name
    else:
        src = Path(os.path.relpath(video_path, directory.resolve())).as_posix()
    return write_text(directory / f"{name}.html", player_page(src, tracks, title))
