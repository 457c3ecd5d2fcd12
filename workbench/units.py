"""Byte-unit conversions. Bytes stay bytes until shown; this is the one place that converts them."""

from __future__ import annotations

import functools
from pathlib import Path

KiB = 2**10
MiB = 2**20
GiB = 2**30


def to_gib(n_bytes: float) -> float:
    """Bytes to GiB (2**30).

    >>> to_gib(3 * 2**30)
    3.0
    >>> round(to_gib(16_106_127_360), 2)
    15.0
    """
    return n_bytes / GiB


def to_mib(n_bytes: float) -> float:
    """Bytes to MiB (2**20).

    >>> to_mib(2**21)
    2.0
    """
    return n_bytes / MiB


def from_gib(gib: float) -> int:
    """GiB to bytes.

    >>> from_gib(44.5)
    47781511168
    """
    return int(round(gib * GiB))


def format_bytes(n_bytes: float) -> str:
    """Human-readable size with binary units.

    >>> format_bytes(512)
    '512 B'
    >>> format_bytes(1536)
    '1.50 KiB'
    >>> format_bytes(15.4 * 2**30)
    '15.40 GiB'
    """
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if abs(n_bytes) >= size:
            return f"{n_bytes / size:.2f} {unit}"
    return f"{int(n_bytes)} B"


# ---- what a person reads: one helper for tables, figures and findings -------------------------------------

UNITS = (("GiB", GiB), ("MiB", MiB), ("KiB", KiB), ("B", 1))


def byte_unit(values: "float | list[float] | object") -> tuple[str, int]:
    """The binary unit (name, size) in which the largest of `values` (bytes) reads as at least 1.

    Used so that a figure's axis, its budget lines and its labels share one unit.

    >>> byte_unit([478_048, 5_598_304])
    ('MiB', 1048576)
    >>> byte_unit(44.5 * 2**30)
    ('GiB', 1073741824)
    >>> byte_unit([])
    ('B', 1)
    """
    import math

    try:
        items = [float(v) for v in values]  # type: ignore[union-attr]
    except TypeError:
        items = [float(values)]  # type: ignore[arg-type]
    finite = [abs(v) for v in items if math.isfinite(v)]
    largest = max(finite, default=0.0)
    for name, size in UNITS:
        if largest >= size:
            return name, size
    return "B", 1


def format_number(value: object, digits: int = 3) -> str:
    """A number rounded to `digits` significant digits, never in scientific notation; integers keep every
    digit. Thousands are separated by commas; missing values read as an empty string.

    >>> format_number(0.00634765625)
    '0.00635'
    >>> format_number(0.25)
    '0.25'
    >>> format_number(2.5e-05)
    '0.000025'
    >>> format_number(6.5e-14)
    '< 0.000001'
    >>> format_number(12345.678)
    '12,346'
    >>> format_number(5598304)
    '5,598,304'
    >>> format_number(float("nan"))
    ''
    >>> format_number(True)
    'True'
    """
    import math

    if value is None or isinstance(value, (bool, str)):
        return "" if value is None else str(value)
    try:
        number = float(value)  # numpy scalars too
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return ""
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    if number == int(number) and (isinstance(value, int) or abs(number) >= 10 ** digits
                                  or type(value).__name__.startswith(("int", "uint"))):
        return f"{int(number):,}"
    if number == 0:
        return "0"
    if abs(number) < 1e-6:  # below a millionth: say so rather than print a wall of zeros
        return "< 0.000001" if number > 0 else "> -0.000001"
    magnitude = math.floor(math.log10(abs(number)))
    decimals = max(0, digits - 1 - magnitude)
    text = f"{round(number, decimals):,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_size(n_bytes: object, unit: str | None = None, digits: int = 3) -> str:
    """Bytes in a binary unit (the largest that reads as at least 1, or `unit`), `digits` significant digits.

    >>> format_size(478048)
    '467 KiB'
    >>> format_size(0.00634765625 * 2**30)
    '6.5 MiB'
    >>> format_size(44.5 * 2**30)
    '44.5 GiB'
    >>> format_size(3 * 2**20, unit="GiB")
    '0.00293 GiB'
    """
    if n_bytes is None or (isinstance(n_bytes, float) and n_bytes != n_bytes):
        return ""
    name, size = (unit, dict(UNITS)[unit]) if unit else byte_unit(float(n_bytes))  # type: ignore[arg-type]
    return f"{format_number(float(n_bytes) / size, digits)} {name}"  # type: ignore[arg-type]


def format_gib(gib: float, digits: int = 3) -> str:
    """A size given in GiB (a budget parameter), shown in the unit that suits it.

    >>> format_gib(24.0)
    '24 GiB'
    >>> format_gib(0.0125)
    '12.8 MiB'
    """
    return format_size(gib * GiB, digits=digits)


def format_seconds(seconds: object, digits: int = 3) -> str:
    """A duration: seconds below two minutes, then minutes, then hours.

    >>> format_seconds(0.52341)
    '0.523 s'
    >>> format_seconds(754)
    '12.6 min'
    >>> format_seconds(7200)
    '2 h'
    """
    if seconds is None or (isinstance(seconds, float) and seconds != seconds):
        return ""
    value = float(seconds)  # type: ignore[arg-type]
    if abs(value) < 120:
        return f"{format_number(value, digits)} s"
    if abs(value) < 7200:
        return f"{format_number(value / 60, digits)} min"
    return f"{format_number(value / 3600, digits)} h"


