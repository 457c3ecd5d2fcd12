"""Which frames to decode and at what size: pure index maths, no decoding, no heavy imports.

Frame `i` of a clip at `fps` frames per second covers the interval [i/fps, (i+1)/fps); every helper
here maps times to frames through that convention, so they agree with each other and with the
decoder's timestamps for constant-frame-rate video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Float slack when a product such as 0.3 * 10 must land on the integer it stands for (2.9999999 -> 3).
_EPS = 1e-9


def uniform_indices(n_frames: int, num: int) -> list[int]:
    """`num` frames spread over a clip of `n_frames`: the centre frame of `num` equal segments.

    >>> uniform_indices(10, 4)
    [1, 3, 6, 8]
    >>> uniform_indices(45, 1)
    [22]
    >>> uniform_indices(5, 5)
    [0, 1, 2, 3, 4]
    """
    if n_frames <= 0:
        raise ValueError(f"the clip has no frames (n_frames={n_frames})")
    if num <= 0:
        raise ValueError(f"number of frames to sample must be positive, got {num}")
    if num > n_frames:
        raise ValueError(f"cannot sample {num} distinct frames from a clip of {n_frames} frames")
    return [(2 * i + 1) * n_frames // (2 * num) for i in range(num)]


def frame_at(t_s: float, fps: float, n_frames: int) -> int:
    """Index of the frame whose interval [i/fps, (i+1)/fps) contains time `t_s`, clamped to the clip.

    >>> frame_at(0.3, 10.0, 45)
    3
    >>> frame_at(0.29, 10.0, 45)
    2
    >>> frame_at(99.0, 10.0, 45)
    44
    """
    return min(max(math.floor(t_s * fps + _EPS), 0), n_frames - 1)


def clip_span(fps: float, n_frames: int, start_s: float = 0.0, end_s: float | None = None) -> tuple[float, float]:
    """Validate a [start_s, end_s) span against the clip; `end_s=None` means the clip's end.

    >>> clip_span(10.0, 45)
    (0.0, 4.5)
    >>> clip_span(10.0, 45, 1.0, 2.5)
    (1.0, 2.5)
    """
    if fps <= 0:
        raise ValueError(f"the clip's frame rate must be positive, got {fps}")
    if n_frames <= 0:
        raise ValueError(f"the clip has no frames (n_frames={n_frames})")
    duration_s = n_frames / fps
    end = duration_s if end_s is None else float(end_s)
    if start_s < 0:
        raise ValueError(f"start_s must be >= 0, got {start_s}")
    if end > duration_s + _EPS:
        raise ValueError(f"end_s={end} is beyond the video's end ({duration_s:.6g} s)")
    if start_s >= end:
        if start_s >= duration_s:
            raise ValueError(f"start_s={start_s} is at or beyond the video's end ({duration_s:.6g} s)")
        raise ValueError(f"start_s={start_s} must be before end_s={end}")
    return float(start_s), min(end, duration_s)


def fps_indices(
    native_fps: float,
    n_frames: int,
    target_fps: float,
    *,
    start_s: float = 0.0,
    end_s: float | None = None,
    max_frames: int | None = None,
) -> list[int]:
    """Frames at `target_fps` over [start_s, end_s): times start + k/target_fps, each mapped to its frame.

    With `max_frames`, a longer result is thinned uniformly (segment centres) down to the cap.

    >>> fps_indices(10.0, 45, 2.0)
    [0, 5, 10, 15, 20, 25, 30, 35, 40]
    >>> fps_indices(10.0, 45, 2.0, max_frames=3)
    [5, 20, 35]
    >>> fps_indices(25.0, 100, 10.0, start_s=1.0, end_s=1.5)
    [25, 27, 30, 32, 35]
    """
    if target_fps <= 0:
        raise ValueError(f"target fps must be positive, got {target_fps}")
    if target_fps > native_fps + _EPS:
        raise ValueError(f"target fps {target_fps} is above the video's native {native_fps} fps")
    if max_frames is not None and max_frames <= 0:
        raise ValueError(f"max_frames must be positive, got {max_frames}")
    start, end = clip_span(native_fps, n_frames, start_s, end_s)
    # Count the timestamps with integer k so long clips do not accumulate float drift.
    n_times = math.ceil((end - start) * target_fps - _EPS)
    indices = [frame_at(start + k / target_fps, native_fps, n_frames) for k in range(n_times)]
    if max_frames is not None and len(indices) > max_frames:
        indices = [indices[i] for i in uniform_indices(len(indices), max_frames)]
    return indices


@dataclass(frozen=True)
class WindowPlan:
    """Frames to decode for per-window sampling: one entry per frame, plus each window's span."""

    indices: list[int]  # source frame index, one per sampled frame, in time order
    window_ids: list[int]  # which window each sampled frame belongs to
    windows: list[tuple[float, float]]  # (start_s, end_s) of each window; the last may be shorter


