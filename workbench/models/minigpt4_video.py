"""MiniGPT4-Video (Vision-CAIR/MiniGPT4-video): EVA ViT-g frames, 4 adjacent patch tokens concatenated, a linear
projection, and a LoRA-tuned Llama-2-7B-chat or Mistral-7B-Instruct-v0.2, assembled from transformers parts.

The published model is not a transformers checkpoint. Its inference code (minigpt4/models/mini_gpt4_llama_v2.py,
minigpt4/models/eva_vit.py, minigpt4_video_inference.py, test_configs/*_test_config.yaml) builds it from three
pieces, which a researcher puts in one local folder (see `published_layout`):

    <folder>/video_llama_checkpoint_last.pth   the trained parts: {"model": {llama_proj.*, LoRA A/B}, ...}
    <folder>/eva_vit_g.pth                     LAVIS's EVA ViT-g state dict (blocks.N.attn.qkv, q_bias, v_bias, ...)
    <folder>/llm/                              the base LLM as a Hugging Face folder (Llama-2-7b-chat-hf or
                                               Mistral-7B-Instruct-v0.2), tokenizer included

Quirks kept here (all from the files above):
- EVA ViT-g with 39 blocks (LAVIS drops EVA-CLIP-g's last one), 224 px, patch 14: 1 CLS + 256 patch tokens; then
  `ln_vision`, a LayerNorm (eps 1e-5, torch's default) that the video model freezes at its initial identity
  unless the checkpoint carries it. The CLS token is dropped and every 4 consecutive patch tokens (4 horizontal
  neighbours of one row of the 16x16 grid) are concatenated: 64 tokens of 5632 per frame, then `llama_proj`
  (Linear 5632 -> LLM width). Transformers' Blip2VisionModel is the same ViT; its post_layernorm is `ln_vision`.
- LoRA rank 64, alpha 16 (scale 0.25) on q_proj and v_proj of every LLM layer; merged here into the base
  weights at load time (W + alpha/rank * B @ A) with this file's own code, so no peft is needed.
- Frames are resized to 224x224 (aspect not kept, bicubic) and normalized with ImageNet mean/std, not CLIP's
  (blip_processors.py overrides the mean it was given).
- Prompt: "<s>[INST] " + "<Img><ImageHere>" per frame (+ "<Cap>subtitle" after a frame when subtitles are
  used) + "\\n" + instruction + " [/INST]", tokenized segment by segment around the <ImageHere> slots with BOS
  added to the first segment only, so the model sees BOS twice (the tokenizer's and the literal "<s>").
  Here each slot becomes 64 placeholder ids (the tokenizer's <unk>, which no text produces) that generate()
  replaces with the frame's projected features.
- At most 45 frames at inference (minigpt4_video_inference.py `max_images_length`); the Llama-2 context is
  4096 tokens, and the published generate() keeps only the last 3700 (Llama) / 7500 (Mistral) prompt
  positions. Longer prompts are kept whole here and the caption record says so.
- Source 'tiny' is a fabricated twin; `fabricate_published_checkpoint` writes it back in the published layout
  (LAVIS key names, peft LoRA key names, HF LLM folder) so the published-layout loader is tested offline.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence

from workbench.models.base import (
    SPECIAL_SOURCES,
    CaptionRecord,
    FamilyAdapter,
    GenerationSettings,
    LoadedModel,
    LoadReport,
    LoadSettings,
    ModelSpec,
    UnsafeLoadError,
    WeightsUnavailableError,
    WorkbenchModelError,
    count_parameters,
    free_memory,
    named_class,
    quiet_transformers,
    tensor_bytes,
    unquantized_linear_modules,
)
from workbench.models.geometry import VisualGeometry, per_frame_geometry
from workbench.models.tiny import train_tokenizer
from workbench.models.traits import MemoryTraits

if TYPE_CHECKING:
    import numpy as np
    import torch

logger = logging.getLogger(__name__)

FAMILY = "minigpt4_video"
HUB_ID = "Vision-CAIR/MiniGPT4-Video"  # checkpoints/video_llama_checkpoint_last.pth, video_mistral_checkpoint_last.pth
EVA_URL = "https://storage.googleapis.com/sfr-vision-language-research/LAVIS/models/BLIP2/eva_vit_g.pth"
EVA_FILE = "eva_vit_g.pth"
LLM_DIR = "llm"
MAX_FRAMES = 45  # minigpt4_video_inference.py: max_images_length
CONCAT = 4  # mini_gpt4_llama_v2.py encode_img: token_pooling concatenates 4 tokens
LORA_RANK, LORA_ALPHA = 64, 16  # test_configs/*_test_config.yaml and the inference script's defaults
LORA_TARGETS = ("q_proj", "v_proj")
EVA_HEAD_DIM = 88  # eva_vit.py create_eva_vit_g: num_heads = 1408 // 88
EVA_MLP_RATIO = 4.3637
EVA_DEPTH = 39
IMAGENET_MEAN = [0.485, 0.456, 0.406]  # blip_processors.py: the normalization actually applied
IMAGENET_STD = [0.229, 0.224, 0.225]
FRAME_SLOT = "<ImageHere>"
FRAME_MARK = "<Img>"
SUBTITLE_MARK = "<Cap>"
MAX_SUBTITLE_WORDS = 400  # minigpt4_video_inference.py: max_sub_len
# The published generate() keeps the last N prompt positions (mini_gpt4_llama_v2.py generate: context_window).
CONTEXT_WINDOW = {"llama": 3700, "mistral": 7500}
_LORA_KEY = "llama_model.base_model.model.model.layers.{layer}.self_attn.{module}.lora_{ab}.default.weight"

# EVA ViT-g/14 as LAVIS builds it (eva_vit.py create_eva_vit_g), in Blip2VisionConfig terms.
_EVA_G: dict[str, Any] = {
    "model_type": "blip_2_vision_model",
    "hidden_size": 1408,
    "intermediate_size": int(1408 * EVA_MLP_RATIO),  # 6144
    "num_hidden_layers": EVA_DEPTH,
    "num_attention_heads": 1408 // EVA_HEAD_DIM,  # 16
    "image_size": 224,
    "patch_size": 14,
    "hidden_act": "gelu",  # nn.GELU (exact)
    "layer_norm_eps": 1e-6,
    "qkv_bias": True,
}

# meta-llama/Llama-2-7b-chat-hf config.json, trimmed to what builds the architecture.
_LLAMA2_7B_CHAT: dict[str, Any] = {
    "model_type": "llama",
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
    "hidden_act": "silu",
    "bos_token_id": 1,
    "eos_token_id": 2,
    "tie_word_embeddings": False,
}

# mistralai/Mistral-7B-Instruct-v0.2 config.json (32k context, rope theta 1e6, no sliding window).
_MISTRAL_7B_INSTRUCT_V02: dict[str, Any] = {
    "model_type": "mistral",
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-5,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
    "sliding_window": None,
    "hidden_act": "silu",
    "bos_token_id": 1,
    "eos_token_id": 2,
    "tie_word_embeddings": False,
}


def _config(text: dict[str, Any]) -> dict[str, Any]:
    return {
        "model_type": FAMILY,
        "vision_config": dict(_EVA_G),
        "text_config": dict(text),
        "concat_tokens": CONCAT,
        "image_token_id": 0,  # <unk> in both tokenizers: the placeholder of a frame slot
        "vision_norm_eps": 1e-5,
        "tie_word_embeddings": False,
    }


# EVA ViT-g (39 blocks, ~0.985B) + the LLM as its model card counts it + llama_proj (5632*4096 + 4096).
_EVA_G_PARAMS = 0.985e9
_PROJ_PARAMS = 5632 * 4096 + 4096
_NOTES = ("EVA ViT-g (224 px) -> 256 patches per frame, 4 concatenated -> 64 tokens per frame; LoRA (r 64, "
          "alpha 16, q/v) merged at load. Real weights: a local folder in the published layout, loaded with "
          "allow_pickle=True (the .pth files are torch pickles).")

SPECS: dict[str, ModelSpec] = {
    "minigpt4-video-llama2": ModelSpec(
        model_id="minigpt4-video-llama2",
        hub_id=HUB_ID,
        family=FAMILY,
        config=_config(_LLAMA2_7B_CHAT),
        published_params=6.74e9 + _EVA_G_PARAMS + _PROJ_PARAMS,  # Llama-2-7b-chat-hf 6.74B
        default_frames=MAX_FRAMES,
        aliases=("minigpt4-video", "minigpt4-video-llama2-7b", "video_llama_checkpoint_last.pth"),
        notes=_NOTES + " Base LLM: meta-llama/Llama-2-7b-chat-hf (4096-token context).",
    ),
    "minigpt4-video-mistral": ModelSpec(
        model_id="minigpt4-video-mistral",
        hub_id=HUB_ID,  # the same repository: its hub id resolves to the Llama-2 variant
        family=FAMILY,
        config=_config(_MISTRAL_7B_INSTRUCT_V02),
        published_params=7.24e9 + _EVA_G_PARAMS + _PROJ_PARAMS,  # Mistral-7B-Instruct-v0.2 7.24B
        default_frames=MAX_FRAMES,
        aliases=("minigpt4-video-mistral-7b", "video_mistral_checkpoint_last.pth"),
        notes=_NOTES + " Base LLM: mistralai/Mistral-7B-Instruct-v0.2.",
    ),
}


# ---- pure helpers ---------------------------------------------------------------------------------------------

def minigpt4_video_tokens(n_frames: int, image_size: int = 224, patch_size: int = 14,
                          concat: int = CONCAT) -> VisualGeometry:
    """Tokens a clip costs: every frame is resized to image_size, so the source size does not matter.

    >>> t = minigpt4_video_tokens(8)
    >>> t.llm_tokens_per_segment, t.llm_tokens, t.segment_len
    (64, 512, 257)
    """
    side = image_size // patch_size
    patches = side * side
    if patches % concat:
        raise ValueError(f"{patches} patches per frame do not split into groups of {concat}")
    # CLS + patches enter the ViT (the CLS output is dropped after it); `concat` patches make one LLM token
    return per_frame_geometry(n_frames, patches // concat, patches + 1, image_size, image_size)


def interleaved_prompt(instruction: str, n_frames: int, subtitles: Sequence[str | None] | None = None) -> str:
    """The user message: a frame slot per frame, each followed by its subtitle text if any, then the instruction.

    >>> interleaved_prompt("Describe this video.", 2, ["hello there", None])
    '<Img><ImageHere><Cap>hello there<Img><ImageHere>\\nDescribe this video.'
    """
    if subtitles is not None and len(subtitles) != n_frames:
        raise ValueError(f"{len(subtitles)} subtitle entries for {n_frames} frames")
    parts = []
    for i in range(n_frames):
        parts.append(FRAME_MARK + FRAME_SLOT)
        text = subtitles[i] if subtitles is not None else None
        if text:
            parts.append(SUBTITLE_MARK + text)
    return "".join(parts) + "\n" + instruction


def subtitles_per_frame(timestamps_s: Sequence[float], cues: Sequence[tuple[float, float, str]],
                        max_words: int = MAX_SUBTITLE_WORDS) -> list[str | None]:
    """Subtitle cues (start_s, end_s, text) -> the text placed after each sampled frame, as the published code
    does: a cue goes to the first sampled frame at or after its start, each cue once, and no more cues are
    placed once `max_words` words have been placed.

    >>> subtitles_per_frame([0.0, 2.0, 4.0], [(0.5, 1.5, "hi"), (1.0, 3.0, "there"), (9.0, 9.5, "late")])
    [None, 'hi there', None]
    """
    texts: list[str | None] = [None] * len(timestamps_s)
    placed_words = 0
    pending = sorted(cues, key=lambda cue: cue[0])
    for i, t in enumerate(timestamps_s):
        due = [c for c in pending if c[0] <= float(t)]
        pending = [c for c in pending if c[0] > float(t)]
        text = " ".join(c[2].replace("\n", " ").strip() for c in due if c[2].strip())
        if text and placed_words < max_words:
            texts[i] = text
            placed_words += len(text.split(" "))
    return texts


def chat_prompt(message: str) -> str:
    """CONV_VISION with an empty system prompt (minigpt4/conversation/conversation.py), one user turn.

    >>> chat_prompt("hi")
    '<s>[INST] hi [/INST]'
    """
    return "<s>[INST] " + message + " [/INST]"


def lora_scale(rank: int, alpha: float) -> float:
    """peft's LoRA scaling: alpha / rank.

    >>> lora_scale(64, 16)
    0.25
    """
    return float(alpha) / float(rank)


def eva_to_vision_key(key: str) -> str | None:
    """LAVIS EVA ViT-g key -> Blip2VisionModel key (None for q_bias / v_bias, which join qkv.bias, and for keys
    the model does not have).

    >>> eva_to_vision_key("blocks.3.attn.proj.weight")
    'encoder.layers.3.self_attn.projection.weight'
    >>> eva_to_vision_key("cls_token"), eva_to_vision_key("blocks.0.attn.q_bias")
    ('embeddings.class_embedding', None)
    """
    fixed = {"cls_token": "embeddings.class_embedding", "pos_embed": "embeddings.position_embedding",
             "patch_embed.proj.weight": "embeddings.patch_embedding.weight",
             "patch_embed.proj.bias": "embeddings.patch_embedding.bias"}
    if key in fixed:
        return fixed[key]
    parts = key.split(".")
    if parts[0] != "blocks" or len(parts) < 4:
        return None
    layer, rest = parts[1], ".".join(parts[2:])
    inner = {"norm1.weight": "layer_norm1.weight", "norm1.bias": "layer_norm1.bias",
             "norm2.weight": "layer_norm2.weight", "norm2.bias": "layer_norm2.bias",
             "attn.qkv.weight": "self_attn.qkv.weight",
             "attn.proj.weight": "self_attn.projection.weight", "attn.proj.bias": "self_attn.projection.bias",
             "mlp.fc1.weight": "mlp.fc1.weight", "mlp.fc1.bias": "mlp.fc1.bias",
             "mlp.fc2.weight": "mlp.fc2.weight", "mlp.fc2.bias": "mlp.fc2.bias"}.get(rest)
    return None if inner is None else f"encoder.layers.{layer}.{inner}"


def vision_config_from_eva(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """Blip2VisionConfig numbers read off an EVA state dict's shapes, with LAVIS's rules (heads = width // 88,
    at most 39 blocks: the ViT-g file may hold EVA-CLIP-g's 40th, which LAVIS does not build).

    >>> shapes = {"patch_embed.proj.weight": (1408, 3, 14, 14), "pos_embed": (1, 257, 1408),
    ...           "blocks.0.mlp.fc1.weight": (6144, 1408), **{f"blocks.{i}.norm1.weight": (1408,) for i in range(40)}}
    >>> c = vision_config_from_eva(shapes)
    >>> c["hidden_size"], c["num_attention_heads"], c["num_hidden_layers"], c["image_size"], c["intermediate_size"]
    (1408, 16, 39, 224, 6144)
    """
    width, _, patch, _ = shapes["patch_embed.proj.weight"]
    positions = shapes["pos_embed"][1] - 1
    side = int(round(positions ** 0.5))
    blocks = {int(k.split(".")[1]) for k in shapes if k.startswith("blocks.")}
    return {**_EVA_G, "hidden_size": int(width), "patch_size": int(patch), "image_size": int(side * patch),
            "num_attention_heads": max(1, int(width) // EVA_HEAD_DIM),
            "intermediate_size": int(shapes["blocks.0.mlp.fc1.weight"][0]),
            "num_hidden_layers": min(len(blocks), EVA_DEPTH)}


# ---- the published layout ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PublishedLayout:
    """The three pieces of a local MiniGPT4-Video folder."""

    folder: Path
    checkpoint: Path  # the trained parts (llama_proj + LoRA), e.g. video_llama_checkpoint_last.pth
    eva: Path  # eva_vit_g.pth
    llm: Path  # Hugging Face folder of the base LLM

    def pickles(self) -> list[Path]:
        llm_pickles = [] if any(self.llm.glob("*.safetensors")) else sorted(self.llm.glob("*.bin"))
        return [self.checkpoint, self.eva, *llm_pickles]


def published_layout(folder: str | Path) -> PublishedLayout:
    """Find the pieces, or say exactly what is missing and where each piece comes from."""
    folder = Path(folder)
    checkpoints = sorted(p for p in folder.glob("*.pth") if p.name != EVA_FILE)
    problems = []
    if len(checkpoints) != 1:
        problems.append(f"exactly one MiniGPT4-Video checkpoint (*.pth other than {EVA_FILE}), found "
                        f"{[p.name for p in checkpoints] or 'none'}: download checkpoints/"
                        f"video_llama_checkpoint_last.pth or video_mistral_checkpoint_last.pth from {HUB_ID}")
    if not (folder / EVA_FILE).exists():
        problems.append(f"{EVA_FILE} (LAVIS's EVA ViT-g): {EVA_URL}")
    if not (folder / LLM_DIR / "config.json").exists():
        problems.append(f"{LLM_DIR}/ with the base LLM as a Hugging Face folder (meta-llama/Llama-2-7b-chat-hf or "
                        f"mistralai/Mistral-7B-Instruct-v0.2, tokenizer included)")
    if problems:
        raise WeightsUnavailableError(f"{folder} is not a MiniGPT4-Video folder; it needs " + "; ".join(problems))
    return PublishedLayout(folder, checkpoints[0], folder / EVA_FILE, folder / LLM_DIR)


def _is_published_folder(source: str) -> bool:
    folder = Path(source)
    return folder.is_dir() and not (folder / "config.json").exists()


class _Lazy:
    """A state-dict entry made when the loader slices it, like base.RandomTensor: a 7B LLM is never held
    whole next to the model (from_pretrained materializes and, with bitsandbytes, quantizes entry by entry)."""

    def __init__(self, shape: tuple[int, ...], dtype: "torch.dtype", make: Callable[[], "torch.Tensor"]) -> None:
        self.shape, self.dtype, self._make = shape, dtype, make

    def __getitem__(self, index: Any) -> "torch.Tensor":
        return self._make()[index]


def _torch_load(path: Path) -> Any:
    """torch.load restricted to tensors and plain containers (weights_only), memory-mapped."""
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # mmap needs the zip format; old-format pickles load without it
        return torch.load(str(path), map_location="cpu", weights_only=True)


def _llm_tensors(llm: Path) -> dict[str, tuple[tuple[int, ...], Callable[[], "torch.Tensor"]]]:
    """Name -> (shape, loader) for every tensor of an HF folder (safetensors shards, else torch .bin shards)."""
    from safetensors import safe_open

    tensors: dict[str, tuple[tuple[int, ...], Callable[[], Any]]] = {}
    files = sorted(llm.glob("*.safetensors"))
    if files:
        for path in files:
            handle = safe_open(str(path), framework="pt")
            for key in handle.keys():
                shape = tuple(handle.get_slice(key).get_shape())
                tensors[key] = (shape, lambda handle=handle, key=key: handle.get_tensor(key))
        return tensors
    for path in sorted(llm.glob("*.bin")):
        state = _torch_load(path)
        for key in state:
            tensors[key] = (tuple(state[key].shape), lambda state=state, key=key: state[key])
    return tensors


def _checkpoint_parts(checkpoint: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state dict, training config) of a MiniGPT4-Video .pth: the runner saves {"model": ..., "config": ...}."""
    raw = _torch_load(checkpoint)
    if isinstance(raw, dict) and isinstance(raw.get("model"), dict):
        config = raw.get("config") if isinstance(raw.get("config"), dict) else {}
        return raw["model"], config
    return raw, {}


def published_state_dict(layout: PublishedLayout, config: Any) -> tuple[dict[str, Any], list[str]]:
    """Lazy entries under this file's module names for a published folder, LoRA merged; plus notes."""
    import torch

    state, train_config = _checkpoint_parts(layout.checkpoint)
    eva = _torch_load(layout.eva)
    notes: list[str] = []
    entries: dict[str, Any] = {}
    put = entries.__setitem__
    # vision tower: LAVIS EVA names -> Blip2VisionModel names; q_bias / zeros / v_bias -> qkv.bias
    for key, value in eva.items():
        target = eva_to_vision_key(key)
        if target is not None and not _beyond_depth(key, config.vision_config.num_hidden_layers):
            put(f"vision_model.{target}", value)
    for layer in range(config.vision_config.num_hidden_layers):
        q, v = eva[f"blocks.{layer}.attn.q_bias"], eva[f"blocks.{layer}.attn.v_bias"]
        put(f"vision_model.encoder.layers.{layer}.self_attn.qkv.bias", torch.cat([q, torch.zeros_like(v), v]))
    width = config.vision_config.hidden_size
    if "ln_vision.weight" in state:
        put("vision_model.post_layernorm.weight", state["ln_vision.weight"])
        put("vision_model.post_layernorm.bias", state["ln_vision.bias"])
    else:  # frozen at init in the video model: an identity affine
        put("vision_model.post_layernorm.weight", torch.ones(width))
        put("vision_model.post_layernorm.bias", torch.zeros(width))
        notes.append("ln_vision not in the checkpoint: identity affine (as the published model freezes it at init)")
    put("llama_proj.weight", state["llama_proj.weight"])
    put("llama_proj.bias", state["llama_proj.bias"])

    # LLM: base weights from llm/, LoRA merged into q_proj / v_proj
    model_config = train_config.get("model", {}) if isinstance(train_config.get("model"), dict) else {}
    alpha = float(model_config.get("lora_alpha", LORA_ALPHA))
    llm = _llm_tensors(layout.llm)
    merged = 0
    for key, (shape, get) in llm.items():
        name = f"language_model.{key}"
        lora = _lora_pair(state, key)
        if lora is None:
            entries[name] = _Lazy(shape, torch.float32, get)
            continue
        a, b = lora
        scale = lora_scale(a.shape[0], alpha)
        entries[name] = _Lazy(shape, torch.float32,
                              lambda get=get, a=a, b=b, scale=scale: _merge_lora(get(), a, b, scale))
        merged += 1
    expected = config.text_config.num_hidden_layers * len(LORA_TARGETS)
    lora_keys = [k for k in state if ".lora_A." in k]
    if merged != len(lora_keys) or merged != expected:
        raise WorkbenchModelError(f"{layout.checkpoint.name}: merged {merged} LoRA pairs of {len(lora_keys)} in the "
                                  f"checkpoint; the LLM has {expected} q_proj/v_proj layers")
    rank = next(iter(state[k] for k in lora_keys)).shape[0] if lora_keys else 0
    notes.append(f"LoRA rank {rank}, alpha {alpha:g} (scale {lora_scale(rank, alpha) if rank else 0:g}) merged into "
                 f"{merged} q_proj/v_proj weights")
    used = {"llama_proj.weight", "llama_proj.bias", "ln_vision.weight", "ln_vision.bias", *lora_keys,
            *(k.replace(".lora_A.", ".lora_B.") for k in lora_keys)}
    ignored = [k for k in state if k not in used and not k.endswith("inv_freq")]
    if ignored:
        notes.append(f"{len(ignored)} checkpoint entries not used: {', '.join(ignored[:3])}")
    return entries, notes


def _beyond_depth(eva_key: str, depth: int) -> bool:
    parts = eva_key.split(".")
    return parts[0] == "blocks" and int(parts[1]) >= depth


def _lora_pair(state: dict[str, Any], llm_key: str) -> tuple[Any, Any] | None:
    """The checkpoint's (A, B) for an HF LLM weight name like model.layers.3.self_attn.q_proj.weight."""
    parts = llm_key.split(".")
    if len(parts) != 6 or parts[:2] != ["model", "layers"] or parts[4] not in LORA_TARGETS or parts[5] != "weight":
        return None
    a = state.get(_LORA_KEY.format(layer=parts[2], module=parts[4], ab="A"))
    b = state.get(_LORA_KEY.format(layer=parts[2], module=parts[4], ab="B"))
    return None if a is None or b is None else (a, b)


def _merge_lora(weight: "torch.Tensor", a: "torch.Tensor", b: "torch.Tensor", scale: float) -> "torch.Tensor":
    """W + scale * B @ A, computed in float32. weight: (out, in); a: (rank, in); b: (out, rank)."""
    return weight.float() + scale * (b.float() @ a.float())


def _vision_config_of(layout: PublishedLayout) -> dict[str, Any]:
    eva = _torch_load(layout.eva)
    return vision_config_from_eva({k: tuple(v.shape) for k, v in eva.items()})


# ---- the adapter ----------------------------------------------------------------------------------------------

class MiniGPT4VideoAdapter(FamilyAdapter):
    family: ClassVar[str] = FAMILY
    # built from transformers parts in minigpt4_video_modeling.py, imported only when a model is loaded
    model_class: ClassVar[str] = "workbench.models.minigpt4_video_modeling.MiniGPT4VideoForConditionalGeneration"
    config_class: ClassVar[str] = "workbench.models.minigpt4_video_modeling.MiniGPT4VideoConfig"
    processor_class: ClassVar[str] = "workbench.models.minigpt4_video_modeling.MiniGPT4VideoProcessor"
    # The ViT, its ln_vision and the projection stay 16-bit, as does the LLM's output head.
    skip_modules: ClassVar[tuple[str, ...]] = ("vision_model", "llama_proj", "language_model.lm_head")
    # EVA ViT-g (one fused GELU, eager softmax in the compute dtype), the frames batched.
    memory: ClassVar[MemoryTraits] = MemoryTraits(vision_kind="per_frame", mlp_copies=2, softmax_fp32=False)
    specs: ClassVar[dict[str, ModelSpec]] = SPECS
    tiny_spec_id: ClassVar[str] = "minigpt4-video-llama2"

    def processor_cls(self) -> Any:
        return named_class(self.processor_class)

    def real_config(self, spec: ModelSpec) -> Any:
        return self.config_cls().from_dict(copy.deepcopy(spec.config))

    # ---- geometry --------------------------------------------------------------------------------------
    def visual_tokens(self, n_frames: int, height: int, width: int, *, model_id: str | None = None,
                      max_pixels: int | None = None, min_pixels: int | None = None,
                      options: Mapping[str, Any] | None = None) -> VisualGeometry:
        """64 tokens per frame at 224 px whatever the source size (frames are resized whole).

        >>> ADAPTER.visual_tokens(4, 480, 640).llm_tokens
        256
        """
        vision = self.specs[model_id or self.tiny_spec_id].config["vision_config"]
        return minigpt4_video_tokens(n_frames, vision["image_size"], vision["patch_size"], CONCAT)

    def visual_token_ids(self, loaded: LoadedModel) -> set[int]:
        return {int(loaded.model.config.image_token_id)}

    def token_layout(self, loaded: LoadedModel, capture: Any, n_frames: int, height: int, width: int) -> Any:
        """Token k of a frame joins patches 4k..4k+3 of its 16x16 grid (row-major): 4 neighbours in one row,
        a quarter of the token's mass each. Frames are resized whole (no crop)."""
        import numpy as np

        vision = loaded.model.config.vision_config
        side = vision.image_size // vision.patch_size
        return concat_layout(np.concatenate(capture.visual_positions), n_frames, side,
                             loaded.model.config.concat_tokens,
                             description=f"{loaded.spec.model_id}: {side * side // loaded.model.config.concat_tokens} "
                                         f"tokens per frame, each {loaded.model.config.concat_tokens} adjacent "
                                         f"patches of a {side}x{side} grid")

    # ---- tiny twin -------------------------------------------------------------------------------------
    def tiny_tokenizer(self) -> Any:
        """Llama-style ids (<unk> 0, <s> 1, </s> 2); <s> added in front like the Llama tokenizer."""
        from tokenizers.processors import TemplateProcessing

        tokenizer = train_tokenizer([], unk_token="<unk>", bos_token="<s>", eos_token="</s>")
        bos = tokenizer.bos_token_id
        tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
        )
        return tokenizer

    def tiny_config(self) -> Any:
        """Real geometry (224 px, patch 14, concat 4, head width 88), tiny widths; a 2-layer Llama."""
        tokenizer = self.tiny_tokenizer()
        config = copy.deepcopy(self.specs[self.tiny_spec_id].config)
        config["vision_config"].update(hidden_size=2 * EVA_HEAD_DIM, num_attention_heads=2,
                                       intermediate_size=int(2 * EVA_HEAD_DIM * EVA_MLP_RATIO), num_hidden_layers=2)
        config["text_config"].update(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                     num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        config["image_token_id"] = tokenizer.unk_token_id
        return self.config_cls().from_dict(config)

    def fabricate_processor(self, out_dir: Path) -> Any:
        processor = self.processor_cls()(self.tiny_tokenizer())
        processor.save_pretrained(out_dir)
        return processor

    def _load_processor(self, path: str | Path, settings: LoadSettings) -> Any:
        return self.processor_cls().from_pretrained(path)

    def align_token_ids(self, config: Any, tokenizer: Any) -> None:
        """Placeholder = <unk>; the LLM's bos/eos from the tokenizer actually used."""
        config.image_token_id = tokenizer.unk_token_id
        config.text_config.bos_token_id = tokenizer.bos_token_id
        config.text_config.eos_token_id = tokenizer.eos_token_id

    # ---- loading ----------------------------------------------------------------------------------------
    def load(self, spec: ModelSpec, settings: LoadSettings) -> LoadedModel:
        """'tiny', 'random' and saved transformers folders go through the shared loader; a folder in the published
        layout is assembled here; anything else (the hub repo) says how to prepare that folder."""
        source = settings.source
        if source in SPECIAL_SOURCES or (Path(source) / "config.json").exists():
            return super().load(spec, settings)
        if not _is_published_folder(source):
            raise WeightsUnavailableError(
                f"{spec.model_id}: {source!r} is not a local folder. MiniGPT4-Video is published as torch "
                f"checkpoints for its own codebase, not a transformers repository: put the checkpoint .pth from "
                f"{HUB_ID}, {EVA_FILE} ({EVA_URL}) and the base LLM folder as {LLM_DIR}/ in one folder and pass "
                f"it as source with allow_pickle=True. Without weights, source='random' gives the full-size "
                f"architecture and source='tiny' a tiny twin."
            )
        return self._load_published(spec, settings)

    def _load_published(self, spec: ModelSpec, settings: LoadSettings) -> LoadedModel:
        import torch

        layout = published_layout(settings.source)
        pickles = layout.pickles()
        if not settings.allow_pickle:
            raise UnsafeLoadError(
                f"{layout.folder} holds MiniGPT4-Video's torch pickles ({', '.join(p.name for p in pickles)}); "
                f"unpickling can run code. They are read with torch.load(weights_only=True) once you pass "
                f"allow_pickle=True by name"
            )
        device = settings.resolved_device()
        cuda_before = torch.cuda.memory_allocated() if device == "cuda" else 0
        start = time.perf_counter()
        from transformers import AutoConfig

        text = AutoConfig.from_pretrained(str(layout.llm)).to_dict()
        config = self.config_cls()(vision_config=_vision_config_of(layout), text_config=text, concat_tokens=CONCAT)
        processor = self.processor_cls().from_pretrained(layout.llm, image_size=config.vision_config.image_size)
        self.align_token_ids(config, processor.tokenizer)
        state_dict, notes = published_state_dict(layout, config)
        _check_keys(self.model_cls(), config, state_dict, layout)
        kwargs: dict[str, Any] = {
            "config": config, "state_dict": state_dict, "dtype": getattr(torch, settings.dtype),
            "attn_implementation": settings.attn_implementation, "device_map": {"": device},
        }
        quant = self.quantization_config(settings)
        if quant is not None:
            kwargs["quantization_config"] = quant
        try:
            with quiet_transformers():
                model = self.model_cls().from_pretrained(None, **kwargs)
        except torch.OutOfMemoryError:
            free_memory()
            raise
        model.eval()
        report = LoadReport(
            model_id=spec.model_id, family=self.family, source=settings.source,
            seconds=time.perf_counter() - start, n_params=count_parameters(model),
            memory_bytes=(torch.cuda.memory_allocated() - cuda_before if device == "cuda" else tensor_bytes(model)),
            memory_kind="cuda_allocated" if device == "cuda" else "cpu_tensor_bytes",
            dtype=settings.dtype, quantization=settings.quantization, double_quant=settings.double_quant,
            unquantized_modules=unquantized_linear_modules(model) if quant is not None else [],
            attn_implementation=settings.attn_implementation, device=device,
        )
        for note in notes:
            logger.info("%s: %s", spec.model_id, note)
        return LoadedModel(spec, self, model, processor, settings, report)

    # ---- inputs and captioning ---------------------------------------------------------------------------
    def format_prompt(self, prompt: str, n_frames: int) -> str:
        """The full prompt text with one <ImageHere> slot per frame. A prompt that already holds the slots
        (e.g. from `interleaved_prompt` with subtitles) is used as the user message as it is."""
        if FRAME_SLOT in prompt:
            if prompt.count(FRAME_SLOT) != n_frames:
                raise ValueError(f"the prompt has {prompt.count(FRAME_SLOT)} {FRAME_SLOT} slots for {n_frames} frames")
            return chat_prompt(prompt)
        return chat_prompt(interleaved_prompt(prompt, n_frames))

    def build_inputs(self, loaded: LoadedModel, frames: "np.ndarray", timestamps_s: "np.ndarray | None",
                     prompt: str) -> Any:
        """Frames (T,H,W,3 uint8) -> pixel_values (T,3,224,224) and input_ids with 64 placeholders per frame,
        text tokenized segment by segment around the slots as the published code does."""
        import torch

        n_frames = int(frames.shape[0])
        tokenizer = loaded.processor.tokenizer
        config = loaded.model.config
        per_frame = self.visual_tokens_per_frame(config)
        segments = self.format_prompt(prompt, n_frames).split(FRAME_SLOT)
        ids: list[int] = []
        for i, segment in enumerate(segments):
            ids += tokenizer(segment, add_special_tokens=(i == 0))["input_ids"]
            if i < n_frames:
                ids += [int(config.image_token_id)] * per_frame
        pixels = loaded.processor.image_processor(images=list(frames), return_tensors="pt")["pixel_values"]
        input_ids = torch.tensor([ids], dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "pixel_values": pixels}

    @staticmethod
    def visual_tokens_per_frame(config: Any) -> int:
        side = config.vision_config.image_size // config.vision_config.patch_size
        return side * side // config.concat_tokens

    def describe(self, loaded: LoadedModel, frames: "np.ndarray", timestamps_s: "np.ndarray | None" = None,
                 prompt: str | None = None, generation: GenerationSettings | None = None) -> CaptionRecord:
        """The shared captioning, plus notes where the published model would have seen something else."""
        record = super().describe(loaded, frames, timestamps_s, prompt, generation)
        n_frames = int(frames.shape[0])
        if n_frames > MAX_FRAMES:
            record.notes.append(f"{n_frames} frames: the published inference samples at most {MAX_FRAMES}")
        text = loaded.model.config.text_config
        window = CONTEXT_WINDOW.get(text.model_type)
        if window and record.n_input_tokens > window:
            record.notes.append(f"{record.n_input_tokens} prompt tokens: the published generate() keeps only the "
                                f"last {window}; here the prompt is kept whole")
        return record


def concat_layout(positions: "np.ndarray", n_frames: int, side: int, concat: int, description: str = "") -> Any:
    """TokenLayout for tokens that each join `concat` consecutive patches of a side x side row-major grid.

    >>> import numpy as np
    >>> layout = concat_layout(np.arange(2 * 8), 2, 4, 2)
    >>> layout.spatial(np.eye(16)[9])[1].tolist()  # frame 1's token 1: patches (0, 2) and (0, 3)
    [[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    """
    import numpy as np

    from workbench.models.layout import TokenLayout, grid_cells

    per_frame = side * side // concat
    positions = np.asarray(positions)
    if len(positions) != n_frames * per_frame:
        raise ValueError(f"{description or 'layout'}: the prompt has {len(positions)} visual tokens, expected "
                         f"{n_frames} frames x {per_frame}")
    token = np.repeat(np.arange(n_frames * per_frame), concat)
    frame = token // per_frame
    patch = (token % per_frame) * concat + np.tile(np.arange(concat), n_frames * per_frame)
    cell = grid_cells(frame, patch // side, patch % side, side, side * side)
    layout = TokenLayout(positions=positions, n_frames=n_frames, grid_rows=side, grid_cols=side,
                         token=token.astype(np.int64), cell=cell.astype(np.int64),
                         weight=np.full(len(token), 1.0 / concat, dtype=np.float32), description=description)
    layout.check()
    return layout


def _check_keys(model_cls: Any, config: Any, state_dict: dict[str, Any], layout: PublishedLayout) -> None:
    """Every weight of the architecture has an entry, and every entry a weight (else a clear error, not a
    silently random layer)."""
    import torch

    with torch.device("meta"):
        meta = model_cls._from_config(config)
    expected = set(meta.state_dict())
    tied = set(getattr(meta, "all_tied_weights_keys", {}) or {})
    missing = sorted(expected - set(state_dict) - tied)
    unexpected = sorted(set(state_dict) - expected)
    if missing or unexpected:
        raise WorkbenchModelError(
            f"{layout.folder}: the published pieces do not fit the architecture; missing {missing[:5]} "
            f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})"
        )


