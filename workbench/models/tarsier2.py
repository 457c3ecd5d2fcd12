"""Tarsier2-Recap-7b (omni-research/Tarsier2-Recap-7b): a Qwen2-VL-7B fine-tune in a Llava-style wrapper.

transformers cannot load the published checkpoint (model_type "llava" around a Qwen2-VL text config, weights
under vision_tower / language_model); `convert_tarsier2` rewrites it once into the Qwen2-VL layout and this
adapter then loads it as Qwen2-VL. Everything after loading is Qwen2-VL's (same ViT, merger and LLM), so the
adapter extends `Qwen2VLAdapter`. Quirks kept here, from Tarsier2's own inference code (bytedance/tarsier,
branch tarsier2: configs/tarser2_default_config.yaml, dataset/):
- 16 frames by default, each resized to at most 460,800 pixels (1280 * 720 / 2), and at most
  128 * 384 * 384 pixels per sample over all the images it feeds (the per-frame budget shrinks past 20
  frames: `frame_budget`).
- Frames are fed as images (`use_multi_images_for_video`): every frame is repeated twice, so each 2-frame
  temporal patch of the ViT holds one frame. The LLM sees T * (H'/28) * (W'/28) tokens for T frames, twice
  what Qwen2-VL's own video path gives, and temporal positions count frames, not frame pairs.
- Tarsier's code resizes each frame to the budget with factor 1 and then lets the Qwen2-VL processor round
  to multiples of 28; here the budget goes straight to the processor (one rounding), which can differ from
  theirs by one 28-pixel row or column.
- The chat format is Qwen2-VL's (the vLLM Tarsier2 example prompts it that way); the caption prompt is
  Tarsier's own "Describe the video in detail."
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from workbench.models.base import SPECIAL_SOURCES, LoadedModel, LoadSettings, ModelSpec, weights_unavailable
from workbench.models.geometry import VisualGeometry, patch_sequence_geometry
from workbench.models.traits import MemoryTraits
from workbench.models.qwen2_vl import _CONFIG_7B as QWEN2_VL_7B_CONFIG
from workbench.models.qwen2_vl import (
    CHAT_TEMPLATE,
    MIN_PIXELS,
    Qwen2VLAdapter,
    frame_metadata,
    qwen2_resize,
)

if TYPE_CHECKING:
    import numpy as np

FAMILY = "tarsier2"
HUB_ID = "omni-research/Tarsier2-Recap-7b"
N_FRAMES = 16  # tarser2_default_config.yaml: n_frames
MAX_PIXELS = 460800  # tarser2_default_config.yaml: max_pixels (1280 * 720 // 2), per frame
MAX_PIXELS_PER_SAMPLE = 128 * 384 * 384  # TarsierProcessor: budget over all images of one sample
COPIES_PER_FRAME = 2  # use_multi_images_for_video: each frame is fed twice
PROMPT = "Describe the video in detail."

# Qwen2-VL-7B's architecture and Qwen2 vocabulary/token ids, which the Tarsier2 text_config carries (vLLM
# builds its Qwen2VLConfig from that text_config): the Qwen2-VL family file's 7B config, unchanged.
_CONFIG_7B: dict[str, Any] = QWEN2_VL_7B_CONFIG

_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
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

_NOTES = ("Qwen2-VL-7B fine-tune; published in a Llava-style wrapper that is converted to Qwen2-VL on first "
          "load. 16 frames fed as images: T x (H'/28) x (W'/28) LLM tokens, <= 460,800 pixels per frame.")


def frame_budget(n_frames: int, max_pixels: int | None = None) -> int:
    """Per-frame pixel budget Tarsier2 uses for n_frames: its per-frame cap, lowered so that all the images
    of one sample (each frame twice) stay within 128 * 384 * 384 pixels.

    >>> frame_budget(16), frame_budget(32), frame_budget(64, max_pixels=200704)
    (460800, 294912, 147456)
    """
    cap = MAX_PIXELS if max_pixels is None else int(max_pixels)
    return min(cap, MAX_PIXELS_PER_SAMPLE // max(1, COPIES_PER_FRAME * n_frames))


def processing_from_published(folder: Path) -> dict[str, Any]:
    """The image/video processor settings for a converted checkpoint: the published preprocessor_config's
    normalisation and patching, Tarsier2's per-frame budget as the upper size bound."""
    processing = json.loads(json.dumps(_PROCESSING))
    source = folder / "preprocessor_config.json"
    if source.exists():
        published = json.loads(source.read_text())
        for key in ("patch_size", "temporal_patch_size", "merge_size", "image_mean", "image_std"):
            if key in published:
                processing[key] = published[key]
        size = published.get("size") or {}
        low = published.get("min_pixels", size.get("min_pixels", size.get("shortest_edge")))
        if isinstance(low, int) and low > 0:
            processing["size"]["shortest_edge"] = low
    return processing


