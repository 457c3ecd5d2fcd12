"""Figures for caption quality (matplotlib + seaborn); each returns its Figure for saving."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Sequence

from workbench.plots import set_theme, use_figure_fonts
from workbench.units import printable

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from matplotlib.figure import Figure


def _evenly(n: int, limit: int) -> list[int]:
    """Up to `limit` row positions spread evenly over n rows, first and last included.

    >>> _evenly(10, 4)
    [0, 3, 6, 9]
    >>> _evenly(3, 8)
    [0, 1, 2]
    """
    if n <= limit:
        return list(range(n))
    return sorted({round(i * (n - 1) / (limit - 1)) for i in range(limit)})


def timeline_view(table: "pd.DataFrame", thumbnails: Sequence["np.ndarray"], windows: "pd.DataFrame | None" = None,
                  max_rows: int = 16, width_in: float = 12.0, wrap: int = 90) -> "Figure":
    """Each window's sampled frame beside its caption (and, for probe videos, the reference and the grounding).

    `table` is the timeline table, `windows` the per-window metrics (report.per_window) or None. Long
    timelines show `max_rows` windows spread evenly over the video.
    """
    import matplotlib.pyplot as plt

    use_figure_fonts()  # captions may be in any script
    picks = _evenly(len(table), max_rows)
    n = max(1, len(picks))
    fig, axes = plt.subplots(n, 2, figsize=(width_in, 1.25 * n + 0.6), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 5]})
    for row_axes, position in zip(axes, picks):
        image_ax, text_ax = row_axes
        for ax in row_axes:
            ax.axis("off")
        row = table.iloc[position]
        if position < len(thumbnails):
            image_ax.imshow(thumbnails[position])
        image_ax.set_title(f"{row.start_s:.1f}-{row.end_s:.1f} s", fontsize=8)
        caption = row.caption if isinstance(row.caption, str) and row.caption else f"({row.status})"
        lines = [textwrap.shorten(caption, wrap * 2, placeholder=" ...")]
        colour = "black"
        if windows is not None and position < len(windows):
            extra = windows.iloc[position]
            if not extra["usable"]:
                colour = "firebrick"
                lines[0] += f"   [not usable: {extra['degeneration'] or row.status}]"
            if "reference" in windows:
                lines.append(f"truth: {extra['reference']}")
                lines.append(f"mentioned {extra['n_mentioned']}/{extra['n_facts']} facts"
                             + (f"; hallucinated {extra['hallucinated']}" if extra["hallucinated"] else ""))
        wrapped = [textwrap.fill(printable(line), wrap) for line in lines]  # tiny twins write byte tokens
        text_ax.text(0, 0.95, wrapped[0], va="top", ha="left", fontsize=8.5, color=colour, wrap=True,
                     transform=text_ax.transAxes)
        if len(wrapped) > 1:
            text_ax.text(0, 0.45, "\n".join(wrapped[1:]), va="top", ha="left", fontsize=7.5, color="dimgray",
                         transform=text_ax.transAxes)
    shown = "" if len(picks) == len(table) else f" ({len(picks)} of {len(table)} windows shown)"
    fig.suptitle(f"timeline: sampled frame and caption per window{shown}", fontsize=10)
    fig.tight_layout()
    return fig


def metric_bars(metric_table: "pd.DataFrame") -> "Figure":
    """Horizontal bars of the 0-1 summary metrics, coloured by which way is better."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    set_theme("whitegrid")
    shown = metric_table[metric_table["value"].between(0, 1) & metric_table["better"].isin(["higher", "lower"])]
    fig, ax = plt.subplots(figsize=(8, 0.35 * max(3, len(shown)) + 1))
    if shown.empty:
        ax.text(0.5, 0.5, "no metric to show", ha="center", va="center")
        return fig
    sns.barplot(shown, y="metric", x="value", hue="better", dodge=False, ax=ax,
                palette={"higher": "tab:green", "lower": "tab:red"})
    ax.set_xlim(0, 1)
    ax.set_xlabel("value (0-1)")
    ax.set_ylabel("")
    ax.set_title("caption quality: green bars are better high, red bars better low")
    fig.tight_layout()
    return fig


