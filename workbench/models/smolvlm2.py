"""SmolVLM2 (SigLIP + pixel-shuffle connector + SmolLM2): small video models with timestamped frames.

Each frame is resized to the vision tower's square input (384 px for 2.2B, 512 px for 500M/256M) and becomes
81 or 64 visual tokens after the pixel shuffle; the processor writes "Frame from MM:SS:" before each frame, so it
needs the clip's timestamps as video metadata (MODEL_NOTES pitfall 4; without them it assumes 24 fps). The
processor needs the num2words package (pitfall 10).
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

IMAGE_TOKEN_ID = 49190  # <image> in the SmolVLM2 tokenizers


def _vision(hidden: int, intermediate: int, layers: int, heads: int, image_size: int, patch: int) -> dict[str, Any]:
    return {
        "model_type": "smolvlm_vision",
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "image_size": image_size,
        "patch_size": patch,
        "hidden_act": "gelu_pytorch_tanh",
        "layer_norm_eps": 1e-6,
        "num_channels": 3,
    }


def _text(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int, rope_theta: float,
          max_positions: int) -> dict[str, Any]:
    return {
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": hidden // heads,
        "vocab_size": 49280,
        "max_position_embeddings": max_positions,
        "rms_norm_eps": 1e-5,
        "rope_parameters": {"rope_type": "default", "rope_theta": rope_theta},
        "hidden_act": "silu",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 2,
        "tie_word_embeddings": False,
    }


def _config(vision: dict[str, Any], text: dict[str, Any], scale_factor: int) -> dict[str, Any]:
    return {
        "model_type": "smolvlm",
        "image_token_id": IMAGE_TOKEN_ID,
        "scale_factor": scale_factor,
        "tie_word_embeddings": False,
        "pad_token_id": 128002,
        "vision_config": vision,
        "text_config": text,
    }


_PROMPT = "Describe what happens in this video, second by second, using the frame timestamps."
_NOTES = ("Frames resized to the vision tower's square input; each frame is preceded by 'Frame from MM:SS:' "
          "built from the clip's timestamps.")

SPECS: dict[str, ModelSpec] = {
    "smolvlm2-2.2b": ModelSpec(
        model_id="smolvlm2-2.2b",
        hub_id="HuggingFaceTB/SmolVLM2-2.2B-Instruct",
        family="smolvlm2",
        # SigLIP so400m at 384 px, patch 14 (27x27 = 729 patches), 3x3 pixel shuffle -> 81 tokens per frame.
        config=_config(_vision(1152, 4304, 27, 16, 384, 14),
                       _text(2048, 8192, 24, 32, 32, rope_theta=273768.0, max_positions=16384), scale_factor=3),
        published_params=2.25e9,
        frame_mode="video",
        default_frames=16,
        prompt=_PROMPT,
        aliases=("smolvlm2-2.2b-instruct", "smolvlm2"),
        notes=_NOTES,
    ),
    "smolvlm2-500m": ModelSpec(
        model_id="smolvlm2-500m",
        hub_id="HuggingFaceTB/SmolVLM2-500M-Video-Instruct",
        family="smolvlm2",
        # SigLIP base at 512 px, patch 16 (32x32 = 1024 patches), 4x4 pixel shuffle -> 64 tokens per frame.
        config=_config(_vision(768, 3072, 12, 12, 512, 16),
                       _text(960, 2560, 32, 15, 5, rope_theta=100000.0, max_positions=8192), scale_factor=4),
        published_params=0.51e9,
        frame_mode="video",
        default_frames=16,
        prompt=_PROMPT,
        aliases=("smolvlm2-500m-video-instruct",),
        notes=_NOTES,
    ),
    "smolvlm2-256m": ModelSpec(
        model_id="smolvlm2-256m",
        hub_id="HuggingFaceTB/SmolVLM2-256M-Video-Instruct",
        family="smolvlm2",
        config=_config(_vision(768, 3072, 12, 12, 512, 16),
                       _text(576, 1536, 30, 9, 3, rope_theta=100000.0, max_positions=8192), scale_factor=4),
        published_params=0.256e9,  # "256M"; MODEL_NOTES rounds it to 0.26B
        frame_mode="video",
        default_frames=16,
        prompt=_PROMPT,
        aliases=("smolvlm2-256m-video-instruct",),
        notes=_NOTES,
    ),
}

# Special tokens of the SmolVLM2 tokenizers the processor and chat template use.
_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<fake_token_around_image>", "<image>",
            "<global-img>", "<end_of_utterance>", "<video>"]

# Modelled on the checkpoints' chat_template.json: "<|im_start|>User: <video>text<end_of_utterance>\nAssistant:".
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}"
    "{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def processor_settings(spec: ModelSpec) -> dict[str, Any]:
    """The checkpoint's preprocessor settings: frames go to the vision tower's square size (longest_edge)."""
    side = int(spec.config["vision_config"]["image_size"])
    return {
        "resample": 1,  # Lanczos
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "size": {"longest_edge": 4 * side},  # images: split into tiles of `side`
        "max_image_size": {"longest_edge": side},
        "video_sampling": {"fps": 1, "max_frames": 64, "video_size": {"longest_edge": side}},
    }


def pixel_mask_inputs(geometry: VisualGeometry, dtype_bytes: int) -> tuple[int, int]:
    """(extra input bytes, transient copies): SmolVLM also sends an int64 pixel_attention_mask per frame, and
    indexes copies of the pixels and the mask before the tower."""
    g = geometry
    mask = g.frames_used * g.resized_height * g.resized_width * 8
    return mask, g.pixel_values * dtype_bytes + mask


class SmolVLM2Adapter(FamilyAdapter):
    family: ClassVar[str] = "smolvlm2"
    model_class: ClassVar[str] = "SmolVLMForConditionalGeneration"
    config_class: ClassVar[str] = "SmolVLMConfig"
    # Full names in SmolVLMForConditionalGeneration (5.23): model.vision_model, model.connector,
    # model.text_model, lm_head. The SigLIP tower and the pixel-shuffle projection stay 16-bit.
    skip_modules: ClassVar[tuple[str, ...]] = ("model.vision_model", "model.connector", "lm_head")
    token_id_keys: ClassVar[tuple[str, ...]] = ("image_token_id",)
    # SigLIP (one fused GELU); the processor also sends an int64 pixel_attention_mask per frame, indexed into
    # copies of both before the tower.
    memory: ClassVar[MemoryTraits] = MemoryTraits(vision_kind="per_frame", mlp_copies=2,
                                                  extra_inputs=pixel_mask_inputs)
    specs: ClassVar[dict[str, ModelSpec]] = SPECS
    # The tiny twin has the 500M/256M geometry (512 px, patch 16, 4x4 shuffle -> 64 tokens per frame).
    tiny_spec_id: ClassVar[str] = "smolvlm2-256m"

    # ---- geometry ----------------------------------------------------------------------------------
    def visual_tokens(self, n_frames: int, height: int, width: int, *, model_id: str | None = None,
                      max_pixels: int | None = None, min_pixels: int | None = None,
                      options: Mapping[str, Any] | None = None) -> VisualGeometry:
        """Visual tokens the LLM sees: every frame is resized to the tower's square input, whatever its size.

        >>> ADAPTER.visual_tokens(8, 480, 640, model_id="smolvlm2-2.2b").llm_tokens_per_segment
        81
        >>> ADAPTER.visual_tokens(8, 480, 640, model_id="smolvlm2-500m").segment_len
        1024
        """
        config = self.specs[model_id or self.tiny_spec_id].config
        vision = config["vision_config"]
        patches = (vision["image_size"] // vision["patch_size"]) ** 2  # a conv with stride: 384/14 -> 27
        side = image_side(config)  # no CLS token in SigLIP
        return per_frame_geometry(n_frames, patches // config["scale_factor"] ** 2, patches, side, side)

    # ---- tiny twin ---------------------------------------------------------------------------------
    def tiny_config(self) -> Any:
        """The 256M geometry with tiny widths; text Linear inputs are multiples of 64 (bitsandbytes CPU 4-bit)."""
        tokenizer = self._tiny_tokenizer()
        real = self.specs[self.tiny_spec_id].config
        vision = dict(real["vision_config"], hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2)
        text = dict(real["text_config"], hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=2, num_key_value_heads=1, head_dim=32, vocab_size=len(tokenizer),
                    max_position_embeddings=4096, bos_token_id=tokenizer.bos_token_id,
                    eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        config = _config(vision, text, real["scale_factor"])
        config["image_token_id"] = tokenizer.convert_tokens_to_ids("<image>")
        config["pad_token_id"] = tokenizer.pad_token_id
        return self.config_cls().from_dict(config)

    def _tiny_tokenizer(self) -> Any:
        return train_tokenizer(
            _SPECIAL, unk_token="<|endoftext|>", bos_token="<|im_start|>", eos_token="<end_of_utterance>",
            pad_token="<|im_end|>", chat_template=CHAT_TEMPLATE,
        )

    def build_processor(self, spec: ModelSpec, tokenizer: Any) -> Any:
        """SmolVLMProcessor with `spec`'s real image/video settings around `tokenizer`."""
        from transformers import SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor

        settings = processor_settings(spec)
        image_processor = SmolVLMImageProcessor(
            **{k: v for k, v in settings.items() if k != "video_sampling"}, do_image_splitting=True
        )
        video_processor = SmolVLMVideoProcessor(**settings, do_sample_frames=False)
        return SmolVLMProcessor(
            image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
            image_seq_len=self.visual_tokens(1, 0, 0, model_id=spec.model_id).llm_tokens_per_segment,
            chat_template=CHAT_TEMPLATE,
        )

    def fabricate_processor(self, out_dir: Path) -> Any:
        processor = self.build_processor(self.specs[self.tiny_spec_id], self._tiny_tokenizer())
        processor.save_pretrained(out_dir)
        return processor

    def align_token_ids(self, config: Any, tokenizer: Any) -> None:
        config.image_token_id = tokenizer.convert_tokens_to_ids("<image>")
        text = config.text_config
        text.bos_token_id = tokenizer.bos_token_id
        text.eos_token_id = tokenizer.eos_token_id
        text.pad_token_id = tokenizer.pad_token_id

    # ---- inputs --------------------------------------------------------------------------------------
    def token_layout(self, loaded: LoadedModel, capture: Any, n_frames: int, height: int, width: int) -> Any:
        """Per frame: the SigLIP patch grid pixel-shuffled by `scale_factor` (blocks of scale x scale
        patches become one token), row-major; each frame is resized whole to the tower's square."""
        import numpy as np

        from workbench.models.layout import per_frame_grids

        config = loaded.model.config
        side = config.vision_config.image_size // config.vision_config.patch_size // config.scale_factor
        return per_frame_grids(np.concatenate(capture.visual_positions), n_frames, side, side,
                               description=f"{loaded.spec.model_id}: pixel shuffle x{config.scale_factor}, "
                                           f"{side}x{side} per frame")

    def build_inputs(self, loaded: LoadedModel, frames: "np.ndarray", timestamps_s: "np.ndarray | None",
                     prompt: str) -> Any:
        """Frames (T,H,W,3 uint8) + their timestamps -> chat text with one timestamped image block per frame."""
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]}]
        text = loaded.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return loaded.processor(
            text=text, videos=[frames], video_metadata=[video_metadata(frames.shape, timestamps_s)],
            do_sample_frames=False, return_tensors="pt",
        )


def video_metadata(shape: tuple[int, ...], timestamps_s: "np.ndarray | None") -> Any:
    """VideoMetadata whose `timestamps` are the clip's own (ms resolution); 1 frame per second without them.

    >>> video_metadata((3, 48, 64, 3), [0.5, 1.5, 2.5]).timestamps
    [0.5, 1.5, 2.5]
    """
    import numpy as np
    from transformers.video_utils import VideoMetadata

    n_frames, height, width = int(shape[0]), int(shape[1]), int(shape[2])
    times = np.arange(n_frames, dtype=float) if timestamps_s is None else np.asarray(timestamps_s, dtype=float)
    step = float(np.mean(np.diff(times))) if n_frames > 1 else 1.0
    indices = [int(round(t * 1000)) for t in times]
    return VideoMetadata(
        total_num_frames=indices[-1] + 1, fps=1000.0, width=width, height=height,
        duration=float(times[-1] + step / 2), frames_indices=indices,
    )


ADAPTER = SmolVLM2Adapter()
