"""Decoding: the frames returned are the frames claimed, at the times claimed; bad files fail clearly."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from workbench import video, video_cache
from workbench.probe_videos import index_pattern, read_frame_index, write_index_video


def shown_indices(frames: video.Frames) -> list[int]:
    return [read_frame_index(frame) for frame in frames.frames]


def assert_consistent(result: video.Frames, fps: float, height: int, width: int) -> None:
    assert result.frames.dtype == np.uint8
    assert result.frames.shape == (len(result.indices), height, width, 3)
    assert result.indices.dtype == np.int64
    assert result.timestamps_s.dtype == np.float64
    assert shown_indices(result) == result.indices.tolist()
    np.testing.assert_allclose(result.timestamps_s, result.indices / fps, atol=1e-6, rtol=0)


# ---- probe -----------------------------------------------------------------------------------


def test_probe_reports_stream_facts(index_video, index_video_25fps):
    info = video.probe(index_video)
    assert (info.n_frames, info.fps, info.duration_s) == (45, 10.0, 4.5)
    assert (info.width, info.height, info.rotation_deg, info.codec) == (160, 120, 0, "h264")
    assert info.path == index_video
    info = video.probe(index_video_25fps)
    assert (info.n_frames, info.fps, info.duration_s, info.width, info.height) == (100, 25.0, 4.0, 192, 144)


# ---- correct frames, times and shapes --------------------------------------------------------


def test_uniform_returns_the_frames_it_names(index_video):
    result = video.sample_uniform(index_video, 5)
    assert result.indices.tolist() == [4, 13, 22, 31, 40]
    assert_consistent(result, 10.0, 120, 160)
    assert result.window_ids is None and result.windows is None


def test_uniform_25fps_crosses_keyframes(index_video_25fps):
    result = video.sample_uniform(index_video_25fps, 9)
    assert result.indices.tolist() == [5, 16, 27, 38, 50, 61, 72, 83, 94]
    assert_consistent(result, 25.0, 144, 192)


def test_fps_mode_with_cap_and_span(index_video, index_video_25fps):
    result = video.sample_fps(index_video, 2.0)
    assert result.indices.tolist() == [0, 5, 10, 15, 20, 25, 30, 35, 40]
    assert_consistent(result, 10.0, 120, 160)

    result = video.sample_fps(index_video_25fps, 5.0, max_frames=4, start_s=1.0, end_s=3.0)
    assert result.indices.tolist() == [30, 40, 55, 65]
    assert_consistent(result, 25.0, 144, 192)


def test_fps_at_native_rate_returns_every_frame(index_video_25fps):
    result = video.sample_fps(index_video_25fps, 25.0)
    assert result.indices.tolist() == list(range(100))
    assert_consistent(result, 25.0, 144, 192)


def test_windows_mode_keeps_partial_last_window(index_video):
    result = video.sample_windows(index_video, window_s=1.0, frames_per_window=2)
    assert result.indices.tolist() == [2, 7, 12, 17, 22, 27, 32, 37, 41, 43]
    assert result.window_ids.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert result.windows == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, 4.5)]
    assert_consistent(result, 10.0, 120, 160)
    records = result.to_records()
    assert records[-1] == {
        "index": 43, "timestamp_s": pytest.approx(4.3, abs=1e-6), "window": 4,
        "window_start_s": 4.0, "window_end_s": 4.5,
    }


def test_dispatcher_matches_direct_calls(index_video):
    assert video.sample(index_video, "uniform", n=3).indices.tolist() == [7, 22, 37]
    assert video.sample(index_video, "fps", fps=1.0, max_frames=2).indices.tolist() == [10, 30]
    # 4.5 s in 2 s windows: the 0.5 s remainder is merged into the second window, [2.0, 4.5).
    assert video.sample(index_video, "windows", window_s=2.0).indices.tolist() == [10, 32]
    with pytest.raises(ValueError, match="unknown sampling mode 'frames'; choose one of uniform, fps, windows"):
        video.sample(index_video, "frames", n=3)


def test_records_without_windows(index_video):
    records = video.sample_uniform(index_video, 2).to_records()
    assert [r["index"] for r in records] == [11, 33]
    assert set(records[0]) == {"index", "timestamp_s"}


@pytest.mark.parametrize(
    ("limits", "height", "width"),
    [({"max_side": 64}, 48, 64), ({"max_pixels": 3000}, 46, 62), ({"max_side": 1000}, 144, 192)],
)
def test_decoder_resizes(index_video_25fps, limits, height, width):
    result = video.sample_uniform(index_video_25fps, 6, **limits)
    assert_consistent(result, 25.0, height, width)


def test_rotation_180_is_returned_upright(tmp_path):
    import av

    path = tmp_path / "upside_down.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(180)
        for i in range(12):
            for packet in stream.encode(av.VideoFrame.from_ndarray(index_pattern(i, (64, 48)), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert video.probe(path).rotation_deg == 180
    result = video.sample_uniform(path, 3)
    assert [read_frame_index(np.rot90(frame, 2)) for frame in result.frames] == result.indices.tolist()


# ---- memory ----------------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc (Linux)")
def test_memory_grows_with_frames_asked_for_not_video_length(tmp_path):
    """200 frames of 640x480 are 176 MiB decoded; asking for 4 must stay far below that.

    Uses the child's VmHWM, not ru_maxrss: a child's ru_maxrss starts at this (large) pytest
    process's RSS, which would hide any growth below it.
    """
    path = write_index_video(tmp_path / "long.mp4", 200, 25, size=(640, 480))
    child = textwrap.dedent(
        """
        import sys
        from workbench import video

        def peak_kib():
            with open("/proc/self/status") as status:
                return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])

        video.probe(sys.argv[1])
        before = peak_kib()
        frames = video.sample_uniform(sys.argv[1], int(sys.argv[2]))
        print(peak_kib() - before, frames.frames.nbytes)
        """
    )

    def growth(n_frames: int) -> tuple[int, int]:
        out = subprocess.run(
            [sys.executable, "-c", child, str(path), str(n_frames)], capture_output=True, text=True, check=True
        )
        grown_kib, frame_bytes = map(int, out.stdout.split())
        return grown_kib * 1024, frame_bytes

    few_bytes, few_frame_bytes = growth(4)
    assert few_frame_bytes == 4 * 480 * 640 * 3
    assert few_bytes < 48 * 2**20, f"sampling 4 frames grew peak RSS by {few_bytes / 2**20:.0f} MiB"
    # The measurement can see growth: asking for every frame costs at least the frames themselves.
    all_bytes, all_frame_bytes = growth(200)
    assert all_bytes >= all_frame_bytes > 170 * 2**20


# ---- bad input -------------------------------------------------------------------------------


def _write_audio_only(path: Path) -> None:
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        for k in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, k * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_empty_video_stream(path: Path) -> None:
    """A Matroska file whose video stream exists but holds no frames (audio keeps the file valid)."""
    import av

    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        for k in range(4):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, k * 1024
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in [*audio.encode(), *stream.encode()]:
            container.mux(packet)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, index_video) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("bad_videos")
    data = index_video.read_bytes()
    rng = np.random.default_rng(0)
    files = {
        "missing": directory / "missing.mp4",
        "directory": directory / "folder.mp4",
        "empty": directory / "empty.mp4",
        "text": directory / "notes.mp4",
        "random": directory / "noise.mp4",
        "audio_only": directory / "audio_only.mp4",
        "no_frames": directory / "no_frames.mkv",
        "truncated": directory / "truncated.mp4",
        "corrupt": directory / "corrupt.mp4",
    }
    files["directory"].mkdir()
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is a shopping list, not a video\n" * 20)
    files["random"].write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    _write_audio_only(files["audio_only"])
    _write_empty_video_stream(files["no_frames"])
    files["truncated"].write_bytes(data[: len(data) // 2])
    damaged = bytearray(data)
    middle, length = len(data) // 2, len(data) // 10
    damaged[middle : middle + length] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    files["corrupt"].write_bytes(bytes(damaged))
    return files


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("missing", "file not found"),
        ("directory", "is a directory"),
        ("empty", "file is empty"),
        ("text", "not a readable video file"),
        ("random", "not a readable video file"),
        ("audio_only", "contains no video stream"),
        ("no_frames", "video stream has no frames"),
        ("truncated", "truncated: the container declares 45 frames but only"),
    ],
)
def test_bad_files_raise_video_error_naming_file_and_problem(bad_files, name, problem):
    path = bad_files[name]
    for call in (video.probe, lambda p: video.sample_uniform(p, 4), lambda p: video.sample_fps(p, 10.0)):
        with pytest.raises(video.VideoError) as caught:
            call(path)
        assert str(path) in str(caught.value)
        assert problem in str(caught.value)


def test_corrupt_stream_is_an_error_not_garbage(bad_files):
    path = bad_files["corrupt"]
    assert video.probe(path).n_frames == 45  # the container is intact; the pictures are not
    with pytest.raises(video.VideoError, match="corrupt video stream: decoding fails near frame") as caught:
        video.sample_fps(path, 10.0)
    assert str(path) in str(caught.value)


def test_damaged_files_never_kill_the_interpreter(bad_files):
    """Run the damaged inputs in a child so a crash in native code would show as a signal, not a dead run."""
    child = textwrap.dedent(
        """
        import sys
        from workbench import video
        for path in sys.argv[1:]:
            for call in (lambda: video.sample_uniform(path, 4), lambda: video.sample_fps(path, 10.0)):
                try:
                    call()
                    print("returned", path)
                except video.VideoError:
                    print("VideoError", path)
        """
    )
    paths = [str(bad_files[name]) for name in ("truncated", "corrupt", "random", "no_frames", "text")]
    out = subprocess.run([sys.executable, "-c", child, *paths], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split().count("VideoError") == 2 * len(paths)


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (lambda p: video.sample_uniform(p, 0), "number of frames to sample must be positive, got 0"),
        (lambda p: video.sample_uniform(p, -3), "must be positive, got -3"),
        (lambda p: video.sample_uniform(p, 46, short_clip="error"),
         "cannot sample 46 distinct frames from a clip of 45 frames"),
        (lambda p: video.sample_uniform(p, 4, short_clip="pad"), "unknown short_clip policy 'pad'"),
        (lambda p: video.sample_fps(p, 0.0), "target fps must be positive"),
        (lambda p: video.sample_fps(p, -2.0), "target fps must be positive"),
        (lambda p: video.sample_fps(p, 30.0), "target fps 30.0 is above the video's native 10.0 fps"),
        (lambda p: video.sample_fps(p, 1.0, max_frames=0), "max_frames must be positive"),
        (lambda p: video.sample_windows(p, window_s=0.0), "window_s must be positive"),
        (lambda p: video.sample_windows(p, frames_per_window=0), "frames_per_window must be positive"),
        (lambda p: video.sample_windows(p, end_s=6.0), "end_s=6.0 is beyond the video's end (4.5 s)"),
        (lambda p: video.sample_windows(p, start_s=5.0), "start_s=5.0 is at or beyond the video's end"),
        (lambda p: video.sample_uniform(p, 2, max_side=1), "max_side must be at least 2"),
    ],
)
def test_bad_arguments_raise_video_error(index_video, call, problem):
    with pytest.raises(video.VideoError) as caught:
        call(index_video)
    assert str(index_video) in str(caught.value)
    assert problem in str(caught.value)


def _write_rotated(path: Path, rotation: int, n_frames: int = 12, size: tuple[int, int] = (64, 48)) -> Path:
    """An index video stored at `size` with a display matrix turning it `rotation` degrees counter-clockwise."""
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.set_display_rotation(rotation)
        for i in range(n_frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(index_pattern(i, size), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize(("rotation", "turns_back"), [(90, -1), (270, 1)])
def test_rotation_90_and_270_come_back_upright_at_the_displayed_size(tmp_path, rotation, turns_back):
    """A players' view: a display matrix of +90 (ffprobe "rotation of 90") turns the picture counter-clockwise."""
    path = _write_rotated(tmp_path / f"portrait_{rotation}.mp4", rotation)
    info = video.probe(path)
    assert (info.rotation_deg, info.width, info.height) == (rotation, 64, 48)
    assert (info.display_width, info.display_height) == (48, 64)
    result = video.sample_uniform(path, 4)
    assert result.frames.shape == (4, 64, 48, 3)
    # Turning the returned frames back by the display rotation gives the stored pictures.
    assert [read_frame_index(np.rot90(frame, turns_back)) for frame in result.frames] == result.indices.tolist()
    np.testing.assert_allclose(result.timestamps_s, result.indices / 10.0, atol=1e-6)
    assert any("decoded with PyAV" in note and f"{rotation}-degree" in note for note in result.notes)
    resized = video.sample_uniform(path, 2, max_side=32)
    assert resized.frames.shape == (2, 32, 24, 3)


