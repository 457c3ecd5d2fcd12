"""The analytic predictor: accuracy against measurements, known formulas, every family, speed."""

from __future__ import annotations

import time

import pytest

from workbench.cpu_kernels import CpuKernels
from workbench.memory import predict
from workbench.memory.predictor import COMPONENTS, architecture
from workbench.models import get, registry
from workbench.units import GiB
from workbench.weights import spec_weight_counts, weight_bytes

NATIVE = registry.model_ids(include_unsupported=False)


def test_predicted_peak_within_10_percent_of_measured_midsize(midsize_results):
    """Mid-size Qwen2-VL on CPU: frames x eager/sdpa x none/8bit/4bit, each measured in a fresh process."""
    groups = {(q, a) for q, a, _f in midsize_results}
    assert groups == {(q, a) for q in ("none", "8bit", "4bit-nf4") for a in ("eager", "sdpa")}
    for key, result in midsize_results.items():
        assert result["status"] == "ok", (key, result["error"])
        assert abs(result["error_pct"]) < 10, (key, result["error_pct"])
        # and the part that is not weights, which the weights would otherwise hide
        activations = result["peak_bytes"] - result["weights_bytes"]
        predicted = result["predicted_peak_bytes"] - result["prediction"]["weights_bytes"]
        assert abs(predicted - activations) < 0.1 * activations, key
        assert result["prediction"]["weights_bytes"] == result["weights_bytes"], key  # exact, from weights.py
        for phase in result["phases"]:  # every phase, not only the peak
            predicted_phase = result["prediction"]["phase_peaks"][phase["phase"]]
            assert abs(predicted_phase - phase["peak_bytes"]) < 0.1 * phase["peak_bytes"], (key, phase["phase"])


def test_prediction_records_and_follows_the_cpu_path_this_machine_runs(midsize_results):
    """bitsandbytes decides its CPU kernels from the machine; the predictor asks the same and says what it assumed."""
    import torch
    from bitsandbytes.functional import has_avx512bf16

    result = midsize_results[("4bit-nf4", "eager", 4)]
    assumed = result["prediction"]["cpu_kernels"]
    assert assumed["torch_capability"] == torch.backends.cpu.get_cpu_capability()
    assert assumed["avx512bf16"] == bool(has_avx512bf16())
    assert assumed["nf4_matmul"] == ("repack" if has_avx512bf16() else "dequantize")
    assert any(note.startswith("bitsandbytes ") for note in result["prediction"]["notes"])
    assert midsize_results[("none", "eager", 4)]["prediction"]["cpu_kernels"] is None  # nothing CPU-specific


def test_forced_non_avx512_paths_measure_close_to_their_prediction(forced_path_results, midsize):
    """The paths an AVX2-only machine takes, forced here: each measured within 10 % of the prediction for it."""
    for key, result in forced_path_results.items():
        assert result["status"] == "ok", (key, result["error"])
        assert result["prediction"]["cpu_kernels"]["nf4_matmul"] == "dequantize", key
        assert abs(result["error_pct"]) < 10, (key, result["error_pct"])
        for phase in result["phases"]:
            predicted_phase = result["prediction"]["phase_peaks"][phase["phase"]]
            assert abs(predicted_phase - phase["peak_bytes"]) < 0.1 * phase["peak_bytes"], (key, phase["phase"])
    assert forced_path_results[("8bit", "eager", 16)]["prediction"]["cpu_kernels"]["int8_matmul"] == "float32"
    # the bug this fixes: assuming the AVX512-BF16 repack where it does not run predicted 23 % too much
    measured = forced_path_results[("4bit-nf4", "eager", 4)]["peak_bytes"]
    repack = predict("qwen2-vl-2b", source="random", config_overrides=midsize.overrides, device="cpu", frames=4,
                     height=midsize.size, width=midsize.size, attn_implementation="eager", quantization="4bit-nf4",
                     max_new_tokens=8, cpu_kernels=CpuKernels("AVX512", True, "0.50.2"))
    assert repack.peak_bytes > 1.15 * measured