class Tarsier2Adapter(Qwen2VLAdapter):
    family: ClassVar[str] = FAMILY
    processing: ClassVar[dict[str, Any]] = _PROCESSING
    # Qwen2-VL-7B's vision tower and LLM, unchanged by the fine-tune: the same memory behaviour.
    memory: ClassVar[MemoryTraits] = Qwen2VLAdapter.memory
    chat_template: ClassVar[str] = CHAT_TEMPLATE
    specs: ClassVar[dict[str, ModelSpec]] = {
        "tarsier2-recap-7b": ModelSpec(
            model_id="tarsier2-recap-7b",
            hub_id=HUB_ID,
            family=FAMILY,
            config=_CONFIG_7B,
            published_params=8.29e9,  # Qwen2-VL-7B's architecture, unchanged by the fine-tune
            frame_mode="images",
            default_frames=N_FRAMES,
            prompt=PROMPT,
            aliases=("tarsier2-recap", "tarsier2-7b"),
            notes=_NOTES,
        ),
    }

    # ---- geometry ----------------------------------------------------------------------------
    def visual_tokens(self, n_frames: int, height: int, width: int, *, model_id: str | None = None,
                      max_pixels: int | None = None, min_pixels: int | None = None,
                      options: Mapping[str, Any] | None = None) -> VisualGeometry:
        """Tokens a clip of n_frames (height x width) costs when each frame is its own temporal patch.

        >>> tokens = ADAPTER.visual_tokens(16, 720, 1280)
        >>> tokens.resized_height, tokens.resized_width, tokens.llm_tokens  # 16 x (504/28) x (896/28)
        (504, 896, 9216)
        """
        patch = self.processing["patch_size"]
        merge = self.processing["merge_size"]
        budget = frame_budget(n_frames, max_pixels)
        low = self.processing["size"]["shortest_edge"] if min_pixels is None else min_pixels
        resized_h, resized_w = qwen2_resize(height, width, patch * merge, min_pixels=min(low, budget),
                                            max_pixels=budget)
        return patch_sequence_geometry(n_frames, resized_h, resized_w, patch=patch, merge=merge,
                                       temporal=self.processing["temporal_patch_size"], pixel_budget=budget,
                                       frames_per_segment=1)

    def size_kwargs(self, n_frames: int, max_pixels: int | None, min_pixels: int | None) -> dict[str, Any]:
        """Always explicit: the per-frame budget depends on the frame count."""
        budget = frame_budget(n_frames, max_pixels)
        low = self.processing["size"]["shortest_edge"] if min_pixels is None else min_pixels
        return {"size": {"shortest_edge": min(low, budget), "longest_edge": budget}}

    # ---- inputs --------------------------------------------------------------------------------
    def build_inputs(self, loaded: LoadedModel, frames: "np.ndarray", timestamps_s: "np.ndarray | None",
                     prompt: str, max_pixels: int | None = None, min_pixels: int | None = None) -> Any:
        """Frames (T,H,W,3 uint8), each repeated twice, as one video after the chat-templated prompt: every
        temporal patch then holds a single frame, as Tarsier2 feeds frames as images."""
        import numpy as np
        from transformers.video_utils import VideoMetadata

        if max_pixels is None:
            max_pixels = loaded.settings.max_pixels
        if min_pixels is None:
            min_pixels = loaded.settings.min_pixels
        n_frames = int(frames.shape[0])
        doubled = np.repeat(frames, COPIES_PER_FRAME, axis=0)
        times = np.arange(n_frames, dtype=float) if timestamps_s is None else np.asarray(timestamps_s, float)
        metadata = VideoMetadata(**frame_metadata(len(doubled), np.repeat(times, COPIES_PER_FRAME)))
        return loaded.processor(
            text=[self.prompt_text(loaded, prompt)],
            videos=[doubled],
            video_metadata=[metadata],
            do_sample_frames=False,
            cap_pixels_per_frame=False,
            return_tensors="pt",
            **self.size_kwargs(n_frames, max_pixels, min_pixels),
        )

    def token_layout(self, loaded: LoadedModel, capture: Any, n_frames: int, height: int, width: int) -> Any:
        """One temporal patch per frame, each a (grid_h/merge) x (grid_w/merge) grid in row-major order."""
        import numpy as np

        from workbench.models.layout import per_frame_grids

        merge = loaded.model.config.vision_config.spatial_merge_size
        _, grid_h, grid_w = (int(v) for v in capture.segments[0].inputs["video_grid_thw"][0])
        return per_frame_grids(
            np.concatenate(capture.visual_positions), n_frames, grid_h // merge, grid_w // merge,
            frames_per_group=1,
            description=f"{loaded.spec.model_id}: one frame per temporal patch, "
                        f"{grid_h // merge}x{grid_w // merge} merged grid",
        )

    # ---- loading published checkpoints -----------------------------------------------------------
    def load(self, spec: ModelSpec, settings: LoadSettings) -> LoadedModel:
        """tiny / random as every family; a published folder or hub id is converted (once) and loaded as
        Qwen2-VL, with the report naming the source that was asked for."""
        if settings.source in SPECIAL_SOURCES:
            return super().load(spec, settings)
        from workbench.models.convert_tarsier2 import ConversionError, convert_checkpoint

        folder = self.resolve_source(spec, settings)
        if _is_qwen2vl_folder(folder):
            converted = folder  # already in the Qwen2-VL layout
        else:
            try:
                converted = convert_checkpoint(folder, allow_pickle=settings.allow_pickle,
                                               processing=processing_from_published, chat_template=CHAT_TEMPLATE)
            except ConversionError as err:
                from workbench.models.base import UnsafeLoadError

                if "pickle" in str(err) and not settings.allow_pickle:
                    raise UnsafeLoadError(str(err)) from err
                raise
        loaded = super().load(spec, dataclasses.replace(settings, source=str(converted)))
        loaded.settings = settings
        loaded.report.source = settings.source
        return loaded

    def resolve_source(self, spec: ModelSpec, settings: LoadSettings) -> Path:
        """A local folder as it is; a hub id through the HF cache / hub (safetensors and JSON files only)."""
        path = Path(settings.source).expanduser()
        if path.exists():
            return path
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(
                settings.source,
                allow_patterns=["*.json", "*.safetensors", "*.txt", "*.jinja", "*.model", "*.tiktoken"],
            ))
        except Exception as err:  # offline, unknown repo, no access: all mean the weights are not here
            raise weights_unavailable(spec, settings, err) from err


