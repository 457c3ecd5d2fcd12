"""Probe videos: deterministic bytes, and a ground-truth timeline that matches the pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workbench import probe_videos as pv
from workbench import video

TOP_KEYS = {
    "scenario", "seed", "generator_version", "fps", "width", "height", "duration_s", "n_frames",
    "background", "palette", "seconds",
}
SECOND_KEYS = {"second", "start_s", "end_s", "objects", "events", "description"}
OBJECT_KEYS = {"object", "shape", "colour", "x", "y", "horizontal", "vertical", "region", "motion"}


def test_three_scenarios_exist_with_timelines(probe_video_paths):
    assert set(pv.SCENARIOS) >= {"static", "moving", "events"}
    assert set(probe_video_paths) == set(pv.SCENARIOS)
    for name, path in probe_video_paths.items():
        assert path.suffix == ".mp4" and path.with_suffix(".json").is_file()
        assert path.name == pv.probe_video_name(name, 0, (320, 240), 10, pv.DEFAULT_DURATION_S[name])
    # Only finished files: no temporary leftovers from the atomic writes.
    directory = next(iter(probe_video_paths.values())).parent
    assert sorted(p.suffix for p in directory.iterdir()) == [".json"] * 3 + [".mp4"] * 3


def test_timeline_schema_and_video_agree(probe_video_paths):
    for name, path in probe_video_paths.items():
        truth = pv.load_ground_truth(path)
        assert set(truth) == TOP_KEYS
        assert (truth["scenario"], truth["seed"], truth["fps"]) == (name, 0, 10)
        assert len(truth["seconds"]) == truth["duration_s"] == pv.DEFAULT_DURATION_S[name]
        info = video.probe(path)
        assert (info.n_frames, info.fps, info.width, info.height) == (truth["n_frames"], 10.0, 320, 240)
        for second, record in enumerate(truth["seconds"]):
            assert set(record) == SECOND_KEYS
            assert (record["second"], record["start_s"], record["end_s"]) == (second, second, second + 1)
            assert record["description"].startswith("On a grey background, ")
            for obj in record["objects"]:
                assert set(obj) == OBJECT_KEYS
                assert obj["colour"] in pv.PALETTE and obj["shape"] in pv.SHAPES
                assert obj["motion"] in {"left", "right", "up", "down", "none"}
                assert f"{obj['shape']}" in record["description"]


def test_scenarios_say_what_happens(probe_video_paths):
    static = pv.load_ground_truth(probe_video_paths["static"])["seconds"]
    assert all(o["motion"] == "none" for s in static for o in s["objects"])
    assert all(not s["events"] for s in static)
    assert len({(o["x"], o["y"]) for s in static for o in s["objects"]}) == 2

    moving = pv.load_ground_truth(probe_video_paths["moving"])["seconds"]
    assert all(len(s["objects"]) == 1 and s["objects"][0]["motion"] in {"left", "right"} for s in moving)
    xs = [s["objects"][0]["x"] for s in moving]
    assert xs == sorted(xs) or xs == sorted(xs, reverse=True)
    assert abs(xs[-1] - xs[0]) > 0.5
    assert "moves from the " in " ".join(s["description"] for s in moving)

    events = pv.load_ground_truth(probe_video_paths["events"])["seconds"]
    kinds = {e["type"]: s["second"] for s in events for e in s["events"]}
    assert kinds == {"appears": 2, "changes_colour": 4, "disappears": 5}
    recolour = next(e for e in events[4]["events"] if e["type"] == "changes_colour")
    assert recolour["from"] != recolour["to"]
    assert f"turns {recolour['to']}" in events[4]["description"]
    assert "appears" in events[2]["description"] and "disappears" in events[5]["description"]
    assert any(o["motion"] != "none" for o in events[1]["objects"])
    assert len(events[1]["objects"]) == 3 and len(events[3]["objects"]) == 4 and len(events[6]["objects"]) == 3


def _patch_rgb(frame: np.ndarray, x: float, y: float, half: int = 3) -> np.ndarray:
    height, width = frame.shape[:2]
    cx, cy = int(round(x * width)), int(round(y * height))
    return frame[cy - half : cy + half + 1, cx - half : cx + half + 1].reshape(-1, 3).mean(axis=0)


def test_ground_truth_matches_pixels(probe_video_paths):
    """At each second's midpoint every listed object shows its colour at its position; gone objects are gone."""
    for name, path in probe_video_paths.items():
        truth = pv.load_ground_truth(path)
        frames = video.sample_windows(path, window_s=1.0, frames_per_window=1)
        assert frames.indices.tolist() == [int((s + 0.5) * truth["fps"]) for s in range(truth["duration_s"])]
        last_seen: dict[str, tuple[float, float]] = {}
        for record, frame in zip(truth["seconds"], frames.frames):
            present = {o["object"] for o in record["objects"]}
            for obj in record["objects"]:
                expected = np.array(pv.PALETTE[obj["colour"]], dtype=float)
                seen = _patch_rgb(frame, obj["x"], obj["y"])
                assert np.abs(seen - expected).max() < 40, (name, record["second"], obj, seen)
                last_seen[obj["object"]] = (obj["x"], obj["y"])
            for gone in set(last_seen) - present:
                seen = _patch_rgb(frame, *last_seen[gone])
                assert np.abs(seen - np.array(pv.BACKGROUND_RGB)).max() < 20, (name, record["second"], gone)