def test_cpu_4bit_terms_of_both_paths_by_hand(midsize):
    """7 bytes per weight of the largest Linear for the repack; nothing visible for the dequantizing kernel."""
    base = dict(source="random", config_overrides=midsize.overrides, device="cpu", frames=4, height=midsize.size,
                width=midsize.size, attn_implementation="sdpa", quantization="4bit-nf4", max_new_tokens=8)
    repack = predict("qwen2-vl-2b", cpu_kernels=CpuKernels("AVX512", True, "0.50.2"), **base)
    dequantize = predict("qwen2-vl-2b", cpu_kernels=CpuKernels("AVX2", False, "0.50.2"), **base)
    up_projection = 4480 * 1536  # the mid-size model's largest quantized Linear (intermediate x hidden)
    assert repack.phases["prefill"]["quantization"] == 7 * up_projection
    assert "quantization" not in dequantize.phases["prefill"]
    tokens = repack.tokens["input_tokens"]
    assert dequantize.phases["prefill"]["llm_mlp"] == max(3 * tokens * 4480 * 2 + tokens * 1536 * 2,
                                                          tokens * 4480 * 2)
    assert repack.cpu_kernels["nf4_matmul"] == "repack" and dequantize.cpu_kernels["nf4_matmul"] == "dequantize"
    assert any("13.12 MiB allocated inside bitsandbytes" in note for note in dequantize.notes)  # 4480·1536·2 B
    assert not any("inside bitsandbytes" in note for note in repack.notes)
    # CUDA predictions do not depend on the CPU
    assert predict("qwen2-vl-2b", **(base | {"device": "cuda"})).cpu_kernels is None


def test_cpu_kernel_questions_and_their_override(monkeypatch):
    import workbench.cpu_kernels as cpu_kernels

    monkeypatch.setenv(cpu_kernels.AVX512BF16_ENV, "0")
    assert cpu_kernels.detect().avx512bf16 is False and cpu_kernels.detect().nf4_matmul == "dequantize"
    assert cpu_kernels.detect().sdpa_backend == "FLASH_ATTENTION"
    monkeypatch.setenv(cpu_kernels.AVX512BF16_ENV, "yes")
    with pytest.raises(ValueError, match="WORKBENCH_BNB_AVX512BF16 must be 0"):
        cpu_kernels.detect()


