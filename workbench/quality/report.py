"""The metric tables of a captioned timeline: per window, and one summary per run.

Built from `workbench.quality.metrics` (pure functions) and a timeline table (see `timeline.TABLE_COLUMNS`);
probe-video ground truth, when there is one, adds grounding, staticness against real changes and
reference scores against the per-second reference sentences.
"""

from __future__ import annotations

import json

from typing import TYPE_CHECKING, Any

from workbench.quality import metrics

if TYPE_CHECKING:
    import pandas as pd

# What each summary metric means and which way is better (shown beside the values, saved with them).
METRICS: dict[str, tuple[str, str]] = {
    "success_rate": ("higher", "captioning calls that gave a usable caption (not empty, no error, not degenerate)"),
    "coverage": ("higher", "seconds of the video with a usable caption"),
    "mean_length": ("", "words per usable caption"),
    "distinct_1": ("higher", "distinct words over all words, all captions together"),
    "distinct_2": ("higher", "distinct word pairs over all word pairs, all captions together"),
    "repeated_trigram_share": ("lower", "mean share of a caption's trigrams that repeat within it"),
    "degenerate_rate": ("lower", "non-empty captions that loop or hold no words"),
    "genericness": ("lower", "mean share of content words that are stock phrases or low-information words"),
    "specificity": ("higher", "mean share of content words naming colours, shapes, places, motion or events"),
    "staticness": ("lower", "similarity of consecutive captions where the truth changed, beyond the references'"),
    "caption_change_rate": ("higher", "consecutive captions that differ at all"),
    "fact_recall": ("higher", "ground-truth facts (colour, shape, motion, events) mentioned in the right second"),
    "hallucination_rate": ("lower", "named colours and shapes that are not on screen in that second (NaN: none named)"),
    "hallucinations_per_caption": ("lower", "absent colours and shapes named per usable caption"),
    "bleu_4": ("higher", "BLEU-4 against the per-second reference sentences"),
    "rouge_l": ("higher", "ROUGE-L against the per-second reference sentences"),
    "cider": ("higher", "CIDEr-D against the per-second reference sentences (IDF over this video's references)"),
}


def per_window(table: "pd.DataFrame", truth: dict | None = None) -> "pd.DataFrame":
    """One row per timeline row: usability, length, repetition, genericness, grounding and change."""
    import pandas as pd

    seconds = truth["seconds"] if truth else None
    rows = []
    previous_caption: str | None = None
    previous_signature = None
    for row in table.itertuples():
        caption = row.caption if isinstance(row.caption, str) else ""
        usable = metrics.is_usable(row.status, caption)
        out: dict[str, Any] = {
            "window": row.window, "start_s": row.start_s, "end_s": row.end_s, "status": row.status,
            "usable": usable, "degeneration": metrics.degeneration_reason(caption),
            "length": metrics.length(caption), "repeated_trigram_share": metrics.repeated_ngram_share(caption, 3),
            "genericness": metrics.genericness(caption), "specificity": metrics.specificity(caption),
            "stock_phrases": "; ".join(metrics.stock_phrases(caption)),
            "similarity_to_previous": (float("nan") if previous_caption is None
                                       else metrics.caption_similarity(previous_caption, caption)),
        }
        if seconds is not None:
            facts = metrics.truth_facts(seconds, row.start_s, row.end_s, truth.get("background", "grey"))
            found = metrics.grounding(caption if usable else "", facts)
            out.update(truth_changed=(None if previous_signature is None else facts.signature != previous_signature),
                       n_facts=found["n_facts"], n_mentioned=found["n_mentioned"], n_named=found["n_named"],
                       n_hallucinated=found["n_hallucinated"], mentioned="; ".join(found["mentioned"]),
                       missed="; ".join(found["missed"]), hallucinated="; ".join(found["hallucinated"]),
                       reference=" ".join(s["description"] for s in seconds
                                          if s["start_s"] < row.end_s and s["end_s"] > row.start_s))
            previous_signature = facts.signature
        rows.append(out)
        previous_caption = caption
    frame = pd.DataFrame(rows)
    if seconds is not None and len(frame):
        scores = metrics.reference_scores(list(table["caption"].fillna("")),
                                          [[r] for r in frame["reference"]])
        for key in ("bleu_4", "rouge_l", "cider"):
            frame[key] = [item[key] for item in scores["per_caption"]]
    return frame


