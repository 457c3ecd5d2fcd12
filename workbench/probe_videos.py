"""Synthetic probe videos with a known timeline: coloured shapes that appear, move, recolour and vanish.

Each video `<name>.mp4` has `<name>.json` beside it with the ground truth per second (objects, their
colour, shape, position and motion, the events in that second, and a plain English reference
sentence), so caption quality can be scored against what is really on screen. The same scenario,
seed, size, fps and duration give the same bytes (with the same PyAV/x264 build): rendering and the
RGB -> YUV conversion are plain numpy/PIL, and the H.264 encoder runs single-threaded with fixed settings.

Also here: index videos, whose every frame shows its own frame number as black/white blocks, so
tests can check that a sampler returned the frames it claims to have returned.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from workbench import paths
from workbench.atomic import atomic_path, write_json

SCENARIOS: tuple[str, ...] = ("static", "moving", "events")
# Scenarios made by seed for training and testing the trained twins (workbench/twins); not in the default set,
# so `ensure_probe_videos()` still makes the three above.
EXTRA_SCENARIOS: tuple[str, ...] = ("mixed",)
ALL_SCENARIOS: tuple[str, ...] = SCENARIOS + EXTRA_SCENARIOS

# Bump when rendering or encoding changes, so cached videos from an older generator are not reused.
GENERATOR_VERSION = 1

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 230),
    "yellow": (240, 220, 40),
    "purple": (150, 60, 190),
    "orange": (250, 140, 30),
    "white": (245, 245, 245),
}
BACKGROUND_NAME = "grey"
BACKGROUND_RGB = (128, 128, 128)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")

DEFAULT_SIZE = (320, 240)  # (width, height)
DEFAULT_FPS = 10
DEFAULT_DURATION_S = {"static": 6, "moving": 6, "events": 8, "mixed": 4}

# Fixed encoder settings: single thread so the bitstream does not depend on scheduling; a keyframe
# every 2 s (set per video) like ordinary web video; moov atom first so a cut file still opens.
_X264_OPTIONS = {"preset": "veryfast", "crf": "20", "bf": "2", "sc_threshold": "0"}
_OBJECT_RADIUS = 0.11  # of the frame height


# ----------------------------------------------------------------------------------------------
# Scenario description


@dataclass(frozen=True)
class Track:
    """One object's life: where it is, what colour it has, when it is on screen."""

    name: str
    shape: str
    colour: str
    start_xy: tuple[float, float]  # centre, normalized to [0, 1] (x right, y down)
    end_xy: tuple[float, float]
    move_start_s: float
    move_end_s: float
    appear_s: float = 0.0
    disappear_s: float = math.inf
    recolour_s: float = math.inf
    new_colour: str | None = None

    def present(self, t_s: float) -> bool:
        return self.appear_s <= t_s < self.disappear_s

    def colour_at(self, t_s: float) -> str:
        return self.new_colour if self.new_colour and t_s >= self.recolour_s else self.colour

    def xy_at(self, t_s: float) -> tuple[float, float]:
        span = self.move_end_s - self.move_start_s
        f = 0.0 if span <= 0 else min(max((t_s - self.move_start_s) / span, 0.0), 1.0)
        x = self.start_xy[0] + f * (self.end_xy[0] - self.start_xy[0])
        y = self.start_xy[1] + f * (self.end_xy[1] - self.start_xy[1])
        return x, y


def _at_second(fraction: float, duration_s: int) -> int:
    """An event time as a whole second, a fixed fraction into the clip, inside (0, duration)."""
    return min(max(math.floor(fraction * duration_s + 0.5), 1), duration_s - 1)


