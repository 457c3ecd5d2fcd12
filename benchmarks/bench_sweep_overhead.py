"""What a sweep costs per run, and its throughput with 1 and 2 local workers, on a trivial notebook.

    .venv/bin/python benchmarks/bench_sweep_overhead.py [--runs 6] [--repeats 3]

The trivial notebook (tests/data/trivial.ipynb) squares a number and saves one table, so a run's wall time is
the sweep's own overhead: a fresh Python process, papermill, kernel start-up, importing the workbench, the
run folder's manifest, the HTML export and the record. Reported as medians over repeats (each repeat a new
sweep folder, so nothing is skipped): seconds per run with 1 worker, and runs per minute with 1 and 2
workers (the speed-up is their ratio). Also the time a resumed sweep takes to skip every finished run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TRIVIAL = REPO / "tests" / "data" / "trivial.ipynb"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as outputs:
        os.environ["WORKBENCH_OUTPUTS"] = outputs
        from workbench.sweep import run_sweep

        timings: dict[int, list[float]] = {1: [], 2: []}
        resume: list[float] = []
        for repeat in range(args.repeats):
            for workers in (1, 2):
                name = f"bench-{workers}-{repeat}"
                path = Path(outputs) / f"{name}.yaml"
                path.write_text(yaml.safe_dump({"notebook": str(TRIVIAL), "name": name,
                                                "grid": {"value": list(range(args.runs))}}))
                start = time.perf_counter()
                run_sweep(path, workers=workers, progress=False)
                timings[workers].append(time.perf_counter() - start)
                if workers == 1:
                    start = time.perf_counter()
                    run_sweep(path, workers=1, progress=False)
                    resume.append(time.perf_counter() - start)

    one, two = statistics.median(timings[1]), statistics.median(timings[2])
    print(f"trivial notebook, {args.runs} runs per sweep, {args.repeats} repeats, {os.cpu_count()} CPU cores")
    print(f"1 worker : {one:6.1f} s per sweep = {one / args.runs:5.2f} s per run, {60 * args.runs / one:5.1f} runs/min")
    print(f"2 workers: {two:6.1f} s per sweep = {two / args.runs:5.2f} s per run, {60 * args.runs / two:5.1f} runs/min")
    print(f"speed-up with 2 workers: {one / two:.2f}x")
    print(f"resuming a finished sweep (all {args.runs} skipped, aggregate rewritten): {statistics.median(resume):.2f} s")


if __name__ == "__main__":
    main()
