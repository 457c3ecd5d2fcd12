"""`python -m workbench train-twin NAME`: train one twin of the cast on CPU, seeded, and save it.

The processor's outputs for every training window are computed once (the processor is the slow part) and
kept as the uint8 pixels they are an affine function of, so a batch costs only the model's step. Training is
deterministic on CPU for a given thread count (set here, recorded in the card): seeded init, fixed batch
order, AdamW with warmup and cosine decay. The result is saved with `save_pretrained` (safetensors), the
processor and tokenizer beside it, and `card.json` / `README.md` with data, steps, loss curve and held-out
scores (`twins.evaluate`).
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from workbench.twins import build, data
from workbench.twins.cast import Recipe, recipe

if TYPE_CHECKING:
    import torch

TRAIN_THREADS = 1  # default CPU threads for training (a recipe's `threads` overrides it; same count, same weights)


def weights_root() -> Path:
    """Committed weights of the cast: workbench/twins/weights/<name>/."""
    return Path(__file__).resolve().parent / "weights"


def weights_dir(name: str) -> Path:
    return weights_root() / name


@dataclass
class WindowInputs:
    """The processor's output for a set of windows, compact: shared prompt ids, per-window uint8 pixels."""

    prompt: dict[str, "torch.Tensor"]  # per-token tensors of the prompt (1, S): identical for every window
    pixels: list["torch.Tensor"]  # per window, uint8, the processor's pixel tensor before rescale/normalize
    grids: list["torch.Tensor"] | None  # Qwen's video_grid_thw row per window
    pixel_key: str
    mean: "torch.Tensor"
    std: "torch.Tensor"
    rescale: float


def _channel_stats(recipe_: Recipe, processor: Any) -> tuple["torch.Tensor", "torch.Tensor", float, str]:
    import torch

    if recipe_.family == "qwen2_vl":
        vp = processor.video_processor
        per = vp.temporal_patch_size * vp.patch_size ** 2  # pixel rows are (channel, time, row, col) flattened
        return (torch.tensor(vp.image_mean).repeat_interleave(per), torch.tensor(vp.image_std).repeat_interleave(per),
                vp.rescale_factor, "pixel_values_videos")
    ip = processor.image_processor
    return (torch.tensor(ip.image_mean)[:, None, None], torch.tensor(ip.image_std)[:, None, None], ip.rescale_factor,
            "pixel_values")


def encode_windows(recipe_: Recipe, processor: Any, windows: list[data.Window], chunk: int = 256,
                   progress: Callable[[str], None] | None = None) -> WindowInputs:
    """The family processor's pixels for every window, kept as the exact uint8 values they normalize.

    The processor itself is slow per call (tens of ms per window on a busy CPU), so it runs on the first
    windows only, as the reference: the rest are resized with the same bicubic antialiased filter in one
    batched call and laid out with the processor's own `patchify`; the two must agree (mean 0.05, max 8 grey levels) on the
    reference windows, else this fails.
    """
    import torch

    mean, std, rescale, key = _channel_stats(recipe_, processor)
    reference = dict(build.family(recipe_.family)["prompt_batch"](processor, windows[:8], recipe_.prompt))
    prompt = {k: v[:1].clone() for k, v in reference.items() if k in ("input_ids", "mm_token_type_ids")}
    ref_raw = torch.round((reference[key] * std + mean) / rescale)
    grid = reference["video_grid_thw"][0] if key == "pixel_values_videos" else None
    pixels: list[torch.Tensor] = []
    for start in range(0, len(windows), chunk):
        pixels += _fast_pixels(recipe_, processor, windows[start:start + chunk], grid)
        if progress:
            progress(f"encoded {min(start + chunk, len(windows))}/{len(windows)} windows")
    fast_raw = torch.cat(pixels[:8]) if grid is not None else torch.stack(pixels[:8])
    diff = (fast_raw.float() - ref_raw).abs()
    if diff.max() > 8 or diff.mean() > 0.05:  # resizers differ by a few grey levels at a few sharp edges
        raise RuntimeError(f"fast pixel path differs from the {type(processor).__name__}: max {diff.max():.1f}, "
                           f"mean {diff.mean():.3f} grey levels")
    grids = [grid] * len(windows) if grid is not None else None
    return WindowInputs(prompt, pixels, grids, key, mean, std, rescale)


