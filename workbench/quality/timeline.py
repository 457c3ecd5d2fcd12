"""Per-second captioning: a timeline of captions for a video, from a model loaded once.

Two modes:
- "windows": split the video into windows of `window_s` seconds (1 s by default), sample
  `frames_per_window` frames in each and caption every window separately (one generate() per window);
- "whole_clip": caption the whole clip once from `clip_frames` frames, asking for one line per second,
  and parse "[t] text" / "0-1s: text" lines back into per-second rows where the model wrote them.

Either way the result is one row per window (second) with its caption, tokens, latency and status, the
peak memory while captioning and the seconds of compute per second of video.

Windows are read in chunks (`chunk_windows`). When the machine has a core the model does not use (a GPU
model, or torch's CPU threads fewer than the usable cores), they are read ahead in one background thread:
while the model captions a chunk, the next one is decoded with as many FFmpeg threads as there are spare
cores (FFmpeg's own number for a GPU model), so a video's decoding overlaps its captioning instead of adding
to it. The first chunk then holds two calls' windows, read while the caller waits, so that captioning starts
early, and the next chunk's read starts once the first call of the current one is done.

Peak memory: on CUDA the allocator's max allocated over all calls (free to measure). On CPU a live-tensor
tracker (weights included) slows every operator several-fold, so it watches only the first captioning call,
from its start through its first decoder calls (`memory.tracker.FirstStepsPeak`), and leaves the call to
finish at full speed; the peak for the longest caption of the timeline adds the KV cache's measured growth
per token for the tokens after those (all windows have the same frame count and size, so they differ only
in the tokens they generate). That first call's latency includes the tracked part.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from workbench.choices import TimelineMode
from workbench.models.base import check_literal_fields

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from workbench.models.base import LoadedModel

TIMESTAMP_PROMPT = (
    "Describe this video second by second. Write one line per second, in the form "
    "'<start>-<end>s: <what is visible and what happens>', from 0-1s to {last}-{end}s."
)

TABLE_COLUMNS = ["window", "start_s", "end_s", "caption", "tokens", "latency_s", "status", "message",
                 "call", "n_frames", "frame_times_s", "frame_indices"]
# Columns that change from run to run; they are saved in the run's timing table, not with the results, so
# a repeated run's results compare byte for byte (videoset.stacked).
TIMING_COLUMNS = ["latency_s"]


@dataclass(frozen=True)
class TimelineSettings:
    mode: TimelineMode = "windows"
    window_s: float = 1.0  # windows mode: window length
    frames_per_window: int = 2  # windows mode: frames sampled in each window (Qwen3-VL refuses 1)
    clip_frames: int = 8  # whole_clip mode: frames sampled over the whole clip
    max_seconds: float = 0.0  # caption only the first max_seconds of the video (0: all of it)
    max_side: int = 0  # resize frames so the longer side is at most this (0 keeps the size)
    prompt: str = ""  # "" = the model's own prompt (windows) or TIMESTAMP_PROMPT (whole_clip)
    max_new_tokens: int = 32
    seed: int = 0
    chunk_windows: int = 64  # windows read at a time (memory grows with this, not with the video; reading
    # ahead, see the module doc, holds up to two chunks' frames)
    thumbnail_side: int = 160  # the timeline view keeps one small frame per row
    track_memory: bool = True  # measure peak memory while captioning (see the module doc)
    batch_windows: int = 1  # windows mode: windows captioned per generate call (workbench.batching)

    def __post_init__(self) -> None:
        check_literal_fields(self)
        if self.window_s <= 0 or self.frames_per_window <= 0 or self.clip_frames <= 0:
            raise ValueError("window_s, frames_per_window and clip_frames must be positive")
        if self.batch_windows < 1:
            raise ValueError(f"batch_windows must be >= 1 (windows per generate call), got {self.batch_windows}")
        if self.max_seconds < 0:
            raise ValueError(f"max_seconds must be >= 0 (0 = whole video), got {self.max_seconds}")


@dataclass
class Timeline:
    """A captioned video: per-row table, per-call table and what captioning cost."""

    table: "pd.DataFrame"  # one row per window (second): TABLE_COLUMNS
    calls: "pd.DataFrame"  # one row per generate() call: call, status, text, tokens, latency_s, n_frames, error
    thumbnails: list["np.ndarray"]  # one small (h, w, 3) uint8 frame per table row
    settings: TimelineSettings
    video: str
    video_duration_s: float
    span_s: float  # seconds of video captioned
    peak_bytes: int | None
    memory_kind: str
    wall_s: float
    notes: list[str] = field(default_factory=list)

    @property
    def compute_s(self) -> float:
        """Seconds spent in captioning calls (their latencies summed)."""
        return float(self.calls["latency_s"].sum()) if len(self.calls) else 0.0

    @property
    def compute_per_video_s(self) -> float:
        """Seconds of compute per second of video (below 1: faster than real time)."""
        return self.compute_s / self.span_s if self.span_s else float("nan")

    def summary(self) -> dict[str, Any]:
        return {"video": self.video, "video_duration_s": self.video_duration_s, "span_s": self.span_s,
                "n_rows": len(self.table), "n_calls": len(self.calls), "compute_s": self.compute_s,
                "compute_per_video_s": self.compute_per_video_s, "wall_s": self.wall_s,
                "peak_bytes": self.peak_bytes, "memory_kind": self.memory_kind, "notes": self.notes,
                **{f"setting_{k}": v for k, v in asdict(self.settings).items()}}


# ----------------------------------------------------------------------------------------------
# Parsing timestamped captions (pure)


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float | None  # None: a point timestamp, ends where the next one starts
    text: str


_NUM = r"\d+(?:\.\d+)?"
_UNIT = r"(?:s|sec|secs|seconds?)"
_TAGS = [
    # [mm:ss] or [mm:ss-mm:ss]
    re.compile(r"\[\s*(?P<am>\d+):(?P<as>\d\d(?:\.\d+)?)\s*(?:[-–]\s*(?P<bm>\d+):(?P<bs>\d\d(?:\.\d+)?)\s*)?\]"),
    # [1.5s], [2], [0-1s], [0 - 1 s]
    re.compile(rf"\[\s*(?P<a>{_NUM})\s*{_UNIT}?\s*(?:(?:[-–]|to)\s*(?P<b>{_NUM})\s*{_UNIT}?\s*)?\]", re.I),
    # 0-1s: / 0 s - 1 s / 2 to 3 seconds: (a unit after the range, so "2-3 objects" is not a tag)
    re.compile(rf"(?<![\w.])(?P<a>{_NUM})\s*{_UNIT}?\s*(?:[-–]|to)\s*(?P<b>{_NUM})\s*{_UNIT}\b\s*[:.)\-–]?", re.I),
    # a line starting "0-1:" or "3s:" or "Second 3:"
    re.compile(rf"(?m)^\s*(?:second\s+)?(?P<a>{_NUM})\s*(?:(?:[-–]|to)\s*(?P<b>{_NUM})\s*)?{_UNIT}?\s*:", re.I),
]


def parse_timestamped(text: str) -> list[Segment]:
    """Split a caption at its timestamps: '[t] text', '[a-b] text', 'a-bs: text', 'mm:ss', line-start 't:'.

    >>> parse_timestamped("0-1s: a red circle\\n1-2s: it moves right")
    [Segment(start_s=0.0, end_s=1.0, text='a red circle'), Segment(start_s=1.0, end_s=2.0, text='it moves right')]
    >>> parse_timestamped("[0.5s] a dot [1.5s] two dots")
    [Segment(start_s=0.5, end_s=None, text='a dot'), Segment(start_s=1.5, end_s=None, text='two dots')]
    >>> parse_timestamped("A red circle with 2-3 objects")
    []
    """
    found: list[tuple[int, int, float, float | None]] = []
    for pattern in _TAGS:
        for match in pattern.finditer(text or ""):
            if any(match.start() < end and match.end() > start for start, end, _, _ in found):
                continue  # an earlier pattern already took this place
            groups = match.groupdict()
            if groups.get("am") is not None:
                a = 60 * int(groups["am"]) + float(groups["as"])
                b = 60 * int(groups["bm"]) + float(groups["bs"]) if groups.get("bm") else None
            else:
                a = float(groups["a"])
                b = float(groups["b"]) if groups.get("b") else None
            found.append((match.start(), match.end(), a, b))
    found.sort()
    segments = []
    for i, (_, end, a, b) in enumerate(found):
        stop = found[i + 1][0] if i + 1 < len(found) else len(text)
        body = text[end:stop].strip(" \t\n;,-–")
        segments.append(Segment(a, b if b is not None and b > a else None, body))
    return segments


def segments_per_second(segments: list[Segment], n_rows: int, window_s: float = 1.0) -> list[str]:
    """The text for each row [i * window_s, (i + 1) * window_s): the segments that hold its midpoint or
    start inside it, joined. A point timestamp lasts until the next one starts (the last one, one window).

    >>> segments_per_second([Segment(0.5, None, "a"), Segment(2.5, None, "b")], 4)
    ['a', 'a', 'b', '']
    >>> segments_per_second([Segment(0.0, 2.0, "a"), Segment(2.0, 3.0, "b")], 3)
    ['a', 'a', 'b']
    """
    spans: list[tuple[float, float, str]] = []
    for i, seg in enumerate(segments):
        if seg.end_s is not None:
            end = seg.end_s
        else:
            later = [s.start_s for s in segments[i + 1:] if s.start_s > seg.start_s]
            end = later[0] if later else seg.start_s + window_s
        spans.append((seg.start_s, end, seg.text))
    texts = []
    for row in range(n_rows):
        lo, hi = row * window_s, (row + 1) * window_s
        mid = (lo + hi) / 2
        parts = [text for start, end, text in spans if text and (start <= mid < end or lo <= start < hi)]
        texts.append(" ".join(dict.fromkeys(parts)))
    return texts


# ----------------------------------------------------------------------------------------------
# Memory while captioning


class _PeakMemory:
    """Peak memory over a block of captioning calls: CUDA max allocated, or live CPU tensor bytes.

    On CPU the model's weights are counted, so the peak includes them, like CUDA's allocated peak.
    """

    def __init__(self, loaded: "LoadedModel", enabled: bool) -> None:
        self.device = loaded.report.device
        self.enabled = enabled
        self.loaded = loaded
        self.sampled: Any = None  # CPU: the FirstStepsPeak of the first call that did not fail
        self.runs: Any = None  # CPU: decoder calls per generation, for the longest one
        self.sampled_s = 0.0
        self.peak_bytes: int | None = None
        if not enabled:
            self.kind = "not_tracked"
        elif self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.kind = "cuda_max_allocated"
        else:
            from workbench.memory.tracker import DecoderRuns

            self.kind = "cpu_live_tensor_bytes"
            self.runs = DecoderRuns(loaded.model)

    def call(self, describe: Callable[[], Any]) -> Any:
        """Run one captioning call (returns its record): CUDA reads the allocator's peak around it; on CPU the
        first call that does not fail is tracked through its first decoder calls (see the module doc)."""
        if not self.enabled:
            return describe()
        if self.device == "cuda":
            with self:
                return describe()
        if self.sampled is not None:
            return describe()
        from workbench.memory.tracker import FirstStepsPeak

        sampler = FirstStepsPeak(self.loaded)
        start = time.perf_counter()
        with sampler:
            record = describe()
        records = record if isinstance(record, list) else [record]  # a batch of windows gives a list
        if any(r.status != "error" for r in records):
            self.sampled, self.sampled_s = sampler, time.perf_counter() - start
        return record

    def close(self) -> None:
        if self.runs is not None:
            self.runs.close()

    def finish(self) -> list[str]:
        """Set the CPU peak for the longest generation of the timeline; its notes."""
        self.close()
        if self.sampled is None:
            return []
        longest = self.runs.longest
        self.peak_bytes = self.sampled.peak_bytes(longest)
        if self.sampled.growth_per_token is None or longest <= self.sampled.measured_calls:
            how = "the whole call tracked"
        else:
            from workbench.units import format_bytes

            measured = self.sampled.measured_calls
            source = ("read from the KV cache's tensors" if self.sampled.growth_source == "KV cache"
                      else "the step between the last two tracked calls' peaks")
            how = (f"tracked through its first {measured} decoder calls, then {max(0, longest - measured)} more tokens "
                   f"at {format_bytes(self.sampled.growth_per_token)} each, {source}, for the longest caption "
                   f"of {longest} tokens")
        return [f"CPU peak memory: live tensors of the first captioning call, {how}. That call's latency "
                f"includes the tracked part."]

    def __enter__(self) -> "_PeakMemory":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.enabled and self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            self.peak_bytes = max(self.peak_bytes or 0, int(torch.cuda.max_memory_allocated()))


# ----------------------------------------------------------------------------------------------
# Captioning


def _thumbnail(frame: "np.ndarray", side: int) -> "np.ndarray":
    import numpy as np
    from PIL import Image

    height, width = frame.shape[:2]
    scale = min(1.0, side / max(height, width))
    if scale >= 1.0:
        return np.ascontiguousarray(frame)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # reducing_gap=1: box-average by the whole factor first, then bilinear for the rest (a third of the time
    # of a bilinear resize alone, which filters every source pixel; the bench of 04's overhead counts it)
    return np.asarray(Image.fromarray(frame).resize(size, Image.BILINEAR, reducing_gap=1.0))


def _span(video_duration_s: float, max_seconds: float) -> float:
    return min(max_seconds, video_duration_s) if max_seconds > 0 else video_duration_s


def caption_timeline(loaded: "LoadedModel", video_path: str | Path,
                     settings: TimelineSettings | None = None, progress: bool = True,
                     on_window: Callable[[int, int], None] | None = None) -> Timeline:
    """Caption a video with a loaded model, window by window or whole with timestamps (see module doc).

    `on_window(done, total)` is called after each window (windows mode); an exception it raises stops
    captioning between windows and propagates (the explorer's Cancel button works this way).
    """
    from workbench import video

    settings = settings or TimelineSettings()
    info = video.probe(video_path)
    span_s = _span(info.duration_s, settings.max_seconds)
    start = time.perf_counter()
    memory = _PeakMemory(loaded, settings.track_memory)
    try:
        if settings.mode == "windows":
            rows, calls, thumbs, notes = _windows(loaded, Path(video_path), span_s, settings, memory, progress,
                                                  on_window)
        else:
            rows, calls, thumbs, notes = _whole_clip(loaded, Path(video_path), span_s, settings, memory)
    finally:
        memory.close()
    import pandas as pd

    return Timeline(
        table=pd.DataFrame(rows, columns=TABLE_COLUMNS),
        calls=pd.DataFrame(calls, columns=["call", "status", "text", "tokens", "latency_s", "n_frames",
                                           "n_input_tokens", "error"]),
        thumbnails=thumbs, settings=settings, video=str(video_path), video_duration_s=info.duration_s,
        span_s=span_s, peak_bytes=memory.peak_bytes, memory_kind=memory.kind,
        wall_s=time.perf_counter() - start, notes=notes,
    )


def _generation(settings: TimelineSettings) -> Any:
    from workbench.models.base import GenerationSettings

    return GenerationSettings(max_new_tokens=settings.max_new_tokens, seed=settings.seed)


def _call_row(call: int, record: Any) -> dict[str, Any]:
    return {"call": call, "status": record.status, "text": record.text, "tokens": record.n_tokens,
            "latency_s": record.latency_s, "n_frames": record.n_frames, "n_input_tokens": record.n_input_tokens,
            "error": record.error or ""}


def _chunk_plan(n_windows: int, chunk_windows: int, first: int) -> list[tuple[int, int]]:
    """(offset, windows) of each chunk read: `first` windows, then `chunk_windows` at a time.

    >>> _chunk_plan(8, 64, 2)
    [(0, 2), (2, 6)]
    >>> _chunk_plan(5, 2, 2)
    [(0, 2), (2, 2), (4, 1)]
    """
    plan, offset = [], 0
    while offset < n_windows:
        size = min(first if offset == 0 else chunk_windows, n_windows - offset)
        plan.append((offset, size))
        offset += size
    return plan


def _read_ahead_threads(device: str) -> int | None:
    """FFmpeg threads for reading ahead while the model captions, or None not to read ahead: a model on a GPU
    leaves the CPU to the reader (0: FFmpeg's own number); one on the CPU leaves the cores this process may
    use beyond torch's threads, if any (with every core busy, reading ahead measured 1-2 % slower than reading
    each chunk when it is needed)."""
    if device != "cpu":
        return 0
    import os

    import torch

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 1
    spare = usable - torch.get_num_threads()
    return spare if spare > 0 else None


def _read_chunk(path: Path, chunk: list[tuple[float, float]], settings: TimelineSettings,
                threads: int = 0) -> tuple[Any, list, list]:
    """The frames of a chunk of windows (checked against the plan), each window's positions in them and its
    thumbnail, decoded with `threads` FFmpeg threads (`video.decoder_threads`)."""
    import numpy as np

    from workbench import video

    with video.decoder_threads(threads):
        frames = video.sample_windows(path, settings.window_s, settings.frames_per_window, start_s=chunk[0][0],
                                      end_s=chunk[-1][1], max_side=settings.max_side or None)
    if [(round(a, 6), round(b, 6)) for a, b in frames.windows or []] != \
            [(round(a, 6), round(b, 6)) for a, b in chunk]:
        raise RuntimeError(f"windows of a chunk {frames.windows} differ from the plan {chunk}")
    positions = [np.flatnonzero(frames.window_ids == local) for local in range(len(chunk))]
    return frames, positions, [_thumbnail(frames.frames[p[0]], settings.thumbnail_side) for p in positions]


class _ChunkReader:
    """Reads chunks of windows in one background thread, so that reading the next chunk overlaps captioning
    this one (the decoders and numpy release the GIL). A chunk read ahead (`start`) decodes with `ahead_threads`
    FFmpeg threads (the cores the model leaves free); one read while the caller waits (`take` with none
    started) with FFmpeg's own number. A read's error is raised where its chunk is taken; leaving the block
    drops a read still in progress (it finishes on its own, its frames unused)."""

    def __init__(self, read: Callable[[int, int], Any], ahead_threads: int = 1) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._read = read  # read(chunk, decoder threads)
        self._ahead_threads = ahead_threads
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="workbench-read")
        self._pending: dict[int, Any] = {}

    def start(self, chunk: int) -> None:
        """Read `chunk` ahead, in the background."""
        if chunk not in self._pending:
            self._pending[chunk] = self._pool.submit(self._read, chunk, self._ahead_threads)

    def take(self, chunk: int) -> Any:
        """`chunk`'s read, waiting for it (and starting it, with all decoder threads, if it was not)."""
        future = self._pending.pop(chunk, None) or self._pool.submit(self._read, chunk, 0)
        return future.result()

    def __enter__(self) -> "_ChunkReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _windows(loaded: "LoadedModel", path: Path, span_s: float, settings: TimelineSettings, memory: _PeakMemory,
             progress: bool, on_window: Callable[[int, int], None] | None = None) -> tuple[list, list, list, list]:
    from tqdm.auto import tqdm

    from workbench import sampling, video
    from workbench.batching import Window, batch_support, describe_batch

    # Windows over the whole span first (a short last window merged: sampling.window_spans), then read in
    # chunks of whole windows; each chunk re-splits its own span into the same windows.
    spans = sampling.window_spans(0.0, span_s, settings.window_s)
    n_windows = len(spans)
    prompt = settings.prompt or None
    generation = _generation(settings)
    rows, calls, thumbs, notes = [], [], [], []
    batch, n_calls = settings.batch_windows, 0
    if batch > 1 and (reason := batch_support(loaded)) is not None:
        notes.append(f"batch_windows={batch} asked for, one window per call used: {reason}")
        batch = 1
    bar = tqdm(total=n_windows, desc=f"captioning {loaded.spec.model_id}", unit="window",
               disable=not progress or n_windows < 2)
    # Reading ahead: the first chunk holds two calls' windows, so captioning starts after a short read; each next
    # chunk is read in the background from the end of the current chunk's first call on (not during the first
    # call, the one whose memory is tracked on CPU). Without a spare core, each chunk is read when it is needed.
    ahead_threads = _read_ahead_threads(loaded.report.device)
    ahead = ahead_threads is not None
    plan = _chunk_plan(n_windows, settings.chunk_windows,
                       first=min(settings.chunk_windows, 2 * batch) if ahead else settings.chunk_windows)
    if ahead and len(plan) > 1:
        # imported here, not first in the reading thread while the model runs: the import briefly hides the
        # `nvidia` package from sys.modules (video.import_decord)
        video.import_decord()
    with _ChunkReader(lambda k, threads: _read_chunk(path, spans[plan[k][0]: sum(plan[k])], settings, threads),
                      ahead_threads=ahead_threads or 0) as reader:
        for k, (offset, _) in enumerate(plan):
            frames, positions, chunk_thumbs = reader.take(k)
            notes += [n for n in frames.notes if n not in notes]  # e.g. decoded by PyAV, and why
            local_windows = list(enumerate(frames.windows or []))
            for first in range(0, len(local_windows), batch):
                group = local_windows[first:first + batch]
                picked = [positions[local] for local, _ in group]
                clips = [(frames.frames[p], frames.timestamps_s[p], float(w_end - w_start))
                         for p, (_, (w_start, w_end)) in zip(picked, group)]
                if batch > 1:
                    records = memory.call(lambda: describe_batch(
                        loaded, [Window(c, t, d) for c, t, d in clips], prompt=prompt, generation=generation))
                else:
                    clip, times, duration = clips[0]
                    records = [memory.call(lambda: loaded.describe(clip, times, prompt=prompt,
                                                                   generation=generation, duration_s=duration))]
                if ahead and k + 1 < len(plan):
                    reader.start(k + 1)
                for (local, (w_start, w_end)), p, (_, times, _), record in zip(group, picked, clips, records):
                    window = offset + local
                    notes += [n for n in record.notes if n not in notes]
                    calls.append(_call_row(n_calls, record))
                    rows.append({"window": window, "start_s": float(w_start), "end_s": float(w_end),
                                 "caption": record.text, "tokens": record.n_tokens, "latency_s": record.latency_s,
                                 "status": record.status, "message": record.error or "", "call": n_calls,
                                 "n_frames": record.n_frames,
                                 "frame_times_s": ";".join(f"{t:.6f}" for t in times),
                                 "frame_indices": ";".join(str(int(i)) for i in frames.indices[p])})
                    thumbs.append(chunk_thumbs[local])
                    bar.update(1)
                    if on_window is not None:
                        try:
                            on_window(window + 1, n_windows)
                        except BaseException:
                            bar.close()
                            raise
                n_calls += 1
    bar.close()
    notes += memory.finish()
    return rows, calls, thumbs, notes


