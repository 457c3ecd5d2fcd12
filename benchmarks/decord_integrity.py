"""Which damaged or awkward files does decord (decord2) handle by itself, and which need workbench's PyAV checks?

For each case an index video (frame i shows the number i) is written or damaged, then read twice, each in
its own child process (a crash in native code shows as a signal, not a dead script):
- bare decord: `VideoReader(path)`, `len()`, `get_batch` of uniform indices; each returned picture is read
  back as a number and compared with the index asked for;
- workbench: `video.sample_uniform(path, n)`, twice: a first read (the strict PyAV check, whose own frames
  it returns without opening decord) and a second read in another process with the first's cache (decord,
  its pictures compared with the cached fingerprints and its bytes with the first read's).
The verdict says whether bare decord is safe on that case (an error, or the right pictures) or not (wrong
pictures, unreadable concealed pictures, a frame count that hides the damage).

Then --damaged copies of the MP4, each with a few bit flips, a random span or a zeroed span at a random
place, are read by bare decord (every frame) and by workbench (`sample_fps` at the native rate), and the
outcomes are tallied: how often decord returns wrong or concealed pictures without an error where
workbench's strict PyAV decode refuses the file.

    .venv/bin/python benchmarks/decord_integrity.py [--damaged 90] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

N_FRAMES, FPS, SIZE, ASKED = 90, 10, (160, 120), 6

CHILD = r"""
import json, sys
from workbench import video
from workbench.probe_videos import read_frame_index
from workbench.sampling import uniform_indices

which, path, n_true, asked = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
out = {}
try:
    if which == "decord":
        decord = video.import_decord()
        reader = decord.VideoReader(path)
        out["frames_seen"] = len(reader)
        wanted = uniform_indices(len(reader), asked)
        batch = reader.get_batch(wanted).asnumpy()
    else:
        result = video.sample_uniform(path, asked)
        wanted, batch = result.indices.tolist(), result.frames
        out["notes"] = result.notes
    shown = []
    for frame in batch:
        try:
            shown.append(read_frame_index(frame))
        except ValueError:
            shown.append(None)
    out.update(wanted=wanted, shown=shown)