def encode_scenes(recipe_: Recipe, processor: Any, seeds: tuple[int, ...], chunk_scenes: int = 64,
                  progress: Callable[[str], None] | None = None) -> WindowInputs:
    """`encode_windows` over many scenes, rendered a chunk at a time (their full-size frames never all at once)."""
    encoded: WindowInputs | None = None
    for start in range(0, len(seeds), chunk_scenes):
        windows = [w for s in seeds[start:start + chunk_scenes] for w in data.scene_windows(s, recipe_.frames_per_window)]
        part = encode_windows(recipe_, processor, windows, chunk=len(windows))
        if encoded is None:
            encoded = part
        else:
            encoded.pixels += part.pixels
            if encoded.grids is not None:
                encoded.grids += part.grids
        if progress:
            progress(f"encoded {min(start + chunk_scenes, len(seeds))}/{len(seeds)} scenes")
    if encoded is None:
        raise ValueError("no training scenes to encode")
    return encoded


def _fast_pixels(recipe_: Recipe, processor: Any, windows: list[data.Window], grid: Any) -> list["torch.Tensor"]:
    import numpy as np
    import torch

    frames = torch.from_numpy(np.stack([w.frames for w in windows]))  # (B, T, H, W, 3)
    n, t = frames.shape[:2]
    flat = frames.reshape(n * t, *frames.shape[2:]).permute(0, 3, 1, 2).float()
    if grid is not None:
        vp = processor.video_processor
        size = (int(grid[1]) * vp.patch_size, int(grid[2]) * vp.patch_size)
    else:
        ip = processor.image_processor
        size = (ip.size["height"], ip.size["width"])
    resized = torch.nn.functional.interpolate(flat, size=size, mode="bicubic", antialias=True,
                                              align_corners=False).round().clamp(0, 255)
    if grid is None:
        return [p.to(torch.uint8) for p in resized]
    videos = resized.reshape(n, t, 3, *size)
    patches, *_ = vp.patchify(videos, vp.patch_size, vp.merge_size, vp.temporal_patch_size)
    return [p.to(torch.uint8) for p in patches]


def assemble(recipe_: Recipe, processor: Any, encoded: WindowInputs, rows: list[int],
             sentences: list[str]) -> dict[str, "torch.Tensor"]:
    """A training batch: prompt + sentence + end token; loss on the sentence and end token only."""
    import torch

    tokenizer = processor.tokenizer
    end = build.end_of_caption_id(recipe_, tokenizer)
    answers = [tokenizer.encode(s, add_special_tokens=False) + [end] for s in sentences]
    n_prompt = encoded.prompt["input_ids"].shape[1]
    width = n_prompt + max(map(len, answers))
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    mask = torch.zeros_like(ids)
    ids[:, :n_prompt] = encoded.prompt["input_ids"]
    mask[:, :n_prompt] = 1
    for r, answer in enumerate(answers):
        span = slice(n_prompt, n_prompt + len(answer))
        ids[r, span] = labels[r, span] = torch.tensor(answer)
        mask[r, span] = 1
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    if recipe_.motion_weight != 1.0:
        weights = torch.zeros(ids.shape, dtype=torch.float32)
        for r, sentence in enumerate(sentences):
            token_weights = change_weights(tokenizer, sentence, recipe_.motion_weight) + [1.0]  # + the end token
            weights[r, n_prompt:n_prompt + len(token_weights)] = torch.tensor(token_weights)
        batch["loss_weights"] = weights
    if "mm_token_type_ids" in encoded.prompt:
        types = torch.zeros_like(ids)
        types[:, :n_prompt] = encoded.prompt["mm_token_type_ids"]
        batch["mm_token_type_ids"] = types
    stack = torch.cat if encoded.grids is not None else torch.stack
    raw = stack([encoded.pixels[r] for r in rows]).float()
    batch[encoded.pixel_key] = (raw * encoded.rescale - encoded.mean) / encoded.std
    if encoded.grids is not None:
        batch["video_grid_thw"] = torch.stack([encoded.grids[r] for r in rows])
    return batch