def _is_qwen2vl_folder(folder: Path) -> bool:
    config = folder / "config.json"
    return config.exists() and json.loads(config.read_text()).get("model_type") == "qwen2_vl"


# ---- a tiny checkpoint in the published layout (tests) ------------------------------------------------------

def published_config(config: Any) -> dict[str, Any]:
    """Tarsier2's own config.json for a Qwen2VLConfig: a "llava" wrapper with the Qwen2-VL text config
    (4.x flat spelling, rope as `rope_scaling`) and the vision tower config beside it."""
    text = config.get_text_config().to_dict()
    rope = dict(text.pop("rope_parameters", None) or {})
    theta = rope.pop("rope_theta", None)
    text_config = {
        "architectures": ["Qwen2VLForCausalLM"],
        "model_type": "qwen2_vl",
        **{k: v for k, v in text.items() if k in _TEXT_FIELDS},
        "rope_theta": theta,
        "rope_scaling": {"type": "mrope", "mrope_section": list(rope.get("mrope_section", []))},
        "spatial_merge_size": config.vision_config.spatial_merge_size,
        "image_token_id": config.image_token_id,
        "video_token_id": config.video_token_id,
        "vision_start_token_id": config.vision_start_token_id,
        "vision_end_token_id": config.vision_end_token_id,
        "tie_word_embeddings": bool(config.tie_word_embeddings),
        "attn_implementation": "flash_attention_2",
    }
    vision = config.vision_config.to_dict()
    vision_config = {"model_type": "qwen2_vl", **{k: vision[k] for k in _VISION_FIELDS if k in vision}}
    return {
        "architectures": ["TarsierForConditionalGeneration"],
        "model_type": "llava",
        "image_token_index": config.image_token_id,
        "ignore_index": -100,
        "text_config": text_config,
        "vision_config": vision_config,
        "torch_dtype": "bfloat16",
    }


