"""benchmarks/gpu_check.py in smoke mode: tiny twins on CPU, the same tables a GPU run writes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from workbench import paths


def test_gpu_check_smoke_writes_predicted_vs_measured(isolated_cache, tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_check", paths.REPO_ROOT / "benchmarks" / "gpu_check.py")
    kit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kit)
    assert len(kit.full_configs()) >= 30  # the GPU grid is there even where only the smoke runs
    assert {(c.quantization, c.quantize_vision) for c in kit.full_configs()} >= {("8bit", False), ("8bit", True),
                                                                                  ("none", False), ("4bit-nf4", False)}
    out: Path = kit.main(["--smoke", "--out", str(tmp_path)])
    table = pd.read_csv(out / "gpu_check.csv")
    assert len(table) == 3 and (table["status"] == "ok").all()
    assert set(table["vision_tower"]) == {"16-bit", "quantized"}
    assert (table["after_load_bytes"] == table["predicted_after_load_bytes"]).all()  # weights exact
    assert table["error_pct"].abs().max() < 15  # tiny twins (docs/memory.md)
    eight = table[table["quantization"] == "8bit"].set_index("vision_tower")
    assert eight.loc["quantized", "after_load_bytes"] < eight.loc["16-bit", "after_load_bytes"]
    assert table["prefill_peak_bytes"].notna().all() and table["prefill_predicted_bytes"].notna().all()
    text = (out / "gpu_check.md").read_text()
    assert "tiny twins on CPU (smoke)" in text and "transformers 5." in text and "| qwen2-vl-2b | 8bit |" in text
