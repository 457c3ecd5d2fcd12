"""Decode only the frames a model will see: uniform, fixed-fps or per-window sampling with decord.

Every frame returned is first checked with PyAV, because decord (decord2 3.4 as much as decord 0.6) on a
damaged file either fails with an opaque C++ message, silently returns fewer frames than the file
claims, or returns concealed garbage or wrong frames without complaint (benchmarks/decord_integrity.py
and docs/video_benchmark.md list the cases). The check reads the packet index (no decoding) and then
decodes, strictly, just the groups of pictures that hold the requested frames; decord then decodes and
resizes those frames, and its pictures are compared with PyAV's. (On a file's first read at its stored
size the strict decode's own frames are returned instead, with no decord at all; the next read through
decord at that size confirms that decord gives the same bytes for one of them, or hands the file to PyAV
for good: `_first_read`, `_decord_frames`; a rerun gets the same pixels either way.) Start times always come
from the packet index. Any problem with the file becomes a `VideoError` that names it and what is wrong.

The check is done once per file (`verify="once"`, the default): the packet index and a fingerprint of every
frame the strict decode verified are cached (`workbench.video_cache`, keyed by the file's path, size,
mtime and end bytes), so a later call on frames already verified decodes once, with decord, and still
compares decord's pictures with the cached fingerprints, once per distinct decord read (the same frames at the
same size again are not compared again: `_decord_request`). `verify="always"` checks on every call without
the cache; `verify="off"` skips the strict decode and the comparison (trusted files only).

Where decord cannot give the right frames although the file is fine (90/270-degree display rotation,
some narrow sizes such as 16x512, MPEG-TS and AVI where it seeks to the wrong frames), PyAV decodes
them with the same contract (frames, exact timestamps, indices) and `Frames.notes` says so. So it does where
decord does not return at all: each decord read runs in a thread of its own with a deadline (60 s plus 2 s a
frame; decord has native loops and deadlocks on some files), and a read past it is given up, its thread left
behind, and the file decoded by PyAV for the rest of the process.

Memory grows with the number of frames asked for, never with the length of the video.

FFmpeg picks its own number of decoding threads unless a caller says otherwise for the reads it makes in one
thread (`decoder_threads`): a read in the background while a model captions takes only the cores the model
leaves free (`quality.timeline` reads ahead this way).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Literal

import hashlib
import threading
import warnings

import numpy as np

# Imported here, not in the sampling call: its imports (hashlib) are a fifth of a small cached call's time.
from workbench import sampling, video_cache

SampleMode = Literal["uniform", "fps", "windows"]
SAMPLE_MODES: tuple[str, ...] = ("uniform", "fps", "windows")

# Abort on the first bitstream error instead of concealing it: a concealed frame looks plausible
# but is not what the file holds.
_STRICT_DECODE = {"err_detect": "crccheck+bitstream+buffer+explode"}
# A container may claim a duration a little longer than its video stream (audio, rounding); only
# a gap bigger than this counts as truncation when the container gives no frame count.
_DURATION_SLACK_S = 1.0
# Mean absolute difference (0-255 luma) between 8x8 block means of the same frame from PyAV and from
# decord: about 2 when resized, 16 or more between neighbouring frames of an index video.
_FINGERPRINT_TOLERANCE = 8.0
# Fingerprints read every s-th pixel so that the shorter side keeps at least this many (see _sparse).
_FINGERPRINT_SIDE = 144
# Pixel formats whose first plane is 8-bit luma (fingerprinted without scaling; see _fingerprint_frame).
_Y8_FORMATS = frozenset({"yuv420p", "yuv422p", "yuv444p", "yuv440p", "yuv411p", "yuv410p", "yuvj420p",
                         "yuvj422p", "yuvj444p", "yuvj440p", "yuvj411p", "nv12", "nv21", "nv16", "gray"})
# Digests of decord reads whose pictures matched kept per file (_Known.remember_checked).
_DECORD_CHECKED_KEPT = 64
# FFmpeg decoding threads for this thread's reads (0: FFmpeg's own choice); see decoder_threads.
_DECODER_THREADS: ContextVar[int] = ContextVar("workbench_decoder_threads", default=0)
# A decord read still going after this long (plus the per-frame allowance) counts as hung: decord has native
# loops and deadlocks that never return on some files (dmlc/decord issues 154, 269, 373, 375). Its thread is left
# behind (decord's calls release the GIL, so the caller goes on), the file is decoded by PyAV with a note, and
# decord is not asked again for that file in this process. A read of 16 frames of 1280x720 takes 0.1 s here.
_DECORD_DEADLINE_S = 60.0
_DECORD_DEADLINE_PER_FRAME_S = 2.0
_DECORD_HUNG: dict[str, float] = {}  # resolved path -> the deadline decord did not meet on it
# Frames per decord get_batch call; the copy out of each chunk is what the peak adds beyond the result.
_DECODE_CHUNK = 8
# Packets to feed the decoder while looking for a first frame to read the rotation from.
_FIRST_FRAME_PACKETS = 16
# Containers in which decord seeks to the wrong frames (checked with decord2 3.4.0 in
# benchmarks/decord_integrity.py): PyAV decodes them directly instead of decord plus a fallback.
_PYAV_CONTAINERS = frozenset({"mpegts", "avi"})
ShortClipPolicy = Literal["repeat", "all", "error"]
SHORT_CLIP_POLICIES: tuple[str, ...] = ("repeat", "all", "error")
# once: strict PyAV check of each frame the first time it is asked for, cached per file (the default);
# always: the check on every call, no cache; off: no strict decode, no picture comparison (trusted files).
VerifyPolicy = Literal["once", "always", "off"]
VERIFY_POLICIES: tuple[str, ...] = ("once", "always", "off")


class ShortClipWarning(UserWarning):
    """Fewer frames in the clip than asked for; the policy used is in the message."""


class VideoError(ValueError):
    """A video that cannot be sampled as asked; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    n_frames: int  # frames actually present in the stream (packets counted, not the header's claim)
    fps: float
    duration_s: float  # n_frames / fps: the span the frame indices cover
    width: int  # as stored; frames come back upright, at display_width x display_height
    height: int
    # Counter-clockwise degrees (0, 90, 180, 270) to turn a stored picture to show it, as the display
    # matrix says: ffprobe's "rotation of -90 degrees" (a phone's portrait video) is 270 here.
    rotation_deg: int
    codec: str
    container: str = ""  # demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "mpegts"

    @property
    def display_width(self) -> int:
        return self.height if self.rotation_deg in (90, 270) else self.width

    @property
    def display_height(self) -> int:
        return self.width if self.rotation_deg in (90, 270) else self.height


