"""The explorer on tiny twins: the widgets' callbacks driven programmatically (buttons clicked, controls set),
the results and status messages they leave, cancelling, failures, and save-as-run repeated headless."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from workbench import explore, paths
from workbench.explore import Explorer, ExplorerView, Selection
from workbench.params import notebook_parameters
from workbench.runner import run_notebook

# the smoke selection: Qwen2-VL's tiny twin, 4 frames, 3 one-second windows, 8 forced tokens
SMOKE = dict(model="qwen2-vl-2b", source="tiny", video="probe:events", frames=4, max_new_tokens=8,
             min_new_tokens=8, max_seconds=3.0, device="cpu")


def status_text(view: ExplorerView) -> str:
    return view.status.value


def make_view(**changes) -> ExplorerView:
    return ExplorerView(Explorer(Selection(**{**SMOKE, **changes})))


def test_selection_spells_the_notebook_parameters():
    """Every Selection field is a 00_explore parameter with the same default, so saved runs repeat."""
    declared = notebook_parameters(paths.notebook_path("00_explore"))
    defaults = Selection().to_parameters()
    assert set(declared) - {"run_dir", "actions"} == set(defaults)
    for name, value in defaults.items():
        assert declared[name].default == value, name
        assert declared[name].check(value) is None
    assert set(declared["actions"].default) <= set(explore.ACTIONS)
    with pytest.raises(ValueError, match="frames must be positive"):
        Selection(frames=0)
    with pytest.raises(ValueError, match="not one of"):
        Selection(quantization="3bit")


def test_predict_is_instant_needs_no_load_and_follows_the_frames_slider():
    view = make_view()
    view.buttons["predict"].click()  # runs in the callback itself: no thread, no model
    first = view.last_result
    assert first.action == "predict" and first.ok, first.message
    assert view.explorer.loaded is None and not view.job.running
    assert "Predicted peak" in status_text(view) and "4 frames of 320x240" in status_text(view)
    assert "wb-table-predict" in view.panels["predict"].value
    assert view.images["predict"][0].value[:4] == b"\x89PNG"

    view.frames.value = 16
    start = time.perf_counter()
    view.buttons["predict"].click()
    seconds = time.perf_counter() - start
    second = view.last_result
    assert "16 frames" in status_text(view)
    peak = lambda r: int(r.tables["predicted_memory"]["predicted_peak_bytes"].iloc[0])  # noqa: E731
    visual = lambda r: int(r.tables["predicted_memory"]["visual_tokens"].iloc[0])  # noqa: E731
    assert visual(second) == 4 * visual(first)  # Qwen2-VL: tokens grow with frame pairs
    assert peak(second) > peak(first)
    assert seconds < 5, f"predict took {seconds:.1f} s"
    from workbench import memory

    expected = memory.predict("qwen2-vl-2b", source="tiny", frames=16, height=240, width=320, max_new_tokens=8,
                              device="cpu")
    assert peak(second) == expected.peak_bytes


def test_load_caption_and_attention_through_the_buttons():
    view = make_view()
    assert view.start("load")
    assert view.buttons["caption"].disabled and not view.cancel_button.disabled  # busy while loading
    view.buttons["predict"].click()  # other actions still answer while a long one runs
    assert view.last_result.action in ("predict", "load")
    view.wait(120)
    load = view.explorer.results["load"]
    assert load.ok and "Loaded qwen2-vl-2b (qwen2_vl) from tiny" in load.message
    assert load.records["load_report"]["n_params"] > 0
    assert not view.buttons["caption"].disabled and view.cancel_button.disabled
    loaded = view.explorer.loaded

    view.buttons["caption"].click()
    result = view.wait(300)
    assert result.action == "caption" and result.ok, result.message
    assert view.explorer.loaded is loaded  # the same settings reuse the loaded model
    timeline = result.tables["timeline"]
    assert list(timeline["window"]) == [0, 1, 2] and timeline["start_s"].tolist() == [0.0, 1.0, 2.0]
    assert "Captioned 3 windows (3.0 s of video)" in status_text(view)
    assert "wb-table-caption" in view.panels["caption"].value
    assert view.images["caption"][0].value[:4] == b"\x89PNG"

    view.buttons["attention"].click()
    result = view.wait(300)
    assert result.ok, result.message
    summary = result.records["attention_summary"]
    assert summary["words"] == 8 and summary["frames"] == 4
    assert len(view.word.options) == 1 + 8 and view.layer.options == ("mean", "0", "1")
    assert len(view.head.options) == 1 + 4  # tiny twin: 4 heads, all kept
    before = view.images["attention"][0].value
    view.word.value = 3  # redraws the strip for word 3 from the capture, no model call
    assert view.explorer.selection.show_word == 3
    assert view.images["attention"][0].value != before
    assert result.figures["attention_frame_strip"] is not None


def test_probe_measures_in_a_fresh_process_and_reports_oom_in_plain_words():
    view = make_view(budget_gib=0.0)
    view.buttons["probe"].click()
    result = view.wait(600)
    assert result.ok, result.message
    probe = result.records["probe"]
    assert probe["status"] == "ok" and probe["peak_bytes"] > probe["weights_bytes"] > 0
    assert view.explorer.loaded is None  # the kernel never held the model
    assert "Measured peak" in status_text(view) and "predicted" in status_text(view)
    assert set(result.tables["probe_phases"]["phase"]) >= {"load", "prefill"}

    view.budget_gib.value = 0.001  # ~1 MiB: less than the tiny twin's peak
    view.buttons["probe"].click()
    result = view.wait(600)
    assert result.status == "error" and result.records["probe"]["status"] == "oom"
    assert "Out of memory in the" in result.message and "budget" in result.message
    assert "fewer frames" in status_text(view)


def test_cancel_kills_the_probe_process_and_the_kernel_stays_usable():
    view = make_view()
    assert view.start("probe")
    deadline = time.monotonic() + 60
    while view.explorer._probe_process is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process = view.explorer._probe_process
    assert process is not None, "the probe process did not start"
    view.cancel_button.click()
    result = view.wait(60)
    assert not view.job.running
    assert result.status == "cancelled" and "Probe cancelled" in result.message
    assert process.returncode is not None and process.returncode < 0  # killed by a signal
    assert "cancelled" in status_text(view)
    view.buttons["predict"].click()
    assert view.last_result.ok


def test_caption_cancels_between_windows():
    explorer = Explorer(Selection(**SMOKE))
    seen = []

    def progress(done, total, text):
        seen.append((done, total))
        if done == 1 and total == 3:
            explorer.cancel()  # as the Cancel button does, from another thread

    result = explorer.caption(progress)
    assert result.status == "cancelled"
    assert result.message == "Captioning cancelled after 1 of 3 windows; nothing was kept."
    assert (1, 3) in seen and (2, 3) not in seen
    again = explorer.caption()  # the cancel does not stick to the next action
    assert again.ok and len(again.tables["timeline"]) == 3


def test_failing_actions_leave_plain_messages_and_a_usable_explorer(tmp_path, monkeypatch):
    bad_video = tmp_path / "broken.mp4"
    bad_video.write_bytes(b"this is not a video" * 100)
    view = make_view()
    view.video_from.value = "file"
    view.video_path.value = str(bad_video)
    view.buttons["caption"].click()
    result = view.wait(120)
    assert result.status == "error"
    assert result.message.startswith(f"This video cannot be used: {bad_video}:")
    assert view.explorer.loaded is None  # the video is checked before any model is loaded
    view.buttons["predict"].click()
    assert view.last_result.status == "error" and "This video cannot be used" in status_text(view)

    view.video_path.value = str(tmp_path / "missing.mp4")
    view.buttons["attention"].click()
    assert "This video cannot be used" in view.wait(60).message

    view.video_from.value = "probe"
    empty_weights = tmp_path / "weights"
    empty_weights.mkdir()
    view.source.value = str(empty_weights)
    view.buttons["load"].click()
    result = view.wait(120)
    assert result.status == "error"
    assert f"{empty_weights} has no config.json" in result.message and "Traceback" not in result.message

    view.source.value = ""
    view.buttons["load"].click()
    assert not view.job.running and "Invalid setting: source is empty" in status_text(view)
    view.source.value = "tiny"
    view.model_options.value = "ratio=0.4"
    view.buttons["load"].click()
    assert not view.job.running and "Invalid setting: model options must be a JSON object" in status_text(view)
    view.model_options.value = '{"kept": 0.4}'
    view.buttons["load"].click()
    result = view.wait(120)
    assert result.status == "error" and "qwen2-vl-2b has no option 'kept'; its options: none" in result.message
    assert view.explorer.loaded is None  # a model whose options fail is not kept
    view.model_options.value = ""

    explorer = view.explorer
    explorer.selection = explorer.selection.replace(source="tiny", model="no-such-model", model_options={})
    result = explorer.predict()
    assert result.status == "error" and result.message.startswith("Unknown model id 'no-such-model'; valid ids:")

    import torch

    from workbench import models

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    explorer.selection = explorer.selection.replace(model="qwen2-vl-2b")
    monkeypatch.setattr(models, "load", out_of_memory)
    result = explorer.load()
    assert result.status == "error"
    assert result.message.startswith("Out of memory while loading the model: CUDA out of memory.")
    assert "The kernel is still usable" in result.message
    monkeypatch.undo()
    assert explorer.load().ok  # and it is
    with pytest.raises(explore.ExploreError, match="caption: This video cannot be used"):
        explorer.raise_for_errors()


def test_model_options_reach_the_loaded_model():
    explorer = explore.Explorer(Selection(**{**SMOKE, "model": "auroracap-7b-vid",
                                             "model_options": {"token_kept_ratio": 0.4}}))
    try:
        result = explorer.load()
        assert result.ok, result.message
        assert explorer.loaded.model.config.token_kept_ratio == 0.4
        assert explorer.loaded.report.options == {"token_kept_ratio": 0.4}
    finally:
        explorer.unload()


def test_upload_is_kept_and_selected(probe_video_paths):
    view = make_view()
    content = probe_video_paths["static"].read_bytes()
    view._on_upload({"new": ({"name": "my clip.mp4", "content": memoryview(content), "type": "video/mp4",
                              "size": len(content)},)})
    saved = Path(view.video_path.value)
    assert view.video_from.value == "file" and saved.read_bytes() == content
    assert saved.parent == paths.cache_dir() / "uploads" and saved.name.endswith("-my_clip.mp4")
    assert "Uploaded my clip.mp4" in status_text(view)
    view.buttons["predict"].click()
    assert view.last_result.ok and view.explorer.selection.video == str(saved)


def _killed_run_of_00_explore() -> Path:
    """A run folder of 00_explore whose process wrote its manifest and partial notebook, then died by kill -9."""
    import signal
    import subprocess
    import sys

    script = ("import sys, time; from pathlib import Path; from workbench import run_folder; "
              "f = run_folder.RunFolder.create('00_explore', {}, runner='test', suffix='dead'); "
              "(f.dir / run_folder.PARTIAL_NAME).write_text('{\"cells\": [], \"metadata\": {}, \"nbformat\": 4, "
              "\"nbformat_minor\": 5}'); print(f.dir, flush=True); time.sleep(300)")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    run_dir = Path(proc.stdout.readline().strip())
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "running"
    return run_dir


def test_save_as_run_repeats_headless():
    """Save as run, then `python -m workbench run 00_explore -f <params.yaml>` gives the same results; saving
    marks a dead run of the notebook killed."""
    dead = _killed_run_of_00_explore()
    view = make_view(device="auto")
    view.buttons["predict"].click()
    for action in ("caption", "attention"):
        view.buttons[action].click()
        assert view.wait(300).ok
    view.word.value = 2
    view.buttons["save"].click()
    saved = view.last_result
    assert saved.ok, saved.message
    run_dir = Path(saved.records["run_dir"])
    assert f"python -m workbench run 00_explore -f {run_dir / 'params.yaml'}" in status_text(view)
    params = yaml.safe_load((run_dir / "params.yaml").read_text())
    assert params["actions"] == ["predict", "caption", "attention"] and params["show_word"] == 2
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["runner"] == "explorer" and manifest["notebook"] == "00_explore"
    assert manifest["parameters"]["frames"] == 4 and manifest["seed"] == 0
    assert {o["path"] for o in manifest["outputs"]} >= {"results/predicted_memory.csv", "results/timeline.csv",
                                                        "results/attention_words.csv", "figures/timeline_view.png",
                                                        "figures/attention_frame_strip.png"}
    assert [i["role"] for i in manifest["inputs"]] == ["video"] and len(manifest["inputs"][0]["sha256"]) == 64
    killed = json.loads((dead / "manifest.json").read_text())
    assert killed["status"] == "killed" and killed["marked_killed_by"] == "explorer"
    assert (dead / "notebook.ipynb").exists()

    rerun = run_notebook("00_explore", str(run_dir / "params.yaml"))
    assert rerun.status == "ok", rerun.error
    for table, columns in (("predicted_memory", ["predicted_peak_bytes", "visual_tokens", "predicted_phase"]),
                           ("timeline", ["window", "start_s", "caption", "tokens", "status"]),
                           ("attention_words", None), ("attention_word_frames", ["word", "frame", "share"])):
        ours, theirs = (pd.read_csv(d / "results" / f"{table}.csv") for d in (run_dir, rerun.dir))
        columns = columns or list(ours.columns)
        pd.testing.assert_frame_equal(ours[columns], theirs[columns], check_exact=False, rtol=1e-4)
    ours, theirs = (json.loads((d / "results" / "attention_summary.json").read_text()) for d in (run_dir, rerun.dir))
    assert ours["caption"] == theirs["caption"] and ours["top_frame"] == theirs["top_frame"]
    assert (rerun.dir / "figures" / "attention_frame_strip.png").stat().st_size > 5000
    actions = json.loads((rerun.dir / "results" / "actions.json").read_text())
    assert [a["action"] for a in actions] == ["predict", "caption", "attention"]
    assert all(a["status"] == "ok" for a in actions)

    # a result computed with other settings than the current ones is left out, and said so
    view.frames.value = 6
    view.buttons["save"].click()
    assert "Saved caption as run" in status_text(view)
    assert "Not saved (computed with other settings" in status_text(view) and "predict, attention" in status_text(view)


def test_headless_run_with_a_bad_video_fails_in_plain_words(tmp_path):
    bad_video = tmp_path / "broken.mp4"
    bad_video.write_bytes(b"\x00" * 2048)
    result = run_notebook("00_explore", "00_explore.smoke.yaml",
                          overrides={"video": str(bad_video), "actions": ["predict"]})
    assert result.status == "failed"
    assert "ExploreError: predict: This video cannot be used" in result.error
    actions = json.loads((result.dir / "results" / "actions.json").read_text())
    assert [(a["action"], a["status"]) for a in actions] == [("predict", "error")]
    assert actions[0]["message"].startswith(f"This video cannot be used: {bad_video}:")
