"""The one adapter interface every model family implements, and the settings it takes.

A family file (one per family under workbench/models/) subclasses `FamilyAdapter`, embeds the real
architecture numbers of its checkpoints (`ModelSpec.config`), says how to fabricate a tiny twin, and
how to turn frames + prompt into model inputs. Loading from any source (hub id, local path, `random`,
`tiny`) and captioning go through the shared code below so every family reports the same way.
"""

from __future__ import annotations

import contextvars
import dataclasses
import gc
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping

from workbench.models.geometry import VisualGeometry
from workbench.models.traits import MemoryTraits

# Declared once in the light settings module; imported here so family files keep importing them from base.
from workbench.settings import (  # noqa: F401
    Attention,
    Device,
    Dtype,
    FramePolicy,
    LoadSettings,
    Quantization,
    WorkbenchModelError,
    check_literal_fields,
)

if TYPE_CHECKING:  # heavy imports stay out of `import workbench`
    import numpy as np
    import torch

FrameMode = Literal["video", "images", "fixed"]
Status = Literal["ok", "empty", "error"]

SPECIAL_SOURCES = ("tiny", "random")


class UnknownModelError(WorkbenchModelError, KeyError):
    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class WeightsUnavailableError(WorkbenchModelError):
    pass


class UnsafeLoadError(WorkbenchModelError):
    """Loading would run remote code or unpickle files the user has not allowed."""


class FrameCountError(WorkbenchModelError, ValueError):
    pass


@dataclass(frozen=True)
class GenerationSettings:
    """Greedy and seeded by default, so reruns give the same caption."""

    max_new_tokens: int = 32
    min_new_tokens: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_literal_fields(self)
        if self.max_new_tokens <= 0:
            raise ValueError(f"max_new_tokens must be positive, got {self.max_new_tokens}")

    def generate_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "min_new_tokens": self.min_new_tokens,
            "do_sample": self.do_sample,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p)
        return kwargs


@dataclass(frozen=True)
class ModelSpec:
    """One real checkpoint: its hub id and the architecture numbers needed offline."""

    model_id: str
    hub_id: str
    family: str
    config: dict[str, Any]  # the published config.json, trimmed to what the architecture needs
    published_params: float  # parameter count the publisher states (e.g. 8.29e9)
    frame_mode: FrameMode = "video"
    fixed_frames: int | None = None  # frames the model always takes (InstructBLIP-Video 4, Video-LLaVA 8)
    default_frames: int = 8
    prompt: str = "Describe what happens in this video in one sentence."
    aliases: tuple[str, ...] = ()
    notes: str = ""


