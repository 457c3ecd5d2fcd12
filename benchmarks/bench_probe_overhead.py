"""The probe's own cost: a probed generate() against a bare transformers script doing the same generate().

    .venv/bin/python benchmarks/bench_probe_overhead.py [--repeats 5] [--frames 16] [--attn sdpa] [--threads 1]

Both run in fresh processes, alternating, on the mid-size Qwen2-VL of tests/memory (the 2B config shrunk to
~85M parameters, random weights) with the same frames, prompt and 16 greedy tokens. Reported, as medians
over the repeats: the process's peak resident memory (ru_maxrss from wait4) and the generate() wall time
(the probe's is the sum of its vision, prefill and generation phases, so it includes the tracker's
per-operator bookkeeping and the phase hooks). On a GPU the same comparison holds for torch's allocator
peak; this script measures what the machine it runs on has (CPU when no CUDA device is visible).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workbench.memory.probe import MIDSIZE_QWEN2_VL_OVERRIDES as MIDSIZE_OVERRIDES  # noqa: E402

# The bare script: transformers only (the config comes from the same embedded numbers and tiny processor).
BARE = r'''
import json, sys, time
import numpy as np, torch
from transformers import AutoProcessor, Qwen2VLConfig, Qwen2VLForConditionalGeneration
from transformers.video_utils import VideoMetadata

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
config = Qwen2VLConfig.from_dict(args["config"])
processor = AutoProcessor.from_pretrained(args["processor"])
torch.manual_seed(0)
model = Qwen2VLForConditionalGeneration.from_pretrained(
    None, config=config, state_dict={}, dtype=torch.bfloat16, attn_implementation=args["attn"],
    device_map={"": "cpu"}).eval()
n, size = args["frames"], args["size"]
frames = np.random.default_rng(0).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
conversation = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": args["prompt"]}]}]
text = processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
metadata = VideoMetadata(total_num_frames=n * 500, fps=1000.0, frames_indices=[i * 500 for i in range(n)],
                         duration=n * 0.5)
inputs = processor(text=[text], videos=[frames], video_metadata=[metadata], do_sample_frames=False,
                   cap_pixels_per_frame=False, return_tensors="pt")
inputs = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v) for k, v in inputs.items()}
start = time.perf_counter()
with torch.inference_mode():
    out = model.generate(**inputs, max_new_tokens=16, min_new_tokens=16, do_sample=False)
print(json.dumps({"generate_seconds": time.perf_counter() - start,
                  "new_tokens": int(out.shape[-1] - inputs["input_ids"].shape[-1])}))
'''


def _run(argv: list[str], env: dict[str, str]) -> tuple[str, int, float]:
    """stdout, peak RSS (bytes) and wall seconds of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    stdout = process.stdout.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{argv[:3]} exited with {process.returncode}")
    return stdout, usage.ru_maxrss * 1024, time.perf_counter() - start  # ru_maxrss is KiB on Linux


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=280)
    parser.add_argument("--attn", default="sdpa", choices=["eager", "sdpa"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mmap-threshold", type=int, default=65536,
                        help="MALLOC_MMAP_THRESHOLD_ for both children (0 leaves glibc's dynamic default)")
    parser.add_argument("--out", help="also write the figures as JSON here")
    args = parser.parse_args()

    from workbench.memory.probe import ProbeConfig, merge_config
    from workbench.models import get

    adapter, spec = get("qwen2-vl-2b")
    tiny_dir = adapter.ensure_tiny()
    import transformers

    processor = transformers.AutoProcessor.from_pretrained(str(tiny_dir))
    midsize = dataclasses.replace(spec, config=merge_config(spec.config, MIDSIZE_OVERRIDES))
    config = adapter.random_config(midsize, processor)
    probe_config = ProbeConfig(model="qwen2-vl-2b", source="random", config_overrides=MIDSIZE_OVERRIDES,
                               device="cpu", frames=args.frames, height=args.size, width=args.size,
                               attn_implementation=args.attn, max_new_tokens=16, threads=args.threads)
    bare_args = json.dumps({"config": config.to_dict(), "processor": str(tiny_dir), "attn": args.attn,
                            "frames": args.frames, "size": args.size, "threads": args.threads,
                            "prompt": spec.prompt})
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(REPO))
    if args.mmap_threshold:
        # glibc raises its mmap threshold after freeing a large block, so later tensors land in the heap and
        # peak RSS depends on fragmentation (+-30 MiB run to run here). A fixed threshold returns every large
        # tensor to the OS when freed, for both children alike, so RSS follows the live tensors.
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.mmap_threshold)
    if env.pop("PYTHONDONTWRITEBYTECODE", None) and "PYTHONPYCACHEPREFIX" not in env:
        from workbench import paths

        env["PYTHONPYCACHEPREFIX"] = str(paths.cache_dir() / "pycache")

    rows = {"bare": [], "probe": []}
    with tempfile.TemporaryDirectory() as tmp:
        config_file = Path(tmp) / "config.json"
        config_file.write_text(json.dumps(probe_config.as_dict()))
        result_file = Path(tmp) / "result.json"
        _run([sys.executable, "-c", BARE, bare_args], env)  # warm the bytecode cache for both
        for repeat in range(args.repeats):
            stdout, rss, wall = _run([sys.executable, "-c", BARE, bare_args], env)
            bare = json.loads(stdout.strip().splitlines()[-1])
            assert bare["new_tokens"] == 16
            rows["bare"].append({"rss": rss, "generate_s": bare["generate_seconds"], "process_s": wall})
            _stdout, rss, wall = _run([sys.executable, "-m", "workbench.memory.probe", str(config_file),
                                       "--out", str(result_file)], env)
            probe = json.loads(result_file.read_text())
            assert probe["status"] == "ok", probe["error"]
            generate = sum(p["seconds"] for p in probe["phases"] if p["phase"] != "load")
            rows["probe"].append({"rss": rss, "generate_s": generate, "process_s": wall,
                                  "tracked_peak": probe["peak_bytes"]})
            print(f"repeat {repeat}: bare rss {rows['bare'][-1]['rss'] / 2**20:.0f} MiB "
                  f"gen {rows['bare'][-1]['generate_s']:.2f} s | probe rss {rss / 2**20:.0f} MiB "
                  f"gen {generate:.2f} s", flush=True)

    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in rows[kind])

    summary = {
        "machine": f"{os.cpu_count()} CPU cores, torch threads {args.threads}, "
                   f"{'CUDA visible (not used)' if _cuda() else 'no CUDA'}",
        "config": {"frames": args.frames, "size": args.size, "attn": args.attn, "repeats": args.repeats,
                   "malloc_mmap_threshold": args.mmap_threshold},
        "bare_peak_rss_mib": median("bare", "rss") / 2**20,
        "probe_peak_rss_mib": median("probe", "rss") / 2**20,
        "rss_ratio": median("probe", "rss") / median("bare", "rss"),
        "bare_generate_s": median("bare", "generate_s"),
        "probe_generate_s": median("probe", "generate_s"),
        "generate_time_ratio": median("probe", "generate_s") / median("bare", "generate_s"),
        "bare_process_s": median("bare", "process_s"),
        "probe_process_s": median("probe", "process_s"),
        "probe_tracked_peak_mib": median("probe", "tracked_peak") / 2**20,
    }
    print(json.dumps(summary, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
