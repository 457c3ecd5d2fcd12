"""What a shared executed notebook shows besides its results: a provenance header, tables for reading,
and the run's library warnings collected once per kind instead of repeated down the page.

`context.open_run` calls `start(run)`; `Run.finish()` calls `finish(run)`. The saved results keep raw values;
everything here only changes how they are shown.
"""

from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

WARNINGS_LOG = "warnings.log"  # JSON lines in the run folder: one per kind of warning, with its count
_ROOT = Path(__file__).resolve().parent.parent

TABLE_CSS = """<style>
.jp-RenderedHTMLCommon table.wb-table, table.dataframe {table-layout: auto; max-width: 100%;}
.jp-RenderedHTMLCommon table.dataframe td, .jp-RenderedHTMLCommon table.dataframe th,
table.dataframe td, table.dataframe th {text-align: left; white-space: normal;
  max-width: 32em; vertical-align: top; overflow-wrap: break-word;}
details.wb-warnings summary, details.wb-provenance summary {cursor: pointer;}
</style>"""


# ---- warnings: once per kind, into the run folder's log --------------------------------------------------

def _kind(message: str) -> str:
    """Messages that differ only in numbers, hex ids or quoted names are one kind."""
    return re.sub(r"0x[0-9a-fA-F]+|\d+(\.\d+)?", "#", message)[:300]


def _short_location(filename: str, lineno: int | None) -> str:
    """A warning's source file without the machine's folders: package/module.py:line."""
    path = Path(filename)
    parts = path.parts
    for anchor in ("site-packages", "dist-packages"):
        if anchor in parts:
            path = Path(*parts[parts.index(anchor) + 1:])
            break
    else:
        try:
            path = path.resolve().relative_to(_ROOT)
        except (ValueError, OSError):
            path = Path(path.name)
    return f"{path.as_posix()}:{lineno}" if lineno else path.as_posix()


class WarningLog:
    """Collects Python warnings, library log records and stray stderr lines of one run, once per kind.

    The first of each kind is appended to <run>/warnings.log at once (so a failed run keeps it); counts are
    rewritten at `close()`.
    """

    def __init__(self, run_dir: Path, echo: bool = False) -> None:
        self.path = Path(run_dir) / WARNINGS_LOG
        self.echo = echo  # also show the first of each kind live (JupyterLab), on the real stderr
        self.kinds: dict[tuple[str, str], dict[str, Any]] = {}
        self._stderr: Any = None
        self._showwarning: Any = None
        self._handler: Any = None
        self._redirected: list[Any] = []

    def record(self, category: str, message: str, location: str = "") -> None:
        message = str(message).strip()
        if not message:
            return
        from workbench.manifest import redact

        message = relative_text(redact(message))
        key = (category, _kind(message))
        entry = self.kinds.get(key)
        if entry is not None:
            entry["count"] += 1
            return
        entry = {"category": category, "message": message, "location": location, "count": 1}
        self.kinds[key] = entry
        if self.echo and self._stderr is not None:
            try:
                self._stderr.write(f"{category}: {message} (once per kind; all in {WARNINGS_LOG})\n")
            except Exception:
                pass
        try:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
        except OSError:
            pass

    def install(self) -> "WarningLog":
        import logging

        self._showwarning = warnings.showwarning
        warnings.showwarning = self._on_warning
        self._stderr = sys.stderr
        sys.stderr = _StderrTap(self, sys.stderr)
        for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
            for handler in getattr(logger, "handlers", []):
                if isinstance(handler, logging.StreamHandler) and handler.stream in (self._stderr, sys.__stderr__):
                    handler.setStream(sys.stderr)
                    self._redirected.append(handler)
        return self

    def _on_warning(self, message: Any, category: type, filename: str, lineno: int, file: Any = None,
                    line: Any = None) -> None:
        self.record(category.__name__, str(message), _short_location(filename, lineno))

    def close(self) -> None:
        if self._showwarning is not None:
            warnings.showwarning = self._showwarning
            self._showwarning = None
        if self._stderr is not None:
            for handler in self._redirected:
                handler.setStream(self._stderr)
            sys.stderr = self._stderr
            self._stderr = None
        self.save()

    def save(self) -> None:
        from workbench import atomic

        if self.kinds:
            atomic.write_text(self.path, "".join(json.dumps(e) + "\n" for e in self.kinds.values()))

    def summary_html(self) -> str:
        return warnings_html(list(self.kinds.values()))


