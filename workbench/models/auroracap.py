"""AuroraCap-7B-VID (wchai/AuroraCap-7B-VID-xtuner): Vicuna-7B-v1.5-16k + CLIP ViT-H/14 at 378 px with token
merging, assembled here from transformers components (no remote code is ever run).

Published layout (xtuner): the LLM at the root (LlamaForCausalLM config.json + safetensors + tokenizer),
visual_encoder/ (a CLIP vision tower: apple/DFN5B-CLIP-ViT-H-14-378, quick_gelu, 32 layers, 1280 wide, saved by
AuroraCap's own CLIPVisionModel subclass) and projector/ (xtuner's ProjectorModel: Linear(1280, 4096), GELU,
Linear(4096, 4096), keys model.0.* / model.2.*, loaded by the publisher with trust_remote_code). This file reads
the three folders' configs and safetensors into its own `AuroraCapForConditionalGeneration`, so the projector's
remote code is never needed (its weights load into our own two Linear layers).

Quirks kept here (see docs/seed_auroracap.md for sources):
- Frames are CLIP-processed to 378 x 378 (shortest-edge resize + centre crop): 27 x 27 = 729 patches + [CLS].
- Token merging in every vision layer (workbench/models/token_merging.py) with
  r = int(729 * (1 - token_kept_ratio) / 32) per layer; the LLM reads the second-to-last hidden state without
  [CLS], i.e. after 31 merging layers: ratio 0.2 -> 171, 0.4 -> 326, 0.8 -> 605, 1.0 -> 729 tokens per frame.
  Only the layers whose output reaches the LLM are run.
- AuroraCap adds log(size) to the attention logits along the QUERY axis, a per-row constant that softmax
  cancels: the published model effectively has no proportional attention. `proportional_attention=True` gives
  ToMe's key-side bias instead (off by default, to match the publisher).
- Prompt (xtuner `vicuna` template, no system text, as the publisher's inference.py):
  "USER: <image> <image> ... <image>\\n{prompt} ASSISTANT:", one <image> per frame, each replaced by that frame's
  merged tokens; the first text chunk is tokenized with <s>, the others without.
- The published tokenizer has no <image> token (xtuner splices at id -200); here each visual token is the
  tokenizer's <unk> id (0), which a byte-fallback Llama tokenizer never produces from text, so generate(),
  repetition penalties and attention capture see ordinary ids.
- `token_kept_ratio` lives in the config: memory probes pass it as config_overrides={"token_kept_ratio": x};
  it is read at every forward, so it can also be changed on a loaded model (`set_token_kept_ratio`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from workbench.models.base import (
    FamilyAdapter,
    LoadedModel,
    LoadSettings,
    ModelSpec,
    UnsafeLoadError,
    WeightsUnavailableError,
    quiet_transformers,
)
from workbench.models.geometry import VisualGeometry, per_frame_geometry
from workbench.models.tiny import train_tokenizer
from workbench.models.traits import MemoryTraits

if TYPE_CHECKING:
    import numpy as np
    import torch

FAMILY = "auroracap"
MODEL_ID = "auroracap-7b-vid"
HUB_ID = "wchai/AuroraCap-7B-VID-xtuner"
FEATURE_LAYER = -2  # AuroraModel.visual_select_layer
DEFAULT_KEPT_RATIO = 0.2  # the publisher's quick start and Gradio default; its docs recommend 0.2-0.4 for captions

# wchai/AuroraCap-7B-VID-xtuner config.json (lmsys/vicuna-7b-v1.5-16k), trimmed to the architecture.
_TEXT_VICUNA_16K: dict[str, Any] = {
    "model_type": "llama",
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-05,
    "rope_parameters": {"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0},  # 16k context
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "tie_word_embeddings": False,
}
# wchai/AuroraCap-7B-VID-xtuner visual_encoder/config.json (apple/DFN5B-CLIP-ViT-H-14-378).
_VISION_VIT_H14_378: dict[str, Any] = {
    "model_type": "clip_vision_model",
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "patch_size": 14,
    "image_size": 378,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-05,
    "projection_dim": 512,
}
_CONFIG_7B_VID: dict[str, Any] = {
    "model_type": "auroracap",
    "text_config": _TEXT_VICUNA_16K,
    "vision_config": _VISION_VIT_H14_378,
    # projector/config.json: xtuner ProjectorModel, depth 2, gelu, bias (1280 -> 4096 -> 4096)
    "projector_depth": 2,
    "projector_hidden_act": "gelu",
    "projector_bias": True,
    "vision_feature_layer": FEATURE_LAYER,
    "token_kept_ratio": DEFAULT_KEPT_RATIO,
    "proportional_attention": False,
    "image_token_index": 0,  # <unk>: see the module docstring
    "tie_word_embeddings": False,
}

# CLIPImageProcessor as the publisher's inference.py builds it (laion CLIP processor with size=crop=378).
_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
_FRAME_PROCESSING: dict[str, Any] = {
    "do_resize": True,
    "size": {"shortest_edge": 378},
    "resample": 3,  # bicubic
    "do_center_crop": True,
    "crop_size": {"height": 378, "width": 378},
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": _CLIP_MEAN,
    "image_std": _CLIP_STD,
    "do_convert_rgb": True,
}
# The publisher's projector/config.json (what `fabricate_xtuner_checkpoint` writes, auto_map included).
_PROJECTOR_AUTO_MAP = {
    "AutoConfig": "configuration_projector.ProjectorConfig",
    "AutoModel": "modeling_projector.ProjectorModel",
}

# visual_encoder/ weights were saved by a transformers 4.x CLIPVisionModel: "vision_model.embeddings...";
# transformers 5.x keeps the same modules one level up ("embeddings...").
_PUBLISHED_VISION_PREFIX = "vision_model."

IMAGE_MARKER = "<image>"
PROMPT = ("Describe what happens in this video second by second: the objects, their colours, "
          "where they are and how they move.")

# The tiny twin's vision tower: real patch grid (27 x 27 at 378 px), 4 layers so merging spans 3 of them.
_TINY_VISION: dict[str, Any] = {
    "model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4,
    "num_attention_heads": 2, "patch_size": 14, "image_size": 378, "hidden_act": "quick_gelu",
    "projection_dim": 32,
}


# ---- pure helpers ---------------------------------------------------------------------------------------

def prompt_text(n_frames: int, prompt: str) -> str:
    """The publisher's video prompt: one <image> per frame, space-separated, then the question (vicuna turn).

    >>> prompt_text(2, "Describe the video.")
    'USER: <image> <image>\\nDescribe the video. ASSISTANT:'
    """
    images = " ".join([IMAGE_MARKER] * n_frames)
    return f"USER: {images}\n{prompt} ASSISTANT:"


def merged_layers(n_layers: int, feature_layer: int) -> int:
    """Encoder layers whose output reaches the selected hidden state (index 0 = the embeddings).

    >>> merged_layers(32, -2), merged_layers(32, -1), merged_layers(4, -2)
    (31, 32, 3)
    """
    return feature_layer % (n_layers + 1)


def auroracap_tokens(n_frames: int, kept_ratio: float, *, n_layers: int = 32, feature_layer: int = FEATURE_LAYER,
                     image_size: int = 378, patch_size: int = 14) -> VisualGeometry:
    """Visual tokens of a clip: every frame is 378 x 378, 729 patches + [CLS] enter the tower, and the merged
    patch tokens of the selected layer reach the LLM.

    >>> auroracap_tokens(8, 0.2).llm_tokens, auroracap_tokens(8, 1.0).llm_tokens
    (1368, 5832)
    """
    from workbench.models.token_merging import kept_patches

    patches = (image_size // patch_size) ** 2
    per_frame = kept_patches(patches, kept_ratio, n_layers, merged_layers(n_layers, feature_layer))
    return per_frame_geometry(n_frames, per_frame, patches + 1, image_size, image_size)

def _tiny_tokenizer() -> Any:
    """Llama-style BPE (<unk>, <pad>, <s>, </s>), adding <s> like the Llama tokenizer; no <image> token."""
    from tokenizers.processors import TemplateProcessing

    tokenizer = train_tokenizer([], unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    bos = tokenizer.bos_token_id
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    return tokenizer


# ---- processor -------------------------------------------------------------------------------------------

@dataclass
class AuroraCapProcessor:
    """The tokenizer (root folder) and the CLIP image processor (visual_encoder/ in the published layout)."""

    tokenizer: Any
    image_processor: Any

    def batch_decode(self, ids: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(ids, **kwargs)

    def decode(self, ids: Any, **kwargs: Any) -> str:
        return self.tokenizer.decode(ids, **kwargs)

    def save_pretrained(self, out_dir: str | Path) -> None:
        self.tokenizer.save_pretrained(str(out_dir))
        self.image_processor.save_pretrained(str(out_dir))

    @classmethod
    def from_folder(cls, path: str | Path) -> "AuroraCapProcessor":
        from transformers import AutoTokenizer, CLIPImageProcessor

        root = Path(path)
        vision_dir = root / "visual_encoder"
        image_dir = vision_dir if (vision_dir / "preprocessor_config.json").exists() else root
        if not (image_dir / "preprocessor_config.json").exists():
            raise WeightsUnavailableError(
                f"{root}: no preprocessor_config.json in visual_encoder/ or the root (the CLIP image processor)")
        with quiet_transformers():  # AutoTokenizer reads config.json and warns that it is not a tokenizer's model
            tokenizer = AutoTokenizer.from_pretrained(str(root))
        return cls(tokenizer, CLIPImageProcessor.from_pretrained(str(image_dir)))

    def tokenize(self, text: str, tokens_per_image: int, placeholder_id: int) -> list[int]:
        """Split on <image>, tokenize each chunk (the first with <s>), insert tokens_per_image placeholders."""
        ids: list[int] = []
        for index, chunk in enumerate(text.split(IMAGE_MARKER)):
            if index:
                ids += [placeholder_id] * tokens_per_image
            ids += self.tokenizer.encode(chunk, add_special_tokens=index == 0)
        return ids


# ---- the published xtuner folder --------------------------------------------------------------------------

def is_xtuner_folder(path: Path) -> bool:
    return path.is_dir() and (path / "visual_encoder").is_dir()


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.exists():
        raise WeightsUnavailableError(f"{path.parent} has no {path.name}: {what} is missing")
    return json.loads(path.read_text())


def xtuner_config(path: Path, **overrides: Any) -> Any:
    """AuroraCapConfig from the three published configs (root LLM, visual_encoder/, projector/)."""
    root = _read_json(path / "config.json", "the language model's config")
    vision = _read_json(path / "visual_encoder" / "config.json", "the vision tower's config")
    projector = _read_json(path / "projector" / "config.json", "the projector's config")
    keep = {"architectures", "auto_map", "_name_or_path", "transformers_version", "torch_dtype", "dtype"}
    text_config = {k: v for k, v in root.items() if k not in keep}
    vision_config = {k: v for k, v in vision.items() if k not in keep}
    if projector.get("visual_hidden_size") != vision_config.get("hidden_size") or \
            projector.get("llm_hidden_size") != text_config.get("hidden_size"):
        raise WeightsUnavailableError(
            f"{path / 'projector' / 'config.json'}: projector {projector.get('visual_hidden_size')} -> "
            f"{projector.get('llm_hidden_size')} does not join the vision tower ({vision_config.get('hidden_size')}) "
            f"to the LLM ({text_config.get('hidden_size')})")
    config = dict(_CONFIG_7B_VID)
    config.update(text_config=text_config, vision_config=vision_config,
                  projector_depth=int(projector.get("depth", 2)),
                  projector_hidden_act=projector.get("hidden_act", "gelu"),
                  projector_bias=bool(projector.get("bias", True)), **overrides)
    return ADAPTER.config_cls().from_dict(config)


def _weight_files(folder: Path, allow_pickle: bool) -> list[Path]:
    """The folder's safetensors shards (or pickles, only when allowed); a clear error naming what is missing."""
    tensors = sorted(folder.glob("*.safetensors"))
    if tensors:
        return tensors
    pickles = sorted(p for ext in ("*.bin", "*.pt", "*.pth") for p in folder.glob(ext))
    if pickles and not allow_pickle:
        raise UnsafeLoadError(
            f"{folder} holds only pickle weights ({', '.join(p.name for p in pickles[:3])}); unpickling can run "
            f"code. Convert them to safetensors, or pass allow_pickle=True by name to allow it")
    if pickles:
        return pickles
    raise WeightsUnavailableError(f"{folder} has no weights (*.safetensors): this part of the checkpoint is missing")


