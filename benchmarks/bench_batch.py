"""Batched windows: seconds of compute per second of video at B windows per generate call.

    .venv/bin/python benchmarks/bench_batch.py                 # CPU: tiny Qwen2-VL twin and the trained twins
    .venv/bin/python benchmarks/bench_batch.py --gpu           # GPU: random full-size Qwen2-VL-2B and -7B

Each model is loaded once and captions the same N one-second windows (test scenes of the probe videos,
`twins.data.scene_windows`, never trained on) at every B; the B values alternate inside each repeat, and the
figure is the median over repeats of wall seconds / N (one window = one second of video). Captions at every B
are compared with B=1 (greedy decoding); on CUDA the allocator's peak for each B is reported too. Writes
bench_batch.csv and bench_batch.md into --out (default outputs/bench_batch/).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

CPU_MODELS = [("qwen2-vl-2b", "tiny"), ("qwen2-vl-2b-midsize", "random"), ("twin-qwen2-vl-video", "trained"),
              ("twin-qwen2-vl-generic", "trained")]
# Names that stand for a registered model with its embedded config changed (random weights only): the mid-size
# Qwen2-VL of the memory tests and benchmarks (memory.probe.MIDSIZE_QWEN2_VL_OVERRIDES, ~85M parameters).
VARIANTS = {"qwen2-vl-2b-midsize": ("qwen2-vl-2b", "MIDSIZE_QWEN2_VL_OVERRIDES")}
GPU_MODELS = [("qwen2-vl-2b", "random"), ("qwen2-vl-7b", "random")]


def load_model(model: str, settings: Any) -> Any:
    """`models.load`, or for a name in VARIANTS its registered model with the config changed (random weights)."""
    if model not in VARIANTS:
        from workbench.models import load

        return load(model, settings)
    from workbench.memory import probe

    registered, overrides = VARIANTS[model]
    # the probe's own resolution: it merges the overrides and refuses them for weights that are not random
    adapter, spec = probe.resolve_model(probe.ProbeConfig(model=registered, load=settings,
                                                          config_overrides=getattr(probe, overrides)))
    return adapter.load(spec, settings)


def windows(n: int, frames_per_window: int, size: tuple[int, int] | None) -> list[Any]:
    """N one-second windows from the twins' test scenes, resized to `size` (width, height) if given."""
    import numpy as np
    from PIL import Image

    from workbench.batching import Window
    from workbench.twins import data

    out: list[Window] = []
    seed = data.TEST_SEEDS[0]
    while len(out) < n:
        for w in data.scene_windows(seed, frames_per_window):
            frames = w.frames
            if size is not None:
                frames = np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR)) for f in frames])
            out.append(Window(frames, np.asarray(w.times_s, dtype=float) - w.second, 1.0))
            if len(out) == n:
                break
        seed += 1
    return out


