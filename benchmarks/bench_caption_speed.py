"""Captioning speed per family's tiny twin on CPU: seconds of compute per second of video, and the overhead of
the workbench's captioning path over a bare transformers generate() on the same frames.

For each family the tiny twin is loaded once, the events probe video is captioned two frames per 1 s window
(Qwen3-VL's processor refuses a single frame), and
each path is timed over all windows (median of REPEATS passes, after one untimed warm-up window):
- bare: the family's processor call and model.generate() on frames decoded beforehand (what a user would write);
- workbench: quality.timeline.caption_timeline without memory tracking (decodes the windows itself, then
  LoadedModel.describe per window: resampling, processor, generate, decode, status, bookkeeping);
- workbench + memory: the same with peak-memory tracking (on CPU the first call tracked through its first
  decoder calls: memory.tracker.FirstStepsPeak; benchmarks/bench_timeline_overhead.py compares 04's default).
Tiny twins write random tokens; greedy decoding with the same settings makes both paths generate the same tokens.

Run: .venv/bin/python benchmarks/bench_caption_speed.py [--repeats 5] [--seconds 4] [--frames-per-window 2]
     [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings


def bare_pass(loaded, windows, prompt: str, generate_kwargs: dict) -> float:
    """Seconds for processor + generate() over every window's frames (no workbench code around it)."""
    import torch

    adapter = loaded.adapter
    start = time.perf_counter()
    for frames, times in windows:
        if loaded.spec.fixed_frames is not None and len(frames) != loaded.spec.fixed_frames:
            picks = [min(len(frames) - 1, i * len(frames) // loaded.spec.fixed_frames)
                     for i in range(loaded.spec.fixed_frames)]
            frames, times = frames[picks], times[picks]
        inputs = adapter.move_inputs(adapter.build_inputs(loaded, frames, times, prompt), loaded)
        with torch.inference_mode():
            loaded.model.generate(**inputs, **generate_kwargs)
    return time.perf_counter() - start


def workbench_pass(loaded, path, settings) -> tuple[float, float]:
    """(wall seconds, summed describe latencies) of one timeline."""
    from workbench.quality.timeline import caption_timeline

    start = time.perf_counter()
    timeline = caption_timeline(loaded, path, settings, progress=False)
    seconds = time.perf_counter() - start
    failed = timeline.calls[timeline.calls["status"] == "error"]
    if len(failed):  # a failing call is fast: its time would flatter the workbench
        raise RuntimeError(f"{loaded.spec.model_id}: {failed['error'].iloc[0]}")
    return seconds, timeline.compute_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds of the probe video to caption")
    parser.add_argument("--frames-per-window", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument("--families", nargs="*", help="model ids (default: the first id of every family)")
    args = parser.parse_args()

    os.environ.setdefault("WORKBENCH_CACHE", tempfile.mkdtemp(prefix="bench-cache-"))
    warnings.filterwarnings("ignore")
    import torch

    from workbench import inputs, video
    from workbench.models import GenerationSettings, LoadSettings, load, registry
    from workbench.models.base import quiet_transformers
    from workbench.quality.timeline import TimelineSettings

    torch.set_num_threads(args.threads)
    path = inputs.resolve_video("probe:events")
    fpw = args.frames_per_window
    sampled = video.sample_windows(path, 1.0, fpw, end_s=args.seconds)
    windows = [(sampled.frames[sampled.window_ids == w], sampled.timestamps_s[sampled.window_ids == w])
               for w in range(len(sampled.windows))]
    generation = GenerationSettings(max_new_tokens=args.max_new_tokens)
    plain = TimelineSettings(frames_per_window=fpw, max_seconds=args.seconds, max_new_tokens=args.max_new_tokens,
                             track_memory=False)
    tracked = TimelineSettings(frames_per_window=fpw, max_seconds=args.seconds, max_new_tokens=args.max_new_tokens,
                               track_memory=True)
    model_ids = args.families or [ids[0] for ids in registry._NATIVE.values()]
    span = float(args.seconds)

    print(f"# {len(windows)} windows of 1 s ({fpw} frames each) from the events probe video, max_new_tokens "
          f"{args.max_new_tokens}, {torch.get_num_threads()} torch thread(s), median of {args.repeats} passes")
    print("| model id | bare s / video s | workbench s / video s | ratio | describe only s / video s "
          "| workbench + memory s / video s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for model_id in model_ids:
        with quiet_transformers():
            loaded = load(model_id, LoadSettings(source="tiny"))
        prompt = loaded.spec.prompt
        kwargs = generation.generate_kwargs()
        bare_pass(loaded, windows[:1], prompt, kwargs)  # warm-up (first generate, first decode of the file)
        workbench_pass(loaded, path, TimelineSettings(frames_per_window=fpw, max_seconds=1.0, max_new_tokens=1,
                                                      track_memory=False))
        bare, ours, describe_only, ours_tracked = [], [], [], []
        for _ in range(args.repeats):
            bare.append(bare_pass(loaded, windows, prompt, kwargs))
            wall, compute = workbench_pass(loaded, path, plain)
            ours.append(wall)
            describe_only.append(compute)
            ours_tracked.append(workbench_pass(loaded, path, tracked)[0])
        loaded.unload()
        b, w, d, t = (statistics.median(x) / span for x in (bare, ours, describe_only, ours_tracked))
        print(f"| {model_id} | {b:.4f} | {w:.4f} | {w / b:.2f} | {d:.4f} | {t:.4f} | {t / b:.2f} |", flush=True)


if __name__ == "__main__":
    main()