# ---- a checkpoint in the published layout, for tests ------------------------------------------------------------

def fabricate_published_checkpoint(out_dir: str | Path, model_dir: str | Path | None = None,
                                   checkpoint_name: str = "video_llama_checkpoint_last.pth", seed: int = 0) -> Path:
    """Write a model folder (default: the tiny twin) back in the published layout: the checkpoint .pth with
    llama_proj and random LoRA pairs under peft's key names, eva_vit_g.pth under LAVIS's names, and llm/ as an
    HF folder whose q_proj / v_proj hold W - scale * B @ A, so merging at load gives the twin's weights back."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from workbench.atomic import atomic_dir

    model_dir = Path(model_dir) if model_dir is not None else ADAPTER.ensure_tiny()
    config = ADAPTER.config_cls().from_pretrained(str(model_dir))
    weights: dict[str, torch.Tensor] = {}
    for path in sorted(model_dir.glob("*.safetensors")):
        weights.update(load_file(str(path)))
    out_dir = Path(out_dir)
    generator = torch.Generator().manual_seed(seed)
    rank = min(LORA_RANK, config.text_config.hidden_size // 4)
    scale = lora_scale(rank, LORA_ALPHA)
    with atomic_dir(out_dir) as tmp:
        trained: dict[str, torch.Tensor] = {"llama_proj.weight": weights["llama_proj.weight"],
                                            "llama_proj.bias": weights["llama_proj.bias"]}
        llm: dict[str, torch.Tensor] = {}
        for key, value in weights.items():
            if not key.startswith("language_model."):
                continue
            name = key[len("language_model."):]
            parts = name.split(".")
            if len(parts) == 6 and parts[4] in LORA_TARGETS and parts[5] == "weight":
                out_features, in_features = value.shape
                a = torch.randn(rank, in_features, generator=generator) * 0.02
                b = torch.randn(out_features, rank, generator=generator) * 0.02
                trained[_LORA_KEY.format(layer=parts[2], module=parts[4], ab="A")] = a
                trained[_LORA_KEY.format(layer=parts[2], module=parts[4], ab="B")] = b
                value = value.float() - scale * (b @ a)
            llm[name] = value
        torch.save({"model": trained, "config": {"model": {"lora_r": rank, "lora_alpha": LORA_ALPHA}}, "epoch": 0},
                   tmp / checkpoint_name)
        torch.save(_to_eva(weights, config.vision_config.num_hidden_layers), tmp / EVA_FILE)
        with torch.device("meta"):
            language_model = AutoModelForCausalLM.from_config(config.text_config)
        language_model = language_model.to_empty(device="cpu")
        language_model.load_state_dict(llm, strict=True, assign=True)
        language_model.save_pretrained(tmp / LLM_DIR)
        ADAPTER.processor_cls().from_pretrained(model_dir).tokenizer.save_pretrained(tmp / LLM_DIR)
    return out_dir


def _to_eva(weights: dict[str, "torch.Tensor"], depth: int) -> dict[str, "torch.Tensor"]:
    """Blip2VisionModel weights (under vision_model.) -> LAVIS EVA ViT-g names; qkv.bias split into q_bias / v_bias."""
    inverse = {}
    names = ["cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"]
    names += [f"blocks.{i}.{rest}" for i in range(depth) for rest in (
        "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "attn.qkv.weight", "attn.proj.weight",
        "attn.proj.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias")]
    for name in names:
        inverse[name] = weights[f"vision_model.{eva_to_vision_key(name)}"]
    for i in range(depth):
        bias = weights[f"vision_model.encoder.layers.{i}.self_attn.qkv.bias"]
        q, _k, v = bias.chunk(3)
        inverse[f"blocks.{i}.attn.q_bias"] = q.clone()
        inverse[f"blocks.{i}.attn.v_bias"] = v.clone()
    return {k: v.contiguous().clone() for k, v in inverse.items()}


ADAPTER = MiniGPT4VideoAdapter()
