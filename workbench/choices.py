"""Named choice types for notebook parameters, e.g. `quantizations: list[Quantization] = ["none"]`.

papermill's parameter parser only reads annotations made of plain names and brackets, so a notebook
spells `Literal[...]` through these aliases; workbench.params resolves them to check values before
any kernel starts.
"""

from __future__ import annotations

from typing import Literal

from workbench.models.base import Attention, Device, Dtype, Quantization

SampleMode = Literal["uniform", "fps", "windows"]

__all__ = ["Attention", "Device", "Dtype", "Quantization", "SampleMode"]
