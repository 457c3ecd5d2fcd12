"""Several windows per `generate` call: each window's inputs are built exactly as for one window, padded on
the left to a common length, stacked, generated together and split back into one caption per window.

Under greedy decoding the captions equal those of one call per window up to the arithmetic of padded
attention (the padded positions are masked; 32-bit math on CPU gives identical tokens on the twins, see
tests/test_batching.py). A family whose `describe` is its own (BLIP-2 captions frame by frame, MiniGPT4-Video
interleaves per-frame subtitles) cannot batch windows this way: `batch_support` says so and callers run one
window per call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.models.base import (CLIP_DURATION_S, CaptionRecord, FamilyAdapter, GenerationSettings,
                                   free_memory, resample_frames, seed_generation, vocabulary_limit)

if TYPE_CHECKING:
    import numpy as np
    import torch

    from workbench.models.base import LoadedModel

# Inputs whose last dimension runs along the text: padded on the left with these values.
TEXT_KEYS_PAD = {"input_ids": None, "attention_mask": 0}


@dataclass(frozen=True)
class Window:
    """One window to caption: frames (T,H,W,3 uint8), their times, and the length of the video they came from."""

    frames: "np.ndarray"
    timestamps_s: "np.ndarray | None" = None
    duration_s: float | None = None


def batch_support(loaded: "LoadedModel") -> str | None:
    """None when `loaded` can caption several windows per call, else the reason it cannot."""
    adapter = loaded.adapter
    if type(adapter).describe is not FamilyAdapter.describe:
        return (f"{loaded.spec.model_id} captions through its own describe() (family {adapter.family}), "
                f"which takes one window per call")
    if getattr(loaded.processor, "tokenizer", None) is None:
        return f"{loaded.spec.model_id} has no tokenizer to pad a batch with"
    return None


def pad_id(loaded: "LoadedModel") -> int:
    """The id used to pad input_ids: the tokenizer's pad token, else its end-of-sequence token."""
    tokenizer = loaded.processor.tokenizer
    for value in (tokenizer.pad_token_id, getattr(loaded.model.generation_config, "pad_token_id", None),
                  tokenizer.eos_token_id):
        if isinstance(value, int):
            return value
        if isinstance(value, (list, tuple)) and value:
            return int(value[0])
    raise ValueError(f"{loaded.spec.model_id}: the tokenizer has neither a pad nor an end-of-sequence token")


def eos_ids(loaded: "LoadedModel") -> set[int]:
    value = getattr(loaded.model.generation_config, "eos_token_id", None)
    if value is None:
        value = loaded.processor.tokenizer.eos_token_id
    if value is None:
        return set()
    return {int(v) for v in (value if isinstance(value, (list, tuple)) else [value])}


def _text_aligned(key: str, value: "torch.Tensor", length: int) -> bool:
    """Whether an input runs along one window's text (padded on the left rather than stacked)."""
    return key in TEXT_KEYS_PAD or (value.dim() == 2 and value.shape[0] == 1 and value.shape[-1] == length)


