"""Settings declared once: how a model is loaded (`LoadSettings`) and what one memory probe measures
(`ProbeConfig`). Pure dataclasses: this module imports nothing heavy (no torch, no transformers), so the
explorer, the sweep validator and the CLI read them without loading a model library.

Every configuration that loads a model contains one `LoadSettings` (composition) instead of repeating its
fields: `ProbeConfig`, the explorer's `Selection`, the memory `Grid`. Those classes still take and show the
load fields flat (`ProbeConfig(model=..., quantization="8bit").quantization`), through
`carries_load_settings`, so their callers read like before while the fields are declared only here.

Notebooks spell the load settings as the parameters in `NOTEBOOK_LOAD_PARAMETERS`, with the same names
everywhere (docs/parameters.md); `LoadSettings.from_params(globals())` builds the settings from them.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, TypeVar

Dtype = Literal["bfloat16", "float16", "float32"]
Quantization = Literal["none", "8bit", "4bit-nf4", "4bit-fp4"]
Attention = Literal["eager", "sdpa", "flash_attention_2"]
Device = Literal["auto", "cpu", "cuda"]
FramePolicy = Literal["resample", "refuse"]

# The load settings a notebook takes as parameters (same name, type and meaning in every notebook that loads a
# model; `model` names what is loaded). A notebook that compares several values of one takes the list parameter
# named in LIST_PARAMETERS instead. The other LoadSettings fields (double_quant, trust_remote_code,
# frame_policy, min_pixels) are Python-only.
NOTEBOOK_LOAD_PARAMETERS = ("source", "dtype", "quantization", "quantize_vision", "attn_implementation", "device",
                            "max_pixels", "allow_pickle", "model_options")
LIST_PARAMETERS = {"model": "models", "quantization": "quantizations", "attn_implementation": "attn_implementations",
                   "max_pixels": "max_pixels_values", "quantize_vision": "quantize_vision_values"}
# Parameters whose 0 means "not set" (None in LoadSettings): papermill parameters are literals, never None.
ZERO_MEANS_UNSET = ("max_pixels", "min_pixels")


class WorkbenchModelError(RuntimeError):
    """A model could not be used as asked; the message says what to do instead. (The base of the model zoo's
    errors, declared here so that settings can raise it without importing the zoo; workbench.models.base
    re-exports it.)"""


@functools.cache
def _field_hints(cls: type) -> dict[str, Any]:
    """A class's resolved annotations, worked out once: with postponed annotations `typing.get_type_hints`
    compiles every annotation string on each call (0.2 ms a settings object, two per 04 pass)."""
    return typing.get_type_hints(cls)


def check_literal_fields(obj: Any) -> None:
    """Validate a dataclass instance's fields against their annotations (Literal, bool, int, float, str)."""
    hints = _field_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        hint = hints[f.name]
        origin = typing.get_origin(hint)
        if origin is Literal:
            if value not in typing.get_args(hint):
                raise ValueError(
                    f"{type(obj).__name__}.{f.name}={value!r} is not one of {list(typing.get_args(hint))}"
                )
        elif hint is bool and not isinstance(value, bool):
            raise TypeError(f"{type(obj).__name__}.{f.name} must be bool, got {value!r}")
        elif hint is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"{type(obj).__name__}.{f.name} must be int, got {value!r}")
        elif hint is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise TypeError(f"{type(obj).__name__}.{f.name} must be float, got {value!r}")
        elif hint is str and not isinstance(value, str):
            raise TypeError(f"{type(obj).__name__}.{f.name} must be str, got {value!r}")


