"""Decode only the frames a model will see: uniform, fixed-fps or per-window sampling with decord.

Every call first checks the file with PyAV, because decord on a damaged file either fails with an
opaque C++ message, silently returns fewer frames than the file claims, or returns concealed garbage
frames without complaint. The check reads the packet index (no decoding) and then decodes, strictly,
just the groups of pictures that hold the requested frames; decord then decodes and resizes those
frames. Any problem becomes a `VideoError` that names the file and what is wrong with it.

Memory grows with the number of frames asked for, never with the length of the video.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np

from workbench import sampling

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
# Frames per decord get_batch call; the copy out of each chunk is what the peak adds beyond the result.
_DECODE_CHUNK = 8
# Packets to feed the decoder while looking for a first frame to read the rotation from.
_FIRST_FRAME_PACKETS = 16


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
    width: int  # as stored; decord returns 180-degree-rotated video upright at the same size
    height: int
    rotation_deg: int  # display rotation from the stream's metadata or display matrix, else 0
    codec: str


@dataclass
class Frames:
    """Sampled frames and where they came from."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    timestamps_s: np.ndarray  # (T,) float64: each frame's start time as decord reports it
    indices: np.ndarray  # (T,) int64: source frame index of each frame
    info: VideoInfo
    window_ids: np.ndarray | None = None  # (T,) int: window of each frame (windows mode only)
    windows: list[tuple[float, float]] | None = field(default=None)  # (start_s, end_s) per window

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


def _rotation_of(stream, first_frame) -> int:
    tag = stream.metadata.get("rotate")
    if tag is not None:
        try:
            return int(float(tag)) % 360
        except ValueError:
            pass
    return int(round(first_frame.rotation)) % 360 if first_frame is not None else 0


def _inspect(path: str | Path) -> _StreamIndex:
    """Open with PyAV, count the video packets and check them against what the container claims."""
    import av

    path = Path(path)
    with _open_container(path) as container:
        if not container.streams.video:
            raise VideoError(path, "contains no video stream")
        stream = container.streams.video[0]
        timestamps: list[int | None] = []
        key_positions: list[int] = []
        first_frame = None
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the empty packet that marks the end of the stream
                    continue
                if packet.is_keyframe:
                    key_positions.append(len(timestamps))
                timestamps.append(packet.pts if packet.pts is not None else packet.dts)
                if first_frame is None and len(timestamps) <= _FIRST_FRAME_PACKETS:
                    first_frame = _first_decoded(packet)
        except av.error.FFmpegError as err:
            raise VideoError(
                path, f"truncated or damaged: reading stopped after {len(timestamps)} frames ({_short(err)})"
            ) from err
        n_frames = len(timestamps)
        if n_frames == 0:
            raise VideoError(path, "video stream has no frames (0 frames)")
        fps = _fps_of(stream, n_frames, path)
        _check_not_truncated(path, container, stream, n_frames, fps)
        info = VideoInfo(
            path=path,
            n_frames=n_frames,
            fps=fps,
            duration_s=n_frames / fps,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            rotation_deg=_rotation_of(stream, first_frame),
            codec=stream.codec_context.name,
        )
        if any(t is None for t in timestamps):
            return _StreamIndex(info, None, np.array([0]), None)
        decode_order = np.array(timestamps, dtype=np.int64)
        pts = np.sort(decode_order)
        keyframes = np.unique(np.searchsorted(pts, decode_order[key_positions]))
        return _StreamIndex(info, pts, keyframes, stream.time_base)


def _first_decoded(packet):
    """The frame a packet decodes to, for its display-matrix side data; None if none (yet) or damaged.

    Damage here is left to the strict decode of the frames actually asked for, which names it.
    """
    import av

    try:
        decoded = packet.decode()
    except av.error.FFmpegError:
        return None
    return decoded[0] if decoded else None


def _check_not_truncated(path: Path, container, stream, n_frames: int, fps: float) -> None:
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
    if declared_s - present_s > _DURATION_SLACK_S:
        raise VideoError(
            path, f"truncated: the container declares {declared_s:.2f} s but only {present_s:.2f} s of frames are present"
        )


def probe(path: str | Path) -> VideoInfo:
    """Frame count, rate, size, rotation and codec of a video; raises VideoError if it is unusable."""
    return _inspect(path).info


