"""`dolphin walkforward`: rolling train/test windows over a grid; out-of-sample per window."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dolphin.commands.sweep import add_data_args


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``walkforward`` subcommand."""
    p = sub.add_parser("walkforward", help="walk-forward: pick on train, measure on test")
    add_data_args(p)
    p.add_argument("--grid", required=True, type=Path, help="grid YAML")
    p.add_argument("--train-days", required=True, type=int)
    p.add_argument("--test-days", required=True, type=int)
    p.add_argument("--select", choices=("dsr", "sharpe", "roi"), default="dsr")
    p.add_argument("--out", type=Path, default=None, help="window table parquet (+ .html)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the walk-forward; print the window table and the stitched metrics."""

    from dolphin.backtest.sweep_run import expand_grid, load_grid
    from dolphin.backtest.walkforward import walk_forward
    from dolphin.core.config import load_config
    from dolphin.core.io import atomic_write_parquet, atomic_write_text
    from dolphin.features.exf import ExfTable
    from dolphin.ui.sweep_report import render_sweep_report

    grid = expand_grid(load_grid(args.grid), load_config(args.config))
    from dolphin.scanner.schema import read_scans

    scans = read_scans(args.scans)
    exf = ExfTable.from_dir(args.factors) if args.factors is not None else None
    table, stitched = walk_forward(
        scans, grid, args.train_days, args.test_days, select=args.select,
        hell=args.friction == "hell", exf=exf,
    )  # fmt: skip
    print(table.to_string(index=False))
    print(json.dumps({"stitched_oos": stitched}, sort_keys=True))
    if args.out is not None:
        atomic_write_parquet(table, args.out)
        html = render_sweep_report(table.head(0), {"stitched_oos": stitched}, [],
                                   walkforward=table)  # fmt: skip
        atomic_write_text(Path(args.out).with_suffix(".html"), html)
    return 0