@dataclass
class Frames:
    """Sampled frames and where they came from."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    timestamps_s: np.ndarray  # (T,) float64: each frame's start time as decord reports it
    indices: np.ndarray  # (T,) int64: source frame index of each frame
    info: VideoInfo
    window_ids: np.ndarray | None = None  # (T,) int: window of each frame (windows mode only)
    windows: list[tuple[float, float]] | None = field(default=None)  # (start_s, end_s) per window
    # Plain-words notes on how the frames were obtained (decoder fallback, short-clip policy), for the
    # notebook and the run's records; empty when nothing unusual happened.
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.indices)

    def to_records(self) -> list[dict[str, Any]]:
        """One small dict per frame (index, timestamp, window) for saving next to results."""
        records = []
        for position, (index, timestamp) in enumerate(zip(self.indices, self.timestamps_s)):
            record: dict[str, Any] = {"index": int(index), "timestamp_s": float(timestamp)}
            if self.window_ids is not None and self.windows is not None:
                window = int(self.window_ids[position])
                record["window"] = window
                record["window_start_s"], record["window_end_s"] = self.windows[window]
            records.append(record)
        return records


# ----------------------------------------------------------------------------------------------
# Inspection with PyAV


@dataclass(frozen=True)
class _StreamIndex:
    """What the demuxer says about the video stream, in presentation order."""

    info: VideoInfo
    pts: np.ndarray | None  # (n_frames,) int64 sorted presentation timestamps; None if the file has none
    keyframes: np.ndarray  # presentation indices of keyframes, sorted
    time_base: Fraction | None
    # False: info.rotation_deg is the container's tag (or 0) until a decoded frame's display matrix is read
    # (`_Known.read_rotation`, or the strict decode of a first read: `_first_read`)
    rotation_read: bool = True


def _open_container(path: Path):
    import av

    if not path.exists():
        raise VideoError(path, "file not found")
    if path.is_dir():
        raise VideoError(path, "is a directory, not a video file")
    if path.stat().st_size == 0:
        raise VideoError(path, "file is empty (0 bytes)")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise VideoError(path, f"not a readable video file ({_short(err)})") from err


def _short(err: BaseException) -> str:
    """Last line of a library error, without the C++ source location decord puts in front."""
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    return text.split("] ", 1)[-1] if text.startswith("[") else text


def _fps_of(stream, n_frames: int, path: Path) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(rate)
    if stream.duration and stream.time_base:
        return n_frames / float(stream.duration * stream.time_base)
    raise VideoError(path, "frame rate unknown: the container gives no rate or duration")


def _frame_rotation(frame) -> int:
    """A decoded frame's counter-clockwise display rotation in degrees, a multiple of 90 (odd angles round)."""
    return int(round(frame.rotation / 90)) * 90 % 360 if frame.rotation else 0


def _rotation_of(stream, first_frame) -> int:
    """Counter-clockwise display rotation in degrees, a multiple of 90 (odd angles round to one)."""
    if first_frame is not None and first_frame.rotation:
        return _frame_rotation(first_frame)
    tag = stream.metadata.get("rotate")  # the older tag counts clockwise
    if tag is not None:
        try:
            return -int(round(float(tag) / 90)) * 90 % 360
        except ValueError:
            pass
    return 0