def _reference_fingerprints(path: Path, index: _StreamIndex, wanted: list[int]) -> dict[int, np.ndarray]:
    """Decode the frames `wanted` (sorted, unique) strictly with PyAV; return an 8x8 luma fingerprint of each.

    Mirrors what decord will do (seek to the keyframe before a frame, decode forward), so damage in
    the frames we will return surfaces here as an error instead of coming back as concealed garbage.
    The fingerprints let us check that decord then returns these same pictures.
    """
    fingerprints: dict[int, np.ndarray] = {}
    with _open_container(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = dict(_STRICT_DECODE)
        stream.thread_type = "AUTO"
        pending = list(wanted)
        seek = index.pts is not None
        while pending:
            pending, overshot = _decode_run(path, container, stream, index, pending, seek, fingerprints)
            if overshot:
                if not seek:
                    raise VideoError(path, f"frame {pending[0]} cannot be decoded (the decoder skips it)")
                # The seek landed past the frame (e.g. an open group of pictures): go through from the start.
                seek = False
    return fingerprints


def _fingerprint(luma: np.ndarray) -> np.ndarray:
    """Means of an 8x8 grid of blocks of a (H, W) luma image: survives resizing, not a wrong frame."""
    height, width = luma.shape
    row_starts = np.searchsorted(np.arange(height) * 8 // height, np.arange(8))
    col_starts = np.searchsorted(np.arange(width) * 8 // width, np.arange(8))
    sums = np.add.reduceat(np.add.reduceat(luma.astype(np.float64), row_starts, axis=0), col_starts, axis=1)
    counts = np.outer(np.diff(row_starts, append=height), np.diff(col_starts, append=width))
    return sums / counts


def _fingerprint_rgb(rgb: np.ndarray) -> np.ndarray:
    return _fingerprint(rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))


def _keyframe_before(index: _StreamIndex, frame: int) -> int:
    return int(index.keyframes[np.searchsorted(index.keyframes, frame, side="right") - 1])


def _decode_run(
    path: Path, container, stream, index: _StreamIndex, pending: list[int], seek: bool,
    fingerprints: dict[int, np.ndarray],
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
                    continue
                if frame_index > pending[0]:
                    return pending, True
                if frame.is_corrupt:
                    raise VideoError(path, f"corrupt video stream: frame {frame_index} decodes with errors")
                luma = frame.reformat(width=64, height=64, format="gray").to_ndarray()
                fingerprints[frame_index] = _fingerprint(luma)
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


def _decode(path: Path, index: _StreamIndex, indices: list[int], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(frames (T, H, W, 3) uint8, start times (T,) float64) for `indices`, resized by the decoder."""
    decord = import_decord()

    info = index.info
    resize = size != (info.width, info.height)
    try:
        reader = decord.VideoReader(
            str(path), ctx=decord.cpu(0), width=size[0] if resize else -1, height=size[1] if resize else -1
        )
        if len(reader) != info.n_frames:
            raise VideoError(path, f"decord sees {len(reader)} frames but the stream holds {info.n_frames}")
        frames = np.empty((len(indices), size[1], size[0], 3), dtype=np.uint8)
        # In chunks, copied into one array: decord's batch plus its numpy copy would double the peak.
        for start in range(0, len(indices), _DECODE_CHUNK):
            chunk = _as_numpy(reader.get_batch(indices[start : start + _DECODE_CHUNK]))
            if chunk.shape[1:] != frames.shape[1:] or chunk.dtype != np.uint8:
                raise VideoError(
                    path, f"decoder returned {chunk.shape} {chunk.dtype} frames, expected (T, {size[1]}, {size[0]}, 3) uint8"
                )
            frames[start : start + len(chunk)] = chunk
        starts = np.asarray(reader.get_frame_timestamp(indices), dtype=np.float64)[:, 0]
    except (decord.DECORDError, RuntimeError) as err:
        raise VideoError(path, f"decoder failed: {_short(err)}") from err
    if not np.all(np.isfinite(starts)) or np.any(starts < 0):
        # Some containers (AVI) carry no presentation times; decord then reports nonsense.
        starts = _fallback_starts(index, indices)
    return frames, starts


def _as_numpy(batch) -> np.ndarray:
    # Another caller may have switched decord's global bridge to torch; accept either.
    return batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch.cpu())


def _check_same_pictures(
    path: Path, info: VideoInfo, indices: list[int], frames: np.ndarray, references: dict[int, np.ndarray]
) -> None:
    """Raise if decord returned other pictures than PyAV decoded for the same indices.

    decord mis-seeks in some containers (AVI with B-frames, MPEG-TS) and hands back the wrong frames.
    """
    if min(frames.shape[1:3]) < 16:
        return  # too small for an 8x8 grid of blocks to mean anything
    wrong = []
    for position, frame_index in enumerate(indices):
        reference = references[frame_index]
        if info.rotation_deg == 180:  # decord returns these upright, PyAV as stored
            reference = np.rot90(reference, 2)
        if np.abs(_fingerprint_rgb(frames[position]) - reference).mean() > _FINGERPRINT_TOLERANCE:
            wrong.append(frame_index)
    if wrong:
        shown = ", ".join(str(i) for i in wrong[:8]) + (" ..." if len(wrong) > 8 else "")
        raise VideoError(
            path, f"decord returned different pictures than the file holds for frames {shown} "
            f"(it seeks unreliably in this container; re-mux or re-encode to MP4)"
        )


def _fallback_starts(index: _StreamIndex, indices: list[int]) -> np.ndarray:
    if index.pts is None or index.time_base is None:
        return np.asarray(indices, dtype=np.float64) / index.info.fps
    relative = (index.pts[indices] - index.pts[0]).astype(np.float64)
    return relative * float(index.time_base)


def _read(
    path: str | Path,
    index: _StreamIndex,
    indices: list[int],
    max_side: int | None,
    max_pixels: int | None,
    window_ids: list[int] | None = None,
    windows: list[tuple[float, float]] | None = None,
) -> Frames:
    path = Path(path)
    info = index.info
    if info.rotation_deg in (90, 270):
        # decord 0.6 rotates these itself but sizes its output buffer for the unrotated frame, so it
        # either fails or returns squashed images.
        raise VideoError(
            path, f"rotated by {info.rotation_deg} degrees (display matrix); decord cannot decode it correctly, "
            "re-encode it with the rotation applied"
        )
    try:
        size = sampling.target_size(info.width, info.height, max_side=max_side, max_pixels=max_pixels)
    except ValueError as err:
        raise VideoError(path, str(err)) from err
    references = _reference_fingerprints(path, index, sorted(set(indices)))
    frames, starts = _decode(path, index, indices, size)
    _check_same_pictures(path, info, indices, frames, references)
    return Frames(
        frames=frames,
        timestamps_s=starts,
        indices=np.asarray(indices, dtype=np.int64),
        info=info,
        window_ids=None if window_ids is None else np.asarray(window_ids, dtype=np.int64),
        windows=windows,
    )


def _plan(path: str | Path, make_indices) -> tuple[_StreamIndex, Any]:
    """Inspect the file, then compute its indices; argument errors become VideoErrors naming the file."""
    index = _inspect(path)
    try:
        return index, make_indices(index.info)
    except ValueError as err:
        raise VideoError(path, str(err)) from err


# ----------------------------------------------------------------------------------------------
# Public sampling API


def sample_uniform(
    path: str | Path, n: int, *, max_side: int | None = None, max_pixels: int | None = None
) -> Frames:
    """`n` frames at the centres of `n` equal segments of the whole video."""
    index, indices = _plan(path, lambda info: sampling.uniform_indices(info.n_frames, n))
    return _read(path, index, indices, max_side, max_pixels)


def sample_fps(
    path: str | Path,
    fps: float,
    *,
    max_frames: int | None = None,
    start_s: float = 0.0,
    end_s: float | None = None,
    max_side: int | None = None,
    max_pixels: int | None = None,
) -> Frames:
    """Frames every 1/`fps` seconds over [start_s, end_s), thinned uniformly to `max_frames` if given."""
    index, indices = _plan(
        path,
        lambda info: sampling.fps_indices(
            info.fps, info.n_frames, fps, start_s=start_s, end_s=end_s, max_frames=max_frames
        ),
    )
    return _read(path, index, indices, max_side, max_pixels)


def sample_windows(
    path: str | Path,
    window_s: float = 1.0,
    frames_per_window: int = 1,
    *,
    start_s: float = 0.0,
    end_s: float | None = None,
    max_side: int | None = None,
    max_pixels: int | None = None,
) -> Frames:
    """`frames_per_window` frames from each `window_s`-second window (for per-second descriptions)."""
    index, plan = _plan(
        path,
        lambda info: sampling.window_plan(
            info.fps, info.n_frames, window_s, frames_per_window, start_s=start_s, end_s=end_s
        ),
    )
    return _read(path, index, plan.indices, max_side, max_pixels, plan.window_ids, plan.windows)


def sample(path: str | Path, mode: SampleMode, **kwargs: Any) -> Frames:
    """Dispatch to sample_uniform / sample_fps / sample_windows by name (for parameter files)."""
    samplers = {"uniform": sample_uniform, "fps": sample_fps, "windows": sample_windows}
    if mode not in samplers:
        raise ValueError(f"unknown sampling mode {mode!r}; choose one of {', '.join(SAMPLE_MODES)}")
    return samplers[mode](path, **kwargs)
