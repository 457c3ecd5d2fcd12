"""What the video reader already learned about a file, kept between calls and processes.

Per video file: its packet index (frame times, keyframes, stream facts) and an 8x8 luma fingerprint of
every frame the strict PyAV decode has already verified. A later call on the same file then needs neither
the demux of the whole file nor the strict decode of frames verified before: decord decodes once, and its
pictures are still compared with the stored fingerprints (see `video.sample_*`'s `verify`), once per
distinct decord read (the entry keeps a digest of each read that matched).

An entry counts only for the same file as it was: same resolved path, size, modification time (ns),
inode, and the same bytes in its first and last 64 KiB. The entries live in `paths.cache_dir() /
"video_index"`, one small file per video (about 8 bytes per frame for the index and 264 bytes per
verified frame); they are safe to delete. An unreadable, stale or older-format entry is ignored and
rewritten; a cache folder that cannot be written only costs the speed-up.

An entry is a JSON header (the key, the stream facts, the arrays' lengths) and then the arrays' raw
little-endian bytes, read back with `np.frombuffer`: 0.07 ms to read and parse the events probe's entry,
where the .npz of format 1 took 0.36 ms (a zip member and a parsed .npy header for each of 8 arrays) and
was read twice per 04 pass and once more on a file's first read.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# At import, not in the first lookup: a file's first read would otherwise pay for it (0.6 ms, a sixtieth of a
# small clip's read); every entry point that reads video imports it anyway.
from workbench import paths

# Bump when the stored arrays or the meaning of a verified frame change: older entries are then ignored.
FORMAT_VERSION = 2
SUFFIX = ".vidx"
_MAGIC = b"WBVIDX2\n"
_EDGE_BYTES = 64 * 1024
# (field, dtype, shape of one item) in the order the arrays follow the header
_ARRAYS = (("pts", "<i8", ()), ("keyframes", "<i8", ()), ("fp_indices", "<i8", ()), ("fp_values", "<f4", (8, 8)))


@dataclass
class Entry:
    """One video's cached facts: `info` holds VideoInfo's fields except `path`."""

    info: dict
    pts: np.ndarray | None  # (n_frames,) int64 sorted presentation times, or None when the file has none
    keyframes: np.ndarray  # (K,) int64 presentation indices of keyframes
    time_base: tuple[int, int] | None  # (numerator, denominator)
    fingerprints: dict[int, np.ndarray]  # frame index -> (8, 8) float32 luma block means, verified frames only
    # Whether decord gives PyAV's pixels for this file, once a first read returned PyAV's frames (see
    # video._first_read): None (no such read), {"state": "unconfirmed", "frame": i, "sha256": hex digest of
    # PyAV's RGB bytes of frame i}, {"state": "same"} or {"state": "differs", "frame": i}.
    decord_pixels: dict | None = None
    # Digests of decord reads (size, frame indices, decord's version) whose pictures matched `fingerprints`,
    # oldest first (video._decord_request): the same read again is not compared again.
    decord_checked: list[str] = field(default_factory=list)


def cache_folder() -> Path:
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
    return cache_folder() / f"{name}{SUFFIX}"


def _encode(key: str, entry: Entry) -> bytes:
    indices = np.array(sorted(entry.fingerprints), dtype=np.int64)
    values = (np.stack([entry.fingerprints[i] for i in indices.tolist()]) if len(indices)
              else np.zeros((0, 8, 8)))
    arrays = {"pts": entry.pts if entry.pts is not None else np.zeros(0), "keyframes": entry.keyframes,
              "fp_indices": indices, "fp_values": values}
    header = json.dumps({"key": key, "info": entry.info, "has_pts": entry.pts is not None,
                         "time_base": list(entry.time_base) if entry.time_base else None,
                         "decord_pixels": entry.decord_pixels, "decord_checked": entry.decord_checked,
                         "lengths": [len(arrays[name]) for name, _, _ in _ARRAYS]}).encode()
    parts = [_MAGIC, len(header).to_bytes(4, "little"), header]
    parts += [np.ascontiguousarray(arrays[name], dtype=dtype).tobytes() for name, dtype, _ in _ARRAYS]
    return b"".join(parts)


def _decode(data: bytes, key: str) -> Entry | None:
    """The entry in `data` if it is whole and stored under `key`; ValueError/KeyError if it is malformed."""
    if not data.startswith(_MAGIC):
        raise ValueError("not a video index entry of this format")
    start = len(_MAGIC) + 4
    end = start + int.from_bytes(data[len(_MAGIC):start], "little")
    header = json.loads(data[start:end])
    if header["key"] != key:
        return None
    arrays = {}
    for (name, dtype, shape), length in zip(_ARRAYS, header["lengths"], strict=True):
        count = length * int(np.prod(shape, dtype=np.int64))
        arrays[name] = np.frombuffer(data, dtype, count, end).reshape(length, *shape)
        end += arrays[name].nbytes
    if end != len(data):
        raise ValueError("video index entry has trailing or missing bytes")
    time_base = header["time_base"]
    return Entry(
        info=header["info"],
        pts=arrays["pts"].astype(np.int64) if header["has_pts"] else None,
        keyframes=arrays["keyframes"].astype(np.int64),
        time_base=tuple(time_base) if time_base else None,  # type: ignore[arg-type]
        fingerprints=dict(zip(arrays["fp_indices"].tolist(), arrays["fp_values"].astype(np.float32))),
        decord_pixels=header.get("decord_pixels"),
        decord_checked=list(header.get("decord_checked") or []),
    )


def load(path: str | Path, key: str | None) -> Entry | None:
    """The entry stored for this file as it is now, or None (none stored, stale, or unreadable)."""
    if key is None:
        return None
    try:
        return _decode(entry_path(path).read_bytes(), key)
    except (OSError, ValueError, KeyError, TypeError):  # missing, half-written by a crash, another format
        return None


def save(path: str | Path, key: str | None, entry: Entry) -> None:
    """Store the entry atomically; a cache that cannot be written is skipped (it only saves time)."""
    if key is None:
        return
    data = _encode(key, entry)
    target = entry_path(path)
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Renamed into place, not fsynced: a crash leaves the old entry or an unreadable one, both ignored.
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def clear() -> int:
    """Delete every stored entry (format 1's .npz files too); returns how many there were."""
    removed = 0
    folder = cache_folder()
    for stored in [*folder.glob(f"*{SUFFIX}"), *folder.glob("*.npz")] if folder.exists() else []:
        stored.unlink(missing_ok=True)
        removed += 1
    return removed
