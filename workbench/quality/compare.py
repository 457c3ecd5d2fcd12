"""Runs of 04_caption_quality side by side, and a ranked recommendation under a memory budget.

Each ok run of notebook 04 leaves results/summary.json (model, configuration, quality metrics, peak memory,
memory after load, components) and results/timing.json (load time, compute per second of video);
`collect_runs` reads them through the run folders' manifests, listing the runs it skips and why; `rank`
orders the configurations that fit a memory budget by a quality score, and `recommend` says which one wins
and on what evidence.
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench import paths
from workbench.units import GiB, format_gib

if TYPE_CHECKING:
    import pandas as pd

SOURCE_NOTEBOOK = "04_caption_quality"
SUMMARY_FILE = "summary.json"
TIMING_FILE = "timing.json"  # load time and compute per second of video (runs before it kept them in the summary)

# The quality score is the mean of these, each turned so that 1 is best; components a run lacks (no ground
# truth: no fact recall or hallucinations) are left out of its mean rather than counted as 0.
QUALITY_COMPONENTS: dict[str, bool] = {  # metric -> higher is better
    "success_rate": True,
    "coverage": True,
    "fact_recall": True,
    "hallucination_rate": False,
    "genericness": False,
    "staticness": False,
}
CONFIG_KEYS = ("model_id", "model_options", "source", "quantization", "attn_implementation", "dtype", "mode",
               "window_s", "frames_per_window", "video")


def config_label(record: dict[str, Any]) -> str:
    """Short name of a configuration for tables and charts.

    >>> config_label({"model_id": "qwen2-vl-2b", "quantization": "8bit", "attn_implementation": "sdpa",
    ...               "mode": "windows", "window_s": 1.0, "frames_per_window": 2})
    'qwen2-vl-2b/8bit/sdpa/windows 1s x2'
    >>> config_label({"model_id": "qwen2-vl-2b", "source": "tiny", "quantization": "none", "attn_implementation": "sdpa"})
    'qwen2-vl-2b (tiny twin)/none/sdpa/windows 1s x1'
    >>> config_label({"model_id": "auroracap-7b-vid", "model_options": '{"token_kept_ratio": 0.4}',
    ...               "quantization": "none", "attn_implementation": "sdpa", "mode": "windows"})
    'auroracap-7b-vid token_kept_ratio=0.4/none/sdpa/windows 1s x1'
    """
    options = record.get("model_options")
    options = json.loads(options) if isinstance(options, str) and options else {}
    model = " ".join([record["model_id"], *(f"{k}={v}" for k, v in options.items())])
    if record.get("source") not in (None, ""):  # tiny-twin and real runs of one model never share a label
        from workbench.page import weights_label

        model += f" ({weights_label(record['source'])})"
    mode = record.get("mode", "windows")
    detail = (f"{record.get('window_s', 1.0):g}s x{record.get('frames_per_window', 1)}" if mode == "windows"
              else f"{record.get('clip_frames', '?')} frames")
    return f"{model}/{record.get('quantization', 'none')}/{record.get('attn_implementation', '?')}/" \
           f"{mode} {detail}"


def runs_root(notebook: str = SOURCE_NOTEBOOK, sweep: str = "") -> Path:
    """Where the runs to compare live: a sweep's run folders, or the notebook's own under outputs/."""
    if not sweep:
        return paths.run_root(notebook)
    root = paths.outputs_dir() / "sweeps" / sweep / "runs"
    if not root.exists():
        raise FileNotFoundError(f"sweep {sweep!r} has no runs under {root}; run `python -m workbench sweep` first")
    return root


def collect_runs(notebook: str = SOURCE_NOTEBOOK, run_ids: list[str] | None = None,
                 root: Path | None = None) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """(runs, skipped): one row per ok run with its summary; one row per run left out, with the reason."""
    import pandas as pd

    from workbench.runner import mark_dead_runs

    root = root or paths.run_root(notebook)
    mark_dead_runs(root, marked_by="05 collector")  # a run whose process died is 'killed', not 'running'
    rows, skipped = [], []
    for run_dir in sorted(p for p in root.glob("*") if p.is_dir()) if root.exists() else []:
        if run_ids and run_dir.name not in run_ids:
            continue
        manifest_path = run_dir / "manifest.json"
        if not manifest_path.exists():
            skipped.append({"run": run_dir.name, "status": "unknown", "reason": "no manifest.json"})
            continue
        record = json.loads(manifest_path.read_text())
        status = record.get("status")
        if status != "ok":
            error = (record.get("error") or "").strip().splitlines()
            reason = error[0] if error else ("unfinished (no end recorded)" if status == "running" else "")
            skipped.append({"run": run_dir.name, "status": status, "reason": reason})
            continue
        summary_path = run_dir / "results" / SUMMARY_FILE
        if not summary_path.exists():
            skipped.append({"run": run_dir.name, "status": status, "reason": f"no results/{SUMMARY_FILE}"})
            continue
        summary = json.loads(summary_path.read_text())
        timing_path = run_dir / "results" / TIMING_FILE
        if timing_path.exists():
            timing = json.loads(timing_path.read_text())
            reasons = {**(timing.pop("null_reasons", None) or {}), **(summary.get("null_reasons") or {})}
            summary = {**timing, **summary, "null_reasons": reasons}
        for key in summary.pop("null_reasons", None) or {}:  # strict JSON wrote NaN as null, with the reason
            if summary.get(key) is None:
                summary[key] = float("nan")
        rows.append({"run": run_dir.name, "started_at": record.get("started_at"), **summary})
    runs = pd.DataFrame(rows)
    if len(runs):
        runs["config"] = [config_label(r) for r in runs.to_dict("records")]
    return runs, pd.DataFrame(skipped, columns=["run", "status", "reason"])


def run_pages(runs: "pd.DataFrame", root: Path, page_dir: Path) -> list[str]:
    """Per row of `runs`, the relative link from `page_dir` to its run's executed notebook (the first run of a
    pooled row; the `run` column lists them all)."""
    import os

    links = []
    for names in runs.get("run", []):
        first = str(names).split(", ")[0]
        page = Path(root) / first / "notebook.html"
        links.append(os.path.relpath(page, page_dir) if page.exists() else "")
    return links


def latest_per_config(runs: "pd.DataFrame") -> "pd.DataFrame":
    """Keep the most recent run of each configuration (same model, settings and video)."""
    if runs.empty:
        return runs
    keys = [k for k in CONFIG_KEYS if k in runs]
    return (runs.sort_values("started_at").groupby(keys, dropna=False, sort=False).tail(1)
            .reset_index(drop=True))


def pool_videos(runs: "pd.DataFrame") -> "pd.DataFrame":
    """One row per configuration over all its videos: metrics averaged, memory and load figures at their
    maximum (a model must fit the hardest video), videos and runs listed.

    >>> import pandas as pd
    >>> runs = pd.DataFrame({"run": ["a", "b"], "config": ["m/none", "m/none"], "video": ["v1", "v2"],
    ...                      "coverage": [1.0, 0.5], "peak_bytes": [10, 30]})
    >>> pool_videos(runs)[["config", "video", "n_runs", "coverage", "peak_bytes"]].values.tolist()
    [['m/none', 'v1, v2', 2, 0.75, 30]]
    """
    import pandas as pd

    if runs.empty or "config" not in runs:
        return runs
    rows = []
    for config, group in runs.groupby("config", sort=False):
        row: dict[str, Any] = {}
        for column in group.columns:
            values = group[column]
            if column in ("run", "video"):
                row[column] = ", ".join(str(v) for v in dict.fromkeys(values))
            elif pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
                row[column] = values.iloc[-1]
            elif any(word in column for word in ("bytes", "peak", "load_seconds", "components")):
                row[column] = values.max()
            else:
                row[column] = values.mean()
        row["n_runs"] = len(group)
        rows.append(row)
    return pd.DataFrame(rows)


def quality_score(record: dict[str, Any]) -> float:
    """Mean of the QUALITY_COMPONENTS a run has, each oriented so that 1 is best.

    >>> quality_score({"success_rate": 1.0, "coverage": 1.0, "genericness": 0.5, "staticness": float("nan")})
    0.8333333333333334
    """
    values = []
    for metric, higher in QUALITY_COMPONENTS.items():
        value = record.get(metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        values.append(float(value) if higher else 1.0 - float(value))
    return sum(values) / len(values) if values else float("nan")


def rank(table: "pd.DataFrame", budget_gib: float, memory: str = "peak_bytes",
         mix_sources: bool = False) -> "pd.DataFrame":
    """Configurations ranked by quality score among those whose `memory` fits `budget_gib`.

    Ties go to the higher success rate, then the smaller peak, then the faster one. A configuration over
    the budget (or without a measured peak) gets no rank and says why in `excluded_reason`. Runs of different
    kinds of weights (real, trained twin, tiny twin, random: column `weights`) are ranked separately, real
    weights first, unless `mix_sources`: a tiny twin's score says nothing about the real model's.
    """
    import numpy as np
    import pandas as pd

    from workbench.page import WEIGHT_KINDS, weights_kind

    if table.empty:
        raise ValueError(f"no runs to rank: run notebook {SOURCE_NOTEBOOK} first (failed runs are not used)")
    ranked = table.copy()
    ranked["weights"] = [weights_kind(s) for s in ranked.get("source", pd.Series(None, index=ranked.index))]
    order_of = {kind: i for i, kind in enumerate(WEIGHT_KINDS)}
    group = (pd.Series(0, index=ranked.index) if mix_sources
             else ranked["weights"].map(lambda k: order_of.get(k, len(order_of))))
    ranked["quality_score"] = [quality_score(r) for r in ranked.to_dict("records")]
    ranked["peak_gib"] = pd.to_numeric(ranked[memory], errors="coerce") / GiB
    ranked["fits_budget"] = ranked["peak_gib"].le(budget_gib)
    ranked["excluded_reason"] = [
        "" if fits else ("no peak memory measured" if np.isnan(peak)
                         else f"peak {format_gib(peak)} > budget {format_gib(budget_gib)}")
        for fits, peak in zip(ranked["fits_budget"], ranked["peak_gib"])
    ]
    order = ranked.assign(_score=ranked["quality_score"].fillna(-1), _success=ranked["success_rate"].fillna(-1),
                          _speed=ranked.get("compute_per_video_s", pd.Series(0.0, index=ranked.index)).fillna(np.inf),
                          _group=group)
    order = order.sort_values(["_group", "fits_budget", "_score", "_success", "peak_gib", "_speed"],
                              ascending=[True, False, False, False, True, True], kind="stable")
    groups = order["_group"].to_numpy()
    ranked = order.drop(columns=["_score", "_success", "_speed", "_group"]).reset_index(drop=True)
    within = pd.Series(1, index=ranked.index).groupby(groups).cumsum().to_numpy()  # ranks restart per kind
    ranks = np.where(ranked["fits_budget"], within, np.nan)
    ranked.insert(0, "rank", pd.array(ranks, dtype="Int64") if len(ranked) else pd.array([], dtype="Int64"))
    return ranked


def evidence(ranking: "pd.DataFrame") -> "pd.DataFrame":
    """The top configuration beside the runner-up, metric by metric (what the recommendation rests on)."""
    import pandas as pd

    fits = _first_group(ranking)
    metrics = ["quality_score", *QUALITY_COMPONENTS, "peak_gib", "compute_per_video_s", "load_s", "n_components"]
    rows = []
    if fits.empty:
        return pd.DataFrame(columns=["metric", "recommended", "runner_up", "difference"])
    top = fits.iloc[0]
    second = fits.iloc[1] if len(fits) > 1 else None
    for metric in metrics:
        if metric not in ranking:
            continue
        mine = top[metric]
        other = second[metric] if second is not None else float("nan")
        difference = (mine - other) if second is not None and _is_number(mine) and _is_number(other) else float("nan")
        rows.append({"metric": metric, "recommended": mine, "runner_up": other, "difference": difference})
    return pd.DataFrame(rows)


def _is_number(value: Any) -> bool:
    """A real number that is not NaN (numpy scalars included).

    >>> _is_number(3), _is_number(float("nan")), _is_number("3")
    (True, False, False)
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)


