"""Trained twins: load through the real path, caption deterministically, reach their held-out targets, rank
as 05 should, and a seconds-long smoke of the training loop (no real training here).

Held-out checks run on the first TEST_SCENES test scenes (H.264 probe videos through the 04 timeline), a
subset of the 40 in the model cards, so each target carries a slack (SLACK) for the smaller sample and for
machine differences in float arithmetic.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from workbench.models import LoadSettings, load, registry
from workbench.twins import data
from workbench.twins.adapters import weights_dir
from workbench.twins.cast import CAST

TEST_SCENES = tuple(data.TEST_SEEDS[:3])
SLACK = 0.1


@pytest.fixture(scope="session")
def twins():
    loaded = {name: load(name, LoadSettings(source="trained", dtype="float32", device="cpu")) for name in CAST}
    yield loaded
    for model in loaded.values():
        model.unload()


@pytest.fixture(scope="session")
def held_out(twins):
    """Each twin's scores on the first test scenes, through the 04 timeline and metrics."""
    from workbench.twins.evaluate import score_videos, test_videos

    videos = test_videos(TEST_SCENES)
    return {name: score_videos(model, videos, CAST[name].frames_per_window, CAST[name].max_new_tokens)
            for name, model in twins.items()}


def test_every_twin_is_registered_with_its_family_and_committed_weights():
    families = set()
    for name, recipe in CAST.items():
        entry = registry.ENTRIES[name]
        assert entry.trained_twin
        adapter, spec = registry.get(name)
        assert adapter.family == recipe.family == spec.family
        families.add(recipe.family)
        folder = weights_dir(name)
        assert (folder / "model.safetensors").stat().st_size < 10 * 2**20
        assert {"config.json", "processor_config.json", "tokenizer.json", "card.json", "README.md"} <= \
            {p.name for p in folder.iterdir()}
        card = json.loads((folder / "card.json").read_text())
        assert card["held_out"]["test"]["n_videos"] == len(data.TEST_SEEDS)
        # `train-twin NAME` retrains the committed weights: the card's recipe is the cast's (fields added to
        # Recipe after a twin was trained are absent from its card and left at their defaults)
        recipe_fields = dataclasses.asdict(recipe)
        defaults = {f.name: f.default for f in dataclasses.fields(recipe)}
        assert {k: recipe_fields[k] for k in card["recipe"]} == card["recipe"], name
        assert all(recipe_fields[k] == defaults[k] for k in recipe_fields if k not in card["recipe"]), name
    assert len(families) >= 2


def test_twins_load_through_the_family_load_path(twins):
    video = twins["twin-qwen2-vl-video"]
    assert type(video.model).__name__ == "Qwen2VLForConditionalGeneration"
    assert type(video.processor).__name__ == "Qwen2VLProcessor"
    assert video.report.source == "trained" and video.report.family == "qwen2_vl"
    frame = twins["twin-blip2-frame"]
    assert type(frame.model).__name__ == "Blip2ForConditionalGeneration"
    assert type(frame.processor).__name__ == "Blip2Processor"
    card = json.loads((weights_dir("twin-qwen2-vl-video") / "card.json").read_text())
    assert video.report.n_params == card["n_params"]


def test_a_twin_refuses_the_tiny_source_with_the_way_out():
    from workbench.models.base import WorkbenchModelError

    with pytest.raises(WorkbenchModelError, match="source='trained'"):
        load("twin-qwen2-vl-video", LoadSettings(source="tiny"))


def test_same_caption_twice(twins):
    window = data.scene_windows(data.TEST_SEEDS[0], 2)[1]
    model = twins["twin-qwen2-vl-video"]
    first, second = (model.describe(window.frames, window.times_s) for _ in range(2))
    assert first.status == "ok" and first.text == second.text
    assert first.text.startswith("On a grey background")


