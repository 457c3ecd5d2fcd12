"""Names a notebook parameter may use for a video: a path, or `probe:<scenario>` for a probe video."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

PROBE_PREFIX = "probe:"


def resolve_video(name: str, seed: int = 0) -> Path:
    """Path of the video a parameter names; probe videos are generated (and cached) on first use."""
    if name.startswith(PROBE_PREFIX):
        from workbench.probe_videos import SCENARIOS, ensure_probe_videos

        scenario = name[len(PROBE_PREFIX):]
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown probe video {name!r}; choose one of "
                             f"{', '.join(PROBE_PREFIX + s for s in SCENARIOS)} or give a file path")
        return ensure_probe_videos([scenario], seed=seed)[scenario]
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
                 window_s: float = 1.0, frames_per_window: int = 1, max_side: int = 0, max_pixels: int = 0):
    """Sample frames the way a notebook's parameters say (0 means 'not set' for caps and sizes)."""
    from workbench import video

    resize = {"max_side": max_side or None, "max_pixels": max_pixels or None}
    if mode == "uniform":
        return video.sample_uniform(path, n_frames, **resize)
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
