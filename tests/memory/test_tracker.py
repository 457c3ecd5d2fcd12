"""The CPU live-tensor tracker, per-phase recording and phase hooks (unit tier, in-process, no weights)."""

from __future__ import annotations

import pytest
import torch

from workbench.memory.tracker import (DecoderRuns, LiveTensorTracker, MemoryBudgetExceeded, PhaseRecorder,
                                      decoder_module, install_phase_hooks, vision_module)

MB = 1_000_000


def test_counts_storages_once_and_forgets_freed_ones():
    tracker = LiveTensorTracker()
    with tracker:
        a = torch.empty(MB, dtype=torch.uint8)
        view = a[: MB // 2]  # a view: no new storage
        b = torch.empty(2 * MB, dtype=torch.uint8)
        assert tracker.live_bytes == 3 * MB
        del b
        assert tracker.live_bytes == MB
        del a
        assert tracker.live_bytes == MB  # the view keeps the storage alive
        del view
        assert tracker.live_bytes == 0
    assert tracker.peak_bytes == 3 * MB


def test_peak_resets_to_current_and_returns_the_old_peak():
    tracker = LiveTensorTracker()
    with tracker:
        keep = torch.empty(MB, dtype=torch.uint8)
        temp = torch.empty(4 * MB, dtype=torch.uint8)
        del temp
        assert tracker.reset_peak() == 5 * MB
        assert tracker.peak_bytes == MB
        other = torch.empty(MB, dtype=torch.uint8)
        assert tracker.reset_peak() == 2 * MB
    del keep, other


def test_adopt_counts_tensors_made_outside_once():
    outside = torch.zeros(1000, dtype=torch.float32)
    tracker = LiveTensorTracker()
    assert tracker.adopt([outside, outside[:10]]) == 4000
    assert tracker.adopt({"again": outside}) == 0
    with torch.device("meta"):
        meta = torch.empty(10**9)
    assert tracker.adopt([meta]) == 0  # meta tensors hold no memory
    with tracker:
        doubled = outside * 2
    assert tracker.live_bytes == 8000
    del doubled
    assert tracker.live_bytes == 4000


def test_budget_raises_in_the_current_phase_with_the_op():
    tracker = LiveTensorTracker(budget_bytes=3 * MB)
    tracker.phase = "prefill"
    with pytest.raises(MemoryBudgetExceeded, match="phase 'prefill'") as info:
        with tracker:
            keep = torch.empty(2 * MB, dtype=torch.uint8)
            torch.empty(2 * MB, dtype=torch.uint8)
    assert info.value.phase == "prefill"
    assert info.value.live_bytes == 4 * MB
    assert "empty" in info.value.op
    del keep


def test_agrees_with_torch_memtracker_on_an_mlp_forward():
    """torch's own MemTracker (which this tracker reduces to what a phase needs) reports the same peak."""
    from torch.distributed._tools.mem_tracker import MemTracker

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(256, 1024), torch.nn.GELU(), torch.nn.Linear(1024, 256))
    x = torch.randn(512, 256)
    reference = MemTracker()
    reference.track_external(mlp, x)
    with torch.inference_mode(), reference:
        mlp(x)
    ours = LiveTensorTracker()
    ours.adopt(list(mlp.parameters()) + [x])
    with torch.inference_mode(), ours:
        mlp(x)
    assert ours.peak_bytes == reference.get_tracker_snapshot("peak")[torch.device("cpu")]["Total"]


def test_recorder_keeps_a_peak_per_phase_and_sums_segments():
    tracker = LiveTensorTracker()
    recorder = PhaseRecorder("cpu", tracker)
    with tracker:
        recorder.start("load")
        weights = torch.empty(10 * MB, dtype=torch.uint8)
        recorder.start("prefill")
        temp = torch.empty(3 * MB, dtype=torch.uint8)
        del temp
        recorder.start("vision")
        temp = torch.empty(5 * MB, dtype=torch.uint8)
        del temp
        recorder.start("prefill")  # back after the vision tower
        temp = torch.empty(MB, dtype=torch.uint8)
        del temp
        recorder.start("generation")
        cache = torch.empty(2 * MB, dtype=torch.uint8)
        recorder.stop()
    rows = {r["phase"]: r for r in recorder.table()}
    assert [r["phase"] for r in recorder.table()] == ["load", "vision", "prefill", "generation"]
    assert rows["load"]["peak_bytes"] == 10 * MB
    assert rows["vision"]["peak_bytes"] == 15 * MB
    assert rows["prefill"]["peak_bytes"] == 13 * MB and rows["prefill"]["segments"] == 2
    assert rows["generation"]["peak_bytes"] == 12 * MB
    assert rows["generation"]["start_bytes"] == 10 * MB and rows["generation"]["end_bytes"] == 12 * MB
    del weights, cache


