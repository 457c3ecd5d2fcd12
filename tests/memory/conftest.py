"""Fixtures for the memory tests: one measured grid of a mid-size Qwen2-VL (tests/conftest.py isolates the cache).

The grid is measured once per session (each configuration in its own fresh process, two at a time with one
torch thread each) and shared by the scaling, accuracy and frontier tests.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from workbench.memory.probe import MIDSIZE_QWEN2_VL_OVERRIDES as MIDSIZE_OVERRIDES

MIDSIZE_SIZE = 280  # square source frames -> a 20 x 20 patch grid per frame pair
SCALING_FRAMES = (4, 8, 12, 16)
ACCURACY_FRAMES = (4, 16)
QUANTIZATIONS = ("none", "8bit", "4bit-nf4")


def midsize_config(frames: int, attn: str, quantization: str = "none"):
    from workbench.memory import ProbeConfig

    return ProbeConfig(model="qwen2-vl-2b", source="random", config_overrides=MIDSIZE_OVERRIDES, device="cpu",
                       frames=frames, height=MIDSIZE_SIZE, width=MIDSIZE_SIZE, attn_implementation=attn,
                       quantization=quantization, max_new_tokens=8)


@pytest.fixture(scope="session")
def midsize() -> SimpleNamespace:
    """The mid-size model's settings for tests (conftest is not importable under --import-mode=importlib)."""
    return SimpleNamespace(config=midsize_config, overrides=MIDSIZE_OVERRIDES, size=MIDSIZE_SIZE,
                           scaling_frames=SCALING_FRAMES, accuracy_frames=ACCURACY_FRAMES,
                           quantizations=QUANTIZATIONS)


@pytest.fixture(scope="session")
def midsize_results(isolated_cache: Path) -> dict[tuple[str, str, int], dict]:
    """{(quantization, attention, frames): probe result} for the mid-size model, measured on CPU."""
    from workbench.memory import run_grid

    keys = [("none", attn, f) for attn in ("eager", "sdpa") for f in SCALING_FRAMES]
    keys += [(q, attn, f) for q in QUANTIZATIONS[1:] for attn in ("eager", "sdpa") for f in ACCURACY_FRAMES]
    configs = [midsize_config(f, attn, q) for q, attn, f in keys]
    results = run_grid(configs, parallel=2, threads=1, timeout_s=600, progress=False)
    return dict(zip(keys, results))


# bitsandbytes' other CPU paths, forced off in the probe processes (forcing only turns a capability off, so each
# runs on any machine): the 4-bit dequantizing path without AVX512-BF16, and the 8-bit float32 matmul torch uses
# below capability AVX512. torch's forced "avx2" is used with eager only: on AMX machines its bf16 flash sdpa
# then fails ("pack_vnni2 is only supported when avx512 is supported"), which a real AVX2 machine never sees.
FORCED_PATHS = {
    ("4bit-nf4", "eager", 4): {"WORKBENCH_BNB_AVX512BF16": "0"},
    ("4bit-nf4", "sdpa", 16): {"WORKBENCH_BNB_AVX512BF16": "0"},
    ("8bit", "eager", 16): {"WORKBENCH_BNB_AVX512BF16": "0", "ATEN_CPU_CAPABILITY": "avx2"},
}


@pytest.fixture(scope="session")
def forced_path_results(isolated_cache: Path) -> dict[tuple[str, str, int], dict]:
    """{(quantization, attention, frames): probe result} with bitsandbytes' non-AVX-512 CPU paths forced."""
    from workbench.memory import run_probe

    results = {}
    for (quantization, attn, frames), env in FORCED_PATHS.items():
        with pytest.MonkeyPatch.context() as patch:  # the probe process inherits the environment
            for name, value in env.items():
                patch.setenv(name, value)
            results[(quantization, attn, frames)] = run_probe(
                midsize_config(frames, attn, quantization).replace(threads=1), timeout_s=600)
    return results


@pytest.fixture(scope="session")
def vision_quantized_results(isolated_cache: Path) -> dict[tuple[str, str, int], dict]:
    """bitsandbytes' default policy (vision tower quantized too) on the mid-size model, measured on CPU."""
    from workbench.memory import run_grid

    keys = [("8bit", "sdpa", 16), ("4bit-nf4", "eager", 4)]
    configs = [midsize_config(f, attn, q).replace(quantize_vision=True) for q, attn, f in keys]
    return dict(zip(keys, run_grid(configs, parallel=2, threads=1, timeout_s=600, progress=False)))
