"""GPU check kit: the memory predictor against measurements of full-size random-weight models on one GPU.

    .venv/bin/python benchmarks/gpu_check.py [--out DIR] [--budget-s 450]
    .venv/bin/python benchmarks/gpu_check.py --smoke      # tiny twins on CPU, about a minute (used by the tests)

Each configuration runs in its own fresh process (`workbench.memory.run_probe`) with random weights built
from the embedded configs (no download): Qwen2-VL-7B and -2B at several frame counts, eager and sdpa, no
quantization and 8-bit under both 16-bit policies (vision tower kept 16-bit; bitsandbytes' default, which
quantizes it too), one 4-bit configuration, and one LLaVA-family model. The most telling configurations run
first (the team's case: 7B, 8-bit); once `--budget-s` is spent no new configuration starts, and the ones left
are listed as not run, so the whole check ends within the budget plus one configuration.

Writes gpu_check.csv (one row per configuration: measured after-load, allocated and reserved peaks, the CUDA
context, each phase measured and predicted, the errors) and gpu_check.md (the table with the device name and
the torch, transformers and bitsandbytes versions) into --out (default outputs/gpu_check/).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

from workbench.memory.probe import ProbeConfig, run_probe, versions
from workbench.memory.tracker import PHASES

QWEN_SIZE = dict(height=720, width=1280, max_pixels=602112)  # 720p frames under qwen-vl-utils' 768*28*28 cap


def full_configs() -> list[ProbeConfig]:
    """The GPU grid, most telling first."""
    base = dict(source="random", device="cuda", dtype="bfloat16", max_new_tokens=16)
    configs: list[ProbeConfig] = []
    for model, frames in (("qwen2-vl-7b", (2, 8)), ("qwen2-vl-2b", (2, 8, 16))):
        for quantization, quantize_vision in (("8bit", False), ("8bit", True), ("none", False)):
            for attn in ("sdpa", "eager"):
                for n in frames:
                    configs.append(ProbeConfig(model=model, quantization=quantization, quantize_vision=quantize_vision,
                                               attn_implementation=attn, frames=n, **QWEN_SIZE, **base))
    configs.append(ProbeConfig(model="qwen2-vl-7b", quantization="4bit-nf4", attn_implementation="sdpa", frames=8,
                               **QWEN_SIZE, **base))
    for n in (4, 8):
        configs.append(ProbeConfig(model="llava-onevision-7b", attn_implementation="sdpa", frames=n, height=720,
                                   width=1280, **base))
    # One of each kind first (the team's case, then each setting changed alone), so that a short budget
    # still covers every term of the predictor; the rest of the grid follows in its own order.
    first = [("qwen2-vl-7b", "8bit", False, "sdpa", 8), ("qwen2-vl-7b", "none", False, "sdpa", 8),
             ("qwen2-vl-7b", "8bit", False, "eager", 8), ("qwen2-vl-2b", "none", False, "sdpa", 16),
             ("qwen2-vl-7b", "8bit", True, "sdpa", 8), ("qwen2-vl-7b", "4bit-nf4", False, "sdpa", 8),
             ("qwen2-vl-2b", "none", False, "eager", 16)]

    def rank(c: ProbeConfig) -> int:
        key = (c.model, c.quantization, c.quantize_vision, c.attn_implementation, c.frames)
        return first.index(key) if key in first else len(first)

    return sorted(configs, key=rank)


def smoke_configs() -> list[ProbeConfig]:
    """The same kinds of configuration on tiny twins and the CPU."""
    base = dict(source="tiny", device="cpu", dtype="bfloat16", max_new_tokens=4, height=240, width=320, threads=1)
    return [ProbeConfig(model="qwen2-vl-2b", quantization=q, quantize_vision=qv, attn_implementation="sdpa",
                        frames=2, **base)
            for q, qv in (("8bit", False), ("8bit", True), ("none", False))]


def row(config: ProbeConfig, result: dict[str, Any] | None) -> dict[str, Any]:
    """One CSV row: the configuration, then measured and predicted bytes (empty where not run)."""
    out: dict[str, Any] = {"model": config.model, "quantization": config.quantization,
                           "vision_tower": "quantized" if config.quantize_vision else "16-bit",
                           "attention": config.attn_implementation, "frames": config.frames,
                           "frame_size": f"{config.width}x{config.height}", "max_pixels": config.max_pixels or 0}
    if result is None:
        return out | {"status": "not run (time budget)"}
    prediction = result.get("prediction") or {}
    phases = {p["phase"]: p for p in result.get("phases") or []}
    out |= {"status": result["status"], "error": (result.get("error") or "")[:200],
            "device_name": result.get("device_name"), "seconds": round(result.get("process_seconds") or 0, 1),
            "after_load_bytes": result.get("weights_bytes"), "predicted_after_load_bytes": prediction.get("weights_bytes"),
            "allocated_peak_bytes": result.get("peak_bytes"), "predicted_peak_bytes": result.get("predicted_peak_bytes"),
            "error_pct": result.get("error_pct"), "reserved_peak_bytes": result.get("reserved_peak_bytes"),
            "cuda_context_bytes": result.get("cuda_context_bytes"),
            "device_used_peak_bytes": result.get("device_used_peak_bytes")}
    for name in PHASES:
        out[f"{name}_peak_bytes"] = phases.get(name, {}).get("peak_bytes")
        out[f"{name}_predicted_bytes"] = (prediction.get("phase_peaks") or {}).get(name)
    return out


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    """The table a person reads: GiB with two decimals, errors in percent."""
    from workbench.units import to_gib

    def gib(value: Any) -> str:
        return "" if value is None else f"{to_gib(value):.2f}"

    lines = [header, "",
             "| model | quant. | vision tower | attention | frames | status | after load (pred.) GiB | "
             "allocated peak (pred.) GiB | error | reserved peak GiB | context GiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        error = "" if r.get("error_pct") is None else f"{r['error_pct']:+.1f} %"
        lines.append(
            f"| {r['model']} | {r['quantization']} | {r['vision_tower']} | {r['attention']} | {r['frames']} | "
            f"{r['status']} | {gib(r.get('after_load_bytes'))} ({gib(r.get('predicted_after_load_bytes'))}) | "
            f"{gib(r.get('allocated_peak_bytes'))} ({gib(r.get('predicted_peak_bytes'))}) | {error} | "
            f"{gib(r.get('reserved_peak_bytes'))} | {gib(r.get('cuda_context_bytes'))} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> Path:
    import pandas as pd

    from workbench import atomic, paths

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny twins on CPU (a minute; the tests run this)")
    parser.add_argument("--out", type=Path, default=None, help="folder for gpu_check.csv and gpu_check.md")
    parser.add_argument("--budget-s", type=float, default=450.0,
                        help="start no configuration after this many seconds (default 450)")
    parser.add_argument("--timeout-s", type=float, default=300.0, help="seconds before one probe is stopped")
    args = parser.parse_args(argv)
    out_dir = args.out or paths.outputs_dir() / ("gpu_check_smoke" if args.smoke else "gpu_check")
    configs = smoke_configs() if args.smoke else full_configs()
    if not args.smoke:
        import torch

        if not torch.cuda.is_available():
            parser.error("no CUDA device: run on a GPU, or use --smoke for the CPU version")
    start = time.perf_counter()
    rows = []
    for i, config in enumerate(configs, 1):
        if time.perf_counter() - start > args.budget_s:
            rows.append(row(config, None))
            continue
        result = run_probe(config, timeout_s=args.timeout_s)
        rows.append(row(config, result))
        print(f"[{i}/{len(configs)}] {config.model} {config.quantization} vision "
              f"{rows[-1]['vision_tower']} {config.attn_implementation} {config.frames} frames: "
              f"{result['status']} ({time.perf_counter() - start:.0f} s)", flush=True)
    device = next((r["device_name"] for r in rows if r.get("device_name")), platform.processor())
    found = versions()
    kind = "tiny twins on CPU (smoke)" if args.smoke else "random full-size weights (no download)"
    header = (f"GPU check on {device}: {kind}; torch {found['torch']}, transformers {found['transformers']}, "
              f"bitsandbytes {found['bitsandbytes']}; {time.perf_counter() - start:.0f} s wall")
    out_dir.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    atomic.write_text(out_dir / "gpu_check.csv", table.to_csv(index=False))
    atomic.write_text(out_dir / "gpu_check.md", markdown(rows, header))
    print(markdown(rows, header))
    return out_dir


if __name__ == "__main__":
    main()
