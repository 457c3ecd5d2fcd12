"""The team's failure, predicted: Qwen2-VL-7B, 8-bit (bitsandbytes' default skip list), float16, 5 frames.

Prints the markdown table of docs/memory.md ("The team's failure"): per frame size and attention
implementation, the team's transformers (4.5x) beside today's (5.x), in GiB beyond the weights.
`.venv/bin/python benchmarks/team_failure_table.py [--frames 5]`
"""

from __future__ import annotations

import argparse

from workbench.memory import predict
from workbench.units import to_gib

SIZES = [("1920x1080 native", 1080, 1920, None), ("1080p, cap 768·28² (qwen-vl-utils)", 1080, 1920, 602112),
         ("1280x720", 720, 1280, None), ("854x480", 480, 854, None)]
ATTENTIONS = [("eager", "efficient", "eager"), ("sdpa", "efficient", "sdpa"), ("sdpa", "math", "sdpa (math kernel)")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5)
    args = parser.parse_args()
    print("| frames of | attention | era | L | visual tokens | weights GiB | beyond weights GiB | peak GiB | "
          "peak phase / dominant |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, height, width, cap in SIZES:
        for attn, masked, attn_label in ATTENTIONS:
            for era in ("4.5x", "5.x"):
                p = predict("qwen2-vl-7b", quantization="8bit", quantize_vision=True, attn_implementation=attn,
                            dtype="float16", frames=args.frames, height=height, width=width, max_pixels=cap,
                            text_tokens=64, device="cuda", transformers_era=era, masked_sdpa=masked)
                print(f"| {label} | {attn_label} | {era} | {p.tokens['encoder_seq_len']:,} | "
                      f"{p.tokens['visual_tokens']:,} | {to_gib(p.weights_bytes):.2f} | "
                      f"{to_gib(p.peak_bytes - p.weights_bytes):.1f} | {to_gib(p.peak_bytes):.1f} | "
                      f"{p.peak_phase} / {p.dominant} |")


if __name__ == "__main__":
    main()