def scenario_tracks(scenario: str, seed: int, duration_s: int) -> list[Track]:
    """The objects of a scenario; the seed picks shapes, colours, exact positions and directions."""
    rng = random.Random(f"{scenario}:{seed}")
    colours = rng.sample(list(PALETTE), len(PALETTE))

    def jitter(value: float) -> float:
        return round(value + rng.uniform(-0.04, 0.04), 3)

    def still(name: str, shape: str, colour: str, xy: tuple[float, float], **kw: Any) -> Track:
        return Track(name, shape, colour, xy, xy, 0.0, 0.0, **kw)

    shapes = rng.sample(SHAPES, len(SHAPES)) + [rng.choice(SHAPES)]  # varied, never all alike
    if scenario == "static":
        return [
            still("a", shapes[0], colours[0], (jitter(0.2), jitter(0.5))),
            still("b", shapes[1], colours[1], (jitter(0.8), jitter(0.5))),
        ]
    if scenario == "moving":
        y = jitter(0.5)
        xs = (0.15, 0.85) if rng.random() < 0.5 else (0.85, 0.15)
        return [Track("a", shapes[0], colours[0], (xs[0], y), (xs[1], y), 0.0, float(duration_s))]
    if scenario == "events":
        y = jitter(0.5)
        xs = (0.2, 0.8) if rng.random() < 0.5 else (0.8, 0.2)
        return [
            Track("mover", shapes[0], colours[0], (xs[0], y), (xs[1], y),
                  0.0, float(_at_second(0.75, duration_s))),
            still("recoloured", shapes[1], colours[1], (jitter(0.8), jitter(0.18)),
                  recolour_s=_at_second(0.5, duration_s), new_colour=colours[2]),
            still("newcomer", shapes[2], colours[3], (jitter(0.2), jitter(0.82)),
                  appear_s=_at_second(0.25, duration_s)),
            still("leaver", shapes[3], colours[4], (jitter(0.2), jitter(0.18)),
                  disappear_s=_at_second(0.625, duration_s)),
        ]
    if scenario == "mixed":
        return _mixed_tracks(rng, colours, duration_s)
    raise ValueError(f"unknown probe scenario {scenario!r}; available: {', '.join(ALL_SCENARIOS)}")


# The "mixed" scenario: 1-4 objects, each still or moving in one of four directions at its own speed for part
# of the clip, some appearing, disappearing or changing colour. A mover's position at the middle of its move is
# drawn from the same box whatever its direction, and moves are short (at most MIXED_MAX_TRAVEL), so where an
# object is in one frame says little about where it goes: telling the direction needs two frames.
MIXED_MAX_TRAVEL = 0.25  # normalized distance a mover covers in its whole move
MIXED_SPEEDS = (0.08, 0.16)  # normalized distance per second
_DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}


def _mixed_tracks(rng: random.Random, colours: list[str], duration_s: int) -> list[Track]:
    n_objects = rng.choices([1, 2, 3, 4], weights=[2, 4, 3, 1])[0]
    spare = colours[n_objects:]  # recolour targets differ from every object's colour
    tracks: list[Track] = []
    placed: list[tuple[float, float]] = []
    for i in range(n_objects):
        shape = rng.choice(SHAPES)
        moving = rng.random() < 0.6
        if moving:
            direction = rng.choice(sorted(_DIRECTIONS))
            move_start = float(rng.randint(0, max(0, duration_s - 2)))
            move_end = float(rng.randint(int(move_start) + 1, duration_s))
            speed = min(rng.uniform(*MIXED_SPEEDS), MIXED_MAX_TRAVEL / (move_end - move_start))
            travel = speed * (move_end - move_start)
        else:
            direction, move_start, move_end, travel = "none", 0.0, 0.0, 0.0
        dx, dy = _DIRECTIONS.get(direction, (0.0, 0.0))
        low, high = 0.12 + travel / 2, 0.88 - travel / 2  # the whole move stays inside the frame
        for _ in range(50):  # keep objects apart at the middle of their moves
            mid = (round(rng.uniform(low, high), 3), round(rng.uniform(low, high), 3))
            if all(math.hypot(mid[0] - x, mid[1] - y) > 0.25 for x, y in placed):
                break
        placed.append(mid)
        start = (round(mid[0] - dx * travel / 2, 3), round(mid[1] - dy * travel / 2, 3))
        end = (round(mid[0] + dx * travel / 2, 3), round(mid[1] + dy * travel / 2, 3))
        events: dict[str, Any] = {}
        roll = rng.random()
        if roll < 0.15 and duration_s > 2:
            events["appear_s"] = float(rng.randint(1, duration_s - 1))
        elif roll < 0.3 and duration_s > 2:
            events["disappear_s"] = float(rng.randint(1, duration_s - 1))
        elif roll < 0.45 and spare:
            events.update(recolour_s=float(rng.randint(1, duration_s - 1)), new_colour=spare.pop(0))
        tracks.append(Track(f"object{i}", shape, colours[i], start, end, move_start, move_end, **events))
    # Named left to right (by where each object is in the middle of its move), so the order of the reference
    # sentence's clauses can be seen in the frames.
    order = sorted(range(n_objects), key=lambda k: placed[k][0])
    return [replace(tracks[k], name=f"object{rank}") for rank, k in enumerate(order)]


# ----------------------------------------------------------------------------------------------
# Ground truth


