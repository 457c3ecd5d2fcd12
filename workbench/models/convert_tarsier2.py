"""Convert a published Tarsier2 checkpoint (Llava-style wrapper) into the Qwen2-VL layout transformers loads.

The published layout (bytedance/tarsier, branch tarsier2: `models/modeling_tarsier.py`; vLLM's
`Tarsier2ForConditionalGeneration` loader reads the same files):

    config.json     model_type "llava", architectures ["TarsierForConditionalGeneration"],
                    text_config = a Qwen2-VL config (model_type "qwen2_vl": LLM numbers and token ids),
                    vision_config = the Qwen2-VL vision tower (model_type "qwen2_vl"), image_token_index
    weights         vision_tower.*            (Qwen2-VL ViT + merger: patch_embed, blocks, merger)
                    language_model.model.*    (embed_tokens, layers, norm)
                    language_model.lm_head.*
    processor       tokenizer files, preprocessor_config.json (Qwen2VLImageProcessor numbers)

transformers 5.x's Qwen2VLForConditionalGeneration keeps `model.visual.*`, `model.language_model.*` and
`lm_head.*` (see `conversion_mapping.py`, "Qwen2VLForConditionalGeneration"), so the conversion is three
prefix renames. No module is added or dropped: Tarsier2 has no projector of its own (the ViT's merger is it),
which is why a `multi_modal_projector.*` key, or any other, is refused as unexpected.

Conversion streams one shard at a time (a 7B checkpoint is never held twice), writes safetensors only,
and lands atomically in the cache under a key made of the source folder's identity (path, file names,
sizes, modification times) and this converter's version, so the next load of the same folder reuses it.
Only JSON is read from the source folder: remote code it may name (auto_map) is never run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:
    import torch

CONVERTER_VERSION = 1

# published prefix -> transformers 5.x Qwen2VLForConditionalGeneration prefix (checked in order)
KEY_PREFIXES: tuple[tuple[str, str], ...] = (
    ("vision_tower.", "model.visual."),
    ("language_model.model.", "model.language_model."),
    ("language_model.lm_head.", "lm_head."),
)
WEIGHT_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
# Config keys of the wrapper's nested configs that are not architecture (or name remote code / kernels).
_DROP_KEYS = {"model_type", "architectures", "auto_map", "_name_or_path", "attn_implementation",
              "_attn_implementation", "vision_config", "transformers_version"}
# Vision markers: config field -> the Qwen2 token it names (used when the config does not carry the id).
MARKER_TOKENS = {
    "image_token_id": "<|image_pad|>",
    "video_token_id": "<|video_pad|>",
    "vision_start_token_id": "<|vision_start|>",
    "vision_end_token_id": "<|vision_end|>",
}


class ConversionError(ValueError):
    """A folder that cannot be converted; the message names the folder and the problem."""


def to_qwen2vl_key(key: str) -> str | None:
    """The Qwen2-VL name of a published weight, or None for a key the layout does not have.

    >>> to_qwen2vl_key("vision_tower.blocks.0.attn.qkv.weight")
    'model.visual.blocks.0.attn.qkv.weight'
    >>> to_qwen2vl_key("language_model.model.layers.3.mlp.up_proj.weight")
    'model.language_model.layers.3.mlp.up_proj.weight'
    >>> to_qwen2vl_key("language_model.lm_head.weight"), to_qwen2vl_key("multi_modal_projector.linear_1.weight")
    ('lm_head.weight', None)
    """
    for published, qwen in KEY_PREFIXES:
        if key.startswith(published):
            return qwen + key[len(published):]
    return None


def native_qwen2vl_key(key: str) -> str:
    """transformers 5.x saves Qwen2-VL under the original hub names (visual.*, model.*); its modules are
    model.visual.* and model.language_model.*. Either spelling -> the module name.

    >>> native_qwen2vl_key("visual.blocks.0.norm1.weight"), native_qwen2vl_key("model.norm.weight")
    ('model.visual.blocks.0.norm1.weight', 'model.language_model.norm.weight')
    """
    if key.startswith("visual."):
        return "model." + key
    if key.startswith("model.") and not key.startswith(("model.visual.", "model.language_model.")):
        return "model.language_model." + key[len("model."):]
    return key


def to_published_key(key: str) -> str | None:
    """The inverse of `to_qwen2vl_key` (used to fabricate published-layout checkpoints); takes either
    Qwen2-VL spelling.

    >>> to_published_key("model.visual.merger.mlp.0.bias"), to_published_key("lm_head.weight")
    ('vision_tower.merger.mlp.0.bias', 'language_model.lm_head.weight')
    >>> to_published_key("model.embed_tokens.weight")
    'language_model.model.embed_tokens.weight'
    """
    key = native_qwen2vl_key(key)
    for published, qwen in KEY_PREFIXES:
        if key.startswith(qwen):
            return published + key[len(qwen):]
    return None


# ---- reading the published folder ---------------------------------------------------------------------------

def read_published_config(folder: Path) -> dict[str, Any]:
    config_file = folder / "config.json"
    if not config_file.exists():
        raise ConversionError(f"{folder}: no config.json, so this is not a Tarsier2 checkpoint folder")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise ConversionError(f"{folder}: config.json is not valid JSON ({err})") from err
    if config.get("model_type") != "llava" or not isinstance(config.get("text_config"), dict):
        raise ConversionError(
            f"{folder}: config.json has model_type {config.get('model_type')!r} and "
            f"{'a' if isinstance(config.get('text_config'), dict) else 'no'} text_config; the published Tarsier2 "
            f"layout has model_type 'llava' with a Qwen2-VL text_config"
        )
    if config["text_config"].get("model_type") != "qwen2_vl":
        raise ConversionError(
            f"{folder}: text_config.model_type is {config['text_config'].get('model_type')!r}, not 'qwen2_vl': "
            f"a Tarsier (1) checkpoint or another Llava model, which this converter does not handle"
        )
    return config


def weight_files(folder: Path, allow_pickle: bool) -> list[Path]:
    """The folder's weight shards, safetensors first; pickle shards only when allowed by name."""
    safetensors = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    if safetensors:
        return safetensors
    pickles = sorted(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if not pickles:
        raise ConversionError(f"{folder}: no weight files (*.safetensors) found")
    if not allow_pickle:
        raise ConversionError(
            f"{folder}: holds only pickle weights ({', '.join(p.name for p in pickles[:3])}); unpickling can run "
            f"code. Convert them to safetensors, or load with allow_pickle=True by name to allow it"
        )
    return pickles


def _shard_keys(path: Path) -> list[str]:
    if path.suffix in WEIGHT_SUFFIXES:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            return list(handle.keys())
    return list(_load_pickle(path))


def _load_pickle(path: Path) -> dict[str, "torch.Tensor"]:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def _shard_tensors(path: Path) -> Iterator[tuple[str, "torch.Tensor"]]:
    """(name, tensor) of one shard, read lazily from safetensors (one tensor in memory at a time)."""
    if path.suffix in WEIGHT_SUFFIXES:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                yield key, handle.get_tensor(key)
    else:
        yield from _load_pickle(path).items()


def _shape(path: Path, key: str) -> tuple[int, ...]:
    if path.suffix in WEIGHT_SUFFIXES:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            return tuple(handle.get_slice(key).get_shape())
    return tuple(_load_pickle(path)[key].shape)


# ---- the Qwen2-VL config ------------------------------------------------------------------------------------

def qwen2vl_config(published: dict[str, Any], tokenizer: Any = None, folder: Path | None = None) -> Any:
    """A transformers Qwen2VLConfig with the published architecture numbers and token ids.

    The vision config sits at the top level of the wrapper (older exports nest it in text_config); marker ids
    come from the text config, else the wrapper's image_token_index, else the tokenizer.
    """
    from transformers import Qwen2VLConfig

    text = dict(published["text_config"])
    vision = published.get("vision_config") or text.get("vision_config")
    if not isinstance(vision, dict):
        raise ConversionError(f"{folder}: config.json has no vision_config (top level or inside text_config)")
    vision = {k: v for k, v in vision.items() if k not in _DROP_KEYS}
    text = {k: v for k, v in text.items() if k not in _DROP_KEYS}
    rope = text.get("rope_scaling")
    if isinstance(rope, dict) and rope.get("type") == "mrope":  # the 4.x spelling of plain M-RoPE
        text["rope_scaling"] = {**rope, "type": "default", "rope_type": "default"}
    ids: dict[str, int] = {}
    for key, token in MARKER_TOKENS.items():
        value = text.get(key)
        if value is None and key == "image_token_id":
            value = published.get("image_token_index")
        if value is None and tokenizer is not None:
            value = tokenizer.convert_tokens_to_ids(token)
        if not isinstance(value, int):
            raise ConversionError(f"{folder}: no id for {token} ({key}) in config.json or the tokenizer")
        ids[key] = value
    tie = bool(text.get("tie_word_embeddings", published.get("tie_word_embeddings", False)))
    config = Qwen2VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=tie, **ids)
    config.architectures = ["Qwen2VLForConditionalGeneration"]
    dtype = published.get("torch_dtype") or published.get("dtype") or text.get("torch_dtype")
    if dtype:
        config.dtype = dtype
    return config


