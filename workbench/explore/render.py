"""How an action's result looks: in a notebook's output (headless runs) and inside the widgets (HTML, PNG)."""

from __future__ import annotations

import html
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from workbench.explore.controller import ActionResult

# The table each action shows (all its tables are saved); columns kept short for reading.
SHOWN_TABLE: dict[str, tuple[str, list[str] | None]] = {
    "load": ("load_report", ["model_id", "source", "n_params", "memory_bytes", "device", "dtype", "quantization",
                             "attn_implementation", "seconds"]),
    "predict": ("predicted_phases", None),
    "probe": ("probe_phases", ["phase", "peak_bytes", "predicted_peak_bytes", "seconds"]),
    "caption": ("timeline", ["window", "start_s", "end_s", "caption", "tokens", "latency_s", "status", "message"]),
    "attention": ("attention_words", None),
}
STATUS_COLOURS = {"ok": "#1a7f37", "error": "#cf222e", "cancelled": "#9a6700", "skipped": "#57606a",
                  "running": "#0969da"}


def shown_table(result: "ActionResult") -> Any:
    """The result's main table for reading: its main columns, sizes in KiB / MiB / GiB (None if it has none)."""
    from workbench.units import format_size, readable_name

    name, columns = SHOWN_TABLE.get(result.action, ("", None))
    table = result.tables.get(name)
    if table is None:
        return None
    table = table[[c for c in columns if c in table.columns]] if columns else table.copy()
    for column in [c for c in table.columns if c == "bytes" or c.endswith("_bytes")]:  # saved tables keep bytes
        table[column] = [format_size(v) if v == v and v is not None else "" for v in table[column]]
        table = table.rename(columns={column: "size" if column == "bytes" else readable_name(column)})
    return table


def png_bytes(figure: "Figure", dpi: int = 90) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def status_html(status: str, message: str) -> str:
    """A coloured status line (the widgets' status area)."""
    colour = STATUS_COLOURS.get(status, "#24292f")
    return (f'<div class="wb-status wb-status-{html.escape(status)}" style="color:{colour}">'
            f"<b>{html.escape(status)}</b>: {html.escape(message)}</div>")


def result_html(result: "ActionResult", max_rows: int = 24) -> str:
    """Status line and main table of a result, as HTML."""
    from workbench.units import format_number

    parts = [status_html(result.status, result.message)]
    table = shown_table(result)
    if table is not None and len(table):
        parts.append(f'<div class="wb-table wb-table-{result.action}">'
                     + table.to_html(index=False, max_rows=max_rows, float_format=format_number)
                     + "</div>")
    return "\n".join(parts)


def show(result: "ActionResult") -> None:
    """Display a result in the notebook's output: status, main table, figures."""
    from IPython.display import HTML, Image, display

    display(HTML(status_html(result.status, result.message)))
    table = shown_table(result)
    if table is not None and len(table):
        display(table)
    for figure in result.figures.values():
        display(Image(png_bytes(figure, dpi=100)))
