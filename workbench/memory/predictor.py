"""Analytic memory prediction per phase and component, from the architecture numbers alone.

No weights, no GPU, no model built per configuration: `architecture(model_id, source)` reads the family's
embedded config once (weights from workbench/weights.py on the meta device), caches it in memory and on
disk, and `predict(...)` is then arithmetic, so hundreds of configurations take well under a second.

What is counted (bytes; `dt` = bytes of the compute dtype; L = vision-encoder sequence length over the whole
clip, Ls = one attention segment of it, S = LLM prompt tokens, D / H = vision / LLM widths, I = LLM MLP width):

    load        weights (+ one Linear in dt while bitsandbytes quantizes it, on CUDA)
    vision      weights + inputs + 2·L·D·dt hidden states + the largest block transient:
                  rotary  (3·dt + 24)·L·D   Qwen ViTs rotate q and k in fp32
                  eager   heads·Ls²·(2·dt + 4) per segment in flight (scores, fp32 softmax, cast back)
                          + 5·dt·L·D (qkv, rotated q and k); sdpa / flash attention: no Ls² term
                  mlp     copies·L·mlp_hidden·dt (3 for quick_gelu and SwiGLU, 2 for a fused GELU)
    prefill     weights + inputs + retained vision outputs (L·D + 2·S_vis·H)·dt + 3·S·H·dt
                + KV cache(S) + rotary tables + the largest of
                  eager attention  heads·S²·(2·dt + 4) + S²·dt causal mask + q and repeated k, v
                  mlp              copies·S·I·dt + S·H·dt (+ eager's mask and heads·S²·dt probabilities,
                                   which the decoder layer holds in `_` until it returns)
                  quantization     bitsandbytes transients (below)
                (transformers 5.x generate() asks for the last position's logits only in prefill)
    generation  weights + inputs + retained vision outputs + KV cache(S + new tokens) + logits

Segments: transformers 5.x splits Qwen vision attention per frame pair (cu_seqlens), so eager scores are
heads·(h·w)² at a time; transformers 4.x built one [heads, L, L] over all frames with a [1, L, L] mask
(MODEL_NOTES) — `vision_attention_scope="clip"` predicts that older behaviour. Per-frame ViTs (CLIP,
SigLIP, EVA, InternViT) batch the frames, so all their [frames, heads, seq, seq] scores coexist.

bitsandbytes transients (largest quantized Linear, out x in = n weights):
    CUDA 8-bit  int32 accumulator S·out·4 + fp16 and int8 copies of the input S·in·3
    CUDA 4-bit  the weight dequantized to dt (n·dt) for every prefill matmul
    CPU 8-bit   fp16 and int8 copies of the input S·in·3 (the int8 kernel's own buffers are not visible)
    CPU 4-bit   with AVX512-BF16: the one-time repack of each weight to the fused kernel's layout on its
                first call (7·n); without: nothing beyond the MLP (the weight is dequantized inside the kernel)

On CPU the prediction is of the bytes the live-tensor tracker sees: buffers allocated inside bitsandbytes'
kernels (custom operators) are invisible to it and are named in the prediction's notes instead. Which CPU
kernels run depends on the machine, so a CPU prediction asks what bitsandbytes asks (workbench/cpu_kernels.py)
and records the answer in `cpu_kernels`.

The numbers of each term were read off the live-tensor tracker on a mid-size Qwen2-VL (docs/memory.md); other
families reuse the same terms with their own geometry and traits (each family file's `visual_tokens` and
`memory`: workbench/models/geometry.py, traits.py), so their predictions are estimates of the same quality
only where their code follows the same pattern. No family is named here.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from workbench.cpu_kernels import CpuKernels
from workbench.models.geometry import VisualGeometry
from workbench.models.traits import MemoryTraits
from workbench.weights import DTYPE_BYTES, WeightCounts, weight_bytes

if TYPE_CHECKING:
    from workbench.memory.probe import ProbeConfig

DEFAULT_TEXT_TOKENS = 64  # chat template + a one-sentence prompt with the real tokenizers (~40-70 tokens)
PredictDevice = Literal["cuda", "cpu"]
Scope = Literal["segment", "clip"]
Era = Literal["5.x", "4.5x", "4.4x"]
MaskedSdpa = Literal["efficient", "math"]
ERAS: tuple[str, ...] = ("5.x", "4.5x", "4.4x")


@dataclass(frozen=True)
class EraBehaviour:
    """What a transformers release line does that changes memory (docs/memory.md pins each to its code)."""

    vision_scope: str  # "segment": attention per frame pair (cu_seqlens splits); "clip": one L x L with a mask
    prompt_logits_bytes: int  # bytes per prompt position x vocab entry of prefill logits, beyond dt (-1: none)


# 5.x: generate() keeps the last position's logits only. 4.50-4.53: Qwen2-VL's vision attention spans the whole
# clip with a dense [1, L, L] mask, and the forward computes logits for every prompt position (no logits_to_keep)
# in dt. 4.45-4.49: the same, and the forward upcasts all of them to float32 (`logits.float()`).
ERA_BEHAVIOURS: dict[str, EraBehaviour] = {
    "5.x": EraBehaviour("segment", -1),
    "4.5x": EraBehaviour("clip", 0),
    "4.4x": EraBehaviour("clip", 4),
}
COMPONENTS = (
    "weights", "load_staging", "inputs", "input_copies", "vision_activations", "vision_rotary", "vision_attention",
    "vision_mlp", "vision_outputs", "llm_activations", "llm_attention", "llm_mlp", "quantization",
    "kv_cache", "logits",
)
PHASES = ("load", "vision", "prefill", "generation")


# ---- architecture numbers, once per model ---------------------------------------------------------------

@dataclass(frozen=True)
class VisionArch:
    width: int
    layers: int
    heads: int
    mlp_hidden: int
    mlp_copies: int  # MLP-width activations alive at the MLP's peak
    rotary_fp32: bool  # q and k rotated in fp32 (Qwen ViTs)
    batched_frames: bool  # frames are a batch (all [frames, heads, seq, seq] scores at once)
    all_hidden_states: bool  # the tower keeps every layer's output (LLaVA's vision_feature_layer)
    softmax_fp32: bool = True  # eager softmax upcast to fp32 (else scores and probabilities stay in dt)


@dataclass(frozen=True)
class TextArch:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    mlp_copies: int
    encoder_decoder: bool = False
    max_positions: int = 0  # the context the model was built for (0: unknown)


@dataclass(frozen=True)
class Architecture:
    model_id: str
    family: str
    source_kind: str  # tiny | embedded (random, hub id) | path
    text: TextArch
    vision: VisionArch
    weights: WeightCounts
    largest_quantized: tuple[int, int]  # (out_features, in_features) of the largest quantized Linear
    # with quantize_vision: the largest Linear quantized beyond the family's 16-bit list (vision side)
    largest_vision_quantized: tuple[int, int] = (0, 0)
    quantize_vision: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "family": self.family, "source_kind": self.source_kind,
                "text": asdict(self.text), "vision": asdict(self.vision), "weights": self.weights.as_dict(),
                "largest_quantized": list(self.largest_quantized),
                "largest_vision_quantized": list(self.largest_vision_quantized),
                "quantize_vision": self.quantize_vision}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Architecture":
        return cls(data["model_id"], data["family"], data["source_kind"], TextArch(**data["text"]),
                   VisionArch(**data["vision"]), WeightCounts(**data["weights"]),
                   tuple(data["largest_quantized"]), tuple(data["largest_vision_quantized"]),
                   bool(data["quantize_vision"]))


def vision_arch(traits: MemoryTraits, vision_config: Any) -> VisionArch:
    """The vision tower's numbers: sizes read from the config as the family says, behaviours from its traits."""
    width, layers, heads, mlp_hidden = traits.vision_sizes(vision_config)
    return VisionArch(width, layers, heads, mlp_hidden, traits.mlp_copies, traits.rotary_fp32, traits.batched_frames,
                      traits.all_hidden_states, traits.softmax_fp32)


