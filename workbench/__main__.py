"""Command line: `python -m workbench {run,rerun,sweep,params,demo,probe-videos,models,train-twin}`.

Heavy libraries are imported inside the commands, so `--help` answers at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

EPILOG = """examples:
  python -m workbench params 04_caption_quality
  python -m workbench run 04_caption_quality -f params/04_caption_quality.smoke.yaml -p max_seconds 3
  python -m workbench run 03_attention -y "{model: qwen2-vl-7b, source: Qwen/Qwen2-VL-7B-Instruct}"
  python -m workbench sweep params/sweeps/caption_compare.smoke.yaml
  python -m workbench models --sizes

Run folders go under outputs/ (or --output-root DIR, or the WORKBENCH_OUTPUTS environment variable)."""


def _cli_overrides(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, tuple[str, Any]]]:
    """-y mappings, then -p values (read as YAML) and -r values (raw text), in the order given (as papermill
    applies them); also what each -p typed."""
    from workbench.params import ParameterError, parse_cli_value

    overrides: dict[str, Any] = {}
    typed: dict[str, tuple[str, Any]] = {}
    for text in getattr(args, "yaml", None) or []:
        mapping = parse_cli_value(text, "-y")
        if not isinstance(mapping, dict):
            raise ParameterError(f"-y {text!r}: must be a YAML mapping of parameter names to values, "
                                 f"e.g. -y \"{{frames: 8, quantization: 8bit}}\"")
        overrides.update(mapping)
    for flag, name, text in args.values or []:
        if flag == "-r":
            overrides[name] = text
            typed.pop(name, None)
        else:
            overrides[name] = parse_cli_value(text, name)
            typed[name] = (text, overrides[name])
    return overrides, typed


def _cmd_run(args: argparse.Namespace) -> int:
    from workbench import paths
    from workbench.params import ParameterError, notebook_parameters, raw_hints
    from workbench.runner import run_notebook

    overrides, typed = _cli_overrides(args)
    try:
        if args.prepare_only:  # papermill's dry run: validate and show what would run, start nothing
            return _prepare_only(args.notebook, args.file, overrides)
        result = run_notebook(args.notebook, args.file, overrides, cell_timeout_s=args.cell_timeout,
                              time_limit_s=args.time_limit, kernel_name=args.kernel, cwd=args.cwd, progress=not args.no_progress)
    except ParameterError as err:
        hints = raw_hints(notebook_parameters(paths.notebook_path(args.notebook)), typed)
        raise ParameterError("\n".join([str(err), *(f"hint: {h}" for h in hints)])) from None
    return _report_run(result)


def _prepare_only(notebook: str, params_file: str | None, overrides: dict[str, Any]) -> int:
    import yaml

    from workbench.runner import resolve_parameters

    nb_path, values = resolve_parameters(notebook, params_file, overrides)
    print(f"# {nb_path.stem}: parameters valid; nothing run (--prepare-only)")
    print(yaml.safe_dump(values, sort_keys=False).rstrip() if values else "# (every parameter at its default)")
    return 0


def _cmd_rerun(args: argparse.Namespace) -> int:
    from workbench.runner import rerun

    return _report_run(rerun(args.run_dir, cell_timeout_s=args.cell_timeout, time_limit_s=args.time_limit))


def _report_run(result: Any) -> int:
    from workbench.manifest import redact

    print(f"{result.status}: {result.dir}")
    if result.error:
        print(f"error: {redact(result.error)}", file=sys.stderr)
    if result.status == "interrupted":
        print(f"interrupted; to run it again: python -m workbench rerun {result.dir}", file=sys.stderr)
        return 130
    return 0 if result.ok else 1


def _seconds(text: str) -> float:
    """A positive number of seconds, for --time-limit."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return value


