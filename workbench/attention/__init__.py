"""Where in the video each caption word looks: capture, token layouts, aggregates and figures.

`attend(loaded, frames, timestamps_s)` captions the frames while capturing text-to-visual attention and
returns `AttentionMaps` (capture + token layout + frames); `aggregate` turns it into tables and `figures`
into plots. See `capture` for how attention is kept without storing sequence x sequence tensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from workbench.attention.aggregate import AttentionMaps
    from workbench.attention.capture import CaptureSettings
    from workbench.models.base import GenerationSettings, LoadedModel


def attend(loaded: "LoadedModel", frames: "np.ndarray", timestamps_s: "np.ndarray",
           prompt: str | None = None, generation: "GenerationSettings | None" = None,
           settings: "CaptureSettings | None" = None, **describe_options: Any) -> "AttentionMaps":
    """Caption frames (T,H,W,3 uint8) with attention capture; map visual tokens to frame/row/column.

    Families that take a fixed frame count get it here first (resampled loudly, as describe() would),
    so the maps refer to the frames the model actually saw.
    """
    import numpy as np

    from workbench.attention.aggregate import AttentionMaps
    from workbench.attention.capture import capture
    from workbench.models.base import resample_frames

    timestamps_s = np.asarray(timestamps_s, dtype=float)
    if loaded.spec.fixed_frames is not None:
        frames, timestamps_s, _ = resample_frames(frames, timestamps_s, loaded.spec.fixed_frames,
                                                  loaded.settings.frame_policy, loaded.spec.model_id)
    result = capture(loaded, frames, timestamps_s, prompt=prompt, generation=generation, settings=settings,
                     **describe_options)
    height, width = int(frames.shape[1]), int(frames.shape[2])
    layout = loaded.adapter.token_layout(loaded, result, int(frames.shape[0]), height, width)
    if layout.n_tokens != result.n_visual:
        raise ValueError(f"{loaded.spec.model_id}: layout has {layout.n_tokens} tokens, capture {result.n_visual}")
    return AttentionMaps(result, layout, frames, np.asarray(timestamps_s, dtype=float), loaded.spec.model_id)


def caption_check(loaded: "LoadedModel", maps: "AttentionMaps", prompt: str | None = None,
                  generation: "GenerationSettings | None" = None, **describe_options: Any) -> dict[str, Any]:
    """Caption the same frames again without capture: the texts must be equal (recompute mode)."""
    plain = loaded.describe(maps.frames, maps.timestamps_s, prompt=prompt, generation=generation,
                            **describe_options)
    captured = maps.capture.caption
    return {
        "caption_without_capture": plain.text,
        "caption_with_capture": captured.text,
        "equal": plain.text == captured.text,
        "seconds_without_capture": plain.latency_s,
        "seconds_with_capture": maps.capture.seconds,
        "mode": maps.capture.mode,
    }


def parse_selection(word: int, layer: str, head: str) -> tuple[int | None, int | str, int | str]:
    """Notebook selection parameters -> (word or None for the whole caption, layer, head).

    >>> parse_selection(-1, "mean", "3")
    (None, 'mean', 3)
    """
    def one(value: str, name: str) -> int | str:
        value = str(value).strip()
        if value == "mean":
            return value
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{name}={value!r}: use 'mean' or a number") from None

    return (None if word < 0 else int(word)), one(layer, "show_layer"), one(head, "show_head")
