"""BLIP-2 (EVA ViT-g + Q-Former + OPT or Flan-T5): an image captioner, used on video one frame at a time.

BLIP-2 has no video input. Each sampled frame becomes 32 Q-Former query tokens in front of the prompt; the
frames are captioned as one batch (default) or one after another (`blip2_mode`), and the per-frame captions
are joined into one text with their timestamps: "[0.5s] a red circle ... [1.5s] a blue square ...".
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping

from workbench.models.base import (
    CaptionRecord,
    FamilyAdapter,
    GenerationSettings,
    LoadedModel,
    LoadSettings,
    ModelSpec,
    free_memory,
    seed_generation,
)
from workbench.models.geometry import VisualGeometry, image_side, per_frame_geometry
from workbench.models.tiny import train_tokenizer
from workbench.models.traits import MemoryTraits

if TYPE_CHECKING:
    import numpy as np
    import torch

Blip2Mode = Literal["batch", "sequential"]

# EVA ViT-g/14 at 224 px and the 12-layer Q-Former: the same in every BLIP-2 checkpoint.
_VISION = {
    "model_type": "blip_2_vision_model",
    "hidden_size": 1408,
    "intermediate_size": 6144,
    "num_hidden_layers": 39,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-6,
    "qkv_bias": True,
}
_QFORMER = {
    "model_type": "blip_2_qformer",
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "cross_attention_frequency": 2,
    "encoder_hidden_size": 1408,
    "max_position_embeddings": 512,
    "layer_norm_eps": 1e-12,
    "vocab_size": 30522,
}


def _opt(hidden: int, ffn: int, layers: int, heads: int) -> dict[str, Any]:
    """OPT text config as BLIP-2 stores it; eos is "\\n" (50118) so a caption stops at the line end."""
    return {
        "model_type": "opt",
        "hidden_size": hidden,
        "ffn_dim": ffn,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "word_embed_proj_dim": hidden,
        "vocab_size": 50304,
        "max_position_embeddings": 2048,
        "do_layer_norm_before": True,
        "activation_function": "relu",
        "enable_bias": True,
        "bos_token_id": 2,
        "eos_token_id": 50118,
        "pad_token_id": 1,
        "prefix": "</s>",
    }


_FLAN_T5_XL = {
    "model_type": "t5",
    "d_model": 2048,
    "d_ff": 5120,
    "d_kv": 64,
    "num_heads": 32,
    "num_layers": 24,
    "num_decoder_layers": 24,
    "feed_forward_proj": "gated-gelu",
    "vocab_size": 32128,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "layer_norm_epsilon": 1e-6,
    "tie_word_embeddings": False,  # T5 v1.1: separate lm_head (5.x builds it tied; see _untied_t5_head_class)
    "decoder_start_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 0,
}


def _blip2_config(text: dict[str, Any], image_token_index: int) -> dict[str, Any]:
    return {
        "model_type": "blip-2",
        "num_query_tokens": 32,
        "image_text_hidden_size": 256,
        "image_token_index": image_token_index,
        "initializer_factor": 1.0,
        "initializer_range": 0.02,
        "vision_config": dict(_VISION),
        "qformer_config": dict(_QFORMER),
        "text_config": text,
    }


_NOTES = ("No video input: frames are captioned as images (32 query tokens each) and the captions joined "
          "with timestamps. Captions best with an empty prompt; a question is wrapped as 'Question: ... Answer:'.")

SPECS: dict[str, ModelSpec] = {
    "blip2-opt-2.7b": ModelSpec(
        model_id="blip2-opt-2.7b",
        hub_id="Salesforce/blip2-opt-2.7b",
        family="blip2",
        config=_blip2_config(_opt(2560, 10240, 32, 32), image_token_index=50265),
        published_params=3.75e9,  # tied lm_head counted once (the hub page's 3.87B counts it twice)
        frame_mode="images",
        default_frames=8,
        prompt="",
        aliases=("blip2-opt-2.7b", "blip2", "blip-2"),
        notes=_NOTES,
    ),
    "blip2-opt-6.7b": ModelSpec(
        model_id="blip2-opt-6.7b",
        hub_id="Salesforce/blip2-opt-6.7b",
        family="blip2",
        config=_blip2_config(_opt(4096, 16384, 32, 32), image_token_index=50265),
        published_params=7.75e9,
        frame_mode="images",
        default_frames=8,
        prompt="",
        aliases=("blip2-opt-6.7b",),
        notes=_NOTES,
    ),
    "blip2-flan-t5-xl": ModelSpec(
        model_id="blip2-flan-t5-xl",
        hub_id="Salesforce/blip2-flan-t5-xl",
        family="blip2",
        config=_blip2_config(dict(_FLAN_T5_XL), image_token_index=32100),
        published_params=3.94e9,
        frame_mode="images",
        default_frames=8,
        prompt="",
        aliases=("blip2-flan-t5-xl",),
        notes=_NOTES + " Encoder-decoder: generate() returns only the answer tokens.",
    ),
}

# The real checkpoints' BlipImageProcessor settings (preprocessor_config.json).
_IMAGE_PROCESSOR = {
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


class Blip2Adapter(FamilyAdapter):
    family: ClassVar[str] = "blip2"
    model_class: ClassVar[str] = "Blip2ForConditionalGeneration"
    config_class: ClassVar[str] = "Blip2Config"
    # Top-level module names in Blip2ForConditionalGeneration (5.23): the ViT and the Q-Former stay 16-bit
    # (the Q-Former and query tokens even stay fp32: _keep_in_fp32_modules), as does the OPT/T5 output head.
    skip_modules: ClassVar[tuple[str, ...]] = (
        "vision_model", "qformer", "language_projection", "language_model.lm_head",
    )
    token_id_keys: ClassVar[tuple[str, ...]] = ("image_token_index",)
    specs: ClassVar[dict[str, ModelSpec]] = SPECS
    # "batch": all frames in one generate() call; "sequential": one call per frame (lower peak memory).
    blip2_mode: ClassVar[Blip2Mode] = "batch"
    # A non-empty prompt is asked as a question, the format BLIP-2 was tuned on.
    question_template: ClassVar[str] = "Question: {prompt} Answer:"
    tiny_spec_id: ClassVar[str] = "blip2-opt-2.7b"
    # EVA ViT (one fused GELU, eager softmax in the compute dtype); every frame is its own prompt to the LLM.
    memory: ClassVar[MemoryTraits] = MemoryTraits(vision_kind="per_frame", mlp_copies=2, softmax_fp32=False,
                                                  prompt_per_frame=True)

    # ---- geometry ----------------------------------------------------------------------------------
    def visual_tokens(self, n_frames: int, height: int, width: int, *, model_id: str | None = None,
                      max_pixels: int | None = None, min_pixels: int | None = None,
                      options: Mapping[str, Any] | None = None) -> VisualGeometry:
        """Visual tokens the LLM sees for `n_frames` frames of any size: frames are resized to 224 px.

        >>> ADAPTER.visual_tokens(4, 480, 640).llm_tokens
        128
        >>> ADAPTER.visual_tokens(4, 480, 640).segment_len
        257
        """
        config = self.specs[model_id or self.tiny_spec_id].config
        vision = config["vision_config"]
        patches = (vision["image_size"] // vision["patch_size"]) ** 2
        side = image_side(config)  # the tower sees patches + CLS; 32 query tokens per frame reach the LLM
        return per_frame_geometry(n_frames, int(config["num_query_tokens"]), patches + 1, side, side)

    # ---- tiny twin ---------------------------------------------------------------------------------
    def tiny_config(self) -> Any:
        """Real geometry (224 px, patch 14, 32 query tokens), tiny widths; OPT text model.

        The text model's Linear inputs are multiples of 64: bitsandbytes' CPU 4-bit kernel packs absmax per
        64-element block of in_features and fails on narrower layers.
        """
        tokenizer = self._tiny_tokenizer()
        text = _opt(hidden=64, ffn=128, layers=2, heads=2)
        text.update(
            vocab_size=len(tokenizer),
            max_position_embeddings=256,
            bos_token_id=tokenizer.bos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=_newline_id(tokenizer),
        )
        config = _blip2_config(text, image_token_index=tokenizer.convert_tokens_to_ids("<image>"))
        config["vision_config"].update(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=2)
        config["qformer_config"].update(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=2, encoder_hidden_size=32, vocab_size=64)
        return self.config_cls().from_dict(config)

    def _tiny_tokenizer(self) -> Any:
        from tokenizers.processors import TemplateProcessing

        # OPT's ids: <pad>=1, </s>=2 (also BOS); <image> is an ordinary vocabulary entry (MODEL_NOTES pitfall 2).
        tokenizer = train_tokenizer(
            ["<image>"], bos_token="</s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
            register_special=False,
        )
        # Like OPT's tokenizer, start every text with </s>.
        bos = tokenizer.bos_token
        tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokenizer.bos_token_id)]
        )
        return tokenizer

    def fabricate_processor(self, out_dir: Path) -> Any:
        from transformers import BlipImageProcessor, Blip2Processor

        num_query_tokens = self.specs[self.tiny_spec_id].config["num_query_tokens"]
        processor = Blip2Processor(
            image_processor=BlipImageProcessor(**_IMAGE_PROCESSOR),
            tokenizer=self._tiny_tokenizer(),
            num_query_tokens=num_query_tokens,
        )
        processor.save_pretrained(out_dir)
        return processor

    def align_token_ids(self, config: Any, tokenizer: Any) -> None:
        """Image token, and the text model's bos/pad/eos ("\\n" for OPT, as in the real config)."""
        config.image_token_index = tokenizer.convert_tokens_to_ids("<image>")
        text = config.text_config
        if text.model_type == "opt":
            text.bos_token_id = tokenizer.bos_token_id
            text.pad_token_id = tokenizer.pad_token_id
            text.eos_token_id = _newline_id(tokenizer)
        else:  # T5: pad doubles as decoder start
            text.pad_token_id = text.decoder_start_token_id = tokenizer.pad_token_id
            text.eos_token_id = tokenizer.eos_token_id

    # ---- model class ---------------------------------------------------------------------------------
    def model_cls(self) -> Any:
        """Blip2ForConditionalGeneration, with Flan-T5's own lm_head (see _untied_t5_head_class)."""
        return _untied_t5_head_class()

    def load(self, spec: ModelSpec, settings: LoadSettings) -> LoadedModel:
        import torch

        loaded = super().load(spec, settings)
        head = _separate_t5_head(loaded.model)
        if settings.source == "random" and head is not None:
            # from_pretrained's init skips a head the config says is tied: give it T5's own init.
            with torch.no_grad():
                torch.nn.init.normal_(head.weight, std=loaded.model.config.text_config.initializer_factor)
        return loaded

    # ---- inputs and captioning ---------------------------------------------------------------------
    def format_prompt(self, prompt: str) -> str:
        prompt = prompt.strip()
        if not prompt or "Answer:" in prompt:
            return prompt
        return self.question_template.format(prompt=prompt)

    def token_layout(self, loaded: LoadedModel, capture: Any, n_frames: int, height: int, width: int) -> Any:
        """Each frame's 32 Q-Former queries, traced to the frame's patches through the Q-Former's
        cross-attention (averaged over heads and cross-attention layers); frames are resized whole."""
        return qformer_layout(loaded, capture, n_frames)

    def build_inputs(self, loaded: LoadedModel, frames: "np.ndarray", timestamps_s: "np.ndarray | None",
                     prompt: str) -> Any:
        """Frames (T,H,W,3 uint8) -> a batch of T images, each with the same prompt behind 32 query tokens."""
        text = self.format_prompt(prompt)
        images = [frame for frame in frames]
        return loaded.processor(images=images, text=[text] * len(images), return_tensors="pt")

    def describe(self, loaded: LoadedModel, frames: "np.ndarray", timestamps_s: "np.ndarray | None" = None,
                 prompt: str | None = None, generation: GenerationSettings | None = None,
                 mode: Blip2Mode | None = None) -> CaptionRecord:
        """Caption each frame (batched or one by one) and join the captions with their timestamps.

        `mode` overrides the class's `blip2_mode`. n_tokens and n_input_tokens are summed over the frames.
        """
        import torch

        generation = generation or GenerationSettings()
        prompt = loaded.spec.prompt if prompt is None else prompt
        mode = mode or self.blip2_mode
        if mode not in ("batch", "sequential"):
            raise ValueError(f"blip2 mode must be 'batch' or 'sequential', got {mode!r}")
        n_frames = int(frames.shape[0])
        groups = [list(range(n_frames))] if mode == "batch" else [[i] for i in range(n_frames)]
        captions: list[str] = []
        n_tokens = n_input = 0
        start = time.perf_counter()
        try:
            for group in groups:
                inputs = self.move_inputs(self.build_inputs(loaded, frames[group], None, prompt), loaded)
                n_input += int(inputs["input_ids"].numel())
                seed_generation(generation.seed, loaded.report.device)
                with torch.inference_mode():
                    output = loaded.model.generate(**inputs, **generation.generate_kwargs())
                new_tokens = self._new_tokens(loaded, output, int(inputs["input_ids"].shape[-1]))
                for row in new_tokens:
                    row = _until_eos(row, _eos_ids(loaded))
                    n_tokens += int(row.numel())
                    captions.append(self.decode(loaded, row).strip())
        except torch.OutOfMemoryError as err:
            free_memory()
            return CaptionRecord("", 0, time.perf_counter() - start, "error", f"out of memory: {err}",
                                 n_frames, n_input, [f"mode={mode}"])
        except Exception as err:  # a failed caption is a result row, not a crash
            return CaptionRecord("", 0, time.perf_counter() - start, "error", f"{type(err).__name__}: {err}",
                                 n_frames, n_input, [f"mode={mode}"])
        latency = time.perf_counter() - start
        text = join_captions(captions, timestamps_s)
        status = "ok" if any(c for c in captions) else "empty"
        notes = [f"mode={mode}", f"{n_frames} frames captioned separately as images; token counts summed"]
        return CaptionRecord(text, n_tokens, latency, status, None, n_frames, n_input, notes)

    def _new_tokens(self, loaded: LoadedModel, output: "torch.Tensor", n_input: int) -> "torch.Tensor":
        """Generated ids (rows, new): decoder-only output repeats the prompt; T5 returns start + answer."""
        if loaded.model.config.use_decoder_only_language_model:
            return output[:, n_input:]
        return output[:, 1:]