def check_xtuner_folder(path: Path, allow_pickle: bool) -> None:
    """Every part of the published layout is there and loadable under the user's pickle policy."""
    for folder, what in ((path, "the language model"), (path / "visual_encoder", "the vision tower"),
                         (path / "projector", "the projector")):
        if not folder.is_dir():
            raise WeightsUnavailableError(f"{path} has no {folder.name}/ folder: {what} is missing")
        _read_json(folder / "config.json", f"{what}'s config")
        _weight_files(folder, allow_pickle)


def xtuner_state_dict(path: Path, allow_pickle: bool) -> dict[str, Any]:
    """Our parameter names -> lazily read tensors of the three folders (safetensors slices are read when used)."""
    import torch
    from safetensors import safe_open

    parts = (("", "language_model."), ("visual_encoder", "vision_tower."), ("projector", "multi_modal_projector."))
    state: dict[str, Any] = {}
    for sub, prefix in parts:
        for file in _weight_files(path / sub if sub else path, allow_pickle):
            if file.suffix == ".safetensors":
                handle = safe_open(str(file), framework="pt")
                entries = {key: handle.get_slice(key) for key in handle.keys()}
            else:
                entries = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
            for key, value in entries.items():
                # AuroraEncoder registers its kept position table as `pos_emb`; rotary tables are recomputed
                if key == "pos_emb" or key.endswith("inv_freq") or key.endswith("position_ids"):
                    continue
                if sub == "visual_encoder" and key.startswith(_PUBLISHED_VISION_PREFIX):
                    key = key[len(_PUBLISHED_VISION_PREFIX):]  # transformers 4.x CLIPVisionModel names
                state[prefix + key] = value
    return state


