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


def spec_weight_counts(model_id: str) -> WeightCounts:
    """Counts for a registry model's real architecture (embedded config)."""
    from workbench.models import get

    adapter, spec = get(model_id)
    return count_weights(meta_model(adapter, adapter.real_config(spec)), adapter.skip_modules)
