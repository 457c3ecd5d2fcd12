"""AuroraCap's model classes, at module level: a Vicuna LLM, a CLIP ViT-H tower that merges tokens between
attention and MLP in each layer, and xtuner's MLP projector, assembled from transformers components.

Imported only when a model is loaded (the adapter names these classes by dotted path: `model_class`,
`config_class`), so resolving or predicting AuroraCap never imports torch or transformers. Everything light
(geometry, the published folder's layout, the adapter) stays in workbench/models/auroracap.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, CLIPVisionModel, GenerationMixin, LlamaForCausalLM, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.configuration_utils import PreTrainedConfig, SubConfigSpec

from workbench.models import token_merging
from workbench.models.auroracap import (
    DEFAULT_KEPT_RATIO,
    FEATURE_LAYER,
    xtuner_source,
    is_xtuner_folder,
    merged_layers,
    xtuner_config,
    xtuner_state_dict,
)
from workbench.models.base import LanguageModelEmbeddings


class AuroraCapConfig(PreTrainedConfig):
    """Vicuna (text_config) + CLIP vision tower (vision_config) + xtuner MLP projector + token merging."""

    model_type = "auroracap"
    attribute_map = {"image_token_id": "image_token_index"}
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="clip_vision_model"),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    projector_depth: int = 2
    projector_hidden_act: str = "gelu"
    projector_bias: bool = True
    vision_feature_layer: int = FEATURE_LAYER
    token_kept_ratio: float = DEFAULT_KEPT_RATIO
    proportional_attention: bool = False
    image_token_index: int = 0
    tie_word_embeddings: bool = False

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *args: Any, **kwargs: Any) -> Any:
        path = Path(str(pretrained_model_name_or_path))
        if is_xtuner_folder(path):
            return xtuner_config(path)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)


class AuroraCapProjector(nn.Module):
    """xtuner ProjectorModel's layers (Sequential `model`: Linear, act, Linear, ...), same weight names."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        vision, text = config.vision_config.hidden_size, config.text_config.hidden_size
        layers: list[nn.Module] = [nn.Linear(vision, text, bias=config.projector_bias)]
        for _ in range(1, config.projector_depth):
            layers += [ACT2FN[config.projector_hidden_act], nn.Linear(text, text, bias=config.projector_bias)]
        self.model = nn.Sequential(*layers)

    def forward(self, features: "torch.Tensor") -> "torch.Tensor":
        return self.model(features)


class MergingCLIPVisionModel(CLIPVisionModel):
    """CLIP vision tower whose forward merges tokens between attention and MLP in each layer (AuroraCap)."""

    def forward(self, pixel_values: "torch.Tensor", token_kept_ratio: float = 1.0,  # type: ignore[override]
                feature_layer: int = FEATURE_LAYER, proportional_attention: bool = False
                ) -> tuple["torch.Tensor", "torch.Tensor"]:
        """pixel_values (frames, 3, H, W) -> (features (frames, kept, width) without [CLS],
        owner (frames, patches): the feature index each patch was merged into)."""
        hidden = self.pre_layrnorm(self.embeddings(pixel_values))
        frames, tokens = hidden.shape[:2]
        layers = self.encoder.layers
        r = token_merging.merges_per_layer(tokens - 1, token_kept_ratio, len(layers))
        owner = torch.arange(tokens, device=hidden.device).expand(frames, -1)
        size = None
        for layer in layers[: merged_layers(len(layers), feature_layer)]:
            normed = layer.layer_norm1(hidden)
            bias = None
            if proportional_attention and size is not None:  # ToMe: log(size) on the key axis
                bias = size.log().to(normed.dtype)[:, None, None, :, 0]
            attended, _ = layer.self_attn(hidden_states=normed, attention_mask=bias)
            hidden = hidden + attended
            if r > 0:
                attention = layer.self_attn
                keys = attention.k_proj(normed).view(frames, hidden.shape[1], attention.num_heads, -1)
                step = token_merging.bipartite_matching(keys.mean(dim=2), r, protect_first=True)
                if step is not None:
                    new_index, n_out = step
                    hidden, size = token_merging.merge_weighted(hidden, size, new_index, n_out)
                    owner = token_merging.follow(owner, new_index)
            hidden = hidden + layer.mlp(layer.layer_norm2(hidden))
        return hidden[:, 1:], owner[:, 1:] - 1  # [CLS] is always token 0 and is dropped


