"""Notebook 02 with its smoke parameters: measured grid, predictions, frontier under a budget, findings."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from workbench.runner import run_notebook
from workbench.units import from_gib

pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def smoke_run(isolated_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WORKBENCH_OUTPUTS", str(tmp_path_factory.mktemp("outputs")))
        patch.setenv("WORKBENCH_CACHE", str(isolated_cache))
        result = run_notebook("02_memory_probe", "02_memory_probe.smoke.yaml")
    assert result.status == "ok", result.error
    return result.dir


def _table(run_dir: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(run_dir / "results" / f"{name}.csv")


def test_measured_grid_is_saved_with_predictions_within_10_percent(smoke_run):
    measured = _table(smoke_run, "measured")
    assert len(measured) == 4 and (measured["status"] == "ok").all()
    assert (measured["device"] == "cpu").all() and (measured["memory_kind"] == "cpu_live_tensor_bytes").all()
    assert measured["error_pct"].abs().max() < 10
    peaks = measured.pivot(index="frames", columns="attn_implementation", values="peak_bytes")
    assert list(peaks.index) == [2, 8]
    assert (peaks["eager"] > peaks["sdpa"]).all()
    assert peaks["sdpa"].is_monotonic_increasing and peaks["eager"].is_monotonic_increasing
    # the tiny twin's visual tokens: (frames / 2) x (252 / 28) x (308 / 28)
    assert measured.set_index(["attn_implementation", "frames"])["visual_tokens"][("sdpa", 8)] == 4 * 9 * 11
    phases = _table(smoke_run, "phases")
    assert set(phases["phase"]) == {"load", "vision", "prefill", "generation"}
    load = phases[phases["phase"] == "load"]
    assert (load["peak_bytes"] == measured["weights_bytes"].iloc[0]).all()
    probes = json.loads((smoke_run / "results" / "probes.json").read_text())
    assert all(p["prediction"]["tokens"]["visual_tokens"] == p["tokens"]["visual_tokens"] for p in probes)


def test_measured_frontier_matches_the_predicted_one_with_few_probes(smoke_run):
    budget = from_gib(0.00634765625)
    measured = _table(smoke_run, "frontier_measured").set_index("attn_implementation")
    predicted = _table(smoke_run, "frontier_predicted")
    predicted = predicted[predicted["budget_gib"] == 0.00634765625].set_index("attn_implementation")
    assert measured.loc["eager", "max_frames"] == predicted.loc["eager", "max_frames"] == 4
    assert measured.loc["sdpa", "max_frames"] == predicted.loc["sdpa", "max_frames"] == 8
    assert (measured["n_probes"] < measured["n_values"]).all()
    assert measured["n_skipped"].sum() >= 1  # the predictor ruled out probes that would run out of memory
    probes = _table(smoke_run, "frontier_probes")
    made = probes[probes["action"] == "probed"]
    assert (made[made["fits"]]["status"] == "ok").all()
    assert (made[made["fits"]]["peak_bytes"] <= budget).all()
    failed = made[~made["fits"].astype(bool)]
    assert (failed["status"] == "oom").all() and failed["phase"].notna().all()
    # the grid's own measurements (no budget) agree: 8 eager frames do not fit, 8 sdpa frames do
    grid = _table(smoke_run, "measured").set_index(["attn_implementation", "frames"])["peak_bytes"]
    assert grid[("sdpa", 8)] <= budget < grid[("eager", 8)]


def test_findings_are_computed_from_the_tables(smoke_run):
    found = json.loads((smoke_run / "results" / "findings.json").read_text())
    predicted = _table(smoke_run, "predicted")
    over = predicted[predicted["predicted_peak_bytes"] > from_gib(found["requirements"][0]["budget_gib"])]
    assert found["configurations_considered"] == len(over) >= 1
    assert found["dominant_component"] == over["dominant"].mode()[0] == "llm_attention"
    first, second = found["requirements"]
    assert first["fitting_configs"] == ["none/sdpa/320x240/no cap"]  # 8 frames in 6.5 MiB
    assert second["fitting_configs"] == ["none/sdpa/320x240/no cap"]  # 4 frames in 3.5 MiB
    assert "none/eager/320x240/no cap" in first["not_fitting_configs"]


def test_figures_and_manifest(smoke_run):
    for name in ("peak_vs_frames", "predicted_vs_measured", "breakdown", "frontier_heatmap"):
        assert (smoke_run / "figures" / f"{name}.png").stat().st_size > 10_000, name
    manifest = json.loads((smoke_run / "manifest.json").read_text())
    assert manifest["status"] == "ok"
    assert manifest["parameters"]["measure"] is True
    breakdown = _table(smoke_run, "breakdown")
    assert {"weights", "inputs"} <= set(breakdown["component"])
    totals = breakdown.groupby(["config", "frames"])["bytes"].sum()
    predicted = _table(smoke_run, "predicted").set_index(["config", "frames"])["predicted_peak_bytes"]
    assert (totals == predicted.loc[totals.index]).all()  # the stacked bars add up to the predicted peak