except Exception as err:  # the point is to see what each reader raises
    out["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[-1][:160]}"
print(json.dumps(out))
"""


def _write(path: Path, container_format: str, options: dict[str, str]) -> Path:
    import av

    from workbench.probe_videos import index_pattern

    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream("libx264", rate=FPS, options=options)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        for i in range(N_FRAMES):
            frame = av.VideoFrame.from_ndarray(index_pattern(i, SIZE), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_cases(directory: Path) -> dict[str, Path]:
    gop = {"g": "20", "bf": "2"}
    mp4 = _write(directory / "intact.mp4", "mp4", {**gop, "movflags": "+faststart"})
    data = mp4.read_bytes()
    rng = np.random.default_rng(0)
    cases = {"intact MP4 (control)": mp4}

    def damaged(name: str, payload: bytes) -> Path:
        path = directory / name
        path.write_bytes(payload)
        return path

    cases["MP4 truncated to 60 %"] = damaged("truncated.mp4", data[: len(data) * 6 // 10])
    mkv = _write(directory / "intact.mkv", "matroska", gop)
    cases["MKV truncated to 60 %"] = damaged("truncated.mkv", mkv.read_bytes()[: mkv.stat().st_size * 6 // 10])
    flipped = bytearray(data)
    for position in rng.integers(len(data) // 4, len(data), 40):
        flipped[position] ^= 1 << int(rng.integers(0, 8))
    cases["MP4, 40 single-bit flips"] = damaged("bitflips.mp4", bytes(flipped))
    noisy = bytearray(data)
    middle, length = len(data) // 2, len(data) // 10
    noisy[middle : middle + length] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    cases["MP4, 10 % of bytes random"] = damaged("random_span.mp4", bytes(noisy))
    zeroed = bytearray(data)
    zeroed[middle : middle + length // 2] = bytes(length // 2)
    cases["MP4, 5 % of bytes zeroed"] = damaged("zeroed.mp4", bytes(zeroed))
    cases["MPEG-TS with B-frames"] = _write(directory / "broadcast.ts", "mpegts", gop)
    cases["AVI with B-frames"] = _write(directory / "legacy.avi", "avi", gop)
    cases["MKV with B-frames"] = mkv
    return cases


def read(which: str, path: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, which, str(path), str(N_FRAMES), str(ASKED)],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        return {"error": f"process died (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def verdict(result: dict) -> str:
    if "error" in result:
        return "error"
    wanted, shown = result["wanted"], result["shown"]
    if None in shown:
        return "unreadable (concealed) pictures"
    if shown != wanted:
        return "wrong pictures"
    if result.get("frames_seen", N_FRAMES) != N_FRAMES:
        return f"right pictures, but sees {result['frames_seen']} of {N_FRAMES} frames"
    return "right pictures"


SWEEP_CHILD = r"""
import collections, json, sys
from pathlib import Path
import numpy as np
from workbench import video
from workbench.probe_videos import read_frame_index

source, count, scratch = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
decord = video.import_decord()
data = source.read_bytes()
rng = np.random.default_rng(1)
tally = collections.Counter()
for trial in range(count):
    kind = ("bit flips", "random span", "zeroed span")[trial % 3]
    damaged = bytearray(data)
    if kind == "bit flips":
        for position in rng.integers(64, len(damaged), 5):
            damaged[position] ^= 1 << int(rng.integers(0, 8))
    else:
        length = int(rng.integers(16, 500))
        position = int(rng.integers(64, len(damaged) - length))
        damaged[position : position + length] = (rng.integers(0, 256, length, dtype=np.uint8).tobytes()
                                                 if kind == "random span" else bytes(length))
    path = scratch / f"damaged_{trial}.mp4"
    path.write_bytes(bytes(damaged))
    try:
        reader = decord.VideoReader(str(path))
        wanted = list(range(len(reader)))
        shown = []
        for frame in reader.get_batch(wanted).asnumpy():
            try:
                shown.append(read_frame_index(frame))
            except ValueError:
                shown.append(None)
        bare = "right" if shown == wanted and len(wanted) == int(sys.argv[4]) else (
            "concealed" if None in shown else "wrong")
    except Exception:
        bare = "error"
    try:
        video.sample_fps(path, float(sys.argv[5]))
        checked = "frames"
    except video.VideoError:
        checked = "VideoError"
    tally[f"{kind} | bare decord: {bare} | workbench: {checked}"] += 1
    path.unlink()
print(json.dumps(dict(sorted(tally.items()))))
"""


def damaged_sweep(source: Path, count: int, scratch: Path) -> dict[str, int]:
    proc = subprocess.run([sys.executable, "-c", SWEEP_CHILD, str(source), str(count), str(scratch),
                           str(N_FRAMES), str(FPS)], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"damaged-file sweep died (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--damaged", type=int, default=90, help="randomly damaged copies to read (0: none)")
    args = parser.parse_args()
    from workbench.video import import_decord

    print(f"decord {import_decord().__version__}; {N_FRAMES} frames at {FPS} fps, {SIZE[0]}x{SIZE[1]}, "
          f"keyframe every 20 frames, 2 B-frames; {ASKED} frames asked for")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # Each case's first workbench read finds an empty cache (a file of its own); the second finds what the
        # first left (nothing, for a file that failed). Nothing is left behind.
        os.environ["WORKBENCH_CACHE"] = str(Path(tmp) / "cache")
        for name, path in make_cases(Path(tmp)).items():
            bare, checked, again = read("decord", path), read("workbench", path), read("workbench", path)
            rows.append({"case": name, "decord": bare, "workbench": checked, "workbench_again": again,
                         "decord_verdict": verdict(bare), "workbench_verdict": verdict(checked),
                         "workbench_again_verdict": verdict(again)})
            print(f"\n{name}\n  bare decord: {rows[-1]['decord_verdict']:<40} {bare.get('error', '')}"
                  f"\n  workbench:   {rows[-1]['workbench_verdict']:<40} {checked.get('error', '')}"
                  f"\n  again:       {rows[-1]['workbench_again_verdict']:<40} {again.get('error', '')}"
                  f"{' notes: ' + '; '.join(again['notes']) if again.get('notes') else ''}")
            for label, result in (("decord", bare), ("workbench", checked), ("again", again)):
                if "wanted" in result and result["wanted"] != result["shown"]:
                    print(f"    {label} asked {result['wanted']} got {result['shown']}")
        sweep = damaged_sweep(Path(tmp) / "intact.mp4", args.damaged, Path(tmp)) if args.damaged else {}
    if sweep:
        print(f"\n{args.damaged} randomly damaged copies of the intact MP4 (count per outcome):")
        for outcome, count in sweep.items():
            print(f"  {count:4d}  {outcome}")
        rows.append({"case": "damaged sweep", "copies": args.damaged, "outcomes": sweep})
    if args.json:
        from workbench.atomic import write_json

        write_json(args.json, rows)


if __name__ == "__main__":
    main()