def qformer_layout(loaded: LoadedModel, capture: Any, n_frames: int) -> Any:
    """Q-Former tokens -> patches: per generate() call, the cross-attention recorded in each cross-attention
    layer (frames, queries, [CLS] + patches) is averaged over layers; calls are concatenated in frame order."""
    import numpy as np

    from workbench.models.layout import traced_queries

    per_call = []
    for segment in capture.segments:
        if not segment.qformer:
            raise ValueError(f"{loaded.spec.model_id}: no Q-Former cross-attention was captured")
        per_call.append(np.mean([t.numpy() for t in segment.qformer], axis=0))
    query_to_patch = np.concatenate(per_call)
    if query_to_patch.shape[0] != n_frames:
        raise ValueError(f"{loaded.spec.model_id}: Q-Former saw {query_to_patch.shape[0]} frames, expected {n_frames}")
    vision = loaded.model.config.vision_config
    side = vision.image_size // vision.patch_size
    return traced_queries(np.concatenate(capture.visual_positions), query_to_patch, side, side,
                          description=f"{loaded.spec.model_id}: {query_to_patch.shape[1]} Q-Former queries per "
                                      f"frame traced to {side}x{side} patches")


_UNTIED_CLASS: Any = None


def _untied_t5_head_class() -> Any:
    """Blip2ForConditionalGeneration that keeps a Flan-T5 lm_head separate from the input embedding.

    transformers 5.x's T5Config forces tie_word_embeddings=True (it only remembers a False as
    scale_decoder_outputs=False, the T5 v1.1 mark), so a model built from the config ties lm_head to `shared`
    and Flan-T5-XL comes out 65.8M parameters short (3.877B instead of 3.942B). Loading a real checkpoint
    unties it again; building from the config (meta counts, the `random` source) must do it here.
    """
    global _UNTIED_CLASS
    if _UNTIED_CLASS is None:
        import torch
        import transformers

        class Blip2ForConditionalGeneration(transformers.Blip2ForConditionalGeneration):
            def __init__(self, config: Any) -> None:
                super().__init__(config)
                text = config.text_config
                if text.model_type == "t5" and not text.scale_decoder_outputs:
                    head = self.language_model.lm_head
                    head.weight = torch.nn.Parameter(torch.empty_like(head.weight))
                    for tied in (self.all_tied_weights_keys, self.language_model.all_tied_weights_keys):
                        for key in [k for k in tied if k.endswith("lm_head.weight")]:
                            tied.pop(key)

        _UNTIED_CLASS = Blip2ForConditionalGeneration
    return _UNTIED_CLASS


