"""Attention figures: heatmaps over a strip of the sampled frames, a per-word timeline, a layer x frame map;
and an ipywidgets explorer (word, layer, head) that redraws the same figures in JupyterLab."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.attention import aggregate

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from workbench.attention.aggregate import AttentionMaps


def _word_label(maps: "AttentionMaps", word: int | None) -> str:
    if word is None:
        return "whole caption"
    from workbench.plots import use_figure_fonts
    from workbench.units import printable

    use_figure_fonts()  # a word may be in any script
    return f"word {word} {printable(repr(maps.capture.words.loc[word, 'text']))}"  # byte tokens read as <0x02>


def frame_strip(maps: "AttentionMaps", word: int | None = None, layer: int | str = "mean",
                head: int | str = "mean", max_frames: int = 16) -> "Figure":
    """The sampled frames in a row, each overlaid with its attention grid (one colour scale for all), titled
    with its time and its share of the visual attention."""
    import matplotlib.pyplot as plt

    grids = aggregate.spatial_maps(maps, word, layer, head)  # (T, rows, cols)
    frame_level = aggregate.frame_table(maps, layer, head)
    share = (frame_level.groupby("frame")["share"].mean().to_numpy() if word is None
             else frame_level.query("word == @word")["share"].to_numpy())
    picks = np.linspace(0, len(grids) - 1, min(max_frames, len(grids))).round().astype(int)
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    # Colour by the cell's attention relative to a uniform spread over every cell of the clip (1 = uniform);
    # a cell is drawn more opaque the more it exceeds uniform, so frames stay visible where nothing stands out.
    uniform = float(grids.sum()) / grids.size if grids.size else 1.0
    relative = grids / uniform if uniform > 0 else grids
    top = max(2.0, float(relative.max()))
    norm = Normalize(vmin=0.0, vmax=top)
    cmap = colormaps["magma"]
    fig, axes = plt.subplots(1, len(picks), figsize=(2.2 * len(picks), 2.4), squeeze=False)
    height, width = maps.frames.shape[1:3]
    x0, y0, x1, y1 = maps.layout.box
    for ax, f in zip(axes[0], picks):
        ax.imshow(maps.frames[f], extent=(0, width, height, 0))
        overlay = cmap(norm(relative[f]))
        overlay[..., 3] = 0.75 * np.clip((relative[f] - 1.0) / (top - 1.0), 0.0, 1.0)  # at or below uniform: clear
        ax.imshow(overlay, interpolation="nearest", extent=(x0 * width, x1 * width, y1 * height, y0 * height))
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
        ax.set_title(f"{maps.timestamps_s[f]:.1f}s · {share[f]:.0%}", fontsize=8)
        ax.axis("off")
    if len(picks):
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes[0].tolist(), fraction=0.02, pad=0.01,
                           label="x uniform")
        bar.ax.axhline(1.0, color="cyan", linewidth=1.5)  # the uniform level: cells at or below it are not tinted
    fig.suptitle(f"{_word_label(maps, word)}; layer {layer}, head {head}; patch cells total "
                 f"{grids.sum():.2f} of the attention; {aggregate.frame_focus(share, maps.timestamps_s)}",
                 fontsize=9)
    return fig


def word_timeline(maps: "AttentionMaps", layer: int | str = "mean", head: int | str = "mean",
                  max_words: int = 16) -> "Figure":
    """One bar chart per generated word: its share of visual attention on each sampled frame (by time)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    table = aggregate.frame_table(maps, layer, head)
    words = maps.capture.words["word"].to_numpy()[:max_words]
    cols = min(4, max(1, len(words)))
    rows = -(-len(words) // cols) if len(words) else 1
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 1.9 * rows), squeeze=False, sharey=True)
    for ax in axes.ravel()[len(words):]:
        ax.axis("off")
    for ax, word in zip(axes.ravel(), words):
        data = table[table["word"] == word]
        sns.barplot(data=data, x="time_s", y="share", ax=ax, color="tab:blue")
        ax.set_title(_word_label(maps, int(word)), fontsize=8)
        ax.set_xlabel("frame time (s)", fontsize=7)
        ax.set_ylabel("share of visual attention", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_xticks(ax.get_xticks())
        ax.set_xticklabels([f"{t:.1f}" for t in sorted(data["time_s"].unique())], rotation=0)  # a turned 8 reads ∞
    fig.suptitle(f"Where each word looked (layer {layer}, head {head})", fontsize=9)
    fig.tight_layout()
    return fig


def layer_frame_heatmap(maps: "AttentionMaps", head: int | str = "mean") -> "Figure":
    """Layer x frame: each captured layer's share of visual attention per frame, over the whole caption."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    table = aggregate.layer_frame_table(maps, head)
    grid = table.pivot(index="layer", columns="time_s", values="share")
    relative = grid * grid.shape[1]  # 1 = the uniform share 1/T: white; more red, less blue
    reach = max(1.0, float((relative - 1.0).abs().max().max()))
    fig, ax = plt.subplots(figsize=(max(4, 0.45 * grid.shape[1] + 2), max(2.2, 0.3 * grid.shape[0] + 1.2)))
    sns.heatmap(relative, ax=ax, cmap="RdBu_r", center=1.0, vmin=max(0.0, 1.0 - reach), vmax=1.0 + reach,
                cbar_kws={"label": "x uniform share"},
                xticklabels=[f"{t:.1f}" for t in grid.columns])
    ax.set_xlabel("frame time (s)")
    ax.tick_params(axis="x", labelrotation=0)
    ax.set_ylabel("LLM layer")
    ax.set_title(f"Visual attention by layer and frame (head {head}, mean over words)\n"
                 f"share relative to uniform 1/{grid.shape[1]}: white = uniform", fontsize=9)
    fig.tight_layout()
    return fig


def explorer(maps: "AttentionMaps") -> Any:
    """ipywidgets: choose word, layer and head; redraws the frame strip and the word's bar chart."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    words = maps.capture.words
    word_options = [("whole caption", -1)] + [(f"{w}: {t!r}", int(w)) for w, t in zip(words["word"], words["text"])]
    word = widgets.Dropdown(options=word_options, value=-1, description="word")
    layer = widgets.Dropdown(options=["mean", *maps.capture.layers], value="mean", description="layer")
    n_heads = maps.capture.attention.shape[2]
    head = widgets.Dropdown(options=["mean", *range(n_heads)] if n_heads > 1 else ["mean"], value="mean",
                            description="head")
    out = widgets.Output()

    def redraw(*_: Any) -> None:
        with out:
            out.clear_output(wait=True)
            chosen = None if word.value == -1 else int(word.value)
            fig = frame_strip(maps, chosen, layer.value, head.value)
            display(fig)
            plt.close(fig)
            table = aggregate.frame_table(maps, layer.value, head.value)
            if chosen is not None:
                display(table[table["word"] == chosen][["frame", "time_s", "mass", "share"]])

    for control in (word, layer, head):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([word, layer, head]), out])


