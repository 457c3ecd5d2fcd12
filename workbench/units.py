"""Byte-unit conversions. Bytes stay bytes until shown; this is the one place that converts them."""

from __future__ import annotations

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
