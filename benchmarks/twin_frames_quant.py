"""The video twin's held-out quality against frames per window and bitsandbytes quantization (docs/twins.md).

The first N test scenes (H.264 probe videos, never trained on) through the 04 timeline and metrics
(`twins.evaluate.score_videos`), float32 compute, one process, one torch thread: quantization none at 1, 2
(trained) and 4 frames per window, then 8-bit and 4-bit nf4 at 2. Prints a markdown table with the loaded
weights' bytes; figures are of a trained twin, not of a published model.

Run: .venv/bin/python benchmarks/twin_frames_quant.py [--scenes 8]
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=8, help="first test scenes to score (default 8)")
    parser.add_argument("--model", default="twin-qwen2-vl-video")
    args = parser.parse_args()

    import warnings

    import torch

    from workbench.models import LoadSettings, load
    from workbench.twins import data
    from workbench.twins.evaluate import score_videos, test_videos
    from workbench.units import format_bytes

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="MatMul8bitLt")  # bitsandbytes' cast notice, once per call
    videos = test_videos(data.TEST_SEEDS[:args.scenes])
    print(f"{args.model} (trained twin), first {args.scenes} test scenes, float32 compute, one thread\n")
    print("| quantization | frames per window | weights | fact recall | hallucination | colour / shape | "
          "motion recall | quality score |")
    print("|---|---|---|---|---|---|---|---|")
    for quantization, frames in (("none", 1), ("none", 2), ("none", 4), ("8bit", 2), ("4bit-nf4", 2)):
        loaded = load(args.model, LoadSettings(source="trained", dtype="float32", device="cpu",
                                               quantization=quantization))
        scores, _ = score_videos(loaded, videos, frames)
        print(f"| {quantization} | {frames} | {format_bytes(loaded.report.memory_bytes)} | "
              f"{scores['fact_recall']:.3f} | {scores['hallucination_rate']:.3f} | "
              f"{scores['recall_colour']:.2f} / {scores['recall_shape']:.2f} | {scores['recall_motion']:.3f} | "
              f"{scores['quality_score']:.3f} |", flush=True)
        loaded.unload()


if __name__ == "__main__":
    main()