def pointing_figure(maps: "AttentionMaps", words: "Any", word: int | None = None,
                    aggregation: str = "layer mean") -> "Figure":
    """One object word's attention on the captioned frames, with its object's ground-truth box (green) and
    the attention peak's cell (white: dashed when it misses the box). `words`: pointing.object_words(...)."""
    import matplotlib.pyplot as plt
    from matplotlib import patheffects
    from matplotlib.patches import Rectangle

    from workbench.attention import pointing

    outline = [patheffects.Stroke(linewidth=3.5, foreground="black"), patheffects.Normal()]

    if not words:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.text(0.5, 0.5, "no caption word names exactly one object on screen", ha="center", va="center")
        ax.axis("off")
        return fig
    chosen = next((w for w in words if w.word == word), words[0])
    attention = maps.capture.attention.astype(np.float32)
    selected = (attention.mean(axis=(1, 2)) if aggregation == "layer mean"
                else attention[:, maps.capture.layers.index(int(aggregation.split()[-1]))].mean(axis=1))
    grids = maps.layout.spatial(selected[chosen.word])  # (T, rows, cols)
    summed = grids.sum(axis=0)
    r, c = np.unravel_index(int(np.argmax(summed)), summed.shape)
    cells = pointing._cell_boxes(maps)
    height, width = maps.frames.shape[1:3]
    x0, y0, x1, y1 = maps.layout.box
    fig, axes = plt.subplots(1, len(grids), figsize=(3.2 * len(grids), 2.8), squeeze=False)
    hit = any(pointing._overlaps(cells, box)[r, c] for box in chosen.boxes)
    for f, ax in enumerate(axes[0]):
        ax.imshow(maps.frames[f], extent=(0, width, height, 0))
        ax.imshow(grids[f], cmap="magma", alpha=0.55, interpolation="nearest", vmin=0, vmax=float(grids.max()) or 1.0,
                  extent=(x0 * width, x1 * width, y1 * height, y0 * height))
        bx0, by0, bx1, by1 = chosen.boxes[f]
        ax.add_patch(Rectangle((bx0 * width, by0 * height), (bx1 - bx0) * width, (by1 - by0) * height,
                               fill=False, edgecolor="lime", linewidth=2, path_effects=outline))
        cx0, cy0, cx1, cy1 = cells[r, c]
        ax.add_patch(Rectangle((cx0 * width, cy0 * height), (cx1 - cx0) * width, (cy1 - cy0) * height,
                               fill=False, edgecolor="white", linewidth=1.5, linestyle="-" if hit else "--",
                               path_effects=outline))  # a dark outline keeps light lines visible on light frames
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
        ax.set_title(f"{maps.timestamps_s[f]:.2f}s", fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{chosen.kind} word {chosen.text!r} -> {chosen.track} (green: ground-truth box); "
                 f"peak cell {'inside' if hit else 'outside'} the box ({aggregation})", fontsize=9)
    return fig