def format_percent(share: object, digits: int = 3) -> str:
    """A share in [0, 1] as a percentage.

    >>> format_percent(0.125)
    '12.5%'
    """
    if share is None or (isinstance(share, float) and share != share):
        return ""
    return f"{format_number(100 * float(share), digits)}%"  # type: ignore[arg-type]


def readable_name(column: str) -> str:
    """A results column's name as a table header: the unit suffix becomes words.

    >>> readable_name("peak_bytes")
    'peak'
    >>> readable_name("load_time_s")
    'load time (s)'
    >>> readable_name("prediction_error_pct")
    'prediction error (%)'
    """
    for suffix, words in (("_bytes", ""), ("_pct", " (%)"), ("_s", " (s)"), ("_gib", " (GiB)")):
        if column.endswith(suffix) and len(column) > len(suffix):
            return column[: -len(suffix)].replace("_", " ") + words
    return column.replace("_", " ")


def format_cell(value: object, column: str = "", digits: int = 3) -> str:
    """One table cell for reading: sizes (columns named *_bytes) in binary units, numbers rounded, no
    scientific notation, lists joined; the column name picks the unit.

    >>> format_cell(5598304, "peak_bytes")
    '5.34 MiB'
    >>> format_cell(2.5e-1, "bleu")
    '0.25'
    >>> format_cell([0.5, 1.0], "frame_times_s")
    '0.5, 1'
    >>> format_cell("0.200000;0.700000", "frame_times_s")
    '0.2, 0.7'
    """
    if isinstance(value, (list, tuple)):
        return ", ".join(format_cell(v, column, digits) for v in value)
    if isinstance(value, str) and ";" in value:  # a saved list of numbers, "0.200000;0.700000"
        parts = value.split(";")
        try:
            return ", ".join(format_number(float(p), digits) for p in parts)
        except ValueError:
            return value
    if column.endswith("_bytes") and not isinstance(value, (bool, str)) and value is not None:
        try:
            return format_size(float(value), digits=digits)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return str(value)
    return format_number(value, digits)


def humanize_table(table: "object", digits: int = 3) -> "object":
    """A copy of a results table (pandas DataFrame or Series) for reading: every cell through `format_cell`
    and headers through `readable_name`. The saved results keep the raw values; this is only for showing."""
    import pandas as pd

    if isinstance(table, pd.Series):
        name = str(table.name or "")
        shown = pd.Series([format_cell(v, str(k), digits) if str(k).endswith("_bytes")
                           else format_cell(v, name, digits) for k, v in table.items()],
                          index=[readable_name(str(k)) for k in table.index], name=table.name, dtype=object)
        return shown
    assert isinstance(table, pd.DataFrame)
    names: list[str] = []
    for column in table.columns:  # a readable name two columns share keeps the raw names
        name = readable_name(str(column))
        names.append(str(column) if name in names or any(readable_name(str(c)) == name and c != column
                                                          for c in table.columns) else name)
    shown = pd.DataFrame({name: [format_cell(v, str(c), digits) for v in table[c]]
                          for name, c in zip(names, table.columns)}, index=table.index)
    return shown


def printable(text: str) -> str:
    """Text a figure can draw with its font: control characters (tokenizer byte tokens of tiny twins) read
    as <0x02>, and characters no installed font has become U+FFFD, instead of empty boxes and a warning.

    >>> printable("red\x02 circle")
    'red<0x02> circle'
    """
    import unicodedata

    drawable = _font_charmap()
    out = []
    for char in str(text):
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn") and char not in "\n\t":
            out.append(f"<0x{ord(char):02X}>")
        elif drawable and ord(char) not in drawable and char not in "\n\t":
            out.append("\ufffd")
        else:
            out.append(char)
    return "".join(out)


_CHARMAP: set[int] = set()
_CJK_FONT = "NotoSansCJKsc-Regular.otf"  # shipped by the mplfonts package (a dependency)


def figure_fonts() -> list[str]:
    """The sans-serif fonts figures draw with, in fallback order: DejaVu Sans, then Noto Sans CJK SC.

    The CJK font (Chinese, Japanese, Korean) is registered with matplotlib from the mplfonts package the first
    time; without it the list is DejaVu Sans alone, and `printable` shows what it cannot draw as U+FFFD.
    Worked out once per process (every figure asks; naming the font reads its 16 MB file).
    """
    return list(_figure_fonts())


@functools.lru_cache(maxsize=1)
def _figure_fonts() -> tuple[str, ...]:
    fonts = ["DejaVu Sans"]
    path = _cjk_font_path()
    if path is not None:
        from matplotlib import font_manager

        if not any(entry.fname == str(path) for entry in font_manager.fontManager.ttflist):
            font_manager.fontManager.addfont(str(path))
        fonts.append(font_manager.FontProperties(fname=str(path)).get_name())
    return tuple(fonts)


def _cjk_font_path() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("mplfonts")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "fonts" / _CJK_FONT
        if path.is_file():
            return path
    return None


def _font_charmap() -> set[int]:
    """Code points the figures' fonts (`figure_fonts`) can draw together (empty if none can be read)."""
    if not _CHARMAP:
        try:
            from matplotlib import font_manager
            from matplotlib.ft2font import FT2Font

            _CHARMAP.update(FT2Font(font_manager.findfont("DejaVu Sans")).get_charmap())
            path = _cjk_font_path()
            if path is not None:
                _CHARMAP.update(FT2Font(str(path)).get_charmap())
        except Exception:  # no matplotlib font: leave text as it is
            pass
    return _CHARMAP