def collate(items: list[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """Stack the inputs of single windows into one batch.

    Text-aligned tensors (shape (1, L): input_ids, attention_mask, and any other (1, L) tensor of the same L
    such as token type ids) are padded on the left; every other tensor is concatenated along its first
    dimension (a per-window batch axis, or the flattened patch axis of Qwen-VL's pixel values, whose grid
    tensor then lists one row per window). Non-tensor entries must agree across windows.
    """
    import torch

    if not items:
        raise ValueError("collate needs at least one window's inputs")
    keys = list(items[0])
    for i, item in enumerate(items[1:], 1):
        if list(item) != keys:
            raise ValueError(f"window {i} has inputs {sorted(item)}, window 0 has {sorted(keys)}")
    lengths = [int(item["input_ids"].shape[-1]) for item in items]
    longest = max(lengths)
    out: dict[str, Any] = {}
    for key in keys:
        values = [item[key] for item in items]
        first = values[0]
        if not isinstance(first, torch.Tensor):
            if any(v != first for v in values[1:]):
                raise ValueError(f"input {key!r} differs between windows and is not a tensor: cannot batch")
            out[key] = first
            continue
        if all(_text_aligned(key, v, n) for v, n in zip(values, lengths)):
            fill = pad_token_id if key == "input_ids" else TEXT_KEYS_PAD.get(key, 0)
            padded = []
            for v, n in zip(values, lengths):
                pad = torch.full((1, longest - n), fill, dtype=v.dtype, device=v.device)
                padded.append(torch.cat([pad, v], dim=-1))
            out[key] = torch.cat(padded, dim=0)
        else:
            out[key] = torch.cat(values, dim=0)
    return out


def shape_groups(items: list[dict[str, Any]]) -> list[list[int]]:
    """Indices of windows whose non-text tensors can be stacked together (same shapes past the first axis),
    in order of first appearance: windows of different frame counts go to different calls."""
    import torch

    groups: dict[tuple, list[int]] = {}
    for i, item in enumerate(items):
        length = int(item["input_ids"].shape[-1])
        key = tuple((k, tuple(v.shape[1:])) for k, v in item.items()
                    if isinstance(v, torch.Tensor) and not _text_aligned(k, v, length))
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def generated_length(row: "torch.Tensor", stop: set[int]) -> int:
    """Tokens a single-window call would have returned: up to and including the first stop token."""
    for i, token in enumerate(row.tolist()):
        if token in stop:
            return i + 1
    return int(row.numel())


def describe_batch(loaded: "LoadedModel", windows: list[Window], prompt: str | None = None,
                   generation: GenerationSettings | None = None) -> list[CaptionRecord]:
    """Caption `windows` with as few generate calls as their shapes allow (one when all have the same frame
    count and size, as a timeline's windows do); one record per window, in order.

    Each record's latency is its share of its call (call seconds / windows in it) and its notes say the
    batch size. Errors (out of memory included) become error records for every window of the call, never a
    crash. A model that cannot batch (see `batch_support`) is refused with a ValueError naming the reason.
    """
    reason = batch_support(loaded)
    if reason is not None:
        raise ValueError(reason)
    generation = generation or GenerationSettings()
    prompt = prompt or loaded.spec.prompt
    records: list[CaptionRecord | None] = [None] * len(windows)
    start = time.perf_counter()
    prepared: list[dict[str, Any]] = []
    notes: list[list[str]] = []
    try:
        for window in windows:
            frames, times, window_notes = window.frames, window.timestamps_s, []
            if loaded.spec.fixed_frames is not None:
                frames, times, window_notes = resample_frames(frames, times, loaded.spec.fixed_frames,
                                                              loaded.settings.frame_policy, loaded.spec.model_id)
            token = CLIP_DURATION_S.set(window.duration_s)
            try:
                prepared.append(dict(loaded.adapter.build_inputs(loaded, frames, times, prompt)))
            finally:
                CLIP_DURATION_S.reset(token)
            notes.append(window_notes)
    except Exception as err:  # e.g. the processor refuses a frame count: every window gets the error
        share = (time.perf_counter() - start) / max(len(windows), 1)
        return [CaptionRecord("", 0, share, "error", f"{type(err).__name__}: {err}", int(w.frames.shape[0]))
                for w in windows]
    prepare_share = (time.perf_counter() - start) / len(windows)
    for group in shape_groups(prepared):
        for i, record in zip(group, _generate(loaded, [prepared[i] for i in group], generation)):
            size = len(group)
            record.latency_s += prepare_share
            record.n_frames = int(windows[i].frames.shape[0])
            record.notes = notes[i] + ([f"captioned in a batch of {size} windows"] if size > 1 else [])
            records[i] = record
    return [r for r in records if r is not None]


def _generate(loaded: "LoadedModel", prepared: list[dict[str, Any]],
              generation: GenerationSettings) -> list[CaptionRecord]:
    """One generate call over windows whose inputs stack; latency is each window's share of the call."""
    import torch

    size = len(prepared)
    n_inputs = [int(p["input_ids"].shape[-1]) for p in prepared]
    start = time.perf_counter()
    try:
        inputs = loaded.adapter.move_inputs(collate(prepared, pad_id(loaded)), loaded)
        width = int(inputs["input_ids"].shape[-1])
        seed_generation(generation.seed, loaded.report.device)
        kwargs = generation.generate_kwargs()
        kwargs.setdefault("pad_token_id", pad_id(loaded))
        if loaded.settings.source == "random":
            kwargs["logits_processor"] = vocabulary_limit(len(loaded.processor.tokenizer))
        with torch.inference_mode():
            output = loaded.model.generate(**inputs, **kwargs)
    except Exception as err:  # a failed call is error rows, not a crash
        if isinstance(err, torch.OutOfMemoryError):
            free_memory()
            message = f"out of memory in a batch of {size} windows: {err}"
        else:
            message = f"{type(err).__name__}: {err}"
        share = (time.perf_counter() - start) / size
        return [CaptionRecord("", 0, share, "error", message, 0, n) for n in n_inputs]
    share = (time.perf_counter() - start) / size
    stop = eos_ids(loaded)
    records = []
    for i, n_input in enumerate(n_inputs):
        row = output[i, width:]
        n = generated_length(row, stop)
        text = loaded.adapter.decode(loaded, row[:n]).strip()
        records.append(CaptionRecord(text, n, share, "ok" if text else "empty", None, 0, n_input))
    return records
