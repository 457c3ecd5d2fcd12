"""A manifest names what repeats a run: weights revision (hub commit, local folder hash, twin recipe), the
frames sampled, untracked files in the dirty flag; `python -m workbench rerun RUN_DIR` repeats a run folder
and its results compare byte for byte."""

from __future__ import annotations

import json
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
