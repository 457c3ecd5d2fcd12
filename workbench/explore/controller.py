"""The explorer's state and its actions, usable without widgets (tests and the notebook call it directly).

One method per action: `load`, `predict`, `probe`, `caption`, `attention`, `save_as_run`. Each takes the
current `Selection`, never raises (an error becomes an `ActionResult` with a plain-words message and the
memory it held is freed), and returns the tables, JSON records and figures it made, which
`workbench.explore.runs.save_results` writes into a run folder.

Cancelling (`cancel()`, from any thread): a probe's child process is killed; captioning stops between
windows; load and attention cannot be interrupted inside torch, so their result is dropped when the step
they are in returns.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from workbench.explore import messages
from workbench.explore.selection import ACTIONS, Selection
from workbench.units import format_bytes

if TYPE_CHECKING:
    import subprocess

    from matplotlib.figure import Figure

    from workbench.attention.aggregate import AttentionMaps
    from workbench.models.base import LoadedModel

# progress(done, total, text): total 0 means "no count known" (an indeterminate step)
Progress = Callable[[int, int, str], None]


class Cancelled(Exception):
    """The user cancelled the running action; the message says what was kept."""


class ExploreError(RuntimeError):
    """Raised by Explorer.raise_for_errors (headless runs): the failed actions' messages."""


@dataclass(eq=False)
class ActionResult:
    """One action's outcome: status ok | error | cancelled | skipped, a plain-words message, and its data."""

    action: str
    status: str
    message: str
    tables: dict[str, Any] = field(default_factory=dict)  # name -> pandas DataFrame (results/<name>.csv)
    records: dict[str, Any] = field(default_factory=dict)  # name -> JSON-able (results/<name>.json)
    figures: dict[str, "Figure"] = field(default_factory=dict)  # name -> matplotlib figure (figures/<name>.png)
    selection: Selection | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _quiet(done: int, total: int, text: str) -> None:
    return None


# pyplot's figure registry is not thread-safe: a background action and a quick one (predict, an attention
# redraw) may draw at the same time.
_FIGURE_LOCK = threading.Lock()


def _figure(draw: Callable[..., "Figure"], *args: Any) -> "Figure":
    """Draw a figure and detach it from pyplot: kept for saving and display, never shown by the inline
    backend at the end of whatever cell happens to be running."""
    import matplotlib.pyplot as plt

    with _FIGURE_LOCK:
        figure = draw(*args)
        plt.close(figure)
    return figure


