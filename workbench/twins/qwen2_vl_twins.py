"""Trained twins of the Qwen2-VL family (the video, generic and hallucinating twins): Qwen2VLAdapter with
the twins' frame size (140 x 168: 5 x 6 LLM tokens per frame pair) and their committed weights."""

from __future__ import annotations

from typing import Any, ClassVar

from workbench.models.base import LoadedModel, LoadSettings, ModelSpec
from workbench.models.qwen2_vl import Qwen2VLAdapter
from workbench.twins import adapters, build

NAMES = ("twin-qwen2-vl-video", "twin-qwen2-vl-generic", "twin-qwen2-vl-hallucinating")


class Qwen2VLTwinAdapter(Qwen2VLAdapter):
    processing: ClassVar[dict[str, Any]] = build.qwen_processing()
    specs: ClassVar[dict[str, ModelSpec]] = {name: adapters.twin_spec(name, "video") for name in NAMES}
    trained_twin: ClassVar[bool] = True

    def load(self, spec: ModelSpec, settings: LoadSettings) -> LoadedModel:
        return adapters.load_twin(super().load, spec, settings)


ADAPTER = Qwen2VLTwinAdapter()
