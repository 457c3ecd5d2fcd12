"""The model zoo: one file per family, one registry table, one adapter interface."""

from workbench.models.base import (
    CaptionRecord,
    GenerationSettings,
    LoadedModel,
    LoadReport,
    LoadSettings,
    ModelSpec,
)
from workbench.models.registry import get, model_ids, resolve


def load(model: str, settings: LoadSettings | None = None, **kwargs) -> LoadedModel:
    """Load a model by id, alias or hub id, and set `settings.model_options` on it (unknown options fail
    with the family's list, and the model is dropped). kwargs build LoadSettings when `settings` is not given."""
    adapter, spec = get(model)
    settings = settings or LoadSettings(**kwargs)
    loaded = adapter.load(spec, settings)
    if settings.model_options:
        try:
            loaded.configure(settings.model_options)
        except Exception:
            loaded.unload()
            raise
    return loaded


__all__ = [
    "CaptionRecord", "GenerationSettings", "LoadReport", "LoadSettings", "LoadedModel", "ModelSpec",
    "get", "load", "model_ids", "resolve",
]
