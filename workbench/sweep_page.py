"""A sweep's index.html for reading: provenance, one row per run with its varying values (as written in the
sweep file, not JSON-quoted), the kind of weights, a few result figures in human units, and a link to every
run's executed notebook. `sweep.write_aggregate` writes it."""

from __future__ import annotations

import csv
import json
from html import escape
from pathlib import Path
from typing import Any

# Result figures shown per run, from results/summary.json and timing.json (04) or a results table (02), in order.
SUMMARY_FIGURES = ("success_rate", "coverage", "fact_recall", "hallucination_rate", "genericness", "peak_bytes",
                   "compute_per_video_s")
TABLE_FIGURES = {"measured.csv": ("peak_bytes", "max"), "predicted.csv": ("predicted_peak_bytes", "max")}


def _value_text(value: Any) -> str:
    """A parameter value as a person writes it: 8bit, [2, 4], {'k': 1} without JSON quotes."""
    from workbench.units import format_number

    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else ""
    return format_number(value)


def run_figures(run_dir: Path) -> dict[str, Any]:
    """The few result figures a run saved (raw values), for the index's result columns."""
    figures: dict[str, Any] = {}
    for summary in (run_dir / "results" / "summary.json", run_dir / "results" / "timing.json"):  # 04's durations
        if not summary.exists():
            continue
        try:
            record = json.loads(summary.read_text())
        except ValueError:
            record = {}
        figures.update({k: record[k] for k in SUMMARY_FIGURES if isinstance(record.get(k), (int, float))})
    for name, (column, how) in TABLE_FIGURES.items():
        path = run_dir / "results" / name
        if not path.exists() or column in figures:
            continue
        with open(path, newline="", encoding="utf-8") as handle:
            values = [float(row[column]) for row in csv.DictReader(handle) if row.get(column) not in (None, "")]
        if values:
            figures[column] = max(values) if how == "max" else values[-1]
    return figures


def index_html(sweep: Any, records: list[dict[str, Any]]) -> str:
    """The sweep's page (one <tr> per run plus the header row)."""
    from workbench.page import weights_label
    from workbench.units import format_cell, readable_name

    sources = {run.key: run.parameters.get("source") for run in sweep.runs}
    figures = {r["key"]: run_figures(sweep.dir / r["run_dir"]) if r["status"] == "ok" else {} for r in records}
    shown = [f for f in dict.fromkeys((*SUMMARY_FIGURES, *(c for c, _ in TABLE_FIGURES.values())))
             if any(f in found for found in figures.values())]
    with_source = any(s is not None for s in sources.values())
    header = "".join(f"<th>{escape(name)}</th>" for name in sweep.varying)
    header += "<th>weights</th>" if with_source else ""
    header += "".join(f"<th>{escape(readable_name(f))}</th>" for f in shown)
    rows = []
    for record in records:
        cells = "".join(f"<td>{escape(_value_text(record['point'].get(n)))}</td>" for n in sweep.varying)
        if with_source:
            cells += f"<td>{escape(weights_label(sources.get(record['key'])))}</td>"
        cells += "".join(f"<td>{escape(format_cell(figures[record['key']].get(f), f))}</td>" for f in shown)
        html = Path(record["run_dir"]) / "notebook.html"
        link = (f'<a href="{escape(html.as_posix())}">notebook</a>'
                if (sweep.dir / html).exists() else "(no notebook)")
        error = escape((record.get("error") or "").splitlines()[0][:200]) if record.get("error") else ""
        rows.append(f"<tr><td>{escape(record['status'])}</td>{cells}<td>{format_cell(record['seconds'])}</td>"
                    f"<td>{link}</td><td>{error}</td></tr>")
    from workbench.run_folder import INTERRUPTED, STATUSES

    counts = {s: sum(r["status"] == s for r in records) for s in (*STATUSES, INTERRUPTED)}
    missing = len(sweep.runs) - len(records)
    summary = ", ".join([*(f"{n} {s}" for s, n in counts.items() if n), *([f"{missing} not run"] if missing else [])])
    tables = sorted(p.name for p in (sweep.dir / "results").glob("*.csv")) if (sweep.dir / "results").exists() else []
    table_links = " ".join(f'<a href="results/{escape(t)}">{escape(t)}</a>' for t in tables)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>sweep {escape(sweep.name)}</title>
<style>body{{font-family:sans-serif}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}} dt{{font-weight:bold}}
dl{{display:grid;grid-template-columns:max-content auto;gap:2px 12px}}</style>
</head><body>
<h1>Sweep {escape(sweep.name)}</h1>
<h2>Provenance</h2>
{_provenance(sweep, records)}
<p>{len(sweep.runs)} runs ({escape(summary)}). Tables of every run's results with its parameters:
<a href="runs.csv">runs.csv</a> {table_links}</p>
<table><tr><th>status</th>{header}<th>seconds</th><th>executed notebook</th><th>error</th></tr>
{''.join(rows)}
</table></body></html>
"""


def _provenance(sweep: Any, records: list[dict[str, Any]]) -> str:
    """Provenance as a definition list: notebook, sweep file (relative), code version, the device and versions
    of the first run that recorded them, and when the runs started."""
    from workbench.page import _device_text, relative_text

    first: dict[str, Any] = {}
    for record in records:
        path = sweep.dir / record["run_dir"] / "manifest.json"
        if path.exists():
            try:
                first = json.loads(path.read_text())
                break
            except ValueError:
                continue
    versions = first.get("versions") or {}
    picked = ", ".join(f"{n} {versions[n]}" for n in ("python", "torch", "transformers", "bitsandbytes")
                       if versions.get(n))
    git = first.get("git") or {}
    dirty = " (uncommitted changes)" if git.get("dirty") else ""
    items = [("notebook", sweep.notebook), ("sweep file", relative_text(str(sweep.path))),
             ("code version", f"{sweep.code_version}{dirty}"),
             ("device", _device_text(first) if first else "not recorded"),
             ("versions", picked or "not recorded"),
             ("first run started", str(first.get("started_at", ""))[:19].replace("T", " ") or "not recorded")]
    return "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in items) + "</dl>"
