"""LLaVA-OneVision and LLaVA-Video (llava-hf ...-ov-hf, LLaVA-Video-7B-Qwen2-hf): Qwen2 + SigLIP-so400m.

One architecture, three checkpoints: OneVision 0.5B (Qwen2-0.5B, tied embeddings), OneVision 7B and
LLaVA-Video 7B (both Qwen2-7B). Quirks kept here:
- Frames are resized to 384 x 384 (no crop, aspect not kept): a 27 x 27 patch grid, 729 tokens, no CLS
  (SigLIP). Video features are bilinearly resized to ceil(27/2) = 14 per side -> 196 tokens per frame,
  plus ONE image_newline token per video (not per frame).
- The hub vocabularies are padded to a multiple of 64 after adding <image> and <video>: 152000 (0.5B) and
  152128 (7B), larger than the tokenizer.
- LLaVA-Video was trained with a time instruction before the question (clip length, frame count and frame
  times); this adapter writes one when timestamps are given, for that checkpoint only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from workbench.models.base import CLIP_DURATION_S, FamilyAdapter, LoadedModel, ModelSpec
from workbench.models.geometry import VisualGeometry, per_frame_geometry
from workbench.models.tiny import train_tokenizer
from workbench.models.traits import MemoryTraits

if TYPE_CHECKING:
    import numpy as np

FAMILY = "llava_onevision"

_VISION_SO400M: dict[str, Any] = {  # google/siglip-so400m-patch14-384 without its last layer and head
    "model_type": "siglip_vision_model",
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 26,
    "num_attention_heads": 16,
    "patch_size": 14,
    "image_size": 384,
    "hidden_act": "gelu_pytorch_tanh",
    "layer_norm_eps": 1e-06,
    "vision_use_head": False,
}


def _grid_pinpoints() -> list[list[int]]:
    """anyres_max_9 candidate resolutions: every (h, w) in multiples of 384 up to 6 x 6 tiles."""
    sides = [384 * k for k in range(1, 7)]
    return [[h, w] for h in sides for w in sides]


def _onevision_config(text_config: dict[str, Any], tie: bool) -> dict[str, Any]:
    return {
        "model_type": "llava_onevision",
        "image_token_index": 151646,
        "video_token_index": 151647,
        "projector_hidden_act": "gelu",
        "vision_feature_layer": -1,
        "vision_feature_select_strategy": "full",
        "vision_aspect_ratio": "anyres_max_9",
        "image_grid_pinpoints": _grid_pinpoints(),
        "tie_word_embeddings": tie,
        "text_config": text_config,
        "vision_config": dict(_VISION_SO400M),
    }


# Qwen/Qwen2-0.5B-Instruct, vocabulary grown to 152000 for <image>/<video>.
_TEXT_QWEN2_05B: dict[str, Any] = {
    "model_type": "qwen2",
    "vocab_size": 152000,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-06,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "tie_word_embeddings": True,
}
# Qwen/Qwen2-7B-Instruct, vocabulary grown to 152128.
_TEXT_QWEN2_7B: dict[str, Any] = {
    "model_type": "qwen2",
    "vocab_size": 152128,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-06,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "tie_word_embeddings": False,
}

_SIGLIP_MEAN = [0.5, 0.5, 0.5]
_SIGLIP_STD = [0.5, 0.5, 0.5]
# The checkpoints' video processor: every frame resized to 384 x 384, SigLIP normalisation.
_VIDEO_PROCESSING: dict[str, Any] = {
    "do_resize": True,
    "size": {"height": 384, "width": 384},
    "resample": 3,  # bicubic
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": _SIGLIP_MEAN,
    "image_std": _SIGLIP_STD,
    "do_convert_rgb": True,
    "do_sample_frames": False,
}
# Their image processor (still images: anyres tiling).
_IMAGE_PROCESSING: dict[str, Any] = {
    **{k: v for k, v in _VIDEO_PROCESSING.items() if k != "do_sample_frames"},
    "do_pad": True,
    "image_grid_pinpoints": _grid_pinpoints(),
}
_PROCESSOR: dict[str, Any] = {
    "num_image_tokens": 729,  # (384 / 14)^2 = 27^2 patches per 384 x 384 tile
    "vision_feature_select_strategy": "full",
    "vision_aspect_ratio": "anyres_max_9",
}

# ChatML as the hub template writes it: media markers first, then the text, no default system turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] }}{% endfor %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

PROMPT = ("Describe what happens in this video second by second: the objects, their colours, "
          "where they are and how they move.")

# Checkpoints trained with LLaVA-Video's time instruction in front of the question.
_TIME_INSTRUCTION_IDS = frozenset({"llava-video-7b"})


def onevision_video_tokens(n_frames: int, height: int, width: int, *, patch_size: int = 14,
                           size: int = 384) -> VisualGeometry:
    """Visual tokens LLaVA-OneVision's LLM sees: ceil(side/2)^2 per frame plus one newline per video.

    Frames are resized to size x size whatever their own height and width.

    >>> onevision_video_tokens(8, 240, 320).llm_tokens
    1569
    """
    del height, width  # resized to a square, aspect not kept
    side = size // patch_size
    pooled = math.ceil(side / 2)
    # SigLIP has no CLS token; the image_newline is appended once per video
    return per_frame_geometry(n_frames, pooled * pooled, side * side, size, size, extra_llm_tokens=1)

def time_instruction(timestamps_s: "np.ndarray", duration_s: float | None = None) -> str:
    """LLaVA-Video's preamble naming the video's length and the time of each sampled frame.

    As LLaVA-NeXT's own inference code writes it: the duration is the whole video's (its frame count / fps),
    and no space follows the list of times. `duration_s` is that duration; a caller that does not know it
    gets an estimate from the timestamps (the last frame standing for one more sampling interval).

    >>> import numpy as np
    >>> text = time_instruction(np.array([0.0, 1.0, 2.0]), duration_s=3.2)
    >>> text[:78]
    'The video lasts for 3.20 seconds, and 3 frames are uniformly sampled from it. '
    >>> text[78:]
    'These frames are located at 0.00s,1.00s,2.00s.Please answer the following questions related to this video.'
    >>> time_instruction(np.array([0.0, 1.0, 2.0]))[:32]
    'The video lasts for 3.00 seconds'
    """
    import numpy as np

    times = np.asarray(timestamps_s, dtype=float)
    if duration_s is None:
        step = float(np.median(np.diff(times))) if times.size > 1 else 0.0
        duration_s = float(times[-1]) + step
    located = ",".join(f"{t:.2f}s" for t in times)
    return (f"The video lasts for {duration_s:.2f} seconds, and {times.size} frames are uniformly sampled "
            f"from it. These frames are located at {located}.Please answer the following questions "
            f"related to this video.")


def _tiny_tokenizer() -> Any:
    """Qwen2-style byte-level BPE: <|endoftext|> (pad), <|im_end|> (eos), <|im_start|>, <image>, <video>."""
    return train_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"],
        pad_token="<|endoftext|>", eos_token="<|im_end|>", chat_template=CHAT_TEMPLATE,
    )


class LlavaOnevisionAdapter(FamilyAdapter):
    family: ClassVar[str] = FAMILY
    model_class: ClassVar[str] = "LlavaOnevisionForConditionalGeneration"
    config_class: ClassVar[str] = "LlavaOnevisionConfig"
    skip_modules: ClassVar[tuple[str, ...]] = ("model.vision_tower", "model.multi_modal_projector", "lm_head")
    token_id_keys: ClassVar[tuple[str, ...]] = ("image_token_index", "video_token_index")
    # SigLIP (one fused GELU: two MLP-width tensors), called with output_hidden_states=True.
    memory: ClassVar[MemoryTraits] = MemoryTraits(vision_kind="per_frame", mlp_copies=2, all_hidden_states=True)
    specs: ClassVar[dict[str, ModelSpec]] = {
        "llava-onevision-0.5b": ModelSpec(
            model_id="llava-onevision-0.5b",
            hub_id="llava-hf/llava-onevision-qwen2-0.5b-ov-hf",
            family=FAMILY,
            config=_onevision_config(_TEXT_QWEN2_05B, tie=True),
            published_params=0.89e9,
            frame_mode="video",
            default_frames=32,
            prompt=PROMPT,
            aliases=("llava-onevision-qwen2-0.5b-ov-hf", "llava-onevision-qwen2-0.5b-ov"),
            notes="Qwen2-0.5B + SigLIP-so400m (384 px); 196 tokens per frame + 1 per video; 32 frames in its "
                  "video evaluations.",
        ),
        "llava-onevision-7b": ModelSpec(
            model_id="llava-onevision-7b",
            hub_id="llava-hf/llava-onevision-qwen2-7b-ov-hf",
            family=FAMILY,
            config=_onevision_config(_TEXT_QWEN2_7B, tie=False),
            published_params=8.03e9,
            frame_mode="video",
            default_frames=32,
            prompt=PROMPT,
            aliases=("llava-onevision-qwen2-7b-ov-hf", "llava-onevision-qwen2-7b-ov"),
            notes="Qwen2-7B + SigLIP-so400m (384 px); 196 tokens per frame + 1 per video.",
        ),
        "llava-video-7b": ModelSpec(
            model_id="llava-video-7b",
            hub_id="llava-hf/LLaVA-Video-7B-Qwen2-hf",
            family=FAMILY,
            config=_onevision_config(_TEXT_QWEN2_7B, tie=False),
            published_params=8.03e9,
            frame_mode="video",
            default_frames=64,
            prompt=PROMPT,
            aliases=("llava-video-7b-qwen2-hf", "llava-video-7b-qwen2"),
            notes="OneVision architecture fine-tuned on LLaVA-Video-178K; 64 frames and a time instruction "
                  "(frame times) in its own evaluations.",
        ),
    }

    # ---- geometry ----------------------------------------------------------------------------
    def visual_tokens(self, n_frames: int, height: int, width: int, *, model_id: str | None = None,
                      max_pixels: int | None = None, min_pixels: int | None = None,
                      options: Mapping[str, Any] | None = None) -> VisualGeometry:
        """Visual tokens of n_frames frames of height x width (all three ids, every source)."""
        return onevision_video_tokens(
            n_frames, height, width, patch_size=_VISION_SO400M["patch_size"],
            size=_VIDEO_PROCESSING["size"]["height"],
        )

    # ---- tiny twin ---------------------------------------------------------------------------
    def tiny_config(self) -> Any:
        from transformers import LlavaOnevisionConfig

        tokenizer = _tiny_tokenizer()
        names = ("<image>", "<video>", "<|endoftext|>", "<|im_end|>")
        ids = {name: tokenizer.convert_tokens_to_ids(name) for name in names}
        return LlavaOnevisionConfig(
            text_config={
                "model_type": "qwen2",
                "vocab_size": len(tokenizer),
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "max_position_embeddings": 32768,
                "rms_norm_eps": 1e-06,
                "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
                "bos_token_id": ids["<|endoftext|>"],
                "eos_token_id": ids["<|im_end|>"],
                "pad_token_id": ids["<|endoftext|>"],
                "tie_word_embeddings": False,
            },
            vision_config={
                **_VISION_SO400M,
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
            },
            image_token_index=ids["<image>"],
            video_token_index=ids["<video>"],
            projector_hidden_act="gelu",
            vision_feature_layer=-1,
            vision_feature_select_strategy="full",
            vision_aspect_ratio="anyres_max_9",
            image_grid_pinpoints=_grid_pinpoints(),
            tie_word_embeddings=False,
        )

    def fabricate_processor(self, out_dir: Path) -> Any:
        from transformers import (
            LlavaOnevisionImageProcessor,
            LlavaOnevisionProcessor,
            LlavaOnevisionVideoProcessor,
        )

        processor = LlavaOnevisionProcessor(
            image_processor=LlavaOnevisionImageProcessor(**_IMAGE_PROCESSING),
            tokenizer=_tiny_tokenizer(),
            video_processor=LlavaOnevisionVideoProcessor(**_VIDEO_PROCESSING),
            chat_template=CHAT_TEMPLATE,
            **_PROCESSOR,
        )
        processor.save_pretrained(out_dir)
        return processor

    # ---- inputs --------------------------------------------------------------------------------
    def token_layout(self, loaded: LoadedModel, capture: Any, n_frames: int, height: int, width: int) -> Any:
        """Per frame: the patch grid interpolated (bilinear) to ceil(side/2) squared, row-major; then one
        learned newline token for the whole video. Frames are resized whole to a square."""
        import math

        import numpy as np

        from workbench.models.layout import per_frame_grids

        patches = capture.segments[0].inputs["pixel_values_videos_shape"][-1] // loaded.model.config.vision_config.patch_size
        side = math.ceil(patches / 2)
        return per_frame_grids(np.concatenate(capture.visual_positions), n_frames, side, side,
                               trailing_clip_tokens=1,
                               description=f"{loaded.spec.model_id}: {patches}x{patches} patches pooled to "
                                           f"{side}x{side} per frame + 1 newline token")

    def build_inputs(self, loaded: LoadedModel, frames: "np.ndarray", timestamps_s: "np.ndarray | None",
                     prompt: str) -> Any:
        """One user turn: the video then the prompt (LLaVA-Video: time instruction first when timed)."""
        processor = loaded.processor
        if loaded.spec.model_id in _TIME_INSTRUCTION_IDS and timestamps_s is not None and len(timestamps_s):
            prompt = f"{time_instruction(timestamps_s, CLIP_DURATION_S.get())}\n{prompt}"
        conversation = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]}]
        text = processor.apply_chat_template(conversation, add_generation_prompt=True)
        return processor(text=text, videos=[list(frames)], return_tensors="pt")

    def align_token_ids(self, config: Any, tokenizer: Any) -> None:
        """Top-level <image>/<video> ids, and the Qwen2 text config's bos/eos/pad."""
        super().align_token_ids(config, tokenizer)
        text = config.text_config
        text.bos_token_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
        text.eos_token_id = tokenizer.eos_token_id
        text.pad_token_id = tokenizer.pad_token_id


ADAPTER = LlavaOnevisionAdapter()
