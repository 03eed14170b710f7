"""`dolphin sweep`: run a parameter grid through the replay's kernel; one row per combination.

Thin: reads the scans and the grid, calls ``backtest.sweep_run.run_sweep``, writes the HTML
report. Output: ``--out`` parquet, ``<out>.summary.json`` (best by DSR, PBO) and ``<out>.html``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_data_args(p: argparse.ArgumentParser) -> None:
    """Add the scans / factors / friction / workers options shared by the research commands."""
    p.add_argument("--scans", required=True, type=Path, help="scans parquet")
    p.add_argument("--factors", type=Path, default=None, help="indices folder for ACB factors")
    p.add_argument("--friction", choices=("default", "hell"), default="default")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--config", type=Path, default=None, help="base YAML of overrides")


def load_data(args: argparse.Namespace):
    """Return the prepared sweep data of ``args.scans`` (typed error when unreadable)."""
    import pandas as pd

    from dolphin.backtest.sweep import prepare
    from dolphin.core.errors import BadInputError
    from dolphin.features.exf import ExfTable

    try:
        scans = pd.read_parquet(args.scans)
    except (OSError, ValueError) as exc:
        raise BadInputError(f"cannot read scans ({exc})", source=str(args.scans)) from None
    exf = ExfTable.from_dir(args.factors) if args.factors is not None else None
    return prepare(scans, exf, source=str(args.scans))


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` subcommand."""
    p = sub.add_parser("sweep", help="vectorized parameter sweep with DSR/PBO")
    add_data_args(p)
    p.add_argument("--grid", required=True, type=Path, help="grid YAML: parameter -> values")
    p.add_argument("--out", required=True, type=Path, help="output parquet")
    p.add_argument("--chunk", type=int, default=256, help="combinations per kernel call")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--stop-after-chunks", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the sweep; print the summary JSON and the output paths."""
    from dolphin.backtest.sweep_report import render_sweep_report
    from dolphin.backtest.sweep_run import (
        SweepInterruptedError,
        expand_grid,
        load_grid,
        run_sweep,
    )
    from dolphin.core.config import load_config
    from dolphin.core.io import atomic_write_text

    grid = expand_grid(load_grid(args.grid), load_config(args.config))
    data = load_data(args)
    try:
        df, summary = run_sweep(
            data, grid, args.out, hell=args.friction == "hell", workers=args.workers,
            chunk=args.chunk, progress=not args.no_progress,
            stop_after_chunks=args.stop_after_chunks,
        )  # fmt: skip
    except SweepInterruptedError as exc:
        print(f"interrupted: {exc}")
        return 3
    report = Path(args.out).with_suffix(".html")
    atomic_write_text(report, render_sweep_report(df, summary, grid.names))
    print(json.dumps(summary, sort_keys=True))
    print(f"sweep {args.out}\nreport {report}")
    return 0