class _StderrTap:
    """Stands in for sys.stderr in a run's kernel: every line goes to the warning log, not the page."""

    def __init__(self, log: WarningLog, stream: Any) -> None:
        self._log = log
        self._stream = stream
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += str(text).replace("\r", "\n")
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._log.record("stderr", line)
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            self._log.record("stderr", self._buffer)
            self._buffer = ""

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def warnings_html(entries: list[dict[str, Any]]) -> str:
    """A collapsed <details> section listing each kind of warning once, with how often it came."""
    import html

    if not entries:
        return ""
    total = sum(int(e.get("count", 1)) for e in entries)
    rows = "".join(
        f"<tr><td>{int(e.get('count', 1)):,}</td><td>{html.escape(str(e.get('category', '')))}</td>"
        f"<td>{html.escape(str(e.get('message', '')))}</td><td>{html.escape(str(e.get('location', '')))}</td></tr>"
        for e in sorted(entries, key=lambda e: -int(e.get("count", 1))))
    return (f'<details class="wb-warnings"><summary>Library messages: {len(entries)} kind(s), {total:,} in all '
            f"(each shown once; full list in {WARNINGS_LOG})</summary>"
            f'<table class="dataframe wb-table"><thead><tr><th>times</th><th>kind</th><th>message</th>'
            f"<th>where</th></tr></thead><tbody>{rows}</tbody></table></details>")


def read_warnings(run_dir: Path) -> list[dict[str, Any]]:
    """The kinds of warnings a run logged (the last entry per kind wins: close() rewrites the counts)."""
    path = Path(run_dir) / WARNINGS_LOG
    if not path.exists():
        return []
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        found[(entry.get("category", ""), _kind(entry.get("message", "")))] = entry
    return list(found.values())


# ---- the page: set up at open_run, summarized at finish ---------------------------------------------------

_ACTIVE: dict[str, Any] = {}  # "log": the WarningLog of the open run; "headless": under the runner


def start(run: Any) -> None:
    """Prepare a run's page: readable tables (no scientific notation, no elided columns, wrapped and
    left-aligned text), no progress-bar widgets, and warnings collected into the run folder's log."""
    import os

    _ACTIVE["headless"] = not getattr(run, "standalone", True)
    if not getattr(run, "standalone", True):  # headless under the runner: bars would be empty widgets on the page
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        _quiet_progress_bars()
    try:
        import pandas as pd

        from workbench.units import format_number

        pd.set_option("display.float_format", format_number)
        pd.set_option("display.max_columns", None)
        pd.set_option("display.max_colwidth", None)
        pd.set_option("display.width", 10_000)
    except ImportError:  # pragma: no cover
        pass
    if getattr(run, "standalone", False):
        _write_params_file(run)
    previous = _ACTIVE.pop("log", None)
    if previous is not None:
        previous.close()
    _ACTIVE["log"] = WarningLog(run.dir, echo=getattr(run, "standalone", False)).install()
    if _in_kernel():
        from IPython.display import HTML, display

        display(HTML(TABLE_CSS))
        if getattr(run, "standalone", False):  # the runner adds the header at the top of runs it manages
            path = Path(run.dir) / "manifest.json"
            record = json.loads(path.read_text()) if path.exists() else {}
            display(HTML(provenance_html(record, Path(run.dir), base=Path(run.dir))))


def headless() -> bool:
    """Whether this kernel runs a notebook under the workbench runner (no one sees widgets live)."""
    return bool(_ACTIVE.get("headless"))


class Interactive:
    """A widget in a live JupyterLab session; in a headless run's page, a line saying where to use it."""

    def __init__(self, widget: Any, what: str) -> None:
        self.widget = widget  # None in a headless run: it was never built
        self.what = what

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        import html

        note = f"{self.what}: open this notebook in JupyterLab (make lab) and run it to use the controls."
        if self.widget is None:
            return {"text/plain": note, "text/html": f"<p><i>{html.escape(note)}</i></p>"}
        bundle = getattr(self.widget, "_repr_mimebundle_", None)
        data = dict(bundle(**kwargs) or {}) if bundle else {}
        data["text/plain"] = note
        return data


