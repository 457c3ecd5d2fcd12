"""Files a run writes are strict and readable, and bad parameter files and values say what is wrong:
strict JSON (NaN as null with the reason), CSVs with a header even when empty, YAML syntax errors naming the
file and line, empty parameter files, and `-r NAME VALUE` raw strings with a hint from `-p`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from workbench import atomic, context
from workbench.__main__ import main
from workbench.params import ParameterError, load_yaml

TRIVIAL = Path(__file__).parent / "data" / "trivial.ipynb"


def _strict(text: str):
    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def test_json_is_strict_with_null_reasons(tmp_path):
    path = atomic.write_json(tmp_path / "summary.json", {
        "hallucination_rate": float("nan"), "cider": 0.5, "peaks": [1.0, float("inf"), -math.inf],
        "nested": {"x": float("nan")}, "null_reasons": {"hallucination_rate": "no colour named"}})
    data = _strict(path.read_text())  # a strict parser accepts it
    assert data["hallucination_rate"] is None and data["cider"] == 0.5 and data["peaks"] == [1.0, None, None]
    assert data["nested"]["x"] is None
    assert data["null_reasons"] == {"hallucination_rate": "no colour named", "peaks[1]": "inf: infinite",
                                    "peaks[2]": "-inf: infinite", "nested.x": "NaN: not computable"}


def test_caption_summary_nulls_carry_their_reason_and_05_reads_them_back_as_nan(tmp_path):
    from workbench.quality import compare, report

    record = {"fact_recall": float("nan"), "hallucination_rate": float("nan"), "success_rate": 1.0}
    reasons = {k: report._null_reason(k, record) for k in record if report._not_finite(record[k])}
    assert "no ground truth" in reasons["hallucination_rate"]
    run = tmp_path / "run1"
    (run / "results").mkdir(parents=True)
    atomic.write_json(run / "manifest.json", {"status": "ok", "started_at": "t"})
    atomic.write_json(run / "results" / "summary.json",
                      {"model_id": "m", "quantization": "none", "attn_implementation": "sdpa", "video": "v",
                       "hallucination_rate": float("nan"), "cider": 0.25, "null_reasons": reasons})
    _strict((run / "results" / "summary.json").read_text())
    runs, _ = compare.collect_runs(root=tmp_path)
    assert "null_reasons" not in runs.columns
    assert math.isnan(runs["hallucination_rate"][0]) and runs["cider"][0] == 0.25


def test_empty_tables_keep_a_header(tmp_path):
    run = context.Run(tmp_path, "nb", {}, standalone=False)
    no_columns = run.save_table(pd.DataFrame(), "nothing")
    named = run.save_table(pd.DataFrame(), "objects", columns=["t_s", "name"])
    no_rows = run.save_table(pd.DataFrame(columns=["a", "b"]), "no_rows")
    assert no_columns.read_text() == "no_data\n" and pd.read_csv(no_columns).empty
    assert list(pd.read_csv(named).columns) == ["t_s", "name"] and pd.read_csv(named).empty
    assert no_rows.read_text() == "a,b\n"


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("value: 3\naction: [ok, fail\nseed: 1\n")
    with pytest.raises(ParameterError, match=r"broken\.yaml: line 3, column 5: YAML syntax error"):
        load_yaml(path)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_empty_parameter_file_is_an_error(tmp_path, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(ParameterError, match="empty.yaml: the file is empty"):
        load_yaml(path)


def test_cli_errors_name_the_file_and_leave_no_run_folder(tmp_path, capsys, monkeypatch):
    outputs = tmp_path / "outputs"
    monkeypatch.setenv("WORKBENCH_OUTPUTS", str(outputs))
    broken = tmp_path / "broken.yaml"
    broken.write_text("value: [1\n")
    assert main(["run", str(TRIVIAL), "-f", str(broken)]) == 2
    assert f"{broken}: line 2" in capsys.readouterr().err
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert main(["run", str(TRIVIAL), "-f", str(empty)]) == 2
    assert "the file is empty" in capsys.readouterr().err
    assert not outputs.exists() or not any(outputs.rglob("manifest.json"))


@pytest.mark.parametrize("value, read_as", [("no", "bool False"), ("Describe: what happens", "dict"),
                                            ("8", "int 8"), ("[1, 2", None)])
def test_p_values_that_yaml_changes_hint_at_r(tmp_path, capsys, monkeypatch, value, read_as):
    monkeypatch.setenv("WORKBENCH_OUTPUTS", str(tmp_path / "outputs"))
    code = main(["run", str(TRIVIAL), "-p", "action", value])
    err = capsys.readouterr().err
    assert code == 2 and "use -r action VALUE" in err, err
    if read_as:
        assert f"was read as YAML ({read_as}" in err


def test_r_passes_a_raw_string(tmp_path, capsys, monkeypatch):
    """-r gives the text as typed; the notebook fails on the unknown action text, proving it arrived as text."""
    outputs = tmp_path / "outputs"
    monkeypatch.setenv("WORKBENCH_OUTPUTS", str(outputs))
    code = main(["run", str(TRIVIAL), "-r", "action", "no", "-p", "value", "3"])
    out = capsys.readouterr().out
    assert code == 0, out
    (manifest,) = outputs.rglob("manifest.json")
    record = json.loads(manifest.read_text())
    assert record["parameters"]["action"] == "no" and record["parameters"]["value"] == 3
    assert record["overrides"] == {"action": "no", "value": 3}
