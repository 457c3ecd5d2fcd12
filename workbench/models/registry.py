"""One table from model ids and aliases to the family file that implements them.

Family modules are imported only when one of their ids is asked for, so a family whose extra
dependency is missing never breaks the others.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from workbench.models.base import UnknownModelError

if TYPE_CHECKING:
    from workbench.models.base import FamilyAdapter, ModelSpec


@dataclass(frozen=True)
class Entry:
    model_id: str
    module: str | None  # dotted path of the family file; None = not supported yet
    aliases: tuple[str, ...] = ()
    reason: str = ""  # why an unsupported model is not loadable yet
    trained_twin: bool = False  # a small model trained here (workbench/twins), loaded with source "trained"


_NATIVE = {
    "workbench.models.blip2": ("blip2-opt-2.7b", "blip2-opt-6.7b", "blip2-flan-t5-xl"),
    "workbench.models.instructblip_video": ("instructblip-video-vicuna-7b",),
    "workbench.models.qwen2_vl": ("qwen2-vl-2b", "qwen2-vl-7b"),
    "workbench.models.qwen2_5_vl": ("qwen2.5-vl-3b", "qwen2.5-vl-7b"),
    "workbench.models.qwen3_vl": ("qwen3-vl-2b", "qwen3-vl-4b", "qwen3-vl-8b"),
    "workbench.models.video_llava": ("video-llava-7b",),
    "workbench.models.llava_next_video": ("llava-next-video-7b",),
    "workbench.models.llava_onevision": ("llava-onevision-0.5b", "llava-onevision-7b", "llava-video-7b"),
    "workbench.models.smolvlm2": ("smolvlm2-2.2b", "smolvlm2-500m", "smolvlm2-256m"),
    "workbench.models.internvl3": ("internvl3-1b", "internvl3-8b"),
    # Seed models whose published checkpoints transformers cannot load directly: the family file converts
    # or assembles them from transformers components (one family file each, same interface).
    "workbench.models.tarsier2": ("tarsier2-recap-7b",),
    "workbench.models.auroracap": ("auroracap-7b-vid",),
    "workbench.models.minigpt4_video": ("minigpt4-video-llama2", "minigpt4-video-mistral"),
}

# Trained twins (workbench/twins): small models of real families trained here on probe scenes, weights
# committed; loaded with source "trained". Listed by `python -m workbench models` as trained twins.
TRAINED_TWINS = {
    "workbench.twins.qwen2_vl_twins": ("twin-qwen2-vl-video", "twin-qwen2-vl-generic", "twin-qwen2-vl-hallucinating"),
    "workbench.twins.blip2_twins": ("twin-blip2-frame",),
}
_NATIVE.update(TRAINED_TWINS)

_NOT_YET = {
    "streaming-dense-captioning": "not supported: it is a JAX / scenic research codebase (Flax checkpoints; "
    "a CLIP ViT-L frame encoder, a K-means clustering memory over frame tokens, and a GIT or T5 decoder that "
    "emits timestamped events at decoding points), not a PyTorch model. Running it would need a second JAX "
    "environment and a process bridge, and the workbench's memory probe and attention hooks could not see "
    "inside it, so its numbers would not be comparable with the other models'",
}


def _entries() -> dict[str, Entry]:
    entries: dict[str, Entry] = {}
    for module, ids in _NATIVE.items():
        for model_id in ids:
            entries[model_id] = Entry(model_id, module, trained_twin=module in TRAINED_TWINS)
    for model_id, reason in _NOT_YET.items():
        entries[model_id] = Entry(model_id, None, reason=reason)
    return entries


ENTRIES: dict[str, Entry] = _entries()


def _alias_table() -> dict[str, str]:
    """Lower-cased ids, hub ids and family aliases -> canonical id (family files add hub ids)."""
    return {model_id.lower(): model_id for model_id in ENTRIES}


def model_ids(include_unsupported: bool = True) -> list[str]:
    return [m for m, e in ENTRIES.items() if include_unsupported or e.module is not None]


def family_adapter(module: str) -> "FamilyAdapter":
    return importlib.import_module(module).ADAPTER


def resolve(name: str) -> str:
    """Canonical id for an id, alias or hub id; unknown names list the valid ids."""
    key = name.strip().lower()
    table = _alias_table()
    if key in table:
        return table[key]
    # Hub ids and aliases are declared in the family files: look there (imports them).
    for module, ids in _NATIVE.items():
        try:
            adapter = family_adapter(module)
        except ImportError:
            continue
        for spec in adapter.specs.values():
            if key in {spec.hub_id.lower(), *(a.lower() for a in spec.aliases)}:
                return spec.model_id
    raise UnknownModelError(
        f"unknown model id {name!r}; valid ids: {', '.join(model_ids())}"
    )


def get(name: str) -> tuple["FamilyAdapter", "ModelSpec"]:
    """The adapter and spec for a model id, alias or hub id."""
    model_id = resolve(name)
    entry = ENTRIES[model_id]
    if entry.module is None:
        raise UnknownModelError(f"{model_id} is listed but {entry.reason}")
    adapter = family_adapter(entry.module)
    return adapter, adapter.specs[model_id]