_TEXT_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "hidden_act", "max_position_embeddings", "initializer_range",
                "rms_norm_eps", "use_sliding_window", "sliding_window", "max_window_layers", "attention_dropout",
                "bos_token_id", "eos_token_id", "pad_token_id")
_VISION_FIELDS = ("depth", "embed_dim", "hidden_size", "hidden_act", "mlp_ratio", "num_heads", "in_channels",
                  "patch_size", "spatial_merge_size", "temporal_patch_size")


def fabricate_published_checkpoint(out_dir: str | Path, model_dir: str | Path | None = None,
                                   n_shards: int = 2, pickle: bool = False) -> Path:
    """Write a checkpoint in the published Tarsier2 layout from a Qwen2-VL folder (default: the tiny twin):
    weights renamed back to vision_tower / language_model and split into `n_shards` shards (safetensors, or
    torch pickles with `pickle=True`), Tarsier2's config.json, tokenizer files, preprocessor_config.json."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, Qwen2VLConfig

    from workbench.models.convert_tarsier2 import to_published_key

    model_dir = Path(model_dir) if model_dir is not None else ADAPTER.ensure_tiny()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for path in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                published = to_published_key(key)
                if published is None:
                    raise ValueError(f"{model_dir}: {key} has no published Tarsier2 name")
                tensors[published] = handle.get_tensor(key)
    names = sorted(tensors)
    per_shard = math.ceil(len(names) / n_shards)
    weight_map: dict[str, str] = {}
    for i in range(n_shards):
        chunk = {k: tensors[k].contiguous() for k in names[i * per_shard:(i + 1) * per_shard]}
        suffix = "bin" if pickle else "safetensors"
        name = f"model-{i + 1:05d}-of-{n_shards:05d}.{suffix}"
        if pickle:
            torch.save(chunk, out_dir / name)
        else:
            save_file(chunk, str(out_dir / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in chunk})
    index_name = "pytorch_model.bin.index.json" if pickle else "model.safetensors.index.json"
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    (out_dir / index_name).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map},
                                                 indent=2) + "\n")
    config = Qwen2VLConfig.from_pretrained(model_dir)
    (out_dir / "config.json").write_text(json.dumps(published_config(config), indent=2) + "\n")
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(out_dir)
    processing = ADAPTER.processing
    (out_dir / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "TarsierProcessor",
        "min_pixels": processing["size"]["shortest_edge"], "max_pixels": 12845056,
        "patch_size": processing["patch_size"], "temporal_patch_size": processing["temporal_patch_size"],
        "merge_size": processing["merge_size"], "image_mean": processing["image_mean"],
        "image_std": processing["image_std"], "do_rescale": True, "do_normalize": True, "resample": 3,
    }, indent=2) + "\n")
    return out_dir


ADAPTER = Tarsier2Adapter()
