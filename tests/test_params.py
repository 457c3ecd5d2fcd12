"""Parameters cells: parsing, type checks, and validation of every params/*.yaml file."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench import paths
from workbench.params import RENAMED, ParameterError, notebook_parameters, parse_parameters, validate
from workbench.runner import resolve_parameters

CELL = '''
run_dir: str = ""  # run folder
frames: list[int] = [4, 8, 16]  # frame counts to probe
mode: Literal["uniform", "fps"] = "uniform"  # sampling mode
budget_gib: float = 44.5  # GPU memory budget
label: str | None = None  # optional label
verbose: bool = False  # print more
'''


def test_parse_reads_types_defaults_and_help():
    params = parse_parameters(CELL)
    assert list(params) == ["run_dir", "frames", "mode", "budget_gib", "label", "verbose"]
    assert params["frames"].default == [4, 8, 16]
    assert params["frames"].help == "frame counts to probe"
    assert params["mode"].annotation == "Literal['uniform', 'fps']"


@pytest.mark.parametrize("values", [
    {"frames": [1, 2]}, {"mode": "fps"}, {"budget_gib": 24}, {"label": "x"}, {"label": None}, {"verbose": True},
])
def test_validate_accepts_right_types(values):
    validate(parse_parameters(CELL), values)


@pytest.mark.parametrize("values, fragment", [
    ({"frames": 8}, "must be a list"),
    ({"frames": [4, "8"]}, "item '8' must be int"),
    ({"frames": [True]}, "must be int, got bool"),
    ({"mode": "windows"}, "must be one of ['uniform', 'fps']"),
    ({"budget_gib": "44"}, "must be float"),
    ({"verbose": 1}, "must be bool"),
    ({"framez": [4]}, "unknown parameter 'framez'"),
])
def test_validate_rejects_with_list_of_valid_parameters(values, fragment):
    with pytest.raises(ParameterError) as info:
        validate(parse_parameters(CELL), values, "nb")
    message = str(info.value)
    assert fragment in message
    assert "valid parameters:" in message and "frames      list[int] = [4, 8, 16]  # frame counts to probe" in message


def test_cell_with_derived_value_is_rejected():
    with pytest.raises(ParameterError, match="literal"):
        parse_parameters("x: int = 2\ny: int = x * 2\n")
    with pytest.raises(ParameterError, match="only `name: type = literal`"):
        parse_parameters("import os\n")


def test_default_must_fit_its_annotation():
    with pytest.raises(ParameterError, match="default of 'n'"):
        parse_parameters('n: int = "three"\n')


def _notebook_param_files() -> list[Path]:
    """params/<notebook>.<variant>.yaml files: the part before the first dot names the notebook."""
    return sorted(p for p in paths.PARAMS_DIR.glob("*.yaml") if p.name.count(".") >= 2)


def test_every_notebook_has_a_valid_parameters_cell():
    notebooks = sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb"))
    assert notebooks, "no notebooks found"
    for notebook in notebooks:
        params = notebook_parameters(notebook)
        assert "run_dir" in params, f"{notebook.name} lacks the run_dir parameter"
        assert "seed" in params, f"{notebook.name} lacks the seed parameter"


@pytest.mark.parametrize("params_file", _notebook_param_files(), ids=lambda p: p.name)
def test_params_file_validates_against_its_notebook(params_file):
    notebook = params_file.name.split(".")[0]
    _, values = resolve_parameters(notebook, str(params_file))
    assert values, f"{params_file.name} sets no parameters"


def test_demo_file_names_existing_notebooks_and_valid_params():
    from workbench.demo import demo_runs

    from workbench.sweep import load_sweep

    for run in demo_runs():
        if "sweep" in run:
            load_sweep(run["sweep"])
        else:
            resolve_parameters(run["notebook"], run.get("params"))


def test_params_files_are_all_accounted_for():
    """Every YAML under params/ is a notebook params file, the demo list, or a sweep (validated elsewhere)."""
    for path in paths.PARAMS_DIR.rglob("*.yaml"):
        assert path.name == "demo.yaml" or path.name.count(".") >= 2 or path.parent.name == "sweeps", path


def test_plain_papermill_infers_every_parameter_of_every_notebook():
    """papermill's own parser must read each parameters cell too (it chokes on '=' inside help text)."""
    import papermill

    for notebook in sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb")):
        inferred = papermill.inspect_notebook(str(notebook))
        assert set(inferred) == set(notebook_parameters(notebook)), notebook.name
        for name, info in inferred.items():
            assert info["inferred_type_name"] != "None", f"{notebook.name}: {name} has no type for papermill"


