"""Held-out scores of a trained twin, measured with the workbench's own 04 path and metrics.

Each test scene is written as a probe video (H.264, as every probe video) and captioned by
`quality.timeline.caption_timeline` (1-second windows, the twin's frames per window); `quality.report`
scores each timeline against its ground truth. Ratios (fact recall, hallucination rate, recall per kind)
are pooled over all windows of all test scenes; the other metrics are means over the scenes.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from workbench.twins import data
from workbench.twins.cast import recipe

if TYPE_CHECKING:
    import pandas as pd

    from workbench.models.base import LoadedModel

# The demo's probe videos (seed 0 of the three default scenarios): never trained on (another scenario).
DEMO_VIDEOS = ("static", "moving", "events")
POINTING_SCENES = 20  # test scenes of the pointing game (every window, every object word): all of them
SCORE_KEYS = ("success_rate", "fact_recall", "hallucination_rate", "recall_colour", "recall_shape",
              "recall_motion", "recall_appears", "recall_disappears", "recall_changes_colour", "genericness",
              "specificity", "staticness", "bleu_4", "rouge_l", "cider", "mean_length", "quality_score")


def test_videos(seeds: tuple[int, ...] = data.TEST_SEEDS) -> list[Path]:
    """The test scenes as probe videos (generated into the cache once)."""
    from workbench.probe_videos import ensure_probe_videos

    return [ensure_probe_videos([data.SCENARIO], seed)[data.SCENARIO] for seed in seeds]


def demo_videos() -> list[Path]:
    from workbench.probe_videos import ensure_probe_videos

    return list(ensure_probe_videos(list(DEMO_VIDEOS), 0).values())


def score_videos(loaded: "LoadedModel", videos: list[Path], frames_per_window: int,
                 max_new_tokens: int = 64) -> tuple[dict[str, Any], "pd.DataFrame"]:
    """Caption each video window by window and score it; returns pooled scores and all per-window rows."""
    import pandas as pd

    from workbench.inputs import ground_truth_for
    from workbench.quality import compare, metrics, report
    from workbench.quality.timeline import TimelineSettings, caption_timeline

    settings = TimelineSettings(frames_per_window=frames_per_window, max_new_tokens=max_new_tokens,
                                track_memory=False)
    summaries, windows = [], []
    for path in videos:
        truth = ground_truth_for(path)
        captioned = caption_timeline(loaded, path, settings, progress=False)
        rows = report.per_window(captioned.table, truth)
        rows.insert(0, "video", path.name)
        rows["caption"] = captioned.table["caption"].to_numpy()
        summaries.append(report.summary(captioned.table, captioned.calls, rows, captioned.span_s, truth))
        windows.append(rows)
    table = pd.concat(windows, ignore_index=True)
    grounded = [{"n_facts": r.n_facts, "n_mentioned": r.n_mentioned, "n_named": r.n_named,
                 "n_hallucinated": r.n_hallucinated, "mentioned": [m for m in r.mentioned.split("; ") if m],
                 "missed": [m for m in r.missed.split("; ") if m]} for r in table.itertuples()]
    scores: dict[str, Any] = {
        "n_videos": len(videos), "n_windows": len(table),
        "fact_recall": metrics.fact_recall(grounded), "hallucination_rate": metrics.hallucination_rate(grounded),
        **{f"recall_{k}": v for k, v in metrics.recall_by_kind(grounded).items()},
    }
    for key in ("success_rate", "genericness", "specificity", "staticness", "bleu_4", "rouge_l", "cider",
                "mean_length", "coverage"):
        values = [s[key] for s in summaries if not _nan(s.get(key))]
        scores[key] = sum(values) / len(values) if values else math.nan
    scores["quality_score"] = compare.quality_score(scores)
    return scores, table


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def evaluate(name: str, source: str = "trained", seeds: tuple[int, ...] = data.TEST_SEEDS,
             dtype: str = "float32", log: Callable[[str], None] = print) -> dict[str, Any]:
    """Held-out scores of a twin: the test scenes, and the demo's three probe videos."""
    import torch

    from workbench.models import LoadSettings, load


    recipe_ = recipe(name)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # generation of a model this small is faster on one thread of a busy CPU
    try:
        loaded = load(name, LoadSettings(source=source, dtype=dtype, device="cpu"))
        started = time.perf_counter()
        test, test_rows = score_videos(loaded, test_videos(seeds), recipe_.frames_per_window,
                                       recipe_.max_new_tokens)
        demo, _ = score_videos(loaded, demo_videos(), recipe_.frames_per_window, recipe_.max_new_tokens)
        result = {"test": test, "demo_videos": demo, "dtype": dtype, "test_seeds": [seeds[0], seeds[-1]],
                  "examples": _examples(test_rows)}
        if recipe_.family == "qwen2_vl" and recipe_.target == "reference":
            _, summary = pointing_scores(loaded, seeds[:POINTING_SCENES], recipe_.frames_per_window,
                                         recipe_.max_new_tokens)
            result["pointing"] = {"scenes": POINTING_SCENES, "by_aggregation": summary.to_dict("records")}
        loaded.unload()
    finally:
        torch.set_num_threads(threads)
    log(f"{name}: held-out scores in {time.perf_counter() - started:.0f} s: fact recall {test['fact_recall']:.3f}, "
        f"hallucination {test['hallucination_rate']:.3f}, motion recall {test['recall_motion']:.3f}")
    return result


def _examples(rows: "pd.DataFrame", n: int = 4) -> list[dict[str, str]]:
    picked = rows.iloc[:: max(1, len(rows) // n)].head(n)
    return [{"video": r.video, "second": int(r.window), "caption": r.caption, "reference": r.reference}
            for r in picked.itertuples()]


def write_scores(name: str, out_dir: str | Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Evaluate the twin saved in out_dir and write its scores into card.json and the README model card."""
    from workbench.twins.card import write_card

    out_dir = Path(out_dir)
    scores = evaluate(name, source=str(out_dir), log=log)
    card_path = out_dir / "card.json"
    card = json.loads(card_path.read_text())
    card["held_out"] = _rounded(scores)
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    write_card(out_dir)
    return scores


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def pointing_scores(loaded: "LoadedModel", seeds: tuple[int, ...], frames_per_window: int,
                    max_new_tokens: int = 64) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Pointing game over every window of the given test scenes: (per-word rows, summary per aggregation)."""
    import pandas as pd

    from workbench import attention, video
    from workbench.attention import pointing
    from workbench.attention.capture import CaptureSettings
    from workbench.inputs import ground_truth_for
    from workbench.models.base import GenerationSettings

    generation = GenerationSettings(max_new_tokens=max_new_tokens)
    settings = CaptureSettings(heads="all")
    rows = []
    for path in test_videos(seeds):
        truth = ground_truth_for(path)
        frames = video.sample_windows(path, 1.0, frames_per_window)
        for window, _ in enumerate(frames.windows or []):
            picks = frames.window_ids == window
            maps = attention.attend(loaded, frames.frames[picks], frames.timestamps_s[picks],
                                    generation=generation, settings=settings)
            scored = pointing.score_maps(maps, truth)
            scored.insert(0, "window", window)
            scored.insert(0, "video", path.name)
            rows.append(scored)
    table = pd.concat(rows, ignore_index=True)
    return table, pointing.summarize(table)