def per_window_chart(windows: "pd.DataFrame", table: "pd.DataFrame") -> "Figure":
    """Per window: latency, caption length, genericness and (probe videos) facts mentioned and hallucinated."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    set_theme("whitegrid")
    data = windows.assign(latency_s=table["latency_s"].to_numpy())
    panels = [("latency_s", "latency (s)"), ("length", "caption words"), ("genericness", "genericness")]
    if "n_facts" in data:
        data["fact_recall"] = data["n_mentioned"] / data["n_facts"].where(data["n_facts"] > 0)
        panels += [("fact_recall", "facts mentioned (share)"), ("n_hallucinated", "hallucinated colours/shapes")]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 1.6 * len(panels) + 0.5), sharex=True, squeeze=False)
    for ax, (column, label) in zip(axes[:, 0], panels):
        values = pd.to_numeric(data[column], errors="coerce")
        sns.lineplot(x=data["start_s"], y=values, marker="o", ax=ax)
        ax.set_ylabel(label, fontsize=8)
    axes[-1, 0].set_xlabel("window start (s)")
    fig.suptitle("per window", fontsize=10)
    fig.tight_layout()
    return fig


def compare_scatter(ranking: "pd.DataFrame", budget_gib: float) -> "Figure":
    """Quality score against peak memory per configuration, the budget as a line, the winner ringed."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    set_theme("whitegrid")
    fig, ax = plt.subplots(figsize=(9, 5))
    data = ranking.dropna(subset=["peak_gib", "quality_score"])
    if data.empty:
        ax.text(0.5, 0.5, "no run with a peak memory and a score", ha="center", va="center")
        return fig
    from workbench.units import GiB, byte_unit, format_number

    unit, size = byte_unit(list(data["peak_gib"] * GiB) + [budget_gib * GiB])  # points and budget in one unit
    data = data.assign(peak=data["peak_gib"] * GiB / size)
    sns.scatterplot(data, x="peak", y="quality_score", hue="model_id", style="fits_budget",
                    style_order=[True, False], s=90, ax=ax)
    for row in data.itertuples():
        ax.annotate(row.config, (row.peak, row.quality_score), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")
    budget = budget_gib * GiB / size
    ax.axvline(budget, color="firebrick", linestyle="--", label=f"budget {format_number(budget)} {unit}")
    top = data[data["rank"] == 1]
    if len(top):
        ax.scatter(top["peak"], top["quality_score"], s=400, facecolors="none", edgecolors="black",
                   linewidths=1.5, label="recommended (rank 1 of its kind of weights)")
    ax.set_xlabel(f"peak memory while captioning ({unit})")
    ax.set_ylabel("quality score (0-1)")
    ax.set_title("quality against memory: configurations right of the line exceed the budget")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def compare_metrics(table: "pd.DataFrame", metrics: Sequence[str]) -> "Figure":
    """One bar panel per metric, a bar per configuration."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    set_theme("whitegrid")
    shown = [m for m in metrics if m in table and table[m].notna().any()]
    ncols = 3
    nrows = max(1, -(-len(shown) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(13, 2.6 * nrows + 0.5), squeeze=False)
    for ax in axes.flat[len(shown):]:
        ax.axis("off")
    for ax, metric in zip(axes.flat, shown):
        sns.barplot(table, x=metric, y="config", hue="model_id", dodge=False, ax=ax, legend=False)
        ax.set_title(metric, fontsize=9)
        ax.set_ylabel("")
        ax.set_xlabel("")
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle("caption quality, memory and speed per configuration", fontsize=10)
    fig.tight_layout()
    return fig
