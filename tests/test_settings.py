"""Load settings declared once (workbench.settings): the configurations that load a model contain them, the
notebooks spell them with the same names, and the module stays light."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from workbench import paths
from workbench.explore.selection import Selection
from workbench.memory.grid import Grid
from workbench.params import notebook_parameters
from workbench.settings import (
    LIST_PARAMETERS,
    LOAD_FIELDS,
    NOTEBOOK_LOAD_PARAMETERS,
    LoadSettings,
    ProbeConfig,
)


def test_from_params_takes_the_notebook_spelling():
    params = {"source": "random", "dtype": "float16", "max_pixels": 0, "model_options": {"token_kept_ratio": 0.4},
              "frames": 8, "run_dir": ""}
    settings = LoadSettings.from_params(params, quantization="8bit")
    assert (settings.source, settings.dtype, settings.quantization, settings.max_pixels) == \
        ("random", "float16", "8bit", None)
    assert settings.model_options == {"token_kept_ratio": 0.4}
    assert LoadSettings.from_params(settings.to_params()) == settings
    assert LoadSettings.from_params({"max_pixels": 602112}).max_pixels == 602112
    with pytest.raises(ValueError, match="not one of"):
        LoadSettings.from_params({"quantization": "3bit"})
    with pytest.raises(TypeError, match="model_options must be a dict"):
        LoadSettings.from_params({"model_options": "token_kept_ratio=0.4"})
    hash(settings)  # model_options is left out of the hash: settings stay usable as keys


@pytest.mark.parametrize("cls", [ProbeConfig, Selection, Grid])
def test_configurations_contain_load_settings_instead_of_repeating_them(cls):
    own = {f.name for f in dataclasses.fields(cls)}
    assert "load" in own
    repeated = own & set(LOAD_FIELDS)
    # Grid's axes named like a load field are tuples of values compared, not the base settings
    assert repeated == ({"max_pixels", "quantize_vision"} if cls is Grid else set()), repeated


def test_flat_load_fields_build_and_read_the_contained_settings():
    config = ProbeConfig(model="qwen2-vl-7b", source="random", quantization="8bit", max_pixels=602112,
                         model_options={"token_kept_ratio": 0.4})
    assert config.load == LoadSettings(source="random", quantization="8bit", max_pixels=602112,
                                       model_options={"token_kept_ratio": 0.4})
    assert config.quantization == "8bit" and config.max_pixels == 602112
    changed = config.replace(quantization="none", frames=4)
    assert (changed.quantization, changed.frames, changed.source) == ("none", 4, "random")
    assert ProbeConfig.from_dict(config.as_dict()) == config
    assert ProbeConfig(model="m", load=config.load, dtype="float16").load.source == "random"
    with pytest.raises(ValueError, match="unknown ProbeConfig fields"):
        ProbeConfig.from_dict({"model": "m", "framez": 3})
    with pytest.raises(AttributeError):
        config.no_such_field  # noqa: B018

    grid = Grid(model="qwen2-vl-7b", dtype="float16", max_pixels=(0, 602112), quantizations=("none", "8bit"))
    assert grid.load.source == "random" and grid.load.dtype == "float16"  # the grid's default source is random
    configs = grid.configurations()
    assert {(c.quantization, c.max_pixels, c.dtype) for c in configs} == {
        ("none", None, "float16"), ("none", 602112, "float16"), ("8bit", None, "float16"),
        ("8bit", 602112, "float16")}

    selection = Selection(quantization="8bit", max_pixels=0, device="cpu")
    assert selection.load.max_pixels is None and selection.max_pixels == 0  # the notebook's spelling
    assert selection.to_parameters()["quantization"] == "8bit"
    assert Selection.from_namespace(selection.to_parameters()) == selection


def test_settings_module_imports_nothing_heavy():
    code = ("import sys, workbench.settings, workbench.choices; "
            "heavy = sorted(m for m in ('torch', 'transformers', 'numpy', 'pandas') if m in sys.modules); "
            "print(heavy); assert not heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=paths.REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def _loading_notebooks() -> dict[str, dict]:
    found = {}
    for notebook in sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb")):
        params = notebook_parameters(notebook)
        if "model" in params or "models" in params:
            found[notebook.stem] = params
    return found


def test_every_notebook_that_loads_a_model_takes_the_same_load_parameters():
    """Each load setting, by the same name and type everywhere: the scalar, or its list where the notebook
    compares several values (02's quantizations)."""
    notebooks = _loading_notebooks()
    assert {"00_explore", "01_load_models", "02_memory_probe", "03_attention", "04_caption_quality"} <= set(notebooks)
    reference = notebooks["00_explore"]
    for stem, params in notebooks.items():
        for name in NOTEBOOK_LOAD_PARAMETERS:
            plural = LIST_PARAMETERS.get(name)
            assert name in params or plural in params, f"{stem} lacks the load parameter {name!r}"
            if name in params:
                assert params[name].annotation == reference[name].annotation, (stem, name)
            else:
                assert params[plural].annotation == f"list[{reference[name].annotation}]", (stem, plural)


def test_models_load_sets_the_model_options():
    """`workbench.models.load` sets LoadSettings.model_options on the model: an option the family does not
    take fails with its list (so the options are not silently dropped)."""
    from workbench.models import load
    from workbench.models.base import WorkbenchModelError

    with pytest.raises(WorkbenchModelError, match="has no option 'token_kept_ratio'"):
        load("smolvlm2-256m", LoadSettings(source="tiny", dtype="float32", device="cpu",
                                           model_options={"token_kept_ratio": 0.4}))