def _text_arch(t: Any) -> TextArch:
    hidden = int(t.hidden_size)
    heads = int(t.num_attention_heads)
    kv_heads = int(getattr(t, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(t, "head_dim", None) or getattr(t, "d_kv", None) or hidden // heads)
    intermediate = int(getattr(t, "intermediate_size", None) or getattr(t, "ffn_dim", None)
                       or getattr(t, "d_ff", None) or 4 * hidden)
    model_type = getattr(t, "model_type", "")
    gated = model_type != "opt" and not (model_type == "t5" and "gated" not in getattr(t, "feed_forward_proj", ""))
    return TextArch(hidden, int(t.num_hidden_layers), heads, kv_heads, head_dim, intermediate,
                    int(t.vocab_size), 3 if gated else 2, bool(getattr(t, "is_encoder_decoder", False)),
                    int(getattr(t, "max_position_embeddings", None) or 0))


def _source_kind(source: str) -> str:
    from pathlib import Path

    if source == "tiny":
        return "tiny"
    return "path" if Path(source).exists() else "embedded"


def model_config(model_id: str, source: str = "random", config_overrides: dict[str, Any] | None = None) -> Any:
    """The architecture's config object: the tiny twin's, a local folder's, or the embedded real one."""
    import dataclasses

    from workbench.models import get
    from workbench.models.configs import merge_config

    adapter, spec = get(model_id)
    kind = _source_kind(source)
    if kind == "tiny":
        if config_overrides:
            raise ValueError("config_overrides apply to the embedded architecture (source 'random')")
        return adapter.tiny_config()
    if kind == "path":
        return adapter.config_cls().from_pretrained(source)
    if config_overrides:
        spec = dataclasses.replace(spec, config=merge_config(spec.config, config_overrides))
    return adapter.real_config(spec)


def _cache_key(model_id: str, kind: str, overrides: dict[str, Any], source: str, kept: tuple[str, ...]) -> str:
    """Changes with everything that changes the counts: the model and its config (a retrained twin's committed
    config.json included), the overrides, the modules kept in 16-bit, the family file and the transformers
    version."""
    from importlib import metadata

    from workbench.models import get

    adapter, spec = get(model_id)
    family_file = getattr(sys.modules.get(type(adapter).__module__), "__file__", None) or ""
    payload = json.dumps({
        "model": model_id, "kind": kind, "source": source if kind == "path" else kind, "overrides": overrides,
        "kept_16bit": list(kept), "transformers": metadata.version("transformers"),
        "family_file": hashlib.sha256(open(family_file, "rb").read()).hexdigest() if family_file else "",
        "config": hashlib.sha256(json.dumps(spec.config, sort_keys=True, default=str).encode()).hexdigest(),
        "schema": 5,
    }, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@lru_cache(maxsize=64)
def _architecture_cached(model_id: str, source: str, overrides_json: str, quantize_vision: bool) -> Architecture:
    from workbench import atomic, paths
    from workbench.models import get

    overrides = json.loads(overrides_json)
    adapter, spec = get(model_id)
    canonical = spec.model_id
    kind = _source_kind(source)
    key = _cache_key(canonical, kind, overrides, source, adapter.kept_modules(quantize_vision))
    cache_file = paths.cache_dir() / "memory" / f"arch-{canonical}-{key}.json"
    if cache_file.exists():
        try:
            return Architecture.from_dict(json.loads(cache_file.read_text()))
        except (KeyError, TypeError, ValueError):
            pass  # a stale format: rebuild below
    arch = _build_architecture(canonical, source, overrides, quantize_vision)
    try:
        atomic.write_json(cache_file, arch.as_dict())
    except OSError:  # a read-only cache only costs speed
        pass
    return arch


def _build_architecture(model_id: str, source: str, overrides: dict[str, Any], quantize_vision: bool = False
                        ) -> Architecture:
    import torch
    from transformers.quantizers.quantizers_utils import should_convert_module

    from workbench.models import get
    from workbench.weights import count_weights, meta_model

    adapter, _spec = get(model_id)
    config = model_config(model_id, source, overrides or None)
    model = meta_model(adapter, config)
    kept = adapter.kept_modules(quantize_vision)
    counts = count_weights(model, kept)
    fp32 = list(getattr(model, "_keep_in_fp32_modules", None) or [])
    patterns, family_patterns = list(kept) + fp32, list(adapter.skip_modules) + fp32
    largest, largest_vision = (0, 0), (0, 0)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and should_convert_module(name, patterns):
            size = (module.out_features, module.in_features)
            if not should_convert_module(name, family_patterns):  # quantized only under quantize_vision
                largest_vision = max(largest_vision, size, key=lambda s: s[0] * s[1])
            else:
                largest = max(largest, size, key=lambda s: s[0] * s[1])
    return Architecture(model_id, adapter.family, _source_kind(source), _text_arch(config.get_text_config()),
                        vision_arch(memory_traits(adapter), config.vision_config), counts, largest, largest_vision,
                        quantize_vision)


def architecture(model_id: str, source: str = "random", config_overrides: dict[str, Any] | None = None,
                 quantize_vision: bool = False) -> Architecture:
    """Architecture numbers of a model (cached in memory and under the cache dir; no weights).

    `quantize_vision` counts bitsandbytes' default policy (only the output head kept in 16-bit).
    """
    return _architecture_cached(model_id, source, json.dumps(config_overrides or {}, sort_keys=True),
                                bool(quantize_vision))


# ---- visual geometry, per configuration -------------------------------------------------------------------

def memory_traits(adapter: Any) -> MemoryTraits:
    traits = getattr(adapter, "memory", None)
    if not isinstance(traits, MemoryTraits):
        raise TypeError(f"family {adapter.family!r} declares no memory traits (FamilyAdapter.memory, a "
                        "workbench.models.traits.MemoryTraits): see docs/adding_a_family.md")
    return traits


@lru_cache(maxsize=4096)
def _visual_geometry(model_id: str, frames: int, height: int, width: int, max_pixels: int | None, tiny: bool,
                     options_json: str = "{}") -> VisualGeometry:
    from workbench.models import get

    adapter, spec = get(model_id)
    return adapter.visual_tokens(frames, height, width, model_id=None if tiny else spec.model_id,
                                 max_pixels=max_pixels, options=json.loads(options_json))


def visual_geometry(model_id: str, frames: int, height: int, width: int, max_pixels: int | None = None,
                    source: str = "random", options: dict[str, Any] | None = None) -> VisualGeometry:
    """Frames used, LLM visual tokens, encoder sequence and segments, with the processor's own rounding: the
    family's `visual_tokens` (the tiny twin's geometry for source tiny), cached per configuration. `options`:
    the configuration's config overrides and runtime options together."""
    return _visual_geometry(model_id, frames, height, width, max_pixels, source == "tiny",
                            json.dumps(options or {}, sort_keys=True))


# ---- the prediction ----------------------------------------------------------------------------------------

@dataclass
class Prediction:
    model_id: str
    family: str
    device: str
    quantization: str
    attn_implementation: str
    dtype: str
    frames: int
    height: int
    width: int
    max_pixels: int | None
    max_new_tokens: int
    vision_attention_scope: str
    tokens: dict[str, int]
    phases: dict[str, dict[str, int]]  # phase -> component -> bytes
    notes: list[str] = field(default_factory=list)
    cpu_kernels: dict[str, Any] | None = None  # the bitsandbytes CPU path assumed (CPU + quantization only)
    quantize_vision: bool = False  # bitsandbytes' default policy (vision tower quantized too)
    transformers_era: str = "5.x"
    masked_sdpa: str = "efficient"
    batch_windows: int = 1  # clips captioned per generate() call

    @property
    def phase_peaks(self) -> dict[str, int]:
        return {phase: sum(parts.values()) for phase, parts in self.phases.items()}

    @property
    def peak_phase(self) -> str:
        peaks = self.phase_peaks
        return max(peaks, key=peaks.get)

    @property
    def peak_bytes(self) -> int:
        return max(self.phase_peaks.values())

    @property
    def breakdown(self) -> dict[str, int]:
        """Components of the peak phase (what a stacked bar shows)."""
        return dict(self.phases[self.peak_phase])

    @property
    def dominant(self) -> str:
        """The largest component at the peak other than the weights."""
        parts = {k: v for k, v in self.breakdown.items() if k != "weights"}
        return max(parts, key=parts.get) if parts else "weights"

    @property
    def within_context(self) -> bool:
        """Whether prompt and new tokens fit the model's position range (memory aside)."""
        limit = self.tokens.get("context_limit", 0)
        per_prompt = self.tokens["input_tokens"] // max(1, self.tokens.get("llm_batch", 1))
        return not limit or per_prompt + self.max_new_tokens <= limit

    @property
    def weights_bytes(self) -> int:
        return self.phases["load"]["weights"]

    @property
    def kv_cache_bytes(self) -> int:
        return self.phases["generation"].get("kv_cache", 0)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(peak_bytes=self.peak_bytes, peak_phase=self.peak_phase, phase_peaks=self.phase_peaks,
                    breakdown=self.breakdown, dominant=self.dominant, weights_bytes=self.weights_bytes,
                    within_context=self.within_context,
                    kv_cache_bytes=self.kv_cache_bytes)
        return data

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows: one per (phase, component)."""
        return [{"phase": phase, "component": name, "bytes": value, "peak_phase": phase == self.peak_phase}
                for phase, parts in self.phases.items() for name, value in parts.items()]


def predict(model: str, *, source: str = "random", quantization: str = "none", attn_implementation: str = "sdpa",
            dtype: str = "bfloat16", frames: int = 8, height: int = 1080, width: int = 1920,
            max_pixels: int | None = None, max_new_tokens: int = 16, text_tokens: int | None = None,
            double_quant: bool = False, device: PredictDevice = "cuda", vision_attention_scope: Scope | None = None,
            config_overrides: dict[str, Any] | None = None, model_options: dict[str, Any] | None = None,
            cpu_kernels: CpuKernels | None = None, quantize_vision: bool = False, transformers_era: Era = "5.x",
            masked_sdpa: MaskedSdpa = "efficient", batch_windows: int = 1) -> Prediction:
    """Predicted peak memory per phase and component for one configuration (no weights, no GPU).

    `text_tokens` counts one clip's non-visual prompt tokens (over all rows for families that batch frames);
    `device` picks the bitsandbytes kernels' transients (CPU and CUDA differ); `vision_attention_scope`
    "clip" predicts transformers 4.x's Qwen vision attention over all frames at once. `config_overrides`
    change the architecture (source random); `model_options` are runtime options that set the geometry
    (AuroraCap's token_kept_ratio), for any source. `cpu_kernels` says which bitsandbytes CPU kernels run
    (device cpu with quantization); by default this machine's, as bitsandbytes itself decides them.
    `quantize_vision` predicts bitsandbytes' default (vision tower and projector quantized too).
    `transformers_era` predicts an older release line's behaviours (ERA_BEHAVIOURS; its vision scope unless
    `vision_attention_scope` is given); `masked_sdpa` is the CUDA kernel sdpa takes when called with a dense
    mask (the clip scope): "efficient" (no score matrix) or "math" (scores materialized, eager-sized).
    `batch_windows` clips of `frames` frames each are captioned in one generate() call (workbench.batching):
    the vision tower runs over all their segments at once, the LLM over one padded row per clip (prompts of
    equal length assumed), so activations, KV cache and logits scale with it and the weights do not.
    """
    if isinstance(batch_windows, bool) or not isinstance(batch_windows, int) or batch_windows < 1:
        raise ValueError(f"batch_windows must be an int >= 1 (clips per generate call), got {batch_windows!r}")
    if transformers_era not in ERA_BEHAVIOURS:
        raise ValueError(f"transformers_era must be one of {list(ERA_BEHAVIOURS)}, got {transformers_era!r}")
    if masked_sdpa not in ("efficient", "math"):
        raise ValueError(f"masked_sdpa must be 'efficient' or 'math', got {masked_sdpa!r}")
    era = ERA_BEHAVIOURS[transformers_era]
    vision_attention_scope = vision_attention_scope or era.vision_scope
    from workbench.models import get

    adapter, spec = get(model)
    quantize_vision = bool(quantize_vision) and quantization != "none"
    arch = architecture(spec.model_id, source, config_overrides, quantize_vision)
    geometry = visual_geometry(spec.model_id, frames, height, width, max_pixels, source,
                               {**(config_overrides or {}), **(model_options or {})})
    text = (DEFAULT_TEXT_TOKENS if text_tokens is None else int(text_tokens)) * batch_windows
    dt = DTYPE_BYTES[dtype]
    weights = weight_bytes(arch.weights, quantization, dtype, double_quant)
    traits = memory_traits(adapter)
    batch = traits.llm_batch(geometry, batch_windows)
    geometry = geometry.windows(batch_windows)
    visual = geometry.prompt_tokens  # placeholders and the markers / timestamps the clip brings
    seq = text + visual  # all rows together
    notes: list[str] = []
    if max_pixels is not None and not traits.pixel_budget:
        notes.append(f"max_pixels ignored: {arch.family} resizes every frame to a fixed size")
    if spec.fixed_frames is not None and frames != spec.fixed_frames:
        notes.append(f"{spec.model_id} takes exactly {spec.fixed_frames} frames; {frames} are resampled")
    context = arch.text.max_positions
    if context and seq // batch + max_new_tokens > context:
        notes.append(f"{seq // batch + max_new_tokens} tokens exceed the model's {context}-token context")

    kernels = None
    if device == "cpu" and (quantization != "none" or attn_implementation == "sdpa"):
        from workbench import cpu_kernels as cpu_kernels_module

        kernels = cpu_kernels or cpu_kernels_module.detect()
        notes.extend(_cpu_kernel_notes(arch, kernels, quantization, attn_implementation,
                                       text + visual, dtype))

    extra, copies = traits.extra_inputs(geometry, dt)
    inputs = geometry.pixel_values * dt + seq * 8 * 3 + extra  # pixels in dt; ids, attention mask, token types
    llm = _LLMShape(batch, max(1, seq // batch), arch.text)
    common = {"weights": weights, "inputs": inputs}
    phases = {
        "load": {"weights": weights, "load_staging": _load_staging(arch, quantization, dt, device)},
        "vision": common | {"input_copies": copies}
        | _vision_phase(arch, geometry, attn_implementation, dt, vision_attention_scope, masked_sdpa,
                        _vision_quantization(arch, geometry, quantization, dt, device, kernels)),
        "prefill": common | {"input_copies": copies}
        | _prefill_phase(arch, geometry, llm, attn_implementation, quantization, dt, device, kernels,
                         era.prompt_logits_bytes),
        "generation": common | _generation_phase(arch, geometry, llm, max_new_tokens, dt),
    }
    order = {name: i for i, name in enumerate(COMPONENTS)}
    phases = {phase: {k: int(v) for k, v in sorted(parts.items(), key=lambda kv: order[kv[0]]) if v}
              for phase, parts in phases.items()}
    tokens = {"frames_used": geometry.frames_used, "visual_tokens": visual,
              "encoder_seq_len": geometry.encoder_tokens, "segment_len": geometry.segment_len,
              "n_segments": geometry.n_segments, "text_tokens": text, "input_tokens": seq, "llm_batch": batch,
              "context_limit": context,
              "resized_height": geometry.resized_height, "resized_width": geometry.resized_width}
    return Prediction(spec.model_id, arch.family, device, quantization, attn_implementation, dtype, frames, height,
                      width, max_pixels, max_new_tokens, vision_attention_scope, tokens, phases, notes,
                      kernels.as_dict() if kernels is not None else None, quantize_vision, transformers_era,
                      masked_sdpa, batch_windows)


def predict_config(config: "ProbeConfig", device: PredictDevice = "cuda", text_tokens: int | None = None,
                   **options: Any) -> Prediction:
    """The prediction for one probe configuration: the one place a ProbeConfig becomes `predict` arguments
    (the grid, the probe's stored prediction and the explorer all come here). `options` are predict-only
    settings (transformers_era, masked_sdpa, vision_attention_scope, cpu_kernels)."""
    return predict(config.model, source=config.source, quantization=config.quantization,
                   attn_implementation=config.attn_implementation, dtype=config.dtype, frames=config.frames,
                   height=config.height, width=config.width, max_pixels=config.max_pixels,
                   max_new_tokens=config.max_new_tokens, text_tokens=text_tokens,
                   double_quant=config.double_quant, device=device, quantize_vision=config.quantize_vision,
                   config_overrides=config.config_overrides or None, model_options=config.model_options or None,
                   batch_windows=config.batch_windows, **options)


@dataclass(frozen=True)
class _LLMShape:
    batch: int  # prompts run together (frames, for families that caption each frame)
    seq: int  # tokens per prompt
    text: TextArch

    @property
    def tokens(self) -> int:
        return self.batch * self.seq


def _load_staging(arch: Architecture, quantization: str, dt: int, device: str) -> int:
    """CUDA loaders materialize each weight in dt before bitsandbytes quantizes it."""
    if quantization == "none" or device != "cuda":
        return 0
    out_features, in_features = arch.largest_quantized
    return out_features * in_features * dt


def _vision_phase(arch: Architecture, g: VisualGeometry, attn: str, dt: int, scope: str,
                  masked_sdpa: str = "efficient", quantized: list[dict[str, int]] | None = None) -> dict[str, int]:
    v = arch.vision
    L, D = g.encoder_tokens, v.width
    head_dim = D // v.heads
    per_score = 2 * dt + 4 if v.softmax_fp32 else 2 * dt  # pre-softmax + (fp32 softmax) + probabilities
    hidden = 2 * L * D * dt  # the block's input and its norm
    if v.rotary_fp32:
        hidden += 2 * L * head_dim * 4  # cos and sin tables (fp32)
    if v.all_hidden_states:
        hidden += v.layers * L * D * dt
    candidates: list[dict[str, int]] = [{"vision_mlp": v.mlp_copies * L * v.mlp_hidden * dt}, *(quantized or [])]
    if v.rotary_fp32:
        candidates.append({"vision_rotary": (3 * dt + 24) * L * D})
    if scope == "clip" and not v.batched_frames:  # transformers 4.x Qwen: one L x L over all frames
        if attn == "eager":
            candidates.append({"vision_attention": 5 * dt * L * D + v.heads * L * L * per_score + L * L * dt})
        elif attn == "sdpa" and masked_sdpa == "math":  # a dense mask can send sdpa to the math kernel
            candidates.append({"vision_attention": 5 * dt * L * D + v.heads * L * L * 2 * dt + L * L * (1 + dt)})
        elif attn == "sdpa":
            candidates.append({"vision_attention": 5 * dt * L * D + L * L * (1 + dt)})  # bool mask + float copy
    elif attn == "eager":
        in_flight = g.n_segments if v.batched_frames else 1
        scores = in_flight * v.heads * g.segment_len ** 2 * per_score
        done = 0 if v.batched_frames else (g.n_segments - 1) * g.segment_len * D * dt  # earlier segments' outputs
        candidates.append({"vision_attention": 5 * dt * L * D + scores + done})
    return {"vision_activations": hidden} | max(candidates, key=lambda c: sum(c.values()))


def _kv_bytes(t: TextArch, tokens: int, dt: int) -> int:
    return t.layers * 2 * t.kv_heads * t.head_dim * tokens * dt


def _prefill_phase(arch: Architecture, g: VisualGeometry, llm: _LLMShape, attn: str, quantization: str, dt: int,
                   device: str, kernels: CpuKernels | None, prompt_logits_bytes: int = -1) -> dict[str, int]:
    t, v = arch.text, arch.vision
    B, S, H, I = llm.batch, llm.seq, t.hidden, t.intermediate
    N = llm.tokens
    retained = (g.encoder_tokens * v.width + 2 * g.prompt_tokens * H) * dt
    activations = 3 * N * H * dt + 2 * N * t.head_dim * dt  # embeddings, hidden, norm; rotary tables
    mask = B * S * S * dt if attn == "eager" else 0
    # decoder layers keep eager attention's probabilities in `_` until they return, i.e. through the MLP
    held = mask + (B * t.heads * S * S * dt if attn == "eager" else 0)
    # T5 runs an encoder over the prompt and keeps it per decoder layer as cross-attention keys and values.
    kv = _kv_bytes(t, N + B if t.encoder_decoder else N, dt)
    candidates: list[dict[str, int]] = [{"llm_mlp": t.mlp_copies * N * I * dt + N * H * dt, "llm_attention": held}]
    if attn == "eager":
        repeated = 2 * N * t.heads * t.head_dim * dt if t.kv_heads < t.heads else 0
        candidates.append({"llm_attention": B * t.heads * S * S * (2 * dt + 4) + mask + N * H * dt + repeated})
    candidates.append(_quantization_transient(arch, N, quantization, dt, device, kernels) | {"llm_attention": held})
    if prompt_logits_bytes >= 0:  # transformers 4.x: logits for every prompt position (and a float32 copy)
        candidates.append({"logits": N * t.vocab * (dt + prompt_logits_bytes)})
    return {"vision_outputs": retained, "llm_activations": activations, "kv_cache": kv} | \
        max(candidates, key=lambda c: sum(c.values()))


def _quantization_transient(arch: Architecture, N: int, quantization: str, dt: int, device: str,
                            kernels: CpuKernels | None) -> dict[str, int]:
    """bitsandbytes' own buffers at the MLP's up projection (its largest Linear), beside the live activations."""
    t = arch.text
    out_features, in_features = arch.largest_quantized
    n = out_features * in_features
    if quantization == "none" or n == 0:
        return {}
    if quantization == "8bit":
        if device == "cuda":
            return {"quantization": N * out_features * 4 + N * in_features * 3, "llm_mlp": 2 * N * t.intermediate * dt}
        return {"quantization": N * t.intermediate * 3, "llm_mlp": N * t.intermediate * dt}
    if device == "cuda":
        return {"quantization": n * dt, "llm_mlp": 2 * N * t.intermediate * dt}
    if kernels is not None and kernels.nf4_matmul == "dequantize":
        return {"llm_mlp": N * t.intermediate * dt}  # the dequantized weight lives inside the kernel
    return {"quantization": 7 * n, "llm_mlp": N * t.intermediate * dt}


def _vision_quantization(arch: Architecture, g: VisualGeometry, quantization: str, dt: int, device: str,
                         kernels: CpuKernels | None) -> list[dict[str, int]]:
    """With quantize_vision: the vision phase's moments where bitsandbytes' buffers are alive (candidates).

    In the MLP (L tokens, width D -> mlp_hidden): 8-bit's copies of the second Linear's input beside two
    MLP-width activations (CPU: fp16 + int8 copies, 3 bytes; CUDA adds the int32 accumulator); 4-bit's
    weight made usable (CPU with AVX512-BF16: the one-time repack, 7 bytes per weight; CUDA: dequantized to
    dt). And the largest vision Linear's own weight transient (Qwen's merger), where activations are small.
    The CPU terms were fitted on the mid-size Qwen2-VL (docs/memory.md); the CUDA ones follow bitsandbytes' code.
    """
    out_features, in_features = arch.largest_vision_quantized
    n = out_features * in_features
    if quantization == "none" or n == 0:
        return []
    v = arch.vision
    L, D, mh = g.encoder_tokens, v.width, v.mlp_hidden
    if quantization == "8bit":
        buffers = L * mh * 4 + L * D * 3 if device == "cuda" else L * mh * 3
        return [{"vision_mlp": 2 * L * mh * dt, "quantization": buffers}]
    if device == "cuda":
        return [{"vision_mlp": 2 * L * mh * dt, "quantization": D * mh * dt}, {"quantization": n * dt}]
    if kernels is not None and kernels.nf4_matmul == "dequantize":
        return []  # dequantized inside the kernel: invisible to the CPU tracker
    return [{"vision_mlp": v.mlp_copies * L * mh * dt, "quantization": 7 * D * mh}, {"quantization": 7 * n}]


def _cpu_kernel_notes(arch: Architecture, kernels: CpuKernels, quantization: str, attn: str, tokens: int,
                      dtype: str) -> list[str]:
    """The CPU path assumed and the kernel-internal buffers the CPU tracker cannot see (so not counted)."""
    from workbench.units import format_bytes

    notes = []
    if attn == "sdpa" and kernels.sdpa_backend != "FLASH_ATTENTION":
        notes.append(f"torch's CPU sdpa runs its {kernels.sdpa_backend} kernel here, not the fused one the "
                     "prediction assumes: expect sequence-squared scores as with eager")
    if quantization == "none":
        return notes
    out_features, in_features = arch.largest_quantized
    n = out_features * in_features
    if quantization == "8bit":
        inside = (4 * n + 4 * tokens * in_features + 8 * tokens * out_features if kernels.int8_matmul == "float32"
                  else 4 * tokens * out_features)  # float32 copies and result, or the int32 accumulator
    else:
        inside = n * DTYPE_BYTES[dtype] if kernels.nf4_matmul == "dequantize" else 0
    notes.append(kernels.describe())
    if inside:
        notes.append(f"not counted: about {format_bytes(inside)} allocated inside bitsandbytes' kernel at the "
                     "largest Linear, which the CPU live-tensor tracker cannot see")
    return notes


def _generation_phase(arch: Architecture, g: VisualGeometry, llm: _LLMShape, new_tokens: int, dt: int
                      ) -> dict[str, int]:
    t, v = arch.text, arch.vision
    B = llm.batch
    total = B * (llm.seq + new_tokens)
    kv = _kv_bytes(t, B * (llm.seq + 2 * new_tokens) if t.encoder_decoder else total, dt)
    step = 2 * t.kv_heads * t.head_dim * total * dt  # the cache update copies one layer's keys and values
    return {"vision_outputs": (g.encoder_tokens * v.width + g.prompt_tokens * t.hidden) * dt,
            "llm_activations": step, "kv_cache": kv, "logits": B * t.vocab * (dt + 8)}
