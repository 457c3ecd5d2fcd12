"""Video-LLaVA (LanguageBind/Video-LLaVA-7B-hf): Vicuna-7B with two CLIP ViT-L/14 towers at 224 px.

Quirks kept here:
- Two vision towers (`model.image_tower`, `model.video_tower`), both CLIP ViT-L/14 at 224 px; videos go
  through the video tower only, but both are built and both count in the parameters.
- Video keeps the CLS token: 16*16 patches + 1 = 257 tokens per frame. Images drop it (256).
- The model was trained on exactly 8 frames; the processor expands `<video>` to 257 * (frames given)
  placeholders without complaint, so the fixed count is enforced by the shared `resample_frames`.
- `vision_feature_layer=-2` reads the second-to-last hidden state: the tiny twin needs >= 2 vision layers.
- The Llama tokenizer adds `<s>` itself (not the chat template), so the tiny tokenizer gets the same
  post-processor.
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

FAMILY = "video_llava"
FIXED_FRAMES = 8

# LanguageBind/Video-LLaVA-7B-hf config.json, trimmed to what builds the architecture.
_CONFIG_7B: dict[str, Any] = {
    "model_type": "video_llava",
    "image_token_index": 32000,
    "video_token_index": 32001,
    "pad_token_id": 32002,
    "projector_hidden_act": "gelu",
    "vision_feature_layer": -2,
    "vision_feature_select_strategy": "default",
    "image_seq_length": 256,
    "video_seq_length": 2056,
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
        "image_size": 224,
        "projection_dim": 768,
    },
}

# The checkpoint's processor settings (preprocessor_config.json / processor_config.json).
_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
_FRAME_PROCESSING: dict[str, Any] = {
    "do_resize": True,
    "size": {"shortest_edge": 224},
    "resample": 3,  # bicubic
    "do_center_crop": True,
    "crop_size": {"height": 224, "width": 224},
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": _CLIP_MEAN,
    "image_std": _CLIP_STD,
    "do_convert_rgb": True,
}
_PROCESSOR: dict[str, Any] = {
    "patch_size": 14,
    "vision_feature_select_strategy": "default",
    "num_additional_image_tokens": 1,  # CLS
}

# Vicuna v1 conversation format as the hub chat template writes it: "USER: <video>\n{text} ASSISTANT:".
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


def processed_size(height: int, width: int, shortest_edge: int, crop: int | None) -> tuple[int, int]:
    """Frame size after a CLIP-style resize (shortest edge, aspect kept) and an optional square center crop.

    The crop pads a side shorter than itself, so with a crop the output is always crop x crop.

    >>> processed_size(240, 320, 224, 224)
    (224, 224)
    >>> processed_size(240, 320, 224, None)
    (224, 298)
    """
    if crop is not None:
        return crop, crop
    if height <= width:
        return shortest_edge, int(shortest_edge * width / height)
    return int(shortest_edge * height / width), shortest_edge


def video_llava_tokens(n_frames: int, height: int, width: int, *, patch_size: int = 14,
                       shortest_edge: int = 224, crop: int = 224) -> VisualGeometry:
    """Visual tokens Video-LLaVA's LLM sees for `n_frames` frames of height x width (CLS kept for video).

    >>> video_llava_tokens(8, 240, 320).llm_tokens
    2056
    """
    out_h, out_w = processed_size(height, width, shortest_edge, crop)
    patches = (out_h // patch_size) * (out_w // patch_size)
    per_frame = patches + 1  # the CLS token is kept for video (dropped for images)
    return per_frame_geometry(n_frames, per_frame, patches + 1, out_h, out_w)

def _tiny_tokenizer() -> Any:
    """Llama-style BPE: <unk>, <pad>, <s>, </s>, <image>, <video>; adds <s> like the Llama tokenizer."""
    from tokenizers.processors import TemplateProcessing

    tokenizer = train_tokenizer(
        ["<image>", "<video>"], unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>",
        chat_template=CHAT_TEMPLATE,
    )
    bos = tokenizer.bos_token_id
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    return tokenizer


class VideoLlavaAdapter(FamilyAdapter):
    family: ClassVar[str] = FAMILY
    model_class: ClassVar[str] = "VideoLlavaForConditionalGeneration"
    config_class: ClassVar[str] = "VideoLlavaConfig"
    skip_modules: ClassVar[tuple[str, ...]] = (
        "model.video_tower", "model.image_tower", "model.multi_modal_projector", "lm_head",
    )
    token_id_keys: ClassVar[tuple[str, ...]] = ("image_token_index", "video_token_index")
    # CLIP ViT-L towers (quick_gelu: fc1, 1.702x, sigmoid), called with output_hidden_states=True, so every
    # layer's output is alive until the features are selected.
    memory: ClassVar[MemoryTraits] = MemoryTraits(vision_kind="per_frame", mlp_copies=3, all_hidden_states=True)
    specs: ClassVar[dict[str, ModelSpec]] = {
        "video-llava-7b": ModelSpec(
            model_id="video-llava-7b",
            hub_id="LanguageBind/Video-LLaVA-7B-hf",
            family=FAMILY,
            config=_CONFIG_7B,
            published_params=7.37e9,
            frame_mode="fixed",
            fixed_frames=FIXED_FRAMES,
            default_frames=FIXED_FRAMES,
            prompt=PROMPT,
            aliases=("video-llava-7b-hf", "video-llava"),
            notes="Vicuna-7B + 2 x CLIP ViT-L/14 (224 px); 8 frames x 257 tokens = 2056 visual tokens.",
        ),
    }

    # ---- geometry ----------------------------------------------------------------------------
    def visual_tokens(self, n_frames: int, height: int, width: int, *, model_id: str | None = None,
                      max_pixels: int | None = None, min_pixels: int | None = None,
                      options: Mapping[str, Any] | None = None) -> VisualGeometry:
        """Visual tokens of a clip of n_frames (height x width) frames: the same for every source.

        Video-LLaVA always sees 8 frames (describe() resamples), so the geometry is for 8.
        """
        del n_frames  # the model takes exactly FIXED_FRAMES; describe() resamples any other count
        vision = _CONFIG_7B["vision_config"]
        return video_llava_tokens(
            FIXED_FRAMES, height, width, patch_size=vision["patch_size"],
            shortest_edge=_FRAME_PROCESSING["size"]["shortest_edge"],
            crop=_FRAME_PROCESSING["crop_size"]["height"],
        )

    # ---- tiny twin ---------------------------------------------------------------------------
    def tiny_config(self) -> Any:
        from transformers import VideoLlavaConfig

        tokenizer = _tiny_tokenizer()
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<image>", "<video>", "<pad>", "<s>", "</s>")}
        real_vision = _CONFIG_7B["vision_config"]
        return VideoLlavaConfig(
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
                "pad_token_id": ids["<pad>"],
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
                "image_size": real_vision["image_size"],
                "projection_dim": 32,
            },
            image_token_index=ids["<image>"],
            video_token_index=ids["<video>"],
            pad_token_id=ids["<pad>"],
            projector_hidden_act="gelu",
            vision_feature_layer=-2,
            vision_feature_select_strategy="default",
            tie_word_embeddings=False,
        )

    def fabricate_processor(self, out_dir: Path) -> Any:
        from transformers import VideoLlavaImageProcessor, VideoLlavaProcessor, VideoLlavaVideoProcessor

        processor = VideoLlavaProcessor(
            image_processor=VideoLlavaImageProcessor(**_FRAME_PROCESSING),
            video_processor=VideoLlavaVideoProcessor(**_FRAME_PROCESSING),
            tokenizer=_tiny_tokenizer(),
            chat_template=CHAT_TEMPLATE,
            **_PROCESSOR,
        )
        processor.save_pretrained(out_dir)
        return processor

    # ---- inputs --------------------------------------------------------------------------------
    def token_layout(self, loaded: LoadedModel, capture: Any, n_frames: int, height: int, width: int) -> Any:
        """Per frame: the CLIP [CLS] token (kept for video) then the patch grid, row-major; the processor
        resizes the shortest edge and centre-crops a square, so the grid covers the frame's centre."""
        import numpy as np

        from workbench.models.layout import centre_crop_box, per_frame_grids

        side = capture.segments[0].inputs["pixel_values_videos_shape"][-1] // loaded.model.config.vision_config.patch_size
        return per_frame_grids(np.concatenate(capture.visual_positions), n_frames, side, side, cls_first=True,
                               box=centre_crop_box(height, width),
                               description=f"{loaded.spec.model_id}: [CLS] + {side}x{side} patches per frame")

    def build_inputs(self, loaded: LoadedModel, frames: "np.ndarray", timestamps_s: "np.ndarray | None",
                     prompt: str) -> Any:
        """One user turn: the video then the prompt; frames (8,H,W,3 uint8) -> pixel_values_videos."""
        processor = loaded.processor
        conversation = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]}]
        text = processor.apply_chat_template(conversation, add_generation_prompt=True)
        return processor(text=text, videos=[list(frames)], return_tensors="pt")

    def align_token_ids(self, config: Any, tokenizer: Any) -> None:
        """Top-level <image>/<video> ids, and the Llama text config's pad/bos/eos."""
        super().align_token_ids(config, tokenizer)
        config.pad_token_id = tokenizer.pad_token_id
        text = config.text_config
        text.pad_token_id = tokenizer.pad_token_id
        text.bos_token_id = tokenizer.bos_token_id
        text.eos_token_id = tokenizer.eos_token_id


ADAPTER = VideoLlavaAdapter()
