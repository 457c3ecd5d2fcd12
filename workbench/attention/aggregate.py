"""From captured attention to tidy tables: mass per frame over time, per word, per layer and head.

Attention on visual tokens is a share of each query's total attention (the rest goes to text tokens), so
tables carry both the raw share (`mass`) and, where a distribution over frames is meant, the share of the
visual part (`share`, summing to 1 over frames for each word).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.models.layout import TokenLayout

if TYPE_CHECKING:
    import pandas as pd

    from workbench.attention.capture import CaptureResult


@dataclass
class AttentionMaps:
    """A capture with its token layout and the frames the model saw (T,H,W,3 uint8, timestamps in s)."""

    capture: "CaptureResult"
    layout: TokenLayout
    frames: np.ndarray
    timestamps_s: np.ndarray
    model_id: str = ""

    def select(self, layer: int | str = "mean", head: int | str = "mean") -> np.ndarray:
        """(words, V) attention for one layer (its model index) or the mean over captured layers, and one
        head or the mean over heads."""
        attention = self.capture.attention.astype(np.float32)  # (W, L, H', V)
        if layer == "mean":
            attention = attention.mean(axis=1)
        else:
            if layer not in self.capture.layers:
                raise ValueError(f"layer {layer} was not captured; captured: {self.capture.layers}")
            attention = attention[:, self.capture.layers.index(int(layer))]
        if head == "mean":
            return attention.mean(axis=1)
        if attention.shape[1] == 1:
            raise ValueError("heads were averaged during capture (heads='mean'); capture with heads='all'")
        return attention[:, int(head)]


def frame_table(maps: AttentionMaps, layer: int | str = "mean", head: int | str = "mean") -> "pd.DataFrame":
    """One row per (word, frame): word, text, frame, time_s, mass (share of all attention), share (of
    the visual part)."""
    import pandas as pd

    per_frame = maps.layout.frame_mass(maps.select(layer, head))  # (W, T)
    totals = per_frame.sum(axis=1, keepdims=True)
    share = np.divide(per_frame, totals, out=np.zeros_like(per_frame), where=totals > 0)
    words = maps.capture.words
    n_words, n_frames = per_frame.shape
    return pd.DataFrame({
        "word": np.repeat(words["word"].to_numpy(), n_frames),
        "text": np.repeat(words["text"].to_numpy(), n_frames),
        "frame": np.tile(np.arange(n_frames), n_words),
        "time_s": np.tile(maps.timestamps_s, n_words),
        "mass": per_frame.ravel(),
        "share": share.ravel(),
    })


def caption_frame_profile(maps: AttentionMaps, layer: int | str = "mean", head: int | str = "mean"
                          ) -> "pd.DataFrame":
    """Attention per frame over the whole caption (mean over words): frame, time_s, mass, share."""
    table = frame_table(maps, layer, head)
    profile = table.groupby(["frame", "time_s"], as_index=False)[["mass", "share"]].mean()
    return profile


def layer_frame_table(maps: AttentionMaps, head: int | str = "mean") -> "pd.DataFrame":
    """Share of visual attention per (layer, frame), averaged over the caption's words."""
    import pandas as pd

    rows = []
    for layer in maps.capture.layers:
        profile = caption_frame_profile(maps, layer, head)
        profile.insert(0, "layer", layer)
        rows.append(profile)
    return pd.concat(rows, ignore_index=True)


def head_table(maps: AttentionMaps) -> "pd.DataFrame":
    """Per (layer, head): the visual share of attention and the frame it favours most (needs heads='all')."""
    import pandas as pd

    attention = maps.capture.attention.astype(np.float32)  # (W, L, H, V)
    rows = []
    for li, layer in enumerate(maps.capture.layers):
        for head in range(attention.shape[2]):
            per_frame = maps.layout.frame_mass(attention[:, li, head]).mean(axis=0)
            rows.append({"layer": layer, "head": head if attention.shape[2] > 1 else "mean",
                         "visual_mass": float(per_frame.sum()), "top_frame": int(per_frame.argmax()),
                         "top_frame_share": float(per_frame.max() / per_frame.sum()) if per_frame.sum() else 0.0})
    return pd.DataFrame(rows)


