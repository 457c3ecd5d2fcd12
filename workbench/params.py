"""Notebook parameters: read the tagged `parameters` cell, check overrides before any kernel starts.

A parameters cell holds one typed literal per line with its help text as a trailing comment:

    frames: list[int] = [4, 8, 16]  # frame counts to probe

papermill only warns about unknown names and never checks types; `validate` makes both errors that
list the valid parameters, so a sweep of a hundred runs fails before its first kernel, not at run 57.
"""

from __future__ import annotations

import ast
import io
import json
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ParameterError(ValueError):
    """Bad parameters for a notebook; the message lists the valid ones."""


@dataclass(frozen=True)
class Parameter:
    name: str
    annotation: str  # source text of the type, e.g. "list[int]"
    default: Any
    help: str

    def check(self, value: Any) -> str | None:
        """None if `value` fits the annotation, else a short reason."""
        return _check(ast.parse(self.annotation, mode="eval").body, value)


def parameters_cell(notebook: dict) -> dict:
    """The notebook's single cell tagged `parameters`."""
    cells = [c for c in notebook.get("cells", []) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"expected exactly one cell tagged 'parameters', found {len(cells)}")
    return cells[0]


def read_notebook(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def notebook_parameters(path: str | Path) -> dict[str, Parameter]:
    """Parameters declared in a notebook's `parameters` cell, in order."""
    cell = parameters_cell(read_notebook(path))
    source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    return parse_parameters(source, origin=str(path))


def parse_parameters(source: str, origin: str = "<parameters cell>") -> dict[str, Parameter]:
    """Parse `name: type = literal  # help` lines; anything else is an error (derived values go below).

    >>> p = parse_parameters("frames: list[int] = [4, 8]  # frame counts to probe")
    >>> p["frames"].default, p["frames"].annotation, p["frames"].help
    ([4, 8], 'list[int]', 'frame counts to probe')
    """
    comments = {
        tok.start[0]: tok.string.lstrip("#").strip()
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    }
    params: dict[str, Parameter] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value):
            raise ParameterError(
                f"{origin}: line {node.lineno}: a parameters cell holds only `name: type = literal` lines"
            )
        try:
            default = ast.literal_eval(node.value)
        except ValueError as err:
            raise ParameterError(
                f"{origin}: parameter {node.target.id!r} must be a literal (derived values go in the next cell)"
            ) from err
        param = Parameter(node.target.id, ast.unparse(node.annotation), default,
                          comments.get(node.lineno, ""))
        problem = param.check(default)
        if problem:
            raise ParameterError(f"{origin}: default of {param.name!r} {problem}")
        params[param.name] = param
    return params


# Parameters renamed so that one name means one thing in every notebook and sweep (docs/parameters.md):
# notebook -> {old name: new name}. A file or override still spelling the old name fails with the new one.
RENAMED: dict[str, dict[str, str]] = {
    "00_video_input": {"video_name": "video", "n_frames": "frames", "max_pixels": "resize_max_pixels",
                       "beside_name": "beside_video", "mode": "sample_mode"},
    "01_load_models": {"video_name": "video", "n_frames": "frames"},
    "02_memory_probe": {"frames": "frame_counts", "max_pixels": "max_pixels_values",
                        "quantize_vision": "quantize_vision_values", "timeout_s": "probe_timeout_s"},
    "03_attention": {"video_name": "video", "n_frames": "frames"},
    "04_caption_quality": {"video_name": "video", "clip_frames": "frames"},
}


def renamed_to(notebook: str, name: str) -> str | None:
    """The current name of a parameter `notebook` took under an old name (None if it never did).

    >>> renamed_to("04_caption_quality", "video_name"), renamed_to("04_caption_quality", "video")
    ('video', None)
    """
    return RENAMED.get(Path(notebook).stem, {}).get(name)


def validate(params: dict[str, Parameter], values: dict[str, Any], notebook: str = "notebook") -> None:
    """Raise ParameterError for unknown names (naming the new name of a renamed one) or wrong types, listing
    the valid parameters."""
    problems = []
    for name, value in values.items():
        if name not in params:
            new = renamed_to(notebook, name)
            if new is not None and new in params:
                problems.append(f"parameter {name!r} was renamed to {new!r} (one name, one meaning: "
                                f"docs/parameters.md); write {new}: {value!r}")
            else:
                problems.append(f"unknown parameter {name!r}")
            continue
        reason = params[name].check(value)
        if reason:
            problems.append(f"parameter {name!r}={value!r} {reason}")
    if problems:
        raise ParameterError(f"{notebook}: " + "; ".join(problems) + "\n" + describe(params))


