"""Figures draw captions in Chinese, Japanese and Korean: no missing-glyph warning, no replacement glyphs."""

import warnings

import pytest

CAPTIONS = ["一个红色的圆形向右移动。", "赤い四角が左へ動く。", "빨간 원이 오른쪽으로 움직입니다.", "A red circle moves right."]


def test_printable_keeps_cjk_and_marks_what_no_font_has():
    from workbench.units import printable

    for caption in CAPTIONS:
        assert printable(caption) == caption
    assert printable("\U0001D400") == "\ufffd"  # a mathematical bold A: neither font has it


@pytest.mark.parametrize("caption", CAPTIONS)
def test_timeline_figure_draws_every_glyph(caption):
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    import pandas as pd

    from workbench.quality.figures import timeline_view

    table = pd.DataFrame({"window": [0], "start_s": [0.0], "end_s": [1.0], "caption": [caption]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)" for each one it lacks
        figure = timeline_view(table, [np.zeros((24, 32, 3), np.uint8)])
        figure.canvas.draw()
    drawn = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert any(caption in text.replace("\n", "") for text in drawn)


def test_fonts_after_a_seaborn_theme():
    """seaborn's theme resets the font list; the workbench's theme puts the fallback back."""
    import matplotlib

    from workbench.plots import set_theme

    set_theme("whitegrid")
    assert matplotlib.rcParams["font.family"][:2] == ["DejaVu Sans", "Noto Sans CJK SC"]
