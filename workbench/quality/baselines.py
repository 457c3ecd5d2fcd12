"""Anchors for the caption-quality scores: trivial timelines scored with exactly the metrics a model's timeline
gets, so every score on a quality page can be read against a floor and a ceiling.

- empty caption: every window captioned with nothing (the floor of every reference metric);
- constant caption: one plausible sentence (the first window's reference) repeated for every window: what a
  model that ignores the video scores;
- reference itself: each window captioned with its own reference (the ceiling);
- shuffled reference: each window captioned with the reference of a different second (right style, wrong
  moment): a score near it means the captions are fluent but not about that second.

The references are the probe video's ground truth per second, or the video's own reference captions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from workbench.quality import metrics, references, report

if TYPE_CHECKING:
    import pandas as pd

    from workbench.quality.videoset import VideoResult

# The scores shown beside each baseline (those a video lacks are left out of its table).
SCORES = ("success_rate", "coverage", "fact_recall", "hallucination_rate", "genericness", "staticness",
          "bleu_4", "rouge_l", "cider", "ref_bleu_4", "ref_rouge_l", "ref_cider")
BASELINES = ("empty caption", "constant caption", "shuffled reference", "reference itself (ceiling)")


def window_references(result: "VideoResult") -> list[str]:
    """Each window's reference sentence(s): the probe's ground truth, else the overlapping reference segments
    of the video's own reference file ("" for a window nothing describes)."""
    windows = result.windows
    if "reference" in windows and windows["reference"].astype(str).str.strip().any():
        return [str(r) if isinstance(r, str) else "" for r in windows["reference"]]
    if result.references_path is None:
        return []
    segments = references.read_references(result.references_path, result.path)
    table = result.captioned.table
    spans = list(zip(table["start_s"].astype(float), table["end_s"].astype(float)))
    aligned = metrics.align_references(spans, [(s.start_s, s.end_s) for s in segments])
    return [" ".join(segments[j].text for j in found) for found in aligned]


def shuffled(sentences: Sequence[str]) -> list[str]:
    """Each window gets the reference of another window: the next different sentence, cyclically.

    >>> shuffled(["a", "b", "c"])
    ['b', 'c', 'a']
    >>> shuffled(["a", "a", "b"])
    ['b', 'b', 'a']
    """
    n = len(sentences)
    out = []
    for i, own in enumerate(sentences):
        other = next((sentences[(i + k) % n] for k in range(1, n) if sentences[(i + k) % n] != own), own)
        out.append(other)
    return out


def score_captions(result: "VideoResult", captions: Sequence[str], truth: dict | None) -> dict[str, Any]:
    """The run's metrics for `result`'s windows captioned with `captions` instead of the model's."""
    import pandas as pd

    table = result.captioned.table.copy()
    table["caption"] = list(captions)
    table["status"] = "ok"
    calls = pd.DataFrame({"status": ["ok"] * len(table), "text": list(captions)})
    windows = report.per_window(table, truth)
    values = report.summary(table, calls, windows, result.captioned.span_s, truth)
    if result.references_path is not None:
        segments = references.read_references(result.references_path, result.path)
        values.update(references.score_timeline(table, segments).summary)
    return values


def table(results: Sequence["VideoResult"], truths: Sequence[dict | None]) -> "pd.DataFrame":
    """One row per (video, caption source): the model's own scores first, then each baseline's, same metrics."""
    import pandas as pd

    rows = []
    for result, truth in zip(results, truths):
        sentences = window_references(result)
        rows.append({"video": result.name, "captions": "this model", **_scores(result.values)})
        if not sentences:
            rows.append({"video": result.name, "captions": "(no references: no baselines)"})
            continue
        constant = next((s for s in sentences if s.strip()), "")
        for name, captions in zip(BASELINES, ([""] * len(sentences), [constant] * len(sentences),
                                              shuffled(sentences), sentences)):
            rows.append({"video": result.name, "captions": name, **_scores(score_captions(result, captions, truth))})
    frame = pd.DataFrame(rows)
    kept = [c for c in frame.columns if c in ("video", "captions") or frame[c].notna().any()]
    return frame[kept]


def _scores(values: dict[str, Any]) -> dict[str, Any]:
    return {key: values.get(key, float("nan")) for key in SCORES}