def interactive(what: str, build: Callable[..., Any], *args: Any, **kwargs: Any) -> Interactive:
    """`build(*args, **kwargs)`'s widget for the last line of a notebook cell: live in JupyterLab, a line saying
    where to use it in a shared page.

    In a headless run the widget is not built at all: nobody can use it there, and a cell that opens widget
    comms (an Output widget above all) sometimes leaves papermill's client waiting forever for a reply the
    kernel already sent (nbclient issue 312; 6 of 32 runs of a widget notebook here, two at a time per core,
    against 0 of 32 without widgets).
    """
    return Interactive(None if headless() else build(*args, **kwargs), what)


def _write_params_file(run: Any) -> None:
    """A run folder opened outside the runner (JupyterLab, plain papermill) gets the params.yaml that repeats it
    headless: `python -m workbench run NOTEBOOK -f <folder>/params.yaml` (an existing one is kept)."""
    path = Path(run.dir) / "params.yaml"
    if path.exists():
        return
    try:
        import yaml

        from workbench import atomic
        from workbench.manifest import redact

        text = (f"# parameters of {run.notebook} as this folder's notebook opened them; repeat with\n"
                f"#   python -m workbench run {run.notebook} -f {relative_text(str(path))}\n"
                + yaml.safe_dump(dict(run.parameters), sort_keys=False))
        atomic.write_text(path, redact(text))
    except Exception:  # a folder that cannot take it still runs
        pass