def expected_shapes(config: Any) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes transformers' Qwen2-VL builds from `config` (meta device, no memory);
    a tied lm_head is left out, as checkpoints leave it out."""
    import torch
    from transformers import Qwen2VLForConditionalGeneration

    with torch.device("meta"):
        model = Qwen2VLForConditionalGeneration._from_config(config)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if config.tie_word_embeddings:
        shapes.pop("lm_head.weight", None)
    return shapes


# ---- identity and the cache ---------------------------------------------------------------------------------

def source_identity(folder: Path) -> str:
    """A key that changes when the folder's files change: resolved path, names, sizes, modification times."""
    folder = folder.resolve()
    entries = []
    for path in sorted(folder.iterdir()):
        if path.is_file():
            stat = path.stat()
            entries.append([path.name, stat.st_size, stat.st_mtime_ns])
    payload = json.dumps({"folder": str(folder), "files": entries, "converter": CONVERTER_VERSION})
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def converted_dir(folder: Path) -> Path:
    from workbench.paths import cache_dir

    return cache_dir() / "converted" / "tarsier2" / source_identity(folder)


def is_converted(path: Path) -> bool:
    return (path / "config.json").exists() and (path / "model.safetensors.index.json").exists()


# ---- conversion ---------------------------------------------------------------------------------------------