def region_of(x: float, y: float) -> tuple[str, str, str]:
    """(horizontal, vertical, region) words for a normalized centre.

    >>> region_of(0.1, 0.5)
    ('left', 'middle', 'left')
    >>> region_of(0.9, 0.1)
    ('right', 'top', 'top right')
    >>> region_of(0.5, 0.5)
    ('centre', 'middle', 'centre')
    """
    horizontal = "left" if x < 1 / 3 else "right" if x > 2 / 3 else "centre"
    vertical = "top" if y < 1 / 3 else "bottom" if y > 2 / 3 else "middle"
    if vertical == "middle":
        return horizontal, vertical, horizontal
    if horizontal == "centre":
        return horizontal, vertical, vertical
    return horizontal, vertical, f"{vertical} {horizontal}"


def _place(region: str) -> str:
    return {"left": "on the left", "right": "on the right", "centre": "in the centre"}.get(region, f"at the {region}")


def _a(word: str) -> str:
    """The word with its indefinite article: 'a red', 'an orange'."""
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _direction(dx: float, dy: float) -> str:
    if math.hypot(dx, dy) < 1e-6:
        return "none"
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def _second_record(tracks: list[Track], second: int) -> dict[str, Any]:
    mid = second + 0.5
    objects: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    clauses: list[str] = []
    for track in tracks:
        x, y = track.xy_at(mid)
        horizontal, vertical, region = region_of(x, y)
        if second <= track.disappear_s < second + 1:
            last_colour = track.colour_at(track.disappear_s - 1e-9)
            last_region = region_of(*track.xy_at(track.disappear_s))[2]
            events.append({"type": "disappears", "object": track.name, "shape": track.shape, "colour": last_colour})
            clauses.append(f"{_a(last_colour)} {track.shape} disappears from the {last_region}")
        if not track.present(mid):
            continue
        (x0, y0), (x1, y1) = track.xy_at(second), track.xy_at(second + 1)
        motion = _direction(x1 - x0, y1 - y0)
        colour = track.colour_at(mid)
        objects.append({
            "object": track.name, "shape": track.shape, "colour": colour,
            "x": round(x, 4), "y": round(y, 4),
            "horizontal": horizontal, "vertical": vertical, "region": region, "motion": motion,
        })
        if second < track.appear_s + 1 and track.appear_s > 0:
            events.append({"type": "appears", "object": track.name, "shape": track.shape, "colour": colour})
            clauses.append(f"{_a(colour)} {track.shape} appears {_place(region)}")
        elif second <= track.recolour_s < second + 1:
            events.append({"type": "changes_colour", "object": track.name, "shape": track.shape,
                           "from": track.colour, "to": track.new_colour})
            clauses.append(f"{_a(track.colour)} {track.shape} {_place(region)} turns {track.new_colour}")
        elif motion != "none":
            start_region, end_region = region_of(x0, y0)[2], region_of(x1, y1)[2]
            if start_region != end_region:
                clauses.append(f"{_a(colour)} {track.shape} moves from the {start_region} towards the {end_region}")
            else:
                clauses.append(f"{_a(colour)} {track.shape} {_place(region)} moves {motion}")
        else:
            clauses.append(f"{_a(colour)} {track.shape} is {_place(region)}")
    listed = clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + " and " + clauses[-1] if clauses else ""
    sentence = f"On a {BACKGROUND_NAME} background, {listed}." if clauses else f"An empty {BACKGROUND_NAME} background."
    return {"second": second, "start_s": float(second), "end_s": float(second + 1),
            "objects": objects, "events": events, "description": sentence}


def ground_truth(scenario: str, seed: int, size: tuple[int, int], fps: int, duration_s: int) -> dict[str, Any]:
    """The timeline JSON content for one probe video (also what the video is rendered from)."""
    tracks = scenario_tracks(scenario, seed, duration_s)
    return {
        "scenario": scenario,
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
        "fps": fps,
        "width": size[0],
        "height": size[1],
        "duration_s": duration_s,
        "n_frames": fps * duration_s,
        "background": BACKGROUND_NAME,
        "palette": {name: list(rgb) for name, rgb in PALETTE.items()},
        "seconds": [_second_record(tracks, s) for s in range(duration_s)],
    }