def test_named_choice_types_are_checked():
    params = parse_parameters('quantizations: list[Quantization] = ["none"]  # settings\nmode: SampleMode = "fps"\n')
    validate(params, {"quantizations": ["8bit", "4bit-nf4"], "mode": "windows"})
    with pytest.raises(ParameterError, match=r"item '3bit' must be one of \['none', '8bit'"):
        validate(params, {"quantizations": ["3bit"]})
    with pytest.raises(ParameterError, match="unsupported type annotation 'Whatever'"):
        parse_parameters('x: Whatever = 1\n')


# ---- one vocabulary: a name means one thing (docs/parameters.md) ------------------------------------------

def _all_parameters() -> dict[str, dict[str, str]]:
    """name -> {notebook stem: annotation}, over every notebook."""
    found: dict[str, dict[str, str]] = {}
    for notebook in sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb")):
        for name, param in notebook_parameters(notebook).items():
            found.setdefault(name, {})[notebook.stem] = param.annotation
    return found


def _docs_table() -> dict[str, tuple[str, str]]:
    """name -> (type, notebooks) from the tables of docs/parameters.md (renamed-parameter table aside)."""
    import re

    text = (paths.REPO_ROOT / "docs" / "parameters.md").read_text()
    text = text.split("## Renamed parameters")[0]
    return {m.group(1): (m.group(2).strip(), m.group(3).strip())
            for m in re.finditer(r"^\| `(\w+)` \| ([^|]+) \| [^|]+ \| ([^|]+) \|$", text, re.MULTILINE)}


def test_one_parameter_name_has_one_type_in_every_notebook():
    for name, annotations in _all_parameters().items():
        assert len(set(annotations.values())) == 1, f"{name!r} has several types: {annotations}"


def test_docs_table_names_every_parameter_with_its_type_and_notebooks():
    table = _docs_table()
    parameters = _all_parameters()
    missing, extra = sorted(set(parameters) - set(table)), sorted(set(table) - set(parameters))
    assert not missing and not extra, (f"parameters missing from docs/parameters.md (add a row): {missing}; "
                                       f"documented but in no notebook: {extra}")
    for name, annotations in parameters.items():
        documented_type, documented_notebooks = table[name]
        assert documented_type == next(iter(annotations.values())), name
        if documented_notebooks != "all":
            # notebooks are named by their number ("02") or in full ("00_explore")
            listed = {n.strip() for n in documented_notebooks.split(",")}
            named = {stem if stem.startswith("00") else stem[:2] for stem in annotations}
            assert listed == named, (name, listed, named)


@pytest.mark.parametrize("notebook, old, new", [
    (notebook, old, new) for notebook, renames in sorted(RENAMED.items()) for old, new in sorted(renames.items())])
def test_an_old_parameter_name_fails_naming_the_new_one(notebook, old, new):
    declared = notebook_parameters(paths.notebook_path(notebook))
    assert new in declared and old not in declared and RENAMED[notebook][old] == new
    with pytest.raises(ParameterError, match=f"parameter '{old}' was renamed to '{new}'"):
        validate(declared, {old: declared[new].default}, notebook)
    with pytest.raises(ParameterError, match=f"renamed to '{new}'"):  # the runner's path: files and -p overrides
        resolve_parameters(notebook, None, {old: declared[new].default})


def test_a_sweep_with_an_old_name_fails_naming_the_new_one(tmp_path):
    from workbench.sweep import SweepError, load_sweep

    path = tmp_path / "old.yaml"
    path.write_text("notebook: 04_caption_quality\nbase: {model: qwen2-vl-2b, source: tiny}\n"
                    "grid:\n  video_name: [probe:static, probe:events]\n")
    with pytest.raises((SweepError, ParameterError), match="'video_name' was renamed to 'video'"):
        load_sweep(path)


def test_every_sweep_file_validates():
    from workbench.sweep import load_sweep

    sweeps = sorted((paths.PARAMS_DIR / "sweeps").glob("*.yaml"))
    assert sweeps
    for path in sweeps:
        assert load_sweep(path).runs, path.name