def run_model(model: str, source: str, args: argparse.Namespace, batches: list[int]) -> list[dict[str, Any]]:
    import torch

    from workbench.batching import batch_support, describe_batch
    from workbench.models import LoadSettings
    from workbench.models.base import GenerationSettings

    device = "cuda" if args.gpu else "cpu"
    dtype = "bfloat16" if args.gpu else "float32"
    loaded = load_model(model, LoadSettings(source=source, dtype=dtype, device=device, attn_implementation="sdpa",
                                            max_pixels=args.max_pixels))
    reason = batch_support(loaded)
    if reason:
        return [{"model": model, "source": source, "B": b, "note": reason} for b in batches]
    size = (args.width, args.height) if args.width else None
    wins = windows(args.windows, args.frames_per_window, size)
    min_new = args.max_new_tokens if source == "random" else 0  # random weights: equal work at every B
    generation = GenerationSettings(max_new_tokens=args.max_new_tokens, min_new_tokens=min_new)

    def caption(b: int) -> tuple[list[str], float, int | None]:
        if args.gpu:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        texts = []
        for i in range(0, len(wins), b):
            records = describe_batch(loaded, wins[i:i + b], generation=generation)
            bad = [r.error for r in records if r.status == "error"]
            if bad:
                raise RuntimeError(f"{model} B={b}: {bad[0]}")
            texts += [r.text for r in records]
        if args.gpu:
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() if args.gpu else None
        return texts, wall, peak

    caption(batches[0])  # warm-up (kernels, caches)
    walls: dict[int, list[float]] = {b: [] for b in batches}
    texts: dict[int, list[str]] = {}
    peaks: dict[int, int | None] = {}
    for repeat in range(args.repeats):
        order = batches if repeat % 2 == 0 else list(reversed(batches))
        for b in order:
            texts[b], wall, peaks[b] = caption(b)
            walls[b].append(wall)
    base = statistics.median(walls[batches[0]])
    rows = []
    for b in batches:
        median = statistics.median(walls[b])
        same = sum(a == c for a, c in zip(texts[b], texts[batches[0]]))
        rows.append({"model": model, "source": source, "device": loaded.report.device, "dtype": dtype,
                     "B": b, "windows": len(wins), "frames_per_window": args.frames_per_window,
                     "frame_size": f"{wins[0].frames.shape[2]}x{wins[0].frames.shape[1]}",
                     "compute_s_per_video_s": median / len(wins), "speedup_vs_B1": base / median,
                     "same_captions_as_B1": f"{same}/{len(wins)}", "peak_allocated_bytes": peaks[b],
                     "repeats": args.repeats, "example_caption": texts[b][0][:60]})
    loaded.unload()
    return rows


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    from workbench.units import to_gib

    lines = [header, "", "| model | weights | B | compute s per video s | speed-up vs B=1 | same captions as B=1 "
             "| peak allocated GiB |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "note" in r:
            lines.append(f"| {r['model']} | {r['source']} | {r['B']} | {r['note']} | | | |")
            continue
        peak = "" if r["peak_allocated_bytes"] is None else f"{to_gib(r['peak_allocated_bytes']):.2f}"
        lines.append(f"| {r['model']} | {r['source']} | {r['B']} | {r['compute_s_per_video_s']:.3f} | "
                     f"{r['speedup_vs_B1']:.2f}x | {r['same_captions_as_B1']} | {peak} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> Path:
    import pandas as pd
    import torch

    from workbench import atomic, paths
    from workbench.memory.probe import versions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="random full-size Qwen2-VL-2B/7B on CUDA")
    parser.add_argument("--models", nargs="*", help="model ids (default: the CPU or GPU list); source from the list")
    parser.add_argument("--batches", default="1,4,8,16", help="B values, comma-separated (first is the reference)")
    parser.add_argument("--windows", type=int, default=16, help="one-second windows captioned at each B")
    parser.add_argument("--frames-per-window", type=int, default=2)
    parser.add_argument("--width", type=int, default=0, help="resize frames to this width (0 keeps the scene's)")
    parser.add_argument("--height", type=int, default=0)
    parser.add_argument("--max-pixels", type=int, default=None, help="Qwen-VL per-frame pixel budget")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (CPU runs)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.gpu and not torch.cuda.is_available():
        parser.error("no CUDA device: run without --gpu for the CPU version")
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    listed = dict(GPU_MODELS if args.gpu else CPU_MODELS)
    models = [(m, listed.get(m, "random" if args.gpu else "tiny")) for m in (args.models or listed)]
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for model, source in models:
        rows += run_model(model, source, args, batches)
        print(markdown([r for r in rows if r["model"] == model], f"{model} ({time.perf_counter() - start:.0f} s)"),
              flush=True)
    found = versions()
    device = torch.cuda.get_device_name() if args.gpu else f"CPU, {args.threads} thread(s)"
    header = (f"Batched windows on {device}; torch {found['torch']}, transformers {found['transformers']}; "
              f"{args.windows} one-second windows of {args.frames_per_window} frames, greedy, "
              f"{args.max_new_tokens} new tokens at most, median of {args.repeats} alternating repeats; "
              f"{time.perf_counter() - start:.0f} s wall")
    out_dir = args.out or paths.outputs_dir() / "bench_batch"
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out_dir / "bench_batch.csv", pd.DataFrame(rows).to_csv(index=False))
    atomic.write_text(out_dir / "bench_batch.md", markdown(rows, header))
    print(markdown(rows, header))
    return out_dir


if __name__ == "__main__":
    main()
