"""What a family's code does that memory depends on, declared in the family file (`FamilyAdapter.memory`).

The memory predictor (workbench/memory/predictor.py) is generic over these traits: it reads the sizes of the
vision tower from the config with `vision_sizes`, and the behaviours below, and knows no family by name.
Light module: no torch, no transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

from workbench.models.geometry import VisualGeometry

VisionKind = Literal["patch_sequence", "per_frame"]


def vit_sizes(vision_config: Any) -> tuple[int, int, int, int]:
    """(width, layers, heads, MLP width) of a CLIP / SigLIP / EVA / InternViT config."""
    v = vision_config
    return v.hidden_size, v.num_hidden_layers, v.num_attention_heads, v.intermediate_size


def qwen2_vit_sizes(vision_config: Any) -> tuple[int, int, int, int]:
    """Qwen2-VL's ViT names its width embed_dim and its MLP by a ratio."""
    v = vision_config
    return v.embed_dim, v.depth, v.num_heads, int(v.embed_dim * v.mlp_ratio)


def qwen25_vit_sizes(vision_config: Any) -> tuple[int, int, int, int]:
    """Qwen2.5-VL's and Qwen3-VL's ViTs: hidden_size, depth, num_heads, intermediate_size."""
    v = vision_config
    return v.hidden_size, v.depth, v.num_heads, v.intermediate_size


def no_extra_inputs(geometry: VisualGeometry, dtype_bytes: int) -> tuple[int, int]:
    return 0, 0


@dataclass(frozen=True)
class MemoryTraits:
    """A family's memory behaviour, beyond the sizes in its config.

    vision_kind     "patch_sequence": one patch sequence over the clip, attended per temporal patch (Qwen ViTs);
                    "per_frame": frames are a batch (all [frames, heads, seq, seq] scores exist at once)
    vision_sizes    reads (width, layers, heads, MLP width) from the config's vision_config
    mlp_copies      MLP-width activations alive at the vision MLP's peak (3 for quick_gelu and SwiGLU, 2 for a
                    fused GELU)
    rotary_fp32     q and k rotated in float32 (Qwen ViTs)
    all_hidden_states  the tower keeps every layer's output (LLaVA's vision_feature_layer)
    softmax_fp32    eager softmax upcast to float32 (False: scores and probabilities stay in the compute dtype,
                    as in BLIP's EVA and InternViT)
    prompt_per_frame  the adapter sends each frame as its own prompt (a batch of frames through the LLM)
    pixel_budget    the processor resizes each frame under a per-frame pixel budget (max_pixels applies)
    extra_inputs    (extra input bytes, transient copies of the inputs around the vision tower) for a geometry
                    and the compute dtype's bytes
    """

    vision_kind: VisionKind
    vision_sizes: Callable[[Any], tuple[int, int, int, int]] = vit_sizes
    mlp_copies: int = 2
    rotary_fp32: bool = False
    all_hidden_states: bool = False
    softmax_fp32: bool = True
    prompt_per_frame: bool = False
    pixel_budget: bool = False
    extra_inputs: Callable[[VisualGeometry, int], tuple[int, int]] = no_extra_inputs

    @property
    def batched_frames(self) -> bool:
        return self.vision_kind == "per_frame"

    def llm_batch(self, geometry: VisualGeometry, windows: int = 1) -> int:
        """Prompts that go through the LLM together: per clip (one, or one per frame for families that send
        each frame as its own prompt), times the clips (`windows`) captioned in one generate() call."""
        return (geometry.frames_used if self.prompt_per_frame else 1) * windows


