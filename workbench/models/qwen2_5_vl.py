"""Qwen2.5-VL (Qwen/Qwen2.5-VL-3B-Instruct, -7B-Instruct): Qwen2-VL's video path with a windowed ViT.

Shares Qwen2-VL's processor pieces (image/video processors, 14 px patches over 2 frames, 2x2 merge, the
same per-frame pixel budget and chat format), so the adapter extends `Qwen2VLAdapter`. Quirks kept here:
- The ViT attends within 112 px windows except in the full-attention blocks (7, 15, 23, 31), uses SwiGLU
  MLPs and RMSNorm, and its merger projects to `out_hidden_size` (the LLM width).
- Temporal RoPE positions follow real time: `second_per_grid_ts` (seconds per frame pair) times
  `tokens_per_second` (2), truncated to an integer. The processor derives it from the metadata's sampled
  fps; `build_inputs` sets it from the frames' own spacing, which is right for any clip. It stays in
  float32: cast to bfloat16 like the pixel values, 2/3 s per pair becomes 0.666 and positions shift by
  one (base `move_inputs` casts all floating tensors).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from workbench.models.base import LoadedModel, ModelSpec
from workbench.models.qwen2_vl import CHAT_TEMPLATE, PROMPT, Qwen2VLAdapter, frame_spacing_s
from workbench.models.traits import MemoryTraits, qwen25_vit_sizes

if TYPE_CHECKING:
    import numpy as np

FAMILY = "qwen2_5_vl"

_VISION_3B: dict[str, Any] = {
    "depth": 32,
    "hidden_act": "silu",
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "in_channels": 3,
    "out_hidden_size": 2048,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "tokens_per_second": 2,
}

# Qwen/Qwen2.5-VL-3B-Instruct config.json, trimmed to what builds the architecture (flat text fields).
_CONFIG_3B: dict[str, Any] = {
    "model_type": "qwen2_5_vl",
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
    "image_token_id": 151655,
    "video_token_id": 151656,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 11008,
    "max_position_embeddings": 128000,
    "max_window_layers": 70,
    "num_attention_heads": 16,
    "num_hidden_layers": 36,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "use_sliding_window": False,
    "tie_word_embeddings": True,
    "vocab_size": 151936,
    "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
    "vision_config": _VISION_3B,
}

# Qwen/Qwen2.5-VL-7B-Instruct: same ViT, Qwen2.5-7B language model (untied).
_CONFIG_7B: dict[str, Any] = {
    **_CONFIG_3B,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "max_window_layers": 28,
    "num_attention_heads": 28,
    "num_hidden_layers": 28,
    "num_key_value_heads": 4,
    "tie_word_embeddings": False,
    "vocab_size": 152064,
    "vision_config": {**_VISION_3B, "out_hidden_size": 3584},
}

_NOTES = ("Native video, windowed ViT (full attention in blocks 7,15,23,31): (T/2) x (H'/28) x (W'/28) LLM "
          "tokens, 4x that in the vision encoder; temporal positions scaled by real time (2 per second).")


class Qwen25VLAdapter(Qwen2VLAdapter):
    family: ClassVar[str] = FAMILY
    model_class: ClassVar[str] = "Qwen2_5_VLForConditionalGeneration"
    config_class: ClassVar[str] = "Qwen2_5_VLConfig"
    skip_modules: ClassVar[tuple[str, ...]] = ("model.visual", "lm_head")
    chat_template: ClassVar[str] = CHAT_TEMPLATE  # same chat format as Qwen2-VL
    # As Qwen2-VL's tower, with a SwiGLU MLP (act, up and their product: three MLP-width tensors).
    memory: ClassVar[MemoryTraits] = MemoryTraits(
        vision_kind="patch_sequence", vision_sizes=qwen25_vit_sizes, mlp_copies=3, rotary_fp32=True,
        pixel_budget=True,
    )
    specs: ClassVar[dict[str, ModelSpec]] = {
        "qwen2.5-vl-3b": ModelSpec(
            model_id="qwen2.5-vl-3b",
            hub_id="Qwen/Qwen2.5-VL-3B-Instruct",
            family=FAMILY,
            config=_CONFIG_3B,
            published_params=3.76e9,
            frame_mode="video",
            default_frames=8,
            prompt=PROMPT,
            aliases=("qwen2.5-vl-3b-instruct", "qwen2_5-vl-3b"),
            notes=_NOTES,
        ),
        "qwen2.5-vl-7b": ModelSpec(
            model_id="qwen2.5-vl-7b",
            hub_id="Qwen/Qwen2.5-VL-7B-Instruct",
            family=FAMILY,
            config=_CONFIG_7B,
            published_params=8.29e9,
            frame_mode="video",
            default_frames=8,
            prompt=PROMPT,
            aliases=("qwen2.5-vl-7b-instruct", "qwen2_5-vl-7b"),
            notes=_NOTES,
        ),
    }

    # ---- tiny twin ---------------------------------------------------------------------------
    def tiny_config(self) -> Any:
        from transformers import Qwen2_5_VLConfig

        tokenizer = self.tiny_tokenizer()
        return Qwen2_5_VLConfig(
            text_config={
                "vocab_size": len(tokenizer),
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,  # head_dim 16
                "num_key_value_heads": 2,
                "max_position_embeddings": 128000,
                "rms_norm_eps": 1e-06,
                # sections sum to head_dim / 2 (real: [16, 24, 24] for head_dim 128)
                "rope_parameters": {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 1e6},
                "bos_token_id": tokenizer.pad_token_id,
                "eos_token_id": tokenizer.eos_token_id,
                "pad_token_id": tokenizer.pad_token_id,
            },
            vision_config={
                **{k: _VISION_3B[k] for k in ("hidden_act", "patch_size", "spatial_merge_size",
                                              "temporal_patch_size", "window_size", "tokens_per_second")},
                "depth": 2,
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_heads": 2,
                "out_hidden_size": 64,  # merger output = LLM width
                "fullatt_block_indexes": [1],  # block 0 windowed, block 1 full, as the real pattern
            },
            # untied: a random tied model mostly repeats the prompt's last token ("\n"), an empty caption
            tie_word_embeddings=False,
            **{key: tokenizer.convert_tokens_to_ids(token) for key, token in self.token_names.items()},
        )

    def fabricate_processor(self, out_dir: Path) -> Any:
        from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

        processor = Qwen2_5_VLProcessor(
            image_processor=Qwen2VLImageProcessor(**self.processing),
            video_processor=Qwen2VLVideoProcessor(**self.processing),
            tokenizer=self.tiny_tokenizer(),
            chat_template=self.chat_template,
        )
        processor.save_pretrained(out_dir)
        return processor

    # ---- inputs --------------------------------------------------------------------------------
    def build_inputs(self, loaded: LoadedModel, frames: "np.ndarray", timestamps_s: "np.ndarray | None",
                     prompt: str, max_pixels: int | None = None, min_pixels: int | None = None) -> Any:
        """As Qwen2-VL; `second_per_grid_ts` is set from the timestamps' spacing (the processor derives it
        from the metadata's sampled fps, which is only right for clips starting at the video's start)."""
        import torch

        inputs = super().build_inputs(loaded, frames, timestamps_s, prompt, max_pixels, min_pixels)
        temporal = self.processing["temporal_patch_size"]
        inputs["second_per_grid_ts"] = torch.tensor([temporal * frame_spacing_s(timestamps_s)])
        return inputs

    def move_inputs(self, inputs: Any, loaded: LoadedModel) -> Any:
        """As the base, but `second_per_grid_ts` stays float32 (it sets temporal RoPE positions)."""
        seconds = inputs.get("second_per_grid_ts")
        moved = super().move_inputs(inputs, loaded)
        if seconds is not None:
            import torch

            moved["second_per_grid_ts"] = torch.as_tensor(seconds, dtype=torch.float32).to(loaded.report.device)
        return moved


ADAPTER = Qwen25VLAdapter()
