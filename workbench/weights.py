"""Weight memory of a model by quantization, from its architecture alone (meta device, no weights).

bitsandbytes replaces each nn.Linear that the skip list does not match; the rest stays in the compute
dtype. Per quantized Linear layer with `w` weight elements and `r` output rows:
  8-bit:  w int8 bytes + r fp32 row scales (SCB)
  4-bit:  w/2 packed bytes + one fp32 absmax per 64-element block + a 16-entry fp32 code table
  4-bit with double quantization: the absmax values are themselves 8-bit (one byte per block) with
          one fp32 absmax per 256 blocks, a 256-entry fp32 code table and an fp32 offset.
These match what `tensor_bytes` measures on loaded tiny twins byte for byte (tests/test_weights.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
BLOCKSIZE_4BIT = 64
DOUBLE_QUANT_BLOCKS = 256


@dataclass(frozen=True)
class WeightCounts:
    total_params: int  # every parameter, tied ones once
    quantized_params: int  # weight elements of Linear layers bitsandbytes would convert
    quantized_rows: int  # their output rows (8-bit keeps one fp32 scale per row)
    quantized_layers: int
    quantized_blocks: int  # 4-bit absmax blocks, rounded up per layer
    nested_blocks: int  # double-quantization blocks of those absmax values, rounded up per layer
    buffer_bytes: int  # registered buffers (rotary tables and the like), kept as they are

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def count_weights(model: "torch.nn.Module", skip_modules: list[str] | tuple[str, ...] = ()) -> WeightCounts:
    """Count what quantization would convert, using transformers' own skip-list matching."""
    import torch
    from transformers.quantizers.quantizers_utils import should_convert_module

    patterns = list(skip_modules) + list(getattr(model, "_keep_in_fp32_modules", None) or [])
    total = sum(p.numel() for p in model.parameters())
    q_params = q_rows = q_layers = q_blocks = q_nested = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and should_convert_module(name, patterns):
            n = module.weight.numel()
            q_params += n
            q_rows += module.weight.shape[0]
            q_layers += 1
            blocks = -(-n // BLOCKSIZE_4BIT)
            q_blocks += blocks
            q_nested += -(-blocks // DOUBLE_QUANT_BLOCKS)
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return WeightCounts(total, q_params, q_rows, q_layers, q_blocks, q_nested, buffers)


def weight_bytes(counts: WeightCounts, quantization: str = "none", dtype: str = "bfloat16",
                 double_quant: bool = False) -> int:
    """Bytes of weights once loaded.

    >>> c = WeightCounts(total_params=1000, quantized_params=640, quantized_rows=20, quantized_layers=2,
    ...                  quantized_blocks=10, nested_blocks=2, buffer_bytes=0)
    >>> weight_bytes(c), weight_bytes(c, "8bit"), weight_bytes(c, "4bit-nf4")
    (2000, 1440, 1208)
    """
    size = DTYPE_BYTES[dtype]
    rest = (counts.total_params - counts.quantized_params) * size + counts.buffer_bytes
    if quantization == "none":
        return counts.total_params * size + counts.buffer_bytes
    if quantization == "8bit":
        return rest + counts.quantized_params + counts.quantized_rows * 4
    if quantization.startswith("4bit"):
        packed = (counts.quantized_params + 1) // 2 if counts.quantized_layers else 0
        if double_quant:  # uint8 absmax per block, fp32 per nested block, both code tables, an offset
            constants = (counts.quantized_blocks + counts.nested_blocks * 4
                         + counts.quantized_layers * (16 * 4 + 256 * 4 + 4))
        else:
            constants = counts.quantized_blocks * 4 + counts.quantized_layers * 16 * 4
        return rest + packed + constants
    raise ValueError(f"unknown quantization {quantization!r}; use none, 8bit, 4bit-nf4 or 4bit-fp4")


def meta_model(adapter: Any, config: Any, dtype: str = "bfloat16") -> "torch.nn.Module":
    """The architecture on the meta device: shapes and counts, no memory."""
    import torch

    with torch.device("meta"):
        return adapter.model_cls()._from_config(config, dtype=getattr(torch, dtype))


def spec_weight_counts(model_id: str, quantize_vision: bool = False) -> WeightCounts:
    """Counts for a registry model's real architecture (embedded config), under either 16-bit policy."""
    from workbench.models import get

    adapter, spec = get(model_id)
    return count_weights(meta_model(adapter, adapter.real_config(spec)), adapter.kept_modules(quantize_vision))


# ---- which weights a run used: enough to load the very same ones again ------------------------------------

def weights_revision(model: str, source: str, known_inputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What names the exact weights of `model` loaded from `source`, for a run's manifest:
    hub id: the commit of the snapshot in the local HF cache (`revision`), or None if not cached;
    local folder: the sha256 of its files (taken from the run's hashed inputs when already there);
    tiny: the twin's recipe (family code) and the sha256 of the fabricated folder;
    random: the recipe (seeded random Linear weights over the real architecture) and a hash of that config.
    Never raises: a problem is recorded as `error`."""
    import hashlib
    import json
    from pathlib import Path

    entry: dict[str, Any] = {"model": model, "source": source}
    try:
        from workbench.models import get

        adapter, spec = get(model)
        entry["model_id"] = spec.model_id
        if source == "tiny":
            folder = adapter.tiny_dir()
            entry.update(kind="tiny twin", recipe=f"{type(adapter).__module__}.tiny_config + seeded weights "
                                                  f"(workbench.models.base ensure_tiny)")
            if folder.exists():
                from workbench.manifest import describe_input

                entry["sha256"] = describe_input(folder)["sha256"]
        elif source == "random":
            config = json.dumps(spec.config, sort_keys=True, default=str).encode()
            entry.update(kind="random", recipe="torch.manual_seed(0); random Linear weights over the real "
                                               "architecture (workbench.models.base random_linear_state_dict)",
                         config_sha256=hashlib.sha256(config).hexdigest())
        elif source == "trained":  # a trained twin: its committed folder (the spec's hub_id), hashed
            from workbench import paths
            from workbench.manifest import describe_input

            folder = paths.REPO_ROOT / str(spec.hub_id)
            entry.update(kind="trained twin", folder=str(spec.hub_id))
            if folder.exists():
                entry["sha256"] = describe_input(folder)["sha256"]
        elif Path(source).exists():
            known = {i["path"]: i for i in known_inputs or []}
            found = known.get(str(Path(source).resolve()))
            if found is None:
                from workbench.manifest import describe_input

                found = describe_input(Path(source).resolve())
            entry.update(kind="local folder", path=str(Path(source).resolve()), sha256=found["sha256"])
        else:
            entry.update(kind="hub", hub_id=source, revision=hub_commit(source))
    except Exception as err:  # the manifest records what it could not find out
        entry["error"] = f"{type(err).__name__}: {err}"
    return entry


def hub_commit(repo_id: str) -> str | None:
    """The commit hash the local HF cache resolves `repo_id` (revision main) to; None if not cached."""
    from pathlib import Path

    try:
        from huggingface_hub import constants
    except ImportError:
        return None
    ref = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs" / "main"
    return ref.read_text().strip() if ref.exists() else None
