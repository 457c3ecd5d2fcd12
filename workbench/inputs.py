"""Names a notebook parameter may use for a video: a path, or `probe:<scenario>` for a probe video."""

from __future__ import annotations

from pathlib import Path

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
