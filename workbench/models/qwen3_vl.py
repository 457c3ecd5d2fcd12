"""Qwen3-VL (Qwen/Qwen3-VL-2B/4B/8B-Instruct): native video with text timestamps between frame pairs.

Extends `Qwen2VLAdapter` (same chat and vision markers, video as `pixel_values_videos` + `video_grid_thw`).
Quirks kept here:
- Patches are 16 px (merge 2 -> 32 px per LLM token): (T/2) * (H'/32) * (W'/32) placeholders; the vision
  encoder runs 4x that. The ViT adds learned position embeddings (a 48 x 48 grid, interpolated) and
  feeds "deepstack" features from blocks 5/11/17 (8/16/24 for 8B) into the first LLM layers.
- The video processor's `size` is a pixel budget for the whole clip (T * H' * W'), not per frame as in
  Qwen2/2.5-VL (checkpoint: 4096 .. 25165824 pixels per clip). `max_pixels` / `min_pixels` in this
  workbench are per frame everywhere, so they are multiplied by the frame count here.
- Each frame pair is preceded by its timestamp as text ("<1.0 seconds>") and wrapped in
  <|vision_start|> ... <|vision_end|> by the processor itself, so the chat template must emit a bare
  <|video_pad|>. A checkpoint's own template (which wraps it) is collapsed to the bare token in
  `prompt_text`, or the markers would appear twice.
- Timestamps come from the video metadata (frame indices / fps); without it the processor assumes
  24 fps. It also resamples frames unless `do_sample_frames=False`: our frames are already sampled.
- Top-level `tie_word_embeddings` decides (2B/4B tie, 8B does not); the text config has explicit head_dim
  and interleaved M-RoPE sections summing to head_dim / 2.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Mapping

from workbench.models.base import LoadedModel, ModelSpec
from workbench.models.geometry import VisualGeometry, patch_sequence_geometry
from workbench.models.qwen2_vl import EOS, MARKERS, PAD, PROMPT, Qwen2VLAdapter
from workbench.models.tiny import train_tokenizer
from workbench.models.traits import MemoryTraits, qwen25_vit_sizes

FAMILY = "qwen3_vl"
# A frame pair's timestamp text ("<12.5 seconds>") is about 6 tokens with the real tokenizer (prompt estimate).
TIMESTAMP_TOKENS = 6

_TEXT_2B: dict[str, Any] = {
    "model_type": "qwen3_vl_text",
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "vocab_size": 151936,
    "hidden_size": 2048,
    "intermediate_size": 6144,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "hidden_act": "silu",
    "attention_bias": False,
    "initializer_range": 0.02,
    "max_position_embeddings": 262144,
    "rms_norm_eps": 1e-06,
    "rope_scaling": {"rope_type": "default", "mrope_section": [24, 20, 20], "mrope_interleaved": True},
    "rope_theta": 5000000,
}
_VISION_2B: dict[str, Any] = {
    "model_type": "qwen3_vl",
    "depth": 24,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_heads": 16,
    "hidden_act": "gelu_pytorch_tanh",
    "in_channels": 3,
    "out_hidden_size": 2048,
    "patch_size": 16,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "num_position_embeddings": 2304,
    "deepstack_visual_indexes": [5, 11, 17],
    "initializer_range": 0.02,
}
_TOKENS: dict[str, Any] = {
    "image_token_id": 151655,
    "video_token_id": 151656,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
}

# Qwen/Qwen3-VL-2B-Instruct config.json, trimmed to what builds the architecture.
_CONFIG_2B: dict[str, Any] = {
    "model_type": "qwen3_vl", **_TOKENS, "tie_word_embeddings": True,
    "text_config": _TEXT_2B, "vision_config": _VISION_2B,
}
# Qwen/Qwen3-VL-4B-Instruct: same ViT, Qwen3-4B language model (tied).
_CONFIG_4B: dict[str, Any] = {
    "model_type": "qwen3_vl", **_TOKENS, "tie_word_embeddings": True,
    "text_config": {**_TEXT_2B, "hidden_size": 2560, "intermediate_size": 9728, "num_hidden_layers": 36,
                    "num_attention_heads": 32},
    "vision_config": {**_VISION_2B, "out_hidden_size": 2560},
}
# Qwen/Qwen3-VL-8B-Instruct: the larger ViT (27 blocks, 1152 wide), Qwen3-8B language model (untied).
_CONFIG_8B: dict[str, Any] = {
    "model_type": "qwen3_vl", **_TOKENS, "tie_word_embeddings": False,
    "text_config": {**_TEXT_2B, "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
                    "num_attention_heads": 32},
    "vision_config": {**_VISION_2B, "depth": 27, "hidden_size": 1152, "intermediate_size": 4304,
                      "out_hidden_size": 4096, "deepstack_visual_indexes": [8, 16, 24]},
}

# The checkpoints' video_preprocessor_config.json / preprocessor_config.json.
MIN_CLIP_PIXELS = 4096
MAX_CLIP_PIXELS = 25165824  # 32 * 32 * 24576
_COMMON: dict[str, Any] = {
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "resample": 3,  # bicubic
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "do_convert_rgb": True,
}
_VIDEO_PROCESSING: dict[str, Any] = {
    **_COMMON,
    "size": {"shortest_edge": MIN_CLIP_PIXELS, "longest_edge": MAX_CLIP_PIXELS},
    "do_sample_frames": True,  # as shipped; build_inputs turns it off for already-sampled frames
    "fps": 2,
    "min_frames": 4,
    "max_frames": 768,
}
_IMAGE_PROCESSING: dict[str, Any] = {**_COMMON, "size": {"shortest_edge": 65536, "longest_edge": 16777216}}

# Qwen3-VL chat format without tools or thinking: no default system turn; the video is a bare
# <|video_pad|> that the processor expands into timestamped, marker-wrapped frame pairs.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'video' %}{{ '<|video_pad|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_WRAPPED_VIDEO = "<|vision_start|><|video_pad|><|vision_end|>"

_NOTES = ("Native video with '<t seconds>' text before each frame pair: (T/2) x (H'/32) x (W'/32) LLM tokens, "
          "4x that in the vision encoder; the processor's size is a whole-clip pixel budget (4096..25165824).")


def qwen3_resize(n_frames: int, height: int, width: int, factor: int, min_pixels: int,
                 max_pixels: int, temporal_factor: int = 2) -> tuple[int, int]:
    """The frame size Qwen3-VL's video processor resizes to; the pixel bounds are for the whole clip.

    >>> qwen3_resize(8, 240, 320, 32, 4096, 25165824)
    (256, 320)
    >>> qwen3_resize(8, 240, 320, 32, 4096, 8 * 32 * 32 * 40)  # 40 tokens' worth of pixels per frame
    (160, 224)
    """
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import smart_resize

    return smart_resize(n_frames, height, width, temporal_factor=temporal_factor, factor=factor,
                        min_pixels=min_pixels, max_pixels=max_pixels)


@lru_cache(maxsize=1)
def _tiny_tokenizer() -> Any:
    return train_tokenizer(MARKERS, pad_token=PAD, eos_token=EOS, chat_template=CHAT_TEMPLATE)


class Qwen3VLAdapter(Qwen2VLAdapter):
    family: ClassVar[str] = FAMILY
    model_class: ClassVar[str] = "Qwen3VLForConditionalGeneration"
    config_class: ClassVar[str] = "Qwen3VLConfig"
    skip_modules: ClassVar[tuple[str, ...]] = ("model.visual", "lm_head")
    processing: ClassVar[dict[str, Any]] = _VIDEO_PROCESSING
    chat_template: ClassVar[str] = CHAT_TEMPLATE
    # The Qwen ViT with fc1 -> fused gelu_pytorch_tanh -> fc2 (two MLP-width tensors).
    memory: ClassVar[MemoryTraits] = MemoryTraits(
        vision_kind="patch_sequence", vision_sizes=qwen25_vit_sizes, mlp_copies=2, rotary_fp32=True,
        pixel_budget=True,
    )
    specs: ClassVar[dict[str, ModelSpec]] = {
        f"qwen3-vl-{size}": ModelSpec(
            model_id=f"qwen3-vl-{size}",
            hub_id=f"Qwen/Qwen3-VL-{size.upper()}-Instruct",
            family=FAMILY,
            config=config,
            published_params=params,
            frame_mode="video",
            default_frames=8,
            prompt=PROMPT,
            aliases=(f"qwen3-vl-{size}-instruct",),
            notes=_NOTES,
        )
        for size, config, params in (("2b", _CONFIG_2B, 2.13e9), ("4b", _CONFIG_4B, 4.44e9),
                                     ("8b", _CONFIG_8B, 8.77e9))
    }

    # ---- geometry ----------------------------------------------------------------------------
    def visual_tokens(self, n_frames: int, height: int, width: int, *, model_id: str | None = None,
                      max_pixels: int | None = None, min_pixels: int | None = None,
                      options: Mapping[str, Any] | None = None) -> VisualGeometry:
        """Tokens a clip of n_frames (height x width) costs; `max_pixels` / `min_pixels` are per frame.

        `llm_tokens` counts the <|video_pad|> placeholders; each frame pair also brings 2 marker tokens and its
        timestamp text ("<1.5 seconds>", about 6 tokens with the real tokenizer): `extra_prompt_tokens`. The
        processor's budget is for the whole clip (`pixel_budget` is its share per frame).

        >>> ADAPTER.visual_tokens(8, 240, 320).llm_tokens  # 4 frame pairs x (256/32) x (320/32)
        320
        """
        patch = self.processing["patch_size"]
        merge = self.processing["merge_size"]
        temporal = self.processing["temporal_patch_size"]
        size = self.clip_size(n_frames, max_pixels, min_pixels)
        resized_h, resized_w = qwen3_resize(
            n_frames, height, width, patch * merge, min_pixels=size["shortest_edge"],
            max_pixels=size["longest_edge"], temporal_factor=temporal,
        )
        pairs = math.ceil(n_frames / temporal)  # an odd count is padded with the last frame
        return patch_sequence_geometry(n_frames, resized_h, resized_w, patch=patch, merge=merge, temporal=temporal,
                                       pixel_budget=size["longest_edge"] // n_frames,
                                       extra_prompt_tokens=(2 + TIMESTAMP_TOKENS) * pairs)

    def clip_size(self, n_frames: int, max_pixels: int | None, min_pixels: int | None) -> dict[str, int]:
        """The processor's whole-clip `size` for per-frame bounds (the checkpoint's own where None)."""
        size = self.processing["size"]
        return {
            "shortest_edge": size["shortest_edge"] if min_pixels is None else min_pixels * n_frames,
            "longest_edge": size["longest_edge"] if max_pixels is None else max_pixels * n_frames,
        }

    def size_kwargs(self, n_frames: int, max_pixels: int | None, min_pixels: int | None) -> dict[str, Any]:
        if max_pixels is None and min_pixels is None:
            return {}
        return {"size": self.clip_size(n_frames, max_pixels, min_pixels)}

    # ---- tiny twin ---------------------------------------------------------------------------
    def tiny_tokenizer(self) -> Any:
        return _tiny_tokenizer()

    def tiny_config(self) -> Any:
        from transformers import Qwen3VLConfig

        tokenizer = self.tiny_tokenizer()
        return Qwen3VLConfig(
            text_config={
                "vocab_size": len(tokenizer),
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "head_dim": 16,
                "max_position_embeddings": 262144,
                "rms_norm_eps": 1e-06,
                # interleaved sections sum to head_dim / 2 (real: [24, 20, 20] for head_dim 128)
                "rope_parameters": {"rope_type": "default", "mrope_section": [2, 3, 3],
                                    "mrope_interleaved": True, "rope_theta": 5000000},
                "bos_token_id": tokenizer.pad_token_id,
                "eos_token_id": tokenizer.eos_token_id,
                "pad_token_id": tokenizer.pad_token_id,
            },
            vision_config={
                **{k: _VISION_2B[k] for k in ("hidden_act", "patch_size", "spatial_merge_size",
                                              "temporal_patch_size", "num_position_embeddings")},
                "depth": 2,
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_heads": 2,
                "out_hidden_size": 64,  # merger output = LLM width
                "deepstack_visual_indexes": [0, 1],  # below the depth; one per LLM layer
            },
            # untied: a random tied model mostly repeats the prompt's last token ("\n"), an empty caption
            tie_word_embeddings=False,
            **{key: tokenizer.convert_tokens_to_ids(token) for key, token in self.token_names.items()},
        )

    def fabricate_processor(self, out_dir: Path) -> Any:
        from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

        processor = Qwen3VLProcessor(
            image_processor=Qwen2VLImageProcessor(**_IMAGE_PROCESSING),
            video_processor=Qwen3VLVideoProcessor(**_VIDEO_PROCESSING),
            tokenizer=self.tiny_tokenizer(),
            chat_template=self.chat_template,
        )
        processor.save_pretrained(out_dir)
        return processor

    # ---- inputs --------------------------------------------------------------------------------
    def prompt_text(self, loaded: LoadedModel, prompt: str) -> str:
        """Chat-templated prompt with a bare <|video_pad|> (the processor adds markers and timestamps)."""
        return super().prompt_text(loaded, prompt).replace(_WRAPPED_VIDEO, "<|video_pad|>")


ADAPTER = Qwen3VLAdapter()
