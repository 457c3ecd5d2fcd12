"""Notebook 04 over one video or a whole set (its `dataset` parameter), with the model loaded once.

Per video: the timeline (timeline.caption_timeline), its metrics (report.per_window / report.summary, with
the probe video's truth where there is one), the scores against the video's references where it has any
(references.score_timeline), the timeline as WebVTT + SRT under the run's captions/ folder and a page
that plays the video with its captions (player.html for one video, players/<video>.html for a set).

Over a set, every table gains a `video` column, and the run's summary pools the videos: each metric is
the mean over videos weighted by the seconds captioned (NaN values skipped), compute and seconds are
summed, peak memory is the largest (a model must fit the hardest video).

Durations (load time, each call's latency, compute per second of video, wall time) change from run to run,
so the run saves them apart, in results/timing.csv (one row per captioning call) and results/timing.json
(the run's totals): every other result of a repeated run compares byte for byte (`stacked` and `untimed`
leave them out; `timing` gathers them).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from workbench.quality import references, report, timeline

if TYPE_CHECKING:
    import pandas as pd

    from workbench.models.base import LoadedModel

_SUMMED = ("span_s", "video_duration_s", "n_rows", "n_calls", "compute_s", "wall_s")
# Keys of the load report, the captioning cost and the run summary that are durations (see the module doc).
TIMING_KEYS = ("seconds", "load_s", "compute_s", "compute_per_video_s", "wall_s")


@dataclass
class VideoResult:
    name: str  # as the parameter gave it (a path, probe:<scenario>, real:<clip>)
    path: Path
    label: str  # file-name-safe and unique within the run: names its subtitles and player page
    captioned: timeline.Timeline
    windows: "pd.DataFrame"  # report.per_window
    values: dict[str, Any]  # report.summary, plus ref_* values when the video has references
    references_path: Path | None = None
    scored: references.ReferenceScores | None = None
    files: dict[str, Path] = field(default_factory=dict)  # vtt, srt, player


def labels(names: Sequence[str]) -> list[str]:
    """File-name-safe labels for videos, unique within the list.

    >>> labels(["a/clip.mp4", "b/clip.mp4", "probe:events", "real:bikes"])
    ['clip', 'clip_2', 'events', 'bikes']
    """
    out: list[str] = []
    for name in names:
        stem = Path(name.split(":", 1)[-1]).stem
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "video"
        label, n = base, 1
        while label in out:
            n += 1
            label = f"{base}_{n}"
        out.append(label)
    return out


def caption_and_score(loaded: "LoadedModel", names: Sequence[str], paths: Sequence[Path],
                      reference_paths: Sequence[Path | None], settings: timeline.TimelineSettings,
                      run_dir: Path, truths: Sequence[dict | None], progress: bool = True) -> list[VideoResult]:
    """Caption, score and write subtitles and player pages for every video (see the module doc)."""
    results = []
    single = len(paths) == 1
    for name, path, label, reference_path, truth in zip(names, paths, labels(names), reference_paths, truths):
        captioned = timeline.caption_timeline(loaded, path, settings, progress=progress)
        windows = report.per_window(captioned.table, truth)
        values = report.summary(captioned.table, captioned.calls, windows, captioned.span_s, truth)
        scored = None
        if reference_path is not None:
            segments = references.read_references(reference_path, path)
            scored = references.score_timeline(captioned.table, segments)
            values.update(scored.summary)
        files = references.write_subtitles(captioned.table, run_dir / "captions", "timeline" if single else label)
        tracks = [(loaded.spec.model_id, files["vtt"].read_text())]
        if reference_path is not None:
            tracks.append(("reference", references.vtt_text(references.read_references(reference_path, path))))
        page_dir, page_name = (run_dir, "player") if single else (run_dir / "players", label)
        files["player"] = references.write_player(page_dir, path, tracks,
                                                  f"{Path(path).name}: {loaded.spec.model_id}", name=page_name)
        results.append(VideoResult(name, Path(path), label, captioned, windows, values, reference_path, scored,
                                   files))
    return results


def stacked(results: Sequence[VideoResult], table: str) -> "pd.DataFrame":
    """One of the per-video tables ("timeline", "calls", "per_window", "ref_windows", "ref_segments") for all
    videos, with a `video` column first; "timeline" and "calls" without their latencies, which are in
    "timing" (video, call, latency_s: one row per captioning call)."""
    import pandas as pd

    frames = []
    for result in results:
        calls = result.captioned.calls
        frame = {"timeline": lambda: result.captioned.table.drop(columns=timeline.TIMING_COLUMNS, errors="ignore"),
                 "calls": lambda: calls.drop(columns=timeline.TIMING_COLUMNS, errors="ignore"),
                 "timing": lambda: calls[["call", *timeline.TIMING_COLUMNS]],
                 "per_window": lambda: result.windows,
                 "ref_windows": lambda: result.scored.per_window if result.scored else None,
                 "ref_segments": lambda: result.scored.per_segment if result.scored else None}[table]()
        if frame is not None:
            frames.append(frame.assign(video=result.name)[["video", *frame.columns]])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def untimed(record: dict[str, Any]) -> dict[str, Any]:
    """A load report, captioning cost or run summary without its durations (and their null reasons).

    >>> untimed({"model_id": "m", "load_s": 2.5, "compute_s": None, "null_reasons": {"compute_s": "NaN"}})
    {'model_id': 'm'}
    """
    out = {key: value for key, value in record.items() if key not in TIMING_KEYS}
    reasons = {key: why for key, why in (record.get("null_reasons") or {}).items() if key not in TIMING_KEYS}
    out.pop("null_reasons", None)
    if reasons:
        out["null_reasons"] = reasons
    return out


def timing(results: Sequence[VideoResult], load_report: dict[str, Any]) -> dict[str, Any]:
    """The run's durations: loading, captioning compute (the calls' latencies summed), compute per second of
    video, and wall time while captioning (all videos together)."""
    cost = pooled_cost(results)
    return {"load_s": load_report.get("seconds"), **{key: cost[key] for key in TIMING_KEYS if key in cost}}


def per_video(results: Sequence[VideoResult]) -> "pd.DataFrame":
    """One row per video: seconds captioned, references used and every summary value."""
    import pandas as pd

    return pd.DataFrame([{"video": r.name, "span_s": r.captioned.span_s,
                          "references": r.references_path.name if r.references_path else "", **r.values}
                         for r in results])


def pooled_values(results: Sequence[VideoResult]) -> dict[str, Any]:
    """Each summary value as the mean over videos weighted by seconds captioned (NaN skipped).

    The same dict as report.summary for a single video.
    """
    if len(results) == 1:
        return dict(results[0].values)
    keys = list(dict.fromkeys(k for r in results for k in r.values))
    pooled: dict[str, Any] = {}
    for key in keys:
        pairs = [(r.values.get(key), r.captioned.span_s) for r in results]
        numbers = [(float(v), w) for v, w in pairs if isinstance(v, (int, float)) and not isinstance(v, bool)
                   and math.isfinite(float(v))]
        weight = sum(w for _, w in numbers)
        pooled[key] = sum(v * w for v, w in numbers) / weight if numbers and weight else float("nan")
    if "ref_segments" in pooled:
        pooled["ref_segments"] = sum(int(r.values.get("ref_segments", 0)) for r in results)
    return pooled


def pooled_cost(results: Sequence[VideoResult]) -> dict[str, Any]:
    """The captioning cost of all videos as one Timeline.summary()-shaped dict (summed; peak at its maximum)."""
    summaries = [{**r.captioned.summary(), "video": r.name} for r in results]  # the name, not a machine path
    if len(summaries) == 1:
        return summaries[0]
    cost = dict(summaries[0])
    for key in _SUMMED:
        cost[key] = sum(s[key] for s in summaries)
    cost["compute_per_video_s"] = cost["compute_s"] / cost["span_s"] if cost["span_s"] else float("nan")
    peaks = [s["peak_bytes"] for s in summaries if s["peak_bytes"] is not None]
    cost["peak_bytes"] = max(peaks) if peaks else None
    cost["notes"] = list(dict.fromkeys(n for s in summaries for n in s["notes"]))
    cost["video"] = f"{len(summaries)} videos: " + ", ".join(r.name for r in results)
    cost["n_videos"] = len(summaries)
    return cost


def references_summary(results: Sequence[VideoResult]) -> dict[str, Any] | None:
    """The ref_* values pooled over the videos that have references, or None when none has."""
    with_references = [r for r in results if r.scored is not None]
    if not with_references:
        return None
    values = pooled_values(with_references)
    return {key: value for key, value in values.items() if key.startswith("ref_")}


def reference_metrics(results: Sequence[VideoResult]) -> "pd.DataFrame":
    """The ref_* values pooled over the videos with references, as a metric table (NaN where none has any)."""
    return references.summary_table(references_summary(results) or {})


def comparison_player(runs: "pd.DataFrame", root: Path, out_dir: Path) -> Path | None:
    """A page in `out_dir` playing the video that most of `runs` (05's table of 04 runs) captioned, with each
    run's timeline (its captions/timeline.vtt) as a selectable track named after its configuration.

    None when no run of that video wrote subtitles (runs from before 04 wrote them, or dataset runs).
    """
    if runs.empty or "video" not in runs or "run" not in runs:
        return None
    tracks, source = [], None
    for video in runs["video"].value_counts().index:
        for row in runs[runs["video"] == video].to_dict("records"):
            run_dir = Path(root) / str(row["run"])
            vtt = run_dir / "captions" / "timeline.vtt"
            copies = sorted(run_dir.glob("video.*"))
            if not vtt.is_file() or not copies:
                continue
            tracks.append((str(row.get("config") or row["run"]), vtt.read_text(encoding="utf-8")))
            source = source or copies[0]
        if tracks:
            return references.write_player(out_dir, source, tracks, f"{video}: {len(tracks)} timeline(s)")
    return None


def reference_comparison(runs: "pd.DataFrame") -> "pd.DataFrame":
    """The configurations' scores against the videos' own references (ref_* columns), best ROUGE-L first."""
    columns = [c for c in ("config", "video", "n_runs") if c in runs] + [c for c in runs if c.startswith("ref_")]
    table = runs.reindex(columns=columns)
    return table.sort_values("ref_rouge_l", ascending=False) if "ref_rouge_l" in table else table