def _whole_clip(loaded: "LoadedModel", path: Path, span_s: float, settings: TimelineSettings,
                memory: _PeakMemory) -> tuple[list, list, list, list]:
    import numpy as np

    from workbench import sampling, video

    spans = sampling.window_spans(0.0, span_s, 1.0)  # one row per second, a short last second merged
    n_rows = len(spans)
    frames = video.sample_fps(path, settings.clip_frames / span_s, end_s=span_s, max_frames=settings.clip_frames,
                              max_side=settings.max_side or None)
    prompt = settings.prompt or TIMESTAMP_PROMPT.format(last=n_rows - 1, end=n_rows)
    record = memory.call(lambda: loaded.describe(frames.frames, frames.timestamps_s, prompt=prompt,
                                                 generation=_generation(settings), duration_s=span_s))
    notes = list(dict.fromkeys([*frames.notes, *record.notes]))
    notes += memory.finish()
    segments = parse_timestamped(record.text) if record.status == "ok" else []
    texts = segments_per_second(segments, n_rows)
    if record.status == "ok" and not segments:
        notes.append("whole-clip caption has no timestamps: no per-second rows could be parsed")
    rows, thumbs = [], []
    share = 1 / n_rows if n_rows else 0.0
    for second, text in enumerate(texts):
        if record.status != "ok":
            status, message = record.status, record.error or ""
        elif text:
            status, message = "ok", ""
        else:
            status = "missing"
            message = "no timestamp in the caption covers this second" if segments else "caption has no timestamps"
        nearest = int(np.argmin(np.abs(frames.timestamps_s - (second + 0.5))))
        rows.append({"window": second, "start_s": float(spans[second][0]), "end_s": float(spans[second][1]),
                     "caption": text, "tokens": record.n_tokens * share, "latency_s": record.latency_s * share,
                     "status": status, "message": message, "call": 0, "n_frames": record.n_frames,
                     "frame_times_s": ";".join(f"{t:.6f}" for t in frames.timestamps_s),
                     "frame_indices": ";".join(str(int(i)) for i in frames.indices)})
        thumbs.append(_thumbnail(frames.frames[nearest], settings.thumbnail_side))
    return rows, [_call_row(0, record)], thumbs, notes
