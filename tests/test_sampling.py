"""Frame-index maths: uniform, fixed-fps and per-window sampling, and resize targets."""

from __future__ import annotations

import pytest

from workbench import sampling


# ---- uniform ---------------------------------------------------------------------------------


def test_uniform_takes_segment_centres():
    assert sampling.uniform_indices(45, 5) == [4, 13, 22, 31, 40]
    assert sampling.uniform_indices(100, 4) == [12, 37, 62, 87]
    assert sampling.uniform_indices(7, 7) == list(range(7))


def test_uniform_indices_are_distinct_and_in_range():
    for n_frames in (1, 2, 3, 10, 45, 1501):
        for num in {1, n_frames // 2 or 1, n_frames}:
            indices = sampling.uniform_indices(n_frames, num)
            assert len(indices) == num
            assert len(set(indices)) == num
            assert indices == sorted(indices)
            assert 0 <= indices[0] and indices[-1] < n_frames


@pytest.mark.parametrize(
    ("n_frames", "num", "message"),
    [(10, 11, "cannot sample 11 distinct frames from a clip of 10"), (10, 0, "must be positive"),
     (10, -2, "must be positive"), (0, 1, "no frames")],
)
def test_uniform_errors(n_frames, num, message):
    with pytest.raises(ValueError, match=message):
        sampling.uniform_indices(n_frames, num)


# ---- fps ---------------------------------------------------------------------------------------


def test_fps_maps_each_time_to_the_frame_containing_it():
    # 30 fps native, 4 fps target: t = 0, .25, .5, .75, 1.0 -> frames 0, 7.5->7, 15, 22.5->22, 30
    assert sampling.fps_indices(30.0, 36, 4.0) == [0, 7, 15, 22, 30]


def test_fps_at_native_rate_returns_every_frame():
    assert sampling.fps_indices(25.0, 100, 25.0) == list(range(100))
    # 0.1 * 10 is 0.99999... in floats; the frame must still be 1, not 0.
    assert sampling.fps_indices(10.0, 45, 10.0) == list(range(45))


def test_fps_with_span():
    assert sampling.fps_indices(10.0, 45, 2.0, start_s=1.25, end_s=3.0) == [12, 17, 22, 27]
    assert sampling.fps_indices(10.0, 45, 1.0, start_s=4.0) == [40]


def test_fps_cap_thins_uniformly():
    uncapped = sampling.fps_indices(10.0, 45, 5.0)
    assert len(uncapped) == 23
    capped = sampling.fps_indices(10.0, 45, 5.0, max_frames=4)
    assert capped == [uncapped[i] for i in (2, 8, 14, 20)] == [4, 16, 28, 40]
    # A cap above the count changes nothing.
    assert sampling.fps_indices(10.0, 45, 5.0, max_frames=100) == uncapped


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_fps": 0.0}, "target fps must be positive"),
        ({"target_fps": -1.0}, "target fps must be positive"),
        ({"target_fps": 12.0}, "above the video's native 10.0 fps"),
        ({"target_fps": 2.0, "end_s": 5.0}, "beyond the video's end"),
        ({"target_fps": 2.0, "start_s": 4.5}, "beyond the video's end"),
        ({"target_fps": 2.0, "start_s": 2.0, "end_s": 1.0}, "must be before end_s"),
        ({"target_fps": 2.0, "start_s": -1.0}, "start_s must be >= 0"),
        ({"target_fps": 2.0, "max_frames": 0}, "max_frames must be positive"),
    ],
)
def test_fps_errors(kwargs, message):
    target_fps = kwargs.pop("target_fps")
    with pytest.raises(ValueError, match=message):
        sampling.fps_indices(10.0, 45, target_fps, **kwargs)


# ---- windows -----------------------------------------------------------------------------------


def test_windows_one_frame_each_at_window_centre():
    plan = sampling.window_plan(10.0, 40, window_s=1.0, frames_per_window=1)
    assert plan.indices == [5, 15, 25, 35]
    assert plan.window_ids == [0, 1, 2, 3]
    assert plan.windows == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0)]


def test_windows_keep_a_last_window_of_half_a_window_or_more():
    plan = sampling.window_plan(10.0, 45, window_s=1.0, frames_per_window=2)
    assert plan.windows[-1] == (4.0, 4.5)  # exactly half a window: kept with its true end
    plan = sampling.window_plan(10.0, 52, window_s=2.0, frames_per_window=1)
    assert plan.windows == [(0.0, 2.0), (2.0, 4.0), (4.0, 5.2)]


def test_windows_merge_a_last_window_shorter_than_half_a_window():
    plan = sampling.window_plan(10.0, 45, window_s=2.0, frames_per_window=4)
    assert plan.windows == [(0.0, 2.0), (2.0, 4.5)]
    # k frames at centres of k equal sub-intervals: [0,2) -> .25 .75 1.25 1.75; [2,4.5) -> 2.3125 2.9375 ...
    assert plan.indices == [2, 7, 12, 17, 23, 29, 35, 41]
    assert plan.window_ids == [0] * 4 + [1] * 4


def test_a_clip_shorter_than_half_a_window_is_one_window():
    plan = sampling.window_plan(10.0, 4, window_s=1.0, frames_per_window=2)
    assert plan.windows == [(0.0, 0.4)] and plan.indices == [1, 3]


