"""Figures of notebook 02 (seaborn); each returns its Figure for `run.save_figure`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.plots import set_theme

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def _budget_label(gib: float) -> str:
    from workbench.units import format_gib

    return format_gib(gib)


def peak_vs_frames(table: "pd.DataFrame", budgets_gib: list[float]) -> "Figure":
    """Peak memory against frames: hue quantization, style attention, one panel per frame size / pixel cap.

    Solid markers: measured (where a configuration was measured); lines: predicted.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    set_theme("whitegrid")
    data = table.copy()
    data["panel"] = data["frame_size"] + " / " + data["max_pixels"].map(lambda c: f"cap {c}" if c else "no cap")
    from workbench.units import GiB, byte_unit, format_number

    measured_bytes = list(data["peak_bytes"].dropna()) if "peak_bytes" in data else []
    unit, size = byte_unit(list(data["predicted_peak_bytes"]) + measured_bytes)  # axis and budgets share it
    data[f"predicted ({unit})"] = data["predicted_peak_bytes"].astype(float) / size
    panels = list(dict.fromkeys(data["panel"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False, sharey=True)
    for ax, panel in zip(axes.flat, panels):
        part = data[data["panel"] == panel]
        sns.lineplot(part, x="frames", y=f"predicted ({unit})", hue="quantization", style="attn_implementation",
                     markers=False, ax=ax, legend=ax is axes.flat[0])
        if "peak_bytes" in part and part["peak_bytes"].notna().any():
            measured = part[part["peak_bytes"].notna()].copy()
            measured[f"measured ({unit})"] = measured["peak_bytes"].astype(float) / size
            sns.scatterplot(measured, x="frames", y=f"measured ({unit})", hue="quantization",
                            style="attn_implementation", s=60, ax=ax, legend=False)
        for gib in budgets_gib:
            level = gib * GiB / size
            ax.axhline(level, color="black", linestyle=":", linewidth=1)
            ax.text(1.0, level, f"budget {format_number(level)} {unit} ", va="bottom", ha="right", fontsize=8,
                    transform=ax.get_yaxis_transform())
        ax.set_xscale("log", base=2)
        ticks = sorted(int(f) for f in part["frames"].unique())
        ax.set_xticks(ticks, [str(f) for f in ticks])  # frame counts as numbers, not powers
        ax.minorticks_off()
        if ax is axes.flat[0]:
            ax.legend(fontsize=7, loc="upper left", framealpha=0.6)
        ax.set_title(panel)
        ax.set_ylabel(f"peak memory ({unit})")
    fig.suptitle("peak memory vs frames (lines predicted, dots measured)")
    fig.tight_layout()
    return fig


def predicted_vs_measured(measured: "pd.DataFrame") -> "Figure":
    """Each measured configuration's predicted peak against its measured peak, with the y = x line."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    set_theme("whitegrid")
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ok = measured[(measured["status"] == "ok") & measured["peak_bytes"].notna()].copy()
    if ok.empty:
        ax.text(0.5, 0.5, "no measured configuration", ha="center", va="center", transform=ax.transAxes)
        return fig
    from workbench.units import byte_unit

    unit, size = byte_unit(list(ok["peak_bytes"]) + list(ok["predicted_peak_bytes"]))
    ok[f"measured ({unit})"] = ok["peak_bytes"].astype(float) / size
    ok[f"predicted ({unit})"] = ok["predicted_peak_bytes"].astype(float) / size
    sns.scatterplot(ok, x=f"measured ({unit})", y=f"predicted ({unit})", hue="quantization", style="attn_implementation",
                    size="frames", ax=ax)
    low = min(ok[f"measured ({unit})"].min(), ok[f"predicted ({unit})"].min()) * 0.95
    high = max(ok[f"measured ({unit})"].max(), ok[f"predicted ({unit})"].max()) * 1.05
    ax.plot([low, high], [low, high], color="black", linewidth=1, label="y = x")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    worst = ok["error_pct"].abs().max()
    ax.set_title(f"predicted vs measured peak (worst error {worst:.1f}%)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def breakdown_bars(breakdown: "pd.DataFrame") -> "Figure":
    """Predicted components of each configuration's peak, stacked; one panel per configuration group."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from workbench.memory.predictor import COMPONENTS

    set_theme("whitegrid")
    configs = list(dict.fromkeys(breakdown["config"]))
    ncols = min(4, len(configs))
    nrows = -(-len(configs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.6 * nrows), squeeze=False, sharey=True)
    from workbench.units import byte_unit

    unit, size = byte_unit(breakdown.groupby(["config", "frames"])["bytes"].sum())  # one unit for every panel
    present = [c for c in COMPONENTS if c in set(breakdown["component"])]
    colours = dict(zip(present, sns.color_palette("tab20", len(present))))
    for ax, config in zip(axes.flat, configs):
        part = breakdown[breakdown["config"] == config]
        wide = part.pivot_table(index="frames", columns="component", values="bytes", aggfunc="sum").fillna(0)
        wide = wide[[c for c in present if c in wide.columns]] / size
        wide.plot.bar(stacked=True, ax=ax, color=[colours[c] for c in wide.columns], legend=False, width=0.8)
        ax.set_title(config, fontsize=9)
        ax.set_ylabel(f"{unit} at the peak phase")
    for ax in list(axes.flat)[len(configs):]:
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[c]) for c in present]
    fig.legend(handles, present, loc="lower center", ncol=min(7, len(present)), fontsize=8)
    fig.suptitle("where the peak goes (predicted, by component)")
    fig.tight_layout(rect=(0, 0.08, 1, 0.96))
    return fig


def frontier_heatmap(frontiers: "pd.DataFrame") -> "Figure":
    """Frames that fit (quantization x attention), one panel per budget and pixel setting."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    set_theme("white")
    data = frontiers.copy()
    data["panel"] = (data["source"] + " · " + data["budget_gib"].map(_budget_label) + " · "
                     + data["frame_size"] + " " + data["max_pixels"].map(lambda c: f"cap {c}" if c else "no cap"))
    panels = list(dict.fromkeys(data["panel"]))
    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.8 * ncols, 3.0 * nrows), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        wide = data[data["panel"] == panel].pivot_table(index="quantization", columns="attn_implementation",
                                                        values="max_frames", aggfunc="max")
        sns.heatmap(wide, annot=True, fmt=".0f", cmap="viridis", cbar=False, ax=ax, vmin=0)
        ax.set_title(panel, fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle("most frames that fit the budget")
    fig.tight_layout()
    return fig
