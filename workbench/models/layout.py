"""Where each visual token came from: frame, row and column of a per-frame grid (pure numpy, no torch).

A `TokenLayout` maps the V visual tokens of one request (in the order they appear in the prompt) onto
cells: one spatial grid of `grid_rows x grid_cols` per sampled frame, one "whole frame" cell per frame (for
tokens with no place inside the frame, e.g. a kept CLS token), and one "whole clip" cell (e.g.
LLaVA-OneVision's newline token after the video). The mapping is a sparse matrix stored as COO triplets
(`token`, `cell`, `weight`): a token can cover several cells (a Qwen temporal patch covers two frames, a
Q-Former query spreads over the patches it attended to), and each token's weights sum to 1, so attention mass
is conserved when it is carried from tokens to cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KINDS = ("patch", "frame", "clip")  # which kind of cell a token's mass lands in


@dataclass
class TokenLayout:
    """Visual tokens -> cells. `positions`: index of each visual token in the prompt's input ids (V,).

    `box` is the part of the source frame the grid covers, as fractions (x0, y0, x1, y1): (0, 0, 1, 1) when
    the processor resizes the whole frame, the centre square when it centre-crops.
    """

    positions: np.ndarray
    n_frames: int
    grid_rows: int
    grid_cols: int
    token: np.ndarray
    cell: np.ndarray
    weight: np.ndarray
    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    description: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def n_tokens(self) -> int:
        return int(len(self.positions))

    @property
    def cells_per_frame(self) -> int:
        return self.grid_rows * self.grid_cols

    @property
    def n_cells(self) -> int:
        return self.n_frames * self.cells_per_frame + self.n_frames + 1

    def frame_cell(self, frame: int) -> int:
        """The cell holding a frame's mass that has no place inside it."""
        return self.n_frames * self.cells_per_frame + frame

    @property
    def clip_cell(self) -> int:
        return self.n_cells - 1

    def check(self) -> None:
        """Every token maps somewhere and its weights sum to 1 (mass is conserved)."""
        sums = np.bincount(self.token, weights=self.weight, minlength=self.n_tokens)
        if not np.allclose(sums, 1.0, atol=1e-5):
            bad = np.flatnonzero(~np.isclose(sums, 1.0, atol=1e-5))[:5]
            raise ValueError(f"token layout: weights of tokens {bad.tolist()} sum to {sums[bad].tolist()}, not 1")
        if self.cell.min(initial=0) < 0 or self.cell.max(initial=0) >= self.n_cells:
            raise ValueError("token layout: cell index out of range")

    def to_cells(self, attention: np.ndarray) -> np.ndarray:
        """Attention over visual tokens (..., V) -> mass per cell (..., n_cells)."""
        attention = np.asarray(attention, dtype=np.float32)
        if attention.shape[-1] != self.n_tokens:
            raise ValueError(f"attention has {attention.shape[-1]} visual tokens, the layout {self.n_tokens}")
        flat = attention.reshape(-1, self.n_tokens)
        out = np.zeros((flat.shape[0], self.n_cells), dtype=np.float32)
        np.add.at(out, (slice(None), self.cell), flat[:, self.token] * self.weight)
        return out.reshape(*attention.shape[:-1], self.n_cells)

    def frame_mass(self, attention: np.ndarray) -> np.ndarray:
        """Attention over visual tokens (..., V) -> mass per sampled frame (..., n_frames)."""
        cells = self.to_cells(attention)
        spatial = cells[..., : self.n_frames * self.cells_per_frame]
        per_frame = spatial.reshape(*cells.shape[:-1], self.n_frames, self.cells_per_frame).sum(-1)
        return per_frame + cells[..., self.n_frames * self.cells_per_frame: self.clip_cell]

    def spatial(self, attention: np.ndarray) -> np.ndarray:
        """Attention over visual tokens (..., V) -> per-frame grids (..., n_frames, rows, cols)."""
        cells = self.to_cells(attention)[..., : self.n_frames * self.cells_per_frame]
        return cells.reshape(*cells.shape[:-1], self.n_frames, self.grid_rows, self.grid_cols)

    def token_table(self) -> "pd.DataFrame":  # noqa: F821
        """One row per (token, cell): token, position, frame, row, col, kind, weight."""
        import pandas as pd

        spatial_cells = self.n_frames * self.cells_per_frame
        frame = np.where(self.cell < spatial_cells, self.cell // max(self.cells_per_frame, 1),
                         np.where(self.cell < self.clip_cell, self.cell - spatial_cells, -1))
        inside = self.cell < spatial_cells
        row = np.where(inside, (self.cell % max(self.cells_per_frame, 1)) // max(self.grid_cols, 1), -1)
        col = np.where(inside, self.cell % max(self.grid_cols, 1), -1)
        kind = np.where(inside, "patch", np.where(self.cell < self.clip_cell, "frame", "clip"))
        return pd.DataFrame({
            "token": self.token, "position": self.positions[self.token], "frame": frame, "row": row,
            "col": col, "kind": kind, "weight": self.weight,
        })


def grid_cells(frame: np.ndarray, row: np.ndarray, col: np.ndarray, grid_cols: int, cells_per_frame: int
               ) -> np.ndarray:
    """Cell index of (frame, row, col) triples.

    >>> grid_cells(np.array([0, 1]), np.array([0, 2]), np.array([1, 3]), 4, 12).tolist()
    [1, 23]
    """
    return frame * cells_per_frame + row * grid_cols + col


def per_frame_grids(positions: np.ndarray, n_frames: int, rows: int, cols: int, *, cls_first: bool = False,
                    trailing_clip_tokens: int = 0, frames_per_group: int = 1,
                    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
                    description: str = "") -> TokenLayout:
    """The common layout: for each group of `frames_per_group` frames, [CLS] then rows x cols tokens in
    row-major order; then `trailing_clip_tokens` tokens for the whole clip.

    A group of two frames (Qwen-VL temporal patches) gives each of its frames half of a token's mass; when
    the last group is short (an odd frame count padded by repeating the last frame), its only frame gets all.

    >>> layout = per_frame_grids(np.arange(2 * 6), 4, 2, 3, frames_per_group=2)
    >>> layout.frame_mass(np.eye(12)[7]).tolist()  # token 7: second pair, row 0, col 1
    [0.0, 0.0, 0.5, 0.5]
    >>> layout = per_frame_grids(np.arange(2 * 5 + 1), 2, 2, 2, cls_first=True, trailing_clip_tokens=1)
    >>> layout.token_table().query("token in (0, 5, 10)")[["token", "frame", "row", "col", "kind"]].values.tolist()
    [[0, 0, -1, -1, 'frame'], [5, 1, -1, -1, 'frame'], [10, -1, -1, -1, 'clip']]
    """
    positions = np.asarray(positions)
    per_group = rows * cols + (1 if cls_first else 0)
    n_groups = -(-n_frames // frames_per_group)
    expected = n_groups * per_group + trailing_clip_tokens
    if len(positions) != expected:
        raise ValueError(
            f"{description or 'layout'}: the prompt has {len(positions)} visual tokens, expected {expected} "
            f"({n_groups} groups x {per_group} + {trailing_clip_tokens})"
        )
    cells_per_frame = rows * cols
    n_cells = n_frames * cells_per_frame + n_frames + 1
    tokens, cells, weights = [], [], []
    for group in range(n_groups):
        frames = np.arange(group * frames_per_group, min((group + 1) * frames_per_group, n_frames))
        share = 1.0 / len(frames)
        base = group * per_group
        if cls_first:
            for f in frames:
                tokens.append(base)
                cells.append(n_frames * cells_per_frame + f)
                weights.append(share)
            base += 1
        r, c = np.divmod(np.arange(rows * cols), cols)
        for f in frames:
            tokens.append(base + np.arange(rows * cols))
            cells.append(grid_cells(np.full(rows * cols, f), r, c, cols, cells_per_frame))
            weights.append(np.full(rows * cols, share))
    for k in range(trailing_clip_tokens):
        tokens.append(n_groups * per_group + k)
        cells.append(n_cells - 1)
        weights.append(1.0)
    layout = TokenLayout(
        positions=positions, n_frames=n_frames, grid_rows=rows, grid_cols=cols,
        token=np.hstack([np.atleast_1d(t) for t in tokens]).astype(np.int64),
        cell=np.hstack([np.atleast_1d(c) for c in cells]).astype(np.int64),
        weight=np.hstack([np.atleast_1d(w) for w in weights]).astype(np.float32),
        box=box, description=description,
    )
    layout.check()
    return layout


def traced_queries(positions: np.ndarray, query_to_patch: np.ndarray, rows: int, cols: int, *,
                   cls_first: bool = True, description: str = "") -> TokenLayout:
    """Q-Former layout: `query_to_patch` (frames, queries, patches) is the Q-Former's cross-attention from
    each query to the frame's encoder tokens ([CLS] then rows x cols patches), averaged over heads and
    layers; each query token spreads its mass over its own frame's cells in those proportions.

    >>> q2p = np.zeros((2, 3, 5)); q2p[:, :, 0] = 1.0; q2p[1, 2] = [0, 0, 0, 0, 1]
    >>> layout = traced_queries(np.arange(6), q2p, 2, 2)
    >>> layout.spatial(np.eye(6)[5])[1].tolist()  # frame 1's last query looked at patch (1, 1)
    [[0.0, 0.0], [0.0, 1.0]]
    """
    q2p = np.asarray(query_to_patch, dtype=np.float64)
    n_frames, n_queries, n_patches = q2p.shape
    if n_patches != rows * cols + (1 if cls_first else 0):
        raise ValueError(f"{description}: {n_patches} encoder tokens per frame do not fit a {rows}x{cols} grid")
    if len(positions) != n_frames * n_queries:
        raise ValueError(
            f"{description}: the prompt has {len(positions)} query tokens, expected {n_frames} x {n_queries}"
        )
    q2p = q2p / q2p.sum(-1, keepdims=True)
    cells_per_frame = rows * cols
    frame_of = np.repeat(np.arange(n_frames), n_patches)
    patch = np.tile(np.arange(n_patches), n_frames)
    offset = 1 if cls_first else 0
    spatial = grid_cells(frame_of, (patch - offset) // cols, (patch - offset) % cols, cols, cells_per_frame)
    cell_of = np.where(patch < offset, n_frames * cells_per_frame + frame_of, spatial)
    tokens, cells, weights = [], [], []
    for f in range(n_frames):
        for q in range(n_queries):
            tokens.append(np.full(n_patches, f * n_queries + q))
            cells.append(cell_of[f * n_patches: (f + 1) * n_patches])
            weights.append(q2p[f, q])
    layout = TokenLayout(
        positions=np.asarray(positions), n_frames=n_frames, grid_rows=rows, grid_cols=cols,
        token=np.hstack(tokens).astype(np.int64), cell=np.hstack(cells).astype(np.int64),
        weight=np.hstack(weights).astype(np.float32), description=description,
    )
    layout.check()
    return layout


def centre_crop_box(height: int, width: int) -> tuple[float, float, float, float]:
    """The part of a height x width frame a shortest-edge resize + square centre crop keeps.

    >>> centre_crop_box(240, 320)
    (0.125, 0.0, 0.875, 1.0)
    """
    side = min(height, width)
    x0 = (width - side) / 2 / width
    y0 = (height - side) / 2 / height
    return (x0, y0, 1 - x0, 1 - y0)