def load_ground_truth(path: str | Path) -> dict[str, Any]:
    """Read the timeline JSON beside a probe video (pass the .mp4 or the .json)."""
    json_path = Path(path).with_suffix(".json")
    if not json_path.is_file():
        raise FileNotFoundError(f"no ground-truth timeline beside {path} (expected {json_path})")
    return json.loads(json_path.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------------------------
# Rendering and encoding


def _render_frames(tracks: list[Track], size: tuple[int, int], fps: int, n_frames: int) -> Iterator[np.ndarray]:
    from PIL import Image, ImageDraw

    width, height = size
    radius = _OBJECT_RADIUS * height
    for i in range(n_frames):
        t_s = i / fps
        image = Image.new("RGB", size, BACKGROUND_RGB)
        draw = ImageDraw.Draw(image)
        for track in tracks:
            if not track.present(t_s):
                continue
            x, y = track.xy_at(t_s)
            cx, cy = x * width, y * height
            fill = PALETTE[track.colour_at(t_s)]
            if track.shape == "circle":
                draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=fill)
            elif track.shape == "square":
                half = 0.85 * radius
                draw.rectangle((cx - half, cy - half, cx + half, cy + half), fill=fill)
            else:
                draw.regular_polygon((cx, cy, radius), 3, fill=fill)
        yield np.asarray(image)


