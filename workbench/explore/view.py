"""The explorer's widgets (ipywidgets, JupyterLab): controls, action buttons, status, progress and results.

Button callbacks only read the controls into a `Selection` and call the `Explorer`. Predict memory and
Save as run answer at once, in the callback. Load, probe, caption and attention run in one background
thread (`Job`), so the kernel keeps serving the page's other controls; Cancel asks the explorer to stop
it (see workbench.explore.controller). Results are shown through HTML and Image widgets, whose values can
be set from that thread (an Output widget's `with` block cannot: it captures by the kernel's current cell).
"""

from __future__ import annotations

import html
import json
import threading
import typing
from typing import Any, Callable

from workbench.explore import render
from workbench.explore.controller import ActionResult, Explorer
from workbench.explore.selection import Selection
from workbench.choices import TransformersEra
from workbench.models.base import Attention, Device, Dtype, Quantization

LONG_ACTIONS = ("load", "probe", "caption", "attention")
BUTTONS = {"load": "Load", "predict": "Predict memory", "probe": "Probe memory", "caption": "Caption per second",
           "attention": "Show attention", "save": "Save as run"}
PANELS = ("predict", "load", "probe", "caption", "attention")
# Short enough for ipywidgets' fixed tab width (longer titles were cut: "Captions per secor").
PANEL_TITLES = {"predict": "Predicted", "load": "Load", "probe": "Measured", "caption": "Captions",
                "attention": "Attention", "history": "History"}
FIGURES_PER_PANEL = 2
# Per-frame pixel budgets (Qwen-VL counts pixels in 28x28 patches); 0 keeps the processor's own.
PIXEL_OPTIONS = [("processor default", 0), ("128×28² = 100,352", 100352), ("256×28² = 200,704", 200704),
                 ("512×28² = 401,408", 401408), ("768×28² = 602,112", 602112),
                 ("1280×28² = 1,003,520", 1003520)]


class Job:
    """One background action at a time, in a daemon thread."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.action: str | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self, action: str, target: Callable[[], None]) -> None:
        self.action = action
        self.thread = threading.Thread(target=target, name=f"explorer-{action}", daemon=True)
        self.thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Join the running action; True when nothing is running any more."""
        if self.thread is not None:
            self.thread.join(timeout)
        return not self.running