def plan(folder: Path, config: Any, allow_pickle: bool = False) -> dict[Path, dict[str, str]]:
    """Check every published key before writing anything: shard -> {published key: Qwen2-VL key}.

    Raises ConversionError naming the folder for unexpected keys (no Qwen2-VL name, or a name the
    architecture does not have), missing keys and shape mismatches.
    """
    shards = weight_files(folder, allow_pickle)
    shapes = expected_shapes(config)
    mapping: dict[Path, dict[str, str]] = {}
    seen: dict[str, str] = {}
    unexpected: list[str] = []
    for shard in shards:
        mapping[shard] = {}
        for key in _shard_keys(shard):
            target = to_qwen2vl_key(key)
            if target is None or target not in shapes:
                if target == "lm_head.weight" and config.tie_word_embeddings:
                    continue  # a tied head saved anyway: the embedding is its weight
                unexpected.append(key)
                continue
            if target in seen:
                raise ConversionError(f"{folder}: {key} and {seen[target]} both map to {target}")
            seen[target] = key
            mapping[shard][key] = target
    if unexpected:
        raise ConversionError(
            f"{folder}: {len(unexpected)} unexpected weight(s) the Tarsier2 -> Qwen2-VL mapping does not cover: "
            f"{', '.join(sorted(unexpected)[:5])}{' ...' if len(unexpected) > 5 else ''}"
        )
    missing = sorted(set(shapes) - set(seen))
    if missing:
        raise ConversionError(
            f"{folder}: {len(missing)} weight(s) missing for the architecture in config.json (Qwen2-VL names): "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )
    for shard, keys in mapping.items():
        for key, target in keys.items():
            shape = _shape(shard, key)
            if shape != shapes[target]:
                raise ConversionError(f"{folder}: {key} has shape {list(shape)}, config.json implies "
                                      f"{list(shapes[target])}")
    return mapping


