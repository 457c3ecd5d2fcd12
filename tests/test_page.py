"""What a shared page shows: tables in human units, split when wide; warnings once per kind into the run's log;
the provenance header; the sweep index."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pandas as pd

from workbench import page, sweep_page
from workbench.paths import REPO_ROOT


def test_wide_table_is_split_with_its_key_repeated_and_no_scientific_notation():
    table = pd.DataFrame({"model_id": ["a", "b", "c", "d"],
                          **{f"m{i}": [2.5e-5 * (i + 1), 0.123456, 1.0, 2.0] for i in range(12)},
                          "peak_bytes": [5_598_304, 478_048, 1, 2]})
    shown = page.show(table, max_columns=5)
    groups = shown.groups()
    assert len(groups) == 4 and all(list(g.columns)[0] == "model id" for g in groups)
    assert sum(len(g.columns) - 1 for g in groups) == 13  # every other column once
    html = shown._repr_html_()
    assert "e-05" not in html and "0.000025" in html and "0.123" in html and "0.123456" not in html
    assert "5.34 MiB" in html and "467 KiB" in html and ">peak<" in html  # bytes shown in units, header renamed
    assert table["peak_bytes"].tolist() == [5_598_304, 478_048, 1, 2]  # the table itself is not changed
    few = page.show(table.head(2), max_columns=5).groups()  # two rows, 14 columns: one column per row instead
    assert len(few) == 1 and list(few[0].columns) == ["a", "b"] and "peak" in few[0].index


def test_dicts_show_as_name_value_rows_and_paths_relative():
    shown = page.show({"path": str(REPO_ROOT / "outputs" / "x.mp4"), "peak_bytes": 3 * 2**30, "share": 0.125})
    text = repr(shown)
    assert "outputs/x.mp4" in text and str(REPO_ROOT) not in text and "3 GiB" in text and "0.125" in text


def test_links_are_drawn_in_html_only_for_the_named_column():
    shown = page.show(pd.DataFrame({"run": ["r1"], "note": ["<b>x</b>"]}), links={"run": ["../r1/notebook.html"]})
    html = shown._repr_html_()
    assert '<a href="../r1/notebook.html">r1</a>' in html and "&lt;b&gt;x&lt;/b&gt;" in html


def test_warnings_are_logged_once_per_kind_with_counts(tmp_path):
    log = page.WarningLog(tmp_path).install()
    try:
        for i in range(50):
            warnings.warn_explicit(f"MatMul8bitLt: inputs will be cast ({i})", UserWarning, "x.py", 3)
        warnings.warn_explicit("another kind", FutureWarning, "y.py", 4)
        import sys

        print("Loading weights: 100% 58/58", file=sys.stderr)
    finally:
        log.close()
    entries = page.read_warnings(tmp_path)
    counts = {e["category"]: e["count"] for e in entries}
    assert counts == {"UserWarning": 50, "FutureWarning": 1, "stderr": 1}
    summary = page.warnings_html(entries)
    assert summary.startswith("<details") and "3 kind(s), 52 in all" in summary


def test_provenance_header_goes_after_the_title_with_relative_paths(tmp_path):
    run_dir = tmp_path / "outputs" / "04_caption_quality" / "20260101-000000-abcdef12"
    run_dir.mkdir(parents=True)
    record = {"notebook": "04_caption_quality", "run_id": run_dir.name, "status": "ok",
              "git": {"commit": "0123456789abcdef", "dirty": True}, "parameters": {"source": "tiny", "device": "auto"},
              "weights": [{"model": "qwen2-vl-2b", "sha256": "ff" * 32}],
              "versions": {"python": "3.11.7", "torch": "2.14.1"}, "started_at": "2026-01-01T00:00:00.000+00:00",
              "hardware": {"cpu": "Xeon", "cpu_count": 2, "gpus": []}}
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# title"),
                                               nbformat.v4.new_code_cell("1")])
    text = page.add_header(nbformat.writes(notebook), record, run_dir)
    cells = nbformat.reads(text, as_version=4).cells
    assert cells[0].source == "# title" and "provenance" in cells[1].metadata["tags"]
    header = cells[1].source
    for fragment in ("0123456789 (uncommitted changes)", "tiny twin", "qwen2-vl-2b: sha256 ffffffffffff",
                     "CPU (Xeon, 2 cores)", "torch 2.14.1", "2026-01-01 00:00:00", "[manifest.json](manifest.json)"):
        assert fragment in header, fragment
    assert str(tmp_path) not in header
    again = page.add_header(text, record, run_dir)  # a second header replaces the first
    assert sum("provenance" in c.metadata.get("tags", []) for c in nbformat.reads(again, as_version=4).cells) == 1


def test_weights_kinds():
    assert [page.weights_kind(s) for s in ("tiny", "trained", "random", "Qwen/Qwen2-VL-2B-Instruct", None)] == [
        "tiny twin", "trained twin", "random weights", "real weights", "unknown"]


def test_sweep_index_shows_values_as_written_weights_and_results(tmp_path):
    run_dir = tmp_path / "runs" / "k1-a1"
    (run_dir / "results").mkdir(parents=True)
    (run_dir / "notebook.html").write_text("<html></html>")
    (run_dir / "results" / "summary.json").write_text(json.dumps({"success_rate": 0.5, "peak_bytes": 3 * 2**20}))
    (run_dir / "manifest.json").write_text(json.dumps({"versions": {"torch": "2.14.1"}, "hardware": {"cpu": "X"}}))
    sweep = SimpleNamespace(name="s", notebook="04_caption_quality", path=REPO_ROOT / "params" / "sweeps" / "s.yaml",
                            code_version="abc", varying=["model", "frames"], dir=tmp_path,
                            runs=[SimpleNamespace(key="k1", parameters={"source": "tiny"})])
    records = [{"key": "k1", "status": "ok", "seconds": 12.345, "run_dir": "runs/k1-a1", "error": None,
                "point": {"model": "qwen2-vl-2b", "frames": [2, 4]}}]
    html = sweep_page.index_html(sweep, records)
    assert html.count("<tr>") == 2 and "&quot;" not in html  # header + one run; no JSON quotes
    for fragment in ("<td>qwen2-vl-2b</td>", "<td>[2, 4]</td>", "<td>tiny twin</td>", "<td>0.5</td>",
                     "<td>3 MiB</td>", 'href="runs/k1-a1/notebook.html"', "params/sweeps/s.yaml", "torch 2.14.1"):
        assert fragment in html, fragment
    assert str(REPO_ROOT) not in html


def test_interactive_builds_its_widget_only_where_someone_can_use_it(monkeypatch):
    """Headless, the widget is never built (a cell opening widget comms can leave papermill waiting forever);
    live, it is built with the arguments given and shown with the note as its plain text."""
    built = []

    class Widget:
        def _repr_mimebundle_(self, **kwargs):
            return {"application/vnd.jupyter.widget-view+json": {"model_id": "m1"}}

    def build(*args, **kwargs):
        built.append((args, kwargs))
        return Widget()

    monkeypatch.setitem(page._ACTIVE, "headless", True)
    shown = page.interactive("Choosing a word", build, "maps", head=2)._repr_mimebundle_()
    assert built == [] and shown["text/html"] == ("<p><i>Choosing a word: open this notebook in JupyterLab "
                                                  "(make lab) and run it to use the controls.</i></p>")
    monkeypatch.setitem(page._ACTIVE, "headless", False)
    live = page.interactive("Choosing a word", build, "maps", head=2)._repr_mimebundle_()
    assert built == [(("maps",), {"head": 2})]
    assert live["application/vnd.jupyter.widget-view+json"] == {"model_id": "m1"}
    assert live["text/plain"].startswith("Choosing a word: open this notebook in JupyterLab")