@contextmanager
def decoder_threads(threads: int) -> Iterator[None]:
    """Decode with `threads` FFmpeg threads (0: FFmpeg's own choice, the default) in the reads this thread makes
    inside the block, PyAV's and decord's alike; other threads keep their own setting. The frames are the same
    bytes whatever the number (FFmpeg's threaded decoding is bit-exact)."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"decoder threads must be an int >= 0 (0: FFmpeg's own choice), got {threads!r}")
    token = _DECODER_THREADS.set(threads)
    try:
        yield
    finally:
        _DECODER_THREADS.reset(token)


def _open_for_decoding(path: Path):
    """A PyAV container whose video decoder (not opened yet) fails on any bitstream error, with threads."""
    container = _open_container(path)
    if container.streams.video:
        stream = container.streams.video[0]
        if stream.codec_context is None:  # FFmpeg has no decoder for what the header names
            container.close()
            raise VideoError(path, "no decoder for its video codec (an unsupported codec, or a damaged header)")
        stream.codec_context.options = dict(_STRICT_DECODE)
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = _DECODER_THREADS.get()
    return container


def _inspect(path: str | Path, container) -> _StreamIndex:
    """Count the video packets with PyAV and check them against what the container claims.

    `container` (from `_open_for_decoding`) is demuxed here and left open: the strict decode that follows a
    first read seeks back in it (one open instead of two, 2-12 ms a file on the real clips). Nothing is
    decoded here, so the display rotation is the container tag's (or 0) until a decoded frame is read
    (`rotation_read` False): by `_Known.read_rotation`, or by a first read at the stored size from its own
    strict decode (see `_read`), which saves decoding the first frames twice (2-2.5 ms of a 176x144 clip's
    45 ms first read).
    """
    import av

    path = Path(path)
    if not container.streams.video:
        raise VideoError(path, "contains no video stream")
    stream = container.streams.video[0]
    timestamps: list[int | None] = []
    key_positions: list[int] = []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the empty packet that marks the end of the stream
                continue
            if packet.is_keyframe:
                key_positions.append(len(timestamps))
            timestamps.append(packet.pts if packet.pts is not None else packet.dts)
    except av.error.FFmpegError as err:
        raise VideoError(
            path, f"truncated or damaged: reading stopped after {len(timestamps)} frames ({_short(err)})"
        ) from err
    n_frames = len(timestamps)
    if n_frames == 0:
        raise VideoError(path, "video stream has no frames (0 frames)")
    fps = _fps_of(stream, n_frames, path)
    known_times = [t for t in timestamps if t is not None]
    if known_times and stream.time_base:
        start_s = float(min(known_times) * stream.time_base)
    else:
        start_s = container.start_time / 1_000_000 if container.start_time is not None else 0.0
    _check_not_truncated(path, container, stream, n_frames, fps, start_s)
    info = VideoInfo(
        path=path,
        n_frames=n_frames,
        fps=fps,
        duration_s=n_frames / fps,
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        rotation_deg=_rotation_of(stream, None),
        codec=stream.codec_context.name,
        container=container.format.name,
    )
    if any(t is None for t in timestamps):
        return _StreamIndex(info, None, np.array([0]), None, rotation_read=False)
    decode_order = np.array(timestamps, dtype=np.int64)
    pts = np.sort(decode_order)
    # Frame 0 always counts: a damaged stream may flag no keyframe at all, and decoding from the
    # start is then the only way in.
    # (sorted in Python: np.union1d's first call in a process imports numpy.dtypes, 0.1 s of CPU)
    keyframes = np.array(sorted({0, *np.searchsorted(pts, decode_order[key_positions]).tolist()}), np.int64)
    return _StreamIndex(info, pts, keyframes, stream.time_base, rotation_read=False)


def _first_rotation(path: Path, container) -> int:
    """The display rotation of a file's first decodable frame (the tag's, or 0, if none decodes early)."""
    import av

    stream = container.streams.video[0]
    try:
        container.seek(0, backward=True)
        first_frame = None
        for position, packet in enumerate(container.demux(stream)):
            if packet.size:
                # (strict and threaded: a damaged packet gives None here, and frames come a few packets late)
                first_frame = _first_decoded(packet)
            if first_frame is not None or position + 1 >= _FIRST_FRAME_PACKETS:
                break
        if first_frame is None:
            first_frame = _first_decoded(None, stream)  # a clip shorter than the decoder's delay: drain it
    except av.error.FFmpegError:
        first_frame = None  # damage near the start is left to the decode of the frames asked for
    return _rotation_of(stream, first_frame)


def _first_decoded(packet, stream=None):
    """The frame a packet decodes to, for its display-matrix side data; None if none (yet) or damaged.

    `packet` None with the `stream`: the frames the decoder still holds (it is drained; a seek resets it).

    Damage here is left to the strict decode of the frames actually asked for, which names it.
    """
    import av

    try:
        decoded = packet.decode() if packet is not None else stream.codec_context.decode(None)
    except av.error.FFmpegError:
        return None
    return decoded[0] if decoded else None


def _check_not_truncated(path: Path, container, stream, n_frames: int, fps: float, start_s: float = 0.0) -> None:
    """Raise if fewer frames are present than the container declares.

    `start_s`: when the first frame is. A declared duration may run from time 0 rather than from the first
    frame (Matroska does so for a clip cut from a longer recording with its timestamps kept: 8 s declared for
    3 s of frames from 5 s on), so only a gap beyond that offset counts.
    """
    declared = stream.frames  # 0 when the container does not store a count (mkv, ts, ...)
    if declared and n_frames < declared:
        raise VideoError(path, f"truncated: the container declares {declared} frames but only {n_frames} are present")
    if declared:
        return
    if stream.duration and stream.time_base:
        declared_s = float(stream.duration * stream.time_base)
    elif container.duration:
        declared_s = container.duration / 1_000_000  # av.time_base units
    else:
        return
    present_s = n_frames / fps
    if declared_s - present_s - max(start_s, 0.0) > _DURATION_SLACK_S:
        starting = f" (from {start_s:.2f} s on)" if start_s > _DURATION_SLACK_S else ""
        raise VideoError(
            path, f"truncated: the container declares {declared_s:.2f} s but only {present_s:.2f} s of frames are "
                  f"present{starting}"
        )


def probe(path: str | Path, *, verify: VerifyPolicy = "once") -> VideoInfo:
    """Frame count, rate, size, rotation and codec of a video; raises VideoError if it is unusable.

    The packet index behind it is cached per file unless `verify="always"`.
    """
    known = _known(path, verify)
    known.close()
    known.save()
    return known.index.info


@dataclass
class _Known:
    """A file's packet index and the fingerprints of its frames verified so far (cache-backed)."""

    index: _StreamIndex
    fingerprints: dict[int, np.ndarray]
    key: str | None  # video_cache.file_key; None: not cached (verify="always", or unreadable)
    unsaved: bool = False  # learned something the cache does not hold yet
    container: Any = None  # the container the index was just read from, open for this call's strict decode
    decord_pixels: dict | None = None  # whether decord gives PyAV's pixels (video_cache.Entry.decord_pixels)
    decord_checked: list[str] = field(default_factory=list)  # decord reads that matched (_decord_request)

    def take_container(self):
        """The open container, for one strict decode that closes it; None if there is none."""
        container, self.container = self.container, None
        return container

    def close(self) -> None:
        if self.container is not None:
            self.take_container().close()

    def remember(self, fingerprints: dict[int, np.ndarray]) -> None:
        self.fingerprints.update(fingerprints)
        self.unsaved = self.unsaved or bool(fingerprints)

    def read_rotation(self) -> None:
        """Read the display rotation from the first decoded frame if the index does not hold it yet."""
        if self.index.rotation_read:
            return
        path = self.index.info.path
        if self.container is not None:  # left open: the strict decode that may follow seeks back in it
            rotation = _first_rotation(path, self.container)
        else:
            with _open_for_decoding(path) as container:
                rotation = _first_rotation(path, container)
        self.set_rotation(rotation)

    def set_rotation(self, rotation: int) -> None:
        from dataclasses import replace

        self.index = replace(self.index, info=replace(self.index.info, rotation_deg=rotation), rotation_read=True)

    @property
    def decord_state(self) -> str | None:
        return None if self.decord_pixels is None else self.decord_pixels["state"]

    def set_decord_pixels(self, pixels: dict) -> None:
        self.decord_pixels = pixels
        self.unsaved = True

    def remember_checked(self, request: str) -> None:
        """A decord read whose pictures matched the fingerprints (the latest _DECORD_CHECKED_KEPT kept)."""
        if self.key is None:  # verify="always": nothing is kept between calls
            return
        self.decord_checked = [*(r for r in self.decord_checked if r != request), request][-_DECORD_CHECKED_KEPT:]
        self.unsaved = True

    def save(self) -> None:
        """Write the entry once per call, after the check (one small file write, no fsync); never before the
        rotation is read."""
        if self.unsaved and self.key is not None and self.index.rotation_read:
            video_cache.save(self.index.info.path, self.key,
                             _entry(self.index, self.fingerprints, self.decord_pixels, self.decord_checked))
        self.unsaved = False


