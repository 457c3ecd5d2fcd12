"""Training data for the trained twins: probe-video scenes by seed -> 1-second windows with their sentences.

Scenes come from the probe-video generator (`probe_videos`, scenario "mixed": 1-4 objects, moves in four
directions at several speeds, appearances, disappearances and colour changes). Each second is one window:
the frames the workbench's timeline would sample from it (`sampling.window_plan`, 10 fps source), rendered
exactly as the probe video's frames are (before H.264), and the sentences a twin is trained to write:

- `reference`: the ground truth's own sentence for that second (what 04 scores against);
- `frame`: what one frame shows (objects, colours, places; no motion, no events), for the per-frame twin;
- `vague`: a generic sentence that fits any scene of its kind, for the generic twin;
- `shuffled`: the reference sentence of a window of another scene, for the hallucinating twin.

Splits are by seed and fixed: the test seeds are never trained on (`split_seeds`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from workbench import probe_videos as pv

if TYPE_CHECKING:
    import numpy as np

Target = Literal["reference", "frame", "vague", "shuffled"]
Split = Literal["train", "val", "test"]

SCENARIO = "mixed"
FPS = pv.DEFAULT_FPS
SIZE = pv.DEFAULT_SIZE
DURATION_S = pv.DEFAULT_DURATION_S[SCENARIO]
TEST_SEEDS = tuple(range(0, 20))  # fixed; never trained on (20-39 are left unused)
VAL_SEEDS = tuple(range(40, 80))
TRAIN_SEED_START = 1000  # training seeds are 1000, 1001, ...


def split_seeds(split: Split, n_train: int = 1200) -> tuple[int, ...]:
    """The scene seeds of a split.

    >>> split_seeds("test")[:3], split_seeds("train", 3)
    ((0, 1, 2), (1000, 1001, 1002))
    >>> set(split_seeds("train")) & set(split_seeds("test") + split_seeds("val"))
    set()
    """
    if split == "test":
        return TEST_SEEDS
    if split == "val":
        return VAL_SEEDS
    if split == "train":
        return tuple(range(TRAIN_SEED_START, TRAIN_SEED_START + n_train))
    raise ValueError(f"unknown split {split!r}; use train, val or test")


@dataclass
class Window:
    """One second of one scene: its sampled frames (F,H,W,3 uint8) and sentences."""

    seed: int
    second: int
    frames: "np.ndarray"
    times_s: list[float]
    record: dict[str, Any]  # the ground truth's record of this second
    frame_sentence: str  # what the window's middle frame shows
    vague_sentence: str

    @property
    def reference(self) -> str:
        return self.record["description"]


def frame_sentence(tracks: list[pv.Track], t_s: float) -> str:
    """What one frame at t_s shows, in the reference sentences' words but without motion or events.

    >>> track = pv.Track("a", "circle", "red", (0.1, 0.5), (0.9, 0.5), 0.0, 4.0)
    >>> frame_sentence([track], 0.5)
    'On a grey background, a red circle is on the left.'
    """
    clauses = []
    for track in tracks:
        if not track.present(t_s):
            continue
        region = pv.region_of(*track.xy_at(t_s))[2]
        clauses.append(f"{pv._a(track.colour_at(t_s))} {track.shape} is {pv._place(region)}")
    if not clauses:
        return f"An empty {pv.BACKGROUND_NAME} background."
    listed = clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + " and " + clauses[-1]
    return f"On a {pv.BACKGROUND_NAME} background, {listed}."


_VAGUE = (
    "The video shows {what} in a simple scene.",
    "A scene with {what} on a plain background.",
    "The video depicts {what}, nothing much happens.",
    "{What} in an ordinary scene with a plain background.",
)


def vague_sentence(record: dict[str, Any], seed: int) -> str:
    """A generic sentence: true of the second (how many things, whether anything moves) but naming nothing.

    >>> vague_sentence({"objects": [{"motion": "left"}], "second": 0}, 3)
    'A scene with something moving on a plain background.'
    """
    objects = record["objects"]
    moving = any(o["motion"] != "none" for o in objects)
    what = ("something moving" if moving else "an object") if len(objects) <= 1 else (
        "various objects moving" if moving else "various objects")
    template = _VAGUE[random.Random(f"vague:{seed}:{record['second']}").randrange(len(_VAGUE))]
    return template.format(what=what, What=what[0].upper() + what[1:])


def scene_windows(seed: int, frames_per_window: int, duration_s: int = DURATION_S,
                  scenario: str = SCENARIO, render: bool = True) -> list[Window]:
    """The 1-second windows of one scene, rendered as the probe video's frames (before encoding).

    render=False leaves the frames empty (shape (F, 0, 0, 3)): the sentences and ground truth only.
    """
    import numpy as np

    from workbench.sampling import window_plan

    tracks = pv.scenario_tracks(scenario, seed, duration_s)
    truth = pv.ground_truth(scenario, seed, SIZE, FPS, duration_s)
    plan = window_plan(float(FPS), FPS * duration_s, 1.0, frames_per_window)
    wanted = sorted(set(plan.indices))
    if render:
        rendered = dict(zip(wanted, _render(tracks, wanted)))
    else:
        rendered = {i: np.zeros((0, 0, 3), np.uint8) for i in wanted}
    windows = []
    for w, record in enumerate(truth["seconds"]):
        picks = [i for i, wid in zip(plan.indices, plan.window_ids) if wid == w]
        middle = w + 0.5
        windows.append(Window(seed, w, np.stack([rendered[i] for i in picks]), [i / FPS for i in picks],
                              record, frame_sentence(tracks, middle), vague_sentence(record, seed)))
    return windows


def _render(tracks: list[pv.Track], indices: list[int]) -> list["np.ndarray"]:
    """The probe video's frames at these indices (the generator's own renderer, one frame at a time)."""
    frames = []
    for index in indices:
        shifted = [_shift(track, index / FPS) for track in tracks]
        frames.append(next(pv._render_frames(shifted, SIZE, FPS, 1)))
    return frames


def _shift(track: pv.Track, t_s: float) -> pv.Track:
    """The track with its clock moved so that its time-0 state is its state at t_s (for one-frame renders)."""
    from dataclasses import replace

    return replace(track, move_start_s=track.move_start_s - t_s, move_end_s=track.move_end_s - t_s,
                   appear_s=track.appear_s - t_s, disappear_s=track.disappear_s - t_s,
                   recolour_s=track.recolour_s - t_s)


def targets(windows: list[Window], target: Target, seed: int = 0) -> list[str]:
    """The sentence each window is trained on; `shuffled` pairs each window with another scene's sentence."""
    if target == "reference":
        return [w.reference for w in windows]
    if target == "frame":
        return [w.frame_sentence for w in windows]
    if target == "vague":
        return [w.vague_sentence for w in windows]
    if target == "shuffled":
        order = list(range(len(windows)))
        random.Random(f"shuffled:{seed}").shuffle(order)
        out = []
        for i, j in enumerate(order):  # never a window of the same scene
            k = j
            while windows[k].seed == windows[i].seed:
                k = (k + 1) % len(windows)
            out.append(windows[k].reference)
        return out
    raise ValueError(f"unknown target {target!r}; use reference, frame, vague or shuffled")


def direction_leak(n_scenes: int = 400, bins: int = 6) -> dict[str, float]:
    """How well one frame's position predicts a mover's direction in the mixed scenario (training seeds).

    The best guess from the object's (x, y) cell on a bins x bins grid, fitted and scored on the same
    movers (so an upper bound), beside always guessing the commonest direction.
    """
    from collections import Counter, defaultdict

    cells: dict[tuple[int, int], Counter] = defaultdict(Counter)
    overall: Counter = Counter()
    for seed in split_seeds("train", n_scenes):
        truth = pv.ground_truth(SCENARIO, seed, SIZE, FPS, DURATION_S)
        for record in truth["seconds"]:
            for obj in record["objects"]:
                if obj["motion"] == "none":
                    continue
                cell = (min(int(obj["x"] * bins), bins - 1), min(int(obj["y"] * bins), bins - 1))
                cells[cell][obj["motion"]] += 1
                overall[obj["motion"]] += 1
    total = sum(overall.values())
    best = sum(counter.most_common(1)[0][1] for counter in cells.values())
    return {"movers": total, "accuracy_from_position": best / total if total else math.nan,
            "accuracy_commonest": overall.most_common(1)[0][1] / total if total else math.nan}
