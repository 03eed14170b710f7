"""`dolphin sweep`: run a parameter grid through the replay's kernel; one row per combination.

Thin: reads the scans, the grid and optionally the recorded OB features (``--ob``), calls
``backtest.sweep_run.run_sweep``, writes the HTML page (``ui.research_pages.sweep_page``). Output:
``--out`` parquet, ``<out>.summary.json`` (best by DSR, PBO), ``<out>.html`` and, with
``--export-best FILE``, the best-by-DSR config as a YAML ``dolphin backtest --config`` reproduces.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dolphin.commands._research import add_cluster_arg, add_export_arg


def add_data_args(p: argparse.ArgumentParser) -> None:
    """Add the scans / factors / friction / workers options shared by the research commands."""
    p.add_argument("--scans", required=True, type=Path, help="scans parquet")
    p.add_argument("--factors", type=Path, default=None, help="indices folder for ACB factors")
    p.add_argument("--friction", choices=("default", "hell"), default="default")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--config", type=Path, default=None, help="base YAML of overrides")
    p.add_argument("--funding", type=Path, default=None,
                   help="funding rates file/folder: accrue perpetual funding (default: none)")
    p.add_argument("--forewarner", action=argparse.BooleanOptionalAction, default=False,
                   help="apply the MC-Forewarner day gate of the shipped model set to every "
                        "combination (RED halts, ORANGE halves size)")


def load_data(args: argparse.Namespace):
    """Return the prepared sweep data of ``args.scans`` (typed error when unreadable), with
    the recorded OB features of ``args.ob`` when the command has that option."""

    from dolphin.backtest.sweep import prepare
    from dolphin.features.exf import ExfTable
    from dolphin.scanner.schema import read_scans

    scans = read_scans(args.scans)
    from dolphin.features.funding import load_funding
    from dolphin.risk.mc_models import load_cached

    exf = ExfTable.from_dir(args.factors) if args.factors is not None else None
    funding = load_funding(args.funding) if getattr(args, "funding", None) else None
    models = load_cached() if getattr(args, "forewarner", False) else None
    ob = None
    if getattr(args, "ob", None) is not None:  # only ``dolphin sweep`` has --ob
        from dolphin.backtest.ob_table import ObTable

        ob = ObTable.read(args.ob)
    return prepare(scans, exf, source=str(args.scans), funding=funding, forewarner=models, ob=ob)


def print_bar_notes(data, config) -> None:
    """Print the base config's bar-counted parameters as durations and the data's warnings.

    Each row carries its own ``durations`` and ``warnings`` (``backtest.notes``); this is the
    line a reader sees before the run.
    """
    import numpy as np

    from dolphin.backtest.notes import describe_bars
    from dolphin.backtest.replay import scan_bar_ns

    notes = describe_bars(scan_bar_ns(data.ts) / 1e9, data.thin, config, np.zeros(0, np.int64))
    print(f"bar {notes['bar']} (base config): "
          + ", ".join(f"{k} {v}" for k, v in notes["durations"].items()))
    for w in notes["warnings"]:
        print(f"warning: {w}")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` subcommand."""
    p = sub.add_parser("sweep", help="vectorized parameter sweep with DSR/PBO")
    add_data_args(p)
    p.add_argument("--grid", required=True, type=Path, help="grid YAML: parameter -> values")
    p.add_argument("--out", required=True, type=Path, help="output parquet")
    p.add_argument("--ob", type=Path, default=None,
                   help="recorded OB features parquet (dolphin obf replay): OB sub-systems 1-5 "
                        "in every combination (default: no OB engine)")
    p.add_argument("--chunk", type=int, default=256, help="combinations per kernel call")
    add_cluster_arg(p, "chunks")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--stop-after-chunks", type=int, default=None, help=argparse.SUPPRESS)
    add_export_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the sweep; print the summary JSON and the output paths."""
    from dolphin.backtest.sweep_run import (
        SweepInterruptedError,
        completed,
        expand_grid,
        load_grid,
        run_sweep,
    )
    from dolphin.commands._research import backtest_command, cluster_runner, finish, span_of
    from dolphin.core.config import load_config
    from dolphin.core.io import atomic_write_text
    from dolphin.ui.sweep_report import render_sweep_report

    grid = expand_grid(load_grid(args.grid), load_config(args.config))
    data = load_data(args)
    print_bar_notes(data, load_config(args.config))
    done = completed(data, grid, args.out, hell=args.friction == "hell")
    if done is not None:
        print(f"sweep already complete: {args.out} ({len(done[0])} combinations, same "
              "scans, friction and grid); nothing recomputed")
        df, summary = done
    else:
        progress = not (args.no_progress or getattr(args, "quiet", False))
        try:
            with cluster_runner(args.cluster) as runner:
                df, summary = run_sweep(
                    data, grid, args.out, hell=args.friction == "hell", workers=args.workers,
                    chunk=args.chunk, progress=progress,
                    stop_after_chunks=args.stop_after_chunks, runner=runner,
                )  # fmt: skip
        except SweepInterruptedError as exc:
            print(f"interrupted: {exc}")
            return 3
    report = Path(args.out).with_suffix(".html")
    best = _export(args, grid, summary)
    reproduce = (backtest_command(args, args.export_best) if args.export_best is not None
                 else None)
    atomic_write_text(report, render_sweep_report(df, summary, grid.names, reproduce=reproduce))
    print(json.dumps(summary, sort_keys=True))
    print(f"sweep {args.out}\nreport {report}")
    top = summary.get("best_by_dsr") or {}
    finish(args, "sweep", [Path(args.out), Path(args.out).with_suffix(".summary.json"), report,
                           best], config_id=None, span=span_of(data.dates),
           metrics={"trials": summary.get("trials"), "pbo": summary.get("pbo"),
                    **{f"best_{k}": top.get(k) for k in ("dsr", "sharpe", "roi")},
                    "best_config_id": top.get("config_id")})  # fmt: skip
    return 0


def _export(args: argparse.Namespace, grid, summary: dict) -> Path | None:
    """Write ``--export-best``: the best combination by DSR; return its path (None: not asked)."""
    from dolphin.commands._research import backtest_command, config_by_id, export_best
    from dolphin.core.errors import ConfigError

    if args.export_best is None:
        return None
    best = summary.get("best_by_dsr")
    if not best:
        raise ConfigError("--export-best: no combination has a defined DSR (too few days?)")
    config = config_by_id(grid.configs, best["config_id"])
    return export_best(args.export_best, config, source=getattr(args, "command_line", "sweep"),
                       reproduce=backtest_command(args, args.export_best),
                       details={k: best[k] for k in ("dsr", "sharpe", "roi", "trades")})


def interrupt_note(args: argparse.Namespace, command: str) -> str:
    """The Ctrl-C line of ``dolphin sweep``: the chunks saved, where, and how to resume."""
    from dolphin.backtest.sweep_run import saved_parts, work_dir

    parts = saved_parts(Path(args.out))
    if not parts:
        return f"no chunk saved yet; re-run: {command}"
    return (f"{len(parts)} chunk(s) saved in {work_dir(Path(args.out))}; "
            f"resume with: {command}")
