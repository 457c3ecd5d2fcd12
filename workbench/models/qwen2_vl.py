"""Qwen2-VL (Qwen/Qwen2-VL-2B-Instruct, -7B-Instruct): native video input with 3D (M-)RoPE.

Quirks kept here:
- Frames go in as one video (`pixel_values_videos`, `video_grid_thw`): the ViT cuts 14 px patches over 2
  frames (temporal patch 2), and the merger fuses 2x2 patches into one LLM token, so the LLM sees
  (T/2) * (H'/28) * (W'/28) tokens for T frames resized to H' x W'; the vision-encoder sequence is 4x that.
  An odd frame count is padded by repeating the last frame.
- The resize (`smart_resize`) rounds each side to a multiple of 28 and keeps the area between a per-frame
  `min_pixels` and `max_pixels`. The checkpoints ship only preprocessor_config.json (min 3136, max 12845056
  pixels), which the video processor also reads: frames keep close to their native size unless a smaller
  budget is set (`max_pixels` in `build_inputs`, or `loaded.settings.max_pixels` when LoadSettings has it).
- Special tokens (<|vision_start|>, <|video_pad|>, ...) are named by config ids at the top level; bos/eos
  live in the text config.
- 5.23's video processor warns unless `cap_pixels_per_frame` is given; we pass False (the behaviour it
  falls back to), so the per-frame budget alone decides the size and `visual_tokens` matches it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from workbench.models.base import FamilyAdapter, LoadedModel, ModelSpec
from workbench.models.geometry import VisualGeometry, patch_sequence_geometry
from workbench.models.tiny import train_tokenizer
from workbench.models.traits import MemoryTraits, qwen2_vit_sizes

if TYPE_CHECKING:
    import numpy as np

FAMILY = "qwen2_vl"

# Qwen/Qwen2-VL-2B-Instruct config.json, trimmed to what builds the architecture (flat text fields).
_CONFIG_2B: dict[str, Any] = {
    "model_type": "qwen2_vl",
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
    "image_token_id": 151655,
    "video_token_id": 151656,
    "hidden_act": "silu",
    "hidden_size": 1536,
    "initializer_range": 0.02,
    "intermediate_size": 8960,
    "max_position_embeddings": 32768,
    "max_window_layers": 28,
    "num_attention_heads": 12,
    "num_hidden_layers": 28,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "use_sliding_window": False,
    "tie_word_embeddings": True,
    "vocab_size": 151936,
    "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
    "vision_config": {
        "depth": 32,
        "embed_dim": 1280,
        "mlp_ratio": 4,
        "num_heads": 16,
        "in_channels": 3,
        "hidden_size": 1536,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    },
}

# Qwen/Qwen2-VL-7B-Instruct: same vision tower, wider and untied Qwen2-7B language model.
_CONFIG_7B: dict[str, Any] = {
    **_CONFIG_2B,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "tie_word_embeddings": False,
    "vocab_size": 152064,
    "vision_config": {**_CONFIG_2B["vision_config"], "hidden_size": 3584},
}

# The checkpoints' preprocessor_config.json; the video processor reads the same file.
_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
MIN_PIXELS = 3136  # 56 * 56
MAX_PIXELS = 12845056  # 28 * 28 * 16384
_PROCESSING: dict[str, Any] = {
    "size": {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS},
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": _CLIP_MEAN,
    "image_std": _CLIP_STD,
    "resample": 3,  # bicubic
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "do_convert_rgb": True,
}

# Named special tokens first (pad, eos), then the chat and vision markers, as in the Qwen2 vocabulary.
PAD, EOS = "<|endoftext|>", "<|im_end|>"
MARKERS = ["<|im_start|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>",
           "<|video_pad|>"]

# The Qwen2-VL chat format: a default system turn, then <|im_start|>role ... <|im_end|> turns, each image or
# video as <|vision_start|><|..._pad|><|vision_end|> in the user turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'video' %}{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

PROMPT = ("Describe what happens in this video second by second: the objects, their colours, "
          "where they are and how they move.")

_NOTES = ("Native video: (T/2) x (H'/28) x (W'/28) LLM tokens, 4x that in the vision encoder; "
          "per-frame pixel budget 3136..12845056 by default.")


def qwen2_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """The frame size Qwen2-VL's processor resizes to (its own `smart_resize`, called the same way).

    >>> qwen2_resize(240, 320, 28, 3136, 12845056)
    (252, 308)
    >>> qwen2_resize(480, 640, 28, 3136, 200704)
    (364, 504)
    """
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import smart_resize

    return smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)


def frame_spacing_s(timestamps_s: "np.ndarray | None") -> float:
    """Median seconds between frames (1.0 without timestamps or with a single frame).

    >>> frame_spacing_s([0.25, 0.75, 1.25])
    0.5
    """
    import numpy as np

    if timestamps_s is None or len(timestamps_s) < 2:
        return 1.0
    return float(np.median(np.diff(np.asarray(timestamps_s, float))))


def frame_metadata(n_frames: int, timestamps_s: "np.ndarray | None",
                   clock_fps: float = 1000.0) -> dict[str, Any]:
    """VideoMetadata fields for frames that were already sampled at `timestamps_s` (seconds).

    The processors know frames by index on a clock of `fps`; a millisecond clock keeps the timestamps
    exact. Without timestamps the frames are taken as 1 s apart. `total_num_frames` spans n frame
    intervals (or up to the last frame if later), so `sampled_fps` is the sampling rate for clips that
    start at the video's beginning.

    >>> meta = frame_metadata(3, [0.5, 1.5, 2.5])
    >>> meta["frames_indices"], meta["total_num_frames"], meta["fps"]
    ([500, 1500, 2500], 3000, 1000.0)
    """
    import numpy as np

    times = np.arange(n_frames, dtype=float) if timestamps_s is None else np.asarray(timestamps_s, float)
    if len(times) != n_frames:
        raise ValueError(f"{len(times)} timestamps for {n_frames} frames")
    indices = np.round(times * clock_fps).astype(int)
    step = frame_spacing_s(times)
    total = max(int(indices[-1]) + 1, round(n_frames * step * clock_fps))
    return {"total_num_frames": total, "fps": clock_fps, "frames_indices": indices.tolist(),
            "duration": total / clock_fps}


@lru_cache(maxsize=1)
def _tiny_tokenizer() -> Any:
    """Byte-level BPE with Qwen2's named tokens (pad <|endoftext|>, eos <|im_end|>) and vision markers."""
    return train_tokenizer(MARKERS, pad_token=PAD, eos_token=EOS, chat_template=CHAT_TEMPLATE)


