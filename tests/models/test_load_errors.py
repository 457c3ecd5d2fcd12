"""Clear errors when a model cannot be loaded as asked, before anything half-loaded is kept."""

from __future__ import annotations

import json
import sys

import pytest

from workbench.models import LoadSettings, load
from workbench.models.base import UnsafeLoadError, WeightsUnavailableError, WorkbenchModelError


def test_hub_weights_not_available_offline_say_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    with pytest.raises(WeightsUnavailableError) as info:
        load("qwen2-vl-2b", LoadSettings(source="Qwen/Qwen2-VL-2B-Instruct"))
    message = str(info.value)
    assert "qwen2-vl-2b" in message and "hf download Qwen/Qwen2-VL-2B-Instruct" in message
    assert "HF_HUB_OFFLINE" in message and "source='random'" in message


def test_missing_local_folder_is_not_available(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(WeightsUnavailableError, match="weights folder not found") as info:
        load("smolvlm2-256m", LoadSettings(source=str(missing)))
    assert str(missing) in str(info.value) and "owner/name" in str(info.value)


def _local_checkpoint(folder, config: dict, files: list[str]):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    for name in files:
        (folder / name).write_bytes(b"\0")
    return folder


def test_remote_code_is_refused_unless_allowed_by_name(tmp_path):
    folder = _local_checkpoint(tmp_path / "remote", {"auto_map": {"AutoModel": "modeling_x.Model"}},
                               ["model.safetensors"])
    with pytest.raises(UnsafeLoadError, match="trust_remote_code=True"):
        load("qwen2-vl-2b", LoadSettings(source=str(folder)))


def test_pickle_only_weights_are_refused_unless_allowed(tmp_path):
    folder = _local_checkpoint(tmp_path / "pickles", {"model_type": "qwen2_vl"}, ["pytorch_model.bin"])
    with pytest.raises(UnsafeLoadError, match="allow_pickle=True") as info:
        load("qwen2-vl-2b", LoadSettings(source=str(folder)))
    assert "pytorch_model.bin" in str(info.value)


def test_flash_attention_needs_cuda_and_the_package():
    with pytest.raises(WorkbenchModelError, match="flash_attention_2"):
        load("qwen2-vl-2b", LoadSettings(source="tiny", attn_implementation="flash_attention_2", device="cpu"))


def test_quantization_without_bitsandbytes_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import fails as if not installed
    with pytest.raises(WorkbenchModelError, match="needs bitsandbytes"):
        load("qwen2-vl-2b", LoadSettings(source="tiny", quantization="8bit"))


@pytest.mark.parametrize("kwargs, fragment", [
    ({"quantization": "3bit"}, "quantization='3bit' is not one of"),
    ({"attn_implementation": "fast"}, "attn_implementation='fast' is not one of"),
    ({"double_quant": "yes"}, "double_quant must be bool"),
    ({"quantization": "8bit", "double_quant": True}, "4-bit"),
    ({"max_pixels": -5}, "max_pixels must be a positive int"),
    ({"source": ""}, "source is empty"),
])
def test_settings_are_validated(kwargs, fragment):
    with pytest.raises((ValueError, TypeError), match=fragment.replace("(", r"\(")):
        LoadSettings(**kwargs)