def _known(path: str | Path, verify: VerifyPolicy, read_rotation: bool = True) -> _Known:
    """The file's packet index (from the cache when this file, unchanged, was read before) and verified frames.

    `read_rotation` False leaves a new index's rotation to be read later (`_Known.read_rotation`, `_read`)."""
    if verify not in VERIFY_POLICIES:
        raise VideoError(path, f"unknown verify policy {verify!r}; choose one of {', '.join(VERIFY_POLICIES)}")
    key = None if verify == "always" else video_cache.file_key(path)
    stored = video_cache.load(path, key)  # None for key None
    if stored is not None:
        info = VideoInfo(path=Path(path), **stored.info)
        return _Known(_StreamIndex(info, stored.pts, stored.keyframes,
                                   Fraction(*stored.time_base) if stored.time_base else None),
                      stored.fingerprints, key, decord_pixels=stored.decord_pixels,
                      decord_checked=stored.decord_checked)
    container = _open_for_decoding(Path(path))  # raises VideoError for a missing or empty file
    try:
        index = _inspect(path, container)  # raises VideoError for a damaged file: nothing is cached
    except BaseException:
        container.close()
        raise
    known = _Known(index, {}, key, unsaved=key is not None, container=container)
    if read_rotation:
        known.read_rotation()
    return known


def _entry(index: _StreamIndex, fingerprints: dict[int, np.ndarray], decord_pixels: dict | None = None,
           decord_checked: list[str] | None = None):
    from dataclasses import asdict

    info = {k: v for k, v in asdict(index.info).items() if k != "path"}
    time_base = (index.time_base.numerator, index.time_base.denominator) if index.time_base else None
    return video_cache.Entry(info, index.pts, np.asarray(index.keyframes, np.int64), time_base, fingerprints,
                             decord_pixels, list(decord_checked or []))


def _reference_fingerprints(
    path: Path, index: _StreamIndex, wanted: list[int], container=None
) -> dict[int, np.ndarray]:
    """Decode the frames `wanted` (sorted, unique) strictly with PyAV; return an 8x8 luma fingerprint of each,
    and of every other frame decoded clean on the way (the cache keeps them all as verified).

    Mirrors what decord will do (seek to the keyframe before a frame, decode forward), so damage in
    the frames we will return surfaces here as an error instead of coming back as concealed garbage.
    The fingerprints let us check that decord then returns these same pictures.
    """
    fingerprints: dict[int, np.ndarray] = {}

    def keep(frame_index: int, frame) -> None:
        fingerprints[frame_index] = _fingerprint_frame(frame)

    _decode_strict(path, index, wanted, keep, passed=keep, container=container)
    return fingerprints


def _first_read(
    path: Path, index: _StreamIndex, indices: list[int], container=None, check_rotation: bool = False
) -> tuple[dict[int, np.ndarray], np.ndarray, dict]:
    """The strict check of a first read at the stored size, keeping the wanted frames as well:
    (fingerprints, frames, what decord must confirm).

    The check decodes the same groups of pictures decord would, so decoding them again with decord doubles
    a first read's cost: the check's own frames are returned. Later reads decode with decord, and must give
    the same pixels as this one; that is confirmed on the first of them that reads at the stored size
    (`_frames_of`): decord decodes one frame of this read (the wanted one nearest after its keyframe) and its
    bytes must hash to what PyAV's did here (the codec's output is exact and one conversion serves the whole
    stream). If they do not, that file is decoded by PyAV from then on, so a rerun gets this read's pixels
    either way. Resized reads are not taken here: PyAV's scaler does not match decord's to the byte (bicubic
    is closest, 3 grey levels at most).

    `check_rotation`: the index has not read the display rotation (`_inspect`); the first frame decoded here
    gives it, and one other than 0 raises _Rotated before anything else is done (the read starts over).
    """
    info = index.info
    positions = _positions(indices)
    fingerprints: dict[int, np.ndarray] = {}
    frames = np.empty((len(indices), info.height, info.width, 3), dtype=np.uint8)

    to_rgb = _rgb_converter()
    unchecked = [check_rotation]  # whether the next frame is the first, and its rotation still to be read

    def passed(frame_index: int, frame) -> None:
        if unchecked[0]:
            unchecked[0] = False
            if degrees := _frame_rotation(frame):
                raise _Rotated(degrees)
        fingerprints[frame_index] = _fingerprint_frame(frame)

    def keep(frame_index: int, frame) -> None:
        passed(frame_index, frame)
        frames[positions[frame_index]] = to_rgb(frame)

    _decode_strict(path, index, sorted(positions), keep, passed=passed, container=container)
    nearest = min(positions, key=lambda i: (i - _keyframe_before(index, i), i))
    pixels = {"state": "unconfirmed", "frame": nearest, "sha256": _pixel_digest(frames[positions[nearest][0]])}
    return fingerprints, frames, pixels


def _pixel_digest(frame: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(frame).data).hexdigest()


def _positions(indices: list[int]) -> dict[int, list[int]]:
    """Each distinct frame index -> its positions in `indices` (repeats allowed)."""
    positions: dict[int, list[int]] = {}
    for position, frame_index in enumerate(indices):
        positions.setdefault(frame_index, []).append(position)
    return positions


def _decode_pyav(
    path: Path, index: _StreamIndex, indices: list[int], size: tuple[int, int], container=None
) -> tuple[np.ndarray, np.ndarray]:
    """(frames (T, H, W, 3) uint8 upright at `size` (width, height), start times (T,)) decoded strictly by PyAV.

    The same contract as `_decode`: one frame per entry of `indices` (repeats allowed), in that order.
    """
    info = index.info
    turns = info.rotation_deg // 90
    stored_width, stored_height = (size[1], size[0]) if turns % 2 else size
    frames = np.empty((len(indices), size[1], size[0], 3), dtype=np.uint8)
    positions = _positions(indices)
    to_rgb = _rgb_converter(stored_width, stored_height)

    def keep(frame_index: int, frame) -> None:
        rgb = to_rgb(frame)
        frames[positions[frame_index]] = np.rot90(rgb, turns) if turns else rgb

    _decode_strict(path, index, sorted(positions), keep, container=container)
    return frames, _start_times(index, indices)


def _rgb_converter(width: int | None = None, height: int | None = None):
    """frame -> (height, width, 3) uint8 RGB array, one swscale context kept for the whole stream.

    The same bytes as `frame.to_ndarray(format="rgb24")` (or `frame.reformat(...)`), which set up a new
    context for every frame: 0.2-1.5 ms a frame on the real clips, a tenth of a small clip's first read.
    """
    from av.video.reformatter import VideoReformatter

    reformatter = VideoReformatter()
    return lambda frame: reformatter.reformat(frame, width=width, height=height, format="rgb24").to_ndarray()