def _first_group(ranking: "pd.DataFrame") -> "pd.DataFrame":
    """The fitting configurations of the kind of weights ranked first (all of them when sources were mixed)."""
    fits = ranking[ranking["fits_budget"]]
    if "weights" not in ranking or fits.empty or ranking["rank"].eq(1).sum() <= 1:
        return fits
    return fits[fits["weights"] == fits["weights"].iloc[0]]


def recommend(ranking: "pd.DataFrame", budget_gib: float) -> dict[str, Any]:
    """The recommendation under a budget, with the reason in words and the excluded configurations."""
    all_fits = ranking[ranking["fits_budget"]]
    fits = _first_group(ranking)
    excluded = [{"config": r.config, "peak_gib": None if math.isnan(r.peak_gib) else float(r.peak_gib),
                 "reason": r.excluded_reason} for r in ranking[~ranking["fits_budget"]].itertuples()]
    result: dict[str, Any] = {"budget_gib": budget_gib, "n_configs": len(ranking), "n_fitting": len(fits),
                              "excluded": excluded}
    if fits.empty:
        measured = ranking.dropna(subset=["peak_gib"])
        smallest = measured.sort_values("peak_gib").iloc[0] if len(measured) else None
        result.update(recommended=None, model_id=None, why=(
            f"no configuration fits in {format_gib(budget_gib)}"
            + (f"; the smallest peak is {format_gib(smallest.peak_gib)} ({smallest.config})" if smallest is not None
               else "")))
        return result
    top = fits.iloc[0]
    why = (f"{top.config} has the highest quality score ({top.quality_score:.3f}) of the {len(fits)} "
           f"configuration(s) whose peak memory fits in {format_gib(budget_gib)} (its peak: {format_gib(top.peak_gib)})")
    if len(fits) > 1:
        second = fits.iloc[1]
        better = [m for m, higher in QUALITY_COMPONENTS.items()
                  if _is_number(top.get(m)) and _is_number(second.get(m))
                  and ((top[m] > second[m]) if higher else (top[m] < second[m]))]
        why += (f"; runner-up {second.config} scores {second.quality_score:.3f}"
                + (f"; better on {', '.join(better)}" if better else "; tied on the score, ahead on the tie-breaks"))
    if len(fits) < len(all_fits):
        others = sorted(set(all_fits["weights"]) - {fits["weights"].iloc[0]})
        why += (f"; ranked among runs with {fits['weights'].iloc[0]} only: runs with {', '.join(others)} are "
                f"ranked separately (their scores say nothing about the real models)")
    if excluded:
        why += f"; {len(excluded)} configuration(s) excluded for exceeding the budget or lacking a peak"
    result.update(recommended=top.config, model_id=top.model_id, quality_score=float(top.quality_score),
                  peak_gib=float(top.peak_gib), why=why)
    return result


COMPARE_COLUMNS = ["weights", "rank", "config", "model_id", "family", "quality_score", "success_rate", "coverage",
                   "fact_recall", "hallucination_rate", "genericness", "specificity", "staticness", "distinct_2",
                   "bleu_4", "rouge_l", "cider", "peak_gib", "memory_after_load_bytes", "load_s",
                   "compute_per_video_s", "n_components", "components", "fits_budget", "excluded_reason", "run"]


def comparison_table(ranking: "pd.DataFrame") -> "pd.DataFrame":
    """The columns a team compares, in a fixed order (those a run lacks are left out)."""
    return ranking[[c for c in COMPARE_COLUMNS if c in ranking]]