class ExplorerView:
    """The widget front end of an `Explorer`; display it as a notebook cell's value."""

    def __init__(self, explorer: Explorer | None = None) -> None:
        import ipywidgets as w

        self.explorer = explorer or Explorer()
        self.job = Job()
        self.last_result: ActionResult | None = None
        self._quiet_attention = False
        wide = {"description_width": "110px"}

        self.video_from = w.ToggleButtons(options=[("probe video", "probe"), ("file or upload", "file")],
                                          description="video", style=wide)
        self.probe_video = w.Dropdown(options=_probe_names(), description="probe video", style=wide)
        self.video_path = w.Text(placeholder="/path/to/video.mp4", description="file", style=wide,
                                 layout=w.Layout(width="420px"))
        self.upload = w.FileUpload(accept="video/*,.mp4,.mkv,.mov,.webm,.avi", multiple=False,
                                   description="upload")
        self.model = w.Dropdown(options=_model_options(self.explorer.selection.model), description="model",
                                style=wide)
        self.source = w.Combobox(options=["tiny", "random"], description="weights", style=wide,
                                 placeholder="tiny, random, a hub id or a local folder")
        self.dtype = w.Dropdown(options=typing.get_args(Dtype), description="dtype", style=wide)
        self.quantization = w.Dropdown(options=typing.get_args(Quantization), description="quantization",
                                       style=wide)
        self.attn_implementation = w.Dropdown(options=typing.get_args(Attention), description="attention",
                                              style=wide)
        self.device = w.Dropdown(options=typing.get_args(Device), description="device", style=wide)
        self.allow_pickle = w.Checkbox(description="allow pickle weights (.pth/.bin)", indent=False)
        self.quantize_vision = w.Checkbox(description="quantize the vision tower too (bitsandbytes default)",
                                          indent=False)
        self.transformers_era = w.Dropdown(options=typing.get_args(TransformersEra), description="predict as",
                                           style=wide)
        self.model_options = w.Text(description="model options", style=wide,
                                    placeholder='JSON, e.g. {"token_kept_ratio": 0.4}')
        self.frames = w.IntSlider(min=1, max=64, description="frames", style=wide, continuous_update=False)
        self.max_pixels = w.Dropdown(options=_pixel_options(self.explorer.selection.max_pixels),
                                     description="pixels / frame", style=wide)
        self.max_new_tokens = w.IntSlider(min=1, max=128, description="new tokens", style=wide,
                                          continuous_update=False)
        self.window_s = w.BoundedFloatText(min=0.25, max=60.0, step=0.25, description="window (s)", style=wide)
        self.frames_per_window = w.IntSlider(min=1, max=8, description="frames / window", style=wide,
                                             continuous_update=False)
        self.batch_windows = w.IntSlider(min=1, max=32, description="windows / call", style=wide,
                                         continuous_update=False,
                                         tooltip="caption this many windows per generate call (same captions)")
        self.max_seconds = w.BoundedFloatText(min=0.0, max=36000.0, description="first seconds", style=wide,
                                              tooltip="caption only the first seconds (0: the whole video)")
        self.budget_gib = w.BoundedFloatText(min=0.0, max=4096.0, step=0.5, description="budget (GiB)",
                                             style=wide, tooltip="probe under this memory budget (0: none)")
        for name, control in self._controls().items():
            control.add_class(f"wb-control-{name}")

        self.buttons = {action: w.Button(description=label, button_style="primary" if action == "predict" else "",
                                         layout=w.Layout(width="auto"))
                        for action, label in BUTTONS.items()}
        self.cancel_button = w.Button(description="Cancel", button_style="warning", disabled=True,
                                      layout=w.Layout(width="auto"))
        for action, button in self.buttons.items():
            button.add_class(f"wb-action-{action}")
            button.on_click(lambda _button, action=action: self.on_action(action))
        self.cancel_button.add_class("wb-action-cancel")
        self.cancel_button.on_click(lambda _button: self.on_cancel())
        self.upload.observe(self._on_upload, names="value")

        self.progress = w.IntProgress(value=0, min=0, max=1, layout=w.Layout(width="260px"))
        self.progress_text = w.Label("")
        self.status = w.HTML(render.status_html("ok", "Ready. Predict memory needs no download or load."))
        self.status.add_class("wb-status-area")

        self.panels = {name: w.HTML("") for name in PANELS}
        self.images = {name: [w.Image(format="png", layout=w.Layout(display="none", max_width="100%"))
                              for _ in range(FIGURES_PER_PANEL)] for name in PANELS}
        self.word = w.Dropdown(options=[("whole caption", -1)], description="word")
        self.layer = w.Dropdown(options=["mean"], description="layer")
        self.head = w.Dropdown(options=["mean"], description="head")
        for control in (self.word, self.layer, self.head):
            control.observe(self._on_attention_choice, names="value")
        self.history = w.HTML("")
        boxes = []
        for name in PANELS:
            self.panels[name].add_class(f"wb-panel-{name}")
            extra = [w.HBox([self.word, self.layer, self.head])] if name == "attention" else []
            boxes.append(w.VBox([self.panels[name], *extra, *self.images[name]]))
        self.tabs = w.Tab(children=[*boxes, self.history], titles=[*(PANEL_TITLES[p] for p in PANELS), "History"])

        self.show_selection(self.explorer.selection)
        self.widget = w.VBox([
            w.HTML("<b>Video-captioning explorer</b>: choose a video and a model, then an action."),
            w.HBox([self.video_from, self.probe_video]),
            w.HBox([self.video_path, self.upload]),
            w.HBox([w.VBox([self.model, self.source, self.dtype, self.quantization, self.quantize_vision,
                            self.attn_implementation, self.device, self.transformers_era, self.model_options,
                            self.allow_pickle]),
                    w.VBox([self.frames, self.max_pixels, self.max_new_tokens, self.frames_per_window,
                            self.batch_windows, self.window_s, self.max_seconds, self.budget_gib])]),
            w.HBox([*(self.buttons[a] for a in ("load", "predict", "probe", "caption", "attention")),
                    self.cancel_button, self.buttons["save"]]),
            w.HBox([self.progress, self.progress_text]),
            self.status,
            self.tabs,
        ])

    # ---- selection <-> controls ----------------------------------------------------------------
    def _controls(self) -> dict[str, Any]:
        return {"model": self.model, "source": self.source, "dtype": self.dtype, "quantization": self.quantization,
                "attn_implementation": self.attn_implementation, "device": self.device, "frames": self.frames,
                "max_pixels": self.max_pixels, "max_new_tokens": self.max_new_tokens, "window_s": self.window_s,
                "frames_per_window": self.frames_per_window, "batch_windows": self.batch_windows,
                "max_seconds": self.max_seconds,
                "budget_gib": self.budget_gib, "video_path": self.video_path, "probe_video": self.probe_video,
                "allow_pickle": self.allow_pickle, "model_options": self.model_options,
                "quantize_vision": self.quantize_vision, "transformers_era": self.transformers_era}

    def show_selection(self, selection: Selection) -> None:
        """Set the controls to a selection."""
        if selection.video in self.probe_video.options:
            self.video_from.value, self.probe_video.value = "probe", selection.video
        else:
            self.video_from.value, self.video_path.value = "file", selection.video
        if selection.model not in self.model.options:
            self.model.options = _model_options(selection.model)
        if selection.max_pixels not in [value for _, value in self.max_pixels.options]:
            self.max_pixels.options = _pixel_options(selection.max_pixels)
        self.frames.max = max(self.frames.max, selection.frames)
        self.max_new_tokens.max = max(self.max_new_tokens.max, selection.max_new_tokens)
        self.frames_per_window.max = max(self.frames_per_window.max, selection.frames_per_window)
        self.batch_windows.max = max(self.batch_windows.max, selection.batch_windows)
        for name in ("model", "source", "dtype", "quantization", "attn_implementation", "device", "frames",
                     "max_pixels", "max_new_tokens", "window_s", "frames_per_window", "batch_windows",
                     "max_seconds", "budget_gib",
                     "quantize_vision", "transformers_era"):
            getattr(self, name).value = getattr(selection, name)
        self.allow_pickle.value = selection.allow_pickle
        self.model_options.value = json.dumps(selection.model_options) if selection.model_options else ""

    def read_selection(self) -> Selection:
        """The controls as a Selection (validated; raises ValueError / TypeError for a bad value)."""
        video = self.probe_video.value if self.video_from.value == "probe" else self.video_path.value.strip()
        return self.explorer.selection.replace(
            video=video, model=self.model.value, source=self.source.value.strip(), dtype=self.dtype.value,
            quantization=self.quantization.value, attn_implementation=self.attn_implementation.value,
            device=self.device.value, frames=int(self.frames.value), max_pixels=int(self.max_pixels.value),
            max_new_tokens=int(self.max_new_tokens.value), window_s=float(self.window_s.value),
            frames_per_window=int(self.frames_per_window.value), batch_windows=int(self.batch_windows.value),
            max_seconds=float(self.max_seconds.value),
            budget_gib=float(self.budget_gib.value), allow_pickle=bool(self.allow_pickle.value),
            quantize_vision=bool(self.quantize_vision.value), transformers_era=self.transformers_era.value,
            model_options=_parse_options(self.model_options.value))

    def _apply_selection(self) -> bool:
        try:
            self.explorer.selection = self.read_selection()
        except (ValueError, TypeError) as err:
            self.set_status("error", f"Invalid setting: {err}")
            return False
        return True

    # ---- callbacks ---------------------------------------------------------------------------------
    def on_action(self, action: str) -> None:
        """A button: quick actions answer in the callback, long ones start in the background."""
        if action in LONG_ACTIONS:
            self.start(action)
            return
        if not self._apply_selection():
            return
        self.set_status("running", f"{BUTTONS[action]}…")
        result = self.explorer.save_as_run() if action == "save" else self.explorer.perform(action)
        self.show_result(result)

    def start(self, action: str) -> bool:
        """Start a long action in the background thread; False if another is running or a setting is bad."""
        if self.job.running:
            self.set_status("error", f"{BUTTONS[self.job.action]} is still running: wait for it, or press Cancel.")
            return False
        if not self._apply_selection():
            return False
        self._set_busy(True)
        self.set_status("running", f"{BUTTONS[action]}… (the other controls stay usable; Cancel stops it)")
        self._progress(0, 0, f"{BUTTONS[action]}…")

        def work() -> None:
            try:
                result = self.explorer.perform(action, progress=self._progress)
            except BaseException as err:  # perform() never raises; this only guards the thread
                result = ActionResult(action, "error", f"Unexpected error in the background thread: {err}")
            finally:
                self._set_busy(False)
            self.show_result(result)

        self.job.start(action, work)
        return True

    def on_cancel(self) -> None:
        if not self.job.running:
            self.set_status("skipped", "Nothing is running.")
            return
        self.set_status("running", f"Cancelling {BUTTONS[self.job.action]}…")
        self.explorer.cancel()

    def wait(self, timeout: float | None = None) -> ActionResult | None:
        """Wait for the background action (tests); the last result shown."""
        self.job.wait(timeout)
        return self.last_result

    def _on_upload(self, change: dict[str, Any]) -> None:
        files = change["new"]
        if not files:
            return
        item = files[0]
        path = self.explorer.use_upload(item["name"], bytes(item["content"]))
        self.video_path.value = str(path)
        self.video_from.value = "file"
        self.set_status("ok", f"Uploaded {item['name']} ({len(item['content']):,} bytes), kept as {path}.")

    def _on_attention_choice(self, change: dict[str, Any]) -> None:
        if self._quiet_attention or self.explorer.maps is None:
            return
        try:
            figure = self.explorer.attention_figure(self.word.value, str(self.layer.value), str(self.head.value))
        except Exception as err:  # a bad choice is a status message
            self.set_status("error", f"Cannot show that attention view: {err}")
            return
        self._set_image(self.images["attention"][0], figure)

    # ---- showing -------------------------------------------------------------------------------
    def set_status(self, status: str, message: str) -> None:
        self.status.value = render.status_html(status, message)

    def show_result(self, result: ActionResult) -> None:
        """Fill the action's panel (table, figures, attention choices) first, then say it finished: the status
        line never reads ok while its panel is still empty."""
        self.last_result = result
        self.history.value = _history_html(self.explorer.history)
        if result.action in self.panels:
            self.panels[result.action].value = render.result_html(result)
            figures = list(result.figures.values())
            for image, figure in zip(self.images[result.action], figures + [None] * FIGURES_PER_PANEL):
                self._set_image(image, figure)
            self.tabs.selected_index = PANELS.index(result.action)
            if result.action == "attention" and result.ok:
                self._fill_attention_choices()
        self.set_status(result.status, result.message)
        self._progress(1 if result.ok else 0, 1, f"{BUTTONS.get(result.action, result.action)}: {result.status} "
                                                 f"({result.seconds:.1f} s)")

    def _set_image(self, image: Any, figure: Any) -> None:
        if figure is None:
            image.layout.display = "none"
            return
        image.value = render.png_bytes(figure)
        image.layout.display = None

    def _fill_attention_choices(self) -> None:
        maps, selection = self.explorer.maps, self.explorer.selection
        words = maps.capture.words
        n_heads = maps.capture.attention.shape[2]
        self._quiet_attention = True
        try:
            self.word.options = [("whole caption", -1)] + [(f"{w}: {t!r}", int(w))
                                                           for w, t in zip(words["word"], words["text"])]
            self.layer.options = ["mean", *(str(layer) for layer in maps.capture.layers)]
            self.head.options = ["mean", *(str(h) for h in range(n_heads))] if n_heads > 1 else ["mean"]
            self.word.value = selection.show_word if selection.show_word < len(words) else -1
            self.layer.value = selection.show_layer if selection.show_layer in self.layer.options else "mean"
            self.head.value = selection.show_head if selection.show_head in self.head.options else "mean"
        finally:
            self._quiet_attention = False

    def _progress(self, done: int, total: int, text: str) -> None:
        self.progress.bar_style = "" if total else "info"
        self.progress.max = max(1, total)
        self.progress.value = done if total else 0
        self.progress_text.value = text

    def _set_busy(self, busy: bool) -> None:
        for action in LONG_ACTIONS:
            self.buttons[action].disabled = busy
        self.cancel_button.disabled = not busy

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data = self.widget._repr_mimebundle_(**kwargs)
        data["text/plain"] = "Interactive explorer: open this notebook in JupyterLab (make lab) to use it."
        return data