def convert_checkpoint(source: str | Path, allow_pickle: bool = False, *,
                       processing: Callable[[Path], dict[str, Any]], chat_template: str) -> Path:
    """The converted Qwen2-VL folder for a published Tarsier2 folder (converted once, then reused).

    The family file says how its processor is set up: `processing(folder)` gives the image / video processor
    settings from the published folder, `chat_template` the template (so this module never imports it)."""
    from workbench.atomic import atomic_dir

    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise ConversionError(f"{folder}: not a folder")
    out_dir = converted_dir(folder)
    if is_converted(out_dir):
        return out_dir
    published = read_published_config(folder)
    tokenizer = _load_tokenizer(folder)
    config = qwen2vl_config(published, tokenizer, folder)
    mapping = plan(folder, config, allow_pickle)
    with atomic_dir(out_dir) as tmp:
        _write_weights(mapping, tmp)
        config.save_pretrained(tmp)
        _write_generation_config(folder, config, tmp)
        _write_processor(processing(folder), chat_template, tokenizer, tmp)
        (tmp / "tarsier2_source.json").write_text(json.dumps({
            "source": str(folder.resolve()), "identity": out_dir.name, "converter_version": CONVERTER_VERSION,
            "shards": [p.name for p in mapping],
        }, indent=2) + "\n")
    return out_dir


def _write_weights(mapping: dict[Path, dict[str, str]], out_dir: Path) -> None:
    """One output shard per input shard, written and dropped before the next is read."""
    from safetensors.torch import save_file

    weight_map: dict[str, str] = {}
    total = 0
    n = len(mapping)
    for i, (shard, keys) in enumerate(mapping.items(), start=1):
        name = f"model-{i:05d}-of-{n:05d}.safetensors"
        tensors = {}
        for key, tensor in _shard_tensors(shard):
            if key in keys:
                tensors[keys[key]] = tensor.contiguous()
        save_file(tensors, str(out_dir / name), metadata={"format": "pt"})
        total += sum(t.numel() * t.element_size() for t in tensors.values())
        weight_map.update({k: name for k in tensors})
        del tensors
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (out_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


def _write_generation_config(folder: Path, config: Any, out_dir: Path) -> None:
    from transformers import GenerationConfig

    source = folder / "generation_config.json"
    if source.exists():
        GenerationConfig.from_pretrained(str(folder)).save_pretrained(out_dir)
    else:
        text = config.get_text_config()
        GenerationConfig(bos_token_id=text.bos_token_id, eos_token_id=text.eos_token_id,
                         pad_token_id=text.pad_token_id).save_pretrained(out_dir)


def _load_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as err:
        raise ConversionError(f"{folder}: the tokenizer files cannot be read ({err})") from err


def _write_processor(processing: dict[str, Any], chat_template: str, tokenizer: Any, out_dir: Path) -> None:
    """A Qwen2VLProcessor (image + video processors, tokenizer, chat template) with Tarsier2's numbers."""
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**processing),
        video_processor=Qwen2VLVideoProcessor(**processing),
        tokenizer=tokenizer,
        chat_template=chat_template,
    )
    processor.save_pretrained(out_dir)
