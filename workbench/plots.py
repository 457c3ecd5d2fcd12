"""Figures shared by the notebooks (matplotlib + seaborn); each returns its Figure for saving."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from matplotlib.figure import Figure


def set_theme(style: str = "whitegrid") -> None:
    """seaborn's theme with the figures' fonts (`use_figure_fonts`)."""
    import seaborn as sns

    sns.set_theme(style=style)
    use_figure_fonts()


def use_figure_fonts() -> None:
    """Draw text with `units.figure_fonts` (DejaVu Sans, then Noto Sans CJK for Chinese, Japanese, Korean).

    Set globally: matplotlib picks a text's font when the figure is drawn, which may be after it is made. The
    fonts are named in font.family, not through the generic "sans-serif": matplotlib falls back glyph by glyph
    along the family list, but takes only the first font a generic name finds.
    """
    import matplotlib

    from workbench.units import figure_fonts

    matplotlib.rcParams["font.family"] = figure_fonts()


def contact_sheet(frames: "np.ndarray", timestamps_s: Sequence[float], labels: Sequence[str] | None = None,
                  ncols: int = 4, width_in: float = 12.0) -> "Figure":
    """Sampled frames (T,H,W,3 uint8) in a grid, each titled with its timestamp (and an optional label)."""
    import matplotlib.pyplot as plt

    n = len(frames)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    aspect = frames.shape[1] / frames.shape[2] if n else 0.75
    fig, axes = plt.subplots(nrows, ncols, figsize=(width_in, width_in / ncols * aspect * nrows + 0.4 * nrows),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(frames[i])
        title = f"{timestamps_s[i]:.2f} s"
        if labels is not None:
            title += f"\n{labels[i]}"
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def object_timeline(table: "pd.DataFrame") -> "Figure":
    """Ground-truth presence of each probe object per second, coloured by its colour at that second.

    `table` is tidy: one row per (second, object) with columns second, object, colour.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    set_theme("whitegrid")
    objects = list(dict.fromkeys(table["object"]))
    fig, ax = plt.subplots(figsize=(10, 0.6 * max(2, len(objects)) + 1))
    for row in table.itertuples():
        ax.barh(objects.index(row.object), 1.0, left=row.second, color=_named_colour(row.colour),
                edgecolor="black", linewidth=1.0)
    ax.set_facecolor("0.8")  # the probe videos' grey: white and yellow objects stand out as they do on screen
    ax.set_yticks(range(len(objects)), objects)
    ax.set_xlabel("second")
    ax.set_title("ground truth: objects present per second (bar colour = object colour)")
    fig.tight_layout()
    return fig


def _named_colour(name: str) -> str:
    return {"grey": "grey", "gray": "grey"}.get(name, name)


def memory_after_load(table: "pd.DataFrame") -> "Figure":
    """Bars of measured memory after load per model (hue quantization), predicted weights as dots."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from workbench.units import byte_unit

    ok = table[table["status"] == "ok"].copy()
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * ok["model_id"].nunique() + 3), 4))
    if ok.empty:
        ax.text(0.5, 0.5, "no model loaded", ha="center", va="center")
        return fig
    unit, size = byte_unit(list(ok["memory_bytes"]) + list(ok["predicted_weight_bytes"]))
    ok[f"measured ({unit})"] = ok["memory_bytes"] / size
    ok[f"predicted ({unit})"] = ok["predicted_weight_bytes"] / size
    sns.barplot(ok, x="model_id", y=f"measured ({unit})", hue="quantization", ax=ax)
    sns.stripplot(ok, x="model_id", y=f"predicted ({unit})", hue="quantization", dodge=True, marker="D",
                  palette={q: "black" for q in ok["quantization"].unique()}, legend=False, ax=ax, size=5)
    ax.set_ylabel(f"memory after load ({unit})")
    ax.set_title("memory after load: bars measured, black diamonds predicted from the architecture")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig
