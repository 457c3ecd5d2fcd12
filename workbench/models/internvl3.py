"""InternVL3 (InternViT-300M + pixel-shuffle MLP projector + Qwen2.5), the transformers-native "-hf" checkpoints.

Video frames go to the vision tower at 448x448 (no tiling: tiles are for still images), 1024 patches + CLS
each, pixel-shuffled to 256 visual tokens per frame; the processor writes "Frame{i}: <img>...</img>" per frame.
The -hf checkpoints keep a separate lm_head, but InternVLConfig ties by default and in 5.x the top-level
tie_word_embeddings decides (MODEL_NOTES pitfall 6), so the embedded configs say False at the top level.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from workbench.models.base import FamilyAdapter, LoadedModel, ModelSpec
from workbench.models.geometry import VisualGeometry, image_side, per_frame_geometry
from workbench.models.tiny import train_tokenizer
from workbench.models.traits import MemoryTraits

if TYPE_CHECKING:
    import numpy as np

# InternViT-300M-448px-V2.5, shared by InternVL3-1B and -8B.
_VISION = {
    "model_type": "internvl_vision",
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": [448, 448],
    "patch_size": [14, 14],
    "hidden_act": "gelu",
    "attention_bias": True,
    "use_qk_norm": False,
    "norm_type": "layer_norm",
    "layer_norm_eps": 1e-6,
    "layer_scale_init_value": 0.1,
    "use_absolute_position_embeddings": True,
    "use_mean_pooling": True,
    "use_mask_token": False,
}


def _qwen2(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int) -> dict[str, Any]:
    return {
        "model_type": "qwen2",
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "vocab_size": 151674,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        # The -hf checkpoints' text configs (1B and 8B) scale rope dynamically (NTK), factor 2, over 32768
        # positions: rope_scaling {"factor": 2.0, "rope_type": "dynamic"}, rope_theta 1e6.
        "rope_parameters": {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1000000.0},
        "hidden_act": "silu",
        "use_sliding_window": False,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "tie_word_embeddings": False,  # stated: both -hf checkpoints keep a separate lm_head
    }


def _config(text: dict[str, Any]) -> dict[str, Any]:
    return {
        "model_type": "internvl",
        "image_token_id": 151667,  # <IMG_CONTEXT>
        "image_seq_length": 256,
        "downsample_ratio": 0.5,
        "projector_hidden_act": "gelu",
        "vision_feature_layer": -1,
        "vision_feature_select_strategy": "default",
        "tie_word_embeddings": False,  # the top-level flag decides in 5.x (pitfall 6)
        "vision_config": dict(_VISION),
        "text_config": text,
    }


_PROMPT = "Describe what happens in this video, frame by frame, in the order it happens."
_NOTES = "Each frame is resized to 448x448 (no tiles) and becomes 256 tokens between <img> and </img>."

SPECS: dict[str, ModelSpec] = {
    "internvl3-1b": ModelSpec(
        model_id="internvl3-1b",
        hub_id="OpenGVLab/InternVL3-1B-hf",
        family="internvl3",
        config=_config(_qwen2(896, 4864, 24, 14, 2)),
        published_params=0.94e9,
        frame_mode="video",
        default_frames=8,
        prompt=_PROMPT,
        aliases=("internvl3-1b-hf",),
        notes=_NOTES,
    ),
    "internvl3-8b": ModelSpec(
        model_id="internvl3-8b",
        hub_id="OpenGVLab/InternVL3-8B-hf",
        family="internvl3",
        config=_config(_qwen2(3584, 18944, 28, 28, 4)),
        published_params=7.94e9,
        frame_mode="video",
        default_frames=8,
        prompt=_PROMPT,
        aliases=("internvl3-8b-hf", "internvl3"),
        notes=_NOTES,
    ),
}

# Named special tokens the InternVLProcessor reads from the tokenizer (tokenizer_config extra_special_tokens).
_NAMED = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}

# Modelled on the -hf checkpoints' chat_template.jinja (ChatML; a video becomes "<video>\n").
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# The checkpoints' GotOcr2 image / InternVL video processor settings (ImageNet mean and std, 448 px).
_PROCESSOR = {
    "size": {"height": 448, "width": 448},
    "resample": 3,  # bicubic
    "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225],
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "do_convert_rgb": True,
}


class InternVL3Adapter(FamilyAdapter):
    family: ClassVar[str] = "internvl3"
    model_class: ClassVar[str] = "InternVLForConditionalGeneration"
    config_class: ClassVar[str] = "InternVLConfig"
    # Full names in InternVLForConditionalGeneration (5.23): model.vision_tower, model.multi_modal_projector,
    # model.language_model, lm_head.
    skip_modules: ClassVar[tuple[str, ...]] = ("model.vision_tower", "model.multi_modal_projector", "lm_head")
    token_id_keys: ClassVar[tuple[str, ...]] = ("image_token_id",)
    # InternViT: one fused GELU, and the eager softmax taken in the compute dtype.
    memory: ClassVar[MemoryTraits] = MemoryTraits(vision_kind="per_frame", mlp_copies=2, softmax_fp32=False)
    specs: ClassVar[dict[str, ModelSpec]] = SPECS
    tiny_spec_id: ClassVar[str] = "internvl3-1b"

    # ---- geometry ----------------------------------------------------------------------------------
    def visual_tokens(self, n_frames: int, height: int, width: int, *, model_id: str | None = None,
                      max_pixels: int | None = None, min_pixels: int | None = None,
                      options: Mapping[str, Any] | None = None) -> VisualGeometry:
        """Visual tokens the LLM sees: each frame is resized to 448x448, whatever its size.

        >>> ADAPTER.visual_tokens(8, 480, 640).llm_tokens
        2048
        >>> ADAPTER.visual_tokens(8, 480, 640).segment_len
        1025
        """
        config = self.specs[model_id or self.tiny_spec_id].config
        vision = config["vision_config"]
        (height_px, width_px), (patch_h, patch_w) = vision["image_size"], vision["patch_size"]
        patches = (height_px // patch_h) * (width_px // patch_w)
        side = image_side(config)
        # the tower sees patches + CLS; the CLS is dropped before the pixel shuffle
        return per_frame_geometry(n_frames, int(patches * config["downsample_ratio"] ** 2), patches + 1, side, side)

    # ---- tiny twin ---------------------------------------------------------------------------------
    def tiny_config(self) -> Any:
        """Real geometry (448 px, patch 14, 0.5 shuffle -> 256 tokens per frame), tiny widths; the Qwen2 layers'
        Linear inputs are multiples of 64 (bitsandbytes CPU 4-bit)."""
        tokenizer = self._tiny_tokenizer()
        text = dict(_qwen2(64, 128, 2, 2, 1), vocab_size=len(tokenizer), max_position_embeddings=4096,
                    bos_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                    pad_token_id=tokenizer.pad_token_id)
        config = _config(text)
        config["vision_config"].update(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=2)
        config["image_token_id"] = tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
        return self.config_cls().from_dict(config)

    def _tiny_tokenizer(self) -> Any:
        return train_tokenizer(
            ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *_NAMED.values()],
            pad_token="<|endoftext|>", eos_token="<|im_end|>", chat_template=CHAT_TEMPLATE,
            extra_kwargs={"extra_special_tokens": dict(_NAMED)}, register_special=False,
        )

    def fabricate_processor(self, out_dir: Path) -> Any:
        from transformers import GotOcr2ImageProcessor, InternVLProcessor, InternVLVideoProcessor

        processor = InternVLProcessor(
            image_processor=GotOcr2ImageProcessor(**_PROCESSOR, crop_to_patches=True, min_patches=1,
                                                  max_patches=12),
            tokenizer=self._tiny_tokenizer(),
            video_processor=InternVLVideoProcessor(**_PROCESSOR, do_sample_frames=False),
            image_seq_length=self.visual_tokens(1, 0, 0).llm_tokens_per_segment,
            chat_template=CHAT_TEMPLATE,
        )
        processor.save_pretrained(out_dir)
        return processor

    def align_token_ids(self, config: Any, tokenizer: Any) -> None:
        config.image_token_id = tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
        text = config.text_config
        text.bos_token_id = text.pad_token_id = tokenizer.pad_token_id
        text.eos_token_id = tokenizer.eos_token_id

    # ---- inputs --------------------------------------------------------------------------------------
    def token_layout(self, loaded: LoadedModel, capture: Any, n_frames: int, height: int, width: int) -> Any:
        """Per frame: the InternViT patch grid (CLS dropped) pixel-shuffled by `downsample_ratio`, row-major;
        each frame is resized whole to 448x448."""
        import numpy as np

        from workbench.models.layout import per_frame_grids

        config = loaded.model.config
        patches = config.vision_config.image_size[0] // config.vision_config.patch_size[0]
        side = int(patches * config.downsample_ratio)
        return per_frame_grids(np.concatenate(capture.visual_positions), n_frames, side, side,
                               description=f"{loaded.spec.model_id}: pixel shuffle x{config.downsample_ratio}, "
                                           f"{side}x{side} per frame")

    def build_inputs(self, loaded: LoadedModel, frames: "np.ndarray", timestamps_s: "np.ndarray | None",
                     prompt: str) -> Any:
        """Frames (T,H,W,3 uint8) -> "Frame1: <img><IMG_CONTEXT>x256</img>\\n..." + prompt.

        pixel_values come back as (T,3,448,448): the processor flattens the video into frames.
        """
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]}]
        text = loaded.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return loaded.processor(text=text, videos=[frames], do_sample_frames=False, return_tensors="pt")


ADAPTER = InternVL3Adapter()
