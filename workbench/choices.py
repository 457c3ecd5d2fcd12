"""Named choice types for notebook parameters, e.g. `quantizations: list[Quantization] = ["none"]`.

papermill's parameter parser only reads annotations made of plain names and brackets, so a notebook
spells `Literal[...]` through these aliases; workbench.params resolves them to check values before
any kernel starts.
"""

from __future__ import annotations

from typing import Literal

from workbench.settings import Attention, Device, Dtype, Quantization

SampleMode = Literal["uniform", "fps", "windows"]
TimelineMode = Literal["windows", "whole_clip"]  # workbench.quality.timeline
CaptureHeads = Literal["mean", "all"]  # workbench.attention.capture
CaptureMode = Literal["recompute", "eager"]  # workbench.attention.capture
ExploreAction = Literal["load", "predict", "probe", "caption", "attention"]  # workbench.explore
TransformersEra = Literal["5.x", "4.5x", "4.4x"]  # workbench.memory.predictor.ERA_BEHAVIOURS
MaskedSdpa = Literal["efficient", "math"]  # the CUDA kernel sdpa takes with a dense mask (predictor)

__all__ = ["Attention", "CaptureHeads", "CaptureMode", "Device", "Dtype", "ExploreAction", "MaskedSdpa",
           "Quantization", "SampleMode", "TimelineMode", "TransformersEra"]
