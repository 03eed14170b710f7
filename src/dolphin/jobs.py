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


TABLE_KEYS = ("roi", "profit_factor", "sharpe", "sortino", "calmar", "max_drawdown", "win_rate",
              "trades", "avg_hold_bars", "exposure", "final_capital")


def _fmt(v: object) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 1000 else f"{v:,.2f}"
    return str(v)


def _iv(figures: dict | None, key: str) -> str:
    iv = (figures or {}).get("intervals", {}).get(key)
    return f"[{_fmt(iv[0])}, {_fmt(iv[1])}]" if iv else ""


def metrics_table(metrics: dict, other: dict | None = None, *,
                  labels: tuple[str, str] = ("default", "HELL"), figures: dict | None = None,
                  other_figures: dict | None = None) -> str:
    """Text table of the metrics of a run (and its comparison run, e.g. HELL friction).

    With ``figures`` (``backtest.stats.sample_figures``) each run gets its 95 % bootstrap
    interval column, a sample line (days, trades) heads the table and the annualisation caveat
    ends it when the run is shorter than 30 days. ``dolphin run`` and ``dolphin backtest``
    print this same table.
    """
    runs = [(labels[0], metrics, figures)] + ([(labels[1], other, other_figures)] if other else [])
    head = f"{'metric':16}" + "".join(
        f"{lab:>16}" + (f"{'95% interval':>26}" if f else "") for lab, _, f in runs)
    rows = []
    if figures:
        rows.append("sample: " + "; ".join(f"{lab} {m.get('days', 0)} days, {m.get('trades', 0)} "
                                           "trades" for lab, m, _ in runs)
                    + f" (intervals: bootstrap, {figures['n_boot']:,} resamples, seed "
                    f"{figures['seed']})")
    rows.append(head)
    for k in TABLE_KEYS:
        rows.append(f"{k:16}" + "".join(
            f"{_fmt(m.get(k)):>16}" + (f"{_iv(f, k):>26}" if f else "") for _, m, f in runs))
    rows += sorted({f"note: {f['caveat']}" for _, _, f in runs if f and f.get("caveat")})
    return "\n".join(rows)


def write_run(result, out: Path, figures: dict) -> None:
    """Write a replay's data files and its sample figures (``intervals.json``) into ``out``."""
    from dolphin.backtest.output import write_outputs

    write_outputs(result, out)
    atomic_write_text(out / "intervals.json",
                      json.dumps(figures, indent=2, sort_keys=True, allow_nan=False) + "\n")


def report_runs(main, other, labels: tuple[str, str], out: Path, *, other_dir: str,
                scans: pd.DataFrame | None, config: DolphinConfig | None,
                ) -> tuple[Path, dict, dict | None]:
    """Write ``main``'s files into ``out``, ``other``'s into ``out / other_dir`` and the report
    of both as ``out / report.html``; return the report's path and both runs' sample figures
    (``backtest.stats.sample_figures``)."""
    from dolphin.backtest.stats import sample_figures
    from dolphin.ui.report import render_report

    figs = sample_figures(main.trades, main.equity, main.metrics)
    write_run(main, out, figs)
    other_figs = None
    if other is not None:
        other_figs = sample_figures(other.trades, other.equity, other.metrics)
        write_run(other, out / other_dir, other_figs)
    report = out / "report.html"
    atomic_write_text(report, render_report(main, label=labels[0], other=other,
                                            other_label=labels[1], scans=scans, config=config,
                                            figures=figs, other_figures=other_figs))
    return report, figs, other_figs


def record(command: str, out: Path, config: DolphinConfig, scans: pd.DataFrame, metrics: dict,
           t0_wall: float) -> None:
    """Index the run (``dolphin runs list``) and record the files it wrote in ``out`` (a later
    run into ``out`` removes those it does not write again: ``core.manifest``)."""
    import sys

    from dolphin.core.manifest import record_outputs
    from dolphin.core.runs_index import record_run

    ts = scans["timestamp"]
    span = [str(ts.iloc[0].date()), str(ts.iloc[-1].date())] if len(ts) else None
    keys = ("roi", "sharpe", "max_drawdown", "trades", "trades_sha256")
    record_run(command, sys.argv[1:], out, config.id, span,
               {k: metrics[k] for k in keys if k in metrics})
    written = [p for p in out.rglob("*") if p.is_file() and p.name != ".dolphin-manifest.json"
               and p.stat().st_mtime >= t0_wall]
    record_outputs(out, written, command=command)


def research_job(bars: Path, config: DolphinConfig, out: Path, *,
                 factors: Path | None = None, echo: Echo = print) -> dict:
    """Load, scan, backtest (default + HELL) and write every artefact under ``out``: the
    default run's files in ``out/backtest``, the HELL run's in ``out/backtest/hell``."""
    from dolphin.backtest.gates import load_gate
    from dolphin.backtest.notes import notes_lines
    from dolphin.backtest.replay import run_replay
    from dolphin.core.errors import BadInputError
    from dolphin.data import infer_bar, load_bars, real_closes
    from dolphin.features.exf import ExfTable
    from dolphin.scanner import scan_prices
    from dolphin.scanner.inputs import scanner_input

    t0, t0_wall = time.perf_counter(), time.time()
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
    report, figs, hell_figs = report_runs(
        main, hell, ("default friction", "HELL friction"), bt, other_dir="hell", scans=scans,
        config=config,
    )
    echo(metrics_table(main.metrics, hell.metrics, figures=figs, other_figures=hell_figs))
    echo("\n".join(notes_lines(main.metrics)))
    absent = _absent_factors(exf, scans)
    if absent:
        echo(f"ACB factors absent on these dates (counted as no signal): {', '.join(absent)}")
    echo(f"trades_sha256 {main.metrics['trades_sha256']}")
    echo(f"report {report}")
    record("run", out, config, scans, main.metrics, t0_wall)
    echo(f"done in {time.perf_counter() - t0:.1f}s")
    return {"metrics": main.metrics, "hell_metrics": hell.metrics, "report": str(report),
            "intervals": figs, "hell_intervals": hell_figs}


def _absent_factors(exf, scans: pd.DataFrame) -> list[str]:
    dates = sorted(set(pd.to_datetime(scans["timestamp"]).dt.strftime("%Y-%m-%d")))
    table = exf.table(dates)
    return [c for c in table.columns if np.isnan(table[c].to_numpy(dtype=float)).all()]


def dumps(obj: dict) -> str:
    """Compact JSON for logs."""
    return json.dumps(obj, sort_keys=True, default=str)