@dataclass
class LoadReport:
    model_id: str
    family: str
    source: str
    seconds: float
    n_params: int
    memory_bytes: int
    memory_kind: str  # "cuda_allocated" or "cpu_tensor_bytes"
    dtype: str
    quantization: str
    double_quant: bool
    unquantized_modules: list[str]
    attn_implementation: str
    device: str
    options: dict[str, Any] = field(default_factory=dict)  # runtime options set since (LoadedModel.configure)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class CaptionRecord:
    text: str
    n_tokens: int
    latency_s: float
    status: Status
    error: str | None = None
    n_frames: int = 0
    n_input_tokens: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The duration of the video one describe() call shows the model, in seconds (a window's length, or the whole
# clip's), for families whose prompt names it (LLaVA-Video's time instruction); None where the caller did not say.
CLIP_DURATION_S: contextvars.ContextVar[float | None] = contextvars.ContextVar("clip_duration_s", default=None)


@dataclass
class LoadedModel:
    spec: ModelSpec
    adapter: "FamilyAdapter"
    model: Any
    processor: Any
    settings: LoadSettings
    report: LoadReport

    def describe(self, frames: "np.ndarray", timestamps_s: "np.ndarray | None" = None,
                 prompt: str | None = None, generation: GenerationSettings | None = None,
                 duration_s: float | None = None) -> CaptionRecord:
        """Caption frames (T,H,W,3 uint8); `duration_s` is the length of the video they were sampled from."""
        token = CLIP_DURATION_S.set(duration_s)
        try:
            return self.adapter.describe(self, frames, timestamps_s, prompt, generation)
        finally:
            CLIP_DURATION_S.reset(token)

    def configure(self, options: dict[str, Any]) -> None:
        """Set a family's runtime options (`FamilyAdapter.runtime_options`, e.g. AuroraCap's token_kept_ratio)
        on the loaded model; unknown names fail with the family's list, before anything is changed."""
        if not isinstance(options, dict):
            raise TypeError(f"model options must be a dict of name -> value, got {options!r}")
        known = self.adapter.runtime_options
        unknown = sorted(set(options) - set(known))
        if unknown:
            listed = ", ".join(f"{k} ({v})" for k, v in known.items()) or "none"
            raise WorkbenchModelError(f"{self.spec.model_id} has no option {', '.join(map(repr, unknown))}; "
                                      f"its options: {listed}")
        for name, value in options.items():
            self.adapter.set_option(self, name, value)
            self.report.options[name] = value

    def unload(self) -> None:
        """Drop the model and give its memory back (CUDA cache included)."""
        self.model = None
        self.processor = None
        free_memory()


class LanguageModelEmbeddings:
    """For models assembled from transformers parts with the LLM at `self.language_model` (AuroraCap,
    MiniGPT4-Video): the embedding accessors generate() and resize_token_embeddings() look for. Put it
    before PreTrainedModel in the bases."""

    def get_input_embeddings(self) -> Any:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: Any) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> Any:
        return self.language_model.get_output_embeddings()

    def get_decoder(self) -> Any:
        return self.language_model.get_decoder()


def seed_generation(seed: int, device: str) -> None:
    """Seed what a generate() call on `device` draws from (sampling; greedy decoding draws nothing).

    `torch.manual_seed` also seeds CUDA, which on a CUDA build of torch before CUDA starts queues a call
    carrying the caller's formatted stack (0.2-0.8 ms per caption on CPU, measured), so a CPU model seeds the
    CPU generator alone, which is the one its sampling uses.
    """
    import torch

    if device.startswith("cuda"):
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


def free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def tensor_bytes(model: "torch.nn.Module") -> int:
    """Bytes held by a model's parameters and buffers, each storage counted once.

    bitsandbytes keeps quantization constants outside the parameter list (8-bit row scales `SCB`,
    4-bit `quant_state` absmax/code, nested for double quantization); they are counted too.
    """
    seen: set[int] = set()
    total = 0
    for tensor in model_tensors(model):
        if tensor.device.type == "meta":
            continue
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key in seen:
            continue
        seen.add(key)
        total += storage.nbytes()
    return total


def model_tensors(model: "torch.nn.Module") -> "list[torch.Tensor]":
    import torch

    params = list(model.parameters())
    tensors: list[torch.Tensor] = params + list(model.buffers())
    for param in params:
        scb = getattr(param, "SCB", None)
        if isinstance(scb, torch.Tensor):
            tensors.append(scb)
        state = getattr(param, "quant_state", None)
        while state is not None:
            tensors += [t for t in (getattr(state, "absmax", None), getattr(state, "code", None),
                                    getattr(state, "offset", None)) if isinstance(t, torch.Tensor)]
            state = getattr(state, "state2", None)
    return tensors


def count_parameters(model: "torch.nn.Module") -> int:
    """Parameters as published: a 4-bit packed weight counts its logical elements, not its bytes."""
    total = 0
    for param in model.parameters():
        shape = getattr(param, "quant_state", None)
        total += shape.shape.numel() if shape is not None else param.numel()
    return total


def unquantized_linear_modules(model: "torch.nn.Module") -> list[str]:
    """Names of plain nn.Linear modules left in 16/32-bit after quantization, grouped by parent prefix."""
    import torch

    names = [
        name for name, module in model.named_modules()
        if type(module) is torch.nn.Linear
    ]
    return _group_names(names)