def window_plan(
    native_fps: float,
    n_frames: int,
    window_s: float = 1.0,
    frames_per_window: int = 1,
    *,
    start_s: float = 0.0,
    end_s: float | None = None,
) -> WindowPlan:
    """Split [start_s, end_s) into windows of `window_s` and take `frames_per_window` frames in each.

    A window's frames sit at the centres of equal sub-intervals of that window. A last window shorter
    than `window_s` is kept with its true end. Frames can repeat inside a window that holds fewer
    native frames than `frames_per_window`.

    >>> plan = window_plan(10.0, 45, window_s=1.0, frames_per_window=2)
    >>> plan.indices
    [2, 7, 12, 17, 22, 27, 32, 37, 41, 43]
    >>> plan.window_ids
    [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    >>> plan.windows[-1]
    (4.0, 4.5)
    """
    if window_s <= 0:
        raise ValueError(f"window_s must be positive, got {window_s}")
    if frames_per_window <= 0:
        raise ValueError(f"frames_per_window must be positive, got {frames_per_window}")
    start, end = clip_span(native_fps, n_frames, start_s, end_s)
    n_windows = math.ceil((end - start) / window_s - _EPS)
    indices: list[int] = []
    window_ids: list[int] = []
    windows: list[tuple[float, float]] = []
    for w in range(n_windows):
        w_start = start + w * window_s
        w_end = min(start + (w + 1) * window_s, end)
        windows.append((w_start, w_end))
        step = (w_end - w_start) / frames_per_window
        for j in range(frames_per_window):
            indices.append(frame_at(w_start + (j + 0.5) * step, native_fps, n_frames))
            window_ids.append(w)
    return WindowPlan(indices=indices, window_ids=window_ids, windows=windows)


def target_size(
    width: int, height: int, *, max_side: int | None = None, max_pixels: int | None = None
) -> tuple[int, int]:
    """(width, height) to decode at: within `max_side` and `max_pixels`, aspect kept, even, never upscaled.

    Without a limit that bites, the original size comes back unchanged (no resize at all).

    >>> target_size(1280, 720, max_side=320)
    (320, 180)
    >>> target_size(1280, 720, max_pixels=320 * 240)
    (368, 206)
    >>> target_size(160, 120, max_side=1024)
    (160, 120)
    >>> target_size(1279, 719, max_side=640)
    (640, 358)
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    if max_side is not None and max_side < 2:
        raise ValueError(f"max_side must be at least 2, got {max_side}")
    if max_pixels is not None and max_pixels < 4:
        raise ValueError(f"max_pixels must be at least 4, got {max_pixels}")
    scale = 1.0
    if max_side is not None:
        scale = min(scale, max_side / max(width, height))
    if max_pixels is not None:
        scale = min(scale, math.sqrt(max_pixels / (width * height)))
    if scale >= 1.0:
        return width, height
    # Round away float noise (319.99999 -> 320) before flooring to even, so limits are never exceeded.
    new_width = max(2, int(round(width * scale, 6)) // 2 * 2)
    new_height = max(2, int(round(height * scale, 6)) // 2 * 2)
    return new_width, new_height