class _Tower(torch.nn.Module):
    def forward(self, x):
        return x * 2


class _Decoder(torch.nn.Module):
    def forward(self, x):
        return x + 1


class _ToyVLM(torch.nn.Module):
    """A VLM's shape: model.visual called once, then the decoder once per step."""

    def __init__(self):
        super().__init__()
        self.model = torch.nn.Module()
        self.model.visual = _Tower()
        self.model.language_model = _Decoder()

    def get_decoder(self):
        return self.model.language_model

    def generate(self, x, steps):
        h = self.model.language_model(self.model.visual(x))
        for _ in range(steps - 1):
            h = self.model.language_model(h)
        return h


def test_hooks_move_the_recorder_through_vision_prefill_generation():
    model = _ToyVLM()
    assert vision_module(model) is model.model.visual
    assert decoder_module(model) is model.model.language_model
    tracker = LiveTensorTracker()
    recorder = PhaseRecorder("cpu", tracker)
    phases = []
    original_start = recorder.start
    recorder.start = lambda phase: (phases.append(phase), original_start(phase))  # type: ignore[method-assign]
    handles = install_phase_hooks(model, recorder)
    with tracker:
        recorder.start("prefill")
        model.generate(torch.ones(4), steps=3)
        recorder.stop()
    for handle in handles:
        handle.remove()
    assert phases == ["prefill", "vision", "prefill", "prefill", "generation", "generation"]
    assert {r["phase"]: r["segments"] for r in recorder.table()} == {"vision": 1, "prefill": 2, "generation": 1}


class _PromptDecoder(torch.nn.Module):
    """A decoder called with input_ids: the prompt at prefill, then one position per generated token."""

    def forward(self, input_ids=None, past_key_values=None):
        return input_ids.float().sum()


def test_decoder_runs_counts_the_longest_generation_and_gives_forward_back():
    decoder = _PromptDecoder()
    model = torch.nn.Module()
    model.get_decoder = lambda: decoder  # type: ignore[assignment]
    runs = DecoderRuns(model)
    assert not decoder._forward_pre_hooks  # a forward wrapper, not a hook (hooks slow every call down)
    for generated in (3, 7, 5):  # three generations: prefill of 6 positions, then one call per token
        decoder(input_ids=torch.ones(1, 6, dtype=torch.long))
        for _ in range(generated - 1):
            decoder(input_ids=torch.ones(1, 1, dtype=torch.long))
    assert runs.longest == 7
    runs.close()
    assert "forward" not in vars(decoder) and decoder(input_ids=torch.ones(1, 2, dtype=torch.long)) == 2
    decoder(input_ids=torch.ones(1, 6, dtype=torch.long))
    assert runs.longest == 7  # no longer counting
    runs.close()  # twice is harmless

    def own(*args, **kwargs):  # a wrapper set before (as accelerate's hooks do) comes back on close
        return "own"

    decoder.forward = own
    runs = DecoderRuns(model)
    assert decoder(input_ids=torch.ones(1, 4, dtype=torch.long)) == "own" and runs.longest == 1
    runs.close()
    assert vars(decoder)["forward"] is own
    del decoder.forward


def test_decoder_runs_attached_at_once_share_one_wrapper_and_close_in_any_order():
    decoder = _PromptDecoder()
    model = torch.nn.Module()
    model.get_decoder = lambda: decoder  # type: ignore[assignment]

    def generation(tokens):
        decoder(input_ids=torch.ones(1, 6, dtype=torch.long))
        for _ in range(tokens - 1):
            decoder(input_ids=torch.ones(1, 1, dtype=torch.long))

    first = DecoderRuns(model)
    generation(3)
    second = DecoderRuns(model)
    wrapper = vars(decoder)["forward"]
    generation(5)
    first.close()  # the first to open closes first: the second keeps counting through the same wrapper
    assert vars(decoder)["forward"] is wrapper
    generation(9)
    assert (first.longest, second.longest) == (5, 9)
    second.close()
    assert "forward" not in vars(decoder) and not hasattr(decoder, "_workbench_forward_counter")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_recorder_resets_peaks_between_phases():
    recorder = PhaseRecorder("cuda")
    recorder.start("vision")
    big = torch.empty(64 * MB, dtype=torch.uint8, device="cuda")
    del big
    recorder.start("prefill")
    small = torch.empty(MB, dtype=torch.uint8, device="cuda")
    recorder.stop()
    rows = {r["phase"]: r for r in recorder.table()}
    assert rows["vision"]["peak_bytes"] - rows["vision"]["start_bytes"] >= 64 * MB
    assert rows["prefill"]["peak_bytes"] - rows["prefill"]["start_bytes"] < 8 * MB  # reset after vision
    assert rows["prefill"]["reserved_peak_bytes"] >= rows["prefill"]["peak_bytes"]
    del small