def _group_names(names: list[str]) -> list[str]:
    """Collapse module names into `prefix (N linear)` groups, keeping the report short.

    >>> _group_names(["model.visual.blocks.0.attn.qkv", "model.visual.blocks.1.attn.qkv", "lm_head"])
    ['lm_head', 'model.visual (2 linear)']
    """
    groups: dict[str, int] = {}
    for name in names:
        parts = name.split(".")
        prefix = ".".join(parts[:2]) if len(parts) > 2 else name
        groups[prefix] = groups.get(prefix, 0) + 1
    return sorted(p if n == 1 and p in names else f"{p} ({n} linear)" for p, n in groups.items())


def resample_frames(frames: "np.ndarray", timestamps_s: "np.ndarray | None", target: int,
                    policy: FramePolicy, model_id: str) -> tuple["np.ndarray", "np.ndarray | None", list[str]]:
    """Bring a frame stack (T,H,W,3) to a model's fixed frame count, loudly; never drop frames silently."""
    import numpy as np

    n = int(frames.shape[0])
    if n == target:
        return frames, timestamps_s, []
    if policy == "refuse":
        raise FrameCountError(
            f"{model_id} takes exactly {target} frames per clip, got {n}; sample {target} frames "
            f"or load with frame_policy='resample'"
        )
    picks = np.floor((np.arange(target) + 0.5) * n / target).astype(int)
    note = (f"{model_id} takes exactly {target} frames: resampled {n} given frames to {target} "
            f"(source positions {picks.tolist()})")
    warnings.warn(note, stacklevel=3)
    new_ts = None if timestamps_s is None else np.asarray(timestamps_s)[picks]
    return frames[picks], new_ts, [note]


