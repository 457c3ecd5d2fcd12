"""LLaVA-NeXT-Video (llava-hf/LLaVA-NeXT-Video-7B-hf): Vicuna-7B + CLIP ViT-L/14 at 336 px, pooled video.

Quirks kept here:
- Each frame is resized (shortest edge 336) and center-cropped to 336 x 336: a 24 x 24 patch grid, CLS
  dropped (576 tokens), then 2 x 2 average pooling -> 12 x 12 = 144 tokens per frame. The pooler reshapes
  the tokens to a square grid and pools with stride 2, so the grid side must be even (24 is): the tiny
  twin keeps the real 336 px / patch 14.
- Video frames use the video processor (no anyres tiling); only still images use the anyres grid pinpoints.
- Native video input, any frame count: the processor expands `<video>` to 144 * frames placeholders.
- The Llama tokenizer adds `<s>` itself; the tiny tokenizer gets the same post-processor.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from workbench.models.base import FamilyAdapter, LoadedModel, ModelSpec
from workbench.models.geometry import VisualGeometry, per_frame_geometry
from workbench.models.tiny import train_tokenizer
from workbench.models.traits import MemoryTraits

if TYPE_CHECKING:
    import numpy as np

FAMILY = "llava_next_video"

_GRID_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]

# llava-hf/LLaVA-NeXT-Video-7B-hf config.json, trimmed to what builds the architecture. The hub config
# carries linear RoPE scaling (factor 2.5 since a later commit; the conversion script used 2.0).
_CONFIG_7B: dict[str, Any] = {
    "model_type": "llava_next_video",
    "image_token_index": 32001,
    "video_token_index": 32000,
    "projector_hidden_act": "gelu",
    "vision_feature_layer": -2,
    "vision_feature_select_strategy": "default",
    "image_grid_pinpoints": _GRID_PINPOINTS,
    "spatial_pool_mode": "average",
    "spatial_pool_stride": 2,
    "spatial_pool_out_channels": 1024,
    "image_seq_length": 576,
    "video_seq_length": 288,
    "tie_word_embeddings": False,
    "text_config": {
        "model_type": "llama",  # lmsys/vicuna-7b-v1.5
        "vocab_size": 32064,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-05,
        "rope_parameters": {"rope_type": "linear", "factor": 2.5, "rope_theta": 10000.0},
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "tie_word_embeddings": False,
    },
    "vision_config": {
        "model_type": "clip_vision_model",
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "patch_size": 14,
        "image_size": 336,
        "projection_dim": 768,
    },
}

_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
# The checkpoint's video processor (video frames: resize + center crop, no tiling).
_VIDEO_PROCESSING: dict[str, Any] = {
    "do_resize": True,
    "size": {"shortest_edge": 336},
    "resample": 3,  # bicubic
    "do_center_crop": True,
    "crop_size": {"height": 336, "width": 336},
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": _CLIP_MEAN,
    "image_std": _CLIP_STD,
    "do_convert_rgb": True,
    "do_sample_frames": False,
}
# Its image processor (still images: anyres tiling over the grid pinpoints).
_IMAGE_PROCESSING: dict[str, Any] = {
    **{k: v for k, v in _VIDEO_PROCESSING.items() if k != "do_sample_frames"},
    "do_pad": True,
    "image_grid_pinpoints": _GRID_PINPOINTS,
}
_PROCESSOR: dict[str, Any] = {
    "patch_size": 14,
    "vision_feature_select_strategy": "default",
    "num_additional_image_tokens": 1,  # CLS
}

# The hub chat template's layout: "USER: <video>\n{text} ASSISTANT:".
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}"
    "{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

PROMPT = ("Describe what happens in this video second by second: the objects, their colours, "
          "where they are and how they move.")


def pooled_video_tokens(n_frames: int, height: int, width: int, *, patch_size: int = 14,
                        shortest_edge: int = 336, crop: int = 336, pool_stride: int = 2) -> VisualGeometry:
    """Visual tokens LLaVA-NeXT-Video's LLM sees: square crop, CLS dropped, stride-2 average pooling.

    The frame's own size does not matter: every frame is resized and center-cropped to crop x crop.

    >>> pooled_video_tokens(8, 240, 320).llm_tokens_per_segment
    144
    """
    del height, width, shortest_edge  # resize to the shortest edge, then the crop fixes the size
    side = crop // patch_size
    if side % pool_stride:
        raise ValueError(f"a {side} x {side} patch grid cannot be pooled with stride {pool_stride}")
    per_frame = (side // pool_stride) ** 2
    # the tower sees patches + CLS; the CLS is dropped before pooling
    return per_frame_geometry(n_frames, per_frame, side * side + 1, crop, crop)

def _tiny_tokenizer() -> Any:
    """Llama-style BPE: <unk> (also pad), <s>, </s>, <video>, <image>; adds <s> like the Llama tokenizer."""
    from tokenizers.processors import TemplateProcessing

    tokenizer = train_tokenizer(
        ["<video>", "<image>"], unk_token="<unk>", pad_token="<unk>", bos_token="<s>", eos_token="</s>",
        chat_template=CHAT_TEMPLATE,
    )
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tokenizer.bos_token_id)]
    )
    return tokenizer


class LlavaNextVideoAdapter(FamilyAdapter):
    family: ClassVar[str] = FAMILY
    model_class: ClassVar[str] = "LlavaNextVideoForConditionalGeneration"
    config_class: ClassVar[str] = "LlavaNextVideoConfig"
    skip_modules: ClassVar[tuple[str, ...]] = ("model.vision_tower", "model.multi_modal_projector", "lm_head")
    token_id_keys: ClassVar[tuple[str, ...]] = ("image_token_index", "video_token_index")
    # CLIP ViT-L (quick_gelu: three MLP-width tensors), called with output_hidden_states=True.
    memory: ClassVar[MemoryTraits] = MemoryTraits(vision_kind="per_frame", mlp_copies=3, all_hidden_states=True)
    specs: ClassVar[dict[str, ModelSpec]] = {
        "llava-next-video-7b": ModelSpec(
            model_id="llava-next-video-7b",
            hub_id="llava-hf/LLaVA-NeXT-Video-7B-hf",
            family=FAMILY,
            config=_CONFIG_7B,
            published_params=7.06e9,
            frame_mode="video",
            default_frames=32,
            prompt=PROMPT,
            aliases=("llava-next-video-7b-hf", "llava-next-video"),
            notes="Vicuna-7B + CLIP ViT-L/14 (336 px); 144 tokens per frame after 2x2 pooling; "
                  "trained with up to 32 frames.",
        ),
    }

    # ---- geometry ----------------------------------------------------------------------------
    def visual_tokens(self, n_frames: int, height: int, width: int, *, model_id: str | None = None,
                      max_pixels: int | None = None, min_pixels: int | None = None,
                      options: Mapping[str, Any] | None = None) -> VisualGeometry:
        """Visual tokens of n_frames frames of height x width (the same for every source)."""
        vision = _CONFIG_7B["vision_config"]
        return pooled_video_tokens(
            n_frames, height, width, patch_size=vision["patch_size"],
            shortest_edge=_VIDEO_PROCESSING["size"]["shortest_edge"],
            crop=_VIDEO_PROCESSING["crop_size"]["height"], pool_stride=_CONFIG_7B["spatial_pool_stride"],
        )

    # ---- tiny twin ---------------------------------------------------------------------------
    def tiny_config(self) -> Any:
        from transformers import LlavaNextVideoConfig

        tokenizer = _tiny_tokenizer()
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<image>", "<video>", "<unk>", "<s>", "</s>")}
        real_vision = _CONFIG_7B["vision_config"]
        return LlavaNextVideoConfig(
            text_config={
                "model_type": "llama",
                "vocab_size": len(tokenizer),
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 4,
                "max_position_embeddings": 4096,
                "rms_norm_eps": 1e-05,
                "rope_parameters": dict(_CONFIG_7B["text_config"]["rope_parameters"]),
                "pad_token_id": ids["<unk>"],
                "bos_token_id": ids["<s>"],
                "eos_token_id": ids["</s>"],
                "tie_word_embeddings": False,
            },
            vision_config={
                "model_type": "clip_vision_model",
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,  # vision_feature_layer=-2 needs a second-to-last layer
                "num_attention_heads": 2,
                "patch_size": real_vision["patch_size"],
                "image_size": real_vision["image_size"],  # 24 x 24 grid: even, as the pooling needs
                "projection_dim": 32,
            },
            image_token_index=ids["<image>"],
            video_token_index=ids["<video>"],
            projector_hidden_act="gelu",
            vision_feature_layer=-2,
            vision_feature_select_strategy="default",
            image_grid_pinpoints=_GRID_PINPOINTS,
            spatial_pool_mode="average",
            spatial_pool_stride=_CONFIG_7B["spatial_pool_stride"],
            spatial_pool_out_channels=32,
            tie_word_embeddings=False,
        )

    def fabricate_processor(self, out_dir: Path) -> Any:
        from transformers import (
            LlavaNextImageProcessor,
            LlavaNextVideoProcessor,
            LlavaNextVideoVideoProcessor,
        )

        processor = LlavaNextVideoProcessor(
            video_processor=LlavaNextVideoVideoProcessor(**_VIDEO_PROCESSING),
            image_processor=LlavaNextImageProcessor(**_IMAGE_PROCESSING),
            tokenizer=_tiny_tokenizer(),
            chat_template=CHAT_TEMPLATE,
            **_PROCESSOR,
        )
        processor.save_pretrained(out_dir)
        return processor

    # ---- inputs --------------------------------------------------------------------------------
    def token_layout(self, loaded: LoadedModel, capture: Any, n_frames: int, height: int, width: int) -> Any:
        """Per frame: the patch grid (CLS dropped) pooled with stride `spatial_pool_stride`, row-major; the
        processor centre-crops a square."""
        import numpy as np

        from workbench.models.layout import centre_crop_box, per_frame_grids

        config = loaded.model.config
        patches = capture.segments[0].inputs["pixel_values_videos_shape"][-1] // config.vision_config.patch_size
        side = patches // config.spatial_pool_stride
        return per_frame_grids(np.concatenate(capture.visual_positions), n_frames, side, side,
                               box=centre_crop_box(height, width),
                               description=f"{loaded.spec.model_id}: {patches}x{patches} patches pooled to "
                                           f"{side}x{side} per frame")

    def build_inputs(self, loaded: LoadedModel, frames: "np.ndarray", timestamps_s: "np.ndarray | None",
                     prompt: str) -> Any:
        """One user turn: the video then the prompt; frames (T,H,W,3 uint8) -> pixel_values_videos."""
        processor = loaded.processor
        conversation = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]}]
        text = processor.apply_chat_template(conversation, add_generation_prompt=True)
        return processor(text=text, videos=[list(frames)], return_tensors="pt")

    def align_token_ids(self, config: Any, tokenizer: Any) -> None:
        """Top-level <image>/<video> ids, and the Llama text config's pad/bos/eos."""
        super().align_token_ids(config, tokenizer)
        text = config.text_config
        text.pad_token_id = tokenizer.pad_token_id
        text.bos_token_id = tokenizer.bos_token_id
        text.eos_token_id = tokenizer.eos_token_id


ADAPTER = LlavaNextVideoAdapter()
