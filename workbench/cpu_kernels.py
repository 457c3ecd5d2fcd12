"""Which CPU kernels bitsandbytes and torch will run here, asked the way they ask it.

bitsandbytes picks its CPU path from the machine (bitsandbytes 0.50, `backends/cpu/ops.py` and
`nn/modules.py`), and the paths differ in the memory they allocate:
- 8-bit matmul: `torch._int_mm` when torch's CPU capability is "AVX512"; otherwise the default kernel, which
  multiplies float32 copies of the int8 input and weight.
- 4-bit matmul: when the native library reports AVX512-BF16 (`has_avx512bf16()`), each weight is repacked once
  into the fused kernel's layout on its first call (several bytes per weight for a moment); otherwise every
  matmul dequantizes the weight to the compute dtype.

torch's CPU scaled-dot-product attention picks its kernel from the inputs, not the instruction set (the fused
flash kernel for bf16/fp32 with or without a mask, checked with `torch._fused_sdp_choice`); `detect()` records the
choice for a bf16 masked call, so a machine where it falls back to the score-materializing math kernel says so.

The memory predictor asks the same questions (`detect()`), records the answer with every CPU prediction, and
tests force either answer. Forcing only ever turns a capability off, so a forced run is one that this machine
can really execute: torch's own `ATEN_CPU_CAPABILITY=avx2` lowers torch's capability (read at start-up, so it
must be set before the process starts), and `WORKBENCH_BNB_AVX512BF16=0` makes bitsandbytes' 4-bit layers take
the dequantizing path (applied by `apply_overrides()` before a quantized model is built).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

AVX512BF16_ENV = "WORKBENCH_BNB_AVX512BF16"


@dataclass(frozen=True)
class CpuKernels:
    """The answers bitsandbytes' CPU backend acts on, and the kernels they select.

    >>> CpuKernels("AVX2", False, "0.50.2").int8_matmul, CpuKernels("AVX2", False, "0.50.2").nf4_matmul
    ('float32', 'dequantize')
    >>> CpuKernels("AVX512", True, "0.50.2").describe()
    'bitsandbytes 0.50.2 on CPU: 8-bit torch._int_mm (torch CPU capability AVX512), 4-bit fused AVX512-BF16 kernel (weights repacked on first use)'
    """

    torch_capability: str  # torch.backends.cpu.get_cpu_capability(): "AVX512", "AVX2", "DEFAULT", ...
    avx512bf16: bool  # bitsandbytes.functional.has_avx512bf16(), after any override
    bitsandbytes: str  # the version whose code these rules were read from is 0.50.x
    sdpa_backend: str = "FLASH_ATTENTION"  # torch's CPU sdpa kernel for a bf16 call with a boolean mask

    @property
    def int8_matmul(self) -> str:
        """'int_mm' (torch._int_mm, no visible copies) or 'float32' (float32 copies of input and weight)."""
        return "int_mm" if self.torch_capability == "AVX512" else "float32"

    @property
    def nf4_matmul(self) -> str:
        """'repack' (one-time repack into the AVX512-BF16 layout) or 'dequantize' (per matmul)."""
        return "repack" if self.avx512bf16 else "dequantize"

    def describe(self) -> str:
        int8 = ("torch._int_mm" if self.int8_matmul == "int_mm" else "float32 matmul of int8 copies")
        nf4 = ("fused AVX512-BF16 kernel (weights repacked on first use)" if self.nf4_matmul == "repack"
               else "weights dequantized for every matmul (no AVX512-BF16)")
        return (f"bitsandbytes {self.bitsandbytes} on CPU: 8-bit {int8} (torch CPU capability "
                f"{self.torch_capability}), 4-bit {nf4}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"int8_matmul": self.int8_matmul, "nf4_matmul": self.nf4_matmul}


def avx512bf16_forced_off() -> bool:
    """True when the environment turns bitsandbytes' AVX512-BF16 path off (`WORKBENCH_BNB_AVX512BF16=0`)."""
    value = os.environ.get(AVX512BF16_ENV)
    if value is None:
        return False
    if value.strip() not in ("0", "1"):
        raise ValueError(f"{AVX512BF16_ENV} must be 0 (turn the AVX512-BF16 path off) or 1, got {value!r}")
    return value.strip() == "0"


@lru_cache(maxsize=None)
def _detect(forced_off: bool) -> CpuKernels:
    import torch
    from importlib import metadata

    try:
        version = metadata.version("bitsandbytes")
        from bitsandbytes.functional import has_avx512bf16

        avx512bf16 = bool(has_avx512bf16()) and not forced_off
    except (metadata.PackageNotFoundError, ImportError):
        version, avx512bf16 = "missing", False
    return CpuKernels(torch.backends.cpu.get_cpu_capability(), avx512bf16, version, _sdpa_backend())


def _sdpa_backend() -> str:
    import torch
    from torch.nn.attention import SDPBackend

    q = torch.zeros(1, 2, 8, 16, dtype=torch.bfloat16)
    choice = torch._fused_sdp_choice(q, q, q, attn_mask=torch.ones(8, 8, dtype=torch.bool))
    return SDPBackend(choice).name


def detect() -> CpuKernels:
    """This process's answers (torch's capability, bitsandbytes' AVX512-BF16 check, its version)."""
    return _detect(avx512bf16_forced_off())


def apply_overrides() -> None:
    """Make bitsandbytes' 4-bit layers built from now on follow `WORKBENCH_BNB_AVX512BF16=0`."""
    if not avx512bf16_forced_off():
        return
    import bitsandbytes.nn.modules as modules

    modules.has_avx512bf16 = lambda: False  # read by Linear4bit.__init__
