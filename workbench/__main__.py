"""Command line: `python -m workbench {run,rerun,sweep,params,demo,probe-videos,models}`.

Heavy libraries are imported inside the commands, so `--help` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _cli_overrides(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, tuple[str, Any]]]:
    """-p values (read as YAML) and -r values (raw text), in the order given; also what each -p typed."""
    from workbench.params import parse_cli_value

    overrides: dict[str, Any] = {}
    typed: dict[str, tuple[str, Any]] = {}
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
        result = run_notebook(args.notebook, args.file, overrides, cell_timeout_s=args.cell_timeout)
    except ParameterError as err:
        hints = raw_hints(notebook_parameters(paths.notebook_path(args.notebook)), typed)
        raise ParameterError("\n".join([str(err), *(f"hint: {h}" for h in hints)])) from None
    return _report_run(result)


def _cmd_rerun(args: argparse.Namespace) -> int:
    from workbench.runner import rerun

    return _report_run(rerun(args.run_dir, cell_timeout_s=args.cell_timeout))


def _report_run(result: Any) -> int:
    from workbench.manifest import redact

    print(f"{result.status}: {result.dir}")
    if result.error:
        print(f"error: {redact(result.error)}", file=sys.stderr)
    if result.status == "interrupted":
        print(f"interrupted; to run it again: python -m workbench rerun {result.dir}", file=sys.stderr)
        return 130
    return 0 if result.ok else 1


class _Value(argparse.Action):
    """-p NAME VALUE and -r NAME VALUE into one ordered list (a later flag for a name wins)."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option_string: Any = None) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        items.append(("-r" if option_string in ("-r", "--raw") else "-p", *values))
        setattr(namespace, self.dest, items)


def _cmd_params(args: argparse.Namespace) -> int:
    from workbench import paths
    from workbench.params import describe, notebook_parameters

    path = paths.notebook_path(args.notebook)
    print(f"{path.stem} ({path})")
    print(describe(notebook_parameters(path)))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from workbench.demo import run_demo

    return 0 if run_demo(only=args.only) else 1


def _cmd_probe_videos(args: argparse.Namespace) -> int:
    from workbench.probe_videos import SCENARIOS, ensure_probe_videos

    for name, path in ensure_probe_videos(args.names or list(SCENARIOS), seed=args.seed).items():
        print(f"{name}: {path}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from workbench.models.catalog import print_catalog

    print_catalog()
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
    parser = argparse.ArgumentParser(prog="python -m workbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute a notebook headless into outputs/<notebook>/<run-id>/")
    run.add_argument("notebook", help="notebook name (e.g. 00_video_input) or path")
    run.add_argument("-f", "--file", help="YAML parameter file (path, or name under params/)")
    run.add_argument("-p", "--param", nargs=2, action=_Value, dest="values", metavar=("NAME", "VALUE"),
                     help="override one parameter; VALUE is read as YAML (8, [1, 2], true, text)")
    run.add_argument("-r", "--raw", nargs=2, action=_Value, dest="values", metavar=("NAME", "VALUE"),
                     help="override one parameter with VALUE as a raw string (no YAML: 'no', '08', 'a: b')")
    run.add_argument("--cell-timeout", type=float, default=None, help="seconds per cell before 'timeout'")
    run.set_defaults(func=_cmd_run)

    again = sub.add_parser("rerun", help="run a run folder's notebook again with its recorded parameters")
    again.add_argument("run_dir", help="a run folder (outputs/<notebook>/<run-id> or a sweep's runs/<key>-a<n>)")
    again.add_argument("--cell-timeout", type=float, default=None, help="seconds per cell before 'timeout'")
    again.set_defaults(func=_cmd_rerun)

    params = sub.add_parser("params", help="list a notebook's parameters with types and help")
    params.add_argument("notebook")
    params.set_defaults(func=_cmd_params)

    demo = sub.add_parser("demo", help="run the demo notebooks on tiny twins and probe videos")
    demo.add_argument("--only", nargs="*", help="run only these notebooks of the demo")
    demo.set_defaults(func=_cmd_demo)

    probes = sub.add_parser("probe-videos", help="generate the synthetic probe videos (cached)")
    probes.add_argument("names", nargs="*", help="scenarios (default: all)")
    probes.add_argument("--seed", type=int, default=0)
    probes.set_defaults(func=_cmd_probe_videos)

    sweep = sub.add_parser("sweep", help="run a parameter sweep file (params/sweeps/*.yaml), resumable")
    sweep.add_argument("file", help="sweep YAML (path, or name under params/)")
    sweep.add_argument("--executor", choices=["local", "ray"], default="local")
    sweep.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    sweep.add_argument("--workers", type=int, default=None,
                       help="local runs at a time (default: the file's, else 1 on a GPU, half the cores on CPU)")
    sweep.add_argument("--retry-failed", action="store_true", help="redo runs that ended other than ok")
    sweep.set_defaults(func=_cmd_sweep)

    models = sub.add_parser("models", help="list the model zoo with status and size")
    models.set_defaults(func=_cmd_models)

    from workbench.twins.cli import add_train_twin_parser

    add_train_twin_parser(sub)  # train-twin NAME (workbench/twins)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as err:
        from workbench.manifest import redact

        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {redact(str(message))}", file=sys.stderr)  # errors quote parameter values
        return 2


if __name__ == "__main__":
    sys.exit(main())
