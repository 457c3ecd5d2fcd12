"""Twin training data: splits by seed, windows as the timeline samples them, sentences per target."""

from __future__ import annotations

import numpy as np
import pytest

from workbench import probe_videos as pv
from workbench.twins import data


def test_splits_are_fixed_and_disjoint():
    train, val, test = (set(data.split_seeds(s)) for s in ("train", "val", "test"))
    assert not (train & test) and not (train & val) and not (val & test)
    assert data.split_seeds("test") == tuple(range(20))
    with pytest.raises(ValueError, match="unknown split"):
        data.split_seeds("dev")


def test_mixed_scenario_is_extra_and_deterministic():
    assert pv.SCENARIOS == ("static", "moving", "events")  # the default set is unchanged
    assert "mixed" in pv.ALL_SCENARIOS
    a = pv.ground_truth("mixed", 7, (320, 240), 10, 4)
    assert a == pv.ground_truth("mixed", 7, (320, 240), 10, 4)
    assert a != pv.ground_truth("mixed", 8, (320, 240), 10, 4)


def test_mixed_scenes_vary_in_objects_directions_and_events():
    motions, counts, events = set(), set(), set()
    for seed in data.split_seeds("train", 60):
        truth = pv.ground_truth("mixed", seed, (320, 240), 10, 4)
        for second in truth["seconds"]:
            counts.add(len(second["objects"]))
            motions |= {o["motion"] for o in second["objects"]}
            events |= {e["type"] for e in second["events"]}
    assert motions == {"none", "left", "right", "up", "down"}
    assert {1, 2, 3, 4} <= counts
    assert events == {"appears", "disappears", "changes_colour"}


def test_one_frame_barely_tells_the_direction():
    """A best guess from one frame's position (fitted on the same movers: an upper bound) stays far from
    what two frames give (all of it): position does not tell the direction."""
    leak = data.direction_leak(200)
    assert leak["movers"] > 300
    assert leak["accuracy_from_position"] < 0.45  # chance among four directions is 0.25
    assert leak["accuracy_from_position"] - leak["accuracy_commonest"] < 0.15


def test_windows_are_the_frames_the_timeline_samples(tmp_path):
    """Rendered training frames equal the probe video's decoded frames up to H.264 loss."""
    from workbench import video

    path = pv.generate_probe_video("mixed", tmp_path / "m.mp4", seed=3)
    windows = data.scene_windows(3, 2)
    sampled = video.sample_windows(path, 1.0, 2)
    assert [t for w in windows for t in w.times_s] == pytest.approx(list(sampled.timestamps_s))
    rendered = np.concatenate([w.frames for w in windows]).astype(float)
    assert np.abs(rendered - sampled.frames.astype(float)).mean() < 3.0
    truth = pv.load_ground_truth(path)
    assert [w.reference for w in windows] == [s["description"] for s in truth["seconds"]]


def test_targets_per_twin():
    windows = [w for seed in (1000, 1001, 1002) for w in data.scene_windows(seed, 1)]
    assert data.targets(windows, "reference") == [w.reference for w in windows]
    frame = data.targets(windows, "frame")
    assert not any(word in s for s in frame for word in ("moves", "appears", "disappears", "turns"))
    shuffled = data.targets(windows, "shuffled")
    assert set(shuffled) <= {w.reference for w in windows}
    own = sum(s == w.reference for s, w in zip(shuffled, windows))  # another scene can read the same
    assert own <= len(windows) // 4
    from workbench.quality.metrics import specificity

    assert max(specificity(s) for s in data.targets(windows, "vague")) < 0.3
    with pytest.raises(ValueError, match="unknown target"):
        data.targets(windows, "poetry")
