"""What the explorer is pointed at: one frozen, validated selection, spelled like 00_explore's parameters.

Every field of `Selection`, with its `load` settings spread flat, is a parameter of notebooks/00_explore.ipynb
with the same name, type and default (a test keeps them in step), so a selection written out as parameters
repeats headless.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from workbench.choices import TransformersEra
from workbench.settings import NOTEBOOK_LOAD_PARAMETERS, LoadSettings, carries_load_settings, check_literal_fields

# The fields each action's result depends on: a result whose fields differ from the current selection is
# stale (save-as-run leaves it out, because the saved parameters would not reproduce it).
LOAD_FIELDS = ("model", *NOTEBOOK_LOAD_PARAMETERS)
ACTION_FIELDS: dict[str, tuple[str, ...]] = {
    "load": LOAD_FIELDS,
    "predict": LOAD_FIELDS + ("video", "frames", "max_new_tokens", "transformers_era"),
    "probe": LOAD_FIELDS + ("video", "frames", "max_new_tokens", "budget_gib", "seed"),
    "caption": LOAD_FIELDS + ("video", "window_s", "frames_per_window", "batch_windows", "max_seconds",
                              "max_new_tokens", "seed"),
    "attention": LOAD_FIELDS + ("video", "frames", "max_new_tokens", "min_new_tokens", "seed",
                                "show_word", "show_layer", "show_head"),
}
ACTIONS: tuple[str, ...] = tuple(ACTION_FIELDS)  # canonical order


@carries_load_settings
@dataclass(frozen=True)
class Selection:
    """The video, model and settings every explorer action uses. How the model is loaded is `load` (its
    fields may be given and read flat: `Selection(quantization="8bit").quantization`)."""

    video: str = "probe:events"  # a path, or probe:<scenario> (static, moving, events)
    model: str = "qwen2-vl-2b"
    load: LoadSettings = field(default_factory=LoadSettings)  # source, dtype, quantization, ... max_pixels
    transformers_era: TransformersEra = "5.x"  # predict: whose memory behaviours to assume (5.x, 4.5x, 4.4x)
    frames: int = 8  # frames sampled uniformly (predict, probe, attention)
    max_new_tokens: int = 16
    min_new_tokens: int = 0  # attention: caption length floor (tiny twins stop early)
    window_s: float = 1.0  # caption: window length
    frames_per_window: int = 2  # caption: frames per window
    batch_windows: int = 1  # caption: windows per generate call (families that cannot batch use 1)
    max_seconds: float = 0.0  # caption: first seconds only (0: the whole video)
    budget_gib: float = 0.0  # probe: memory budget to measure under (0: none)
    probe_timeout_s: int = 0  # probe: seconds before the probe process is stopped (0: no limit)
    seed: int = 0
    show_word: int = -1  # attention figure: word (-1: the whole caption)
    show_layer: str = "mean"  # attention figure: mean or a layer number
    show_head: str = "mean"  # attention figure: mean or a head number

    def __post_init__(self) -> None:
        check_literal_fields(self)
        for name in ("frames", "max_new_tokens", "frames_per_window", "batch_windows"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("min_new_tokens", "max_seconds", "budget_gib", "probe_timeout_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if self.window_s <= 0:
            raise ValueError(f"window_s must be positive, got {self.window_s}")
        if not self.video.strip():
            raise ValueError("no video chosen: give a file path, upload a file or pick a probe video")

    @property
    def max_pixels(self) -> int:
        """As the notebook spells it: 0 for the processor's default."""
        return self.load.max_pixels or 0

    def replace(self, **changes: Any) -> "Selection":
        return dataclasses.replace(self, **changes)

    def to_parameters(self) -> dict[str, Any]:
        """The notebook parameters that reproduce this selection (00_explore's names, load settings flat)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "load"}
        return {"video": values.pop("video"), "model": values.pop("model"), **self.load.to_params(), **values}

    @classmethod
    def from_namespace(cls, namespace: dict[str, Any]) -> "Selection":
        """A selection from a notebook's namespace (or any mapping): the fields it names, defaults for the rest.

        >>> Selection.from_namespace({"frames": 4, "run_dir": ""}).frames
        4
        """
        names = {f.name for f in dataclasses.fields(cls)} - {"load"}
        return cls(**{k: v for k, v in namespace.items() if k in names}, load=LoadSettings.from_params(namespace))

    def key(self, action: str) -> tuple[Any, ...]:
        """The values `action`'s result depends on.

        >>> Selection().key("load") == Selection(frames=32).key("load")
        True
        """
        return tuple(getattr(self, name) for name in ACTION_FIELDS[action])