def test_training_keeps_the_best_validation_weights(tmp_path):
    """select_best: the saved weights are those of the lowest validation loss, and the card names that step."""
    import torch

    from workbench.twins import train
    from workbench.twins.cast import recipe

    name = "twin-qwen2-vl-video"
    result = train.train(name, tmp_path / "run", steps=8, n_train_scenes=2, n_val_scenes=1, evaluate=False,
                         overrides={"select_best": True, "eval_every": 2, "patience": 2}, log=lambda message: None)
    card = json.loads((tmp_path / "run" / "card.json").read_text())
    steps, losses = zip(*card["val_loss"])
    assert card["recipe"]["select_best"] and steps == tuple(range(2, 2 * len(steps) + 1, 2))
    kept = losses.index(min(losses))
    assert card["kept_step"] == steps[kept]
    # early stopping: it stopped at the second validation without a lower loss, or ran all 8 steps
    assert card["steps_run"] == result.steps == steps[-1]
    assert len(steps) - 1 - kept == 2 or (steps[-1] == 8 and len(steps) - 1 - kept < 2)
    assert card["train_cpu_seconds"] > 0
    loaded = load(name, LoadSettings(source=str(tmp_path / "run"), dtype="float32", device="cpu"))
    windows = data.scene_windows(data.VAL_SEEDS[0], CAST[name].frames_per_window)
    recipe_ = recipe(name)
    encoded = train.encode_windows(recipe_, loaded.processor, windows)
    torch.set_num_threads(recipe_.threads or train.TRAIN_THREADS)
    again = train.validation_loss(loaded.model, recipe_, loaded.processor, encoded,
                                  data.targets(windows, recipe_.target, recipe_.seed))
    assert again == pytest.approx(min(losses), abs=1e-5)


def test_many_scenes_are_encoded_a_chunk_at_a_time_as_all_at_once():
    from workbench.twins import build, train
    from workbench.twins.cast import recipe

    recipe_ = recipe("twin-qwen2-vl-video")
    seeds = data.split_seeds("train", 3)
    windows = [w for s in seeds for w in data.scene_windows(s, recipe_.frames_per_window)]
    processor = build.qwen_processor(build.qwen_tokenizer(build.corpus_lines([w.reference for w in windows],
                                                                             [recipe_.prompt])), recipe_)
    whole = train.encode_windows(recipe_, processor, windows)
    chunked = train.encode_scenes(recipe_, processor, seeds, chunk_scenes=2)
    assert len(chunked.pixels) == len(whole.pixels) == 12 and len(chunked.grids) == 12
    assert all(bool((a == b).all()) for a, b in zip(chunked.pixels, whole.pixels))


def test_video_twin_reaches_its_targets(held_out):
    scores, _ = held_out["twin-qwen2-vl-video"]
    assert scores["fact_recall"] >= 0.7 - SLACK
    assert scores["hallucination_rate"] <= 0.1 + SLACK


def test_video_twin_points_at_the_objects_it_names(twins):
    """Pointing game on the first test scenes: an object word's attention peak falls on that object's box far
    more often than a peak placed at random (chance), for the best aggregation at the target, with slack."""
    from workbench.twins.evaluate import pointing_scores

    name = "twin-qwen2-vl-video"
    _, summary = pointing_scores(twins[name], TEST_SCENES, CAST[name].frames_per_window)
    best = summary.loc[summary["score"].idxmax()]
    assert best["words"] >= 10  # the captions name objects on screen
    assert best["score"] >= 0.6 - SLACK
    assert best["score"] >= 3 * best["chance"]


def test_video_twin_names_motion(held_out):
    """Motion needs both frames of a window: the video twin names most moves (0.61 on the 20 test scenes)."""
    scores, _ = held_out["twin-qwen2-vl-video"]
    assert scores["recall_motion"] >= 0.5 - SLACK


def test_per_frame_twin_names_objects_but_not_motion(held_out):
    video, _ = held_out["twin-qwen2-vl-video"]
    frame, _ = held_out["twin-blip2-frame"]
    assert frame["recall_motion"] == 0.0  # it was never shown motion
    assert frame["recall_motion"] <= video["recall_motion"] / 2
    assert frame["recall_colour"] >= 0.3 and frame["recall_shape"] >= 0.4


def test_generic_and_hallucinating_twins_are_what_they_stand_for(held_out):
    scores = {name: s for name, (s, _) in held_out.items()}
    generic = scores["twin-qwen2-vl-generic"]
    assert generic["genericness"] == max(s["genericness"] for s in scores.values())
    assert generic["specificity"] == min(s["specificity"] for s in scores.values())
    hallucinating = scores["twin-qwen2-vl-hallucinating"]
    assert hallucinating["hallucination_rate"] == max(s["hallucination_rate"] for s in scores.values()
                                                      if s["hallucination_rate"] == s["hallucination_rate"])
    assert hallucinating["hallucination_rate"] >= 0.3
    assert hallucinating["fact_recall"] < scores["twin-blip2-frame"]["fact_recall"]


