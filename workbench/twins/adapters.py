"""What the trained twins' family adapters share: specs read from the committed weights, and loading them.

A trained twin loads through its family's own `FamilyAdapter.load` (transformers `from_pretrained` on a
folder of safetensors + processor + tokenizer), exactly as a hub checkpoint saved to disk would; the source
`trained` names the committed folder (workbench/twins/weights/<name>/), and a folder written by
`python -m workbench train-twin NAME --out DIR` can be given as the source instead.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from workbench.models.base import LoadedModel, LoadSettings, ModelSpec, WeightsUnavailableError, WorkbenchModelError
from workbench.twins.cast import CAST

TRAINED = "trained"  # the weights source that names a twin's committed folder


def weights_dir(name: str) -> Path:
    return Path(__file__).resolve().parent / "weights" / name


def _card(name: str) -> dict[str, Any]:
    path = weights_dir(name) / "card.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def twin_spec(name: str, frame_mode: str) -> ModelSpec:
    """The spec of a twin: its config and parameter count from its committed folder (empty if not trained)."""
    recipe = CAST[name]
    folder = weights_dir(name)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    card = _card(name)
    return ModelSpec(
        model_id=name, hub_id=f"workbench/twins/weights/{name}", family=recipe.family, config=config,
        published_params=float(card.get("n_params", 0)), frame_mode=frame_mode,  # type: ignore[arg-type]
        default_frames=recipe.frames_per_window, prompt=recipe.prompt,
        notes=f"trained twin ({recipe.role}); trained on CPU on probe scenes, see docs/twins.md",
    )


def twin_folder(spec: ModelSpec, settings: LoadSettings) -> Path:
    """The folder a twin loads from: its committed weights for `trained`, else a folder given as source."""
    if settings.source == TRAINED:
        folder = weights_dir(spec.model_id)
    elif settings.source in ("tiny", "random"):
        raise WorkbenchModelError(
            f"{spec.model_id} is a trained twin: load it with source='trained' (its committed weights); "
            f"source={settings.source!r} applies to the published models, e.g. the family's "
            f"{'qwen2-vl-2b' if spec.family == 'qwen2_vl' else 'blip2-opt-2.7b'}")
    else:
        folder = Path(settings.source)
    if not (folder / "model.safetensors").is_file():
        raise WeightsUnavailableError(
            f"no trained weights for {spec.model_id} in {folder}: train them with "
            f"`python -m workbench train-twin {spec.model_id}` (a fresh clone has them committed)")
    return folder


def load_twin(parent_load: Any, spec: ModelSpec, settings: LoadSettings) -> LoadedModel:
    """Load through the family's own load() from the twin's folder; the report keeps the source asked for."""
    folder = twin_folder(spec, settings)
    loaded = parent_load(spec, dataclasses.replace(settings, source=str(folder)))
    loaded.settings = settings
    loaded.report.source = settings.source
    return loaded