def word_summary(maps: AttentionMaps, layer: int | str = "mean", head: int | str = "mean") -> "pd.DataFrame":
    """Per word: its text, visual mass, the frame it looked at most and that frame's time."""
    table = frame_table(maps, layer, head)
    top = table.loc[table.groupby("word")["share"].idxmax(), ["word", "text", "frame", "time_s", "share"]]
    mass = table.groupby("word")["mass"].sum().rename("visual_mass")
    return top.rename(columns={"frame": "top_frame", "time_s": "top_time_s", "share": "top_share"}).merge(
        mass, on="word").reset_index(drop=True)


def spatial_maps(maps: AttentionMaps, word: int | None = None, layer: int | str = "mean",
                 head: int | str = "mean") -> np.ndarray:
    """(frames, rows, cols) attention grids for one word, or the mean over the caption (word=None)."""
    attention = maps.select(layer, head)
    if word is None:
        selected = attention.mean(axis=0)
    else:
        if not 0 <= word < attention.shape[0]:
            raise ValueError(f"word {word} does not exist: the caption has {attention.shape[0]} tokens")
        selected = attention[word]
    return maps.layout.spatial(selected)


def summary(maps: AttentionMaps) -> dict[str, Any]:
    """Numbers a reader needs beside the figures (all computed from the capture)."""
    capture = maps.capture
    profile = caption_frame_profile(maps)
    return {
        "model": maps.model_id,
        "caption": capture.caption.text,
        "words": int(len(capture.words)),
        "visual_tokens": capture.n_visual,
        "frames": maps.layout.n_frames,
        "grid": f"{maps.layout.grid_rows}x{maps.layout.grid_cols}",
        "layout": maps.layout.description,
        "layers_captured": capture.layers,
        "heads": capture.heads,
        "mode": capture.mode,
        "kept_bytes": capture.kept_bytes,
        "eager_transient_bytes": capture.eager_transient_bytes,
        "mean_visual_mass": float(profile["mass"].sum()),
        "top_frame": int(profile.loc[profile["share"].idxmax(), "frame"]) if len(profile) else None,
        "frame_focus": frame_focus(profile["share"].to_numpy(), profile["time_s"].to_numpy()),
        "capture_seconds": capture.seconds,
    }


def frame_focus(shares: "np.ndarray", times_s: "np.ndarray", stands_out: float = 1.5) -> str:
    """In words, whether one frame drew more of the attention than the others: a frame stands out when its
    share is at least `stands_out` times the uniform share 1/T (shares: (T,) summing to about 1).

    >>> frame_focus(np.full(8, 0.125), np.arange(8) * 0.5)
    'no frame stands out: every frame gets 12.5% ± 0.0 points (uniform would be 12.5%)'
    >>> frame_focus(np.array([0.1, 0.6, 0.3]), np.array([0.0, 1.0, 2.0]))
    'frame 1 (1 s) stands out: 60% of the attention, 1.8x uniform (33.3%)'
    """
    from workbench.units import format_number, format_percent

    shares = np.asarray(shares, dtype=float)
    if not len(shares) or not np.isfinite(shares).all() or shares.sum() <= 0:
        return "no attention on the frames to compare"
    shares = shares / shares.sum()
    uniform = 1.0 / len(shares)
    top = int(shares.argmax())
    if shares[top] < stands_out * uniform:
        spread = 100 * float(np.abs(shares - uniform).max())
        return (f"no frame stands out: every frame gets {format_percent(uniform)} ± {spread:.1f} points "
                f"(uniform would be {format_percent(uniform)})")
    return (f"frame {top} ({format_number(float(times_s[top]))} s) stands out: {format_percent(shares[top])} of "
            f"the attention, {shares[top] / uniform:.1f}x uniform ({format_percent(uniform)})")