class _Value(argparse.Action):
    """-p NAME VALUE and -r NAME VALUE into one ordered list (a later flag for a name wins)."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option_string: Any = None) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        items.append(("-r" if option_string in ("-r", "--raw", "--parameters_raw") else "-p", *values))
        setattr(namespace, self.dest, items)


def _cmd_params(args: argparse.Namespace) -> int:
    from workbench import paths
    from workbench.params import describe, notebook_parameters

    path = paths.notebook_path(args.notebook)
    print(f"{path.stem} ({os.path.relpath(path)})")
    declared = notebook_parameters(path)
    print(describe(declared))
    allowed = {p.annotation: _allowed_values(p.annotation) for p in declared.values()}
    allowed = {name: values for name, values in allowed.items() if values}
    if allowed:
        print("allowed values:")
        for annotation, values in allowed.items():
            print(f"  {annotation}: {', '.join(values)}")
    return 0


def _allowed_values(annotation: str) -> list[str]:
    """The values a Literal type of workbench.choices allows, named in a parameter's annotation.

    >>> _allowed_values("list[Quantization]")[:3]
    ['none', '8bit', '4bit-nf4']
    >>> _allowed_values("int")
    []
    """
    import re
    import typing

    from workbench import choices

    found: list[str] = []
    for name in re.findall(r"[A-Z][A-Za-z0-9_]*", annotation):
        kind = getattr(choices, name, None)
        if kind is not None and typing.get_origin(kind) is typing.Literal:
            found += [str(v) for v in typing.get_args(kind) if str(v) not in found]
    return found


def _cmd_demo(args: argparse.Namespace) -> int:
    from workbench.demo import run_demo

    return 0 if run_demo(only=args.only, full=args.full) else 1


def _cmd_probe_videos(args: argparse.Namespace) -> int:
    from workbench.probe_videos import SCENARIOS, ensure_probe_videos

    for name, path in ensure_probe_videos(args.names or list(SCENARIOS), seed=args.seed).items():
        print(f"{name}: {path}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    if args.sizes:  # builds every architecture on the meta device: parameters and weight memory (slow)
        from workbench.models.catalog import print_catalog

        print_catalog()
        return 0
    from workbench.models.catalog import catalog

    rows = catalog(weights=False)
    print(f"{'model id':<30} {'status':<18} {'params':>8}  hub id / reason")
    for row in rows:
        published = row.get("published_params")
        params = f"{published / 1e9:.2f}B" if published and published >= 1e8 else (
            f"{published / 1e6:.1f}M" if published else "")
        detail = row["hub_id"] if row["status"] in ("ok", "trained twin") and row.get("hub_id") else row["reason"]
        detail = str(detail).splitlines()[0][:100] if detail else ""
        print(f"{row['model_id']:<30} {row['status']:<18} {params:>8}  {detail}")
    print("\nparams: published parameter counts; `models --sizes` builds each architecture (no weights) to count "
          "them and show weight memory per quantization")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    import pandas as pd

    from workbench.manifest import redact
    from workbench.runner import EXIT_INTERRUPTED
    from workbench.sweep import SweepInterrupted, run_sweep

    try:
        sweep_dir = run_sweep(args.file, executor=args.executor, workers=args.workers,
                              retry_failed=args.retry_failed, address=args.address)
    except SweepInterrupted as stopped:
        print(redact(str(stopped)), file=sys.stderr)
        return EXIT_INTERRUPTED
    import json

    runs = pd.read_csv(sweep_dir / "runs.csv")
    total = len(json.loads((sweep_dir / "sweep.json").read_text())["runs"])
    print(runs["status"].value_counts().to_string())
    if len(runs) < total:  # e.g. a run process stopped from outside: no record, redone on the next start
        print(f"{total - len(runs)} of {total} runs have no record; run the sweep again to do them",
              file=sys.stderr)
    print(f"index: {sweep_dir / 'index.html'}")
    return 0 if (runs["status"] == "ok").all() and len(runs) == total else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workbench", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Video-captioning workbench: run its notebooks headless (each into a run folder), sweeps of "
                    "them, and list models and parameters.")
    roots = argparse.ArgumentParser(add_help=False)
    roots.add_argument("--output-root", metavar="DIR", default=None,
                       help="root of the run folders (default outputs/, or $WORKBENCH_OUTPUTS)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", parents=[roots], help="execute a notebook headless into a run folder",
                         description="Execute a notebook headless into its own run folder. Option names follow "
                                     "papermill's; values are checked against the notebook's parameters cell "
                                     "before any kernel starts.")
    run.add_argument("notebook", help="notebook name (e.g. 00_video_input) or path")
    run.add_argument("-f", "--parameters_file", "--file", dest="file", metavar="FILE",
                     help="YAML parameter file (path, or name under params/)")
    run.add_argument("-y", "--parameters_yaml", dest="yaml", action="append", metavar="YAML",
                     help='parameters as a YAML mapping, e.g. -y "{frames: 8, quantization: 8bit}"')
    run.add_argument("-p", "--parameters", "--param", nargs=2, action=_Value, dest="values",
                     metavar=("NAME", "VALUE"),
                     help="override one parameter; VALUE is read as YAML (8, [1, 2], true, text)")
    run.add_argument("-r", "--parameters_raw", "--raw", nargs=2, action=_Value, dest="values",
                     metavar=("NAME", "VALUE"),
                     help="override one parameter with VALUE as a raw string (no YAML: 'no', '08', 'a: b')")
    run.add_argument("--prepare-only", action="store_true",
                     help="validate the parameters and print them; start no kernel and write no run folder")
    run.add_argument("--cwd", default=None, metavar="DIR",
                     help="working directory of the kernel (default: the repository)")
    run.add_argument("-k", "--kernel", default="python3", metavar="NAME", help="Jupyter kernel name (default python3)")
    run.add_argument("--cell-timeout", "--execution-timeout", dest="cell_timeout", type=float, default=None,
                     metavar="SECONDS", help="seconds per cell before the run ends as 'timeout'")
    run.add_argument("--time-limit", type=_seconds, default=None, metavar="SECONDS",
                     help="seconds for the whole run: then the kernel's Python stacks are saved (stacks.txt) and "
                          "the run ends as 'timeout'")
    run.add_argument("--no-progress", action="store_true", help="no per-cell progress line on stderr")
    run.set_defaults(func=_cmd_run)

    again = sub.add_parser("rerun", parents=[roots],
                           help="run a run folder's notebook again with its recorded parameters")
    again.add_argument("run_dir", help="a run folder (outputs/<notebook>/<run-id> or a sweep's runs/<key>-a<n>)")
    again.add_argument("--cell-timeout", type=float, default=None, help="seconds per cell before 'timeout'")
    again.add_argument("--time-limit", type=_seconds, default=None, metavar="SECONDS",
                       help="seconds for the whole run before 'timeout' (the kernel's stacks in stacks.txt)")
    again.set_defaults(func=_cmd_rerun)

    params = sub.add_parser("params", help="list a notebook's parameters with types, defaults, help and allowed values")
    params.add_argument("notebook")
    params.set_defaults(func=_cmd_params)

    demo = sub.add_parser("demo", parents=[roots], help="run the demo notebooks on twins and probe videos")
    demo.add_argument("--only", nargs="*", help="run only these notebooks of the demo")
    demo.add_argument("--full", action="store_true",
                      help="also the longer runs of params/demo.yaml's 'full' list (sweeps, more models)")
    demo.set_defaults(func=_cmd_demo)

    probes = sub.add_parser("probe-videos", help="generate the synthetic probe videos (cached)")
    probes.add_argument("names", nargs="*", help="scenarios (default: all)")
    probes.add_argument("--seed", type=int, default=0)
    probes.set_defaults(func=_cmd_probe_videos)

    sweep = sub.add_parser("sweep", parents=[roots],
                           help="run a parameter sweep file (params/sweeps/*.yaml), resumable")
    sweep.add_argument("file", help="sweep YAML (path, or name under params/)")
    sweep.add_argument("--executor", choices=["local", "ray"], default="local")
    sweep.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    sweep.add_argument("--workers", type=int, default=None,
                       help="local runs at a time (default: the file's, else 1 on a GPU, half the cores on CPU)")
    sweep.add_argument("--retry-failed", action="store_true", help="redo runs that ended other than ok")
    sweep.set_defaults(func=_cmd_sweep)

    models = sub.add_parser("models", help="list the model zoo with status and published size (fast)")
    models.add_argument("--sizes", action="store_true",
                        help="also build each architecture on the meta device (no weights) to count parameters and "
                             "show weight memory per quantization (slow: about a minute)")
    models.set_defaults(func=_cmd_models)

    from workbench.twins.cli import add_train_twin_parser

    add_train_twin_parser(sub)  # train-twin NAME (workbench/twins)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "output_root", None):
        os.environ["WORKBENCH_OUTPUTS"] = os.path.abspath(args.output_root)  # kernels and sweeps inherit it
    try:
        return args.func(args)
    except BrokenPipeError:  # `python -m workbench params X | head`: the reader left; stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (ValueError, FileNotFoundError, KeyError) as err:
        from workbench.manifest import redact

        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {redact(str(message))}", file=sys.stderr)  # errors quote parameter values
        return 2


if __name__ == "__main__":
    sys.exit(main())
