"""Pointing game: does a caption's object word attend to that object? (needs a probe video's ground truth)

For each generated colour or shape word that names exactly one object on screen in the captioned window (a
colour followed by a shape, "red circle", names the object with both; a lone word must be unique), the word's
attention over the visual tokens is mapped to the per-frame grids (`TokenLayout.spatial`), summed over the
window's frames (a Qwen temporal patch covers two frames), and its peak cell is a hit when it overlaps the
object's box in one of those frames: the object's centre at the frame's time (from the probe generator's
tracks, the same that drew the video) +- its radius. Chance is the share of cells that overlap the box, what a
peak placed at random would score. Scores are given per layer (head-averaged), for the mean over layers, and
for the mean over layers of the head-max, so a reader sees where in the model the pointing happens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.quality import metrics

if TYPE_CHECKING:
    import pandas as pd

    from workbench.attention.aggregate import AttentionMaps


@dataclass(frozen=True)
class ObjectWord:
    word: int  # index of the generated token in maps.capture.words
    text: str
    kind: str  # colour or shape
    track: str  # the ground-truth object it names
    boxes: tuple[tuple[float, float, float, float], ...]  # per captioned frame: (x0, y0, x1, y1) normalized


def object_boxes(truth: dict[str, Any], times_s: np.ndarray) -> dict[str, list[tuple[str, str, tuple]]]:
    """Per object present: (colour, shape, boxes) with one normalized box per frame time (from the tracks)."""
    from workbench import probe_videos as pv

    tracks = pv.scenario_tracks(truth["scenario"], truth["seed"], truth["duration_s"])
    width, height = truth["width"], truth["height"]
    radius = pv._OBJECT_RADIUS * height
    found: dict[str, list] = {}
    for track in tracks:
        present = [t for t in times_s if track.present(float(t))]
        if len(present) != len(times_s):
            continue  # appears or vanishes inside the window: no single box to point at
        boxes = []
        for t in times_s:
            x, y = track.xy_at(float(t))
            boxes.append(((x * width - radius) / width, (y * height - radius) / height,
                          (x * width + radius) / width, (y * height + radius) / height))
        colours = {track.colour_at(float(t)) for t in times_s}
        if len(colours) != 1:
            continue  # recoloured inside the window
        found[track.name] = [(colours.pop(), track.shape, tuple(boxes))]
    return found


def object_words(maps: "AttentionMaps", truth: dict[str, Any] | None) -> list[ObjectWord]:
    """The caption's colour and shape words that name exactly one object present in every captioned frame
    (none without a probe video's ground truth)."""
    if not truth or "scenario" not in truth:
        return []
    objects = object_boxes(truth, maps.timestamps_s)
    words = maps.capture.words
    texts = [metrics.tokenize(t) for t in words["text"]]
    out: list[ObjectWord] = []
    for i, tokens in enumerate(texts):
        if len(tokens) != 1:
            continue
        token = tokens[0]
        colour = metrics.COLOURS.get(token)
        shape = metrics.SHAPES.get(token)
        if colour is None and shape is None:
            continue
        # a colour followed by a shape (or a shape after a colour) names the pair
        neighbour = next((t[0] for t in texts[i + 1:] if t), None) if colour else \
            next((t[0] for t in reversed(texts[:i]) if t), None)
        pair_shape = metrics.SHAPES.get(neighbour or "") if colour else shape
        pair_colour = colour if colour else metrics.COLOURS.get(neighbour or "")
        matches = [name for name, [(c, s, _)] in objects.items()
                   if (pair_colour is None or c == pair_colour) and (pair_shape is None or s == pair_shape)]
        if len(matches) == 1:
            name = matches[0]
            out.append(ObjectWord(i, token, "colour" if colour else "shape", name, objects[name][0][2]))
    return out


def _cell_boxes(maps: "AttentionMaps") -> np.ndarray:
    """(rows, cols, 4) normalized boxes of the layout's cells in the source frame."""
    layout = maps.layout
    x0, y0, x1, y1 = layout.box
    xs = np.linspace(x0, x1, layout.grid_cols + 1)
    ys = np.linspace(y0, y1, layout.grid_rows + 1)
    cells = np.zeros((layout.grid_rows, layout.grid_cols, 4))
    for r in range(layout.grid_rows):
        for c in range(layout.grid_cols):
            cells[r, c] = (xs[c], ys[r], xs[c + 1], ys[r + 1])
    return cells


def _overlaps(cells: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    return ((cells[..., 0] < box[2]) & (cells[..., 2] > box[0]) & (cells[..., 1] < box[3]) & (cells[..., 3] > box[1]))


def score_maps(maps: "AttentionMaps", truth: dict[str, Any] | None) -> "pd.DataFrame":
    """One row per (object word, aggregation): hit, chance, peak cell; aggregations are 'layer N' (head mean),
    'layer mean' (head mean) and 'layer mean, head max'."""
    import pandas as pd

    words = object_words(maps, truth)
    if not words:
        return pd.DataFrame(columns=["word", "text", "kind", "object", "aggregation", "hit", "chance", "peak_row",
                                     "peak_col"])
    cells = _cell_boxes(maps)
    attention = maps.capture.attention.astype(np.float32)  # (W, L, H, V)
    selections: dict[str, np.ndarray] = {f"layer {layer}": attention[:, li].mean(axis=1)
                                         for li, layer in enumerate(maps.capture.layers)}
    selections["layer mean"] = attention.mean(axis=(1, 2))
    if attention.shape[2] > 1:
        selections["layer mean, head max"] = attention.max(axis=2).mean(axis=1)
    rows = []
    for word in words:
        near = np.zeros(cells.shape[:2], dtype=bool)
        for box in word.boxes:
            near |= _overlaps(cells, box)
        chance = float(near.mean())
        for name, selected in selections.items():
            grid = maps.layout.spatial(selected[word.word]).sum(axis=0)  # frames summed: (rows, cols)
            r, c = np.unravel_index(int(np.argmax(grid)), grid.shape)
            rows.append({"word": word.word, "text": word.text, "kind": word.kind, "object": word.track,
                         "aggregation": name, "hit": bool(near[r, c]), "chance": chance,
                         "peak_row": int(r), "peak_col": int(c)})
    return pd.DataFrame(rows)


def summarize(rows: "pd.DataFrame") -> "pd.DataFrame":
    """Per aggregation: object words scored, pointing score (share of hits), chance (mean over the words)."""
    if rows.empty:
        import pandas as pd

        return pd.DataFrame(columns=["aggregation", "words", "score", "chance"])
    table = rows.groupby("aggregation", sort=False).agg(words=("hit", "size"), score=("hit", "mean"),
                                                        chance=("chance", "mean")).reset_index()
    return table
