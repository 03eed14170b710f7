"""`dolphin optimize`: seeded optuna search over a space, the sweep kernel as the objective."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dolphin.commands.sweep import add_data_args, load_data


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``optimize`` subcommand."""
    p = sub.add_parser("optimize", help="optuna search (seeded) over a parameter space")
    add_data_args(p)
    p.add_argument("--space", required=True, type=Path, help="space YAML")
    p.add_argument("--trials", required=True, type=int)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--batch", type=int, default=16, help="trials evaluated per kernel run")
    p.add_argument("--out", type=Path, default=None, help="trials parquet")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the search; print the summary JSON."""
    from dolphin.backtest.optimize import load_space, optimize
    from dolphin.core.config import load_config
    from dolphin.core.io import atomic_write_parquet

    space = load_space(args.space)
    df, summary = optimize(
        load_data(args), space, args.trials, seed=args.seed, batch=args.batch,
        base=load_config(args.config), hell=args.friction == "hell",
    )  # fmt: skip
    if args.out is not None:
        atomic_write_parquet(df, args.out)
    print(json.dumps(summary, sort_keys=True, default=str))
    return 0