# A clause that says something changes: a move (with its direction or its start and end), an appearance, a
# disappearance, a change of colour; up to the end of the clause.
_CHANGE_CLAUSE = re.compile(r"\b(?:moves|appears|disappears|turns)\b.*?(?=, | and |\.|$)")


def change_weights(tokenizer: Any, sentence: str, weight: float) -> list[float]:
    """Per-token loss weights of a sentence: `weight` for tokens inside a change clause, 1 elsewhere.

    Changes are a minority of the words the twin writes and the only ones that need two frames; weighting them
    keeps the loss from being spent on the static clauses only.
    """
    spans = [m.span() for m in _CHANGE_CLAUSE.finditer(sentence)]
    encoded = tokenizer(sentence, add_special_tokens=False, return_offsets_mapping=True)
    return [weight if any(a < end and start < b for a, b in spans) else 1.0
            for start, end in encoded["offset_mapping"]]


def init_temporal_patches(model: Any, how: str) -> None:
    """Set the ViT's temporal patch embedding (a Conv3d over `temporal_patch_size` frames) for `how`.

    "difference": frame 2's weights equal frame 1's for the first half of the output channels (they see the
    frames' sum) and their negation for the second half (they see the difference, which is zero wherever
    nothing changed), so what moves stands out before any training. Only the init: training changes both.
    """
    import torch

    if how != "difference":
        raise ValueError(f"unknown temporal_init {how!r}; use random or difference")
    embed = getattr(getattr(getattr(model, "model", model), "visual", None), "patch_embed", None)
    proj = getattr(embed, "proj", None)
    if not isinstance(proj, torch.nn.Conv3d) or proj.weight.shape[2] != 2:
        raise ValueError(f"temporal_init {how!r} needs a ViT whose patch embedding spans two frames "
                         f"(Qwen2-VL's Conv3d); {type(model).__name__} has none")
    with torch.no_grad():
        weight = proj.weight  # (out, channels, frames, height, width)
        half = weight.shape[0] // 2
        weight[:half, :, 1] = weight[:half, :, 0]
        weight[half:, :, 1] = -weight[half:, :, 0]


MOTION_CLASSES = ("none", "left", "right", "up", "down")  # the auxiliary motion probe's classes (`motion_probe_weight`)


def motion_token_labels(record: dict[str, Any], rows: int, cols: int, key: str = "motion",
                        classes: tuple[str, ...] = MOTION_CLASSES) -> list[int]:
    """The motion probe's label of each LLM token of a window's vision grid (rows x cols merged cells, row-major).

    A token gets the motion (or another field `key` of the object, e.g. its shape among `classes`) of the object
    covering it (the cell holding the object's centre at mid-second and every cell whose centre lies inside the
    object's disc), -100 (no loss) where no object is.

    >>> labels = motion_token_labels({"objects": [{"x": 0.3, "y": 0.5, "motion": "left"}]}, 6, 8)
    >>> [(i // 8, i % 8) for i, label in enumerate(labels) if label == MOTION_CLASSES.index("left")]
    [(2, 2), (3, 2)]
    """
    from workbench import probe_videos as pv

    width, height = data.SIZE
    ry = pv._OBJECT_RADIUS
    rx = ry * height / width
    labels = [-100] * (rows * cols)
    for obj in record["objects"]:
        label = classes.index(obj[key])
        centre = (min(int(obj["y"] * rows), rows - 1), min(int(obj["x"] * cols), cols - 1))
        for r in range(rows):
            for c in range(cols):
                inside = (((c + 0.5) / cols - obj["x"]) / rx) ** 2 + (((r + 0.5) / rows - obj["y"]) / ry) ** 2 <= 1
                if inside or (r, c) == centre:
                    labels[r * cols + c] = label
    return labels


