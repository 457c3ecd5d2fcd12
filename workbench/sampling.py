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


def uniform_indices(n_frames: int, num: int, *, allow_repeats: bool = False) -> list[int]:
    """`num` frames spread over a clip of `n_frames`: the frame holding the centre of each of `num` equal segments.

    More frames than the clip holds is an error unless `allow_repeats`: then each frame repeats as often
    as segment centres fall in it, in time order (the short-clip policy of `video.sample_uniform`).

    >>> uniform_indices(10, 4)
    [1, 3, 6, 8]
    >>> uniform_indices(45, 1)
    [22]
    >>> uniform_indices(5, 5)
    [0, 1, 2, 3, 4]
    >>> uniform_indices(3, 8, allow_repeats=True)
    [0, 0, 0, 1, 1, 2, 2, 2]
    """
    if n_frames <= 0:
        raise ValueError(f"the clip has no frames (n_frames={n_frames})")
    if num <= 0:
        raise ValueError(f"number of frames to sample must be positive, got {num}")
    if num > n_frames and not allow_repeats:
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
    windows: list[tuple[float, float]]  # (start_s, end_s) of each window; the last may be shorter or longer


def window_spans(start_s: float, end_s: float, window_s: float) -> list[tuple[float, float]]:
    """Consecutive `window_s` windows over [start_s, end_s); a short remainder is merged, never left alone.

    Policy: a last window shorter than half of `window_s` is merged into the window before it (which
    then runs up to 1.5 `window_s`), so no caption describes a sliver such as the 4 ms tail of a
    4.004 s video. A last window of half a window or more is kept with its true end. A span shorter
    than half a window is one window: there is nothing to merge it into.

    >>> window_spans(0.0, 4.5, 1.0)
    [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, 4.5)]
    >>> window_spans(0.0, 4.004, 1.0)[-1]
    (3.0, 4.004)
    >>> window_spans(0.0, 0.4, 1.0)
    [(0.0, 0.4)]
    """
    n_windows = math.ceil((end_s - start_s) / window_s - _EPS)
    spans = [(start_s + w * window_s, min(start_s + (w + 1) * window_s, end_s)) for w in range(n_windows)]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < window_s / 2 - _EPS:
        tail = spans.pop()
        spans[-1] = (spans[-1][0], tail[1])
    return spans


def frames_starting_in(start_s: float, end_s: float, fps: float, n_frames: int) -> tuple[int, int]:
    """(first, last) index of the frames whose start time i/fps lies in [start_s, end_s); first > last if none.

    >>> frames_starting_in(1.0, 2.0, 10.0, 45)
    (10, 19)
    >>> frames_starting_in(4.0, 4.004, 29.97, 120)
    (120, 119)
    """
    first = max(math.ceil(start_s * fps - _EPS), 0)
    last = min(math.ceil(end_s * fps - _EPS) - 1, n_frames - 1)
    return first, last


def window_plan(
    native_fps: float,
    n_frames: int,
    window_s: float = 1.0,
    frames_per_window: int = 1,
    *,
    start_s: float = 0.0,
    end_s: float | None = None,
) -> WindowPlan:
    """Split [start_s, end_s) into windows (`window_spans`) and take `frames_per_window` frames in each.

    A window's frames sit at the centres of equal sub-intervals of that window, and every frame
    starts inside its window's span (a frame that began before the window is replaced by the first
    one that begins in it). Frames can repeat inside a window that holds fewer native frames than
    `frames_per_window`.

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
    if window_s * native_fps < 1 - _EPS:
        raise ValueError(f"window_s={window_s} is shorter than one frame ({1 / native_fps:.4g} s at "
                         f"{native_fps:.4g} fps): some windows would hold no frame")
    indices: list[int] = []
    window_ids: list[int] = []
    windows = window_spans(start, end, window_s)
    for w, (w_start, w_end) in enumerate(windows):
        first, last = frames_starting_in(w_start, w_end, native_fps, n_frames)
        if first > last:  # only a span shorter than one frame can get here
            first = last = frame_at(w_start, native_fps, n_frames)
        step = (w_end - w_start) / frames_per_window
        for j in range(frames_per_window):
            frame = frame_at(w_start + (j + 0.5) * step, native_fps, n_frames)
            indices.append(min(max(frame, first), last))
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
