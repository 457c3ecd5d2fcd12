"""The run folder's life in one owner (workbench/run_folder.py): create, record inputs, save, finish, fail,
killed; and the writers of run folders (runner, notebook context, explorer, sweep) going through it."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from workbench import context, paths
from workbench.run_folder import RunFolder, mark_dead_runs

SECRET = "hf_RUNFOLDERsecret1234567890"
TRIVIAL = Path(__file__).parent / "data" / "trivial.ipynb"


@pytest.fixture
def outputs(tmp_path, monkeypatch) -> Path:
    out = tmp_path / "outputs"
    monkeypatch.setenv("WORKBENCH_OUTPUTS", str(out))
    return out


def test_create_records_every_parameter_and_a_running_process(outputs):
    folder = RunFolder.create(TRIVIAL, {"action": "hello"}, runner="test", suffix="t", overrides={"action": "hello"})
    assert folder.dir.parent == outputs / "trivial" and folder.dir.name.endswith("-t")
    record = json.loads(folder.manifest_path.read_text())
    assert record["status"] == "running" and record["runner"] == "test" and record["pid"] == os.getpid()
    assert record["parameters"]["action"] == "hello" and "seed" in record["parameters"]  # defaults too
    assert record["overrides"] == {"action": "hello"}
    again = RunFolder.create(TRIVIAL, {"action": "hello"}, runner="test", suffix="t")
    assert again.dir != folder.dir  # same second, same parameters: still a folder of its own


def test_finish_seals_inputs_outputs_and_scrubs_secrets(outputs, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    folder = RunFolder.create(TRIVIAL, {}, runner="test")
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not really a video")
    folder.record_input(video, "video")
    folder.save_table(pd.DataFrame({"said": [f"the token is {SECRET}"]}), "said")
    folder.record_frames([{"index": 3, "timestamp_s": 0.3}], "clip")
    folder.finish("ok", None, 1.25)
    record = json.loads(folder.manifest_path.read_text())
    assert record["status"] == "ok" and record["duration_s"] == 1.25 and record["ended_at"]
    assert [i["role"] for i in record["inputs"]] == ["video"] and len(record["inputs"][0]["sha256"]) == 64
    assert [o["path"] for o in record["outputs"]] == ["results/said.csv"]
    assert record["frames"][0] == {"source": "clip", "frames": [{"index": 3, "timestamp_s": 0.3}]}
    assert SECRET not in (folder.results_dir / "said.csv").read_text()


def test_fail_classifies_the_exception(outputs):
    folder = RunFolder.create(TRIVIAL, {}, runner="test")
    status, error = folder.fail(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), 3.0)
    assert status == "oom" and "out of memory" in error
    assert json.loads(folder.manifest_path.read_text())["status"] == "oom"


def test_a_dead_running_folder_is_marked_killed_and_a_live_one_kept(outputs):
    live = RunFolder.create(TRIVIAL, {}, runner="test")
    dead = RunFolder.create(TRIVIAL, {"action": "x"}, runner="test")
    dead.update(pid=2**22 + 12345, pid_started=1.0)  # no such process
    assert mark_dead_runs(outputs / "trivial", marked_by="the test") == [dead.dir]
    record = RunFolder.open(dead.dir).record
    assert record["status"] == "killed" and record["marked_killed_by"] == "the test"
    assert RunFolder.open(live.dir).status == "running"


def test_standalone_notebook_run_is_created_and_sealed_by_the_run_folder(outputs):
    run = context.open_run("", str(TRIVIAL), {"action": "hi", "seed": 0})
    assert isinstance(run, RunFolder) and run.standalone and run.dir.name.endswith("-interactive")
    assert RunFolder.open(run.dir).record["runner"] == "notebook"
    run.save_json({"a": 1}, "a")
    run.finish()
    record = RunFolder.open(run.dir).record
    assert record["status"] == "ok" and [o["path"] for o in record["outputs"]] == ["results/a.json"]


# ---- one owner: nothing else writes a manifest's life ----------------------------------------------------

def _calls(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names


def test_only_the_run_folder_starts_or_seals_a_run():
    """start_manifest (creating a run's record) and the seal live in run_folder.py; the runner, the notebook's
    context, the explorer's save-as-run and the sweep call RunFolder instead of repeating them."""
    package = paths.REPO_ROOT / "workbench"
    for path in sorted(package.rglob("*.py")):
        if path.name in ("run_folder.py", "manifest.py"):
            continue
        calls = _calls(path)
        assert "start_manifest" not in calls, f"{path.relative_to(package)} starts a run record itself"
        assert "finish_run" not in calls, f"{path.relative_to(package)} seals a run outside RunFolder"
    users = {"runner.py": "RunFolder", "context.py": "RunFolder", "explore/runs.py": "RunFolder",
             "sweep.py": "RunFolder"}
    for name, used in users.items():
        assert used in (package / name).read_text(), name


def _module_imports(path: Path) -> set[str]:
    """Modules imported at module level (TYPE_CHECKING blocks aside)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_explorer_runs_does_not_import_the_controller():
    """controller.py imports runs.py (to save); runs.py takes results as plain objects: no cycle."""
    runs = paths.REPO_ROOT / "workbench" / "explore" / "runs.py"
    assert "workbench.explore.controller" not in _module_imports(runs)
    source = runs.read_text()
    assert "from workbench.explore.controller import" not in source.split("if TYPE_CHECKING:")[0]
    # and nothing inside its functions imports it either
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef):
            inner = {n.module for n in ast.walk(node) if isinstance(n, ast.ImportFrom)}
            assert "workbench.explore.controller" not in inner, node.name