class FamilyAdapter:
    """Shared loading and captioning; a family overrides the class attributes and the hooks below."""

    family: ClassVar[str]
    # transformers class names (e.g. "Qwen2VLForConditionalGeneration", "Qwen2VLConfig"), or the dotted path of a
    # family's own classes in its modeling file, imported only when a model is loaded
    model_class: ClassVar[str]
    config_class: ClassVar[str]
    # Modules that bitsandbytes must leave in 16-bit (full-name prefixes or suffixes): vision tower, projector
    # and the LLM's output head. `kept_modules(quantize_vision=True)` keeps only the output head.
    skip_modules: ClassVar[tuple[str, ...]] = ("lm_head",)
    # Config keys that name special-token ids; for `random` they are pointed at the tiny tokenizer's ids.
    token_id_keys: ClassVar[tuple[str, ...]] = ()
    specs: ClassVar[dict[str, ModelSpec]] = {}
    # Settings that change a loaded model's behaviour without reloading it (name -> what it does).
    runtime_options: ClassVar[dict[str, str]] = {}
    # What the family's code does that memory depends on (vision tower kind, softmax dtype, prompts per frame,
    # extra inputs): the memory predictor reads only this and `visual_tokens`.
    memory: ClassVar[MemoryTraits]

    def kept_modules(self, quantize_vision: bool = False) -> tuple[str, ...]:
        """The modules bitsandbytes leaves in 16-bit: the family's list, or only the output head (bitsandbytes'
        default through transformers, whose own skip list holds just lm_head, as in 4.45 and 4.51)."""
        if not quantize_vision:
            return self.skip_modules
        return tuple(name for name in self.skip_modules if name.endswith("lm_head")) or ("lm_head",)

    # ---- hooks a family implements -------------------------------------------------------------
    def tiny_config(self) -> Any:
        """A tiny config of the family's real config class (random weights are made from it)."""
        raise NotImplementedError

    def fabricate_processor(self, out_dir: Path) -> Any:
        """Build the family's real processor classes with a locally trained tokenizer; save to out_dir."""
        raise NotImplementedError

    def build_inputs(self, loaded: LoadedModel, frames: "np.ndarray", timestamps_s: "np.ndarray | None",
                     prompt: str) -> Any:
        """Frames (T,H,W,3 uint8) + prompt -> the processor's BatchFeature for generate()."""
        raise NotImplementedError

    def visual_tokens(self, n_frames: int, height: int, width: int, *, model_id: str | None = None,
                      max_pixels: int | None = None, min_pixels: int | None = None,
                      options: Mapping[str, Any] | None = None) -> VisualGeometry:
        """What a clip of n_frames (height x width source frames) costs in visual tokens, as the processor and
        model shape it. `model_id` None is the tiny twin's geometry; `max_pixels` / `min_pixels` a per-frame
        budget (families with `memory.pixel_budget`; others ignore them); `options` the configuration's
        overrides and runtime options (AuroraCap's token_kept_ratio), which families that have none ignore."""
        raise NotImplementedError

    def set_option(self, loaded: LoadedModel, name: str, value: Any) -> None:
        """Apply one of `runtime_options` (validated by the family)."""
        raise NotImplementedError(f"{self.family}: no runtime options")

    def visual_token_ids(self, loaded: LoadedModel) -> set[int]:
        """Ids of the placeholder tokens that stand for visual features in the prompt."""
        config = loaded.model.config
        keys = ("image_token_id", "video_token_id", "image_token_index", "video_token_index")
        return {value for key in keys if isinstance(value := getattr(config, key, None), int)}

    def token_layout(self, loaded: LoadedModel, capture: Any, n_frames: int, height: int, width: int) -> Any:
        """Where each captured visual token came from (a workbench.models.layout.TokenLayout), from the
        capture's recorded inputs (`capture`: a workbench.attention.capture.CaptureResult) and the n_frames
        (height x width) frames the model saw."""
        raise NotImplementedError(f"{self.family}: no visual-token layout for attention maps")

    # ---- shared machinery ------------------------------------------------------------------------
    def model_cls(self) -> Any:
        return named_class(self.model_class)

    def config_cls(self) -> Any:
        return named_class(self.config_class)

    def real_config(self, spec: ModelSpec) -> Any:
        """The full-size architecture from the embedded numbers (no download)."""
        return self.config_cls().from_dict(dict(spec.config))

    def tiny_dir(self) -> Path:
        from workbench.paths import cache_dir

        return cache_dir() / "tiny" / self.family

    def ensure_tiny(self) -> Path:
        """Fabricate the tiny twin once (config, seeded random weights, processor) and return its folder."""
        import torch

        from workbench.atomic import atomic_dir

        out_dir = self.tiny_dir()
        if (out_dir / "config.json").exists():
            return out_dir
        with atomic_dir(out_dir) as tmp:
            torch.manual_seed(0)
            config = self.tiny_config()
            model = self.model_cls()._from_config(config, dtype=torch.float32)
            model.save_pretrained(tmp)
            self.fabricate_processor(tmp)
        return out_dir

    def load(self, spec: ModelSpec, settings: LoadSettings) -> LoadedModel:
        import torch

        device = settings.resolved_device()
        kwargs: dict[str, Any] = {
            "dtype": getattr(torch, settings.dtype),
            "attn_implementation": settings.attn_implementation,
            "device_map": {"": device},
            "trust_remote_code": settings.trust_remote_code,
        }
        quant = self.quantization_config(settings)
        if quant is not None:
            kwargs["quantization_config"] = quant
        if settings.attn_implementation == "flash_attention_2":
            _require_flash_attention(device)

        cuda_before = torch.cuda.memory_allocated() if device == "cuda" else 0
        start = time.perf_counter()
        try:
            if settings.source == "tiny":
                path = self.ensure_tiny()
                processor = self._load_processor(path, settings)
                model = self.model_cls().from_pretrained(path, use_safetensors=True, **kwargs)
            elif settings.source == "random":
                processor = self._load_processor(self.ensure_tiny(), settings)
                config = self.random_config(spec, processor)
                torch.manual_seed(0)  # layers other than Linear are initialized by the model's own init
                state_dict = random_linear_state_dict(self.model_cls(), config, kwargs["dtype"])
                with quiet_transformers():  # every non-Linear weight is "missing": a long, expected report
                    model = self.model_cls().from_pretrained(None, config=config, state_dict=state_dict, **kwargs)
            else:
                check_source_safety(settings)
                processor = self._load_processor(settings.source, settings)
                model = self.model_cls().from_pretrained(
                    settings.source, use_safetensors=None if settings.allow_pickle else True, **kwargs
                )
        except (OSError, EnvironmentError) as err:
            free_memory()
            raise weights_unavailable(spec, settings, err) from err
        except torch.OutOfMemoryError:
            free_memory()
            raise
        model.eval()
        seconds = time.perf_counter() - start
        report = LoadReport(
            model_id=spec.model_id,
            family=self.family,
            source=settings.source,
            seconds=seconds,
            n_params=count_parameters(model),
            memory_bytes=(torch.cuda.memory_allocated() - cuda_before if device == "cuda"
                          else tensor_bytes(model)),
            memory_kind="cuda_allocated" if device == "cuda" else "cpu_tensor_bytes",
            dtype=settings.dtype,
            quantization=settings.quantization,
            double_quant=settings.double_quant,
            unquantized_modules=unquantized_linear_modules(model) if quant is not None else [],
            attn_implementation=settings.attn_implementation,
            device=device,
        )
        return LoadedModel(spec, self, model, processor, settings, report)

    def random_config(self, spec: ModelSpec, processor: Any) -> Any:
        """Real architecture; special-token ids pointed at the (tiny) tokenizer actually used."""
        config = self.real_config(spec)
        self.align_token_ids(config, processor.tokenizer)
        return config

    def align_token_ids(self, config: Any, tokenizer: Any) -> None:
        """Point config token-id fields at `tokenizer`'s ids; families override for nested configs."""
        for key in self.token_id_keys:
            token = TOKEN_ID_TOKENS.get(key)
            if token is not None and hasattr(config, key):
                setattr(config, key, tokenizer.convert_tokens_to_ids(token))

    def _load_processor(self, path: str | Path, settings: LoadSettings) -> Any:
        import transformers

        return transformers.AutoProcessor.from_pretrained(
            str(path), trust_remote_code=settings.trust_remote_code
        )

    def quantization_config(self, settings: LoadSettings) -> Any:
        if settings.quantization == "none":
            return None
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as err:
            raise WorkbenchModelError(
                f"quantization={settings.quantization!r} needs bitsandbytes, which is not importable: {err}"
            ) from err
        import torch
        import transformers

        from workbench import cpu_kernels

        cpu_kernels.apply_overrides()  # a test or a user forcing bitsandbytes' other CPU path
        if settings.quantization == "8bit":
            return transformers.BitsAndBytesConfig(
                load_in_8bit=True, llm_int8_skip_modules=list(self.kept_modules(settings.quantize_vision))
            )
        return transformers.BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=settings.quantization.split("-")[1],
            bnb_4bit_use_double_quant=settings.double_quant,
            bnb_4bit_compute_dtype=getattr(torch, settings.dtype),
            llm_int8_skip_modules=list(self.kept_modules(settings.quantize_vision)),
        )

    def describe(self, loaded: LoadedModel, frames: "np.ndarray", timestamps_s: "np.ndarray | None" = None,
                 prompt: str | None = None, generation: GenerationSettings | None = None) -> CaptionRecord:
        """Caption one clip (T,H,W,3 uint8). Errors become a record with status 'error', never a crash."""
        import torch

        generation = generation or GenerationSettings()
        prompt = prompt or loaded.spec.prompt
        notes: list[str] = []
        if loaded.spec.fixed_frames is not None:
            frames, timestamps_s, notes = resample_frames(
                frames, timestamps_s, loaded.spec.fixed_frames, loaded.settings.frame_policy,
                loaded.spec.model_id,
            )
        start = time.perf_counter()
        n_input = 0
        try:
            inputs = self.build_inputs(loaded, frames, timestamps_s, prompt)
            inputs = self.move_inputs(inputs, loaded)
            n_input = int(inputs["input_ids"].shape[-1])
            seed_generation(generation.seed, loaded.report.device)
            kwargs = generation.generate_kwargs()
            if loaded.settings.source == "random":
                kwargs["logits_processor"] = vocabulary_limit(len(loaded.processor.tokenizer))
            with torch.inference_mode():
                output = loaded.model.generate(**inputs, **kwargs)
            new_tokens = output[0, n_input:]
            text = self.decode(loaded, new_tokens)
        except torch.OutOfMemoryError as err:
            free_memory()
            return CaptionRecord("", 0, time.perf_counter() - start, "error",
                                 f"out of memory: {err}", int(frames.shape[0]), n_input, notes)
        except Exception as err:  # a failed caption is a result row, not a crash
            return CaptionRecord("", 0, time.perf_counter() - start, "error",
                                 f"{type(err).__name__}: {err}", int(frames.shape[0]), n_input, notes)
        latency = time.perf_counter() - start
        status: Status = "ok" if text.strip() else "empty"
        return CaptionRecord(text.strip(), int(new_tokens.numel()), latency, status, None,
                             int(frames.shape[0]), n_input, notes)

    def move_inputs(self, inputs: Any, loaded: LoadedModel) -> Any:
        """Send inputs to the model's device; floating tensors to the compute dtype."""
        import torch

        device = loaded.report.device
        dtype = getattr(torch, loaded.settings.dtype)
        moved = {}
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor):
                value = value.to(device)
                # only pixels take the compute dtype: timing tensors (e.g. seconds per grid) lose precision
                if value.is_floating_point() and key.startswith("pixel_values"):
                    value = value.to(dtype)
            moved[key] = value
        return moved

    def decode(self, loaded: LoadedModel, new_tokens: "torch.Tensor") -> str:
        return loaded.processor.batch_decode(new_tokens[None], skip_special_tokens=True)[0]