class Qwen2VLAdapter(FamilyAdapter):
    family: ClassVar[str] = FAMILY
    model_class: ClassVar[str] = "Qwen2VLForConditionalGeneration"
    config_class: ClassVar[str] = "Qwen2VLConfig"
    skip_modules: ClassVar[tuple[str, ...]] = ("model.visual", "lm_head")
    token_id_keys: ClassVar[tuple[str, ...]] = (
        "image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id",
    )
    # Tokens named by the config id fields (top level) and the text config's bos/eos/pad.
    token_names: ClassVar[dict[str, str]] = {
        "image_token_id": "<|image_pad|>",
        "video_token_id": "<|video_pad|>",
        "vision_start_token_id": "<|vision_start|>",
        "vision_end_token_id": "<|vision_end|>",
    }
    processing: ClassVar[dict[str, Any]] = _PROCESSING
    chat_template: ClassVar[str] = CHAT_TEMPLATE
    # One patch sequence over the clip, attended per frame pair; q and k rotated in fp32; MLP fc1 -> quick_gelu
    # -> fc2 keeps three MLP-width tensors.
    memory: ClassVar[MemoryTraits] = MemoryTraits(
        vision_kind="patch_sequence", vision_sizes=qwen2_vit_sizes, mlp_copies=3, rotary_fp32=True,
        pixel_budget=True,
    )
    specs: ClassVar[dict[str, ModelSpec]] = {
        "qwen2-vl-2b": ModelSpec(
            model_id="qwen2-vl-2b",
            hub_id="Qwen/Qwen2-VL-2B-Instruct",
            family=FAMILY,
            config=_CONFIG_2B,
            published_params=2.21e9,
            frame_mode="video",
            default_frames=8,
            prompt=PROMPT,
            aliases=("qwen2-vl-2b-instruct",),
            notes=_NOTES,
        ),
        "qwen2-vl-7b": ModelSpec(
            model_id="qwen2-vl-7b",
            hub_id="Qwen/Qwen2-VL-7B-Instruct",
            family=FAMILY,
            config=_CONFIG_7B,
            published_params=8.29e9,
            frame_mode="video",
            default_frames=8,
            prompt=PROMPT,
            aliases=("qwen2-vl-7b-instruct",),
            notes=_NOTES,
        ),
    }

    # ---- geometry ----------------------------------------------------------------------------
    def visual_tokens(self, n_frames: int, height: int, width: int, *, model_id: str | None = None,
                      max_pixels: int | None = None, min_pixels: int | None = None,
                      options: Mapping[str, Any] | None = None) -> VisualGeometry:
        """Tokens a clip of n_frames (height x width) costs: LLM placeholders and vision-encoder sequence.

        `max_pixels` / `min_pixels` are per frame (the processor's defaults when None); every checkpoint (and
        the tiny twin) shares the processing, so `model_id` and `options` change nothing.

        >>> ADAPTER.visual_tokens(8, 240, 320).llm_tokens  # 4 frame pairs x (252/28) x (308/28)
        396
        """
        patch = self.processing["patch_size"]
        merge = self.processing["merge_size"]
        size = self.processing["size"]
        budget = size["longest_edge"] if max_pixels is None else max_pixels
        resized_h, resized_w = qwen2_resize(
            height, width, patch * merge,
            min_pixels=size["shortest_edge"] if min_pixels is None else min_pixels, max_pixels=budget,
        )
        return patch_sequence_geometry(n_frames, resized_h, resized_w, patch=patch, merge=merge,
                                       temporal=self.processing["temporal_patch_size"], pixel_budget=budget)

    def size_kwargs(self, n_frames: int, max_pixels: int | None, min_pixels: int | None) -> dict[str, Any]:
        """The video processor's `size` for a per-frame pixel budget ({} keeps the processor's own)."""
        if max_pixels is None and min_pixels is None:
            return {}
        size = self.processing["size"]
        return {"size": {
            "shortest_edge": size["shortest_edge"] if min_pixels is None else min_pixels,
            "longest_edge": size["longest_edge"] if max_pixels is None else max_pixels,
        }}

    # ---- tiny twin ---------------------------------------------------------------------------
    def tiny_tokenizer(self) -> Any:
        return _tiny_tokenizer()

    def tiny_config(self) -> Any:
        from transformers import Qwen2VLConfig

        tokenizer = self.tiny_tokenizer()
        real_vision = _CONFIG_2B["vision_config"]
        return Qwen2VLConfig(
            text_config={
                "vocab_size": len(tokenizer),
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,  # head_dim 16
                "num_key_value_heads": 2,
                "max_position_embeddings": 32768,
                "rms_norm_eps": 1e-06,
                # sections sum to head_dim / 2 (real: [16, 24, 24] for head_dim 128)
                "rope_parameters": {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 1e6},
                "bos_token_id": tokenizer.pad_token_id,
                "eos_token_id": tokenizer.eos_token_id,
                "pad_token_id": tokenizer.pad_token_id,
            },
            vision_config={
                "depth": 2,
                "embed_dim": 32,
                "num_heads": 2,
                "mlp_ratio": 4,
                "hidden_size": 64,  # merger output = LLM width
                "patch_size": real_vision["patch_size"],
                "spatial_merge_size": real_vision["spatial_merge_size"],
                "temporal_patch_size": real_vision["temporal_patch_size"],
            },
            # untied: a random tied model mostly repeats the prompt's last token ("\n"), an empty caption
            tie_word_embeddings=False,
            **{key: tokenizer.convert_tokens_to_ids(token) for key, token in self.token_names.items()},
        )

    def fabricate_processor(self, out_dir: Path) -> Any:
        from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

        processor = Qwen2VLProcessor(
            image_processor=Qwen2VLImageProcessor(**self.processing),
            video_processor=Qwen2VLVideoProcessor(**self.processing),
            tokenizer=self.tiny_tokenizer(),
            chat_template=self.chat_template,
        )
        processor.save_pretrained(out_dir)
        return processor

    # ---- inputs --------------------------------------------------------------------------------
    def prompt_text(self, loaded: LoadedModel, prompt: str) -> str:
        conversation = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]}]
        return loaded.processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)

    def build_inputs(self, loaded: LoadedModel, frames: "np.ndarray", timestamps_s: "np.ndarray | None",
                     prompt: str, max_pixels: int | None = None, min_pixels: int | None = None) -> Any:
        """Frames (T,H,W,3 uint8) as one video after the chat-templated prompt.

        The per-frame pixel budget comes from the arguments, else from `loaded.settings.max_pixels` /
        `min_pixels` when the settings carry them, else from the processor's own config.
        """
        from transformers.video_utils import VideoMetadata

        if max_pixels is None:
            max_pixels = getattr(loaded.settings, "max_pixels", None)
        if min_pixels is None:
            min_pixels = getattr(loaded.settings, "min_pixels", None)
        n_frames = int(frames.shape[0])
        metadata = VideoMetadata(**frame_metadata(n_frames, timestamps_s))
        return loaded.processor(
            text=[self.prompt_text(loaded, prompt)],
            videos=[frames],
            video_metadata=[metadata],
            do_sample_frames=False,  # frames arrive already sampled
            cap_pixels_per_frame=False,
            return_tensors="pt",
            **self.size_kwargs(n_frames, max_pixels, min_pixels),
        )

    def token_layout(self, loaded: LoadedModel, capture: Any, n_frames: int, height: int, width: int) -> Any:
        """Temporal patches of `temporal_patch_size` frames, each a (grid_h/merge) x (grid_w/merge) grid in
        row-major order (the processor orders patches so that each merge window is one LLM token); the whole
        frame is resized, so the grid covers all of it."""
        import numpy as np

        from workbench.models.layout import per_frame_grids

        vision = loaded.model.config.vision_config
        _, grid_h, grid_w = (int(v) for v in capture.segments[0].inputs["video_grid_thw"][0])
        merge = vision.spatial_merge_size
        return per_frame_grids(
            np.concatenate(capture.visual_positions), n_frames, grid_h // merge, grid_w // merge,
            frames_per_group=vision.temporal_patch_size,
            description=f"{loaded.spec.model_id}: {vision.temporal_patch_size}-frame temporal patches, "
                        f"{grid_h // merge}x{grid_w // merge} merged grid",
        )

    def align_token_ids(self, config: Any, tokenizer: Any) -> None:
        """Vision markers at the top level; bos/eos/pad in the text config."""
        for key, token in self.token_names.items():
            setattr(config, key, tokenizer.convert_tokens_to_ids(token))
        text = config.get_text_config()
        text.bos_token_id = tokenizer.pad_token_id  # Qwen's bos is <|endoftext|>, which is also its pad
        text.eos_token_id = tokenizer.eos_token_id
        text.pad_token_id = tokenizer.pad_token_id


ADAPTER = Qwen2VLAdapter()
