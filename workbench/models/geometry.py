"""What a clip costs in visual tokens: the one typed answer every family's `visual_tokens` gives.

Pure and light (no torch, no transformers): the memory predictor, the probe, the attention maps and the
explorer read these fields and nothing else, so none of them needs to know a family's own vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class VisualGeometry:
    """The visual side of one clip as the family's processor and model shape it (counts, no bytes).

    The vision encoder attends over `n_segments` segments of `segment_len` tokens each (a frame for the
    per-frame ViTs, a temporal patch of `frames_per_segment` frames for the Qwen ViTs); each segment reaches
    the LLM as `llm_tokens_per_segment` placeholders (after pooling, merging or a Q-Former).

    >>> g = VisualGeometry(frames_used=8, llm_tokens=256, encoder_tokens=8 * 257, n_segments=8, segment_len=257,
    ...                    frames_per_segment=1, llm_tokens_per_segment=32, pixel_values=8 * 3 * 224 * 224,
    ...                    resized_height=224, resized_width=224)
    >>> g.llm_tokens_per_frame, g.prompt_tokens
    (32.0, 256)
    """

    frames_used: int  # frames the model sees (fixed-frame families resample to their count)
    llm_tokens: int  # visual placeholder tokens in the prompt, all frames (and all prompts) together
    encoder_tokens: int  # L: the vision encoder's sequence over the whole clip
    n_segments: int  # attention segments of the encoder (frames, or temporal patches)
    segment_len: int  # Ls: tokens of one segment
    frames_per_segment: int  # 1, or the temporal patch size (frames merged into one segment)
    llm_tokens_per_segment: int  # LLM placeholders per segment
    pixel_values: int  # elements of the processor's pixel tensor
    resized_height: int  # the frame size the processor rounded or resized to
    resized_width: int
    extra_prompt_tokens: int = 0  # other prompt tokens the clip brings (frame markers, timestamp text)
    pixel_budget: int | None = None  # per-frame pixel cap the processor resized under (None: a fixed size)
    patch_grid: tuple[int, int] | None = None  # (rows, columns) of encoder patches per segment, where known

    @property
    def prompt_tokens(self) -> int:
        """Prompt tokens the clip adds in all: placeholders plus markers and timestamps."""
        return self.llm_tokens + self.extra_prompt_tokens

    @property
    def llm_tokens_per_frame(self) -> float:
        return self.llm_tokens_per_segment / self.frames_per_segment

    def windows(self, n: int) -> "VisualGeometry":
        """`n` such clips captioned in one call (workbench.batching): the vision encoder runs over all of their
        segments at once and every count of the clip adds up; a segment's own shape does not change.

        >>> g = patch_sequence_geometry(2, 252, 308, patch=14, merge=2, temporal=2, pixel_budget=None)
        >>> g4 = g.windows(4)
        >>> (g4.n_segments, g4.segment_len == g.segment_len, g4.llm_tokens == 4 * g.llm_tokens)
        (4, True, True)
        """
        if n < 1:
            raise ValueError(f"windows per call must be >= 1, got {n}")
        if n == 1:
            return self
        return replace(self, frames_used=n * self.frames_used, llm_tokens=n * self.llm_tokens,
                       encoder_tokens=n * self.encoder_tokens, n_segments=n * self.n_segments,
                       pixel_values=n * self.pixel_values, extra_prompt_tokens=n * self.extra_prompt_tokens)


def per_frame_geometry(frames_used: int, llm_tokens_per_frame: int, encoder_tokens_per_frame: int, side_h: int,
                       side_w: int, extra_llm_tokens: int = 0) -> VisualGeometry:
    """A tower that sees every frame on its own at a fixed size (CLIP, SigLIP, EVA, InternViT): one segment per
    frame; `extra_llm_tokens` are placeholders added once per clip (LLaVA-OneVision's newline).

    >>> per_frame_geometry(4, 32, 257, 224, 224).encoder_tokens
    1028
    """
    return VisualGeometry(
        frames_used=frames_used, llm_tokens=llm_tokens_per_frame * frames_used + extra_llm_tokens,
        encoder_tokens=frames_used * encoder_tokens_per_frame, n_segments=frames_used,
        segment_len=encoder_tokens_per_frame, frames_per_segment=1, llm_tokens_per_segment=llm_tokens_per_frame,
        pixel_values=frames_used * 3 * side_h * side_w, resized_height=side_h, resized_width=side_w,
    )


def patch_sequence_geometry(n_frames: int, resized_h: int, resized_w: int, *, patch: int, merge: int,
                            temporal: int, pixel_budget: int | None, extra_prompt_tokens: int = 0,
                            frames_per_segment: int | None = None) -> VisualGeometry:
    """A Qwen-style ViT: the clip is one sequence of patches over temporal patches of `temporal` frames (an odd
    count padded with the last frame), attended per temporal patch; `merge` x `merge` patches make one LLM token.
    `frames_per_segment` 1 is Tarsier2's way: every frame repeated to fill its own temporal patch.

    >>> g = patch_sequence_geometry(8, 252, 308, patch=14, merge=2, temporal=2, pixel_budget=None)
    >>> g.n_segments, g.patch_grid, g.llm_tokens
    (4, (18, 22), 396)
    """
    frames_per_segment = temporal if frames_per_segment is None else frames_per_segment
    grid_t = -(-n_frames // frames_per_segment)
    grid_h, grid_w = resized_h // patch, resized_w // patch
    encoder = grid_t * grid_h * grid_w
    return VisualGeometry(
        frames_used=n_frames, llm_tokens=encoder // merge**2, encoder_tokens=encoder, n_segments=grid_t,
        segment_len=grid_h * grid_w, frames_per_segment=frames_per_segment,
        llm_tokens_per_segment=grid_h * grid_w // merge**2,
        pixel_values=encoder * 3 * temporal * patch * patch, resized_height=resized_h, resized_width=resized_w,
        extra_prompt_tokens=extra_prompt_tokens, pixel_budget=pixel_budget, patch_grid=(grid_h, grid_w),
    )


def image_side(config: dict[str, Any]) -> int:
    """The square side a fixed-size tower resizes every frame to, from an embedded config (224 if unset).

    >>> image_side({"vision_config": {"image_size": [448, 448]}}), image_side({})
    (448, 224)
    """
    size = config.get("vision_config", {}).get("image_size", 224)
    return int(size[0] if isinstance(size, (list, tuple)) else size)
