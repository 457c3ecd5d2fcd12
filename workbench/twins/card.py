"""The model card (README.md) of a trained twin, written from its card.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TARGETS = {
    "twin-qwen2-vl-video": "fact recall >= 0.7 and hallucination rate <= 0.1 on the test scenes",
    "twin-blip2-frame": "motion recall <= half the video twin's",
    "twin-qwen2-vl-generic": "the highest genericness and the lowest specificity of the cast",
    "twin-qwen2-vl-hallucinating": "the highest hallucination rate of the cast",
}


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def card_text(card: dict[str, Any]) -> str:
    recipe = card["recipe"]
    data = card["data"]
    lines = [
        f"# {card['name']} (trained twin, {card['family']} family)", "",
        f"{card['role']}.", "",
        "A small model of the real family architecture (its transformers config, model and processor classes, a "
        "tokenizer trained on the probe vocabulary with the family's special tokens and chat template), trained "
        "on CPU on synthetic probe scenes with exact ground truth. It knows only grey backgrounds with coloured "
        "circles, squares and triangles: its figures say whether the workbench's tools work, not how a real "
        "model behaves.", "",
        "## Data", "",
        f"- scenes: probe scenario `{data['scenario']}`, {data['duration_s']} s at {data['fps']} fps, "
        f"{data['size'][0]}x{data['size'][1]}; one window per second, {recipe['frames_per_window']} frame(s) each",
        f"- trained on: `{data['target']}` sentences of {data['train_windows']} windows (seeds "
        f"{data['train_seeds'][0]}-{data['train_seeds'][1]})",
        f"- validation seeds {data['val_seeds'][0]}-{data['val_seeds'][-1]}; test seeds "
        f"{data['test_seeds'][0]}-{data['test_seeds'][1]} (never trained on)", "",
        "## Training", "",
        f"- {recipe['steps']} AdamW steps, batch {recipe['batch_size']}, learning rate {recipe['learning_rate']} "
        f"(warmup {recipe['warmup_steps']}, cosine; vision tower x{recipe.get('vision_lr_scale', 1.0)}), weight decay "
        f"{recipe.get('weight_decay', 0.01)}, seed {recipe['seed']}, {card['threads']} CPU thread(s), "
        f"torch {card['torch']}, transformers {card['transformers']}",
        f"- {card['n_params']:,} parameters; {card['train_seconds'] / 60:.1f} min wall-clock on a 2-core CPU "
        f"(docs/twins.md says how busy it was)"
        + (f" ({card['train_cpu_seconds'] / 60:.1f} min of CPU time)" if card.get("train_cpu_seconds") else ""),
    ]
    if recipe.get("temporal_init", "random") == "difference":
        lines.append("- the ViT's temporal patch embedding started with half its channels on the sum of each frame "
                     "pair and half on their difference (`temporal_init`), then trained like the rest")
    if recipe.get("motion_probe_weight"):
        motion = card.get("motion_probe_loss_every_10_steps") or []
        lines.append(f"- an auxiliary loss (weight {recipe['motion_probe_weight']}) during training only: a linear head on "
                     "the vision tower's LLM tokens told, at each token an object covers, whether that object is still "
                     "or moves left, right, up or down (`motion_probe_weight`)"
                     + (f", and two more heads told its shape and its colour (weight {recipe['object_probe_weight']} "
                        "each, `object_probe_weight`)" if recipe.get("object_probe_weight") else "")
                     + "; the heads are not part of the saved model"
                     + (f"; the probe's loss fell from {motion[0]:.2f} to {motion[-1]:.3f}" if motion else ""))
    if recipe.get("select_best"):
        lines.append(f"- kept the weights of step {card['kept_step']} (lowest validation loss on "
                     f"{len(data['val_seeds'])} validation scenes) of {card.get('steps_run', recipe['steps'])} steps run"
                     + (f" (early stopping after {recipe['patience']} validations without a lower loss)"
                        if recipe.get("patience") else ""))
    lines += [
        "- training loss (mean of each 10 steps, every 10th value): "
        + ", ".join(f"{v:.2f}" for v in card["loss_every_10_steps"][::10]),
        "- validation loss: " + ", ".join(f"step {s}: {v:.3f}" for s, v in card["val_loss"]), "",
    ]
    held = card.get("held_out")
    if held:
        test, demo = held["test"], held["demo_videos"]
        lines += ["## Held-out scores (workbench 04 metrics)", "",
                  f"Measured in {held['dtype']} on the H.264 probe videos of the test seeds "
                  f"({test['n_windows']} windows of {test['n_videos']} scenes) and on the demo's three probe videos "
                  "(static, moving, events; seed 0).", "",
                  "| metric | test scenes | demo videos |", "|---|---|---|"]
        for key in ("fact_recall", "hallucination_rate", "recall_colour", "recall_shape", "recall_motion",
                    "recall_appears", "recall_disappears", "recall_changes_colour", "genericness", "specificity",
                    "staticness", "bleu_4", "cider", "success_rate", "quality_score"):
            lines.append(f"| {key} | {_fmt(test.get(key))} | {_fmt(demo.get(key))} |")
        pointing = held.get("pointing")
        if pointing:
            lines += ["", f"Pointing game ({pointing['scenes']} test scenes; share of object words whose attention "
                      "peak overlaps the object's box, beside chance): "
                      + "; ".join(f"{r['aggregation']} {r['score']:.2f} (chance {r['chance']:.2f}, {r['words']} words)"
                                  for r in pointing["by_aggregation"])]
        lines += ["", f"Target: {TARGETS.get(card['name'], '')}.", "", "Examples (test scenes):", ""]
        for example in held.get("examples", []):
            lines += [f"- {example['video']} second {example['second']}: \"{example['caption']}\" "
                      f"(reference: \"{example['reference']}\")"]
    return "\n".join(lines) + "\n"


def write_card(folder: str | Path) -> Path:
    folder = Path(folder)
    card = json.loads((folder / "card.json").read_text())
    path = folder / "README.md"
    path.write_text(card_text(card))
    return path
