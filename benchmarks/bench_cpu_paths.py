"""bitsandbytes' CPU paths: the mid-size Qwen2-VL measured on each path this machine can run, beside its prediction.

The machine's own path first, then the paths an AVX2-only machine takes, forced (forcing only turns a capability
off): `WORKBENCH_BNB_AVX512BF16=0` (4-bit dequantizing kernel) and, for 8-bit with eager attention,
`ATEN_CPU_CAPABILITY=avx2` (bitsandbytes' float32 int8 matmul). Each configuration runs in a fresh process.
Prints a markdown table: `.venv/bin/python benchmarks/bench_cpu_paths.py [--frames 4 16]`.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess

from workbench.memory import run_probe
from workbench.memory.probe import MIDSIZE_QWEN2_VL_OVERRIDES, ProbeConfig
from workbench.units import to_mib

PATHS = {  # label -> environment forced on the probe process
    "this machine": {},
    "4-bit dequantize (no AVX512-BF16)": {"WORKBENCH_BNB_AVX512BF16": "0"},
    "torch AVX2 + no AVX512-BF16": {"WORKBENCH_BNB_AVX512BF16": "0", "ATEN_CPU_CAPABILITY": "avx2"},
}


def cpu_flags() -> str:
    flags = ""
    try:
        flags = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        pass
    found = sorted({w for w in flags.split() if w.startswith(("avx2", "avx512", "amx"))})
    return " ".join(found) or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[4, 16])
    args = parser.parse_args()
    print(f"CPU: {platform.processor() or platform.machine()}; flags: {cpu_flags()}\n")
    print("| path | quantization | attention | frames | measured peak | predicted | error | 4-bit / 8-bit kernels |")
    print("|---|---|---|---|---|---|---|---|")
    for label, env in PATHS.items():
        # torch's forced AVX2 breaks its bf16 flash sdpa on AMX machines, which a real AVX2 machine never sees
        attentions = ("eager",) if "ATEN_CPU_CAPABILITY" in env else ("eager", "sdpa")
        quantizations = ("8bit",) if "ATEN_CPU_CAPABILITY" in env else ("8bit", "4bit-nf4")
        if label.startswith("4-bit"):
            quantizations = ("4bit-nf4",)
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        try:
            for quantization in quantizations:
                for attn in attentions:
                    for frames in args.frames:
                        config = ProbeConfig(model="qwen2-vl-2b", source="random", device="cpu", frames=frames,
                                             height=280, width=280, attn_implementation=attn,
                                             quantization=quantization, max_new_tokens=8, threads=1,
                                             config_overrides=MIDSIZE_QWEN2_VL_OVERRIDES)
                        result = run_probe(config, timeout_s=600)
                        if result["status"] != "ok":
                            print(f"| {label} | {quantization} | {attn} | {frames} | {result['status']}: "
                                  f"{(result['error'] or '')[:80]} | | | |")
                            continue
                        kernels = result["prediction"]["cpu_kernels"]
                        print(f"| {label} | {quantization} | {attn} | {frames} | "
                              f"{to_mib(result['peak_bytes']):.1f} MiB | "
                              f"{to_mib(result['predicted_peak_bytes']):.1f} MiB | {result['error_pct']:+.2f} % | "
                              f"{kernels['nf4_matmul']} / {kernels['int8_matmul']} |", flush=True)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


if __name__ == "__main__":
    main()