def test_05_ranks_the_video_twin_first(held_out, twins):
    """05's ranking (compare.rank / recommend) over the cast's held-out scores picks the video twin."""
    import pandas as pd

    from workbench.quality import compare

    rows = [{"config": name, "model_id": name, **scores,
             "peak_bytes": twins[name].report.memory_bytes}  # memory after load stands in for the peak here
            for name, (scores, _) in held_out.items()]
    ranking = compare.rank(pd.DataFrame(rows), budget_gib=1.0)
    assert list(ranking["model_id"])[0] == "twin-qwen2-vl-video"
    assert compare.recommend(ranking, 1.0)["model_id"] == "twin-qwen2-vl-video"


@pytest.mark.parametrize("name", ["twin-qwen2-vl-video", "twin-blip2-frame"])
def test_training_loop_smoke(name, tmp_path):
    """Two steps on two scenes: the loop runs, saves safetensors + processor + card, and loads back."""
    from workbench.twins import train

    result = train.train(name, tmp_path / name, steps=2, n_train_scenes=2, n_val_scenes=1, evaluate=False,
                         log=lambda message: None)
    assert result.steps == 2 and len(result.losses) == 2
    assert (tmp_path / name / "model.safetensors").is_file()
    card = json.loads((tmp_path / name / "card.json").read_text())
    assert card["recipe"]["steps"] == 2 and len(card["val_loss"]) == 1
    if CAST[name].motion_probe_weight:  # the training-only head ran, and is not in the saved weights
        assert len(card["motion_probe_loss_every_10_steps"]) == 1
    loaded = load(name, LoadSettings(source=str(tmp_path / name), dtype="float32", device="cpu"))
    from safetensors import safe_open

    def tensor_names(folder):
        with safe_open(str(folder / "model.safetensors"), "pt") as saved:
            return set(saved.keys())

    assert tensor_names(tmp_path / name) == tensor_names(train.weights_dir(name))  # the family's tensors only
    window = data.scene_windows(data.TEST_SEEDS[0], CAST[name].frames_per_window)[0]
    record = loaded.describe(window.frames, window.times_s)
    assert record.status in ("ok", "empty") and record.error is None


def test_motion_probe_labels_cover_the_objects_in_the_frames():
    """Every token the motion probe labels shows its object in the window's frames (not background), and
    each object present at mid-second labels at least one token with its own motion."""
    import numpy as np

    from workbench import probe_videos as pv
    from workbench.twins import train

    rows, cols = 6, 8
    for seed in data.TEST_SEEDS[:5]:
        for window in data.scene_windows(seed, 2):
            labels = train.motion_token_labels(window.record, rows, cols)
            height, width = window.frames.shape[1:3]
            for obj in window.record["objects"]:
                assert train.MOTION_CLASSES.index(obj["motion"]) in labels
            shapes = train.motion_token_labels(window.record, rows, cols, "shape", pv.SHAPES)  # the object heads'
            assert [label == -100 for label in shapes] == [label == -100 for label in labels]
            assert {pv.SHAPES[label] for label in shapes if label != -100} == {o["shape"] for o in window.record["objects"]}
            for index, label in enumerate(labels):
                if label == -100:
                    continue
                r, c = divmod(index, cols)
                cell = window.frames[:, r * height // rows:(r + 1) * height // rows,
                                     c * width // cols:(c + 1) * width // cols]
                assert (np.abs(cell.astype(int) - pv.BACKGROUND_RGB).sum(-1) > 30).any(), (seed, window.second, r, c)


def test_motion_probe_needs_a_qwen2_vl_tower(tmp_path):
    from workbench.twins import train

    with pytest.raises(ValueError, match="motion_probe_weight needs a Qwen2-VL"):
        train.train("twin-blip2-frame", tmp_path / "run", steps=1, n_train_scenes=1, n_val_scenes=1, evaluate=False,
                    overrides={"motion_probe_weight": 1.0}, log=lambda message: None)


def test_object_probe_needs_the_motion_probe():
    video = CAST["twin-qwen2-vl-video"]
    assert video.motion_probe_weight and video.object_probe_weight  # the committed video twin uses both
    with pytest.raises(ValueError, match="object_probe_weight adds heads to the motion probe"):
        dataclasses.replace(video, motion_probe_weight=0.0)