def _rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H * 3 / 2, W) planar yuv420p, BT.601 limited range, computed in numpy.

    Converting here instead of letting swscale do it keeps the bytes reproducible: swscale picks
    SIMD or C paths by buffer alignment, which varies with the process's allocation history, and the
    paths round differently (seen: one byte of difference after other decoding in the same process).
    Chroma is averaged over 2x2 blocks as exact integer sums, so no float summation order is involved.
    """
    height, width = rgb.shape[:2]
    pixels = rgb.astype(np.int64)
    block_means = pixels.reshape(height // 2, 2, width // 2, 2, 3).sum(axis=(1, 3)) / 4.0

    def luma(c: np.ndarray) -> np.ndarray:
        return 16 + (65.481 * c[..., 0] + 128.553 * c[..., 1] + 24.966 * c[..., 2]) / 255

    def chroma_blue(c: np.ndarray) -> np.ndarray:
        return 128 + (-37.797 * c[..., 0] - 74.203 * c[..., 1] + 112.0 * c[..., 2]) / 255

    def chroma_red(c: np.ndarray) -> np.ndarray:
        return 128 + (112.0 * c[..., 0] - 93.786 * c[..., 1] - 18.214 * c[..., 2]) / 255

    planes = [luma(pixels).ravel(), chroma_blue(block_means).ravel(), chroma_red(block_means).ravel()]
    return np.clip(np.rint(np.concatenate(planes)), 0, 255).astype(np.uint8).reshape(height * 3 // 2, width)


def _write_mp4(path: Path, frames: Iterable[np.ndarray], fps: int, size: tuple[int, int]) -> Path:
    """Encode RGB frames (H, W, 3 uint8) as H.264/yuv420p MP4, atomically, with fixed settings."""
    import av

    width, height = size
    if width % 2 or height % 2 or width <= 0 or height <= 0:
        raise ValueError(f"video size must be positive and even for yuv420p, got {width}x{height}")
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=fps, options={**_X264_OPTIONS, "g": str(2 * fps)})
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.thread_count = 1
            for frame in frames:
                yuv = av.VideoFrame.from_ndarray(_rgb_to_yuv420p(frame), format="yuv420p")
                for packet in stream.encode(yuv):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path


def probe_video_name(scenario: str, seed: int, size: tuple[int, int], fps: int, duration_s: int) -> str:
    """Cache file name: everything that changes the bytes is in it.

    >>> probe_video_name("events", 0, (320, 240), 10, 8)
    'events_seed0_320x240_10fps_8s_v1.mp4'
    """
    return f"{scenario}_seed{seed}_{size[0]}x{size[1]}_{fps}fps_{duration_s}s_v{GENERATOR_VERSION}.mp4"


def generate_probe_video(
    scenario: str,
    path: str | Path,
    *,
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    fps: int = DEFAULT_FPS,
    duration_s: int | None = None,
) -> Path:
    """Render and write one probe video plus its ground-truth JSON beside it; returns the .mp4 path."""
    if scenario not in ALL_SCENARIOS:
        raise ValueError(f"unknown probe scenario {scenario!r}; available: {', '.join(ALL_SCENARIOS)}")
    duration_s = DEFAULT_DURATION_S[scenario] if duration_s is None else duration_s
    if int(duration_s) != duration_s or duration_s < 2:
        raise ValueError(f"duration_s must be a whole number of seconds >= 2, got {duration_s}")
    if int(fps) != fps or fps <= 0:
        raise ValueError(f"fps must be a positive whole number, got {fps}")
    duration_s, fps = int(duration_s), int(fps)
    path = Path(path)
    truth = ground_truth(scenario, seed, size, fps, duration_s)
    tracks = scenario_tracks(scenario, seed, duration_s)
    _write_mp4(path, _render_frames(tracks, size, fps, fps * duration_s), fps, size)
    # The JSON goes last: a video without its timeline counts as missing and is regenerated.
    write_json(path.with_suffix(".json"), truth)
    return path


def ensure_probe_videos(
    names: Iterable[str] | None = None,
    seed: int = 0,
    *,
    size: tuple[int, int] = DEFAULT_SIZE,
    fps: int = DEFAULT_FPS,
    duration_s: int | None = None,
    out_dir: str | Path | None = None,
) -> dict[str, Path]:
    """Probe videos by scenario name, generated into the cache (paths.probe_videos_dir()) if missing."""
    names = list(SCENARIOS if names is None else names)
    unknown = [name for name in names if name not in ALL_SCENARIOS]
    if unknown:
        raise ValueError(f"unknown probe scenario(s) {unknown}; available: {', '.join(ALL_SCENARIOS)}")
    directory = Path(out_dir) if out_dir is not None else paths.probe_videos_dir()
    videos: dict[str, Path] = {}
    for name in names:
        duration = DEFAULT_DURATION_S[name] if duration_s is None else duration_s
        path = directory / probe_video_name(name, seed, size, fps, duration)
        if not (path.is_file() and path.with_suffix(".json").is_file()):
            generate_probe_video(name, path, seed=seed, size=size, fps=fps, duration_s=duration)
        videos[name] = path
    return videos


def ensure_long_video(
    scenario: str = "events", seed: int = 0, *, size: tuple[int, int] = (1280, 720), fps: int = 25,
    duration_s: int = 60, out_dir: str | Path | None = None,
) -> Path:
    """A long, large probe video (60 s of 1280x720 at 25 fps by default) for decode benchmarks."""
    return ensure_probe_videos([scenario], seed, size=size, fps=fps, duration_s=duration_s, out_dir=out_dir)[scenario]


# ----------------------------------------------------------------------------------------------
# Index videos: each frame shows its own number


INDEX_GRID = (4, 4)  # rows, columns of black/white cells: 16 bits, most significant bit top-left
_INDEX_BITS = INDEX_GRID[0] * INDEX_GRID[1]


def index_pattern(index: int, size: tuple[int, int]) -> np.ndarray:
    """The (H, W, 3) uint8 frame that encodes `index`: white cell = 1, black cell = 0."""
    if not 0 <= index < 2**_INDEX_BITS:
        raise ValueError(f"frame index {index} does not fit in {_INDEX_BITS} bits")
    width, height = size
    bits = np.array([(index >> (_INDEX_BITS - 1 - b)) & 1 for b in range(_INDEX_BITS)], dtype=np.uint8)
    cells = bits.reshape(INDEX_GRID) * 255
    rows = np.arange(height) * INDEX_GRID[0] // height
    cols = np.arange(width) * INDEX_GRID[1] // width
    return np.repeat(cells[rows][:, cols][:, :, None], 3, axis=2)


def write_index_video(path: str | Path, n_frames: int, fps: int, size: tuple[int, int] = (160, 120)) -> Path:
    """Write a video whose frame i shows i in a 4x4 black/white grid (read back with read_frame_index)."""
    if n_frames <= 0:
        raise ValueError(f"n_frames must be positive, got {n_frames}")
    return _write_mp4(Path(path), (index_pattern(i, size) for i in range(n_frames)), fps, size)


def read_frame_index(frame: np.ndarray) -> int:
    """Decode the number shown by an index-video frame (H, W, 3), at any size the sampler resized it to.

    Reads the middle half of each cell, so block edges blurred by compression or resizing do not
    matter; a cell that is neither clearly black nor clearly white means this is not an index frame.

    >>> read_frame_index(index_pattern(1234, (64, 48)))
    1234
    """
    gray = np.asarray(frame, dtype=np.float64)
    if gray.ndim == 3:
        gray = gray.mean(axis=2)
    height, width = gray.shape
    value = 0
    for r in range(INDEX_GRID[0]):
        for c in range(INDEX_GRID[1]):
            y0, y1 = (4 * r + 1) * height // (4 * INDEX_GRID[0]), (4 * r + 3) * height // (4 * INDEX_GRID[0])
            x0, x1 = (4 * c + 1) * width // (4 * INDEX_GRID[1]), (4 * c + 3) * width // (4 * INDEX_GRID[1])
            level = gray[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)].mean()
            if 64 < level < 192:
                raise ValueError(f"cell ({r}, {c}) has mean level {level:.0f}: not an index-video frame")
            value = (value << 1) | int(level >= 128)
    return value