def test_forced_path_reaches_the_loaded_4bit_layers(monkeypatch):
    """The override makes every 4-bit layer of a loaded model take the dequantizing path."""
    import bitsandbytes as bnb
    import bitsandbytes.nn.modules

    import workbench.cpu_kernels as cpu_kernels
    from workbench.models import load

    monkeypatch.setattr(bitsandbytes.nn.modules, "has_avx512bf16", bitsandbytes.nn.modules.has_avx512bf16)
    monkeypatch.setenv(cpu_kernels.AVX512BF16_ENV, "0")
    loaded = load("qwen2-vl-2b", source="tiny", dtype="bfloat16", quantization="4bit-nf4")
    layers = [m for m in loaded.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and not any(m.support_avx512bf16_for_cpu for m in layers)
    loaded.unload()


def test_measured_and_predicted_agree_on_what_dominates(midsize_results):
    eager = midsize_results[("none", "eager", 16)]["prediction"]
    sdpa = midsize_results[("none", "sdpa", 16)]["prediction"]
    assert eager["dominant"] == "llm_attention" and eager["peak_phase"] == "prefill"
    assert sdpa["dominant"] == "vision_rotary" and sdpa["peak_phase"] == "vision"
    measured = {p["phase"]: p["peak_bytes"] for p in midsize_results[("none", "sdpa", 16)]["phases"]}
    assert max(measured, key=measured.get) == "vision"


def test_qwen2_vl_7b_formulas_at_5_frames_1080p_8bit_eager_fp16():
    p = predict("qwen2-vl-7b", quantization="8bit", attn_implementation="eager", dtype="float16", frames=5,
                height=1080, width=1920, text_tokens=64, device="cuda")
    # 1080p -> 1092 x 1932 (multiples of 28): 39 x 69 merged tokens per frame pair, 3 pairs for 5 frames
    assert p.tokens["visual_tokens"] == 3 * 39 * 69 == 8073
    assert p.tokens["segment_len"] == 78 * 138 and p.tokens["encoder_seq_len"] == 3 * 78 * 138
    S = 8073 + 64
    assert p.weights_bytes == weight_bytes(spec_weight_counts("qwen2-vl-7b"), "8bit", "float16")
    # eager LLM attention: 28 heads x S^2 x (fp16 scores + fp32 softmax + fp16 probabilities) + the causal mask
    attention = p.phases["prefill"]["llm_attention"]
    assert 28 * S * S * 8 + S * S * 2 < attention < 28 * S * S * 8 * 1.03  # + q and the repeated k, v
    # vision eager: one frame pair's 16 x Ls^2 scores at a time (transformers 5.x), not the whole clip's
    assert p.phases["vision"]["vision_attention"] >= 16 * (78 * 138) ** 2 * 8
    clip = predict("qwen2-vl-7b", quantization="8bit", attn_implementation="eager", dtype="float16", frames=5,
                   height=1080, width=1920, text_tokens=64, vision_attention_scope="clip")
    assert clip.phases["vision"]["vision_attention"] >= 16 * (3 * 78 * 138) ** 2 * 8
    assert clip.peak_phase == "vision" and clip.peak_bytes > 100 * GiB
    # KV cache: 28 layers x 2 x 4 kv heads x 128 x tokens x 2 bytes
    assert p.phases["prefill"]["kv_cache"] == 28 * 2 * 4 * 128 * S * 2
    assert p.kv_cache_bytes == 28 * 2 * 4 * 128 * (S + 16) * 2
    # transformers 5 generate() computes the last position's logits only: no S x vocab term in prefill
    assert "logits" not in p.phases["prefill"]
    assert p.phases["generation"]["logits"] == 152064 * (2 + 8)


def test_sdpa_has_no_quadratic_term_and_eager_does():
    def extra(attn, frames):
        return predict("qwen2-vl-7b", attn_implementation=attn, frames=frames, max_pixels=602112).peak_bytes

    for attn in ("sdpa", "flash_attention_2"):
        steps = [extra(attn, f) for f in (16, 32, 48)]
        assert abs((steps[2] - steps[1]) - (steps[1] - steps[0])) < 0.02 * (steps[1] - steps[0])
    eager = [extra("eager", f) for f in (16, 32, 48)]
    assert eager[2] - eager[1] > 1.5 * (eager[1] - eager[0])


def test_pixel_cap_and_quantization_move_the_peak_the_right_way():
    base = dict(attn_implementation="sdpa", frames=16, dtype="float16")
    none, int8, nf4 = (predict("qwen2-vl-7b", quantization=q, **base) for q in ("none", "8bit", "4bit-nf4"))
    assert nf4.weights_bytes < int8.weights_bytes < none.weights_bytes
    capped = predict("qwen2-vl-7b", max_pixels=602112, **base)
    assert capped.tokens["visual_tokens"] < none.tokens["visual_tokens"]
    assert capped.peak_bytes < none.peak_bytes


@pytest.mark.parametrize("model_id", NATIVE)
def test_every_native_family_predicts(model_id):
    adapter, spec = get(model_id)
    p = predict(model_id, frames=8, height=480, width=640, attn_implementation="eager")
    assert p.weights_bytes == weight_bytes(spec_weight_counts(model_id), "none", "bfloat16")
    assert set(p.phases) == {"load", "vision", "prefill", "generation"}
    assert set(p.breakdown) <= set(COMPONENTS)
    assert p.peak_bytes > p.weights_bytes
    assert p.tokens["visual_tokens"] > 0 and p.tokens["encoder_seq_len"] >= p.tokens["visual_tokens"]
    if spec.fixed_frames is not None:  # fixed-frame families see their count whatever is given
        other = predict(model_id, frames=spec.fixed_frames * 3, height=480, width=640, attn_implementation="eager")
        assert p.tokens["frames_used"] == other.tokens["frames_used"] == spec.fixed_frames
        assert other.peak_bytes == p.peak_bytes
        assert any("takes exactly" in note for note in other.notes)
    else:
        more = predict(model_id, frames=16, height=480, width=640, attn_implementation="eager")
        assert more.tokens["visual_tokens"] > p.tokens["visual_tokens"] and more.peak_bytes > p.peak_bytes


def test_tiny_source_reads_the_tiny_architecture():
    tiny = architecture("qwen2-vl-2b", "tiny")
    real = architecture("qwen2-vl-2b", "random")
    assert tiny.text.hidden == 64 and real.text.hidden == 1536
    assert tiny.weights.total_params < 10**6 < real.weights.total_params


def test_predict_only_sweeps_hundreds_of_7b_configurations_in_seconds(monkeypatch):
    predict("qwen2-vl-7b", frames=1)  # architecture counted (or read from the cache) once
    import workbench.weights

    monkeypatch.setattr(workbench.weights, "meta_model",
                        lambda *a, **k: pytest.fail("a model was built for one configuration"))
    start = time.perf_counter()
    n = 0
    for frames in range(1, 65):
        for quantization in ("none", "8bit", "4bit-nf4"):
            for attn in ("eager", "sdpa"):
                predict("qwen2-vl-7b", quantization=quantization, attn_implementation=attn, frames=frames,
                        max_pixels=None if frames % 2 else 602112, dtype="float16")
                n += 1
    seconds = time.perf_counter() - start
    assert n == 384
    assert seconds < 5, seconds


def test_tiny_twin_of_each_other_vision_tower_measures_close_to_its_prediction():
    """A tiny twin per other vision tower, eager (where families differ most), measured in a fresh process.

    The geometry of families other than Qwen2-VL was checked against the tracker on these twins only (see
    docs/memory.md), hence the wider tolerance than the mid-size Qwen2-VL's 10 %.
    """
    from workbench.memory import ProbeConfig, run_grid

    families = {}
    for model_id in NATIVE:
        families.setdefault(get(model_id)[0].family, model_id)
    # Qwen2-VL is measured at mid size above; LLaVA-NeXT-Video and InstructBLIP-Video share their vision
    # tower's code with Video-LLaVA (CLIP) and BLIP-2 (EVA): seven fresh processes remain.
    for covered in ("qwen2_vl", "llava_next_video", "instructblip_video"):
        families.pop(covered)
    configs = [ProbeConfig(model=m, source="tiny", device="cpu", frames=8, height=240, width=320,
                           attn_implementation="eager", max_new_tokens=4) for m in families.values()]
    results = run_grid(configs, parallel=2, threads=1, timeout_s=600, progress=False)
    errors = {r["config"]["model"]: r["error_pct"] for r in results}
    for result in results:
        assert result["status"] == "ok", (result["config"]["model"], result["error"])
    assert all(abs(e) < 12 for e in errors.values()), errors


def test_qwen2_vl_7b_8bit_after_load_under_both_16bit_policies():
    """bitsandbytes' default quantizes the vision tower too: exact from the meta-device count of its layers."""
    import torch

    from workbench.weights import count_weights, meta_model

    kept = predict("qwen2-vl-7b", quantization="8bit", dtype="float16", frames=5)
    default = predict("qwen2-vl-7b", quantization="8bit", dtype="float16", frames=5, quantize_vision=True)
    assert kept.quantize_vision is False and default.quantize_vision is True
    adapter, spec = get("qwen2-vl-7b")
    model = meta_model(adapter, adapter.real_config(spec), "float16")
    linear = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    # by hand: every Linear but lm_head in int8 (+ one fp32 scale per row), everything else 2 bytes
    quantized = sum(m.weight.numel() for n, m in linear if n != "lm_head")
    rows = sum(m.weight.shape[0] for n, m in linear if n != "lm_head")
    total = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    by_hand = quantized + rows * 4 + (total - quantized) * 2 + buffers
    assert quantized == pytest.approx(7.20e9, rel=0.01)  # MODEL_NOTES: 7.20B in Linear layers other than lm_head
    assert default.weights_bytes == pytest.approx(by_hand, rel=0.01)
    assert default.weights_bytes == weight_bytes(count_weights(model, ["lm_head"]), "8bit", "float16")
    assert kept.weights_bytes / GiB == pytest.approx(9.37, abs=0.01)
    assert default.weights_bytes < kept.weights_bytes - 0.5 * GiB  # 0.67B vision weights at 1 instead of 2 bytes
    # predictions without quantization ignore the policy
    assert predict("qwen2-vl-7b", quantize_vision=True).weights_bytes == predict("qwen2-vl-7b").weights_bytes


def test_vision_quantized_midsize_measures_close_to_its_prediction(vision_quantized_results, midsize_results):
    """Weights exact and peaks within 10 % per phase with the vision tower quantized (CPU, this machine's path)."""
    for key, result in vision_quantized_results.items():
        assert result["status"] == "ok", (key, result["error"])
        assert result["prediction"]["quantize_vision"] is True
        assert result["weights_bytes"] == result["prediction"]["weights_bytes"], key
        assert result["weights_bytes"] < midsize_results[key]["weights_bytes"], key  # the vision tower shrank
        assert abs(result["error_pct"]) < 10, (key, result["error_pct"])
        for phase in result["phases"]:
            predicted_phase = result["prediction"]["phase_peaks"][phase["phase"]]
            assert abs(predicted_phase - phase["peak_bytes"]) < 0.1 * phase["peak_bytes"], (key, phase["phase"])


def test_the_architecture_cache_is_keyed_by_the_16bit_policy(isolated_cache):
    from workbench.memory.predictor import _architecture_cached

    kept = architecture("qwen2-vl-2b", "random")
    default = architecture("qwen2-vl-2b", "random", quantize_vision=True)
    assert default.weights.quantized_params > kept.weights.quantized_params
    assert kept.largest_vision_quantized == (0, 0) and default.largest_vision_quantized != (0, 0)
    _architecture_cached.cache_clear()  # read back from disk: each policy its own file
    assert architecture("qwen2-vl-2b", "random", quantize_vision=True).weights == default.weights
    assert architecture("qwen2-vl-2b", "random").weights == kept.weights
    files = list((isolated_cache / "memory").glob("arch-qwen2-vl-2b-*.json"))
    assert len(files) >= 2


ERA_CASE = dict(quantization="none", dtype="float16", frames=5, height=1080, width=1920, max_pixels=602112,
                text_tokens=64, device="cuda")


def test_transformers_4_era_vision_attention_spans_the_whole_clip_by_hand():
    """4.50-4.53 (and 4.45-4.49): one [heads, L, L] over every frame pair, with a dense [1, L, L] mask."""
    now = predict("qwen2-vl-7b", attn_implementation="eager", **ERA_CASE)
    then = predict("qwen2-vl-7b", attn_implementation="eager", transformers_era="4.5x", **ERA_CASE)
    L, Ls, D, heads, dt = (then.tokens["encoder_seq_len"], then.tokens["segment_len"], 1280, 16, 2)
    assert then.vision_attention_scope == "clip" and now.vision_attention_scope == "segment"
    assert L == 3 * Ls  # 5 frames -> 3 frame pairs
    assert then.phases["vision"]["vision_attention"] == 5 * dt * L * D + heads * L * L * (2 * dt + 4) + L * L * dt
    native = ERA_CASE | {"max_pixels": None}  # L = 32,292: the mask outgrows the rotary and MLP terms
    efficient = predict("qwen2-vl-7b", attn_implementation="sdpa", transformers_era="4.5x", **native)
    math = predict("qwen2-vl-7b", attn_implementation="sdpa", transformers_era="4.5x", masked_sdpa="math",
                   **native)
    L = efficient.tokens["encoder_seq_len"]
    assert L == 3 * 78 * 138
    # sdpa with a dense mask: the boolean mask and its float copy; the math kernel adds the scores
    assert efficient.phases["vision"]["vision_attention"] == 5 * dt * L * D + L * L * (1 + dt)
    assert math.phases["vision"]["vision_attention"] == 5 * dt * L * D + heads * L * L * 2 * dt + L * L * (1 + dt)
    assert math.peak_bytes > efficient.peak_bytes
    with pytest.raises(ValueError, match="transformers_era must be one of"):
        predict("qwen2-vl-7b", transformers_era="4.3x")


def test_transformers_4_era_prefill_logits_for_every_prompt_position_by_hand():
    """5.x keeps the last position's logits; 4.5x computes all S in dt; 4.4x upcasts them all to float32."""
    case = ERA_CASE | {"attn_implementation": "sdpa", "text_tokens": 2000}
    vocab, dt = 152064, 2
    by_era = {era: predict("qwen2-vl-7b", transformers_era=era, **case) for era in ("5.x", "4.5x", "4.4x")}
    S = by_era["5.x"].tokens["input_tokens"]
    assert "logits" not in by_era["5.x"].phases["prefill"]
    assert by_era["4.5x"].phases["prefill"]["logits"] == S * vocab * dt
    assert by_era["4.4x"].phases["prefill"]["logits"] == S * vocab * (dt + 4)  # S x vocab x 6 bytes in fp16
    assert by_era["4.4x"].peak_bytes > by_era["4.5x"].peak_bytes > by_era["5.x"].peak_bytes