class MotionProbe:
    """Training-only auxiliary loss: a linear head on the vision tower's LLM tokens classifies each object's
    motion (`MOTION_CLASSES`) at the tokens it covers, and with `object_weight` two more heads its shape and
    colour. Captures the tokens with a forward hook on the tower; the heads are never saved. The caption loss
    alone leaves the tokens' direction unreadable (docs/twins.md)."""

    def __init__(self, model: Any, records: list[dict[str, Any]], grid: "torch.Tensor",
                 object_weight: float = 0.0) -> None:
        import torch

        from workbench import probe_videos as pv

        visual = getattr(getattr(model, "model", None), "visual", None)
        if visual is None or not hasattr(visual, "spatial_merge_size"):
            raise ValueError(f"motion_probe_weight needs a Qwen2-VL vision tower; {type(model).__name__} has none")
        merge = visual.spatial_merge_size
        rows, cols = int(grid[1]) // merge, int(grid[2]) // merge
        # (weight, head, each record's token labels): the motion head, then with object_weight the covering
        # object's shape and colour, each weighted relative to motion
        kinds = [(1.0, "motion", MOTION_CLASSES)]
        if object_weight:
            kinds += [(object_weight, "shape", pv.SHAPES), (object_weight, "colour", tuple(pv.PALETTE))]
        width = model.config.text_config.hidden_size
        self.heads = [(weight, torch.nn.Linear(width, len(classes)),
                       [torch.tensor(motion_token_labels(r, rows, cols, key, classes)) for r in records])
                      for weight, key, classes in kinds]
        self._tokens: list[torch.Tensor] = []
        visual.register_forward_hook(lambda module, args, out: self._tokens.append(out.pooler_output))

    def loss(self, rows: list[int]) -> "torch.Tensor":
        """The heads' weighted cross-entropies on the last forward's tokens (batch rows `rows`, in order)."""
        import torch

        tokens, self._tokens = self._tokens[-1], []
        terms = [weight * torch.nn.functional.cross_entropy(head(tokens), torch.cat([labels[r] for r in rows]),
                                                            ignore_index=-100)
                 for weight, head, labels in self.heads]
        return sum(terms[1:], terms[0])

    def parameters(self) -> list["torch.nn.Parameter"]:
        return [p for _, head, _ in self.heads for p in head.parameters()]

    def clear(self) -> None:
        self._tokens = []


def step_loss(model: Any, batch: dict[str, "torch.Tensor"]) -> "torch.Tensor":
    """The model's next-token loss, weighted per token when the batch carries `loss_weights`."""
    import torch

    weights = batch.pop("loss_weights", None)
    if weights is None:
        return model(**batch).loss
    labels = batch.pop("labels")
    logits = model(**batch).logits[:, :-1].float()
    targets, weights = labels[:, 1:], weights[:, 1:]
    per_token = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                                  ignore_index=-100, reduction="none").view_as(targets)
    return (per_token * weights).sum() / weights.sum()


@dataclass
class TrainResult:
    name: str
    out_dir: Path
    seconds: float
    steps: int
    losses: list[float]
    val_losses: list[tuple[int, float]]
    size_bytes: int
    n_params: int


