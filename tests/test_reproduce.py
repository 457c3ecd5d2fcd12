"""A manifest names what repeats a run: weights revision (hub commit, local folder hash, twin recipe), the
frames sampled, untracked files in the dirty flag; `python -m workbench rerun RUN_DIR` repeats a run folder
and its results compare byte for byte."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import context, manifest, runner, weights
from workbench.params import ParameterError

TRIVIAL = Path(__file__).parent / "data" / "trivial.ipynb"


def test_rerun_repeats_a_run_folder_byte_for_byte(tmp_path, monkeypatch):
    outputs = tmp_path / "outputs"
    monkeypatch.setenv("WORKBENCH_OUTPUTS", str(outputs))
    first = runner.run_notebook(str(TRIVIAL), overrides={"value": 7})
    assert first.status == "ok", first.error
    proc = subprocess.run([sys.executable, "-m", "workbench", "rerun", str(first.dir)], capture_output=True,
                          text=True, timeout=300, env={**__import__("os").environ, "WORKBENCH_OUTPUTS": str(outputs)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    (second,) = [d for d in (outputs / "trivial").iterdir() if d != first.dir]
    ours, theirs = (json.loads((d / "manifest.json").read_text()) for d in (first.dir, second))
    assert theirs["parameters"] == ours["parameters"] and theirs["parameters"]["value"] == 7
    assert theirs["rerun_of"]["run_id"] == ours["run_id"] and theirs["notebook_path"] == "tests/data/trivial.ipynb"
    names = sorted(p.name for p in (first.dir / "results").iterdir())
    assert names == sorted(p.name for p in (second / "results").iterdir()) and "numbers.csv" in names
    for name in names:  # the results: byte for byte (durations live in the manifest, not in results)
        assert (first.dir / "results" / name).read_bytes() == (second / "results" / name).read_bytes(), name


def test_rerun_refuses_redacted_parameters(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record = manifest.start_manifest("trivial", {"action": f"say {manifest.REDACTED}"}, "run", "test")
    manifest.write_manifest(run_dir / "manifest.json", {**record, "notebook_path": str(TRIVIAL)})
    with pytest.raises(ParameterError, match=r"\['action'\] held a secret"):
        runner.rerun(run_dir)
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        runner.rerun(tmp_path)


def test_weights_revision_names_hub_commit_local_hash_and_twin_recipe(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    (cache / "models--Qwen--Qwen2-VL-2B-Instruct" / "refs").mkdir(parents=True)
    (cache / "models--Qwen--Qwen2-VL-2B-Instruct" / "refs" / "main").write_text("0123abcd" * 5)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    hub = weights.weights_revision("qwen2-vl-2b", "Qwen/Qwen2-VL-2B-Instruct")
    assert hub["kind"] == "hub" and hub["revision"] == "0123abcd" * 5
    assert weights.weights_revision("qwen2-vl-2b", "someone/not-cached")["revision"] is None

    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"abc")
    local = weights.weights_revision("qwen2-vl-2b", str(folder))
    (folder / "model.safetensors").write_bytes(b"abd")
    changed = weights.weights_revision("qwen2-vl-2b", str(folder))
    assert local["kind"] == "local folder" and len(local["sha256"]) == 64 and changed["sha256"] != local["sha256"]

    twin = weights.weights_revision("qwen2-vl-2b", "tiny")
    assert twin["kind"] == "tiny twin" and "qwen2_vl.tiny_config" in twin["recipe"]
    random = weights.weights_revision("qwen2-vl-2b", "random")
    assert random["kind"] == "random" and len(random["config_sha256"]) == 64
    assert runner._weights({"models": ["qwen2-vl-2b", "smolvlm2-256m"], "source": "random"}, [])[1]["model"] \
        == "smolvlm2-256m"


def test_frames_of_every_window_reach_the_manifest(tmp_path):
    run_dir = tmp_path / "run"
    run = context.Run(run_dir, "nb", {}, standalone=False)
    run.record_frames([{"index": 0, "timestamp_s": 0.0, "window": 0, "window_start_s": 0.0, "window_end_s": 1.0},
                       {"index": 30, "timestamp_s": 1.001, "window": 1, "window_start_s": 1.0, "window_end_s": 2.0}],
                      "timeline")
    import pandas as pd

    run.save_table(pd.DataFrame({"index": [3, 9], "timestamp_s": [0.1, 0.3]}), "sampled_frames")
    run.save_table(pd.DataFrame({"window": [0, 1], "start_s": [0.0, 1.0], "end_s": [1.0, 2.0],
                                 "caption": ["a", "b"], "frame_times_s": ["0.250;0.750", "1.250;1.750"]}), "timeline")
    record = manifest.start_manifest("nb", {}, "run", "test")
    runner.finish_run(run_dir, record, "ok", None, 1.0)
    frames = {f["source"]: f.get("frames") for f in json.loads((run_dir / "manifest.json").read_text())["frames"]}
    assert frames["timeline"][1] == {"index": 30, "timestamp_s": 1.001, "window": 1, "window_start_s": 1.0,
                                     "window_end_s": 2.0}
    assert frames["results/sampled_frames.csv"] == [{"index": 3, "timestamp_s": 0.1}, {"index": 9, "timestamp_s": 0.3}]
    windows = {f["source"]: f.get("windows") for f in json.loads((run_dir / "manifest.json").read_text())["frames"]}
    assert windows["results/timeline.csv"][1] == {"window": 1, "start_s": 1.0, "end_s": 2.0,
                                                  "timestamps_s": [1.25, 1.75]}


def test_untracked_files_make_the_checkout_dirty(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / ".gitignore").write_text("outputs/\n")
    git("add", "a.py", ".gitignore")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "c")
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "ignored.csv").write_text("a\n")
    assert manifest.git_state(tmp_path)["dirty"] is False  # ignored files do not count
    (tmp_path / "new_notebook.ipynb").write_text("{}")
    state = manifest.git_state(tmp_path)
    assert state["dirty"] is True and state["untracked_files"] == 1 and state["modified_files"] == 0


# ---- 04: the frames of every window in the manifest, durations apart, a rerun compares byte for byte ----


def _timing_aside(results_dir: Path) -> list[str]:
    return sorted(p.name for p in results_dir.iterdir() if p.is_file() and not p.name.startswith("timing."))


@pytest.mark.notebook
@pytest.mark.slow
def test_rerun_of_a_caption_quality_run_gives_the_same_results(tmp_path, monkeypatch):
    """04 on the tiny twin (smoke parameters, 2 s of the events probe video) and `python -m workbench rerun` of its
    folder: every result but the timing table is the same byte for byte, and the manifest names each window's
    frames (indices and timestamps)."""
    import os

    import pandas as pd

    outputs = tmp_path / "outputs"
    monkeypatch.setenv("WORKBENCH_OUTPUTS", str(outputs))
    first = runner.run_notebook("04_caption_quality", "04_caption_quality.smoke.yaml", overrides={"max_seconds": 2.0})
    assert first.status == "ok", first.error
    proc = subprocess.run([sys.executable, "-m", "workbench", "rerun", str(first.dir)], capture_output=True,
                          text=True, timeout=900, env={**os.environ, "WORKBENCH_OUTPUTS": str(outputs)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    (second,) = [d for d in (outputs / "04_caption_quality").iterdir() if d.is_dir() and d != first.dir]

    names = _timing_aside(first.dir / "results")
    assert names == _timing_aside(second / "results")
    assert {"timeline.csv", "calls.csv", "summary.json", "captioning_cost.json", "load_report.json"} <= set(names)
    for name in names:
        assert (first.dir / "results" / name).read_bytes() == (second / "results" / name).read_bytes(), name
    for name in ("timeline.vtt", "timeline.srt"):
        assert (first.dir / "captions" / name).read_bytes() == (second / "captions" / name).read_bytes(), name

    # The durations are all in the timing table, and only there.
    for run_dir in (first.dir, second):
        calls = pd.read_csv(run_dir / "results" / "timing.csv")
        assert list(calls.columns) == ["video", "call", "latency_s"] and len(calls) == 2
        assert (calls["latency_s"] > 0).all()
        totals = json.loads((run_dir / "results" / "timing.json").read_text())
        assert totals["load_s"] > 0 and totals["compute_s"] == pytest.approx(calls["latency_s"].sum())
        assert totals["compute_per_video_s"] == pytest.approx(totals["compute_s"] / 2.0)
        for name in ("summary.json", "captioning_cost.json", "load_report.json"):
            record = json.loads((run_dir / "results" / name).read_text())
            assert not set(record) & {"seconds", "load_s", "compute_s", "compute_per_video_s", "wall_s"}, name
            assert not [n for n in record.get("notes", []) if re.search(r"\d\.\d+ s\b", n)], name  # no durations
        assert "latency_s" not in pd.read_csv(run_dir / "results" / "timeline.csv").columns

    # 05's collector still sees load time and compute per second of video (from timing.json).
    from workbench.quality import compare

    runs, skipped = compare.collect_runs(root=outputs / "04_caption_quality")
    assert skipped.empty and len(runs) == 2 and (runs["load_s"] > 0).all() and (runs["compute_per_video_s"] > 0).all()

    # The manifest names every window's frames: source index and exact timestamp, in the video's own frame grid.
    record = json.loads((second / "manifest.json").read_text())
    (timeline_frames,) = [f for f in record["frames"] if f["source"] == "results/timeline.csv"]
    windows = timeline_frames["windows"]
    assert [(w["window"], w["start_s"], w["end_s"]) for w in windows] == [(0, 0.0, 1.0), (1, 1.0, 2.0)]
    from workbench import video

    fps = video.probe(second / "video.mp4").fps if (second / "video.mp4").exists() else None
    for window in windows:
        assert window["video"] == "probe:events" and len(window["indices"]) == len(window["timestamps_s"]) == 1
        assert window["start_s"] <= window["timestamps_s"][0] < window["end_s"]
        if fps:
            assert window["timestamps_s"][0] == pytest.approx(window["indices"][0] / fps, abs=1e-6)
    assert record["rerun_of"]["run_id"] == json.loads((first.dir / "manifest.json").read_text())["run_id"]


def _fake_result(name: str, latencies: list[float], peak: int = 100):
    import pandas as pd

    from workbench.quality import timeline, videoset

    rows = [{"window": i, "start_s": float(i), "end_s": float(i + 1), "caption": "a red circle", "tokens": 3,
             "latency_s": latency, "status": "ok", "message": "", "call": i, "n_frames": 2,
             "frame_times_s": f"{i + 0.25:.6f};{i + 0.75:.6f}", "frame_indices": f"{10 * i + 2};{10 * i + 7}"}
            for i, latency in enumerate(latencies)]
    calls = pd.DataFrame([{"call": i, "status": "ok", "text": "a red circle", "tokens": 3, "latency_s": latency,
                           "n_frames": 2, "n_input_tokens": 50, "error": ""} for i, latency in enumerate(latencies)])
    captioned = timeline.Timeline(table=pd.DataFrame(rows, columns=timeline.TABLE_COLUMNS), calls=calls,
                                  thumbnails=[], settings=timeline.TimelineSettings(), video=name,
                                  video_duration_s=float(len(latencies)), span_s=float(len(latencies)),
                                  peak_bytes=peak, memory_kind="cpu_live_tensor_bytes", wall_s=sum(latencies) + 1)
    return videoset.VideoResult(name, Path(name), name, captioned, pd.DataFrame(), {"coverage": 1.0})


def test_latencies_leave_the_timeline_and_calls_for_the_timing_table():
    from workbench.quality import report, timeline, videoset

    results = [_fake_result("a", [0.5, 0.7]), _fake_result("b", [0.25])]
    assert "frame_indices" in timeline.TABLE_COLUMNS
    for table in ("timeline", "calls"):
        assert "latency_s" not in videoset.stacked(results, table).columns
    timing = videoset.stacked(results, "timing")
    assert timing.to_dict("list") == {"video": ["a", "a", "b"], "call": [0, 1, 0], "latency_s": [0.5, 0.7, 0.25]}
    assert videoset.stacked(results, "timeline")["frame_indices"].tolist() == ["2;7", "12;17", "2;7"]

    load_report = {"model_id": "m", "seconds": 4.0, "memory_bytes": 10}
    totals = videoset.timing(results, load_report)
    assert totals == {"load_s": 4.0, "compute_s": pytest.approx(1.45), "compute_per_video_s": pytest.approx(1.45 / 3),
                      "wall_s": pytest.approx(3.45)}
    cost = videoset.untimed(videoset.pooled_cost(results))
    assert cost["peak_bytes"] == 100 and not set(cost) & set(videoset.TIMING_KEYS)
    assert videoset.untimed(load_report) == {"model_id": "m", "memory_bytes": 10}
    summary = report.run_summary({**load_report, "family": "f", "source": "tiny", "quantization": "none",
                                  "attn_implementation": "sdpa", "dtype": "float32", "device": "cpu", "n_params": 1,
                                  "memory_kind": "rss"}, [], videoset.pooled_cost(results[:1]),
                                 {"coverage": 1.0, "fact_recall": float("nan")})
    kept = videoset.untimed(summary)
    assert not set(kept) & set(videoset.TIMING_KEYS) and kept["null_reasons"] == summary["null_reasons"]
    assert kept["fact_recall"] is None and kept["peak_bytes"] == 100


def test_collector_reads_durations_from_the_timing_table(tmp_path):
    from workbench import atomic
    from workbench.quality import compare

    for run, timing in (("new", {"load_s": 3.0, "compute_s": 2.0, "compute_per_video_s": float("nan")}),
                        ("old", None)):
        run_dir = tmp_path / run
        summary = {"model_id": "m", "quantization": "none", "attn_implementation": "sdpa", "mode": "windows",
                   "peak_bytes": 10, "success_rate": 1.0}
        if timing is None:  # a run from before the timing table kept its durations in the summary
            summary.update(load_s=5.0, compute_per_video_s=0.5)
        atomic.write_json(run_dir / "results" / "summary.json", summary)
        if timing is not None:
            atomic.write_json(run_dir / "results" / "timing.json", timing)
        atomic.write_json(run_dir / "manifest.json", {"status": "ok", "started_at": run})
    runs, skipped = compare.collect_runs(root=tmp_path)
    rows = {row["run"]: row for row in runs.to_dict("records")}
    assert skipped.empty
    assert rows["new"]["load_s"] == 3.0 and str(rows["new"]["compute_per_video_s"]) == "nan"
    assert rows["old"]["load_s"] == 5.0 and rows["old"]["compute_per_video_s"] == 0.5


def test_manifest_windows_name_their_frame_indices(tmp_path):
    import pandas as pd

    run_dir = tmp_path / "run"
    run = context.Run(run_dir, "nb", {}, standalone=False)
    run.save_table(pd.DataFrame({"video": ["real:bikes", "real:bikes"], "window": [0, 1], "start_s": [0.0, 1.0],
                                 "end_s": [1.0, 2.0], "caption": ["a", "b"],
                                 "frame_times_s": ["0.040000;0.520000", "1.040000;1.520000"],
                                 "frame_indices": ["1;13", "26;38"]}), "timeline")
    runner.finish_run(run_dir, manifest.start_manifest("nb", {}, "run", "test"), "ok", None, 1.0)
    (entry,) = [f for f in json.loads((run_dir / "manifest.json").read_text())["frames"]
                if f["source"] == "results/timeline.csv"]
    assert entry["windows"][1] == {"video": "real:bikes", "window": 1, "start_s": 1.0, "end_s": 2.0,
                                   "indices": [26, 38], "timestamps_s": [1.04, 1.52]}


def test_sweep_index_shows_compute_from_the_timing_table(tmp_path):
    from workbench import atomic, sweep_page

    atomic.write_json(tmp_path / "results" / "summary.json", {"success_rate": 1.0, "peak_bytes": 10})
    atomic.write_json(tmp_path / "results" / "timing.json", {"load_s": 2.0, "compute_per_video_s": 0.25})
    assert sweep_page.run_figures(tmp_path) == {"success_rate": 1.0, "peak_bytes": 10, "compute_per_video_s": 0.25}