class AuroraCapPreTrainedModel(PreTrainedModel):
    config_class = AuroraCapConfig
    base_model_prefix = ""
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = False
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    _no_split_modules = ["LlamaDecoderLayer", "CLIPEncoderLayer"]
    _skip_keys_device_placement = ["past_key_values"]


class AuroraCapForConditionalGeneration(LanguageModelEmbeddings, AuroraCapPreTrainedModel, GenerationMixin):
    """Vision tower -> projector -> LLM (under `language_model`, where attention capture looks for it)."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.vision_tower = MergingCLIPVisionModel(config.vision_config)
        self.multi_modal_projector = AuroraCapProjector(config)
        self.language_model = LlamaForCausalLM(config.text_config)
        self.last_merge_owner: "torch.Tensor | None" = None  # (frames, patches), for attention layouts
        self.post_init()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Our own saved folders as usual; the published xtuner layout (a folder or a cached hub id) is
        assembled from its three parts."""
        path = None if pretrained_model_name_or_path is None else xtuner_source(str(pretrained_model_name_or_path))
        if path is None:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        allow_pickle = kwargs.pop("use_safetensors", True) is not True
        return super().from_pretrained(None, *args, config=xtuner_config(path),
                                       state_dict=xtuner_state_dict(path, allow_pickle), **kwargs)

    def get_image_features(self, pixel_values: "torch.Tensor") -> "torch.Tensor":
        """pixel_values (frames, 3, 378, 378) -> projected merged tokens (frames, kept, text width)."""
        config = self.config
        dtype = self.multi_modal_projector.model[0].weight.dtype
        features, owner = self.vision_tower(
            pixel_values.to(self.vision_tower.dtype), token_kept_ratio=float(config.token_kept_ratio),
            feature_layer=config.vision_feature_layer, proportional_attention=config.proportional_attention,
        )
        self.last_merge_owner = owner.detach().cpu()
        return self.multi_modal_projector(features.to(dtype))

    def forward(self, input_ids: "torch.Tensor | None" = None, pixel_values: "torch.Tensor | None" = None,
                attention_mask: "torch.Tensor | None" = None, position_ids: "torch.Tensor | None" = None,
                past_key_values: Any = None, inputs_embeds: "torch.Tensor | None" = None,
                labels: "torch.Tensor | None" = None, logits_to_keep: int = 0, **kwargs: Any) -> Any:
        if inputs_embeds is None:
            embed = self.get_input_embeddings()
            is_visual = input_ids == self.config.image_token_index
            inputs_embeds = embed(input_ids.masked_fill(is_visual, 0))
            if pixel_values is not None:
                features = self.get_image_features(pixel_values)
                features = features.reshape(-1, features.shape[-1]).to(inputs_embeds.dtype)
                n_slots = int(is_visual.sum())
                if n_slots != features.shape[0]:
                    raise ValueError(
                        f"the prompt holds {n_slots} visual placeholders but the frames gave {features.shape[0]} "
                        f"merged tokens (token_kept_ratio={self.config.token_kept_ratio}); build the prompt "
                        f"with the same ratio as the model"
                    )
                inputs_embeds = inputs_embeds.masked_scatter(is_visual[..., None], features)
        return self.language_model(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
            past_key_values=past_key_values, labels=labels, logits_to_keep=logits_to_keep, **kwargs,
        )