def _separate_t5_head(model: Any) -> Any:
    """The T5 lm_head module when it has its own weight, else None."""
    language_model = model.language_model
    if model.config.text_config.model_type != "t5":
        return None
    head = language_model.lm_head
    return None if head.weight is language_model.shared.weight else head


def _newline_id(tokenizer: Any) -> int:
    return tokenizer.encode("\n", add_special_tokens=False)[0]


def _eos_ids(loaded: LoadedModel) -> set[int]:
    eos = loaded.model.config.text_config.eos_token_id
    ids = set(eos) if isinstance(eos, (list, tuple)) else {eos}
    pad = loaded.model.config.text_config.pad_token_id
    return ids | ({pad} if pad is not None else set())


def _until_eos(row: "torch.Tensor", eos_ids: set[int]) -> "torch.Tensor":
    """A batch row's tokens up to and including its first EOS (later positions are padding)."""
    for i, token in enumerate(row.tolist()):
        if token in eos_ids:
            return row[: i + 1]
    return row


def join_captions(captions: list[str], timestamps_s: "np.ndarray | None") -> str:
    """Per-frame captions -> one text, each caption behind its timestamp (or frame number).

    >>> join_captions(["a red circle", "a blue square"], [0.5, 1.5])
    '[0.5s] a red circle [1.5s] a blue square'
    >>> join_captions(["a", "b"], None)
    '[frame 1] a [frame 2] b'
    """
    if timestamps_s is None:
        labels = [f"[frame {i + 1}]" for i in range(len(captions))]
    else:
        labels = [f"[{float(t):.1f}s]" for t in timestamps_s]
    return " ".join(f"{label} {caption}" for label, caption in zip(labels, captions))


ADAPTER = Blip2Adapter()