def test_the_4ms_tail_of_a_ntsc_video_gets_no_window_and_no_stray_frame():
    """Issue 21 item 9: 120 frames at 29.97 fps end at 4.004 s; a [4.0, 4.004] window held frame 119 (3.971 s)."""
    fps, n_frames = 30000 / 1001, 120
    plan = sampling.window_plan(fps, n_frames, window_s=1.0, frames_per_window=3)
    assert plan.windows[-1] == (3.0, pytest.approx(4.004))
    assert len(plan.windows) == 4


@pytest.mark.parametrize(("fps", "n_frames", "window_s", "per_window", "start_s"), [
    (30000 / 1001, 120, 1.0, 3, 0.0), (25.0, 101, 1.0, 8, 0.0), (10.0, 45, 0.3, 4, 0.05),
    (29.97, 1000, 2.5, 5, 1.3), (24.0, 49, 0.5, 1, 0.0), (7.0, 22, 1.0, 10, 0.0)])
def test_every_frame_starts_inside_its_window(fps, n_frames, window_s, per_window, start_s):
    plan = sampling.window_plan(fps, n_frames, window_s, per_window, start_s=start_s)
    for index, window in zip(plan.indices, plan.window_ids):
        w_start, w_end = plan.windows[window]
        assert w_start - 1e-9 <= index / fps < w_end, (index, index / fps, w_start, w_end)
    lengths = [end - start for start, end in plan.windows]
    assert all(length >= window_s / 2 - 1e-9 for length in lengths[:-1] + lengths[-1:] * (len(lengths) > 1))
    assert plan.windows[-1][1] == pytest.approx(n_frames / fps)  # the whole clip is covered


def test_window_shorter_than_a_frame_is_an_error():
    with pytest.raises(ValueError, match=r"window_s=0.05 is shorter than one frame \(0.1 s at 10 fps\)"):
        sampling.window_plan(10.0, 45, window_s=0.05)


def test_uniform_short_clip_repeats_frames_in_time_order():
    assert sampling.uniform_indices(1, 8, allow_repeats=True) == [0] * 8
    assert sampling.uniform_indices(4, 8, allow_repeats=True) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert sampling.uniform_indices(45, 5, allow_repeats=True) == sampling.uniform_indices(45, 5)


def test_windows_with_span_and_fractional_window():
    plan = sampling.window_plan(25.0, 100, window_s=0.5, frames_per_window=2, start_s=1.0, end_s=2.0)
    assert plan.windows == [(1.0, 1.5), (1.5, 2.0)]
    assert plan.indices == [28, 34, 40, 46]  # t = 1.125, 1.375, 1.625, 1.875


def test_windows_count_survives_float_division():
    # 2.1 / 0.3 is 7.000000000000001 in floats: still 7 windows, not 8 with an empty sliver at the end.
    plan = sampling.window_plan(10.0, 21, window_s=0.3, frames_per_window=1)
    assert len(plan.windows) == 7
    assert plan.indices == [1, 4, 7, 10, 13, 16, 19]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window_s": 0.0}, "window_s must be positive"),
        ({"window_s": -1.0}, "window_s must be positive"),
        ({"frames_per_window": 0}, "frames_per_window must be positive"),
        ({"end_s": 4.6}, "end_s=4.6 is beyond the video's end"),
        ({"start_s": 5.0}, "start_s=5.0 is at or beyond the video's end"),
        ({"start_s": 3.0, "end_s": 3.0}, "must be before end_s"),
    ],
)
def test_window_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sampling.window_plan(10.0, 45, **kwargs)


# ---- resize target ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "limits", "expected"),
    [
        ((1280, 720), {"max_side": 640}, (640, 360)),
        ((720, 1280), {"max_side": 640}, (360, 640)),
        ((1280, 720), {"max_pixels": 640 * 360}, (640, 360)),
        ((1920, 1080), {"max_side": 1000, "max_pixels": 400 * 300}, (460, 258)),
        ((320, 240), {"max_side": 1000}, (320, 240)),  # never upscale
        ((321, 241), {}, (321, 241)),  # no limit: untouched, odd sizes included
        ((333, 199), {"max_side": 100}, (100, 58)),  # 59.76 -> even 58
    ],
)
def test_target_size(size, limits, expected):
    assert sampling.target_size(*size, **limits) == expected


def test_target_size_respects_limits_and_aspect():
    for width, height in [(1280, 720), (1919, 1081), (640, 480), (100, 1000)]:
        for max_pixels in (1000, 50_000, 230_400):
            new_width, new_height = sampling.target_size(width, height, max_pixels=max_pixels)
            assert new_width * new_height <= max_pixels
            assert new_width % 2 == 0 and new_height % 2 == 0
            assert abs(new_width / new_height - width / height) / (width / height) < 0.1


@pytest.mark.parametrize(
    ("limits", "message"), [({"max_side": 0}, "max_side must be at least 2"), ({"max_pixels": 3}, "max_pixels")]
)
def test_target_size_errors(limits, message):
    with pytest.raises(ValueError, match=message):
        sampling.target_size(640, 480, **limits)
