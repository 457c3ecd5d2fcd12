"""The trained per-frame twin of the BLIP-2 family: Blip2Adapter (frames captioned one by one as images,
joined with timestamps) with the twin's committed weights (112 px images, 16 query tokens, OPT decoder)."""

from __future__ import annotations

from typing import ClassVar

from workbench.models.base import LoadedModel, LoadSettings, ModelSpec
from workbench.models.blip2 import Blip2Adapter
from workbench.twins import adapters

NAMES = ("twin-blip2-frame",)


class Blip2TwinAdapter(Blip2Adapter):
    specs: ClassVar[dict[str, ModelSpec]] = {name: adapters.twin_spec(name, "images") for name in NAMES}
    tiny_spec_id: ClassVar[str] = NAMES[0]
    trained_twin: ClassVar[bool] = True

    def load(self, spec: ModelSpec, settings: LoadSettings) -> LoadedModel:
        return adapters.load_twin(super().load, spec, settings)


ADAPTER = Blip2TwinAdapter()
