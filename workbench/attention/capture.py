"""Capture text-to-visual attention while a model captions, keeping only what the figures need.

How: for the duration of one `describe()`, the language model's attention modules (and, for BLIP-2 /
InstructBLIP, the Q-Former's cross-attention) are pointed at an attention function registered under a
name of our own (`workbench_capture_<implementation>`). It runs the model's own implementation for the
output, then, for the captured layers only, keeps the attention of the query that predicts the next token
(the last position of each forward pass) on the visual tokens' key positions: per layer, per head or
head-averaged, in float16 on the CPU. Nothing of size sequence x sequence is kept.

Two modes:
- `recompute` (default, every implementation): the output comes from the loaded implementation untouched
  (sdpa, eager or flash attention), and the kept row is recomputed as softmax(q_last . K^T * scale + mask):
  one query row per head, so it costs heads x keys floats per layer and step. The caption cannot change.
- `eager`: the captured layers run transformers' own eager attention (and keep its probabilities) while the
  other layers keep the loaded implementation. This materializes heads x queries x keys scores in those
  layers at prefill, which is the memory cost eager capture has; `CaptureResult.eager_transient_bytes`
  reports it. Under sdpa the caption may differ in the last bits of the logits; compare with `recompute`.

Which generated token a row belongs to: forward pass s (0 = prefill) predicts generated token s, so its last
query row is the attention "when writing" that token.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from workbench.models.base import CaptionRecord, GenerationSettings, LoadedModel

Heads = Literal["mean", "all"]
CaptureMode = Literal["recompute", "eager"]
IMPLEMENTATION_PREFIX = "workbench_capture_"


@dataclass(frozen=True)
class CaptureSettings:
    """Which layers to keep (None: all, negative indexes count from the end), heads averaged or all."""

    layers: tuple[int, ...] | None = None
    heads: Heads = "mean"
    mode: CaptureMode = "recompute"

    def __post_init__(self) -> None:
        if self.heads not in ("mean", "all"):
            raise ValueError(f"CaptureSettings.heads={self.heads!r} is not one of ['mean', 'all']")
        if self.mode not in ("recompute", "eager"):
            raise ValueError(f"CaptureSettings.mode={self.mode!r} is not one of ['recompute', 'eager']")
        if self.layers is not None and not all(isinstance(i, int) for i in self.layers):
            raise TypeError(f"CaptureSettings.layers must be integers, got {self.layers!r}")


@dataclass
class Segment:
    """One generate() call: its prompt ids (rows, S), other small inputs, and the generated ids (rows, N)."""

    input_ids: "torch.Tensor"
    inputs: dict[str, Any]
    positions: "torch.Tensor"  # (rows, V): where the visual tokens sit in each row's prompt
    generated: "torch.Tensor | None" = None
    # per captured layer: list over steps of (rows, heads', V) float16: the last query's attention on them
    rows: dict[int, list["torch.Tensor"]] = field(default_factory=dict)
    # Q-Former cross-attention, per call: (frames, queries, encoder tokens) head-averaged float32
    qformer: list["torch.Tensor"] = field(default_factory=list)


@dataclass
class CaptureResult:
    """What one captured caption gives the aggregates and figures.

    attention: (words, layers, heads', visual tokens) float16; heads' is 1 when heads were averaged.
    words: one row per generated token (word, segment, row, step, token_id, text).
    """

    caption: "CaptionRecord"
    attention: np.ndarray
    words: "pd.DataFrame"
    layers: list[int]
    heads: Heads
    mode: CaptureMode
    segments: list[Segment]
    visual_positions: list[np.ndarray]  # per (segment, row) unit, in input-id positions
    kept_bytes: int
    eager_transient_bytes: int
    seconds: float

    @property
    def n_visual(self) -> int:
        return int(self.attention.shape[-1])


def _llm_attention_modules(model: "torch.nn.Module") -> list["torch.nn.Module"]:
    """The language model's self-attention modules, in layer order."""
    found = []
    for name, module in model.named_modules():
        children = dict(module.named_children())
        if (hasattr(module, "layer_idx") and "q_proj" in children and "k_proj" in children
                and ("language_model" in name or "text_model" in name)):
            found.append(module)
    if not found:
        raise ValueError(f"{type(model).__name__}: no language-model attention modules found to capture")
    return sorted(found, key=lambda m: m.layer_idx)


def _qformer_cross_modules(model: "torch.nn.Module") -> list["torch.nn.Module"]:
    return [m for name, m in model.named_modules() if name.startswith("qformer") and name.endswith("crossattention.attention")]


def _repeat_kv(key: "torch.Tensor", n_heads: int) -> "torch.Tensor":
    groups = n_heads // key.shape[1]
    return key if groups == 1 else key.repeat_interleave(groups, dim=1)


def _additive_mask(mask: "torch.Tensor | None", q_len: int, k_len: int, dtype: "torch.dtype",
                   device: Any) -> "torch.Tensor | None":
    """Any mask transformers hands an attention function -> eager's additive float mask (or None)."""
    import torch

    if mask is not None and mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill(~mask, torch.finfo(dtype).min)
    if mask is not None:
        return mask
    if q_len == 1:
        return None
    # sdpa's "is_causal" shortcut: no mask tensor was built; eager needs the causal one explicitly
    offset = k_len - q_len
    allowed = torch.arange(k_len, device=device)[None, :] <= torch.arange(q_len, device=device)[:, None] + offset
    return torch.zeros((1, 1, q_len, k_len), dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)


def _last_row_probs(module: Any, query: "torch.Tensor", key: "torch.Tensor", mask: "torch.Tensor | None",
                    scaling: float) -> "torch.Tensor":
    """softmax(q_last . K^T * scaling + mask_last) in float32: (batch, heads, keys)."""
    import torch

    q = query[:, :, -1:, :].float()
    k = _repeat_kv(key, query.shape[1]).float()
    scores = torch.matmul(q, k.transpose(-1, -2)) * scaling  # (B, H, 1, K)
    if mask is not None:
        last = mask[..., -1:, : k.shape[-2]]
        if last.dtype == torch.bool:
            scores = scores.masked_fill(~last, float("-inf"))
        else:
            scores = scores + last.float()
    window = getattr(module, "sliding_window", None)
    if window:  # keys outside the window get no attention
        scores[..., : max(0, k.shape[-2] - int(window))] = float("-inf")
    return torch.softmax(scores, dim=-1)[:, :, 0, :]


class AttentionCapture:
    """Context manager: while active, `loaded.describe(...)` records text-to-visual attention."""

    def __init__(self, loaded: "LoadedModel", settings: CaptureSettings | None = None) -> None:
        self.loaded = loaded
        self.visual_ids = sorted(loaded.adapter.visual_token_ids(loaded))
        self.settings = settings or CaptureSettings()
        self.segments: list[Segment] = []
        self.eager_transient_bytes = 0
        model = loaded.model
        text_config = getattr(model.config, "text_config", None)
        if text_config is not None and getattr(text_config, "is_encoder_decoder", False):
            raise ValueError(
                f"{loaded.spec.model_id}: attention capture needs a decoder-only language model; this one "
                f"(encoder-decoder) reads the visual tokens through cross-attention. Use an OPT-based BLIP-2."
            )
        self.attention_modules = _llm_attention_modules(model)
        n_layers = len(self.attention_modules)
        wanted = range(n_layers) if self.settings.layers is None else self.settings.layers
        layers = []
        for index in wanted:
            if not -n_layers <= index < n_layers:
                raise ValueError(f"layer {index} does not exist: {loaded.spec.model_id} has {n_layers} layers")
            layers.append(index % n_layers)
        self.layers = sorted(set(layers))
        self.captured = {id(self.attention_modules[i]): i for i in self.layers}
        self.qformer_list = _qformer_cross_modules(model)
        self.qformer_modules = {id(m) for m in self.qformer_list}
        self._restore: list[Any] = []

    # ---- installation ------------------------------------------------------------------------------
    def __enter__(self) -> "AttentionCapture":
        import torch
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        configs = {id(m.config): m.config for m in [*self.attention_modules, *self.qformer_list]}
        model = self.loaded.model
        for config in configs.values():
            original = config._attn_implementation
            if original.startswith(IMPLEMENTATION_PREFIX):
                raise RuntimeError("attention capture is already active on this model")
            name = IMPLEMENTATION_PREFIX + original
            ALL_ATTENTION_FUNCTIONS.register(name, self._attention_function(original))
            if original in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping:
                ALL_MASK_ATTENTION_FUNCTIONS.register(name, ALL_MASK_ATTENTION_FUNCTIONS[original])
            config._attn_implementation_internal = name  # not the setter: it would recurse into sub-configs
            self._restore.append(lambda config=config, original=original: setattr(
                config, "_attn_implementation_internal", original))

        original_generate = model.generate

        def generate(*args: Any, **kwargs: Any) -> Any:
            input_ids = kwargs.get("input_ids", args[0] if args else None)
            is_visual = torch.isin(input_ids, torch.tensor(self.visual_ids, device=input_ids.device))
            counts = is_visual.sum(dim=1)
            if bool((counts != counts[0]).any()):
                raise ValueError(f"rows of one batch hold different numbers of visual tokens: {counts.tolist()}")
            positions = torch.stack([torch.nonzero(row).flatten() for row in is_visual])
            small = {k: v.detach().cpu() for k, v in kwargs.items()
                     if hasattr(v, "detach") and not k.startswith("pixel_values") and v.numel() < 1_000_000}
            small.update({f"{k}_shape": tuple(v.shape) for k, v in kwargs.items() if k.startswith("pixel_values")})
            segment = Segment(input_ids=input_ids.detach().cpu(), inputs=small, positions=positions)
            self.segments.append(segment)
            output = original_generate(*args, **kwargs)
            sequences = output.sequences if hasattr(output, "sequences") else output
            segment.generated = sequences.detach().cpu()
            return output

        model.generate = generate
        self._restore.append(lambda: delattr(model, "generate"))
        return self

    def __exit__(self, *exc: Any) -> None:
        for undo in reversed(self._restore):
            undo()
        self._restore.clear()

    def _attention_function(self, original: str) -> Any:
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        def capture_attention(module: Any, query: "torch.Tensor", key: "torch.Tensor", value: "torch.Tensor",
                              attention_mask: "torch.Tensor | None", **kwargs: Any) -> Any:
            own_eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
            implementation = own_eager if original == "eager" else ALL_ATTENTION_FUNCTIONS[original]
            layer = self.captured.get(id(module))
            scaling = kwargs.get("scaling")
            if scaling is None:
                scaling = getattr(module, "scaling", query.shape[-1] ** -0.5)
            if id(module) in self.qformer_modules:
                output = implementation(module, query, key, value, attention_mask, **kwargs)
                self._keep_qformer(query, key, scaling)
                return output
            if layer is None:
                return implementation(module, query, key, value, attention_mask, **kwargs)
            if self.settings.mode == "eager" and own_eager is not None:
                mask = _additive_mask(attention_mask, query.shape[-2], key.shape[-2], query.dtype, query.device)
                output, weights = own_eager(module, query, key, value, mask, **kwargs)
                scores = query.shape[0] * query.shape[1] * query.shape[-2] * key.shape[-2]
                # scores + fp32 softmax + probabilities in the compute dtype, alive together
                self.eager_transient_bytes = max(self.eager_transient_bytes,
                                                 scores * (2 * query.element_size() + 4))
                self._keep_row(layer, weights[:, :, -1, :].float())
                return output, weights
            output = implementation(module, query, key, value, attention_mask, **kwargs)
            self._keep_row(layer, _last_row_probs(module, query, key, attention_mask, scaling))
            return output

        return capture_attention

    def _keep_row(self, layer: int, probs: "torch.Tensor") -> None:
        """probs: (batch, heads, keys) of the last query -> (batch, heads', V) on the visual keys only,
        head-averaged if asked, float16 on the CPU."""
        import torch

        if not self.segments:
            return  # a forward outside generate(): nothing to attribute
        positions = self.segments[-1].positions.to(probs.device)
        index = positions[:, None, :].expand(probs.shape[0], probs.shape[1], positions.shape[1])
        probs = torch.gather(probs, 2, index)
        if self.settings.heads == "mean":
            probs = probs.mean(dim=1, keepdim=True)
        row = probs.to(device="cpu", dtype=torch.float16)
        self.segments[-1].rows.setdefault(layer, []).append(row)

    def _keep_qformer(self, query: "torch.Tensor", key: "torch.Tensor", scaling: float) -> None:
        import torch

        if not self.segments:
            return
        scores = torch.matmul(query.float(), _repeat_kv(key, query.shape[1]).float().transpose(-1, -2)) * scaling
        self.segments[-1].qformer.append(torch.softmax(scores, dim=-1).mean(dim=1).cpu())


def capture(loaded: "LoadedModel", frames: np.ndarray, timestamps_s: np.ndarray | None = None,
            prompt: str | None = None, generation: "GenerationSettings | None" = None,
            settings: CaptureSettings | None = None, **describe_options: Any) -> CaptureResult:
    """Caption frames (T,H,W,3 uint8) with `loaded.describe` while capturing; see the module docstring."""
    import pandas as pd

    settings = settings or CaptureSettings()
    start = time.perf_counter()
    with AttentionCapture(loaded, settings) as active:
        record = loaded.adapter.describe(loaded, frames, timestamps_s, prompt=prompt, generation=generation,
                                         **describe_options)
    seconds = time.perf_counter() - start
    if record.status == "error":
        raise RuntimeError(f"{loaded.spec.model_id}: captioning failed while capturing: {record.error}")
    tokenizer = getattr(loaded.processor, "tokenizer", loaded.processor)
    stop_ids = _stop_ids(loaded)

    units = [(s, r) for s, seg in enumerate(active.segments) for r in range(seg.input_ids.shape[0])]
    sizes = [active.segments[s].positions.shape[1] for s, _ in units]
    offsets = np.cumsum([0, *sizes])
    n_visual = int(offsets[-1])
    word_rows, blocks = [], []
    for u, (s, r) in enumerate(units):
        segment = active.segments[s]
        generated = segment.generated[r, segment.input_ids.shape[1]:]
        n_steps = len(segment.rows[active.layers[0]]) if segment.rows else 0
        for step in range(min(n_steps, len(generated))):
            token_id = int(generated[step])
            if token_id in stop_ids:
                break
            stack = np.stack([segment.rows[layer][step][r].float().numpy() for layer in active.layers])
            block = np.zeros((*stack.shape[:2], n_visual), dtype=np.float16)  # (L, H', V)
            block[..., offsets[u]:offsets[u + 1]] = stack
            blocks.append(block)
            word_rows.append({"word": len(word_rows), "segment": s, "row": r, "step": step, "token_id": token_id,
                              "text": tokenizer.decode([token_id])})
    n_heads = 1 if settings.heads == "mean" else active.attention_modules[0].config.num_attention_heads
    attention = (np.stack(blocks) if blocks
                 else np.zeros((0, len(active.layers), n_heads, n_visual), dtype=np.float16))
    kept = sum(t.numel() * t.element_size() for seg in active.segments for rows in seg.rows.values() for t in rows)
    return CaptureResult(
        caption=record, attention=attention, words=pd.DataFrame(word_rows, columns=[
            "word", "segment", "row", "step", "token_id", "text"]),
        layers=active.layers, heads=settings.heads, mode=settings.mode, segments=active.segments,
        visual_positions=[active.segments[s].positions[r].cpu().numpy() for s, r in units], kept_bytes=int(kept),
        eager_transient_bytes=int(active.eager_transient_bytes), seconds=seconds,
    )


def _stop_ids(loaded: "LoadedModel") -> set[int]:
    config = loaded.model.generation_config
    ids: set[int] = set()
    for value in (config.eos_token_id, config.pad_token_id):
        if value is None:
            continue
        ids.update(value if isinstance(value, (list, tuple)) else [value])
    return ids
