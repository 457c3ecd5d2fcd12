"""Headless runs: run folders, manifests, failures, secrets, parameter checks before the kernel."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from workbench.params import ParameterError
from workbench.runner import run_notebook

SECRET = "hf_TESTSECRETvalue1234567890"


def _make_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(
        'run_dir: str = ""  # run folder\n'
        "seed: int = 0  # seed\n"
        "x: int = 1  # a number to save\n"
        "fail: bool = False  # raise in the second cell\n"
        'show_env: str = ""  # name of an environment variable to print\n'
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_code_cell("import os\nimport pandas as pd\nfrom workbench import context"),
        params,
        nbformat.v4.new_code_cell(f"run = context.open_run(run_dir, {str(path)!r}, globals())"),
        nbformat.v4.new_code_cell(
            "run.save_table(pd.DataFrame({'x': [x], 'twice': [2 * x]}), 'values')\n"
            "if show_env:\n    print('value:', os.environ[show_env])\n"
            "if fail:\n    raise RuntimeError('failing on purpose')"
        ),
        nbformat.v4.new_code_cell("run.finish()\nprint('finished')"),
    ]
    nbformat.write(nb, path)
    return path


@pytest.fixture
def outputs(tmp_path, monkeypatch) -> Path:
    out = tmp_path / "outputs"
    monkeypatch.setenv("WORKBENCH_OUTPUTS", str(out))
    return out


@pytest.fixture(scope="module")
def test_notebook(tmp_path_factory) -> Path:
    return _make_notebook(tmp_path_factory.mktemp("nb") / "tiny_check.ipynb")


def test_ok_run_leaves_complete_run_folder(outputs, test_notebook, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    result = run_notebook(str(test_notebook), overrides={"x": 21, "show_env": "HF_TOKEN"})
    assert result.status == "ok", result.error
    assert result.dir.parent == outputs / "tiny_check"
    names = sorted(p.name for p in result.dir.iterdir())
    assert names == ["figures", "inputs.json", "manifest.json", "notebook.html", "notebook.ipynb", "results"] \
        or names == ["manifest.json", "notebook.html", "notebook.ipynb", "results"]
    assert (result.dir / "results" / "values.csv").read_text().splitlines() == ["x,twice", "21,42"]

    manifest = json.loads((result.dir / "manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["error"] is None
    assert manifest["parameters"] == {"seed": 0, "x": 21, "fail": False, "show_env": "HF_TOKEN"}
    assert manifest["overrides"] == {"x": 21, "show_env": "HF_TOKEN"} and manifest["seed"] == 0
    assert manifest["notebook"] == "tiny_check"
    assert len(manifest["git"]["commit"] or "") in (0, 40) and "dirty" in manifest["git"]
    for package in ("python", "torch", "transformers", "bitsandbytes", "decord2"):
        assert manifest["versions"][package], package
    assert manifest["hardware"]["cpu_count"] >= 1 and manifest["hardware"]["ram_bytes"] > 0
    assert "gpus" in manifest["hardware"]
    assert manifest["started_at"] <= manifest["ended_at"] and manifest["duration_s"] > 0
    assert manifest["outputs"][0]["path"] == "results/values.csv"
    assert len(manifest["outputs"][0]["sha256"]) == 64

    # The notebook printed the token: it must not survive anywhere in the run folder.
    for path in result.dir.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
    assert "value: [redacted]" in (result.dir / "notebook.ipynb").read_text()


def test_failing_notebook_keeps_partial_notebook_and_failed_manifest(outputs, test_notebook):
    result = run_notebook(str(test_notebook), overrides={"fail": True})
    assert result.status == "failed"
    assert "failing on purpose" in result.error
    manifest = json.loads((result.dir / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "RuntimeError" in manifest["error"]
    executed = nbformat.read(result.dir / "notebook.ipynb", as_version=4)
    outputs_text = json.dumps([c.get("outputs", []) for c in executed.cells])
    assert "failing on purpose" in outputs_text and "finished" not in outputs_text
    assert (result.dir / "results" / "values.csv").exists()  # what was written before the error stays
    assert (result.dir / "notebook.html").exists()


@pytest.mark.parametrize("overrides, fragment", [
    ({"x": "three"}, "parameter 'x'='three' must be int"),
    ({"y": 1}, "unknown parameter 'y'"),
])
def test_bad_parameters_fail_before_any_run_folder(outputs, test_notebook, overrides, fragment):
    with pytest.raises(ParameterError) as info:
        run_notebook(str(test_notebook), overrides=overrides)
    assert fragment in str(info.value) and "valid parameters:" in str(info.value)
    assert not outputs.exists() or not any(outputs.rglob("manifest.json"))


def test_secret_value_as_parameter_is_refused(outputs, test_notebook, monkeypatch):
    monkeypatch.setenv("MY_API_KEY", "sk-verysecretvalue")
    with pytest.raises(ParameterError, match="secret"):
        run_notebook(str(test_notebook), overrides={"show_env": "sk-verysecretvalue"})


def test_cli_reports_wrong_type_with_valid_parameters(outputs, test_notebook):
    proc = subprocess.run(
        [sys.executable, "-m", "workbench", "run", str(test_notebook), "-p", "x", "[1, 2]"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "must be int, got list" in proc.stderr and "valid parameters:" in proc.stderr


def test_plain_papermill_runs_the_same_notebook(outputs, test_notebook, tmp_path):
    out = tmp_path / "executed.ipynb"
    proc = subprocess.run(
        [sys.executable, "-m", "papermill", str(test_notebook), str(out), "-p", "x", "5", "--no-progress-bar"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = (outputs / "tiny_check").iterdir()
    assert (run_dir / "results" / "values.csv").read_text().splitlines()[1] == "5,10"
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "ok"
