"""Self-contained ``report.html`` of a backtest: plotly charts (plotly.js inline, no network)
and tables (``dolphin.ui.plots``).

Sections, in order: the sample caveat, the metrics of the run beside its comparison run (e.g.
default vs HELL friction) with bootstrap 95 % intervals and sample sizes, what the runs modelled
(funding, forewarner, bar units, warnings), the resolved parameters, then the charts — equity
with the BTC buy-and-hold and equal-weight-universe benchmarks, underwater drawdown, daily PnL,
rolling Sharpe, exposure and leverage, trade PnL histogram, vel_div with entries — and the
tables: monthly and weekly returns, per asset, per exit reason, leverage bands, signal buckets,
survival postures when the controller ran, the trade list (sortable, CSV) and the days. The
charts need the scans (benchmarks, vel_div) and the config (parameters, threshold); without
them the report says what is missing.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from dolphin.backtest import tables
from dolphin.backtest.replay import ReplayResult
from dolphin.ui import plots
from dolphin.ui.plots import Series

W, H = 860, 220
METRIC_ROWS = (
    "roi",
    "profit_factor",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "win_rate",
    "trades",
    "days",
    "bars",
    "funding_paid",
    "avg_hold_bars",
    "exposure",
    "final_capital",
    "denials",
    "config_id",
    "trades_sha256",
)
GREEN, RED, BLUE, GREY = "#2ca02c", "#d62728", "#1f77b4", "#7f7f7f"
TRADE_LIST_ROWS = 5000
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.4f}"
    return html.escape(str(v))


def _cell(metrics: dict, row: str) -> str:
    """Return a metrics-table cell; funding reads "not modelled" when no funding file was given."""
    if row == "funding_paid" and not metrics.get("funding_modelled"):
        return "funding not modelled"
    return _fmt(metrics.get(row))


def _interval(figures: dict | None, row: str) -> str:
    iv = (figures or {}).get("intervals", {}).get(row)
    return f"[{iv[0]:,.4f}, {iv[1]:,.4f}]" if iv else ""


def metrics_section(runs: Sequence[tuple[str, dict, dict | None]]) -> str:
    """Return the metrics table: per run (label, metrics, sample figures) a value column and
    its bootstrap interval column."""
    head = "<th>metric</th>" + "".join(
        f"<th>{html.escape(lab)}</th><th>95 % interval</th>" for lab, _, _ in runs
    )
    body = "".join(
        f"<tr><td style='text-align:left'>{r}</td>"
        + "".join(f"<td>{_cell(m, r)}</td><td>{_interval(f, r)}</td>" for _, m, f in runs)
        + "</tr>"
        for r in METRIC_ROWS
    )
    f0 = runs[0][2] or {}
    how = (f"Intervals: percentile bootstrap, {f0.get('n_boot', 0):,} resamples (seed "
           f"{f0.get('seed', 0)}); ROI, Sharpe, Sortino and Calmar resample days, win rate and "
           "profit factor resample trades. Sharpe and Sortino are annualised with √365 from "
           "daily returns, Calmar is CAGR / max drawdown.")  # fmt: skip
    return f"<table id='metrics'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" \
        f"<p class='caption'>{html.escape(how)}</p>"


def caveat_html(runs: Sequence[tuple[str, dict, dict | None]]) -> str:
    """Return the annualisation caveat banner (empty when every run has 30 days or more)."""
    lines = [f"{lab}: {f['caveat']}" for lab, _, f in runs if f and f.get("caveat")]
    return "".join(f"<div class='caveat'><b>Caveat</b> — {html.escape(x)}.</div>" for x in lines)


def _notes(runs: Sequence[tuple[str, dict, dict | None]]) -> str:
    from dolphin.backtest.notes import notes_lines

    return "".join(
        f"<p><b>{html.escape(lab)}</b></p><ul class='notes'>"
        + "".join(f"<li>{html.escape(x)}</li>" for x in notes_lines(m)) + "</ul>"
        for lab, m, _ in runs
    )


def parameters_section(config: Any, metrics: dict) -> str:
    """Return the resolved parameters of ``config`` (section, name, value) and its id."""
    if config is None:
        return f"<p>config {_fmt(metrics.get('config_id'))} (parameters not given)</p>"
    rows = [(sec, k, v) for sec, values in config.to_dict().items()
            for k, v in (values.items() if isinstance(values, dict) else [("", values)])]
    durations = metrics.get("durations", {})
    df = pd.DataFrame(
        [(s, k, str(v), durations.get(k, "")) for s, k, v in rows],
        columns=["section", "parameter", "value", "at this bar size"],
    )
    return (f"<p>config id <code>{html.escape(config.id)}</code></p>"
            + plots.table_html(df, table_id="parameters", csv_name="parameters.csv"))


def _fig(fig, div_id: str, caption: str = "") -> str:
    cap = f"<p class='caption'>{html.escape(caption)}</p>" if caption else ""
    return plots.figure_html(fig, div_id) + cap


def equity_section(result: ReplayResult, label: str, other: ReplayResult | None,
                   other_label: str, scans: pd.DataFrame | None) -> str:
    """Return the equity chart: the run, the comparison run and the benchmarks."""
    eq = result.equity
    series = [Series(label, *plots.thin(eq["timestamp"], eq["equity"]), color=BLUE,
                     unit=" USDT")]  # fmt: skip
    if other is not None:
        oe = other.equity
        series.append(Series(other_label, *plots.thin(oe["timestamp"], oe["equity"]),
                             color=RED, dash="dash", unit=" USDT"))  # fmt: skip
    caption = "Mark-to-market equity per bar, USDT. "
    if scans is None:
        caption += "Benchmarks not shown: the scans were not given."
    else:
        bm = tables.benchmarks(scans, float(result.metrics["initial_capital"]))
        if "btc_hold" in bm:
            series.append(Series("BTC buy-and-hold", *plots.thin(bm["timestamp"], bm["btc_hold"]),
                                 color="#ff7f0e", unit=" USDT"))  # fmt: skip
            caption += "BTC buy-and-hold holds BTCUSDT from the first bar. "
        else:
            caption += "BTC buy-and-hold not shown: BTCUSDT is not in this universe. "
        if "equal_weight" in bm:
            series.append(Series("equal-weight universe",
                                 *plots.thin(bm["timestamp"], bm["equal_weight"]), color=GREY,
                                 unit=" USDT"))  # fmt: skip
            caption += ("Equal-weight universe: initial capital split over every asset, bought "
                        "at its first real close, never rebalanced.")
    fig = plots.lines(series, title="Equity (mark to market) and benchmarks",
                      y_title="equity (USDT)", y_format=",.0f")  # fmt: skip
    return _fig(fig, "fig-equity", caption)


def underwater_section(result: ReplayResult) -> str:
    """Return the underwater chart: drawdown from the running peak, in %."""
    eq = result.equity["equity"].to_numpy(dtype=float)
    dd = eq / np.maximum.accumulate(eq) - 1.0 if eq.size else eq
    x, y = plots.thin(result.equity["timestamp"], dd)
    fig = plots.lines([Series("drawdown", x, y, kind="area", color=RED, fmt=".2%")],
                      title="Underwater (drawdown from the running peak)",
                      y_title="drawdown (% of peak)", y_format=".1%")  # fmt: skip
    return _fig(fig, "fig-underwater", f"Max drawdown {result.metrics['max_drawdown']:.2%}.")


def daily_section(result: ReplayResult) -> str:
    """Return the daily PnL bars (green up, red down)."""
    d = result.daily
    pnl = d["pnl"].to_numpy(dtype=float) if len(d) else np.zeros(0)
    colors = [GREEN if v >= 0 else RED for v in pnl]
    fig = plots.lines([Series("daily PnL", pd.to_datetime(d["date"]) if len(d) else [], pnl,
                              kind="bar", color=colors, unit=" USDT")],
                      title="Daily PnL", y_title="PnL (USDT)", x_title="day (UTC)")  # fmt: skip
    return _fig(fig, "fig-daily")


def rolling_section(result: ReplayResult) -> str:
    """Return the rolling Sharpe chart."""
    s, caption = tables.rolling_sharpe(result.equity, result.daily)
    fig = plots.lines([Series("rolling Sharpe", s.index, s.to_numpy(), color=BLUE)],
                      title="Rolling Sharpe (annualised)", y_title="Sharpe",
                      hlines=[(0.0, "0")])  # fmt: skip
    return _fig(fig, "fig-rolling-sharpe", caption)


def exposure_section(result: ReplayResult) -> str:
    """Return leverage (step, left axis) and the trailing-day exposure (right axis)."""
    eq = result.equity
    bar_s = (pd.DatetimeIndex(eq["timestamp"]).to_series().diff().median().total_seconds()
             if len(eq) > 1 else 60.0)
    lev = tables.leverage_steps(result.trades, eq["timestamp"].iloc[0], eq["timestamp"].iloc[-1])
    share = tables.exposure_share(eq, bar_s)
    fig = plots.lines(
        [Series("leverage", lev["timestamp"], lev["leverage"], kind="step", color=BLUE,
                unit="x"),
         Series("exposure (trailing 24 h)", *plots.thin(eq["timestamp"], share), axis="y2",
                color=GREY, fmt=".1%")],
        title="Leverage and exposure", y_title="leverage (x notional / capital)",
        y2_title="bars in a position (trailing 24 h)", y2_format=".0%",
    )  # fmt: skip
    return _fig(fig, "fig-exposure", "Leverage: each trade's leverage at entry while it is "
                "open, 0 while flat. Exposure: share of bars with an open position.")


def histogram_section(result: ReplayResult) -> str:
    """Return the trade PnL histogram."""
    fig = plots.histogram(result.trades["pnl"], title="Trade PnL", x_title="PnL per trade (USDT)",
                          unit=" USDT", marks=[(0.0, "0")])  # fmt: skip
    return _fig(fig, "fig-trade-pnl")


def vel_div_section(result: ReplayResult, scans: pd.DataFrame | None, config: Any) -> str:
    """Return vel_div over time with the entries marked on it (and the entry threshold)."""
    if scans is None:
        return "<p>vel_div not shown: the scans were not given.</p>"
    ts = pd.to_datetime(scans["timestamp"], utc=True)
    vd = scans["vel_div"].to_numpy(dtype=float)
    t = result.trades
    series = [Series("vel_div", *plots.thin(ts, vd), color=GREY, fmt="+.4f")]
    for name, color in (("SHORT", RED), ("LONG", GREEN)):
        sel = t[t["direction"] == name]
        if len(sel):
            bars = sel["entry_bar"].to_numpy(dtype=np.int64)
            series.append(Series(f"{name} entry", ts.iloc[bars], vd[bars], kind="markers",
                                 color=color, fmt="+.4f"))  # fmt: skip
    hl = []
    if config is not None:
        a = config.alpha
        thr = a.vel_div_threshold if a.direction == "short" else a.long_threshold
        hl = [(thr, f"threshold {thr:+g}")]
    fig = plots.lines(series, title="vel_div and entries", y_title="vel_div (λ-velocity "
                      "divergence, per bar)", hlines=hl)  # fmt: skip
    return _fig(fig, "fig-vel-div")


def periods_section(result: ReplayResult) -> str:
    """Return the monthly returns (heatmap and table) and the weekly returns table."""
    init = float(result.metrics["initial_capital"])
    monthly = tables.period_returns(result.daily, init, "M")
    weekly = tables.period_returns(result.daily, init, "W")
    grid = tables.month_grid(monthly)
    fig = plots.heatmap(grid.to_numpy(), x=list(MONTHS), y=list(grid.index),
                        title="Monthly returns", x_title="month", y_title="year")  # fmt: skip
    return (_fig(fig, "fig-monthly", "Return of end-of-day equity per calendar month (UTC); a "
                 "partial month covers only its days in the run.")
            + plots.table_html(monthly, table_id="monthly", csv_name="monthly.csv")
            + "<h3>Weekly returns (ISO weeks)</h3>"
            + plots.table_html(weekly, table_id="weekly", csv_name="weekly.csv"))


def _survival_sections(result: ReplayResult) -> list[tuple[str, str]]:
    """Rm chart, time per posture and posture changes when the survival controller ran."""
    eq = result.equity
    if "rm" not in eq:
        return []
    posture = eq["posture"].astype(str)
    changed = posture.ne(posture.shift())
    changes = eq.loc[changed, ["timestamp", "posture", "rm"]].head(200)
    share = posture.value_counts(normalize=True).rename_axis("posture").reset_index(name="share")
    fig = plots.lines([Series("Rm", *plots.thin(eq["timestamp"], eq["rm"]), color="#9467bd",
                              fmt=".3f")], title="Survival Rm", y_title="Rm",
                      hlines=[(0.90, "APEX"), (0.75, "STALKER"), (0.50, "TURTLE")])  # fmt: skip
    return [
        ("Survival Rm (posture: APEX >= 0.90, STALKER >= 0.75, TURTLE >= 0.50)",
         _fig(fig, "fig-rm")),
        ("Time per posture", plots.table_html(share, table_id="postures")),
        ("Posture changes", plots.table_html(
            changes.assign(timestamp=changes["timestamp"].astype(str)), table_id="changes")),
        ("Trades by posture at entry", plots.table_html(tables.breakdown(result.trades,
                                                                          "posture"),
                                                         table_id="by-posture")),
    ]  # fmt: skip


def trade_list(trades: pd.DataFrame) -> str:
    """Return the trade list (sortable; CSV of the rows shown)."""
    t = trades.head(TRADE_LIST_ROWS).copy()
    for c in ("entry_time", "exit_time"):
        t[c] = t[c].astype(str)
    note = (f"<p class='caption'>first {TRADE_LIST_ROWS:,} of {len(trades):,} trades; all are in "
            "trades.parquet</p>" if len(trades) > TRADE_LIST_ROWS else "")
    return note + plots.table_html(t, table_id="trades", csv_name="trades.csv")


def edge_section(edge: dict) -> str:
    """Return the edge test (``backtest.edge``): shuffled PnL histogram, the run, the p-value."""
    fig = plots.histogram(
        edge["shuffled_pnl"], title="Edge test: PnL on block-shuffled vel_div",
        x_title="PnL of a run (USDT)", unit=" USDT",
        marks=[(edge["actual_pnl"], f"this run {edge['actual_pnl']:,.0f} USDT")],
    )  # fmt: skip
    verdict = ("the signal beats the shuffled runs at the 5 % level" if edge["p_value"] < 0.05
               else "the signal does not beat the shuffled runs at the 5 % level")
    text = (f"p-value {edge['p_value']:.4f} = (1 + {edge['n_at_least']} shuffled runs with PnL >= "
            f"this run's) / ({edge['runs']} + 1): {verdict}. vel_div resampled in blocks of "
            f"{edge['block_bars']} bars, seed {edge['seed']}, config {edge['config_id'][:12]}.")
    return _fig(fig, "fig-edge") + f"<p>{html.escape(text)}</p>"


def _breakdowns(t: pd.DataFrame) -> list[tuple[str, str]]:
    lev = t.assign(leverage_band=pd.cut(t["leverage"], [0, 1, 2, 3, 4, 5, 6.01]).astype(str))
    return [
        ("Per asset", plots.table_html(tables.breakdown(t, "asset"), table_id="by-asset",
                                       csv_name="per_asset.csv")),
        ("Per exit reason", plots.table_html(tables.breakdown(t, "exit_reason"),
                                             table_id="by-exit")),
        ("Leverage bands", plots.table_html(tables.breakdown(lev, "leverage_band"),
                                            table_id="by-leverage")),
        ("Signal buckets", plots.table_html(tables.breakdown(t, "bucket"), table_id="by-bucket")),
    ]  # fmt: skip


def render_report(
    result: ReplayResult,
    *,
    label: str,
    other: ReplayResult | None = None,
    other_label: str = "",
    scans: pd.DataFrame | None = None,
    config: Any = None,
    figures: dict | None = None,
    other_figures: dict | None = None,
    edge: dict | None = None,
) -> str:
    """Return the report HTML for ``result`` (and ``other`` beside it).

    ``figures``/``other_figures``: ``backtest.stats.sample_figures`` of each run (computed here
    when not given); ``scans`` and ``config`` feed the benchmarks, vel_div and parameters;
    ``edge``: an ``EdgeResult.to_dict()`` to show.
    """
    from dolphin.backtest.stats import sample_figures

    if figures is None:
        figures = sample_figures(result.trades, result.equity, result.metrics)
    runs = [(label, result.metrics, figures)]
    if other is not None:
        if other_figures is None:
            other_figures = sample_figures(other.trades, other.equity, other.metrics)
        runs.append((other_label, other.metrics, other_figures))
    t = result.trades
    sections = [
        ("Metrics", metrics_section(runs)),
        ("What the runs modelled", _notes(runs)),
        ("Parameters", parameters_section(config, result.metrics)),
        ("Equity", equity_section(result, label, other, other_label, scans)),
        ("Drawdown", underwater_section(result)),
        ("Daily PnL", daily_section(result)),
        ("Rolling Sharpe", rolling_section(result)),
        ("Exposure and leverage", exposure_section(result)),
        ("Trade PnL", histogram_section(result)),
        ("vel_div", vel_div_section(result, scans, config)),
        ("Monthly returns", periods_section(result)),
        *_breakdowns(t),
        *_survival_sections(result),
        *([("Edge test", edge_section(edge))] if edge else []),
        ("Trades", trade_list(t)),
        ("Days", plots.table_html(result.daily, table_id="days", csv_name="daily.csv")),
    ]
    period = ""
    if len(result.equity):
        ts = result.equity["timestamp"]
        period = (f"<p>{ts.iloc[0]} → {ts.iloc[-1]}: {result.metrics.get('days', 0)} days, "
                  f"{len(result.equity):,} bars of {result.metrics.get('bar', '?')}, "
                  f"{len(t):,} trades</p>")
    body = period + caveat_html(runs) + "".join(
        f"<h2>{html.escape(h)}</h2>{c}" for h, c in sections
    )
    return plots.page(f"DOLPHIN backtest: {label}", body)


# The inline-SVG helpers below are what the sweep page (``ui.sweep_report``) still draws with.


def _scale(y: np.ndarray, lo: float, hi: float) -> np.ndarray:
    span = hi - lo if hi > lo else 1.0
    return H - 10 - (y - lo) / span * (H - 20)


def line_svg(y: Sequence[float], color: str = "#1f77b4") -> str:
    """Return an SVG polyline of ``y`` over the chart width."""
    y = np.asarray(y, dtype=float)
    if y.size == 0:
        return f'<svg width="{W}" height="{H}"></svg>'
    if y.size > 2000:  # keep the file small: sample evenly, keep the last point
        idx = np.unique(np.r_[np.linspace(0, y.size - 1, 2000).astype(int), y.size - 1])
        y = y[idx]
    x = np.linspace(5, W - 5, y.size)
    ys = _scale(y, float(np.nanmin(y)), float(np.nanmax(y)))
    pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(x, ys, strict=True))
    return (
        f'<svg width="{W}" height="{H}"><polyline fill="none" stroke="{color}" '
        f'stroke-width="1.2" points="{pts}"/></svg>'
    )


def render_edge_page(edge: dict, *, scans_label: str) -> str:
    """Return the edge test's own page (``dolphin edge``): histogram, p-value, sample."""
    q = edge.get("shuffled_pnl_quantiles", {})
    summary = pd.DataFrame({
        "quantity": ["this run's PnL (USDT)", "this run's trades", "shuffled runs",
                     "shuffled PnL 5 % quantile", "shuffled PnL median",
                     "shuffled PnL 95 % quantile", "mean trades of a shuffled run", "p-value"],
        "value": [f"{edge['actual_pnl']:,.2f}", str(edge["actual_trades"]), str(edge["runs"]),
                  *(f"{q[k]:,.2f}" if k in q else "n/a" for k in ("0.05", "0.5", "0.95")),
                  f"{np.mean(edge['shuffled_trades']):,.1f}", f"{edge['p_value']:.4f}"],
    })  # fmt: skip
    body = (f"<p>scans {html.escape(scans_label)}, friction {html.escape(edge['friction'])}, "
            f"config <code>{html.escape(edge['config_id'])}</code></p>"
            + plots.table_html(summary, table_id="edge-summary") + edge_section(edge))
    return plots.page("DOLPHIN edge test", body)