class Explorer:
    """Holds the selection, the loaded model and every action's latest result."""

    def __init__(self, selection: Selection | None = None) -> None:
        self.selection = selection or Selection()
        self.results: dict[str, ActionResult] = {}  # latest result per action
        self.history: list[ActionResult] = []  # every result, in order
        self.loaded: "LoadedModel | None" = None
        self._loaded_key: tuple[Any, ...] | None = None
        self.maps: "AttentionMaps | None" = None  # the last attention capture (for word/layer/head redraws)
        self.cancel_event = threading.Event()
        self._probe_process: "subprocess.Popen | None" = None
        self._video_info: dict[str, tuple[int, int]] = {}  # video path -> (height, width)

    # ---- the actions ---------------------------------------------------------------------------
    def load(self, progress: Progress | None = None) -> ActionResult:
        """Load the selected model (kept for caption and attention; a different selection reloads)."""
        return self._run("load", self._load, progress)

    def predict(self, progress: Progress | None = None) -> ActionResult:
        """Predicted peak memory per phase and component: analytic, instant, no weights or load needed."""
        return self._run("predict", self._predict, progress, long=False)

    def probe(self, progress: Progress | None = None) -> ActionResult:
        """Measure memory per phase in a fresh process (the kernel's own model would skew the peak)."""
        return self._run("probe", self._probe, progress)

    def caption(self, progress: Progress | None = None) -> ActionResult:
        """Caption the video window by window (one caption per window_s seconds)."""
        return self._run("caption", self._caption, progress)

    def attention(self, progress: Progress | None = None) -> ActionResult:
        """Caption `frames` uniformly sampled frames while capturing where each word looks."""
        return self._run("attention", self._attention, progress)

    def save_as_run(self, progress: Progress | None = None) -> ActionResult:
        """Write the current results as a run folder that `python -m workbench run 00_explore` repeats."""
        return self._run("save", self._save, progress, long=False)

    def perform(self, action: str, enabled: bool = True, progress: Progress | None = None) -> ActionResult:
        """Run an action by name; `enabled` False gives a 'skipped' result (the notebook's `actions` list)."""
        if action not in ACTIONS:
            return ActionResult(action, "error", f"Unknown action {action!r}; actions: {', '.join(ACTIONS)}")
        if not enabled:
            return ActionResult(action, "skipped", f"{action}: not in this run's actions")
        return getattr(self, action)(progress)

    def cancel(self) -> None:
        """Ask the running action to stop (safe from any thread); a probe's process is killed at once."""
        self.cancel_event.set()
        process = self._probe_process
        if process is not None and process.poll() is None:
            process.kill()  # our own child, by its handle

    def unload(self) -> None:
        if self.loaded is not None:
            self.loaded.unload()
        self.loaded, self._loaded_key, self.maps = None, None, None

    def raise_for_errors(self) -> None:
        """Raise ExploreError naming each failed action (a headless run then ends failed, or oom)."""
        failed = [r for r in self.results.values() if r.status in ("error", "cancelled")]
        if failed:
            raise ExploreError("; ".join(f"{r.action}: {r.message}" for r in failed))

    def current(self) -> list[ActionResult]:
        """Latest results that the current selection reproduces (their settings equal today's), in order."""
        latest = [self.results[action] for action in ACTIONS if action in self.results]
        return [r for r in latest
                if r.selection is not None and r.selection.key(r.action) == self.selection.key(r.action)]

    def stale(self) -> list[ActionResult]:
        """Latest results computed with other settings than the current selection's."""
        current = {id(r) for r in self.current()}
        return [self.results[a] for a in ACTIONS if a in self.results and id(self.results[a]) not in current]

    def use_upload(self, name: str, content: bytes) -> Path:
        """Keep an uploaded video under the cache (named by its hash) and select it."""
        import hashlib
        import re

        from workbench import atomic, paths

        digest = hashlib.sha256(content).hexdigest()[:16]
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name) or "upload.mp4"
        path = paths.cache_dir() / "uploads" / f"{digest}-{safe}"
        if not path.exists():
            atomic.write_bytes(path, bytes(content))
        self.selection = self.selection.replace(video=str(path))
        return path

    def attention_figure(self, word: int, layer: str, head: str) -> "Figure":
        """Redraw the frame strip for one word / layer / head of the last capture (no model call); the
        choice is kept in the selection and in the attention result, so a saved run shows the same."""
        from workbench import attention
        from workbench.attention import figures

        if self.maps is None:
            raise ValueError("no attention captured yet: run Show attention first")
        chosen_word, chosen_layer, chosen_head = attention.parse_selection(word, layer, head)
        figure = _figure(figures.frame_strip, self.maps, chosen_word, chosen_layer, chosen_head)
        self.selection = self.selection.replace(show_word=int(word), show_layer=str(layer), show_head=str(head))
        result = self.results.get("attention")
        if result is not None and result.ok:
            result.figures["attention_frame_strip"] = figure
            result.selection = self.selection
        return figure

    # ---- machinery -----------------------------------------------------------------------------
    def _run(self, action: str, body: Callable[[Selection, Progress], ActionResult], progress: Progress | None,
             long: bool = True) -> ActionResult:
        """Run `body` with a snapshot of the selection; every exception becomes a result."""
        if long:
            self.cancel_event.clear()
        selection = self.selection
        start = time.perf_counter()
        try:
            result = body(selection, progress or _quiet)
        except Cancelled as err:
            result = ActionResult(action, "cancelled", str(err))
        except Exception as err:  # every failure is a status message; the kernel stays usable
            from workbench.models.base import free_memory

            if messages.is_out_of_memory(err):
                self.unload()  # the model is what holds the memory
            free_memory()
            result = ActionResult(action, "error", messages.explain(err, action))
        result.selection = selection
        result.seconds = time.perf_counter() - start
        if action in ACTIONS:
            self.results[action] = result
        self.history.append(result)
        return result

    def _check_cancel(self, what: str) -> None:
        if self.cancel_event.is_set():
            raise Cancelled(what)

    def video_path(self, selection: Selection) -> Path:
        from workbench import inputs

        return inputs.resolve_video(selection.video, selection.seed)

    def frame_size(self, selection: Selection) -> tuple[int, int]:
        """(height, width) of the selected video (read once per path)."""
        from workbench import video

        path = str(self.video_path(selection))
        if path not in self._video_info:
            info = video.probe(path)
            self._video_info[path] = (info.height, info.width)
        return self._video_info[path]

    def probe_config(self, selection: Selection) -> Any:
        """The memory probe / predictor configuration of a selection (frame size from its video)."""
        from workbench.memory import ProbeConfig
        from workbench.units import from_gib

        height, width = self.frame_size(selection)
        return ProbeConfig(model=selection.model, load=selection.load, frames=selection.frames, height=height,
                           width=width, max_new_tokens=selection.max_new_tokens,
                           budget_bytes=from_gib(selection.budget_gib) or None, seed=selection.seed)

    def ensure_loaded(self, selection: Selection, progress: Progress) -> "LoadedModel":
        """The loaded model for `selection`, loading it (after unloading another) when needed."""
        from workbench import models

        key = selection.key("load")
        if self.loaded is not None and self._loaded_key == key:
            return self.loaded
        self.unload()
        progress(0, 0, f"loading {selection.model} ({selection.source})")
        loaded = models.load(selection.model, selection.load)  # sets the model options too
        if self.cancel_event.is_set():
            loaded.unload()
            raise Cancelled("Load cancelled: the model was loaded, then dropped.")
        self.loaded, self._loaded_key = loaded, key
        return loaded

    # ---- action bodies -------------------------------------------------------------------------
    def _load(self, selection: Selection, progress: Progress) -> ActionResult:
        import pandas as pd

        loaded = self.ensure_loaded(selection, progress)
        report = loaded.report.to_dict()
        progress(1, 1, "loaded")
        message = (f"Loaded {report['model_id']} ({report['family']}) from {report['source']} in "
                   f"{report['seconds']:.1f} s: {report['n_params']:,} parameters, "
                   f"{format_bytes(report['memory_bytes'])} "
                   f"of weights on {report['device']} ({report['dtype']}, quantization {report['quantization']}, "
                   f"{report['attn_implementation']} attention).")
        return ActionResult("load", "ok", message, tables={"load_report": pd.DataFrame([report])},
                            records={"load_report": report})

    def _predict(self, selection: Selection, progress: Progress) -> ActionResult:
        import pandas as pd

        from workbench import memory
        from workbench.memory import figures

        config = self.probe_config(selection).replace(budget_bytes=None)
        device = memory.resolve_device(selection.device)
        era = {"transformers_era": selection.transformers_era}
        predicted, breakdown = memory.predict_grid([config], device=device, **era)
        prediction = memory.predict_config(config, device, **era)
        phases = pd.DataFrame(prediction.rows())
        figure = _figure(figures.breakdown_bars, breakdown)
        parts = {k: v for k, v in prediction.breakdown.items() if k != "weights"}
        pixels = f", at most {selection.max_pixels:,} pixels per frame" if selection.max_pixels else ""
        message = (f"Predicted peak {format_bytes(prediction.peak_bytes)} in the {prediction.peak_phase} phase for "
                   f"{selection.frames} frames of {config.width}x{config.height}{pixels} on {device}: weights "
                   f"{format_bytes(prediction.weights_bytes)}")
        if parts:
            message += f", largest other part {prediction.dominant} ({format_bytes(parts[prediction.dominant])})"
        message += f"; {prediction.tokens['visual_tokens']:,} visual tokens."
        if prediction.notes:
            message += " Note: " + "; ".join(prediction.notes) + "."
        progress(1, 1, "predicted")
        return ActionResult("predict", "ok", message,
                            tables={"predicted_memory": predicted, "predicted_phases": phases,
                                    "predicted_breakdown": breakdown},
                            records={"prediction": prediction.as_dict()},
                            figures={"predicted_breakdown": figure})

    def _probe(self, selection: Selection, progress: Progress) -> ActionResult:
        from workbench import memory

        config = self.probe_config(selection)
        progress(0, 0, f"measuring {selection.model} in a fresh process")

        def started(process: "subprocess.Popen") -> None:
            self._probe_process = process
            if self.cancel_event.is_set():  # cancelled while the process was starting
                process.kill()

        try:
            result = memory.run_probe(config, timeout_s=selection.probe_timeout_s or None, on_start=started)
        finally:
            self._probe_process = None
        self._check_cancel("Probe cancelled: its process was stopped, nothing was measured.")
        progress(1, 1, "measured")
        status = "ok" if result["status"] == "ok" else "error"
        return ActionResult("probe", status, messages.probe_message(result),
                            tables={"probe_measured": memory.measured_table([result]),
                                    "probe_phases": memory.phase_table([result])},
                            records={"probe": result})

    def _caption(self, selection: Selection, progress: Progress) -> ActionResult:
        from workbench import inputs
        from workbench.quality import figures, report, timeline

        path = self.video_path(selection)
        self.frame_size(selection)  # a bad video fails here, before a model is loaded
        loaded = self.ensure_loaded(selection, progress)
        self._check_cancel("Captioning cancelled before it started.")
        settings = timeline.TimelineSettings(window_s=selection.window_s, frames_per_window=selection.frames_per_window,
                                             max_seconds=selection.max_seconds, max_new_tokens=selection.max_new_tokens,
                                             seed=selection.seed, batch_windows=selection.batch_windows)

        def window_done(done: int, total: int) -> None:
            progress(done, total, f"window {done} of {total}")
            self._check_cancel(f"Captioning cancelled after {done} of {total} windows; nothing was kept.")

        captioned = timeline.caption_timeline(loaded, path, settings, progress=False, on_window=window_done)
        per_window = report.per_window(captioned.table, inputs.ground_truth_for(path))
        figure = _figure(figures.timeline_view, captioned.table, captioned.thumbnails, per_window)
        counts = captioned.table["status"].value_counts().to_dict()
        n_rows = len(captioned.table)
        message = (f"Captioned {n_rows} windows ({captioned.span_s:.1f} s of video) in {captioned.wall_s:.1f} s, "
                   f"{captioned.compute_per_video_s:.2f} s of compute per second of video: "
                   + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) + "; "
                   + f"{int(per_window['usable'].sum()) if 'usable' in per_window else 0} of {n_rows} captions "
                   f"usable (not empty, no error, not degenerate).")
        if captioned.peak_bytes:
            message += f" Peak memory {format_bytes(captioned.peak_bytes)} ({captioned.memory_kind})."
        errors = captioned.calls.loc[captioned.calls["status"] == "error", "error"]
        if len(errors):
            message += f" First failure: {messages.first_line(errors.iloc[0])}."
            if any(messages.is_out_of_memory(RuntimeError(e)) for e in errors):
                message += " " + messages.OOM_ADVICE
        status = "error" if n_rows and counts.get("error", 0) == n_rows else "ok"
        return ActionResult("caption", status, message,
                            tables={"timeline": captioned.table, "timeline_calls": captioned.calls,
                                    "timeline_metrics": per_window},
                            records={"captioning_cost": captioned.summary()},
                            figures={"timeline_view": figure})

    def _attention(self, selection: Selection, progress: Progress) -> ActionResult:
        from workbench import attention, video
        from workbench.attention import aggregate, figures
        from workbench.attention.capture import CaptureSettings
        from workbench.models.base import GenerationSettings

        path = self.video_path(selection)
        clip = video.sample_uniform(path, selection.frames)  # a bad video fails here, before a model is loaded
        loaded = self.ensure_loaded(selection, progress)
        self._check_cancel("Attention cancelled before it started.")
        progress(0, 0, f"captioning {selection.frames} frames with attention capture")
        generation = GenerationSettings(max_new_tokens=selection.max_new_tokens,
                                        min_new_tokens=min(selection.min_new_tokens, selection.max_new_tokens),
                                        seed=selection.seed)
        maps = attention.attend(loaded, clip.frames, clip.timestamps_s, generation=generation,
                                settings=CaptureSettings(heads="all"))
        self._check_cancel("Attention cancelled: the capture finished and was dropped.")
        summary = aggregate.summary(maps)
        if not summary["words"]:
            raise ValueError("the caption is empty, so there are no words to show attention for; "
                             "raise min_new_tokens")
        self.maps = maps
        word, layer, head = attention.parse_selection(selection.show_word, selection.show_layer, selection.show_head)
        strip = _figure(figures.frame_strip, maps, word, layer, head)
        per_word = _figure(figures.word_timeline, maps, layer, head)
        progress(1, 1, "captured")
        message = (f"Caption {summary['caption']!r}: {summary['words']} tokens over {summary['frames']} frames, "
                   f"{len(summary['layers_captured'])} layers captured. Over the caption, "
                   f"{summary['frame_focus']}; {summary['mean_visual_mass']:.0%} of its attention went to the video.")
        return ActionResult("attention", "ok", message,
                            tables={"attention_words": aggregate.word_summary(maps, layer, head),
                                    "attention_word_frames": aggregate.frame_table(maps, layer, head),
                                    "attention_heads": aggregate.head_table(maps)},
                            records={"attention_summary": summary},
                            figures={"attention_frame_strip": strip, "attention_word_timeline": per_word})

    def _save(self, selection: Selection, progress: Progress) -> ActionResult:
        from workbench.explore import runs

        saved = runs.save_as_run(self)
        included = ", ".join(r.action for r in saved.results) or "no actions"
        message = (f"Saved {included} as run {saved.dir}. Repeat it headless with: "
                   f"python -m workbench run 00_explore -f {saved.params_file}")
        if saved.left_out:
            message += (" Not saved (computed with other settings than the current ones; run them again to "
                        "include them): " + ", ".join(r.action for r in saved.left_out) + ".")
        return ActionResult("save", "ok", message, records={"run_dir": str(saved.dir),
                                                            "params_file": str(saved.params_file)})
