"""`dolphin walkforward`: rolling train/test windows over a grid; out-of-sample per window.

Output with ``--out``: the window table (parquet) and its page (``<out>.html``:
``ui.research_pages.walkforward_page``). ``--export-best FILE`` writes the latest window's pick
(the config a walk-forward would trade next) as a YAML ``dolphin backtest --config`` reproduces;
the printed command reruns it on the scans given, and on that window's test days alone it gives
the window's out-of-sample row.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dolphin.commands._research import add_cluster_arg, add_export_arg
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
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_cluster_arg(p, "in-sample grid of each window")
    add_export_arg(p)
    p.set_defaults(func=run)


def _no_bar(args: argparse.Namespace) -> bool | None:
    """tqdm's ``disable``: off when asked, else None (shown only on a terminal)."""
    return True if args.no_progress or getattr(args, "quiet", False) else None


def run(args: argparse.Namespace) -> int:
    """Run the walk-forward; print the window table and the stitched metrics."""
    import sys

    from tqdm import tqdm

    from dolphin.backtest.sweep_run import expand_grid, load_grid
    from dolphin.backtest.walkforward import walk_forward
    from dolphin.commands._research import cluster_runner, finish, span_of
    from dolphin.core.config import load_config
    from dolphin.features.exf import ExfTable
    from dolphin.scanner.schema import read_scans

    grid = expand_grid(load_grid(args.grid), load_config(args.config))
    scans = read_scans(args.scans)
    exf = ExfTable.from_dir(args.factors) if args.factors is not None else None
    bar = tqdm(desc="walkforward", unit="window", file=sys.stderr,
               disable=_no_bar(args))  # fmt: skip

    def on_window(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        with cluster_runner(args.cluster, args.workers) as runner:
            table, stitched = walk_forward(
                scans, grid, args.train_days, args.test_days, select=args.select,
                hell=args.friction == "hell", exf=exf, on_window=on_window, runner=runner,
            )  # fmt: skip
    finally:
        bar.close()
    lists = [c for c in ("oos_dates", "oos_daily_returns", "oos_trades_sha256") if c in table]
    print(table.drop(columns=lists).to_string(index=False))
    print(json.dumps({"stitched_oos": stitched}, sort_keys=True))
    best = _export(args, grid, table)
    files = [best, *(_write(args, table, stitched, grid.names) if args.out is not None else [])]
    dates = [d for ds in table["oos_dates"] for d in ds]
    finish(args, "walkforward", files, config_id=None, span=span_of(dates),
           metrics={"windows": len(table), **{f"oos_{k}": stitched[k] for k in
                                              ("roi", "sharpe", "max_drawdown")},
                    "last_config_id": table["config_id"].iloc[-1]})  # fmt: skip
    return 0


def _write(args: argparse.Namespace, table, stitched: dict, names: list[str]) -> list[Path]:
    from dolphin.commands._research import backtest_command
    from dolphin.core.io import atomic_write_parquet, atomic_write_text
    from dolphin.ui.research_pages import walkforward_page

    reproduce = (backtest_command(args, args.export_best) if args.export_best is not None
                 else None)  # fmt: skip
    atomic_write_parquet(table, args.out)
    page = Path(args.out).with_suffix(".html")
    atomic_write_text(page, walkforward_page(table, stitched, names, select=args.select,
                                             reproduce=reproduce))  # fmt: skip
    print(f"walkforward {args.out}\nreport {page}")
    return [Path(args.out), page]


def _export(args: argparse.Namespace, grid, table) -> Path | None:
    """Write ``--export-best``: the latest window's pick; return its path (None: not asked)."""
    from dolphin.commands._research import backtest_command, config_by_id, export_best

    if args.export_best is None:
        return None
    last = table.iloc[-1]
    config = config_by_id(grid.configs, last["config_id"])
    details = {"window": f"train from {last['train_start']}, test {last['test_start']} .. "
                         f"{last['test_end']}",
               **{k: last[k] for k in ("oos_roi", "oos_sharpe", "oos_trades")}}  # fmt: skip
    return export_best(args.export_best, config, source=getattr(args, "command_line", ""),
                       reproduce=backtest_command(args, args.export_best), details=details)
