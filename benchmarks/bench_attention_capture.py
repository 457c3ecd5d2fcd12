"""What attention capture costs: captioning a 16-frame probe clip with capture versus without.

    .venv/bin/python benchmarks/bench_attention_capture.py [--repeats 5] [--frames 16] [--tokens 16]

Model: the mid-size Qwen2-VL of the memory probe (the 2B config shrunk to ~85M parameters, random weights,
bfloat16, loaded with sdpa), frames sampled uniformly from the `moving` probe video and capped at 280x280
pixels. One process; the variants alternate within each repeat so drift hits them alike. Reported:
- peak live tensor bytes during the caption (the CPU tracker of workbench.memory; weights are not counted,
  so this is activations + KV cache + what capture keeps), and its ratio to captioning without capture;
- median wall time and its ratio;
- the bytes capture kept, eager's predicted score transient, and whether the caption was unchanged.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VARIANTS = [
    ("no capture", None),
    ("recompute, head mean", ("recompute", "mean")),
    ("recompute, all heads", ("recompute", "all")),
    ("eager layers, all heads", ("eager", "all")),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--max-pixels", type=int, default=280 * 280)
    args = parser.parse_args()

    import torch

    from workbench import probe_videos, video
    from workbench.attention import attend
    from workbench.attention.capture import CaptureSettings
    from workbench.memory.probe import MIDSIZE_QWEN2_VL_OVERRIDES, ProbeConfig, resolve_model
    from workbench.memory.tracker import LiveTensorTracker
    from workbench.models.base import GenerationSettings, LoadSettings
    from workbench.units import format_bytes

    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    adapter, spec = resolve_model(ProbeConfig(model="qwen2-vl-2b", source="random",
                                              config_overrides=MIDSIZE_QWEN2_VL_OVERRIDES))
    loaded = adapter.load(spec, LoadSettings(source="random", dtype="bfloat16", attn_implementation="sdpa",
                                             device="cpu", max_pixels=args.max_pixels))
    path = probe_videos.ensure_probe_videos(["moving"], seed=0)["moving"]
    clip = video.sample_uniform(path, args.frames)
    generation = GenerationSettings(max_new_tokens=args.tokens, min_new_tokens=args.tokens)

    def run(variant):
        tracker = LiveTensorTracker()
        start = time.perf_counter()
        with tracker:
            if variant is None:
                result = loaded.describe(clip.frames, clip.timestamps_s, generation=generation)
                caption, kept, transient = result.text, 0, 0
            else:
                mode, heads = variant
                maps = attend(loaded, clip.frames, clip.timestamps_s, generation=generation,
                              settings=CaptureSettings(mode=mode, heads=heads))
                caption, kept, transient = (maps.capture.caption.text, maps.capture.kept_bytes,
                                            maps.capture.eager_transient_bytes)
        return time.perf_counter() - start, tracker.peak_bytes, caption, kept, transient

    run(None)  # warm-up: first-call allocations and lazy imports
    rows = {name: [] for name, _ in VARIANTS}
    for _ in range(args.repeats):
        for name, variant in VARIANTS:
            rows[name].append(run(variant))

    baseline_caption = rows["no capture"][0][2]
    base_peak = statistics.median(r[1] for r in rows["no capture"])
    base_time = statistics.median(r[0] for r in rows["no capture"])
    visual = adapter.visual_tokens(args.frames, *clip.frames.shape[1:3], max_pixels=args.max_pixels).llm_tokens
    print(f"mid-size Qwen2-VL (random weights, bf16, sdpa), {args.frames} frames of the moving probe video "
          f"capped at {args.max_pixels} px, {visual} visual tokens, {args.tokens} new tokens, "
          f"{args.repeats} repeats, torch threads 1")
    print(f"{'variant':26} {'peak live':>12} {'ratio':>7} {'median s':>9} {'ratio':>7} {'kept':>10} "
          f"{'eager scores':>13} same caption")
    for name, _ in VARIANTS:
        runs = rows[name]
        peak = statistics.median(r[1] for r in runs)
        seconds = statistics.median(r[0] for r in runs)
        same = all(r[2] == baseline_caption for r in runs)
        print(f"{name:26} {format_bytes(peak):>12} {peak / base_peak:7.3f} {seconds:9.3f} "
              f"{seconds / base_time:7.3f} {format_bytes(runs[0][3]):>10} {format_bytes(runs[0][4]):>13} {same}")


if __name__ == "__main__":
    main()