def _quiet_progress_bars() -> None:
    """No progress bars in a headless run's page: tqdm.auto (imported inside the functions that use it) gets a
    disabled bar, and the hub's and transformers' bars are switched off if they are loaded already."""
    for module, call in (("transformers.utils.logging", "disable_progress_bar"),
                         ("huggingface_hub.utils", "disable_progress_bars")):
        loaded = sys.modules.get(module)
        if loaded is not None and hasattr(loaded, call):
            getattr(loaded, call)()
    try:
        import tqdm.auto
        import tqdm.autonotebook
        import tqdm.std
    except ImportError:  # pragma: no cover
        return

    class QuietBar(tqdm.std.tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    tqdm.auto.tqdm = QuietBar  # type: ignore[misc]
    tqdm.autonotebook.tqdm = QuietBar  # type: ignore[misc]


def finish(run: Any) -> None:
    """Close the run's warning capture and show its summary (collapsed) at the end of the page."""
    log = _ACTIVE.pop("log", None)
    if log is None:
        return
    if hasattr(sys.stderr, "flush"):
        sys.stderr.flush()
    log.close()
    if _in_kernel() and log.kinds:
        from IPython.display import HTML, display

        display(HTML(log.summary_html()))


def _in_kernel() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    from IPython import get_ipython

    return get_ipython() is not None and "ipykernel" in sys.modules


# ---- tables for reading -----------------------------------------------------------------------------------

class Table:
    """A results table shown for reading: human units, rounded, wide tables split into column groups that
    each repeat the key columns. `repr` gives the text form; notebooks show the HTML."""

    def __init__(self, table: Any, key: list[str] | None = None, max_columns: int = 8,
                 transpose: bool | None = None, digits: int = 3, links: dict[str, list[str]] | None = None) -> None:
        import pandas as pd

        from workbench.units import humanize_table

        if isinstance(table, dict):
            table = pd.Series(table, dtype=object)
        if isinstance(table, pd.Series):  # name / value rows, each value in the unit its name says
            from workbench.units import format_cell, readable_name

            table = pd.DataFrame({"name": [readable_name(str(k)) for k in table.index],
                                  "value": [format_cell(_nested(v), str(k), digits) for k, v in table.items()]})
        self.raw = table
        self.shown = humanize_table(table, digits).map(relative_text)
        self.links = {}  # shown column -> (text, href) per row, drawn as links in the HTML
        for column, hrefs in (links or {}).items():
            if column in table.columns and len(hrefs) == len(table):
                from workbench.units import readable_name

                name = readable_name(column) if readable_name(column) in self.shown.columns else column
                self.links[name] = list(zip(self.shown[name], hrefs))
        key = key if key is not None else [str(table.columns[0])] if len(table.columns) else []
        self.key = [c for c in key if c in table.columns]
        wide = len(table.columns) > max_columns
        self.transpose = transpose if transpose is not None else (wide and len(table) <= 3)
        self.max_columns = max_columns

    def groups(self) -> list[Any]:
        shown = self.shown
        if self.transpose:  # few rows, many columns: one column per row, headed by its key
            from workbench.units import readable_name

            key = next((readable_name(k) for k in self.key if readable_name(k) in shown.columns), None)
            return [shown.set_index(key).T if key and shown[key].is_unique else shown.T]
        if len(shown.columns) <= self.max_columns:
            return [shown]
        from workbench.units import readable_name

        keys = [readable_name(k) if readable_name(k) in shown.columns else k for k in self.key]
        rest = [c for c in shown.columns if c not in keys]
        width = max(1, self.max_columns - len(keys))
        return [shown[keys + rest[i:i + width]] for i in range(0, len(rest), width)]

    def _repr_html_(self) -> str:
        if self.shown.empty:
            return "<p><i>(no rows)</i></p>"
        import html

        parts = []
        for group in self.groups():
            cells = group.copy()
            for column in cells.columns:
                pairs = self.links.get(column) if not self.transpose else None
                cells[column] = ([_link(text, href) for text, href in pairs] if pairs
                                 else [html.escape(str(v)) for v in cells[column]])
            parts.append(cells.to_html(classes="wb-table", index=self.transpose or not _plain_index(group),
                                       escape=False, na_rep="", border=0))
        return "<br>".join(parts)

    def __repr__(self) -> str:
        if self.shown.empty:
            return "(no rows)"
        return "\n\n".join(g.to_string(index=self.transpose or not _plain_index(g)) for g in self.groups())


def _link(text: Any, href: str) -> str:
    import html

    return f'<a href="{html.escape(href)}">{html.escape(str(text))}</a>' if href else html.escape(str(text))


def _plain_index(frame: Any) -> bool:
    import pandas as pd

    return isinstance(frame.index, pd.RangeIndex)


def _nested(value: Any) -> Any:
    """A dict inside a name / value table reads as key: value pairs."""
    if isinstance(value, dict):
        from workbench.units import format_cell

        return "; ".join(f"{k}: {format_cell(v, str(k))}" for k, v in value.items())
    return value


def relative_text(value: Any) -> Any:
    """Text with this machine's folders taken out: paths under the repository become relative, the home
    folder becomes ~ (a shared page shows no absolute path of the author's machine).

    >>> relative_text(str(_ROOT / "outputs" / "x.mp4"))
    'outputs/x.mp4'
    """
    if not isinstance(value, str):
        return value
    text = value.replace(str(_ROOT) + "/", "").replace(str(_ROOT), ".")
    home = str(Path.home())
    if home not in ("/", "") and home + "/" in text:
        text = text.replace(home + "/", "~/")
    return text


def show(table: Any, key: list[str] | None = None, max_columns: int = 8, transpose: bool | None = None,
         links: dict[str, list[str]] | None = None) -> Table:
    """`table` (DataFrame, Series or dict) for reading; the last line of a notebook cell. `links` maps a column
    to one relative href per row (e.g. each compared run's notebook.html)."""
    return Table(table, key=key, max_columns=max_columns, transpose=transpose, links=links)


# ---- provenance -------------------------------------------------------------------------------------------

def weights_label(source: Any) -> str:
    """What kind of weights a `source` parameter names: tiny twin, trained twin, random, or real (hub/local).

    >>> weights_label("tiny"), weights_label("trained"), weights_label("random")
    ('tiny twin', 'trained twin', 'random weights')
    >>> weights_label("Qwen/Qwen2-VL-2B-Instruct")
    'hub Qwen/Qwen2-VL-2B-Instruct'
    """
    text = str(source or "")
    names = {"tiny": "tiny twin", "trained": "trained twin", "random": "random weights"}
    if text in names:
        return names[text]
    if not text:
        return "unknown"
    if text.startswith(("/", ".", "~")) or Path(text).exists():
        return f"local {Path(text).name}"
    return f"hub {text}"


WEIGHT_KINDS = ("real weights", "trained twin", "tiny twin", "random weights")  # most to least telling


def weights_kind(source: Any) -> str:
    """The kind of weights a `source` names, for grouping runs: real weights (hub id or local folder), trained
    twin, tiny twin or random weights.

    >>> weights_kind("tiny"), weights_kind("Qwen/Qwen2-VL-2B-Instruct"), weights_kind(None)
    ('tiny twin', 'real weights', 'unknown')
    """
    if source is None or (isinstance(source, float) and source != source) or source == "":
        return "unknown"
    label = weights_label(source)
    return label if label in WEIGHT_KINDS else "real weights"


def provenance_rows(record: dict[str, Any], run_dir: Path, base: Path) -> list[tuple[str, str]]:
    """The header's (label, value) rows from a run's manifest; paths relative to `base` (the page's folder)."""
    import os

    params = record.get("parameters") or {}
    git = record.get("git") or {}
    commit = str(git.get("commit") or "unknown")[:10]
    dirty = git.get("dirty")
    sources = params.get("source")
    weights = record.get("weights") or []
    revisions = ", ".join(
        f"{w.get('model')}: " + (f"revision {w['revision']}" if w.get("revision") else
                                 f"sha256 {str(w['sha256'])[:12]}" if w.get("sha256") else "not recorded")
        for w in weights if isinstance(w, dict))
    versions = record.get("versions") or {}
    picked = ", ".join(f"{name} {versions[name]}" for name in ("python", "torch", "transformers", "bitsandbytes")
                       if isinstance(versions, dict) and versions.get(name))
    device = _device_text(record)
    manifest_link = os.path.relpath(Path(run_dir) / "manifest.json", base)
    rows = [("notebook", str(record.get("notebook", ""))), ("run", str(record.get("run_id", Path(run_dir).name))),
            ("commit", commit + (" (uncommitted changes)" if dirty else "" if dirty is False else " (dirty: unknown)")),
            ("weights", weights_label(sources) if sources is not None else "no model loaded by this notebook")]
    if revisions:
        rows.append(("weights revision", revisions))
    rows += [("device", device), ("versions", picked or "see manifest"),
             ("date", str(record.get("started_at", ""))[:19].replace("T", " ")),
             ("status", str(record.get("status", "running"))), ("manifest", manifest_link)]
    return rows


def _device_text(record: dict[str, Any]) -> str:
    """The machine a run used: its GPUs, else its CPU (and the device parameter when one was given)."""
    hardware = record.get("hardware") or {}
    params = record.get("parameters") or {}
    gpus = hardware.get("gpus") or []
    names = [g.get("name", str(g)) if isinstance(g, dict) else str(g) for g in gpus]
    text = ", ".join(names) if names else (
        f"CPU ({hardware.get('cpu', 'unknown')}, {hardware.get('cpu_count', '?')} cores)")
    asked = params.get("device")
    return text + (f"; device parameter {asked}" if asked else "")


def provenance_html(record: dict[str, Any], run_dir: Path, base: Path) -> str:
    """The provenance header as HTML: one small table, with a link to the manifest."""
    import html

    cells = []
    for label, value in provenance_rows(record, run_dir, base):
        shown = (f'<a href="{html.escape(value)}">{html.escape(value)}</a>' if label == "manifest"
                 else html.escape(value))
        cells.append(f"<tr><th>{html.escape(label)}</th><td>{shown}</td></tr>")
    return f'<table class="dataframe wb-table wb-provenance">{"".join(cells)}</table>'


def provenance_markdown(record: dict[str, Any], run_dir: Path, base: Path) -> str:
    """The provenance header as a Markdown cell (the runner puts it at the top of the executed notebook)."""
    lines = ["| provenance | |", "|---|---|"]
    for label, value in provenance_rows(record, run_dir, base):
        value = value.replace("|", "\\|")
        lines.append(f"| {label} | [{value}]({value}) |" if label == "manifest" else f"| {label} | {value} |")
    found = read_warnings(run_dir)
    if found:
        total = sum(int(e.get("count", 1)) for e in found)
        lines.append(f"| library messages | {len(found)} kind(s), {total:,} in all: listed once at the end of the "
                     f"page and in {WARNINGS_LOG} |")
    return "\n".join(lines)


def add_header(notebook_text: str, record: dict[str, Any], run_dir: Path) -> str:
    """The executed notebook with a provenance cell after its title cell (once; an old one is replaced)."""
    import nbformat

    notebook = nbformat.reads(notebook_text, as_version=4)
    cell = nbformat.v4.new_markdown_cell(provenance_markdown(record, Path(run_dir), base=Path(run_dir)))
    cell.metadata["tags"] = ["provenance"]
    cell.pop("id", None)
    notebook.cells = [c for c in notebook.cells if "provenance" not in c.metadata.get("tags", [])]
    at = 1 if notebook.cells and notebook.cells[0].cell_type == "markdown" else 0
    notebook.cells.insert(at, cell)
    if notebook.nbformat_minor >= 5:
        import uuid

        cell["id"] = uuid.uuid4().hex[:8]
    return nbformat.writes(notebook)
