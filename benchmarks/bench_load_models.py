"""Load cost per family: tiny twins measured on this machine, real checkpoints predicted from their configs.

Part 1 loads each family's tiny twin (fabricated once, outside the timing) REPEATS times per quantization
in a fresh subprocess each and prints median load seconds and memory after load.
Part 2 prints the weight memory of every real checkpoint per quantization, from the embedded configs on
the meta device (exact bitsandbytes byte accounting, see workbench/weights.py).

Run: .venv/bin/python benchmarks/bench_load_models.py [--repeats 3] [--out docs/load_models.md]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

CHILD = """
import json, sys, warnings
warnings.filterwarnings("ignore")
from workbench.models import LoadSettings, load
loaded = load(sys.argv[1], LoadSettings(source="tiny", quantization=sys.argv[2]))
print(json.dumps({"seconds": loaded.report.seconds, "memory_bytes": loaded.report.memory_bytes,
                  "n_params": loaded.report.n_params}))
"""


def measure(model_id: str, quantization: str, repeats: int, env: dict[str, str]) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", CHILD, model_id, quantization], capture_output=True,
                             text=True, env=env, check=True, timeout=600).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return {"seconds": statistics.median(r["seconds"] for r in runs),
            "memory_bytes": statistics.median(r["memory_bytes"] for r in runs),
            "n_params": runs[0]["n_params"]}


def main() -> None:
    import os

    from workbench.models import registry
    from workbench.models.catalog import catalog
    from workbench.units import to_gib, to_mib

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="also write the tables as markdown to this file")
    args = parser.parse_args()

    env = dict(os.environ)
    env.setdefault("WORKBENCH_CACHE", tempfile.mkdtemp(prefix="bench-cache-"))
    os.environ.update(WORKBENCH_CACHE=env["WORKBENCH_CACHE"])
    lines = [f"## Tiny twins: median of {args.repeats} loads, each in a fresh process (CPU)", "",
             "| family | model id | params | quantization | load s | memory after load MiB |",
             "|---|---|---|---|---|---|"]
    for module, ids in registry._NATIVE.items():
        adapter = registry.family_adapter(module)
        adapter.ensure_tiny()  # fabrication is not part of the load time
        for quantization in ("none", "8bit", "4bit-nf4"):
            m = measure(ids[0], quantization, args.repeats, env)
            lines.append(f"| {adapter.family} | {ids[0]} | {m['n_params']:,} | {quantization} | "
                         f"{m['seconds']:.3f} | {to_mib(m['memory_bytes']):.2f} |")
            print(lines[-1], flush=True)
    lines += ["", "## Real checkpoints: weight memory once loaded (GiB), predicted from embedded configs", "",
              "| model id | params (B) | vs published | bf16 | int8 | nf4 | nf4 + double quant |",
              "|---|---|---|---|---|---|---|"]
    for row in catalog(weights=True):
        if row["status"] != "ok":
            continue
        lines.append(f"| {row['model_id']} | {row['params'] / 1e9:.3f} | {row['params_error_pct']:+.2f}% | "
                     f"{to_gib(row['weights_none_bytes']):.2f} | {to_gib(row['weights_8bit_bytes']):.2f} | "
                     f"{to_gib(row['weights_4bit-nf4_bytes']):.2f} | {to_gib(row['weights_4bit-nf4_dq_bytes']):.2f} |")
    print("\n".join(lines[lines.index("## Real checkpoints: weight memory once loaded (GiB), predicted from embedded configs"):]))
    if args.out:
        with open(args.out, "w") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
