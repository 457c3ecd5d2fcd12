"""Errors and probe outcomes in plain words, for the explorer's status area.

Every message says what went wrong and, where there is one, what to try instead; the kernel is never
left in a broken state by an error (the explorer frees memory before it reports).
"""

from __future__ import annotations

import sys
from typing import Any

from workbench.units import format_bytes

DOING = {"load": "loading the model", "predict": "predicting memory", "probe": "probing memory",
         "caption": "captioning", "attention": "capturing attention", "save": "saving the run"}

OOM_ADVICE = ("Try fewer frames, fewer pixels per frame, 8-bit or 4-bit quantization, or sdpa / "
              "flash_attention_2 attention. The kernel is still usable.")


def first_line(text: str, limit: int = 400) -> str:
    """The first non-empty line of a message, shortened.

    >>> first_line("\\nCUDA out of memory. Tried to allocate 2.00 GiB\\nmore detail")
    'CUDA out of memory. Tried to allocate 2.00 GiB'
    """
    line = next((part.strip() for part in str(text).splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def is_out_of_memory(err: BaseException) -> bool:
    """torch's OutOfMemoryError, Python's MemoryError, the CPU tracker's budget, or an OOM message."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(err, getattr(torch, "OutOfMemoryError", ())):
        return True
    if isinstance(err, MemoryError) or type(err).__name__ == "MemoryBudgetExceeded":
        return True
    return "out of memory" in str(err).lower()


def explain(err: BaseException, action: str) -> str:
    """One plain-words status message for an exception raised by an explorer action."""
    from workbench.models.base import (UnknownModelError, UnsafeLoadError, WeightsUnavailableError,
                                       WorkbenchModelError)
    from workbench.video import VideoError

    doing = DOING.get(action, action)
    text = str(err).strip()
    if is_out_of_memory(err):
        return f"Out of memory while {doing}: {first_line(text) or type(err).__name__}. {OOM_ADVICE}"
    if isinstance(err, VideoError):
        return f"This video cannot be used: {text}. Choose another file or a probe video."
    if isinstance(err, (WeightsUnavailableError, UnknownModelError)):
        return _sentence(text)
    if isinstance(err, UnsafeLoadError):
        return f"Refused to load: {text}"
    if isinstance(err, WorkbenchModelError):
        return f"The model cannot be used this way: {text}"
    if isinstance(err, ImportError):
        return f"A package this needs is missing: {text}"
    if isinstance(err, (ValueError, TypeError)):
        return f"Invalid setting for {doing}: {text}"
    return f"Unexpected error while {doing} ({type(err).__name__}): {first_line(text)}"


def _sentence(text: str) -> str:
    """
    >>> _sentence("unknown model id 'x'")
    "Unknown model id 'x'"
    """
    return text[:1].upper() + text[1:]


def probe_message(result: dict[str, Any]) -> str:
    """What a memory probe found, from its result dict (workbench.memory.probe schema).

    >>> probe_message({"status": "timeout", "error": "no result within 5 s"})
    'The probe did not finish in time and was stopped (no result within 5 s).'
    """
    status = result.get("status")
    phase = result.get("phase") or "an unknown phase"
    if status == "ok":
        where = result.get("device_name") or result.get("device")
        text = (f"Measured peak {format_bytes(result['peak_bytes'])} in the {_peak_phase(result)} phase "
                f"({result.get('memory_kind')}, {where})")
        if result.get("predicted_peak_bytes"):
            text += f"; predicted {format_bytes(result['predicted_peak_bytes'])}"
            if result.get("error_pct") is not None:
                text += f" ({result['error_pct']:+.0f}%)"
        if result.get("weights_bytes"):
            text += f". Weights {format_bytes(result['weights_bytes'])}"
        if result.get("kv_cache_bytes"):
            text += f", KV cache {format_bytes(result['kv_cache_bytes'])}"
        return text + "."
    if status == "oom":
        budget = (result.get("config") or {}).get("budget_bytes")
        limit = f" under the {format_bytes(budget)} budget" if budget else ""
        return (f"Out of memory in the {phase} phase{limit}: {first_line(result.get('error') or '')}. "
                f"{OOM_ADVICE}")
    if status == "timeout":
        return f"The probe did not finish in time and was stopped ({result.get('error')})."
    if status == "killed":
        return f"The probe process was killed: {result.get('error')}."
    return f"The probe failed in {phase}: {first_line(result.get('error') or 'no error message')}"


def _peak_phase(result: dict[str, Any]) -> str:
    phases = result.get("phases") or []
    if not phases:
        return "unknown"
    return max(phases, key=lambda row: row["peak_bytes"])["phase"]
