"""MiniGPT4-Video's model classes, at module level: EVA ViT-g (as transformers' Blip2VisionModel), the
4-token concatenation and projection, and a Llama / Mistral LLM; and its processor.

Imported only when a model is loaded (the adapter names these classes by dotted path), so resolving or
predicting MiniGPT4-Video never imports torch or transformers. Everything light (geometry, the published
layout, LoRA merging, the adapter) stays in workbench/models/minigpt4_video.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    Blip2VisionConfig,
    Blip2VisionModel,
    BlipImageProcessor,
    GenerationMixin,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers.configuration_utils import SubConfigSpec

from workbench.models.base import LanguageModelEmbeddings
from workbench.models.minigpt4_video import _EVA_G, CONCAT, FAMILY, IMAGENET_MEAN, IMAGENET_STD, LLM_DIR



class MiniGPT4VideoConfig(PreTrainedConfig):
    """EVA ViT-g (a Blip2VisionConfig), the 4-token concatenation and projection, and a Llama/Mistral LLM."""

    model_type = FAMILY
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=Blip2VisionConfig, init_kwargs=dict(_EVA_G)),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
    }
    # (annotations are strings under `from __future__ import annotations`: they must name module globals)
    vision_config: Any = None
    text_config: Any = None
    concat_tokens: int = CONCAT
    image_token_id: int = 0
    vision_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False

    @classmethod
    def from_pretrained(cls, path: Any, **kwargs: Any) -> Any:
        """A saved config.json, or a folder in the published layout (EVA ViT-g assumed: reading the
        .pth files would unpickle them)."""
        folder = Path(str(path))
        if not (folder / "config.json").exists() and (folder / LLM_DIR / "config.json").exists():
            text = AutoConfig.from_pretrained(str(folder / LLM_DIR)).to_dict()
            return cls(vision_config=dict(_EVA_G), text_config=text, concat_tokens=CONCAT)
        return super().from_pretrained(path, **kwargs)


class MiniGPT4VideoForConditionalGeneration(LanguageModelEmbeddings, PreTrainedModel, GenerationMixin):
    """vision_model (EVA ViT-g, post_layernorm = ln_vision) -> concat 4 -> llama_proj -> language_model."""

    config_class = MiniGPT4VideoConfig
    base_model_prefix = "minigpt4_video"
    main_input_name = "input_ids"
    input_modalities = ("image", "text")
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    _no_split_modules = ["Blip2EncoderLayer", "LlamaDecoderLayer", "MistralDecoderLayer"]

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.vision_model = Blip2VisionModel._from_config(config.vision_config)
        width = config.vision_config.hidden_size
        # ln_vision is torch's LayerNorm with its default eps, not the ViT blocks' 1e-6
        self.vision_model.post_layernorm = nn.LayerNorm(width, eps=config.vision_norm_eps)
        self.llama_proj = nn.Linear(width * config.concat_tokens, config.text_config.hidden_size)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.post_init()

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(frames, 3, 224, 224) -> (frames, 64, LLM width): ViT + ln_vision, CLS dropped, 4 tokens joined."""
        hidden = self.vision_model(pixel_values=pixel_values).last_hidden_state[:, 1:, :]
        frames, patches, width = hidden.shape
        joined = hidden.reshape(frames, patches // self.config.concat_tokens, width * self.config.concat_tokens)
        return self.llama_proj(joined.to(self.llama_proj.weight.dtype))

    def _spliced_embeddings(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None) -> torch.Tensor:
        embeds = self.get_input_embeddings()(input_ids)
        if pixel_values is None:
            return embeds
        features = self.get_image_features(pixel_values)
        slots = input_ids == self.config.image_token_id
        n_features = features.shape[0] * features.shape[1]
        if int(slots.sum()) != n_features:
            raise ValueError(f"the prompt has {int(slots.sum())} frame-token slots, the frames give "
                             f"{n_features} tokens ({features.shape[0]} x {features.shape[1]})")
        mask = slots.unsqueeze(-1).expand_as(embeds).to(embeds.device)
        return embeds.masked_scatter(mask, features.reshape(-1, embeds.shape[-1]).to(embeds.device, embeds.dtype))

    def forward(self, input_ids: torch.Tensor | None = None, pixel_values: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
                **kwargs: Any) -> Any:
        if inputs_embeds is None:
            inputs_embeds = self._spliced_embeddings(input_ids, pixel_values)
        return self.language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **kwargs)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, **generate_kwargs: Any) -> torch.Tensor:
        """Frame features spliced at the placeholder ids; the output repeats the prompt ids, then the new ones."""
        embeds = self._spliced_embeddings(input_ids, pixel_values)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return self.language_model.generate(input_ids=input_ids, inputs_embeds=embeds,
                                            attention_mask=attention_mask, **generate_kwargs)


class MiniGPT4VideoProcessor:
    """The LLM's tokenizer and the frame transform (224x224 bicubic, ImageNet mean/std)."""

    def __init__(self, tokenizer: Any, image_processor: Any | None = None) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor or BlipImageProcessor(
            size={"height": 224, "width": 224}, resample=3, do_resize=True, do_rescale=True,
            rescale_factor=1 / 255, do_normalize=True, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD,
            do_convert_rgb=True,
        )

    def save_pretrained(self, out_dir: str | Path) -> None:
        self.tokenizer.save_pretrained(str(out_dir))
        self.image_processor.save_pretrained(str(out_dir))

    @classmethod
    def from_pretrained(cls, path: str | Path, image_size: int = 224) -> "MiniGPT4VideoProcessor":
        """A saved processor folder (tokenizer + preprocessor_config.json) or an LLM folder (tokenizer only)."""
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        if (Path(path) / "preprocessor_config.json").exists():
            return cls(tokenizer, BlipImageProcessor.from_pretrained(str(path)))
        processor = cls(tokenizer)
        processor.image_processor.size = {"height": image_size, "width": image_size}
        return processor

    def batch_decode(self, ids: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(ids, **kwargs)


try:  # AutoConfig reads folders of this model type
    AutoConfig.register(FAMILY, MiniGPT4VideoConfig)
except ValueError:  # already registered (a module reload)
    pass