def fabricate_xtuner_checkpoint(out_dir: Path, pickle: bool = False) -> Path:
    """Write the tiny twin's weights in the PUBLISHED xtuner layout (for tests): root LLM + tokenizer,
    visual_encoder/ (CLIP config + preprocessor), projector/ (config.json with auto_map as published).

    `pickle=True` saves every part as pytorch_model.bin instead of safetensors.
    """
    from safetensors.torch import load_file, save_file

    adapter = ADAPTER
    tiny = adapter.ensure_tiny()
    config = adapter.config_cls().from_pretrained(tiny)
    weights: dict[str, Any] = {}
    for file in sorted(tiny.glob("*.safetensors")):
        weights.update(load_file(str(file)))
    parts = {"": "language_model.", "visual_encoder": "vision_tower.", "projector": "multi_modal_projector."}
    out_dir.mkdir(parents=True, exist_ok=True)
    for sub, prefix in parts.items():
        folder = out_dir / sub if sub else out_dir
        folder.mkdir(exist_ok=True)
        renamed = _PUBLISHED_VISION_PREFIX if sub == "visual_encoder" else ""
        part = {renamed + k[len(prefix):]: v.contiguous() for k, v in weights.items() if k.startswith(prefix)}
        if pickle:
            import torch

            torch.save(part, folder / "pytorch_model.bin")
        else:
            save_file(part, str(folder / "model.safetensors"), metadata={"format": "pt"})
    text = config.text_config.to_dict()
    text.update(architectures=["LlamaForCausalLM"], model_type="llama", torch_dtype="float32")
    (out_dir / "config.json").write_text(json.dumps(text, indent=2) + "\n")
    vision = config.vision_config.to_dict()
    vision.update(architectures=["PikaVidEncoder"], model_type="clip_vision_model", torch_dtype="float32")
    (out_dir / "visual_encoder" / "config.json").write_text(json.dumps(vision, indent=2) + "\n")
    projector = {
        "architectures": ["ProjectorModel"], "auto_map": dict(_PROJECTOR_AUTO_MAP), "bias": config.projector_bias,
        "depth": config.projector_depth, "hidden_act": config.projector_hidden_act,
        "llm_hidden_size": config.text_config.hidden_size, "model_type": "projector", "torch_dtype": "float32",
        "visual_hidden_size": config.vision_config.hidden_size,
    }
    (out_dir / "projector" / "config.json").write_text(json.dumps(projector, indent=2) + "\n")
    processor = AuroraCapProcessor.from_folder(tiny)
    processor.tokenizer.save_pretrained(str(out_dir))
    processor.image_processor.save_pretrained(str(out_dir / "visual_encoder"))
    return out_dir