def _probe_names() -> list[str]:
    from workbench.inputs import PROBE_PREFIX
    from workbench.probe_videos import SCENARIOS

    return [PROBE_PREFIX + name for name in SCENARIOS]


def _model_options(current: str) -> list[str]:
    from workbench.models import model_ids

    ids = model_ids(include_unsupported=False)
    return ids if current in ids else [current, *ids]


def _pixel_options(current: int) -> list[tuple[str, int]]:
    values = [value for _, value in PIXEL_OPTIONS]
    return PIXEL_OPTIONS if current in values else [*PIXEL_OPTIONS, (f"{current:,}", current)]


def _history_html(history: list[ActionResult]) -> str:
    rows = "".join(f"<tr><td>{r.action}</td><td>{r.status}</td><td>{r.seconds:.1f}</td>"
                   f"<td>{html.escape(r.message)}</td></tr>" for r in reversed(history[-50:]))
    return f"<table><tr><th>action</th><th>status</th><th>s</th><th>message</th></tr>{rows}</table>"


def _parse_options(text: str) -> dict[str, Any]:
    """The model-options box: empty, or a JSON object.

    >>> _parse_options(' {"token_kept_ratio": 0.4} ')
    {'token_kept_ratio': 0.4}
    >>> _parse_options("ratio=0.4")
    Traceback (most recent call last):
    ...
    ValueError: model options must be a JSON object such as {"token_kept_ratio": 0.4}, got 'ratio=0.4'
    """
    text = text.strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise ValueError(f'model options must be a JSON object such as {{"token_kept_ratio": 0.4}}, got {text!r}')
    return value