def describe(params: dict[str, Parameter]) -> str:
    """A table of parameters with types, defaults and help, for errors and `workbench params`."""
    lines = ["valid parameters:"]
    width = max((len(p.name) for p in params.values()), default=0)
    for p in params.values():
        lines.append(f"  {p.name:<{width}}  {p.annotation} = {p.default!r}" + (f"  # {p.help}" if p.help else ""))
    return "\n".join(lines)


RAW_HINT = "to pass it as text, use -r {name} VALUE (raw string, as papermill's -r)"


def parse_cli_value(text: str, name: str = "VALUE") -> Any:
    """A `-p NAME VALUE` value, read as YAML like papermill's -y (so `8` is int, `[1, 2]` a list).

    >>> parse_cli_value("8"), parse_cli_value("[1, 2]"), parse_cli_value("sdpa"), parse_cli_value("true")
    (8, [1, 2], 'sdpa', True)
    """
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ParameterError(f"-p {name} {text!r}: not valid YAML ({problem}); "
                             + RAW_HINT.format(name=name)) from None


def raw_hints(params: dict[str, Parameter], cli_values: dict[str, tuple[str, Any]]) -> list[str]:
    """Hints for `-p` values that YAML read as something other than the text typed, for parameters that
    take text (`-p prompt no` is False, `-p name 08` is 8): suggest `-r NAME VALUE`.

    >>> p = parse_parameters('prompt: str = ""  # text')
    >>> raw_hints(p, {"prompt": ("no", False)})
    ["-p prompt 'no' was read as YAML (bool False); to pass it as text, use -r prompt VALUE (raw string, as papermill's -r)"]
    """
    hints = []
    for name, (text, value) in cli_values.items():
        param = params.get(name)
        if param is None or isinstance(value, str) or param.check(text) is not None or param.check(value) is None:
            continue
        hints.append(f"-p {name} {text!r} was read as YAML ({type(value).__name__} {value!r}); "
                     + RAW_HINT.format(name=name))
    return hints


def load_yaml(path: str | Path, empty_ok: bool = False) -> dict[str, Any]:
    """A YAML mapping; a syntax error names the file, line and column, an empty file is an error."""
    import yaml

    text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        context = getattr(err, "context", None)
        raise ParameterError(f"{path}: {where}YAML syntax error: {problem}"
                             + (f" ({context})" if context else "")) from None
    if data is None:
        if empty_ok:
            return {}
        raise ParameterError(f"{path}: the file is empty (or only comments); write name: value lines, "
                             f"or leave out -f to run the notebook's defaults")
    if not isinstance(data, dict):
        raise ParameterError(f"{path}: a parameter file must be a mapping of name: value")
    return data


# ---- type checking of literal values against annotation ASTs --------------------------------------

_SCALARS = {"int": int, "float": (int, float), "str": str, "bool": bool}


def _check(node: ast.expr, value: Any) -> str | None:
    if isinstance(node, ast.Constant) and node.value is None:
        return None if value is None else "must be None"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # X | Y
        reasons = [_check(node.left, value), _check(node.right, value)]
        return None if None in reasons else f"must be {ast.unparse(node)}"
    if isinstance(node, ast.Name):
        if node.id == "Any":
            return None
        expected = _SCALARS.get(node.id)
        if expected is None:
            options = choice_options(node.id)
            if options is None:
                return f"has an unsupported type annotation {node.id!r}"
            return None if value in options else f"must be one of {list(options)}"
        if isinstance(value, bool) and node.id != "bool":
            return f"must be {node.id}, got bool"
        return None if isinstance(value, expected) else f"must be {node.id}, got {type(value).__name__}"
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        kind, inner = node.value.id, node.slice
        if kind == "Literal":
            options = [ast.literal_eval(e) for e in (inner.elts if isinstance(inner, ast.Tuple) else [inner])]
            return None if value in options else f"must be one of {options}"
        if kind == "list":
            if not isinstance(value, list):
                return f"must be a list, got {type(value).__name__}"
            for item in value:
                reason = _check(inner, item)
                if reason:
                    return f"item {item!r} {reason}"
            return None
        if kind == "dict":
            if not isinstance(value, dict):
                return f"must be a mapping, got {type(value).__name__}"
            key_type, value_type = inner.elts if isinstance(inner, ast.Tuple) else (inner, None)
            for key, item in value.items():
                reason = _check(key_type, key) or (value_type is not None and _check(value_type, item)) or None
                if reason:
                    return f"entry {key!r}: {reason}"
            return None
    return f"has an unsupported type annotation {ast.unparse(node)!r}"


def choice_options(name: str) -> tuple[Any, ...] | None:
    """The allowed values of a named choice type from workbench.choices (None if there is no such type).

    >>> choice_options("Quantization")
    ('none', '8bit', '4bit-nf4', '4bit-fp4')
    """
    import typing

    from workbench import choices

    alias = getattr(choices, name, None) if name in choices.__all__ else None
    return typing.get_args(alias) if typing.get_origin(alias) is typing.Literal else None
