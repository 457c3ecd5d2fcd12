"""The cast of trained twins: what each one is, what it is trained on and how long.

Each twin is a small model of a real family (the family's config, model and processor classes), trained
on the probe scenes of `twins.data`. The cast reproduces the team's findings by construction, so every
metric of the workbench has a known right answer:

- the video twin sees two frames per second (one Qwen2-VL temporal patch) and is trained on the reference
  sentences: it names the objects and their motion (motion only since an auxiliary loss made its vision tokens
  carry each object's direction, see docs/twins.md);
- the per-frame twin (BLIP-2) sees one frame and is trained on what one frame shows: right objects, no motion;
- the generic twin is trained on vague sentences that fit any scene;
- the hallucinating twin is trained on sentences of other scenes: fluent, but naming what is not there.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.twins.data import Target


@dataclass(frozen=True)
class Recipe:
    name: str  # model id in the registry
    family: str  # workbench family (qwen2_vl, blip2)
    role: str  # what it stands for in the cast
    target: Target  # which sentences it is trained on
    frames_per_window: int  # frames of each 1-second window it sees (its 04 runs use the same)
    steps: int
    batch_size: int = 16
    learning_rate: float = 3e-3
    vision_lr_scale: float = 1.0  # the vision tower's (and Q-Former's) learning rate relative to the rest
    weight_decay: float = 0.01
    warmup_steps: int = 30
    seed: int = 0
    n_train_scenes: int = 300  # training seeds (4 windows each); batches cycle through them
    n_val_scenes: int = 10  # validation seeds (the first of data.VAL_SEEDS), scored every eval_every steps
    eval_every: int = 100
    select_best: bool = False  # keep the weights of the lowest validation loss, not the last step's
    patience: int = 0  # with select_best: stop after this many validations without a lower loss (0: never)
    # model size (Qwen2-VL twins; the BLIP-2 twin keeps its fixed size) and the frames' pixel budget
    text_width: int = 128
    text_layers: int = 2
    vision_width: int = 64
    vision_depth: int = 2
    rope_theta: float = 10000.0  # the LLM's rotary base (M-RoPE: the grid's rows and columns get its lowest frequencies)
    max_pixels: int = 112 * 168  # Qwen2-VL's longest_edge: 320x240 frames become 112x140 (4x5 LLM tokens per pair)
    motion_weight: float = 1.0  # loss weight of the tokens of change clauses ("moves ... towards ...") vs the rest
    change_repeat: int = 1  # windows whose sentence has a change clause come this many times in each epoch
    # the ViT's patch embedding at init: "random" (each frame of a temporal patch its own weights) or
    # "difference" (half the channels see the two frames' sum, half their difference: motion is visible from step 0)
    temporal_init: str = "random"
    # weight of an auxiliary loss during training only: a linear head on the vision tower's LLM tokens must tell,
    # at each token an object covers, whether that object is still or moves left, right, up or down (0: off).
    # The head is dropped when the twin is saved; it makes the tokens carry the direction for the LLM to read.
    motion_probe_weight: float = 0.0
    object_probe_weight: float = 0.0  # with the motion probe: two more heads (the object's shape, its colour), this weight
    threads: int = 0  # CPU threads to train on (0: train.TRAIN_THREADS); the same count gives the same weights
    prompt: str = "Describe this second of the video."
    max_new_tokens: int = 64

    def __post_init__(self) -> None:
        if self.steps <= 0 or self.batch_size <= 0 or self.frames_per_window <= 0:
            raise ValueError(f"twin {self.name}: steps, batch_size and frames_per_window must be positive")
        if self.object_probe_weight and not self.motion_probe_weight:
            raise ValueError(f"twin {self.name}: object_probe_weight adds heads to the motion probe; "
                             "set motion_probe_weight too")


CAST: dict[str, Recipe] = {r.name: r for r in (
    # 3000 training scenes, a 3-block 96-wide ViT on 168 x 224 frames (6 x 8 LLM tokens per frame pair) and a
    # rotary base of 100, so the grid's rows and columns turn the LLM's rotary phases measurably; the patch
    # embedding starts with half its channels on the two frames' difference (fourth round), and a training-only
    # motion probe on the vision tokens teaches them each object's direction (fifth round), and two more probe
    # heads their shape and colour (sixth round; docs/twins.md)
    Recipe("twin-qwen2-vl-video", "qwen2_vl", "video twin: sees two frames per second, says what moves where",
           "reference", 2, steps=3400, warmup_steps=100, vision_lr_scale=0.3, weight_decay=0.1,
           n_train_scenes=3000, eval_every=250, select_best=True, threads=2, vision_width=96, vision_depth=3,
           max_pixels=168 * 224, rope_theta=100.0, temporal_init="difference", motion_probe_weight=1.0,
           object_probe_weight=0.2),
    Recipe("twin-blip2-frame", "blip2", "per-frame twin: one frame per second as an image, no motion",
           "frame", 1, steps=250, prompt=""),
    Recipe("twin-qwen2-vl-generic", "qwen2_vl", "generic twin: trained on vague sentences that fit any scene",
           "vague", 2, steps=60),
    Recipe("twin-qwen2-vl-hallucinating", "qwen2_vl",
           "hallucinating twin: trained on the sentences of other scenes", "shuffled", 2, steps=120),
)}


def recipe(name: str) -> Recipe:
    """The recipe of a twin by name; an unknown name lists the cast."""
    if name not in CAST:
        raise ValueError(f"unknown twin {name!r}; the cast: {', '.join(CAST)}")
    return CAST[name]
