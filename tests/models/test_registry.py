"""The registry table: ids, aliases, lazy imports, unsupported models, and clear errors."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from workbench.models import registry
from workbench.models.base import UnknownModelError


def test_every_native_id_has_a_spec_in_its_family_file():
    for model_id, entry in registry.ENTRIES.items():
        if entry.module is None:
            continue
        adapter = registry.family_adapter(entry.module)
        assert model_id in adapter.specs, f"{entry.module} lacks a spec for {model_id}"
        assert adapter.specs[model_id].model_id == model_id
    for module, ids in registry._NATIVE.items():
        assert set(registry.family_adapter(module).specs) == set(ids), module


def test_the_table_says_what_each_family_file_says():
    """Hub ids and aliases live in the registry table (so resolving imports nothing) and in each ModelSpec."""
    for module, ids in registry._NATIVE.items():
        specs = registry.family_adapter(module).specs
        for model_id, (hub_id, aliases) in ids.items():
            assert (specs[model_id].hub_id, specs[model_id].aliases) == (hub_id, aliases), model_id


def test_resolving_every_name_imports_no_family_module():
    names = [n for e in registry.ENTRIES.values() if e.module for n in (e.model_id, e.hub_id, *e.aliases)]
    code = ("import sys, json; from workbench.models import resolve; "
            f"names = {names!r}; resolved = [resolve(n.upper()) for n in names]; "
            "print(json.dumps([resolved, sorted(m for m in sys.modules if m.startswith('workbench.') "
            "or m in ('torch', 'transformers'))]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    resolved, loaded = json.loads(out.stdout)
    expected = {e.model_id for e in registry.ENTRIES.values() if e.module}
    assert set(resolved) == expected and len(resolved) == len(names)
    families = {e.module for e in registry.ENTRIES.values() if e.module}
    assert not families & set(loaded), sorted(families & set(loaded))
    assert "torch" not in loaded and "transformers" not in loaded
    # a hub id two checkpoints share goes to the first listed, as the family files list them
    assert registry.resolve("Vision-CAIR/MiniGPT4-Video") == "minigpt4-video-llama2"


def test_hub_ids_and_aliases_resolve_case_insensitively():
    assert registry.resolve("Qwen/Qwen2-VL-7B-Instruct") == "qwen2-vl-7b"
    assert registry.resolve("QWEN2-VL-7B") == "qwen2-vl-7b"
    assert registry.resolve("llava-hf/LLaVA-NeXT-Video-7B-hf") == "llava-next-video-7b"


def test_unknown_id_lists_the_valid_ids():
    with pytest.raises(UnknownModelError) as info:
        registry.get("qwen9-vl-1t")
    message = str(info.value)
    assert "unknown model id 'qwen9-vl-1t'" in message
    assert "qwen2-vl-7b" in message and "blip2-opt-2.7b" in message


def test_streaming_dense_captioning_is_listed_as_not_supported_with_reason():
    entry = registry.ENTRIES["streaming-dense-captioning"]
    assert entry.module is None and "JAX" in entry.reason
    with pytest.raises(UnknownModelError, match="not supported: it is a JAX"):
        registry.get("streaming-dense-captioning")


def test_a_broken_family_does_not_break_the_others(monkeypatch):
    """Lazy imports: a family whose module fails to import only fails its own ids."""
    monkeypatch.setitem(registry._NATIVE, "workbench.models.does_not_exist", {"ghost-model": ("", ())})
    monkeypatch.setitem(registry.ENTRIES, "ghost-model", registry.Entry("ghost-model", "workbench.models.does_not_exist"))
    with pytest.raises(ImportError):
        registry.get("ghost-model")
    adapter, spec = registry.get("qwen2-vl-2b")
    assert spec.hub_id == "Qwen/Qwen2-VL-2B-Instruct"


def test_importing_the_registry_imports_no_family_and_no_torch():
    code = ("import sys, workbench.models; "
            "print(sorted(m for m in sys.modules if m.startswith('workbench.models.') or m in ('torch', 'transformers')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    loaded = ast.literal_eval(out.strip())  # a printed list of module names
    assert "torch" not in loaded and "transformers" not in loaded
    assert set(loaded) == {"workbench.models.base", "workbench.models.registry", "workbench.models.geometry",
                           "workbench.models.traits"}, loaded
