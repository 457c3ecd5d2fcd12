"""CPU peak memory while captioning: one call tracked through its first decoder calls gives the peak of
tracking every operator of the call (the KV cache's growth per token, read from the cache, carries it to the
last token)."""

from __future__ import annotations

import pytest

from workbench.memory.tracker import FirstStepsPeak, LiveTensorTracker
from workbench.models import GenerationSettings
from workbench.models.base import model_tensors


@pytest.fixture(scope="module")
def window(probe_clip):
    return probe_clip(2)


def _full_peak(loaded, frames, times, generation) -> tuple[int, int]:
    tracker = LiveTensorTracker()
    tracker.adopt(model_tensors(loaded.model))
    with tracker:
        record = loaded.describe(frames, times, generation=generation)
    assert record.status == "ok", record.error
    return tracker.peak_bytes, record.n_tokens


def _kv_bytes_per_token(loaded) -> int:
    """Keys and values of one position in every decoder layer, from the text config (float32)."""
    config = loaded.model.config.get_text_config()
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers * 2 * kv_heads * head_dim * 4


@pytest.mark.parametrize("model_id", ["qwen2-vl-2b", "smolvlm2-256m"])
@pytest.mark.parametrize("n_tokens", [2, 16])
def test_first_steps_peak_equals_the_fully_tracked_peak(isolated_cache, window, model_id, n_tokens):
    from workbench.models import LoadSettings, load

    loaded = load(model_id, LoadSettings(source="tiny", dtype="float32"))
    frames, times = window
    generation = GenerationSettings(max_new_tokens=n_tokens, min_new_tokens=n_tokens)
    full, generated = _full_peak(loaded, frames, times, generation)
    assert generated == n_tokens
    sampler = FirstStepsPeak(loaded)
    with sampler:
        record = loaded.describe(frames, times, generation=generation)
    assert record.n_tokens == n_tokens
    # tracking stopped at the end of the model call that held decoder call 2 (for 2 tokens, the last one)
    assert sampler.stopped_early and sampler.measured_calls == 2
    assert len(sampler.segment_peaks) == 3
    # the glue between tracked calls (generate's own mask and position bookkeeping) is not seen: within 2%
    assert sampler.peak_bytes(n_tokens) == pytest.approx(full, rel=0.02)
    if n_tokens > 2:  # the growth matters: a longer caption has a larger generation peak
        assert sampler.growth_source == "KV cache"
        assert sampler.growth_per_token == _kv_bytes_per_token(loaded)
        assert FirstStepsPeak.extrapolate(sampler.segment_peaks, 10**6, sampler.growth_per_token) > full
    loaded.unload()


def test_without_a_readable_cache_the_growth_comes_from_four_tracked_calls(isolated_cache, window, monkeypatch):
    from workbench.memory import tracker
    from workbench.models import LoadSettings, load

    loaded = load("qwen2-vl-2b", LoadSettings(source="tiny", dtype="float32"))
    frames, times = window
    generation = GenerationSettings(max_new_tokens=16, min_new_tokens=16)
    full, _ = _full_peak(loaded, frames, times, generation)
    monkeypatch.setattr(tracker, "cache_bytes", lambda cache: None)
    sampler = FirstStepsPeak(loaded)
    with sampler:
        loaded.describe(frames, times, generation=generation)
    assert sampler.stopped_early and len(sampler.segment_peaks) == 5 and sampler.growth_source == "peaks"
    assert sampler.growth_per_token > 0
    assert sampler.peak_bytes(16) == pytest.approx(full, rel=0.02)
    loaded.unload()


def test_a_stopped_tracker_leaves_no_dispatch_mode_behind(isolated_cache, window):
    from torch.utils._python_dispatch import _get_current_dispatch_mode

    from workbench.models import LoadSettings, load

    loaded = load("qwen2-vl-2b", LoadSettings(source="tiny"))
    frames, times = window
    sampler = FirstStepsPeak(loaded)
    with sampler:
        loaded.describe(frames, times, generation=GenerationSettings(max_new_tokens=8, min_new_tokens=8))
        assert _get_current_dispatch_mode() is None  # left where it was entered, as the model call ended
    assert sampler.stopped_early and not sampler._handles and sampler._depth == 0
    assert "build_inputs" not in vars(loaded.adapter)  # the adapter is given back its own method
    with pytest.raises(ValueError, match="steps must be >= 2"):
        FirstStepsPeak(loaded, steps=1)
    loaded.unload()


def test_no_operator_of_the_third_decoder_call_is_tracked(isolated_cache, window, monkeypatch):
    """The cache's bytes are read when the model call holding decoder call 2 ends, so tracking stops there:
    decoder call 3 onwards runs without the dispatch mode (it used to be tracked whole, about 1 ms here)."""
    from workbench.memory import tracker
    from workbench.models import LoadSettings, load

    loaded = load("qwen2-vl-2b", LoadSettings(source="tiny", dtype="float32"))
    frames, times = window
    decoder_calls = [0]
    tracked_in = []  # the decoder call (0: before the first) running when each operator was tracked
    handle = tracker.decoder_module(loaded.model).register_forward_pre_hook(
        lambda *_: decoder_calls.__setitem__(0, decoder_calls[0] + 1))
    real = tracker.LiveTensorTracker.__torch_dispatch__

    def counting(self, func, types, args=(), kwargs=None):
        tracked_in.append(decoder_calls[0])
        return real(self, func, types, args, kwargs)

    monkeypatch.setattr(tracker.LiveTensorTracker, "__torch_dispatch__", counting)
    sampler = FirstStepsPeak(loaded)
    with sampler:
        record = loaded.describe(frames, times, generation=GenerationSettings(max_new_tokens=8, min_new_tokens=8))
    handle.remove()
    assert record.n_tokens == 8 and decoder_calls[0] == 8
    assert sampler.stopped_early and sampler.growth_source == "KV cache"
    assert {0, 1, 2} <= set(tracked_in) and max(tracked_in) == 2
    loaded.unload()


@pytest.mark.parametrize("tokens", [2, 6])
def test_the_timeline_note_says_how_the_peak_was_measured(isolated_cache, probe_video_paths, tokens):
    """The longest caption decides: no longer than the two tracked decoder calls, the first call was tracked
    whole; longer, the note gives the tokens added at the cache's growth."""
    from workbench.models import LoadSettings, load
    from workbench.quality.timeline import TimelineSettings, caption_timeline

    loaded = load("qwen2-vl-2b", LoadSettings(source="tiny", dtype="float32"))
    settings = TimelineSettings(max_seconds=2.0, max_new_tokens=tokens)
    timeline = caption_timeline(loaded, probe_video_paths["events"], settings, progress=False)
    note = next(n for n in timeline.notes if n.startswith("CPU peak memory"))
    longest = int(timeline.table["tokens"].max())
    if longest <= 2:
        assert "the whole call tracked" in note
    else:
        assert f"tracked through its first 2 decoder calls, then {longest - 2} more tokens at" in note
    assert timeline.peak_bytes > 0
    loaded.unload()
