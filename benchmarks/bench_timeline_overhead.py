"""What 04's captioning pass costs over a bare transformers loop doing the same work (issue 18 item 3).

Per model, the same windows of the events probe video are captioned, taking turns in every round:
- bare: decord reads the windows' frames (the same frame indices), then per window the family's processor
  call and model.generate() (greedy, the same max_new_tokens) - what a user would write;
- workbench, default settings: quality.timeline.caption_timeline with track_memory=True (04's default: on CPU
  the first call is tracked through its first decoder calls, see memory.tracker.FirstStepsPeak);
- workbench, memory off: the same with track_memory=False.
Medians of the rounds and the ratios to bare are printed (in brackets the median of each round's own ratio),
with the machine's CPU and load average. The bare loop's captions are checked against the timeline's (same
tokens, so equal work). The timeline reads its next chunk of windows in a background thread while it captions
(quality.timeline), which the bare loop does not: the last column gives each pass's CPU time (all threads of the
process) over the bare loop's, which that overlap does not lower.

Run: .venv/bin/python benchmarks/bench_timeline_overhead.py [--repeats 5] [--threads 1]
     [--models qwen2-vl-2b:tiny:bfloat16 twin-qwen2-vl-video:trained:float32 qwen2-vl-2b-midsize:random:float32]
     [--video probe:events or a path]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import warnings


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def bare_pass(loaded, path: str, window_indices: list[list[int]], generate_kwargs: dict) -> tuple[float, list[str]]:
    """Seconds to decode every window's frames with decord and caption each with processor + generate()."""
    import decord
    import numpy as np
    import torch

    from workbench.models.base import vocabulary_limit

    adapter = loaded.adapter
    if loaded.settings.source == "random":  # as describe(): random weights write through the twin's tokenizer
        generate_kwargs = {**generate_kwargs, "logits_processor": vocabulary_limit(len(loaded.processor.tokenizer))}
    start = time.perf_counter()
    reader = decord.VideoReader(path)
    fps = reader.get_avg_fps()
    flat = [i for window in window_indices for i in window]
    frames = reader.get_batch(flat).asnumpy()
    captions, at = [], 0
    for window in window_indices:
        clip = frames[at:at + len(window)]
        times = np.asarray(window, dtype=float) / fps
        at += len(window)
        inputs = adapter.move_inputs(adapter.build_inputs(loaded, clip, times, loaded.spec.prompt), loaded)
        with torch.inference_mode():
            output = loaded.model.generate(**inputs, **generate_kwargs)
        captions.append(adapter.decode(loaded, output[0, inputs["input_ids"].shape[-1]:]).strip())
    return time.perf_counter() - start, captions


def timeline_pass(loaded, path: str, settings) -> tuple[float, list[str], object]:
    from workbench.quality.timeline import caption_timeline

    start = time.perf_counter()
    timeline = caption_timeline(loaded, path, settings, progress=False)
    seconds = time.perf_counter() - start
    if (timeline.calls["status"] == "error").any():  # a failing call is fast: its time would flatter the workbench
        raise RuntimeError(f"{loaded.spec.model_id}: {timeline.calls['error'].iloc[0]}")
    return seconds, list(timeline.table["caption"]), timeline


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--video", default="probe:events")
    parser.add_argument("--models", nargs="*", default=["qwen2-vl-2b:tiny:bfloat16",
                                                        "twin-qwen2-vl-video:trained:float32"],
                        help="model:source:dtype")
    args = parser.parse_args()

    os.environ.setdefault("WORKBENCH_CACHE", tempfile.mkdtemp(prefix="bench-cache-"))
    warnings.filterwarnings("ignore")
    import torch

    from workbench import inputs, video
    from bench_batch import load_model
    from workbench.models import GenerationSettings, LoadSettings
    from workbench.models.base import quiet_transformers
    from workbench.quality.timeline import TimelineSettings

    torch.set_num_threads(args.threads)
    path = str(inputs.resolve_video(args.video))
    default = TimelineSettings()  # 04's defaults: 1 s windows, 2 frames each, 32 new tokens, track_memory=True
    untracked = TimelineSettings(track_memory=False)
    sampled = video.sample_windows(path, default.window_s, default.frames_per_window)
    window_indices = [[int(i) for i in sampled.indices[sampled.window_ids == w]] for w in range(len(sampled.windows))]
    span = video.probe(path).duration_s
    generate_kwargs = GenerationSettings(max_new_tokens=default.max_new_tokens, seed=default.seed).generate_kwargs()

    load_before = os.getloadavg()
    print(f"# {cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s); load average "
          f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} at the start")
    print(f"# {args.video}: {len(window_indices)} windows of {default.window_s:g} s, {default.frames_per_window} "
          f"frames each, max_new_tokens {default.max_new_tokens}, greedy; median of {args.repeats} rounds, "
          f"the three passes taking turns in each round (the order rotating from round to round)")
    print("| model (weights) | bare s | workbench default s | ratio (median of rounds' ratios) | "
          "workbench memory off s | ratio (median of rounds' ratios) | peak memory (default) | "
          "CPU time ratio, default (memory off) |")
    print("|---|---|---|---|---|---|---|---|")
    for entry in args.models:
        model_id, source, dtype = entry.split(":")
        with quiet_transformers():
            loaded = load_model(model_id, LoadSettings(source=source, dtype=dtype))  # bench_batch.VARIANTS too
        bare_pass(loaded, path, window_indices[:1], generate_kwargs)  # warm-up: first generate, first decode
        timeline_pass(loaded, path, TimelineSettings(max_seconds=1.0, max_new_tokens=2))
        times: dict[str, list[float]] = {"bare": [], "default": [], "off": []}
        cpu: dict[str, list[float]] = {"bare": [], "default": [], "off": []}
        peak = None
        captions: dict[str, list[str]] = {}
        passes = ["bare", "default", "off"]
        for round_ in range(args.repeats):
            for name in passes[round_ % 3:] + passes[:round_ % 3]:  # each pass first, second and third in turn
                cpu_start = time.process_time()
                if name == "bare":
                    seconds, captions[name] = bare_pass(loaded, path, window_indices, generate_kwargs)
                else:
                    seconds, captions[name], timeline = timeline_pass(loaded, path,
                                                                      default if name == "default" else untracked)
                    if name == "default":
                        peak = timeline.peak_bytes
                times[name].append(seconds)
                cpu[name].append(time.process_time() - cpu_start)
            if not captions["bare"] == captions["default"] == captions["off"]:
                raise RuntimeError(f"{model_id}: the bare loop and the timeline wrote different captions")
        loaded.unload()
        bare, ours, off = (statistics.median(times[k]) for k in ("bare", "default", "off"))
        # the median of each round's own ratio as well: a round's three passes ran within seconds of each other,
        # so a machine that speeds up or slows down between rounds moves all three together
        paired = {k: statistics.median(a / b for a, b in zip(times[k], times["bare"])) for k in ("default", "off")}
        cpu_ratio = {k: statistics.median(cpu[k]) / statistics.median(cpu["bare"]) for k in ("default", "off")}
        print(f"| {model_id} ({source}, {dtype}) | {bare:.3f} | {ours:.3f} | {ours / bare:.3f} "
              f"({paired['default']:.3f}) | {off:.3f} | {off / bare:.3f} ({paired['off']:.3f}) | "
              f"{peak / 2**20:.2f} MiB | {cpu_ratio['default']:.3f} ({cpu_ratio['off']:.3f}) |", flush=True)
    load_after = os.getloadavg()
    print(f"# load average {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} at the end; "
          f"video span {span:g} s")


if __name__ == "__main__":
    main()
