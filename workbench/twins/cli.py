"""`python -m workbench train-twin NAME`: the subcommand (kept here so the CLI module stays small)."""

from __future__ import annotations

import argparse


def _cmd_train_twin(args: argparse.Namespace) -> int:
    from workbench.twins import train
    from workbench.twins.cast import CAST

    names = list(CAST) if args.name == "all" else [args.name]
    for name in names:
        train.train(name, args.out if len(names) == 1 else None, steps=args.steps, evaluate=not args.no_eval)
    return 0


def add_train_twin_parser(sub: "argparse._SubParsersAction") -> None:
    from workbench.twins.cast import CAST

    parser = sub.add_parser("train-twin", help="train a trained twin on CPU (seeded) and save it with its card")
    parser.add_argument("name", choices=[*CAST, "all"], help="the twin to train (all: the whole cast)")
    parser.add_argument("--out", default=None, help="folder to save to (default: the committed weights folder)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the recipe's)")
    parser.add_argument("--no-eval", action="store_true", help="skip the held-out scores for the card")
    parser.set_defaults(func=_cmd_train_twin)