def summary(table: "pd.DataFrame", calls: "pd.DataFrame", windows: "pd.DataFrame", duration_s: float,
            truth: dict | None = None) -> dict[str, Any]:
    """Every summary metric of one timeline (NaN where it cannot be computed, e.g. no ground truth)."""
    import math

    captions = [c if isinstance(c, str) else "" for c in table["caption"]]
    usable = list(windows["usable"]) if len(windows) else []
    usable_captions = [c for c, ok in zip(captions, usable) if ok]
    non_empty = [c for c in captions if metrics.tokenize(c)]
    nan = float("nan")

    def mean(values: list[float]) -> float:
        values = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
        return sum(values) / len(values) if values else nan

    out: dict[str, Any] = {
        "success_rate": metrics.success_rate(list(calls["status"]), [t if isinstance(t, str) else "" for t in
                                                                    calls["text"]]),
        "coverage": metrics.coverage(list(zip(table["start_s"], table["end_s"])), usable, duration_s),
        "mean_length": mean([metrics.length(c) for c in usable_captions]),
        "distinct_1": metrics.distinct_n(usable_captions, 1) if usable_captions else nan,
        "distinct_2": metrics.distinct_n(usable_captions, 2) if usable_captions else nan,
        "repeated_trigram_share": mean([metrics.repeated_ngram_share(c, 3) for c in non_empty]),
        "degenerate_rate": (sum(metrics.is_degenerate(c) for c in non_empty) / len(non_empty)) if non_empty else nan,
        "genericness": mean([metrics.genericness(c) for c in usable_captions]),
        "specificity": mean([metrics.specificity(c) for c in usable_captions]),
        "caption_change_rate": metrics.caption_change_rate(captions),
    }
    if truth is not None and len(windows):
        changed = [bool(c) for c in windows["truth_changed"].iloc[1:]]
        references = list(windows["reference"])
        kept = [metrics.caption_similarity(a, b) for a, b in zip(references[:-1], references[1:])]
        out["staticness"] = metrics.staticness(captions, changed, kept)
        grounded = [{"n_facts": r.n_facts, "n_mentioned": r.n_mentioned, "n_named": r.n_named,
                     "n_hallucinated": r.n_hallucinated,
                     "mentioned": [m for m in r.mentioned.split("; ") if m],
                     "missed": [m for m in r.missed.split("; ") if m]} for r in windows.itertuples()]
        out["fact_recall"] = metrics.fact_recall(grounded)
        out["hallucination_rate"] = metrics.hallucination_rate(grounded)
        out["hallucinations_per_caption"] = (sum(g["n_hallucinated"] for g in grounded) / len(usable_captions)
                                             if usable_captions else nan)
        out.update({f"recall_{kind}": value for kind, value in metrics.recall_by_kind(grounded).items()})
        scores = metrics.reference_scores(captions, [[r] for r in windows["reference"]])
        out.update({k: scores[k] for k in ("bleu_1", "bleu_4", "rouge_l", "cider")})
    else:
        out["staticness"] = metrics.staticness(captions)  # without truth: every consecutive pair
        out.update(fact_recall=nan, hallucination_rate=nan, hallucinations_per_caption=nan,
                   bleu_4=nan, rouge_l=nan, cider=nan)
    return out


def metric_table(values: dict[str, Any]) -> "pd.DataFrame":
    """The summary as a table: metric, value, which way is better, what it measures."""
    import pandas as pd

    rows = [{"metric": name, "value": values.get(name, float("nan")), "better": better, "meaning": meaning}
            for name, (better, meaning) in METRICS.items()]
    return pd.DataFrame(rows)


def run_summary(load_report: dict[str, Any], components: list[dict[str, Any]], timeline_summary: dict[str, Any],
                values: dict[str, Any]) -> dict[str, Any]:
    """One run of notebook 04 as a flat record: what ran, what it cost, how good it was (05 reads these)."""
    from workbench.quality.components import count_components

    record = {
        "model_id": load_report["model_id"], "family": load_report["family"], "source": load_report["source"],
        "quantization": load_report["quantization"], "attn_implementation": load_report["attn_implementation"],
        "dtype": load_report["dtype"], "device": load_report["device"], "n_params": load_report["n_params"],
        "model_options": json.dumps(load_report.get("options") or {}, sort_keys=True),
        "load_s": load_report["seconds"], "memory_after_load_bytes": load_report["memory_bytes"],
        "memory_after_load_kind": load_report["memory_kind"],
        "video": timeline_summary["video"], "mode": timeline_summary["setting_mode"],
        "window_s": timeline_summary["setting_window_s"],
        "frames_per_window": timeline_summary["setting_frames_per_window"],
        "clip_frames": timeline_summary["setting_clip_frames"],
        "max_new_tokens": timeline_summary["setting_max_new_tokens"],
        "span_s": timeline_summary["span_s"], "n_windows": timeline_summary["n_rows"],
        "compute_s": timeline_summary["compute_s"], "compute_per_video_s": timeline_summary["compute_per_video_s"],
        "peak_bytes": timeline_summary["peak_bytes"], "peak_memory_kind": timeline_summary["memory_kind"],
        "n_components": count_components(components),
        "components": "; ".join(f"{c['role']} ({c['module']})" for c in components),
        **values,
    }
    record = {key: _native(value) for key, value in record.items()}
    reasons = {key: _null_reason(key, record) for key, value in record.items() if _not_finite(value)}
    record = {key: (None if key in reasons else value) for key, value in record.items()}
    if reasons:  # strict JSON: null, and why (05 reads these records; browsers reject NaN)
        record["null_reasons"] = reasons
    return record


TRUTH_METRICS = ("fact_recall", "hallucination_rate", "hallucinations_per_caption", "bleu_1", "bleu_4",
                 "rouge_l", "cider")


def _not_finite(value: Any) -> bool:
    import math

    return isinstance(value, float) and not math.isfinite(value)


def _null_reason(name: str, record: dict[str, Any]) -> str:
    """Why a summary value could not be computed (it is written as null)."""
    no_truth = _not_finite(record.get("fact_recall")) or record.get("fact_recall") is None
    if (name in TRUTH_METRICS or name.startswith("recall_")) and no_truth:
        return "no ground truth for this video (only probe videos have one)"
    if name == "hallucination_rate":
        return "no colour or shape was named in a usable caption"
    if record.get("success_rate") == 0:
        return "no usable caption"
    return "not computable for this run (NaN)"


def _native(value: Any) -> Any:
    """numpy scalars as Python numbers, so JSON keeps them numbers (write_json stringifies the unknown)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (list, dict, str)) else value
