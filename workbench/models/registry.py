"""One table from model ids, hub ids and aliases to the family file that implements them.

Resolving a name reads only this table; a family module is imported only when one of its models is asked
for (`get`), so a family whose extra dependency is missing never breaks the others.
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
    hub_id: str = ""


# family file -> {model id: (hub id, aliases)}: resolving a name reads only this table (no family is imported);
# the family file's ModelSpec says the same hub id and aliases (tests/models/test_registry.py checks).
Table = dict[str, dict[str, tuple[str, tuple[str, ...]]]]
_NATIVE: Table = {
    "workbench.models.blip2": {
        "blip2-opt-2.7b": ("Salesforce/blip2-opt-2.7b", ("blip2-opt-2.7b", "blip2", "blip-2")),
        "blip2-opt-6.7b": ("Salesforce/blip2-opt-6.7b", ("blip2-opt-6.7b",)),
        "blip2-flan-t5-xl": ("Salesforce/blip2-flan-t5-xl", ("blip2-flan-t5-xl",)),
    },
    "workbench.models.instructblip_video": {
        "instructblip-video-vicuna-7b": ("Salesforce/instructblip-vicuna-7b",
                                         ("instructblip-video", "instructblip-vicuna-7b", "instructblipvideo")),
    },
    "workbench.models.qwen2_vl": {
        "qwen2-vl-2b": ("Qwen/Qwen2-VL-2B-Instruct", ("qwen2-vl-2b-instruct",)),
        "qwen2-vl-7b": ("Qwen/Qwen2-VL-7B-Instruct", ("qwen2-vl-7b-instruct",)),
    },
    "workbench.models.qwen2_5_vl": {
        "qwen2.5-vl-3b": ("Qwen/Qwen2.5-VL-3B-Instruct", ("qwen2.5-vl-3b-instruct", "qwen2_5-vl-3b")),
        "qwen2.5-vl-7b": ("Qwen/Qwen2.5-VL-7B-Instruct", ("qwen2.5-vl-7b-instruct", "qwen2_5-vl-7b")),
    },
    "workbench.models.qwen3_vl": {
        "qwen3-vl-2b": ("Qwen/Qwen3-VL-2B-Instruct", ("qwen3-vl-2b-instruct",)),
        "qwen3-vl-4b": ("Qwen/Qwen3-VL-4B-Instruct", ("qwen3-vl-4b-instruct",)),
        "qwen3-vl-8b": ("Qwen/Qwen3-VL-8B-Instruct", ("qwen3-vl-8b-instruct",)),
    },
    "workbench.models.video_llava": {
        "video-llava-7b": ("LanguageBind/Video-LLaVA-7B-hf", ("video-llava-7b-hf", "video-llava")),
    },
    "workbench.models.llava_next_video": {
        "llava-next-video-7b": ("llava-hf/LLaVA-NeXT-Video-7B-hf", ("llava-next-video-7b-hf", "llava-next-video")),
    },
    "workbench.models.llava_onevision": {
        "llava-onevision-0.5b": ("llava-hf/llava-onevision-qwen2-0.5b-ov-hf",
                                 ("llava-onevision-qwen2-0.5b-ov-hf", "llava-onevision-qwen2-0.5b-ov")),
        "llava-onevision-7b": ("llava-hf/llava-onevision-qwen2-7b-ov-hf",
                               ("llava-onevision-qwen2-7b-ov-hf", "llava-onevision-qwen2-7b-ov")),
        "llava-video-7b": ("llava-hf/LLaVA-Video-7B-Qwen2-hf", ("llava-video-7b-qwen2-hf", "llava-video-7b-qwen2")),
    },
    "workbench.models.smolvlm2": {
        "smolvlm2-2.2b": ("HuggingFaceTB/SmolVLM2-2.2B-Instruct", ("smolvlm2-2.2b-instruct", "smolvlm2")),
        "smolvlm2-500m": ("HuggingFaceTB/SmolVLM2-500M-Video-Instruct", ("smolvlm2-500m-video-instruct",)),
        "smolvlm2-256m": ("HuggingFaceTB/SmolVLM2-256M-Video-Instruct", ("smolvlm2-256m-video-instruct",)),
    },
    "workbench.models.internvl3": {
        "internvl3-1b": ("OpenGVLab/InternVL3-1B-hf", ("internvl3-1b-hf",)),
        "internvl3-8b": ("OpenGVLab/InternVL3-8B-hf", ("internvl3-8b-hf", "internvl3")),
    },
    # Seed models whose published checkpoints transformers cannot load directly: the family file converts
    # or assembles them from transformers components (one family file each, same interface).
    "workbench.models.tarsier2": {
        "tarsier2-recap-7b": ("omni-research/Tarsier2-Recap-7b", ("tarsier2-recap", "tarsier2-7b")),
    },
    "workbench.models.auroracap": {
        "auroracap-7b-vid": ("wchai/AuroraCap-7B-VID-xtuner", ("auroracap", "auroracap-7b")),
    },
    "workbench.models.minigpt4_video": {
        "minigpt4-video-llama2": ("Vision-CAIR/MiniGPT4-Video",
                                  ("minigpt4-video", "minigpt4-video-llama2-7b", "video_llama_checkpoint_last.pth")),
        "minigpt4-video-mistral": ("Vision-CAIR/MiniGPT4-Video",
                                   ("minigpt4-video-mistral-7b", "video_mistral_checkpoint_last.pth")),
    },
}

# Trained twins (workbench/twins): small models of real families trained here on probe scenes, weights
# committed; loaded with source "trained". Listed by `python -m workbench models` as trained twins.
TRAINED_TWINS: Table = {
    "workbench.twins.qwen2_vl_twins": {
        "twin-qwen2-vl-video": ("workbench/twins/weights/twin-qwen2-vl-video", ()),
        "twin-qwen2-vl-generic": ("workbench/twins/weights/twin-qwen2-vl-generic", ()),
        "twin-qwen2-vl-hallucinating": ("workbench/twins/weights/twin-qwen2-vl-hallucinating", ()),
    },
    "workbench.twins.blip2_twins": {
        "twin-blip2-frame": ("workbench/twins/weights/twin-blip2-frame", ()),
    },
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
        for model_id, (hub_id, aliases) in ids.items():
            entries[model_id] = Entry(model_id, module, aliases, trained_twin=module in TRAINED_TWINS, hub_id=hub_id)
    for model_id, reason in _NOT_YET.items():
        entries[model_id] = Entry(model_id, None, reason=reason)
    return entries


ENTRIES: dict[str, Entry] = _entries()


def _alias_table() -> dict[str, str]:
    """Lower-cased ids, hub ids and aliases -> canonical id. Ids come first; then each entry's hub id and aliases
    in table order, the first entry to claim a name keeping it (two MiniGPT4-Video ids share one hub id)."""
    table = {model_id.lower(): model_id for model_id in ENTRIES}
    for model_id, entry in ENTRIES.items():
        for name in (entry.hub_id, *entry.aliases):
            if name:
                table.setdefault(name.lower(), model_id)
    return table


def model_ids(include_unsupported: bool = True) -> list[str]:
    return [m for m, e in ENTRIES.items() if include_unsupported or e.module is not None]


def family_adapter(module: str) -> "FamilyAdapter":
    return importlib.import_module(module).ADAPTER


def resolve(name: str) -> str:
    """Canonical id for an id, alias or hub id (no family module is imported); unknown names list the valid ids."""
    key = name.strip().lower()
    table = _alias_table()
    if key in table:
        return table[key]
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
