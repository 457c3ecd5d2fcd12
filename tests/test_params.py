"""Parameters cells: parsing, type checks, and validation of every params/*.yaml file."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench import paths
from workbench.params import ParameterError, notebook_parameters, parse_parameters, validate
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
