"""End-to-end jobs composed from the pure packages (no adapters): scan -> backtest -> report."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from dolphin.core.config import DolphinConfig
from dolphin.core.io import atomic_write_parquet, atomic_write_text

Echo = Callable[[str], None]


#: A correlation matrix needs two assets; with one, every scan is NaN.
MIN_SYMBOLS = 2


def scan_summary(scans: pd.DataFrame, threshold: float) -> str:
    """The latest scan row and the vel_div distribution, as text."""
    valid = scans.dropna(subset=["vel_div"])
    if valid.empty:
        return (f"no scan has a vel_div yet: {len(scans):,} bars are fewer than the longest "
                "window needs (no signal, so no trade)")
    last = valid.iloc[-1]
    vd = scans["vel_div"].dropna()
    days = max((scans["timestamp"].iloc[-1] - scans["timestamp"].iloc[0]).total_seconds()
               / 86_400, 1e-9)
    inst = [c for c in scans.columns if c.startswith("instability_")]
    lines = [
        f"latest scan {last['timestamp']} (#{int(last['scan_number'])}, "
        f"{int(last['n_assets'])} assets): vel_div {last['vel_div']:+.5f}, "
        + ", ".join(f"{c} {last[c]:.4f}" for c in inst)
        + ", " + ", ".join(f"{c} {last[c]:.4f}" for c in scans.columns
                           if c.endswith("_lambda_max")),
        f"vel_div over {len(vd):,} bars: q01 {vd.quantile(0.01):+.4f}  q05 "
        f"{vd.quantile(0.05):+.4f}  median {vd.median():+.5f}  q95 {vd.quantile(0.95):+.4f}; "
        f"below {threshold:+g} on {(vd < threshold).sum() / days:.1f} bars/day; "
        f"data gaps flagged: {int(scans['data_gap'].sum())}",
    ]
    return "\n".join(lines)


def metrics_table(metrics: dict, other: dict | None = None) -> str:
    """Two-column text table of the metrics (default friction and, if given, HELL)."""
    keys = ("roi", "profit_factor", "sharpe", "sortino", "calmar", "max_drawdown", "win_rate",
            "trades", "avg_hold_bars", "exposure", "final_capital")

    def fmt(v: object) -> str:
        if v is None:
            return "n/a"
        if isinstance(v, float):
            return f"{v:,.4f}" if abs(v) < 1000 else f"{v:,.2f}"
        return str(v)

    head = f"{'metric':16}{'default':>16}" + (f"{'HELL':>16}" if other else "")
    rows = [head]
    for k in keys:
        row = f"{k:16}{fmt(metrics.get(k)):>16}"
        if other:
            row += f"{fmt(other.get(k)):>16}"
        rows.append(row)
    return "\n".join(rows)


def research_job(bars: Path, config: DolphinConfig, out: Path, *,
                 factors: Path | None = None, echo: Echo = print) -> dict:
    """Load, scan, backtest (default + HELL) and write every artefact under ``out``."""
    from dolphin.backtest.gates import load_gate
    from dolphin.backtest.notes import notes_lines
    from dolphin.backtest.output import write_outputs
    from dolphin.backtest.replay import run_replay
    from dolphin.core.errors import BadInputError
    from dolphin.data import infer_bar, load_bars, real_closes
    from dolphin.features.exf import ExfTable
    from dolphin.scanner import scan_prices
    from dolphin.scanner.inputs import scanner_input
    from dolphin.ui.report import render_report

    t0 = time.perf_counter()
    long = load_bars(bars)
    symbols = sorted(map(str, long["symbol"].unique()))
    if len(symbols) < MIN_SYMBOLS:
        raise BadInputError(
            f"{len(symbols)} symbol ({', '.join(symbols) or 'none'}); the correlation scan needs "
            f"at least {MIN_SYMBOLS} symbols", source=str(bars),
        )
    wide, real = scanner_input(real_closes(long))  # scans carry REAL closes only
    echo(f"bars {bars}: {long['symbol'].nunique()} symbols, {len(wide):,} bars of "
         f"{infer_bar(long)}, {wide['timestamp'].iloc[0]} -> {wide['timestamp'].iloc[-1]}")
    scans = scan_prices(wide, config.scanner, real=real, source=str(bars))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_parquet(scans, out / "scans.parquet")
    echo(f"scanned in {time.perf_counter() - t0:.1f}s -> {out / 'scans.parquet'}")
    echo(scan_summary(scans, config.alpha.vel_div_threshold))
    exf = ExfTable.from_dir(factors) if factors is not None else ExfTable.empty()
    gate = load_gate(config)  # the MC-Forewarner is on every production path (Bible §12)
    main = run_replay(scans, config, exf=exf, hell=False, source=str(out / "scans.parquet"),
                      mc_gate=gate)
    hell = run_replay(scans, config, exf=exf, hell=True, source=str(out / "scans.parquet"),
                      mc_gate=gate)
    bt = out / "backtest"
    write_outputs(main, bt)
    report = bt / "report.html"
    atomic_write_text(report, render_report(main, label="default friction", other=hell,
                                            other_label="HELL friction"))
    echo(metrics_table(main.metrics, hell.metrics))
    echo("\n".join(notes_lines(main.metrics)))
    absent = _absent_factors(exf, scans)
    if absent:
        echo(f"ACB factors absent on these dates (counted as no signal): {', '.join(absent)}")
    echo(f"trades_sha256 {main.metrics['trades_sha256']}")
    echo(f"report {report}")
    echo(f"done in {time.perf_counter() - t0:.1f}s")
    return {"metrics": main.metrics, "hell_metrics": hell.metrics, "report": str(report)}


def _absent_factors(exf, scans: pd.DataFrame) -> list[str]:
    dates = sorted(set(pd.to_datetime(scans["timestamp"]).dt.strftime("%Y-%m-%d")))
    table = exf.table(dates)
    return [c for c in table.columns if np.isnan(table[c].to_numpy(dtype=float)).all()]


def dumps(obj: dict) -> str:
    """Compact JSON for logs."""
    return json.dumps(obj, sort_keys=True, default=str)
