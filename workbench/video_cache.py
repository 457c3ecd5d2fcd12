"""What the video reader already learned about a file, kept between calls and processes.

Per video file: its packet index (frame times, keyframes, stream facts) and an 8x8 luma fingerprint of
every frame the strict PyAV decode has already verified. A later call on the same file then needs neither
the demux of the whole file nor the strict decode of frames verified before: decord decodes once, and its
pictures are still compared with the stored fingerprints (see `video.sample_*`'s `verify`).

An entry counts only for the same file as it was: same resolved path, size, modification time (ns),
inode, and the same bytes in its first and last 64 KiB. The entries live in `paths.cache_dir() /
"video_index"`, one small .npz per video (about 8 bytes per frame for the index and 256 bytes per
verified frame); they are safe to delete. An unreadable, stale or older-format entry is ignored and
rewritten; a cache folder that cannot be written only costs the speed-up.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Bump when the stored arrays or the meaning of a verified frame change: older entries are then ignored.
FORMAT_VERSION = 1
_EDGE_BYTES = 64 * 1024


@dataclass
class Entry:
    """One video's cached facts: `info` holds VideoInfo's fields except `path`."""

    info: dict
    pts: np.ndarray | None  # (n_frames,) int64 sorted presentation times, or None when the file has none
    keyframes: np.ndarray  # (K,) int64 presentation indices of keyframes
    time_base: tuple[int, int] | None  # (numerator, denominator)
    fingerprints: dict[int, np.ndarray]  # frame index -> (8, 8) float32 luma block means, verified frames only


def cache_folder() -> Path:
    from workbench import paths

    return paths.cache_dir() / "video_index"


def file_key(path: str | Path) -> str | None:
    """A digest of what identifies the file's content cheaply; None if it cannot be read."""
    try:
        resolved = Path(path).resolve()
        stat = resolved.stat()
        digest = hashlib.sha256(json.dumps([FORMAT_VERSION, str(resolved), stat.st_size, stat.st_mtime_ns,
                                            stat.st_ino]).encode())
        with open(resolved, "rb") as handle:
            digest.update(handle.read(_EDGE_BYTES))
            handle.seek(max(stat.st_size - _EDGE_BYTES, 0))
            digest.update(handle.read(_EDGE_BYTES))
    except OSError:
        return None
    return digest.hexdigest()


def entry_path(path: str | Path) -> Path:
    name = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:32]
    return cache_folder() / f"{name}.npz"


def load(path: str | Path, key: str | None) -> Entry | None:
    """The entry stored for this file as it is now, or None (none stored, stale, or unreadable)."""
    if key is None:
        return None
    stored = entry_path(path)
    try:
        # Read whole, then parsed in memory: np.load on the file seeks and tells once per member (~20 ms).
        with np.load(io.BytesIO(stored.read_bytes()), allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            time_base = tuple(int(v) for v in data["time_base"])
            return Entry(
                info=json.loads(str(data["info"])),
                pts=data["pts"].astype(np.int64) if bool(data["has_pts"]) else None,
                keyframes=data["keyframes"].astype(np.int64),
                time_base=time_base if time_base[1] else None,  # type: ignore[arg-type]
                fingerprints=dict(zip(data["fp_indices"].tolist(), data["fp_values"])),
            )
    except (OSError, ValueError, KeyError, EOFError):  # missing, half-written by a crash, older format
        return None


def save(path: str | Path, key: str | None, entry: Entry) -> None:
    """Store the entry atomically; a cache that cannot be written is skipped (it only saves time)."""
    if key is None:
        return
    indices = np.array(sorted(entry.fingerprints), dtype=np.int64)
    values = (np.stack([entry.fingerprints[i] for i in indices.tolist()]).astype(np.float32) if len(indices)
              else np.zeros((0, 8, 8), np.float32))
    target = entry_path(path)
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Renamed into place, not fsynced: a crash leaves the old entry or an unreadable one, both ignored.
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, key=np.array(key), info=np.array(json.dumps(entry.info)),
                     has_pts=np.array(entry.pts is not None),
                     pts=entry.pts if entry.pts is not None else np.zeros(0, np.int64),
                     keyframes=entry.keyframes, time_base=np.array(entry.time_base or (0, 0), np.int64),
                     fp_indices=indices, fp_values=values)
        os.replace(tmp, target)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def clear() -> int:
    """Delete every stored entry; returns how many there were."""
    removed = 0
    for stored in cache_folder().glob("*.npz") if cache_folder().exists() else []:
        stored.unlink(missing_ok=True)
        removed += 1
    return removed