def _lr(step: int, recipe_: Recipe) -> float:
    if step < recipe_.warmup_steps:
        return recipe_.learning_rate * (step + 1) / recipe_.warmup_steps
    progress = (step - recipe_.warmup_steps) / max(1, recipe_.steps - recipe_.warmup_steps)
    return recipe_.learning_rate * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(name: str, out_dir: str | Path | None = None, *, steps: int | None = None, n_train_scenes: int | None = None,
          n_val_scenes: int | None = None, evaluate: bool = True, log: Callable[[str], None] = print,
          overrides: dict[str, Any] | None = None, progress_dir: str | Path | None = None) -> TrainResult:
    """Train twin `name` (see `cast.CAST`) and save it to out_dir (default: the committed weights folder).

    `steps` / `n_train_scenes` / `n_val_scenes` shrink the run (tests use a few steps on a few scenes);
    `overrides` replaces other recipe fields (experiments; the card records the recipe that ran).
    `progress_dir`, if given, receives the weights kept so far (the best validation loss with
    `select_best`) each time they change, so an interrupted run can still be examined.
    """
    import torch
    import transformers

    from workbench.atomic import atomic_dir

    recipe_ = recipe(name)
    changes = dict(overrides or {})
    if steps is not None:
        changes.update(steps=steps, warmup_steps=min(recipe_.warmup_steps, max(1, steps // 5)))
    if n_train_scenes is not None:
        changes["n_train_scenes"] = n_train_scenes
    if n_val_scenes is not None:
        changes["n_val_scenes"] = n_val_scenes
    if changes:
        from dataclasses import replace

        recipe_ = replace(recipe_, **changes)
    if recipe_.motion_probe_weight and recipe_.family != "qwen2_vl":
        raise ValueError(f"twin {name}: motion_probe_weight needs a Qwen2-VL twin (its vision tokens form a grid); "
                         f"this one is {recipe_.family}")
    out_dir = Path(out_dir) if out_dir is not None else weights_dir(name)
    threads = recipe_.threads or TRAIN_THREADS
    torch.set_num_threads(threads)
    torch.manual_seed(recipe_.seed)
    started = time.perf_counter()
    cpu_started = time.process_time()

    # Sentences first (no frames): the tokenizer is trained on them, and the processor needs the tokenizer.
    train_seeds = data.split_seeds("train", recipe_.n_train_scenes)
    train_windows = [w for s in train_seeds for w in data.scene_windows(s, recipe_.frames_per_window, render=False)]
    val_windows = [w for s in data.split_seeds("val")[:recipe_.n_val_scenes]
                   for w in data.scene_windows(s, recipe_.frames_per_window)]
    train_sentences = data.targets(train_windows, recipe_.target, recipe_.seed)
    val_sentences = data.targets(val_windows, recipe_.target, recipe_.seed)
    pieces = build.family(recipe_.family)
    tokenizer = pieces["tokenizer"](build.corpus_lines(
        [w.reference for w in train_windows] + [w.frame_sentence for w in train_windows]
        + [w.vague_sentence for w in train_windows], [recipe_.prompt]))
    processor = pieces["processor"](tokenizer, recipe_)
    config = pieces["config"](tokenizer, recipe_)
    model_cls = getattr(transformers, pieces["model_class"])
    model = model_cls._from_config(config, dtype=torch.float32)
    if recipe_.temporal_init != "random":
        init_temporal_patches(model, recipe_.temporal_init)
    log(f"{name}: {sum(p.numel() for p in model.parameters()):,} parameters; encoding "
        f"{len(train_windows)} training windows ({recipe_.n_train_scenes} scenes)")
    encoded = encode_scenes(recipe_, processor, train_seeds, progress=log)
    val_encoded = encode_windows(recipe_, processor, val_windows)
    n_train_windows = len(train_windows)
    probe = (MotionProbe(model, [w.record for w in train_windows], encoded.grids[0], recipe_.object_probe_weight)
             if recipe_.motion_probe_weight else None)
    del train_windows, val_windows

    vision = [p for n, p in model.named_parameters() if n.startswith(("model.visual.", "vision_model.", "qformer."))]
    other = [p for n, p in model.named_parameters() if not n.startswith(("model.visual.", "vision_model.", "qformer."))]
    groups = [{"params": vision, "scale": recipe_.vision_lr_scale}, {"params": other, "scale": 1.0}]
    if probe is not None:
        groups.append({"params": probe.parameters(), "scale": 1.0})
    optimizer = torch.optim.AdamW(groups, lr=recipe_.learning_rate, weight_decay=recipe_.weight_decay)
    order_rng = random.Random(recipe_.seed)
    changing = [i for i, sentence in enumerate(train_sentences) if _CHANGE_CLAUSE.search(sentence)]
    order: list[int] = []
    losses: list[float] = []
    probe_losses: list[float] = []
    val_losses: list[tuple[int, float]] = []
    best: tuple[int, float, dict[str, torch.Tensor]] | None = None  # (step, val loss, weights) with select_best
    model.train()
    for step in range(recipe_.steps):
        if len(order) < recipe_.batch_size:
            epoch = list(range(n_train_windows)) + changing * (recipe_.change_repeat - 1)
            order_rng.shuffle(epoch)
            order += epoch
        rows, order = order[:recipe_.batch_size], order[recipe_.batch_size:]
        batch = assemble(recipe_, processor, encoded, rows, [train_sentences[r] for r in rows])
        for group in optimizer.param_groups:
            group["lr"] = _lr(step, recipe_) * group["scale"]
        loss = step_loss(model, batch)
        losses.append(float(loss.detach()))  # the caption loss (the card's curve), without the probe's
        if probe is not None:
            probe_loss = probe.loss(rows)
            probe_losses.append(float(probe_loss.detach()))
            loss = loss + recipe_.motion_probe_weight * probe_loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % recipe_.eval_every == 0 or step + 1 == recipe_.steps:
            val = validation_loss(model, recipe_, processor, val_encoded, val_sentences)
            if probe is not None:
                probe.clear()
            val_losses.append((step + 1, val))
            improved = recipe_.select_best and (best is None or val < best[1])
            if improved:
                best = (step + 1, val, {k: v.detach().clone() for k, v in model.state_dict().items()})
            log(f"step {step + 1}/{recipe_.steps}: loss {sum(losses[-50:]) / len(losses[-50:]):.3f}, "
                f"val {val:.3f}{' (best)' if improved else ''}, "
                + (f"motion probe {sum(probe_losses[-50:]) / len(probe_losses[-50:]):.3f}, " if probe_losses else "")
                + f"{time.perf_counter() - started:.0f} s, "
                f"cpu {time.process_time() - cpu_started:.0f} s")
            if progress_dir is not None and (improved or not recipe_.select_best):
                model.save_pretrained(progress_dir, safe_serialization=True)
                processor.save_pretrained(progress_dir)
                (Path(progress_dir) / "progress.json").write_text(json.dumps(
                    {"step": step + 1, "val_loss": val, "val_losses": val_losses,
                     "seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu_started}))
            model.train()
            if recipe_.select_best and recipe_.patience and best is not None and \
                    sum(1 for s, _ in val_losses if s > best[0]) >= recipe_.patience:
                log(f"step {step + 1}: no lower validation loss in {recipe_.patience} validations, stopping "
                    f"(keeping step {best[0]})")
                break
    if best is not None:
        model.load_state_dict(best[2])
    model.eval()
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    with atomic_dir(out_dir, replace=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        card = {
            "name": name, "family": recipe_.family, "role": cast_role(name),
            "recipe": asdict(recipe_), "threads": threads, "torch": torch.__version__,
            "transformers": transformers.__version__,
            "data": {"scenario": data.SCENARIO, "duration_s": data.DURATION_S, "fps": data.FPS,
                     "size": list(data.SIZE), "train_seeds": [data.TRAIN_SEED_START,
                                                              data.TRAIN_SEED_START + recipe_.n_train_scenes - 1],
                     "val_seeds": list(data.VAL_SEEDS[:recipe_.n_val_scenes]), "test_seeds": [data.TEST_SEEDS[0], data.TEST_SEEDS[-1]],
                     "train_windows": n_train_windows, "target": recipe_.target},
            "train_seconds": round(seconds, 1),
            "train_cpu_seconds": round(cpu_seconds, 1),
            "steps_run": len(losses),
            "kept_step": best[0] if best is not None else len(losses),
            "n_params": int(sum(p.numel() for p in model.parameters())),
            "loss_every_10_steps": [round(sum(losses[i:i + 10]) / len(losses[i:i + 10]), 4)
                                    for i in range(0, len(losses), 10)],
            "val_loss": val_losses,
        }
        if probe_losses:
            card["motion_probe_loss_every_10_steps"] = [round(sum(probe_losses[i:i + 10]) / len(probe_losses[i:i + 10]), 4)
                                                        for i in range(0, len(probe_losses), 10)]
        (tmp / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    size = sum(p.stat().st_size for p in out_dir.iterdir() if p.is_file())
    result = TrainResult(name, out_dir, seconds, len(losses), losses, val_losses, size,
                         int(sum(p.numel() for p in model.parameters())))
    log(f"{name}: trained in {seconds:.0f} s ({cpu_seconds:.0f} s CPU), kept step "
        f"{best[0] if best is not None else len(losses)}, {size / 2**20:.2f} MiB in {out_dir}")
    if evaluate:
        from workbench.twins.evaluate import write_scores

        write_scores(name, out_dir, log=log)
    return result


def cast_role(name: str) -> str:
    return recipe(name).role


def validation_loss(model: Any, recipe_: Recipe, processor: Any, encoded: WindowInputs, sentences: list[str]) -> float:
    import torch

    model.eval()
    total = 0.0
    rows = list(range(len(sentences)))
    with torch.no_grad():
        for start in range(0, len(rows), 32):
            chunk = rows[start:start + 32]
            batch = assemble(recipe_, processor, encoded, chunk, [sentences[r] for r in chunk])
            total += float(step_loss(model, batch)) * len(chunk)
    return total / len(rows)
