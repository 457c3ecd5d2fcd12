"""Command line: `python -m workbench {run,params,demo,probe-videos,models}`.

Heavy libraries are imported inside the commands, so `--help` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _cmd_run(args: argparse.Namespace) -> int:
    from workbench.params import parse_cli_value
    from workbench.runner import run_notebook

    overrides = {name: parse_cli_value(value) for name, value in args.param or []}
    result = run_notebook(args.notebook, args.file, overrides, cell_timeout_s=args.cell_timeout)
    print(f"{result.status}: {result.dir}")
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
    return 0 if result.ok else 1


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

    from workbench.sweep import run_sweep

    sweep_dir = run_sweep(args.file, executor=args.executor, workers=args.workers,
                          retry_failed=args.retry_failed, address=args.address)
    runs = pd.read_csv(sweep_dir / "runs.csv")
    print(runs["status"].value_counts().to_string())
    print(f"index: {sweep_dir / 'index.html'}")
    return 0 if (runs["status"] == "ok").all() else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute a notebook headless into outputs/<notebook>/<run-id>/")
    run.add_argument("notebook", help="notebook name (e.g. 00_video_input) or path")
    run.add_argument("-f", "--file", help="YAML parameter file (path, or name under params/)")
    run.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                     help="override one parameter; VALUE is read as YAML (8, [1, 2], true, text)")
    run.add_argument("--cell-timeout", type=float, default=None, help="seconds per cell before 'timeout'")
    run.set_defaults(func=_cmd_run)

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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
