"""Notebook runs: each demo notebook with its smoke parameters, checking the results it saved."""

from __future__ import annotations

import json

import nbformat
import pandas as pd
import pytest

from workbench import paths
from workbench.runner import run_notebook

pytestmark = pytest.mark.notebook


@pytest.mark.parametrize("notebook", sorted(p.name for p in paths.NOTEBOOKS_DIR.glob("*.ipynb")))
def test_committed_notebooks_are_templates(notebook):
    """No outputs, no execution counts, no def/class: logic lives in the package."""
    nb = nbformat.read(paths.NOTEBOOKS_DIR / notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [] and cell.execution_count is None, f"{notebook}: committed with outputs"
        for line in cell.source.splitlines():
            assert not line.lstrip().startswith(("def ", "class ")), f"{notebook}: {line}"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1


def test_video_input_smoke_run():
    result = run_notebook("00_video_input", "00_video_input.smoke.yaml")
    assert result.status == "ok", result.error
    sampled = pd.read_csv(result.dir / "results" / "sampled_frames.csv")
    truth = pd.read_csv(result.dir / "results" / "ground_truth_seconds.csv")
    info = json.loads((result.dir / "results" / "video_info.json").read_text())
    n_seconds = len(truth)
    assert n_seconds == round(info["duration_s"]) >= 3
    assert len(sampled) == 2 * n_seconds  # two frames in each 1 s window
    assert (sampled["window_start_s"] <= sampled["timestamp_s"]).all()
    assert (sampled["timestamp_s"] < sampled["window_end_s"]).all()
    assert sampled["index"].is_monotonic_increasing
    assert (sampled["timestamp_s"] - sampled["index"] / info["fps"]).abs().max() < 1e-3
    assert truth["description"].str.len().min() > 10
    for figure in ("contact_sheet.png", "ground_truth_timeline.png"):
        assert (result.dir / "figures" / figure).stat().st_size > 5000
    manifest = json.loads((result.dir / "manifest.json").read_text())
    video_inputs = [i for i in manifest["inputs"] if i.get("role") == "video"]
    # the probe video and the real clip shown beside it (beside_video, the footage extra)
    assert len(video_inputs) == 2 and all(len(i["sha256"]) == 64 for i in video_inputs)
    videos = pd.read_csv(result.dir / "results" / "videos.csv")
    assert videos["video"].tolist() == ["probe:events", "real:bigbuckbunny"]
    assert videos[["width", "height"]].values.tolist()[1] == [1280, 720]
    beside = pd.read_csv(result.dir / "results" / "beside_sampled_frames.csv")
    assert beside["window"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]  # 5.28 s: the last window is 1.28 s
    assert (result.dir / "figures" / "beside_contact_sheet.png").stat().st_size > 5000


def test_load_models_smoke_run():
    result = run_notebook("01_load_models", "01_load_models.smoke.yaml",
                          overrides={"models": ["qwen2-vl-2b", "video-llava-7b", "blip2-opt-2.7b"]})
    assert result.status == "ok", result.error
    loads = pd.read_csv(result.dir / "results" / "loads.csv")
    assert len(loads) == 9 and (loads["status"] == "ok").all()
    # the analytic weight prediction equals the measured tensor bytes (a few bytes of buffers aside)
    error = (loads["predicted_weight_bytes"] / loads["memory_bytes"] - 1).abs()
    assert error.max() < 0.005, loads[["model_id", "quantization", "memory_bytes", "predicted_weight_bytes"]]
    memory = loads.pivot(index="model_id", columns="quantization", values="memory_bytes")
    assert (memory["8bit"] < memory["none"]).all() and (memory["4bit-nf4"] < memory["8bit"]).all()
    assert (loads["caption_status"] == "ok").all() and (loads["caption_tokens"] > 0).all()
    llava = loads[loads["model_id"] == "video-llava-7b"]
    assert (llava["frames_used"] == 8).all()
    specs = pd.read_csv(result.dir / "results" / "specs.csv")
    assert specs.set_index("model_id").loc["blip2-opt-2.7b", "published_params_b"] == pytest.approx(3.75, abs=0.01)
    assert (result.dir / "figures" / "memory_after_load.png").exists()


def test_attention_smoke_run():
    """03 on a Qwen2-VL tiny twin: the caption is unchanged by capture, every word has a frame profile
    over the sampled frames, and the figures are saved."""
    result = run_notebook("03_attention", "03_attention.smoke.yaml")
    assert result.status == "ok", result.error
    results = result.dir / "results"
    check = json.loads((results / "caption_check.json").read_text())
    assert check["equal"] and check["caption_with_capture"] == check["caption_without_capture"]
    summary = json.loads((results / "summary.json").read_text())
    assert summary["words"] == 8 and summary["frames"] == 8 and summary["layers_captured"] == [0, 1]
    assert summary["model"] == "qwen2-vl-2b"
    table = pd.read_csv(results / "word_frame_attention.csv")
    assert len(table) == 8 * 8
    assert table.groupby("word")["share"].sum().to_numpy() == pytest.approx([1.0] * 8, abs=1e-4)
    layout = pd.read_csv(results / "token_layout.csv")
    assert layout["token"].nunique() == summary["visual_tokens"]
    assert set(layout.loc[layout["kind"] == "patch", "frame"]) == set(range(8))
    heads = pd.read_csv(results / "heads.csv")
    assert len(heads) == 2 * 4  # tiny twin: 2 layers x 4 heads, heads kept
    for figure in ("frame_strip.png", "word_timeline.png", "layer_frame_heatmap.png"):
        assert (result.dir / "figures" / figure).stat().st_size > 5000
    # headless, the explorer's widgets are never built: its cell shows where to use it, and no widget comm
    # was opened (such a cell can leave papermill's client waiting forever)
    executed = (result.dir / "notebook.ipynb").read_text()
    assert "Choosing word, layer and head: open this notebook in JupyterLab" in executed
    assert "widget-view+json" not in executed and "widget-state" not in executed


def test_attention_qformer_run():
    """03 on BLIP-2 (OPT): Q-Former queries traced to patches; every frame's patches carry mass."""
    result = run_notebook("03_attention", "03_attention.blip2.smoke.yaml")
    assert result.status == "ok", result.error
    layout = pd.read_csv(result.dir / "results" / "token_layout.csv")
    assert layout["token"].nunique() == 4 * 32
    patch = layout[layout["kind"] == "patch"]
    assert patch.groupby("token")["weight"].sum().between(0, 1.0001).all()
    assert json.loads((result.dir / "results" / "caption_check.json").read_text())["equal"]
