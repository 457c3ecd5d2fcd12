"""Ids and settings of the published checkpoints that the embedded configs must match (no weights needed).

Each value was read from the checkpoint's published config.json, added_tokens.json or generation_config.json.
"""

from __future__ import annotations

import pytest

from workbench.models import registry


def _config(model_id: str):
    adapter, spec = registry.get(model_id)
    return adapter.real_config(spec)


def test_instructblip_vicuna_7b_token_ids():
    config = _config("instructblip-video-vicuna-7b")
    assert type(config).__name__ == "InstructBlipVideoConfig"
    assert config.image_token_index == 32001  # <image>
    assert config.video_token_index == 32002  # <video>
    text = config.text_config
    assert text.vocab_size == 32064
    assert (text.bos_token_id, text.eos_token_id, text.pad_token_id) == (0, 1, 32000)  # pad = [PAD]


@pytest.mark.parametrize("model_id", ["internvl3-1b", "internvl3-8b"])
def test_internvl3_hf_keeps_a_separate_lm_head_and_scales_rope(model_id):
    adapter, spec = registry.get(model_id)
    assert spec.config["tie_word_embeddings"] is False  # stated: InternVLConfig would tie by default
    config = _config(model_id)
    assert config.tie_word_embeddings is False and config.text_config.tie_word_embeddings is False
    rope = config.text_config.rope_parameters
    assert rope["rope_type"] == "dynamic" and rope["factor"] == 2.0 and rope["rope_theta"] == 1_000_000.0
    assert config.text_config.max_position_embeddings == 32768


def test_internvl3_8b_text_is_qwen2_5_7b():
    text = _config("internvl3-8b").text_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads) == \
        (3584, 28, 28, 4)
    assert text.vocab_size == 151674