def set_token_kept_ratio(loaded: LoadedModel, ratio: float) -> None:
    """Change the ratio of a loaded model (prompts built afterwards use it too); weights are unchanged."""
    from workbench.models.token_merging import merges_per_layer

    merges_per_layer(1, ratio, 1)  # validates the range
    loaded.model.config.token_kept_ratio = float(ratio)


# ---- the adapter ------------------------------------------------------------------------------------------

class AuroraCapAdapter(FamilyAdapter):
    family: ClassVar[str] = FAMILY
    # assembled from transformers parts in auroracap_modeling.py, imported only when a model is loaded
    model_class: ClassVar[str] = "workbench.models.auroracap_modeling.AuroraCapForConditionalGeneration"
    config_class: ClassVar[str] = "workbench.models.auroracap_modeling.AuroraCapConfig"
    skip_modules: ClassVar[tuple[str, ...]] = ("vision_tower", "multi_modal_projector", "lm_head")
    runtime_options: ClassVar[dict[str, str]] = {
        "token_kept_ratio": "share of each frame's 729 patch tokens kept by token merging, 0 < r <= 1 "
                            "(its docs advise 0.2-0.4 for captions)",
    }
    # CLIP ViT-H (quick_gelu: three MLP-width tensors); the merging loop keeps only its running state, not every
    # layer's output.
    memory: ClassVar[MemoryTraits] = MemoryTraits(vision_kind="per_frame", mlp_copies=3)
    specs: ClassVar[dict[str, ModelSpec]] = {
        MODEL_ID: ModelSpec(
            model_id=MODEL_ID,
            hub_id=HUB_ID,
            family=FAMILY,
            config=_CONFIG_7B_VID,
            # Vicuna-7B 6.738B + ViT-H/14-378 vision tower 0.631B + projector 0.022B: the sum of the published
            # parts (vicuna-7b-v1.5-16k's 6,738,415,616; visual_encoder 2.53 GB and projector 88.1 MB of fp32
            # safetensors on the hub), see docs/seed_auroracap.md.
            published_params=7.39e9,
            frame_mode="video",
            default_frames=8,
            prompt=PROMPT,
            aliases=("auroracap", "auroracap-7b"),
            notes="Vicuna-7B-16k + CLIP ViT-H/14 (378 px) with token merging; "
                  f"token_kept_ratio {DEFAULT_KEPT_RATIO} -> 171 tokens per frame (729 unmerged).",
        ),
    }

    def set_option(self, loaded: LoadedModel, name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {value!r}")
        set_token_kept_ratio(loaded, float(value))

    # ---- geometry ----------------------------------------------------------------------------------
    def visual_tokens(self, n_frames: int, height: int, width: int, *, model_id: str | None = None,
                      max_pixels: int | None = None, min_pixels: int | None = None,
                      options: Mapping[str, Any] | None = None) -> VisualGeometry:
        """Tokens of a clip; `model_id` None gives the tiny twin's geometry (4 vision layers, not 32).

        The ratio comes from `options` (a runtime option or a config override, which may also resize the vision
        tower, as memory probes of a mid-size model do), else the checkpoint's default.
        """
        del height, width  # every frame is resized and centre-cropped to 378 x 378
        options = options or {}
        vision = {**(_TINY_VISION if model_id is None else _VISION_VIT_H14_378), **options.get("vision_config", {})}
        ratio = options.get("token_kept_ratio", _CONFIG_7B_VID["token_kept_ratio"])
        return auroracap_tokens(n_frames, float(ratio), n_layers=vision["num_hidden_layers"],
                                feature_layer=options.get("vision_feature_layer", FEATURE_LAYER),
                                image_size=vision["image_size"], patch_size=vision["patch_size"])

    # ---- tiny twin -----------------------------------------------------------------------------------
    def tiny_config(self) -> Any:
        tokenizer = _tiny_tokenizer()
        config = dict(_CONFIG_7B_VID)
        config.update(
            text_config={
                "model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
                "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
                "max_position_embeddings": 4096, "rms_norm_eps": 1e-05,
                "rope_parameters": dict(_TEXT_VICUNA_16K["rope_parameters"]),
                "pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
                "eos_token_id": tokenizer.eos_token_id, "tie_word_embeddings": False,
            },
            vision_config=dict(_TINY_VISION),
            image_token_index=tokenizer.unk_token_id,
        )
        return self.config_cls().from_dict(config)

    def fabricate_processor(self, out_dir: Path) -> Any:
        from transformers import CLIPImageProcessor

        processor = AuroraCapProcessor(_tiny_tokenizer(), CLIPImageProcessor(**_FRAME_PROCESSING))
        processor.save_pretrained(out_dir)
        return processor

    def _load_processor(self, path: str | Path, settings: LoadSettings) -> Any:
        return AuroraCapProcessor.from_folder(_local_folder(str(path)))

    def align_token_ids(self, config: Any, tokenizer: Any) -> None:
        """Visual placeholders at the tokenizer's <unk>; the Llama text config's pad/bos/eos."""
        config.image_token_index = tokenizer.unk_token_id
        text = config.text_config
        text.pad_token_id = tokenizer.pad_token_id
        text.bos_token_id = tokenizer.bos_token_id
        text.eos_token_id = tokenizer.eos_token_id

    # ---- loading -------------------------------------------------------------------------------------
    def load(self, spec: ModelSpec, settings: LoadSettings) -> LoadedModel:
        """tiny / random as every family; a local or cached xtuner folder is checked part by part first."""
        if settings.source not in ("tiny", "random"):
            path = Path(settings.source)
            if path.exists() and not is_xtuner_folder(path) and (path / "config.json").exists():
                root = json.loads((path / "config.json").read_text())
                if root.get("model_type") == "llama":
                    raise WeightsUnavailableError(
                        f"{path} looks like an xtuner AuroraCap folder but has no visual_encoder/ folder: "
                        f"the vision tower is missing")
            if is_xtuner_folder(path):
                check_xtuner_folder(path, settings.allow_pickle)
        return super().load(spec, settings)

    # ---- inputs ----------------------------------------------------------------------------------------
    def build_inputs(self, loaded: LoadedModel, frames: "np.ndarray", timestamps_s: "np.ndarray | None",
                     prompt: str) -> dict[str, Any]:
        """Frames (T,H,W,3 uint8) -> pixel_values (T,3,378,378) + the vicuna prompt with each frame's merged
        tokens as placeholders (their count follows the model's current token_kept_ratio)."""
        import torch

        processor = loaded.processor
        config = loaded.model.config
        pixels = processor.image_processor(list(frames), return_tensors="pt")["pixel_values"]
        vision = config.vision_config
        tokens = auroracap_tokens(len(frames), float(config.token_kept_ratio), n_layers=vision.num_hidden_layers,
                                  feature_layer=config.vision_feature_layer, image_size=int(pixels.shape[-1]),
                                  patch_size=vision.patch_size)
        ids = processor.tokenize(prompt_text(len(frames), prompt), tokens.llm_tokens_per_segment,
                                 config.image_token_index)
        input_ids = torch.tensor([ids], dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "pixel_values": pixels}

    def token_layout(self, loaded: LoadedModel, capture: Any, n_frames: int, height: int, width: int) -> Any:
        """Each merged token spreads its weight evenly over the patches it stands for, in its own frame; the
        grid is the 27 x 27 patch grid of the centre-cropped square."""
        import numpy as np

        from workbench.models.layout import TokenLayout, centre_crop_box

        owner = loaded.model.last_merge_owner
        if owner is None or owner.shape[0] != n_frames:
            raise ValueError(f"{loaded.spec.model_id}: no token-merge record for {n_frames} frames; "
                             f"capture a caption first")
        owner = owner.numpy()
        patches = owner.shape[1]
        side = int(round(patches ** 0.5))
        kept = int(owner.max()) + 1
        positions = np.concatenate(capture.visual_positions)
        if len(positions) != n_frames * kept:
            raise ValueError(f"{loaded.spec.model_id}: the prompt has {len(positions)} visual tokens, the merge "
                             f"record {n_frames} x {kept}")
        tokens, cells, weights = [], [], []
        for frame in range(n_frames):
            counts = np.bincount(owner[frame], minlength=kept)
            tokens.append(frame * kept + owner[frame])
            cells.append(frame * patches + np.arange(patches))
            weights.append(1.0 / counts[owner[frame]])
        layout = TokenLayout(
            positions=positions, n_frames=n_frames, grid_rows=side, grid_cols=side,
            token=np.concatenate(tokens).astype(np.int64), cell=np.concatenate(cells).astype(np.int64),
            weight=np.concatenate(weights).astype(np.float32), box=centre_crop_box(height, width),
            description=f"{loaded.spec.model_id}: {kept} merged tokens per frame over {side}x{side} patches "
                        f"(token_kept_ratio {loaded.model.config.token_kept_ratio})",
        )
        layout.check()
        return layout


def xtuner_source(source: str) -> Path | None:
    """The xtuner folder behind a source (a local folder, or a hub id in the local HF cache), else None."""
    path = Path(source)
    if not path.exists() and source.count("/") == 1:
        path = _local_folder(source)  # OSError when not cached: the adapter says how to get the weights
    return path if is_xtuner_folder(path) else None


def _local_folder(source: str) -> Path:
    """A local folder as is; a hub id through the local HF cache (no download here)."""
    path = Path(source)
    if path.exists():
        return path
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(source, local_files_only=True))


ADAPTER = AuroraCapAdapter()