def named_class(name: str) -> Any:
    """A transformers class by name ("Qwen2VLForConditionalGeneration"), or a family's own by dotted path
    ("workbench.models.auroracap_modeling.AuroraCapConfig"), imported only now."""
    import importlib

    if "." in name:
        module, _, attribute = name.rpartition(".")
        return getattr(importlib.import_module(module), attribute)
    import transformers

    return getattr(transformers, name)


def vocabulary_limit(n_tokens: int) -> Any:
    """Logits processor that keeps generation inside the first n_tokens ids.

    A `random` model keeps the real vocabulary size (memory is real) but talks through the tiny twin's
    tokenizer; ids past that tokenizer would decode to nothing and read as an empty caption.
    """
    from transformers import LogitsProcessor, LogitsProcessorList

    class _Limit(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            scores[:, n_tokens:] = float("-inf")
            return scores

    return LogitsProcessorList([_Limit()])


class RandomTensor:
    """A checkpoint entry made only when the loader slices it (`entry[...]`): normal(0, std), or zeros
    for std 0, seeded by its name so every load gives the same weights in any order.

    from_pretrained materializes entries one at a time that way and, with bitsandbytes, quantizes each
    as it arrives, so a full-size random model is never held whole in 16-bit.
    """

    def __init__(self, shape: tuple[int, ...], std: float, seed: int, dtype: "torch.dtype") -> None:
        self.shape, self.std, self.seed, self.dtype = shape, std, seed, dtype

    def __getitem__(self, index: Any) -> "torch.Tensor":
        import torch

        tensor = torch.empty(self.shape, dtype=self.dtype)
        if self.std == 0.0:
            return tensor.zero_()
        return tensor.normal_(0.0, self.std, generator=torch.Generator().manual_seed(self.seed))


def random_linear_state_dict(model_cls: Any, config: Any, dtype: "torch.dtype") -> dict[str, RandomTensor]:
    """Lazy random entries for every nn.Linear weight (normal(0, initializer_range)) and bias (zeros).

    from_pretrained quantizes only weights it loads: with `state_dict={}` every weight is "missing" and
    is initialized after the layers were swapped, so Linear8bitLt / Linear4bit keep 16-bit weights (no
    memory saved) and 4-bit layers' biases stay uninitialized (NaN). The rest of the model (embeddings,
    norms, convolutions) is left to the model's own init as missing keys.
    """
    import zlib

    import torch

    with torch.device("meta"):
        meta = model_cls._from_config(config)
    tied = set(getattr(meta, "all_tied_weights_keys", {}) or {})
    std = getattr(config.get_text_config(), "initializer_range", None) or 0.02
    entries: dict[str, RandomTensor] = {}
    for name, module in meta.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        for param_name, param in module.named_parameters(recurse=False):
            key = f"{name}.{param_name}"
            if key not in tied:
                entries[key] = RandomTensor(tuple(param.shape), std if param_name == "weight" else 0.0,
                                            zlib.crc32(key.encode()), dtype)
    return entries


class quiet_transformers:
    """Silence transformers' logger (warnings included) inside a `with` block."""

    def __enter__(self) -> None:
        from transformers.utils import logging as hf_logging

        self._previous = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()

    def __exit__(self, *exc: Any) -> None:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity(self._previous)


# Special tokens named by common config token-id fields (families add their own via align_token_ids).
TOKEN_ID_TOKENS: dict[str, str] = {
    "image_token_id": "<image>",
    "video_token_id": "<video>",
    "image_token_index": "<image>",
    "video_token_index": "<video>",
}


def looks_like_folder(source: str) -> bool:
    """Whether a weights source names a local folder rather than a hub id (owner/name).

    >>> looks_like_folder("/data/qwen2-vl-7b"), looks_like_folder("./weights"), looks_like_folder("a/b/c")
    (True, True, True)
    >>> looks_like_folder("Qwen/Qwen2-VL-7B-Instruct"), looks_like_folder("tiny")
    (False, False)
    """
    return source.startswith(("/", ".", "~")) or source.count("/") > 1 or "\\" in source


def check_source_safety(settings: LoadSettings) -> None:
    """Refuse remote code and pickle-only weights in a local folder unless the user allowed them by name."""
    import json

    path = Path(settings.source)
    if not path.exists():
        if looks_like_folder(settings.source):  # not a hub id (owner/name): say so, not "Repo id must be ..."
            raise WeightsUnavailableError(f"weights folder not found: {settings.source} (a local source must be "
                                          f"an existing folder; a hub id has the form owner/name)")
        return  # a hub id: transformers applies trust_remote_code / use_safetensors itself
    config_file = path / "config.json"
    if not config_file.exists():
        raise WeightsUnavailableError(f"{path} has no config.json: not a transformers model folder")
    config = json.loads(config_file.read_text())
    if "auto_map" in config and not settings.trust_remote_code:
        raise UnsafeLoadError(
            f"{path} needs remote code (config.json has auto_map: {sorted(config['auto_map'])}); "
            f"read that code, then pass trust_remote_code=True by name to allow it"
        )
    has_safetensors = any(path.glob("*.safetensors"))
    pickles = sorted(p.name for ext in ("*.bin", "*.pt", "*.pth", "*.ckpt") for p in path.glob(ext))
    if not has_safetensors and pickles and not settings.allow_pickle:
        raise UnsafeLoadError(
            f"{path} holds only pickle weights ({', '.join(pickles[:3])}); unpickling can run code. "
            f"Convert them to safetensors, or pass allow_pickle=True by name to allow it"
        )


def weights_unavailable(spec: ModelSpec, settings: LoadSettings, err: Exception) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"weights for {spec.model_id} from source {settings.source!r} are not available: {err}\n"
        f"To use real weights, download them where a hub is reachable "
        f"(`hf download {spec.hub_id}`) and pass the local folder as source, or keep them in the HF cache "
        f"and set HF_HUB_OFFLINE=1. Without weights, source='random' gives the full-size architecture "
        f"with random weights (real memory and speed, captions are noise) and source='tiny' a tiny twin."
    )


def _require_flash_attention(device: str) -> None:
    if device != "cuda":
        raise WorkbenchModelError("attn_implementation='flash_attention_2' needs a CUDA device")
    try:
        import flash_attn  # noqa: F401
    except ImportError as err:
        raise WorkbenchModelError(
            "attn_implementation='flash_attention_2' needs the flash-attn package, which is not installed; "
            "use 'sdpa' (memory-efficient, no L x L scores) or install flash-attn"
        ) from err