def test_same_seed_same_bytes_other_seed_differs(tmp_path, probe_video_paths):
    again = pv.ensure_probe_videos(["events"], seed=0, out_dir=tmp_path / "again")["events"]
    original = probe_video_paths["events"]
    assert again.read_bytes() == original.read_bytes()
    assert again.with_suffix(".json").read_bytes() == original.with_suffix(".json").read_bytes()

    other = pv.ensure_probe_videos(["events"], seed=1, out_dir=tmp_path / "other")["events"]
    assert other.name == "events_seed1_320x240_10fps_8s_v1.mp4"
    assert other.read_bytes() != original.read_bytes()
    assert pv.load_ground_truth(other) != pv.load_ground_truth(original)
    assert pv.load_ground_truth(other)["seed"] == 1


def test_cache_is_reused_and_keyed_by_settings(tmp_path):
    first = pv.ensure_probe_videos(["static"], out_dir=tmp_path, size=(160, 120), fps=5, duration_s=3)["static"]
    assert first.name == "static_seed0_160x120_5fps_3s_v1.mp4"
    stamp = first.stat().st_mtime_ns
    again = pv.ensure_probe_videos(["static"], out_dir=tmp_path, size=(160, 120), fps=5, duration_s=3)["static"]
    assert again == first and again.stat().st_mtime_ns == stamp
    info = video.probe(first)
    assert (info.n_frames, info.fps, info.width, info.height) == (15, 5.0, 160, 120)
    # A video whose timeline is missing counts as unfinished and is regenerated.
    first.with_suffix(".json").unlink()
    pv.ensure_probe_videos(["static"], out_dir=tmp_path, size=(160, 120), fps=5, duration_s=3)
    assert first.with_suffix(".json").is_file()


def test_default_cache_location_follows_workbench_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    path = pv.ensure_probe_videos(["moving"], size=(64, 48), duration_s=2)["moving"]
    assert path.parent == tmp_path / "cache" / "probe_videos"


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown probe scenario"):
        pv.ensure_probe_videos(["dancing"])
    with pytest.raises(ValueError, match="unknown probe scenario 'dancing'; available: static, moving, events"):
        pv.scenario_tracks("dancing", 0, 6)
    with pytest.raises(ValueError, match="positive and even"):
        pv.generate_probe_video("static", tmp_path / "odd.mp4", size=(161, 120))
    assert list(tmp_path.iterdir()) == []


def test_event_times_scale_with_duration():
    truth = pv.ground_truth("events", 0, (320, 240), 10, 60)
    kinds = {e["type"]: s["second"] for s in truth["seconds"] for e in s["events"]}
    assert kinds == {"appears": 15, "changes_colour": 30, "disappears": 38}
    assert math.isclose(truth["n_frames"], 600)


def test_index_frames_roundtrip_and_reject_other_pictures():
    for index in (0, 1, 255, 4096, 65535):
        assert pv.read_frame_index(pv.index_pattern(index, (160, 120))) == index
    with pytest.raises(ValueError, match="not an index-video frame"):
        pv.read_frame_index(np.full((120, 160, 3), 128, dtype=np.uint8))
    with pytest.raises(ValueError, match="does not fit in 16 bits"):
        pv.index_pattern(2**16, (160, 120))
