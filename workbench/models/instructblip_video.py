"""InstructBLIP-Video: InstructBLIP (ViT-g + instruction-aware Q-Former + Vicuna-7B) run on exactly 4 frames.

The video class reuses the image checkpoint Salesforce/instructblip-vicuna-7b: each of the 4 frames becomes 32
query tokens (the instruction is fed to the Q-Former too), 128 visual tokens in all, placed before the prompt.
The processor always writes placeholders for 4 frames and the model silently keeps the first 4 of more
(MODEL_NOTES pitfall 3), so describe() brings every clip to 4 frames loudly (frame_policy).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from workbench.models.base import FamilyAdapter, LoadedModel, LoadSettings, ModelSpec
from workbench.models.geometry import VisualGeometry, image_side, per_frame_geometry
from workbench.models.tiny import train_tokenizer
from workbench.models.traits import MemoryTraits

if TYPE_CHECKING:
    import numpy as np

FRAMES = 4  # hard-wired in InstructBlipVideoProcessor and in generate()

_VICUNA_7B = {
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    # The current revision of instructblip-vicuna-7b (config.json, added_tokens.json, generation_config.json):
    # LLaMA's 32000 + [PAD] 32000, <image> 32001, <video> 32002, padded to 32064; bos 0, eos 1, pad 32000
    # (its tokenizer uses </s> as bos).
    "vocab_size": 32064,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6,
    "hidden_act": "silu",
    "bos_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 32000,
    "tie_word_embeddings": False,
}

SPECS: dict[str, ModelSpec] = {
    "instructblip-video-vicuna-7b": ModelSpec(
        model_id="instructblip-video-vicuna-7b",
        hub_id="Salesforce/instructblip-vicuna-7b",
        family="instructblip_video",
        # Published as model_type "instructblip" with <image> 32001 and <video> 32002 (video_token_index); the
        # video class reads the same numbers. Its processor_config.json names InstructBlipVideoProcessor.
        config={
            "model_type": "instructblipvideo",
            "num_query_tokens": 32,
            "image_token_index": 32001,
            "video_token_index": 32002,
            "initializer_factor": 1.0,
            "initializer_range": 0.02,
            "vision_config": {
                "model_type": "instructblipvideo_vision_model",
                "hidden_size": 1408,
                "intermediate_size": 6144,
                "num_hidden_layers": 39,
                "num_attention_heads": 16,
                "image_size": 224,
                "patch_size": 14,
                "hidden_act": "gelu",
                "layer_norm_eps": 1e-6,
                "qkv_bias": True,
            },
            "qformer_config": {
                "model_type": "instructblipvideo_qformer",
                "vocab_size": 30523,  # bert-base-uncased + [DEC]
                "hidden_size": 768,
                "num_hidden_layers": 12,
                "num_attention_heads": 12,
                "intermediate_size": 3072,
                "hidden_act": "gelu",
                "cross_attention_frequency": 2,
                "encoder_hidden_size": 1408,
                "max_position_embeddings": 512,
                "layer_norm_eps": 1e-12,
                "pad_token_id": 0,
            },
            "text_config": dict(_VICUNA_7B),
        },
        published_params=7.91e9,
        frame_mode="fixed",
        fixed_frames=FRAMES,
        default_frames=FRAMES,
        prompt="Describe in detail what happens in this video, in the order it happens.",
        aliases=("instructblip-video", "instructblip-vicuna-7b", "instructblipvideo"),
        notes="Exactly 4 frames (32 query tokens each, 128 in all); other counts are resampled or refused "
              "(frame_policy). The instruction also goes to the Q-Former.",
    ),
}

# The real checkpoint's BlipImageProcessor settings, used for the video processor.
_VIDEO_PROCESSOR = {
    "size": {"height": 224, "width": 224},
    "resample": 3,  # bicubic
    "do_resize": True,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],  # OpenAI CLIP
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "do_convert_rgb": True,
}


class InstructBlipVideoAdapter(FamilyAdapter):
    family: ClassVar[str] = "instructblip_video"
    model_class: ClassVar[str] = "InstructBlipVideoForConditionalGeneration"
    config_class: ClassVar[str] = "InstructBlipVideoConfig"
    # Top-level names in InstructBlipVideoForConditionalGeneration (5.23); unlike BLIP-2 the Q-Former is not
    # in _keep_in_fp32_modules, so it must be named here to stay 16-bit.
    skip_modules: ClassVar[tuple[str, ...]] = (
        "vision_model", "qformer", "language_projection", "language_model.lm_head",
    )
    token_id_keys: ClassVar[tuple[str, ...]] = ("video_token_index",)
    # EVA ViT (one fused GELU, eager softmax in the compute dtype), the 4 frames batched.
    memory: ClassVar[MemoryTraits] = MemoryTraits(vision_kind="per_frame", mlp_copies=2, softmax_fp32=False)
    specs: ClassVar[dict[str, ModelSpec]] = SPECS

    # ---- geometry ----------------------------------------------------------------------------------
    def visual_tokens(self, n_frames: int, height: int, width: int, *, model_id: str | None = None,
                      max_pixels: int | None = None, min_pixels: int | None = None,
                      options: Mapping[str, Any] | None = None) -> VisualGeometry:
        """Visual tokens the LLM sees: always 4 frames x 32 query tokens, whatever was given.

        >>> ADAPTER.visual_tokens(8, 480, 640).llm_tokens
        128
        """
        config = self.specs[model_id or "instructblip-video-vicuna-7b"].config
        vision = config["vision_config"]
        vision_seq = (vision["image_size"] // vision["patch_size"]) ** 2 + 1  # + CLS
        side = image_side(config)
        return per_frame_geometry(FRAMES, int(config["num_query_tokens"]), vision_seq, side, side)

    # ---- tiny twin ---------------------------------------------------------------------------------
    def tiny_config(self) -> Any:
        """Real geometry (224 px, patch 14, 32 queries x 4 frames); tiny widths. The Llama layers' inputs are
        multiples of 64 for bitsandbytes' CPU 4-bit kernel."""
        tokenizer, qformer_tokenizer = self._tiny_tokenizers()
        config = {k: v for k, v in SPECS["instructblip-video-vicuna-7b"].config.items()}
        config["video_token_index"] = tokenizer.convert_tokens_to_ids("<video>")
        config["vision_config"] = dict(config["vision_config"], hidden_size=32, intermediate_size=64,
                                       num_hidden_layers=2, num_attention_heads=2)
        config["qformer_config"] = dict(config["qformer_config"], hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=2, encoder_hidden_size=32,
                                        vocab_size=len(qformer_tokenizer),
                                        pad_token_id=qformer_tokenizer.pad_token_id)
        config["text_config"] = dict(
            _VICUNA_7B, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=512,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        return self.config_cls().from_dict(config)

    def _tiny_tokenizers(self) -> tuple[Any, Any]:
        """A Vicuna-like tokenizer (<unk>=0, <s>=1, </s>=2, <video> trained in but not registered as special,
        MODEL_NOTES pitfall 2) and a BERT-like Q-Former tokenizer ([CLS] ... [SEP])."""
        from tokenizers.processors import TemplateProcessing

        tokenizer = train_tokenizer(
            ["<video>"], unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<unk>",
            byte_level=False, register_special=False,
        )
        tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tokenizer.bos_token_id)]
        )
        qformer_tokenizer = train_tokenizer(
            ["[CLS]", "[SEP]", "[MASK]", "[DEC]"], unk_token="[UNK]", pad_token="[PAD]", byte_level=False,
            extra_kwargs={"cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"},
            register_special=False,
        )
        cls_id, sep_id = (qformer_tokenizer.convert_tokens_to_ids(t) for t in ("[CLS]", "[SEP]"))
        qformer_tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
        )
        return tokenizer, qformer_tokenizer

    def fabricate_processor(self, out_dir: Path) -> Any:
        from transformers import InstructBlipVideoProcessor, InstructBlipVideoVideoProcessor

        tokenizer, qformer_tokenizer = self._tiny_tokenizers()
        processor = InstructBlipVideoProcessor(
            video_processor=InstructBlipVideoVideoProcessor(**_VIDEO_PROCESSOR),
            tokenizer=tokenizer,
            qformer_tokenizer=qformer_tokenizer,
            num_query_tokens=SPECS["instructblip-video-vicuna-7b"].config["num_query_tokens"],
        )
        processor.save_pretrained(out_dir)
        return processor

    def align_token_ids(self, config: Any, tokenizer: Any) -> None:
        config.video_token_index = tokenizer.convert_tokens_to_ids("<video>")
        text = config.text_config
        text.bos_token_id = tokenizer.bos_token_id
        text.eos_token_id = tokenizer.eos_token_id
        text.pad_token_id = tokenizer.pad_token_id

    # ---- loading real weights ----------------------------------------------------------------------
    def _load_processor(self, path: str | Path, settings: LoadSettings) -> Any:
        """The current hub revision names InstructBlipVideoProcessor; an older one (or a local copy of it) holds
        the *image* processor (InstructBlipProcessor), rebuilt here as the video one."""
        import transformers

        processor = transformers.AutoProcessor.from_pretrained(
            str(path), trust_remote_code=settings.trust_remote_code
        )
        if isinstance(processor, transformers.InstructBlipVideoProcessor):
            return processor
        image = processor.image_processor
        video_processor = transformers.InstructBlipVideoVideoProcessor(
            size=dict(image.size), resample=image.resample, do_normalize=image.do_normalize,
            image_mean=image.image_mean, image_std=image.image_std, rescale_factor=image.rescale_factor,
        )
        video = transformers.InstructBlipVideoProcessor(
            video_processor=video_processor, tokenizer=processor.tokenizer,
            qformer_tokenizer=processor.qformer_tokenizer, num_query_tokens=processor.num_query_tokens,
        )
        return video

    def load(self, spec: ModelSpec, settings: LoadSettings) -> LoadedModel:
        loaded = super().load(spec, settings)
        _reconcile_video_token(loaded)
        return loaded

    # ---- inputs --------------------------------------------------------------------------------------
    def token_layout(self, loaded: LoadedModel, capture: Any, n_frames: int, height: int, width: int) -> Any:
        """Each of the 4 frames' 32 Q-Former queries, traced to that frame's patches through the Q-Former's
        cross-attention (averaged over heads and cross-attention layers); frames are resized whole."""
        from workbench.models.blip2 import qformer_layout

        return qformer_layout(loaded, capture, n_frames)

    def build_inputs(self, loaded: LoadedModel, frames: "np.ndarray", timestamps_s: "np.ndarray | None",
                     prompt: str) -> Any:
        """4 frames (4,H,W,3 uint8) + instruction -> 128 <video> placeholders, prompt ids, Q-Former ids,
        pixel_values (1,4,3,224,224). describe() has already brought the clip to 4 frames."""
        if frames.shape[0] != FRAMES:
            raise ValueError(f"InstructBLIP-Video takes exactly {FRAMES} frames, got {frames.shape[0]}")
        return loaded.processor(images=frames, text=prompt, return_tensors="pt")


def _reconcile_video_token(loaded: LoadedModel) -> None:
    """Make the processor's video placeholder and the config's video_token_index one id inside the vocabulary.

    The current revision has <video> (32002) and says so in video_token_index. Older revisions know only
    <image> (then 32000): the processor would add a new <video> token beyond the embedding table and the image
    config has no video_token_index (MODEL_NOTES pitfall 3), so <image> serves as the placeholder there.
    """
    from tokenizers import AddedToken

    processor, config = loaded.processor, loaded.model.config
    tokenizer = processor.tokenizer
    video_id = tokenizer.convert_tokens_to_ids(processor.video_token.content)
    vocab_size = config.text_config.vocab_size
    if video_id is None or video_id >= vocab_size:
        image_id = tokenizer.convert_tokens_to_ids("<image>")
        if image_id is None or image_id >= vocab_size:
            raise ValueError("the tokenizer has neither a <video> nor an <image> token inside the model's vocabulary")
        processor.video_token = AddedToken("<image>", normalized=False, special=True)
        video_id = image_id
    if config.video_token_index is None or config.video_token_index != video_id:
        config.video_token_index = video_id


ADAPTER = InstructBlipVideoAdapter()