@dataclass(frozen=True)
class LoadSettings:
    """How to load a model. `source`: 'tiny', 'random', a hub id or a local path."""

    source: str = "tiny"
    dtype: Dtype = "bfloat16"
    quantization: Quantization = "none"
    double_quant: bool = False
    # bitsandbytes' own default (True): quantize the vision tower and projector too, keeping only lm_head in
    # 16-bit, as transformers does when no skip list is given. False keeps them 16-bit (the family's list).
    quantize_vision: bool = False
    attn_implementation: Attention = "sdpa"
    device: Device = "auto"
    trust_remote_code: bool = False
    allow_pickle: bool = False
    frame_policy: FramePolicy = "resample"
    # Per-frame pixel budget for families whose processor resizes to a budget (Qwen-VL); None = its default.
    max_pixels: int | None = None
    min_pixels: int | None = None
    # A family's runtime options, set on the loaded model by `workbench.models.load` (AuroraCap's
    # {"token_kept_ratio": 0.4}); left out of the hash so the settings stay hashable.
    model_options: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        check_literal_fields(self)
        for name in ZERO_MEANS_UNSET:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ValueError(f"LoadSettings.{name} must be a positive int or None, got {value!r}")
        if not isinstance(self.source, str) or not self.source.strip():
            raise ValueError("source is empty: use 'tiny', 'random', a hub id or a local path")
        if self.double_quant and not self.quantization.startswith("4bit"):
            raise ValueError("double_quant applies to 4-bit quantization only")
        if not isinstance(self.model_options, dict):
            raise TypeError(f"LoadSettings.model_options must be a dict of option -> value, "
                            f"got {self.model_options!r}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **changes: Any) -> "LoadSettings":
        """The load settings a notebook's parameters name (its `globals()`, or a parameters dict); the others
        keep their defaults, `max_pixels` 0 means the processor's default, `changes` win (e.g. one value of a
        list parameter).

        >>> LoadSettings.from_params({"source": "random", "max_pixels": 0, "frames": 8}, quantization="8bit")
        LoadSettings(source='random', dtype='bfloat16', quantization='8bit', double_quant=False, \
quantize_vision=False, attn_implementation='sdpa', device='auto', trust_remote_code=False, allow_pickle=False, \
frame_policy='resample', max_pixels=None, min_pixels=None, model_options={})
        """
        values = {name: params[name] for name in NOTEBOOK_LOAD_PARAMETERS if name in params}
        return cls(**unset_zeros({**values, **changes}))

    def to_params(self) -> dict[str, Any]:
        """The notebook parameters that spell these settings (max_pixels None as 0).

        >>> LoadSettings(quantization="8bit").to_params()["quantization"], LoadSettings().to_params()["max_pixels"]
        ('8bit', 0)
        """
        params = {name: getattr(self, name) for name in NOTEBOOK_LOAD_PARAMETERS}
        params["max_pixels"] = params["max_pixels"] or 0
        params["model_options"] = dict(self.model_options)
        return params

    def replace(self, **changes: Any) -> "LoadSettings":
        return dataclasses.replace(self, **unset_zeros(changes))

    def resolved_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cuda" and not torch.cuda.is_available():
            raise WorkbenchModelError("device='cuda' was asked for but torch sees no CUDA device")
        return self.device


LOAD_FIELDS = tuple(f.name for f in dataclasses.fields(LoadSettings))


def unset_zeros(values: dict[str, Any]) -> dict[str, Any]:
    """Notebook spelling -> LoadSettings spelling: a max_pixels / min_pixels of 0 is None (not set).

    >>> unset_zeros({"max_pixels": 0, "dtype": "float16"})
    {'max_pixels': None, 'dtype': 'float16'}
    """
    return {k: (None if k in ZERO_MEANS_UNSET and v == 0 and not isinstance(v, bool) else v)
            for k, v in values.items()}


T = TypeVar("T")


def carries_load_settings(cls: type[T]) -> type[T]:
    """Class decorator for a frozen dataclass with a `load: LoadSettings` field: its constructor also takes the
    load fields flat (`Cls(model=..., quantization="8bit")` builds `load`, over the field's default or a given
    `load`), and reading `obj.quantization` reads `obj.load.quantization`. A field of the class itself keeps its
    name (memory.Grid's `max_pixels` is its tuple of caps), so only the other load fields pass through.
    `dataclasses.replace(obj, quantization=...)` and `obj.replace(...)` work the same way."""
    own = {f.name for f in dataclasses.fields(cls)}
    if "load" not in own:
        raise TypeError(f"{cls.__name__} has no `load` field")
    passed = tuple(name for name in LOAD_FIELDS if name not in own)
    generated: Callable[..., None] = cls.__init__  # type: ignore[misc]
    load_field = next(f for f in dataclasses.fields(cls) if f.name == "load")

    def __init__(self: Any, *args: Any, load: LoadSettings | None = None, **kwargs: Any) -> None:
        flat = {name: kwargs.pop(name) for name in passed if name in kwargs}
        if load is None:
            factory = load_field.default_factory
            load = factory() if factory is not dataclasses.MISSING else LoadSettings()
        if not isinstance(load, LoadSettings):
            raise TypeError(f"{cls.__name__}.load must be a LoadSettings, got {load!r}")
        if flat:
            load = load.replace(**flat)
        generated(self, *args, load=load, **kwargs)

    def __getattr__(self: Any, name: str) -> Any:  # only reached when normal lookup fails
        if name in passed:
            try:
                load = object.__getattribute__(self, "load")
            except AttributeError:  # during construction
                raise AttributeError(name) from None
            return getattr(load, name)
        raise AttributeError(f"{cls.__name__!r} object has no attribute {name!r}")

    __init__.__doc__ = generated.__doc__
    cls.__init__ = __init__  # type: ignore[misc]
    cls.__getattr__ = __getattr__  # type: ignore[attr-defined]
    cls.LOAD_PASSED = passed  # type: ignore[attr-defined]
    return cls


def flat_dict(obj: Any) -> dict[str, Any]:
    """A load-carrying dataclass as one flat dict: its own fields, with `load` spread into them (the shape
    tables, labels and the probe's JSON read)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name == "load":
            out.update({name: getattr(value, name) for name in obj.LOAD_PASSED})
            out["model_options"] = dict(value.model_options)
        else:
            out[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else _copy(value)
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


@carries_load_settings
@dataclass(frozen=True)
class ProbeConfig:
    """One configuration to measure: a model, how it is loaded (`load`), and the frames it is given.

    `config_overrides` (random source only) are merged into the model's embedded config, e.g. a mid-size
    Qwen2-VL: {"num_hidden_layers": 4, "vision_config": {"depth": 4}}. `load.max_pixels` is a per-frame pixel cap
    for families that keep the frame's aspect (Qwen); fixed-size families ignore it (noted in the result).
    `budget_bytes` is an artificial memory limit: on CPU the tracker raises at it, on CUDA the process's
    memory fraction is capped at it. `load.model_options` are a family's runtime options (any source), set on
    the loaded model as the notebooks do (AuroraCap's {"token_kept_ratio": 0.4}); `load.allow_pickle` lets a
    local folder of .pth/.bin weights load (MiniGPT4-Video). Load fields may be given flat:
    `ProbeConfig(model="qwen2-vl-7b", source="random", quantization="8bit")`.
    """

    model: str
    load: LoadSettings = field(default_factory=LoadSettings)
    frames: int = 8
    height: int = 1080
    width: int = 1920
    max_new_tokens: int = 16
    budget_bytes: int | None = None
    config_overrides: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None
    seed: int = 0
    threads: int | None = None
    batch_windows: int = 1  # clips of `frames` frames captioned in one generate() call (workbench.batching)

    def __post_init__(self) -> None:
        check_literal_fields(self)
        for name in ("frames", "height", "width", "max_new_tokens", "batch_windows"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ProbeConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("budget_bytes", "threads"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ValueError(f"ProbeConfig.{name} must be a positive int or None, got {value!r}")
        if not isinstance(self.config_overrides, dict):
            raise TypeError("ProbeConfig.config_overrides must be a dict")
        if self.config_overrides and self.load.source != "random":
            raise ValueError("config_overrides change the architecture, so they need source='random'")

    def as_dict(self) -> dict[str, Any]:
        """Flat: the probe's own fields and every load field (what from_dict reads back)."""
        return flat_dict(self)

    def geometry_overrides(self) -> dict[str, Any]:
        """What sets the visual-token geometry: the architecture overrides and the runtime options (which, like
        AuroraCap's token_kept_ratio, live in the model's config).

        >>> ProbeConfig(model="m", source="random", config_overrides={"a": 1},
        ...             model_options={"token_kept_ratio": 0.4}).geometry_overrides()
        {'a': 1, 'token_kept_ratio': 0.4}
        """
        return {**self.config_overrides, **self.load.model_options}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ProbeConfig":
        """From as_dict's flat shape (or with a nested `load` mapping); unknown names are an error."""
        data = dict(data)
        names = ({f.name for f in dataclasses.fields(cls)} | set(LOAD_FIELDS))
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown ProbeConfig fields {unknown}; valid: {sorted(names)}")
        if isinstance(data.get("load"), dict):
            data["load"] = LoadSettings(**data["load"])
        return cls(**data)

    def replace(self, **changes: Any) -> "ProbeConfig":
        return dataclasses.replace(self, **changes)
