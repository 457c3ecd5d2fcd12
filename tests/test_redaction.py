"""Canary test: secrets from several secret-named variables (an HF token, a short one, one with characters
that JSON and HTML escape) are typed into parameters of a run and a sweep; no file either writes holds any of
them in any escaped form."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from workbench import manifest
from workbench.runner import run_notebook
from workbench.sweep import run_sweep

TRIVIAL = Path(__file__).parent / "data" / "trivial.ipynb"
CANARIES = {
    "HF_TOKEN": "hf_CANARYtoken1234567890",
    "DB_PASSWORD": "pw\"<&'x",  # escapes differently in JSON, HTML and Python literals
    "MY_API_KEY": "kq7",  # short: caught by the floor
}


def _leaks(root: Path) -> list[str]:
    forms = {form: name for name, secret in CANARIES.items() for form in manifest.escaped_forms(secret)}
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            text = frame.to_csv() + " ".join(map(str, frame.columns))
        else:
            text = path.read_bytes().decode("utf-8", errors="replace")
        found += [f"{path.relative_to(root)}: {name} as {form!r}" for form, name in forms.items() if form in text]
    return found


def test_escaped_forms_cover_json_html_and_python():
    secret = CANARIES["DB_PASSWORD"]
    forms = manifest.escaped_forms(secret)
    assert json.dumps(secret)[1:-1] in forms and "pw&quot;&lt;&amp;&#x27;x" in forms
    assert repr(secret)[1:-1] in forms
    text = json.dumps({"a": f"x {secret} y"}) + f"<p>{secret.replace('&', '&amp;').replace('<', '&lt;')}</p>"
    assert manifest.redact(text, [secret]).count("[redacted]") == 2


def test_floor_redacts_short_secrets_but_not_flags_or_settings():
    found = manifest.secret_values({"MY_API_KEY": "kq7", "GH_TOKEN": "ab", "USE_AUTH_TOKEN": "true",
                                    "TOKENIZERS_PARALLELISM": "false", "HOME": "/root"})
    assert found == ["kq7"]


def test_canaries_leave_no_trace_in_run_and_sweep_files(tmp_path, monkeypatch):
    outputs = tmp_path / "outputs"
    monkeypatch.setenv("WORKBENCH_OUTPUTS", str(outputs))
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    action = "note " + " ".join(CANARIES.values())  # an unknown action: the notebook runs to the end
    result = run_notebook(str(TRIVIAL), overrides={"action": action, "value": 3})
    assert result.status == "ok", result.error
    record = json.loads((result.dir / "manifest.json").read_text())
    assert record["parameters"]["action"] == "note [redacted] [redacted] [redacted]"
    assert record["overrides"]["action"] == record["parameters"]["action"]

    sweep_file = tmp_path / "canary.yaml"
    sweep_file.write_text(yaml.safe_dump({
        "notebook": str(TRIVIAL), "name": "canary", "workers": 1,
        "grid": {"action": [action, "fail " + CANARIES["DB_PASSWORD"]]}}))
    sweep_dir = run_sweep(sweep_file, progress=False)
    statuses = sorted(json.loads(p.read_text())["status"] for p in (sweep_dir / "records").glob("*.json"))
    assert statuses == ["ok", "ok"]
    written = {p.name for p in sweep_dir.rglob("*")}
    assert {"runs.csv", "runs.parquet", "index.html", "sweep.json", "numbers.csv", "notebook.html"} <= written
    assert "[redacted]" in (sweep_dir / "index.html").read_text()
    assert _leaks(outputs) == []


def test_cli_errors_quote_parameter_values_redacted(tmp_path, monkeypatch, capsys):
    from workbench.__main__ import main

    monkeypatch.setenv("WORKBENCH_OUTPUTS", str(tmp_path / "outputs"))
    monkeypatch.setenv("HF_TOKEN", CANARIES["HF_TOKEN"])
    assert main(["run", str(TRIVIAL), "-p", "value", f"[{CANARIES['HF_TOKEN']}]"]) == 2
    err = capsys.readouterr().err
    assert "must be int, got list" in err and CANARIES["HF_TOKEN"] not in err and "[redacted]" in err