def test_rotation_direction_matches_the_display_matrix(tmp_path):
    """A red top-left marker of a +90 (counter-clockwise) file is shown bottom-left, as FFmpeg's players do."""
    import av

    path = tmp_path / "marker.mp4"
    picture = np.zeros((48, 64, 3), np.uint8)
    picture[:16, :16] = (255, 0, 0)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(90)
        for _ in range(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    frame = video.sample_uniform(path, 1).frames[0].astype(int)
    assert frame.shape == (64, 48, 3)
    assert frame[-4, 4, 0] > 200 and frame[4, 4, 0] < 60  # bottom-left red, top-left dark


def _write_index(path: Path, container_format: str, codec: str = "libx264", size=(160, 120), n_frames: int = 45,
                 options: dict | None = None, first_s: float = 0.0) -> Path:
    """An index video at 10 fps; `first_s`: when its first frame is (a clip cut from a longer recording)."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=10, options=options or {})
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(index_pattern(i, size), format="rgb24")
            if first_s:
                frame.pts, frame.time_base = i + round(first_s * 10), Fraction(1, 10)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize("size", [(16, 512), (48, 512)])
def test_narrow_sizes_decord_fails_on_are_decoded_by_pyav(tmp_path, size):
    path = _write_index(tmp_path / f"narrow_{size[0]}x{size[1]}.mp4", "mp4", size=size, n_frames=20)
    with pytest.raises(Exception):  # the reason for the fallback: decord itself cannot copy these out
        video.import_decord().VideoReader(str(path)).get_batch([0, 5]).asnumpy()
    first = video.sample_uniform(path, 4)  # a first read returns the strict check's own frames (PyAV's)
    assert first.notes == []
    result = video.sample_uniform(path, 4)  # later reads try decord, which fails: PyAV again, with a note
    assert result.frames.shape == (4, size[1], size[0], 3)
    assert result.indices.tolist() == [2, 7, 12, 17]
    np.testing.assert_allclose(result.timestamps_s, result.indices / 10.0, atol=1e-6)
    assert [read_frame_index(frame) for frame in result.frames] == [2, 7, 12, 17]
    assert any(note.startswith("decoded with PyAV: decord failed") for note in result.notes)
    np.testing.assert_array_equal(result.frames, first.frames)
    np.testing.assert_array_equal(result.timestamps_s, first.timestamps_s)


def test_av1_clip_is_decoded(tmp_path):
    path = _write_index(tmp_path / "clip_av1.mkv", "matroska", codec="libsvtav1", size=(160, 128), n_frames=30,
                        options={"preset": "8", "crf": "1"})
    info = video.probe(path)
    assert (info.codec, info.n_frames) == ("libdav1d", 30) or (info.codec, info.n_frames) == ("av1", 30)
    result = video.sample_uniform(path, 5)
    assert_consistent(result, 10.0, 128, 160)
    assert result.notes == []  # decord2 decodes AV1 itself (decord 0.6 had no AV1 decoder)


@pytest.mark.parametrize(("container_format", "suffix"), [("mpegts", "ts"), ("avi", "avi")])
def test_containers_decord_mis_seeks_in_are_decoded_by_pyav(tmp_path, container_format, suffix):
    path = _write_index(tmp_path / f"broadcast.{suffix}", container_format, options={"g": "20", "bf": "2"})
    result = video.sample_uniform(path, 5)
    assert_consistent(result, 10.0, 120, 160)
    assert result.notes == [f"decoded with PyAV: decord seeks to wrong frames in {container_format.upper()} files"]


def test_wrong_frames_from_decord_are_caught_and_replaced(tmp_path, monkeypatch):
    """decord mis-seeks in MPEG-TS and returns other frames than asked; forced through decord, that must not pass."""
    monkeypatch.setattr(video, "_PYAV_CONTAINERS", frozenset())
    path = _write_index(tmp_path / "broadcast.ts", "mpegts", options={"g": "20", "bf": "2"})
    assert_consistent(video.sample_uniform(path, 5), 10.0, 120, 160)  # a first read: the strict check's frames
    result = video.sample_uniform(path, 5, max_side=80, verify="always")  # resized: decord, then the check
    assert_consistent(result, 10.0, 60, 80)
    assert len(result.notes) == 1
    assert result.notes[0].startswith("decoded with PyAV: decord returned different pictures than the file holds")


# ---- clips shorter than the frames asked for ------------------------------------------------


@pytest.fixture(scope="module")
def short_clips(tmp_path_factory) -> dict[str, Path]:
    from workbench.probe_videos import write_index_video

    directory = tmp_path_factory.mktemp("short")
    return {"one_frame": write_index_video(directory / "one.mp4", 1, 10),
            "0.4s": write_index_video(directory / "short.mp4", 4, 10)}


def test_short_clip_repeats_frames_by_default_with_a_warning(short_clips):
    with pytest.warns(video.ShortClipWarning, match="the clip has 4 frames, 8 asked for: frames repeated"):
        result = video.sample_uniform(short_clips["0.4s"], 8)
    assert result.indices.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert shown_indices(result) == [0, 0, 1, 1, 2, 2, 3, 3]
    np.testing.assert_allclose(result.timestamps_s, result.indices / 10.0, atol=1e-6)
    assert "short_clip='repeat'" in result.notes[0]
    with pytest.warns(video.ShortClipWarning):
        single = video.sample_uniform(short_clips["one_frame"], 8)
    assert single.frames.shape == (8, 120, 160, 3) and single.indices.tolist() == [0] * 8


def test_short_clip_all_returns_each_frame_once(short_clips):
    with pytest.warns(video.ShortClipWarning, match="all 4 returned"):
        result = video.sample_uniform(short_clips["0.4s"], 8, short_clip="all")
    assert shown_indices(result) == [0, 1, 2, 3]


def test_short_clip_in_fps_and_windows_modes(short_clips):
    assert video.sample_fps(short_clips["0.4s"], 1.0).indices.tolist() == [0]
    result = video.sample_windows(short_clips["0.4s"], window_s=1.0, frames_per_window=2)
    assert result.windows == [(0.0, 0.4)] and result.indices.tolist() == [1, 3]
    assert shown_indices(result) == [1, 3]


def test_enough_frames_gives_no_warning(index_video, recwarn):
    video.sample_uniform(index_video, 45)
    assert not [w for w in recwarn if issubclass(w.category, video.ShortClipWarning)]


def test_decord_import_skips_the_cuda_library_preload():
    """decord2's CPU build dlopens every site-packages/nvidia library at import (850 MiB RSS here); the reader's
    import_decord skips that, and decord still decodes."""
    child = textwrap.dedent(
        """
        import sys
        from workbench import video
        decord = video.import_decord()
        with open("/proc/self/maps") as maps:
            cuda = sorted({line.split("/")[-1].strip() for line in maps if "/nvidia/" in line})
        print(len(cuda), "nvidia" in sys.modules, decord.__version__)
        """
    )
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120, check=True)
    n_cuda_libraries, namespace_left, version = out.stdout.split()
    assert (n_cuda_libraries, namespace_left) == ("0", "False")
    assert version.startswith("3.")


# ---- the check once per file (verify="once") -------------------------------------------------


def _no_strict_decode(*args, **kwargs):
    raise AssertionError("the strict PyAV decode ran although the frames were verified before")


def _no_demux(*args, **kwargs):
    raise AssertionError("the packet index was read again although it is cached")


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """An empty video cache for one test."""
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "video_index"


def test_second_call_decodes_once_and_returns_the_same_frames(index_video_25fps, own_cache, monkeypatch):
    first = video.sample_uniform(index_video_25fps, 9)
    assert len(list(own_cache.glob(f"*{video_cache.SUFFIX}"))) == 1
    monkeypatch.setattr(video, "_reference_fingerprints", _no_strict_decode)
    monkeypatch.setattr(video, "_inspect", _no_demux)
    again = video.sample_uniform(index_video_25fps, 9)
    np.testing.assert_array_equal(again.frames, first.frames)
    np.testing.assert_array_equal(again.timestamps_s, first.timestamps_s)
    assert again.info == first.info and again.notes == []
    # Frames decoded clean on the way to the wanted ones count as verified too: other indices need no check.
    assert_consistent(video.sample_fps(index_video_25fps, 5.0, end_s=1.5), 25.0, 144, 192)  # 0-35: decoded for 5-38
    assert video.probe(index_video_25fps) == first.info


def test_cached_fingerprints_still_catch_wrong_pictures_from_decord(tmp_path, own_cache, monkeypatch):
    """The comparison with PyAV's pictures does not need the strict decode to run again."""
    monkeypatch.setattr(video, "_PYAV_CONTAINERS", frozenset())
    path = _write_index(tmp_path / "broadcast.ts", "mpegts", options={"g": "20", "bf": "2"})
    video.sample_uniform(path, 5)
    monkeypatch.setattr(video, "_reference_fingerprints", _no_strict_decode)
    result = video.sample_uniform(path, 5)  # decord mis-seeks again; the cached fingerprints show it
    assert_consistent(result, 10.0, 120, 160)
    assert result.notes[0].startswith("decoded with PyAV: decord returned different pictures than the file holds")


def test_a_changed_file_is_checked_again(tmp_path, own_cache, monkeypatch):
    path = _write_index(tmp_path / "clip.mp4", "mp4", n_frames=30)
    assert video.sample_uniform(path, 3).indices.tolist() == [5, 15, 25]
    _write_index(path, "mp4", n_frames=20)  # same name, other content
    inspected = []
    real_inspect = video._inspect
    monkeypatch.setattr(video, "_inspect", lambda p, *rest: inspected.append(p) or real_inspect(p, *rest))
    result = video.sample_uniform(path, 3)
    assert inspected and result.info.n_frames == 20
    assert_consistent(result, 10.0, 120, 160)


def _open_descriptors(path: Path) -> int:
    """How many of this process's file descriptors point at `path` (Linux)."""
    target = str(path.resolve())
    return sum(os.path.realpath(f"/proc/self/fd/{fd}") == target for fd in os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors through /proc")
def test_each_call_opens_the_file_once_with_pyav_and_closes_it(tmp_path, own_cache, monkeypatch):
    """The strict decode reuses the container the packet index was read from; nothing is left open."""
    mp4 = _write_index(tmp_path / "clip.mp4", "mp4", n_frames=30, options={"g": "10", "bf": "2"})
    ts = _write_index(tmp_path / "clip.ts", "mpegts", n_frames=30)
    opened = []
    real_open = video._open_container
    monkeypatch.setattr(video, "_open_container", lambda p: opened.append(p) or real_open(p))
    calls = [
        ("first read at the stored size", 1, lambda: video.sample_uniform(mp4, 3)),
        ("frames verified before: no PyAV", 0, lambda: video.sample_uniform(mp4, 3)),
        ("new frames, resized", 1, lambda: video.sample_uniform(mp4, 7, max_side=64, verify="always")),
        ("index only, not cached", 1, lambda: (video_cache.clear(), video.sample_uniform(mp4, 3, verify="off"))),
        ("decoded by PyAV", 1, lambda: video.sample_uniform(ts, 4)),
        ("probe", 1, lambda: video.probe(mp4, verify="always")),
    ]
    for label, opens, call in calls:
        opened.clear()
        call()
        assert len(opened) == opens, label
        assert _open_descriptors(mp4) == 0 and _open_descriptors(ts) == 0, label
    video_cache.clear()
    with pytest.raises(video.VideoError, match="clip.mp4"):
        video.sample_fps(mp4, -1.0)  # an argument error after the index was read
    assert _open_descriptors(mp4) == 0


def test_bad_files_fail_the_same_way_every_call(bad_files, own_cache):
    """Nothing about a file that failed is cached: every call names the file and the problem."""
    for name, problem in [("truncated", "truncated: the container declares 45 frames"),
                          ("corrupt", "corrupt video stream: decoding fails near frame"),
                          ("missing", "file not found")]:
        for _ in range(2):
            with pytest.raises(video.VideoError, match=problem) as caught:
                video.sample_fps(bad_files[name], 10.0)
            assert str(bad_files[name]) in str(caught.value)


def test_frames_verified_in_an_intact_part_do_not_hide_damage_elsewhere(index_video, tmp_path, own_cache):
    """A file cached while intact, then damaged (new size and mtime): the damage is found, not skipped."""
    path = tmp_path / "later_damaged.mp4"
    data = index_video.read_bytes()
    path.write_bytes(data)
    video.sample_fps(path, 10.0)
    damaged = bytearray(data)
    middle, length = len(data) // 2, len(data) // 10
    damaged[middle : middle + length] = np.random.default_rng(0).integers(0, 256, length, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(damaged) + b"\0")
    with pytest.raises(video.VideoError, match="corrupt video stream") as caught:
        video.sample_fps(path, 10.0)
    assert str(path) in str(caught.value)


def test_verify_off_skips_the_strict_decode_and_always_skips_the_cache(index_video, own_cache, monkeypatch):
    real = video._reference_fingerprints
    monkeypatch.setattr(video, "_reference_fingerprints", _no_strict_decode)
    assert_consistent(video.sample_uniform(index_video, 5, verify="off"), 10.0, 120, 160)
    monkeypatch.setattr(video, "_reference_fingerprints", real)
    for entry in own_cache.glob(f"*{video_cache.SUFFIX}"):
        entry.unlink()
    assert_consistent(video.sample_uniform(index_video, 5, verify="always"), 10.0, 120, 160)
    assert list(own_cache.glob(f"*{video_cache.SUFFIX}")) == []
    with pytest.raises(video.VideoError, match="unknown verify policy 'never'; choose one of once, always, off") \
            as caught:
        video.sample_uniform(index_video, 5, verify="never")
    assert str(index_video) in str(caught.value)


def test_unreadable_or_unwritable_cache_only_costs_time(index_video, tmp_path, own_cache, monkeypatch):
    expected = video.sample_uniform(index_video, 4).frames
    (entry,) = own_cache.glob(f"*{video_cache.SUFFIX}")
    entry.write_bytes(b"half a file")  # e.g. a crash while it was written
    np.testing.assert_array_equal(video.sample_uniform(index_video, 4).frames, expected)
    assert entry.stat().st_size > 100  # rewritten
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("WORKBENCH_CACHE", str(blocked))
    np.testing.assert_array_equal(video.sample_uniform(index_video, 4).frames, expected)


def test_luma_fingerprint_from_the_y_plane_matches_the_rgb_one(index_video_25fps):
    """The strict pass reads 8-bit Y directly (no scaling); decord's RGB frames must land on the same scale."""
    import av

    decord = video.import_decord()
    reader = decord.VideoReader(str(index_video_25fps))
    with av.open(str(index_video_25fps)) as container:
        for position, frame in enumerate(container.decode(video=0)):
            if position in (0, 37, 99):
                ours = video._fingerprint_frame(frame)
                grey = video._fingerprint(frame.reformat(width=64, height=64, format="gray").to_ndarray())
                theirs = video._fingerprints_rgb(reader[position].asnumpy())
                assert np.abs(ours - theirs).mean() < 2.5 and np.abs(grey - theirs).mean() < 2.5
                assert np.abs(ours - video._fingerprints_rgb(reader[(position + 10) % 100].asnumpy())).mean() \
                    > video._FINGERPRINT_TOLERANCE


@pytest.mark.parametrize("height, width", [(240, 320), (272, 640), (144, 176), (301, 97), (16, 512), (9, 1000)])
def test_block_sums_are_the_exact_sums_of_each_block(height, width):
    rng = np.random.default_rng(height * width)
    image = rng.integers(0, 256, (height, width + 5, 3), dtype=np.uint8)[:, :width]  # a padded view, as planes are
    sums, counts = video._block_sums(image)
    rows, cols = np.arange(height) * 8 // height, np.arange(width) * 8 // width
    for r in range(8):
        for c in range(8):
            block = image[rows == r][:, cols == c]
            assert counts[r, c] == block.shape[0] * block.shape[1]
            assert (sums[r, c] == block.reshape(-1, 3).sum(axis=0, dtype=np.uint64)).all()


def test_cache_entries_read_back_exactly_and_damaged_ones_are_ignored(tmp_path, own_cache):
    """Format 2: a JSON header and raw arrays; a cut, padded, re-keyed or foreign entry reads as none."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not decoded here")
    fingerprints = {3: np.full((8, 8), 1.5), 40: np.arange(64, dtype=np.float64).reshape(8, 8)}
    for pts, time_base in [(np.array([0, 512, 1024], np.int64), (1, 12800)), (None, None)]:
        entry = video_cache.Entry({"n_frames": 3, "codec": "h264"}, pts, np.array([0, 2], np.int64), time_base,
                                  fingerprints, decord_checked=["ab12", "cd34"])
        video_cache.save(clip, "key-1", entry)
        back = video_cache.load(clip, "key-1")
        assert back.info == entry.info and back.time_base == time_base
        assert back.decord_checked == ["ab12", "cd34"] and back.decord_pixels is None
        assert (back.pts is None) == (pts is None) and (pts is None or back.pts.tolist() == pts.tolist())
        assert back.keyframes.dtype == np.int64 and back.keyframes.tolist() == [0, 2]
        assert sorted(back.fingerprints) == [3, 40]
        np.testing.assert_array_equal(back.fingerprints[40], fingerprints[40])
        assert video_cache.load(clip, "key-2") is None  # the file changed since
    stored = video_cache.entry_path(clip)
    data = stored.read_bytes()
    for damaged in (data[:-1], data + b"\0", data[:20], b"PK\x03\x04" + data[4:]):
        stored.write_bytes(damaged)
        assert video_cache.load(clip, "key-1") is None
    (own_cache / "format1.npz").write_bytes(b"an entry of the old format")
    assert video_cache.clear() == 2 and list(own_cache.iterdir()) == []


def test_block_sums_of_a_batch_equal_each_frame_s_and_never_overflow():
    """Frames summed together give each frame's sums; 16-bit partial sums hold a block column of 257 white rows."""
    rng = np.random.default_rng(7)
    for height, width in [(240, 320), (301, 97)]:
        batch = rng.integers(0, 256, (3, height, width, 3), dtype=np.uint8)
        sums, counts = video._block_sums(batch)
        for frame, frame_sums in zip(batch, sums):
            np.testing.assert_array_equal(frame_sums, video._block_sums(frame)[0])
    for height in (8 * 257, 8 * 258):  # the last height with 16-bit partial sums, the first without
        white = np.full((2, height, 16, 3), 255, np.uint8)
        sums, counts = video._block_sums(white)
        assert (sums == 255 * counts[None, :, :, None]).all()


def _decord_readers(monkeypatch) -> list[str]:
    """Record each decord.VideoReader opened by the reader (the list of paths grows per open)."""
    decord = video.import_decord()
    opened: list[str] = []
    real = decord.VideoReader
    monkeypatch.setattr(decord, "VideoReader", lambda path, *a, **k: opened.append(path) or real(path, *a, **k))
    return opened


def test_a_first_read_returns_the_checks_frames_and_the_next_read_confirms_decord(index_video_25fps, own_cache,
                                                                                  monkeypatch):
    """No decord on a first read; the first decord read at the stored size confirms it gives the same bytes."""
    opened = _decord_readers(monkeypatch)
    first = video.sample_uniform(index_video_25fps, 4)  # frames 12, 37, 62, 87; the confirming one is 12
    assert opened == [] and first.notes == []
    assert video._known(index_video_25fps, "once").decord_pixels["state"] == "unconfirmed"
    again = video.sample_fps(index_video_25fps, 5.0, start_s=1.0, end_s=2.0)  # frames 25-45: 12 is decoded too
    assert len(opened) == 1 and again.indices.tolist() == [25, 30, 35, 40, 45] and again.notes == []
    assert_consistent(again, 25.0, 144, 192)
    assert video._known(index_video_25fps, "once").decord_pixels == {"state": "same"}
    third = video.sample_uniform(index_video_25fps, 4)
    np.testing.assert_array_equal(third.frames, first.frames)
    np.testing.assert_array_equal(third.timestamps_s, first.timestamps_s)
    assert len(opened) == 2 and third.notes == []


def test_when_decord_gives_other_bytes_the_file_stays_with_pyav(index_video_25fps, own_cache, monkeypatch):
    """A rerun gets the first read's pixels: decord's differ by one grey level here, too little for the
    fingerprints, so the byte comparison decides, and PyAV decodes that file from then on."""
    first = video.sample_uniform(index_video_25fps, 4)
    real_decode = video._decode

    def one_level_brighter(*args):
        frames, starts = real_decode(*args)
        return np.minimum(frames, 254) + 1, starts

    monkeypatch.setattr(video, "_decode", one_level_brighter)
    second = video.sample_uniform(index_video_25fps, 4, verify="off")  # the confirmation runs without the check too
    np.testing.assert_array_equal(second.frames, first.frames)
    assert second.notes == ["decoded with PyAV: decord gives other pixels than PyAV for this file (frame 12, "
                            "compared byte for byte), and its first read returned PyAV's"]
    opened = _decord_readers(monkeypatch)
    third = video.sample_uniform(index_video_25fps, 6)
    assert opened == [] and third.notes == second.notes  # remembered: decord is not asked again at this size
    assert_consistent(third, 25.0, 144, 192)
    resized = video.sample_uniform(index_video_25fps, 4, max_side=160)  # never PyAV's pixels: decord as before
    assert len(opened) == 1 and resized.notes == [] and resized.frames.shape[1:] == (120, 160, 3)


def test_start_times_count_from_the_first_frame_whichever_frames_are_read(tmp_path, own_cache):
    """A file whose first frame is at 0.5 s: the first read (PyAV), later ones (decord) and a resized one
    all give the packet index's times from that frame."""
    path = _write_index(tmp_path / "starts_late.mkv", "matroska", n_frames=30, options={"bf": "2"}, first_s=0.5)
    for call in (lambda: video.sample_uniform(path, 3), lambda: video.sample_fps(path, 5.0, start_s=0.3),
                 lambda: video.sample_uniform(path, 3), lambda: video.sample_fps(path, 10.0, end_s=1.0),
                 lambda: video.sample_uniform(path, 5, max_side=80)):
        result = call()
        assert_consistent(result, 10.0, *result.frames.shape[1:3])


def test_a_video_stream_without_a_decoder_is_a_video_error(tmp_path, own_cache):
    """A header naming a codec FFmpeg has no decoder for (here the MP4's 'avc1' overwritten; one of the
    integrity sweep's damaged copies did the same) gives a VideoError naming the file, on every path."""
    intact = _write_index(tmp_path / "intact.mp4", "mp4", n_frames=20)
    path = tmp_path / "unknown_codec.mp4"
    path.write_bytes(intact.read_bytes().replace(b"avc1", b"zzzz"))
    for call in (lambda: video.probe(path), lambda: video.sample_uniform(path, 3),
                 lambda: video.sample_uniform(path, 3, verify="off"), lambda: video.probe(path, verify="always")):
        with pytest.raises(video.VideoError, match="no decoder for its video codec") as caught:
            call()
        assert str(path) in str(caught.value)


@pytest.mark.parametrize(("rotation", "turns_back"), [(0, 0), (90, -1), (180, 2), (270, 1)])
def test_a_first_read_learns_the_rotation_from_its_own_decode(tmp_path, own_cache, rotation, turns_back):
    """Without a probe first: the packet index leaves the rotation to the first read's strict decode, which
    starts over at the displayed size when it finds one; what is cached then holds the rotation read."""
    path = _write_rotated(tmp_path / f"first_{rotation}.mp4", rotation)
    first = video.sample_uniform(path, 4)
    assert first.info.rotation_deg == rotation
    assert first.frames.shape[1:3] == ((64, 48) if rotation in (90, 270) else (48, 64))
    assert [read_frame_index(np.rot90(frame, turns_back)) for frame in first.frames] == first.indices.tolist()
    assert video.probe(path).rotation_deg == rotation  # from the cache entry the first read wrote
    again = video.sample_uniform(path, 4)
    np.testing.assert_array_equal(again.frames, first.frames)
    resized = video.sample_uniform(tmp_path.joinpath(f"first_{rotation}.mp4"), 2, max_side=32, verify="always")
    assert resized.info.rotation_deg == rotation
    assert resized.frames.shape[1:3] == ((32, 24) if rotation in (90, 270) else (24, 32))


@pytest.mark.parametrize("container_format", ["matroska", "mp4"])
def test_a_clip_starting_seconds_late_is_not_called_truncated(tmp_path, own_cache, container_format):
    """Matroska declares 8 s for 3 s of frames from 5 s on (its duration runs from 0): not a truncation.
    The same clip cut short is still one."""
    path = _write_index(tmp_path / f"late.{container_format[:3]}", container_format, n_frames=30, first_s=5.0)
    result = video.sample_uniform(path, 3)
    assert result.info.n_frames == 30 and result.indices.tolist() == [5, 15, 25]
    assert_consistent(result, 10.0, 120, 160)
    longer = _write_index(tmp_path / "longer.mkv", "matroska", n_frames=60, first_s=5.0)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(longer.read_bytes()[: longer.stat().st_size // 2])
    with pytest.raises(video.VideoError, match=r"declares 11.00 s but only .* present \(from 5.00 s on\)"):
        video.probe(cut, verify="always")


def test_decoder_threads_apply_to_this_thread_only_and_give_the_same_frames(index_video_25fps, tmp_path,
                                                                            monkeypatch):
    """A read with one FFmpeg thread (how 04 reads ahead) returns the same bytes as FFmpeg's own number; the
    setting reaches PyAV's decoder and decord's reader, and a thread started inside the block keeps its own."""
    import threading

    decord = video.import_decord()
    made = []
    real_reader = decord.VideoReader
    monkeypatch.setattr(decord, "VideoReader", lambda *a, **k: made.append(k["num_threads"]) or real_reader(*a, **k))
    reads = {}
    for threads in (0, 1):
        monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / f"cache{threads}"))
        with video.decoder_threads(threads):
            with video._open_for_decoding(index_video_25fps) as container:
                assert container.streams.video[0].codec_context.thread_count == threads
            elsewhere = []
            worker = threading.Thread(target=lambda: elsewhere.append(video._DECODER_THREADS.get()))
            worker.start()
            worker.join()
            assert elsewhere == [0]
            first = video.sample_windows(index_video_25fps, 1.0, 3)  # the strict PyAV decode's own frames
            again = video.sample_windows(index_video_25fps, 1.0, 3)  # decord's, confirmed against them
        assert made[-1] == threads
        reads[threads] = (first, again)
    assert video._DECODER_THREADS.get() == 0
    for one, auto in zip(reads[1], reads[0]):
        np.testing.assert_array_equal(one.frames, auto.frames)
        np.testing.assert_array_equal(one.timestamps_s, auto.timestamps_s)
    for bad in (-1, True, 1.5, "1"):
        with pytest.raises(ValueError, match="decoder threads must be an int >= 0"):
            with video.decoder_threads(bad):
                pass


def test_a_decord_read_whose_pictures_matched_is_not_compared_again(index_video_25fps, own_cache, monkeypatch):
    """The same frames at the same size with the same decord give the same pictures: compared once; another
    read (other frames, another size, another decord version) is compared."""
    compared = []
    real = video._check_same_pictures
    monkeypatch.setattr(video, "_check_same_pictures", lambda info, indices, *a: compared.append(list(indices))
                        or real(info, indices, *a))
    first = video.sample_windows(index_video_25fps, 1.0, 2)  # the strict decode's frames: nothing to compare
    second = video.sample_windows(index_video_25fps, 1.0, 2)  # decord's: compared
    assert len(compared) == 1
    third = video.sample_windows(index_video_25fps, 1.0, 2)  # the same read again
    assert len(compared) == 1
    for again in (second, third):
        np.testing.assert_array_equal(again.frames, first.frames)
    assert len(video_cache.load(index_video_25fps, video_cache.file_key(index_video_25fps)).decord_checked) == 1
    video.sample_windows(index_video_25fps, 1.0, 2, end_s=2.0)  # other frames
    assert video.sample_windows(index_video_25fps, 1.0, 2, max_side=160).notes == []  # another size, decord
    assert len(compared) == 3
    monkeypatch.setattr(video.import_decord(), "__version__", "0.0-another", raising=False)
    video.sample_windows(index_video_25fps, 1.0, 2)
    assert len(compared) == 4


def test_a_decord_read_that_hangs_is_given_up_and_the_file_decoded_by_pyav(index_video_25fps, own_cache,
                                                                          monkeypatch):
    """decord can loop or deadlock in native code on some files; past its deadline the read goes to PyAV with a
    note, and decord is not asked again for that file in this process (its stuck thread is left behind)."""
    import threading
    import time

    decord = video.import_decord()
    release = threading.Event()
    opened: list[str] = []

    class HangingReader:  # stands in for a decord reader stuck in get_batch; the wait releases the GIL as decord does
        def __init__(self, path, *args, **kwargs):
            opened.append(path)

        def __len__(self):
            return video.probe(index_video_25fps).n_frames

        def get_batch(self, indices):
            release.wait(60)
            raise RuntimeError("released at the end of the test")

    reference = video.sample_uniform(index_video_25fps, 5, max_side=160, verify="always")  # resized: decord
    monkeypatch.setattr(decord, "VideoReader", HangingReader)
    monkeypatch.setattr(video, "_DECORD_DEADLINE_S", 0.5)
    monkeypatch.setattr(video, "_DECORD_DEADLINE_PER_FRAME_S", 0.1)
    monkeypatch.setattr(video, "_DECORD_HUNG", {})
    try:
        started = time.monotonic()
        hung = video.sample_uniform(index_video_25fps, 5, max_side=160, verify="always")
        assert 1.0 <= time.monotonic() - started < 10  # the deadline (0.5 + 5 x 0.1 s), then PyAV
        assert hung.frames.shape == reference.frames.shape  # PyAV's scaler, not decord's: near, not equal
        assert np.abs(hung.frames.astype(np.int16) - reference.frames).mean() < 2
        np.testing.assert_array_equal(hung.indices, reference.indices)
        np.testing.assert_array_equal(hung.timestamps_s, reference.timestamps_s)
        note = ("decoded with PyAV: decord did not return within 1 s (a hang in its native code, known for some "
                "files); it is not asked again for this file in this process")
        assert hung.notes == [note] and len(opened) == 1
        again = video.sample_uniform(index_video_25fps, 3)  # another read of that file: PyAV at once
        assert again.notes == [note] and len(opened) == 1
        assert_consistent(again, 25.0, 144, 192)
    finally:
        release.set()


def test_decord_reads_keep_the_callers_decoder_threads(index_video_25fps, own_cache, monkeypatch):
    """The read runs in a thread of its own; the caller's `decoder_threads` still reaches decord."""
    decord = video.import_decord()
    seen: list[int] = []
    real = decord.VideoReader
    monkeypatch.setattr(decord, "VideoReader",
                        lambda path, *a, **k: seen.append(k.get("num_threads")) or real(path, *a, **k))
    with video.decoder_threads(1):
        video.sample_uniform(index_video_25fps, 4, max_side=160, verify="off")
    video.sample_uniform(index_video_25fps, 4, max_side=96, verify="off")
    assert seen == [1, 0]