def _decode_strict(
    path: Path, index: _StreamIndex, wanted: list[int], keep, passed=None, container=None
) -> None:
    """Decode the frames `wanted` (sorted, unique) with PyAV, failing on any bitstream error; keep(i, frame) each.

    `passed(i, frame)`, if given, also sees each frame decoded clean before a wanted one. `container`: one
    from `_open_for_decoding` to decode in (it is closed after), else the file is opened here.
    """
    with _open_for_decoding(path) if container is None else container as container:
        stream = container.streams.video[0]
        pending = list(wanted)
        seek = index.pts is not None
        while pending:
            pending, overshot = _decode_run(path, container, stream, index, pending, seek, keep, passed)
            if overshot:
                if not seek:
                    raise VideoError(path, f"frame {pending[0]} cannot be decoded (the decoder skips it)")
                # The seek landed past the frame (e.g. an open group of pictures): go through from the start.
                seek = False


def _sparse(images: np.ndarray) -> np.ndarray:
    """Every s-th row and column of (..., H, W, C) images, keeping at least _FINGERPRINT_SIDE of the shorter side.

    Block means over ~18x32 samples of a 720p frame differ from the exact ones by about 1 (0-255 scale), far
    below the tolerance; the exact sums cost 30 ms a 720p frame, more than the rest of a cached call.
    """
    step = max(1, min(images.shape[-3:-1]) // _FINGERPRINT_SIDE)
    return images[..., ::step, ::step, :] if step > 1 else images


def _block_sums(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sums (..., 8, 8, C) uint64, pixel counts (8, 8)) of an 8x8 grid of blocks of (..., H, W, C) uint8 images.

    Where both sides divide by 8 (most frame sizes) the blocks are equal and the sums come from reshaped
    views: the same integers as np.add.reduceat, 2.4-4.7 times faster on the clips measured (not on a 720p
    RGB frame's strided sparse view, 0.27 against 0.22 ms); block i holds the pixels whose index times
    8 // side is i either way. A batch of frames is summed in one pass (`_fingerprints_rgb`).
    """
    height, width = images.shape[-3:-1]
    lead = images.shape[:-3]
    if height % 8 == 0 and width % 8 == 0:
        # 16-bit partial sums where a block's column cannot overflow them (255 x 257 = 65535): half the
        # memory traffic of 32-bit ones, 0.23 against 0.11 ms for 8 frames of 320x240 RGB
        partial = np.uint16 if height // 8 <= 257 else np.uint32
        rows = images.reshape(*lead, 8, height // 8, width, -1).sum(axis=-3, dtype=partial)
        sums = rows.reshape(*lead, 8, 8, width // 8, -1).sum(axis=-2, dtype=np.uint64)
        return sums, np.full((8, 8), (height // 8) * (width // 8))
    row_starts = np.searchsorted(np.arange(height) * 8 // height, np.arange(8))
    col_starts = np.searchsorted(np.arange(width) * 8 // width, np.arange(8))
    sums = np.add.reduceat(np.add.reduceat(images, row_starts, axis=-3, dtype=np.uint32), col_starts, axis=-2,
                           dtype=np.uint64)
    return sums, np.outer(np.diff(row_starts, append=height), np.diff(col_starts, append=width))


def _fingerprint(luma: np.ndarray) -> np.ndarray:
    """Means of an 8x8 grid of blocks of a (H, W) luma image: survives resizing, not a wrong frame."""
    sums, counts = _block_sums(_sparse(luma[:, :, None]))
    return sums[:, :, 0] / counts


def _fingerprint_frame(frame) -> np.ndarray:
    """`_fingerprint` of a decoded PyAV frame's luma, on the same 0-255 scale as `_fingerprint_rgb`.

    Read from the frame's 8-bit Y plane where it has one (scaling to 64x64 grey with swscale cost more
    than decoding the frame), limited-range Y stretched to full range as an RGB conversion does.
    """
    name = frame.format.name
    if name not in _Y8_FORMATS:
        return _fingerprint(frame.reformat(width=64, height=64, format="gray").to_ndarray())
    plane = frame.planes[0]
    luma = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
    means = _fingerprint(luma)
    full_range = name.startswith("yuvj") or name == "gray" or frame.color_range == 2  # 2: AVCOL_RANGE_JPEG
    return means if full_range else (means - 16) * (255 / 219)


def _fingerprints_rgb(rgb: np.ndarray) -> np.ndarray:
    """`_fingerprint` of the luma of each of (..., H, W, 3) uint8 RGB images: (..., 8, 8).

    Block means of luma are luma of the blocks' channel means (luma is linear), so the sums run on the
    uint8 pixels directly: no float copy of a whole frame (that cost 40 ms a 720p frame).
    """
    sums, counts = _block_sums(_sparse(rgb))
    return (sums.astype(np.float64) @ np.array([0.299, 0.587, 0.114])) / counts


def _keyframe_before(index: _StreamIndex, frame: int) -> int:
    return int(index.keyframes[np.searchsorted(index.keyframes, frame, side="right") - 1])


def _decode_run(
    path: Path, container, stream, index: _StreamIndex, pending: list[int], seek: bool,
    keep, passed=None,
) -> tuple[list[int], bool]:
    """Decode forward from the keyframe before pending[0] (or from the start when not seeking).

    Returns the frames still pending and whether the decoder went past pending[0] without producing it.
    When seeking, stops early once the next pending frame lies in a later group of pictures.
    """
    import av

    if seek:
        container.seek(int(index.pts[_keyframe_before(index, pending[0])]), stream=stream, backward=True)
    else:
        container.seek(0, backward=True)
    counted = -1
    frame_index = -1
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                counted += 1
                frame_index = counted if not seek else _presentation_index(index, frame)
                if frame_index < 0:
                    return pending, True  # a frame time not in the packet index: count from the start instead
                if frame_index < pending[0]:
                    if passed is not None and not frame.is_corrupt:
                        passed(frame_index, frame)
                    continue
                if frame_index > pending[0]:
                    return pending, True
                if frame.is_corrupt:
                    raise VideoError(path, f"corrupt video stream: frame {frame_index} decodes with errors")
                keep(frame_index, frame)
                pending = pending[1:]
                if not pending:
                    return pending, False
                if seek and _keyframe_before(index, pending[0]) > frame_index + 1:
                    return pending, False
    except av.error.FFmpegError as err:
        near = max(frame_index, pending[0])
        raise VideoError(path, f"corrupt video stream: decoding fails near frame {near} ({_short(err)})") from err
    raise VideoError(
        path, f"truncated: the stream ends after frame {frame_index} but frame {pending[0]} was asked for"
    )


def _presentation_index(index: _StreamIndex, frame) -> int:
    """Position of a decoded frame's time among the packets' times, or -1 if it is not one of them."""
    if frame.pts is None:
        return -1
    position = int(np.searchsorted(index.pts, frame.pts))
    return position if position < len(index.pts) and index.pts[position] == frame.pts else -1


# ----------------------------------------------------------------------------------------------
# Decoding with decord


def import_decord():
    """`import decord` (the decord2 package), without its CUDA preload on the CPU build.

    decord2 3.4.0 dlopens every library under site-packages/nvidia/*/lib at import when that folder
    exists (torch's CUDA wheels put it there), for its +cu builds. The PyPI build links no CUDA, so
    that only costs memory: about 850 MiB of RSS and 0.5 s here, 540 MiB even after torch is
    imported. Hiding the `nvidia` namespace from its lookup (a None entry in sys.modules makes
    importlib.util.find_spec return None) skips the preload.
    """
    import sys

    if "decord" in sys.modules:
        return sys.modules["decord"]
    from importlib import metadata

    try:
        cuda_build = "+cu" in metadata.version("decord2")
    except metadata.PackageNotFoundError:
        cuda_build = False
    if cuda_build or "nvidia" in sys.modules:
        import decord

        return decord
    sys.modules["nvidia"] = None  # type: ignore[assignment]
    try:
        import decord
    finally:
        if sys.modules.get("nvidia", 0) is None:
            del sys.modules["nvidia"]
    return decord


class _DecordFailed(Exception):
    """decord could not give the right frames of a file PyAV reads fine; the message says why."""


def _decode(path: Path, index: _StreamIndex, indices: list[int], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(frames (T, H, W, 3) uint8, start times (T,) float64) for `indices`, resized by the decoder.

    The start times are the packet index's (`_start_times`), as for frames PyAV decodes, not decord's own.
    """
    decord = import_decord()
    threads = _DECODER_THREADS.get()  # the calling thread's setting; the read runs in a thread of its own
    deadline_s = _DECORD_DEADLINE_S + _DECORD_DEADLINE_PER_FRAME_S * len(indices)
    frames = _within(deadline_s, path, lambda: _decord_read(decord, path, index, indices, size, threads))
    return frames, _start_times(index, indices)


def _within(deadline_s: float, path: Path, read) -> np.ndarray:
    """`read()` in a daemon thread, given up on after `deadline_s` (_DECORD_DEADLINE_S): a hung read's thread
    is left in decord's native code and `_DecordFailed` sends the caller to PyAV."""
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["frames"] = read()
        except BaseException as err:  # raised in the caller's thread below
            outcome["error"] = err
        finally:
            done.set()

    threading.Thread(target=run, name="workbench-decord-read", daemon=True).start()
    if not done.wait(deadline_s):
        _DECORD_HUNG[str(path.resolve())] = deadline_s
        raise _DecordFailed(_hung(deadline_s))
    if "error" in outcome:
        raise outcome["error"]
    return outcome["frames"]


def _hung(deadline_s: float) -> str:
    return (f"decord did not return within {deadline_s:g} s (a hang in its native code, known for some files); "
            f"it is not asked again for this file in this process")


def _decord_read(decord, path: Path, index: _StreamIndex, indices: list[int], size: tuple[int, int],
                 threads: int) -> np.ndarray:
    """decord's frames (T, H, W, 3) uint8 for `indices` at `size`, checked for shape and type."""
    info = index.info
    resize = size != (info.width, info.height)
    try:
        reader = decord.VideoReader(
            str(path), ctx=decord.cpu(0), width=size[0] if resize else -1, height=size[1] if resize else -1,
            num_threads=threads,
        )
        if len(reader) != info.n_frames:
            raise _DecordFailed(f"decord sees {len(reader)} frames but the stream holds {info.n_frames}")
        expected = (len(indices), size[1], size[0], 3)
        if len(indices) <= 2 * _DECODE_CHUNK:
            # One batch: decord's array plus its numpy copy peak no higher than the chunks below would, and
            # the frames are not copied a second time (3 ms a 720p frame).
            frames = _as_numpy(reader.get_batch(indices))
            if frames.shape != expected or frames.dtype != np.uint8:
                raise _DecordFailed(f"decord returned {frames.shape} {frames.dtype} frames, expected "
                                    f"(T, {size[1]}, {size[0]}, 3) uint8")
        else:
            frames = np.empty(expected, dtype=np.uint8)
            # In chunks, copied into one array: decord's batch plus its numpy copy would double the peak.
            for start in range(0, len(indices), _DECODE_CHUNK):
                chunk = _as_numpy(reader.get_batch(indices[start : start + _DECODE_CHUNK]))
                if chunk.shape[1:] != frames.shape[1:] or chunk.dtype != np.uint8:
                    raise _DecordFailed(f"decord returned {chunk.shape} {chunk.dtype} frames, expected "
                                        f"(T, {size[1]}, {size[0]}, 3) uint8")
                frames[start : start + len(chunk)] = chunk
    except (decord.DECORDError, RuntimeError) as err:
        raise _DecordFailed(f"decord failed ({_short(err)})") from err
    return frames


def _as_numpy(batch) -> np.ndarray:
    # Another caller may have switched decord's global bridge to torch; accept either.
    return batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch.cpu())


def _check_same_pictures(
    info: VideoInfo, indices: list[int], frames: np.ndarray, fingerprints: dict[int, np.ndarray]
) -> None:
    """Raise _DecordFailed if decord returned other pictures than PyAV decoded for the same indices.

    decord mis-seeks in some containers (AVI with B-frames, MPEG-TS) and hands back the wrong frames.
    """
    if min(frames.shape[1:3]) < 16:
        return  # too small for an 8x8 grid of blocks to mean anything
    wrong = []
    # A chunk of frames at a time: one pass of numpy for the chunk instead of a dozen calls a frame (1.1 to
    # 0.6 ms for 16 frames of 320x240); the copy a strided (sparse) view needs stays bounded.
    for start in range(0, len(indices), _DECODE_CHUNK):
        chunk = indices[start : start + _DECODE_CHUNK]
        theirs = _fingerprints_rgb(frames[start : start + len(chunk)])
        references = np.stack([fingerprints[frame_index] for frame_index in chunk])
        if info.rotation_deg == 180:  # decord returns these upright, PyAV as stored
            references = references[:, ::-1, ::-1]
        distance = np.abs(theirs - references).mean(axis=(1, 2))
        wrong += [frame_index for frame_index, d in zip(chunk, distance.tolist()) if d > _FINGERPRINT_TOLERANCE]
    if wrong:
        shown = ", ".join(str(i) for i in wrong[:8]) + (" ..." if len(wrong) > 8 else "")
        raise _DecordFailed(f"decord returned different pictures than the file holds for frames {shown}")


def _start_times(index: _StreamIndex, indices: list[int]) -> np.ndarray:
    """Seconds from the first frame to each of `indices`, from the packets' presentation times (exact).

    Every read takes these, whichever library decoded it, so a first read (PyAV's frames, no decord reader
    opened) and later ones (decord's) agree to the bit. decord's own times (`get_frame_timestamp`, float32)
    agreed with them to 5e-7 s on every file checked (the real clips, the probe videos, MP4, MKV, MOV and
    WebM with B-frames, a file whose first frame is at 0.5 s); AVI gives decord none.
    """
    if index.pts is None or index.time_base is None:
        return np.asarray(indices, dtype=np.float64) / index.info.fps
    relative = (index.pts[indices] - index.pts[0]).astype(np.float64)
    return relative * float(index.time_base)


def _pyav_reason(info: VideoInfo) -> str | None:
    """Why decord is skipped for this file up front, or None to try decord first."""
    if info.rotation_deg in (90, 270):
        # decord applies the rotation but sizes its buffer for the stored frame: it fails or squashes.
        return f"decord cannot return {info.rotation_deg}-degree rotated video upright"
    if info.container in _PYAV_CONTAINERS:
        return f"decord seeks to wrong frames in {info.container.upper()} files"
    return None


def _read(
    path: str | Path,
    index: _StreamIndex,
    indices: list[int],
    max_side: int | None,
    max_pixels: int | None,
    window_ids: list[int] | None = None,
    windows: list[tuple[float, float]] | None = None,
    notes: list[str] | None = None,
    known: _Known | None = None,
    verify: VerifyPolicy = "always",
) -> Frames:
    path = Path(path)
    notes = list(notes or [])
    known = known or _Known(index, {}, None)
    try:
        while True:
            info = known.index.info
            try:
                size = sampling.target_size(info.display_width, info.display_height, max_side=max_side,
                                            max_pixels=max_pixels)
            except ValueError as err:
                raise VideoError(path, str(err)) from err
            if not known.index.rotation_read and not _takes_first_read(known, indices, size, verify):
                known.read_rotation()  # then the size again: a 90/270-degree file is displayed on its side
                continue
            try:
                frames, starts = _frames_of(path, known.index, indices, size, notes, known, verify)
                break
            except _Rotated as rotated:  # the first read's own strict decode found a display rotation
                known.set_rotation(rotated.degrees)
    finally:
        known.close()
    return Frames(
        frames=frames,
        timestamps_s=starts,
        indices=np.asarray(indices, dtype=np.int64),
        info=known.index.info,
        window_ids=None if window_ids is None else np.asarray(window_ids, dtype=np.int64),
        windows=windows,
        notes=notes,
    )


class _Rotated(Exception):
    """A first read's strict decode met a frame with a display rotation the index had not read yet."""

    def __init__(self, degrees: int):
        super().__init__(degrees)
        self.degrees = degrees


def _takes_first_read(known: _Known, indices: list[int], size: tuple[int, int], verify: VerifyPolicy) -> bool:
    """Whether this read is a first read at the stored size (`_first_read`): checked, none of its frames
    verified yet, not rotated (as far as the index knows), decord not set aside for the file."""
    info = known.index.info
    return (verify != "off" and _pyav_reason(info) is None and info.rotation_deg == 0
            and size == (info.width, info.height) and known.decord_state != "differs"
            and known.fingerprints.keys().isdisjoint(indices))


def _differs(frame: int) -> str:
    return (f"decord gives other pixels than PyAV for this file (frame {frame}, compared byte for byte), and its "
            f"first read returned PyAV's")


def _decord_request(size: tuple[int, int], indices: list[int]) -> str:
    """A digest of one decord read of a file: its size, frame indices and decord's version. decord decodes a
    file the same way every time (FFmpeg is bit-exact, whatever its thread count), so a read whose pictures
    matched the fingerprints once is not compared again (`video_cache.Entry.decord_checked`)."""
    version = getattr(import_decord(), "__version__", "?")
    data = f"{version} {size[0]}x{size[1]}:".encode() + np.asarray(indices, dtype="<i8").tobytes()
    return hashlib.sha256(data).hexdigest()[:32]


def _decord_frames(
    path: Path, index: _StreamIndex, indices: list[int], size: tuple[int, int], known: _Known,
    references: dict[int, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """decord's frames and start times, checked against `references` (fingerprints) when given, and, at the
    stored size of a file whose first read returned PyAV's frames, confirmed to be PyAV's pixels (see
    `_first_read`; one more frame is decoded when this read does not ask for the confirming one).
    Raises _DecordFailed; a failed confirmation is remembered (`known`), so that PyAV decodes from then on."""
    info = index.info
    pending = known.decord_pixels if size == (info.width, info.height) and known.decord_state == "unconfirmed" \
        else None
    wanted = indices if pending is None or pending["frame"] in indices else [*indices, pending["frame"]]
    frames, starts = _decode(path, index, wanted, size)
    request = _decord_request(size, wanted) if references is not None else None
    if request is not None and request not in known.decord_checked:
        checked = [i for i in wanted[len(indices):] if i in references]  # the confirming frame, if verified
        _check_same_pictures(info, [*indices, *checked], frames[: len(indices) + len(checked)], references)
        known.remember_checked(request)
    if pending is not None:
        same = _pixel_digest(frames[wanted.index(pending["frame"])]) == pending["sha256"]
        known.set_decord_pixels({"state": "same"} if same else {"state": "differs", "frame": pending["frame"]})
        if not same:
            raise _DecordFailed(_differs(pending["frame"]))
    return frames[: len(indices)], starts[: len(indices)]


def _frames_of(
    path: Path, index: _StreamIndex, indices: list[int], size: tuple[int, int], notes: list[str], known: _Known,
    verify: VerifyPolicy,
) -> tuple[np.ndarray, np.ndarray]:
    """(frames, start times) for `_read`: checked, from decord or PyAV; appends to `notes` when PyAV decodes."""
    info = index.info
    reason = _pyav_reason(info)
    stored_size = size == (info.width, info.height)
    if reason is None and stored_size and known.decord_state == "differs":
        reason = _differs(known.decord_pixels["frame"])
    if reason is None and _DECORD_HUNG:  # (resolving the path only once decord has hung on some file)
        hung_s = _DECORD_HUNG.get(str(path.resolve()))
        reason = _hung(hung_s) if hung_s is not None else None
    if reason is None:
        references, read = None, None
        if verify != "off":
            unverified = sorted(set(indices) - set(known.fingerprints))
            if _takes_first_read(known, indices, size, verify):
                fingerprints, frames, pixels = _first_read(path, index, indices, known.take_container(),
                                                           check_rotation=not index.rotation_read)
                if not index.rotation_read:
                    known.set_rotation(0)  # its frames had none
                known.remember(fingerprints)
                if known.decord_state != "same":  # (decord gave PyAV's pixels already: nothing to confirm)
                    known.set_decord_pixels(pixels)
                read = frames, _start_times(index, indices)
            elif unverified:
                known.remember(_reference_fingerprints(path, index, unverified, known.take_container()))
            references = known.fingerprints
        known.close()  # not needed by decord; the decoder's buffers go before decord allocates its own
        if read is not None:
            frames, starts = read
        else:
            try:
                frames, starts = _decord_frames(path, index, indices, size, known, references)
            except _DecordFailed as failure:
                frames = None  # release decord's frames before PyAV allocates its own
                reason = str(failure)
    known.save()
    if reason is not None:
        frames, starts = _decode_pyav(path, index, indices, size, known.take_container())
        notes.append(f"decoded with PyAV: {reason}")
    return frames, starts


def _plan(path: str | Path, make_indices, verify: VerifyPolicy) -> tuple[_Known, Any]:
    """Inspect the file (or recall it), then compute its indices; argument errors become VideoErrors naming
    the file."""
    # A first read at the stored size reads the rotation from its own decode (`_read`); the rest read it now.
    known = _known(path, verify, read_rotation=verify == "off")
    try:
        return known, make_indices(known.index.info)
    except ValueError as err:
        known.close()
        raise VideoError(path, str(err)) from err


# ----------------------------------------------------------------------------------------------
# Public sampling API


def sample_uniform(
    path: str | Path, n: int, *, max_side: int | None = None, max_pixels: int | None = None,
    short_clip: ShortClipPolicy = "repeat", verify: VerifyPolicy = "once",
) -> Frames:
    """`n` frames at the centres of `n` equal segments of the whole video.

    A clip with fewer than `n` frames follows `short_clip` (with a ShortClipWarning and a note):
    "repeat" (default) returns exactly `n` frames, each real frame repeated in time order with its true
    index and timestamp, for models that need a fixed count; "all" returns every frame once;
    "error" raises. `verify` (all samplers): see the module doc.
    """
    if short_clip not in SHORT_CLIP_POLICIES:
        raise VideoError(path, f"unknown short_clip policy {short_clip!r}; choose one of {', '.join(SHORT_CLIP_POLICIES)}")
    notes: list[str] = []

    def indices_for(info: VideoInfo) -> list[int]:
        if n <= info.n_frames or n <= 0 or short_clip == "error":
            return sampling.uniform_indices(info.n_frames, n)
        if short_clip == "all":
            notes.append(f"the clip has {info.n_frames} frames, {n} asked for: all {info.n_frames} returned "
                         f"(short_clip='all')")
            return list(range(info.n_frames))
        notes.append(f"the clip has {info.n_frames} frames, {n} asked for: frames repeated in time order to "
                     f"make {n} (short_clip='repeat')")
        return sampling.uniform_indices(info.n_frames, n, allow_repeats=True)

    known, indices = _plan(path, indices_for, verify)
    for note in notes:
        warnings.warn(f"{path}: {note}", ShortClipWarning, stacklevel=2)
    return _read(path, known.index, indices, max_side, max_pixels, notes=notes, known=known, verify=verify)


def sample_fps(
    path: str | Path,
    fps: float,
    *,
    max_frames: int | None = None,
    start_s: float = 0.0,
    end_s: float | None = None,
    max_side: int | None = None,
    max_pixels: int | None = None,
    verify: VerifyPolicy = "once",
) -> Frames:
    """Frames every 1/`fps` seconds over [start_s, end_s), thinned uniformly to `max_frames` if given."""
    known, indices = _plan(
        path,
        lambda info: sampling.fps_indices(
            info.fps, info.n_frames, fps, start_s=start_s, end_s=end_s, max_frames=max_frames
        ),
        verify,
    )
    return _read(path, known.index, indices, max_side, max_pixels, known=known, verify=verify)


def sample_windows(
    path: str | Path,
    window_s: float = 1.0,
    frames_per_window: int = 1,
    *,
    start_s: float = 0.0,
    end_s: float | None = None,
    max_side: int | None = None,
    max_pixels: int | None = None,
    verify: VerifyPolicy = "once",
) -> Frames:
    """`frames_per_window` frames from each `window_s`-second window (for per-second descriptions)."""
    known, plan = _plan(
        path,
        lambda info: sampling.window_plan(
            info.fps, info.n_frames, window_s, frames_per_window, start_s=start_s, end_s=end_s
        ),
        verify,
    )
    return _read(path, known.index, plan.indices, max_side, max_pixels, plan.window_ids, plan.windows,
                 known=known, verify=verify)


def sample(path: str | Path, mode: SampleMode, **kwargs: Any) -> Frames:
    """Dispatch to sample_uniform / sample_fps / sample_windows by name (for parameter files)."""
    samplers = {"uniform": sample_uniform, "fps": sample_fps, "windows": sample_windows}
    if mode not in samplers:
        raise ValueError(f"unknown sampling mode {mode!r}; choose one of {', '.join(SAMPLE_MODES)}")
    return samplers[mode](path, **kwargs)
