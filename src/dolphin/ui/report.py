"""Self-contained ``report.html``: inline SVG charts and tables, no scripts, no external files.

Sections: metrics (the run beside its comparison run, e.g. default vs HELL friction), equity and
drawdown, daily PnL, trade PnL histogram, exit reasons, leverage and bucket breakdowns.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd

from dolphin.backtest.replay import ReplayResult

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
    "funding_paid",
    "avg_hold_bars",
    "exposure",
    "final_capital",
    "config_id",
    "trades_sha256",
)


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


def bars_svg(values: Sequence[float], labels: Sequence[str] | None = None) -> str:
    """Return an SVG bar chart (green up, red down) with an optional label per bar."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return f'<svg width="{W}" height="{H}"></svg>'
    lo, hi = min(0.0, float(v.min())), max(0.0, float(v.max()))
    bw = (W - 10) / v.size
    zero = _scale(np.array([0.0]), lo, hi)[0]
    parts = []
    for i, val in enumerate(v):
        y = _scale(np.array([val]), lo, hi)[0]
        top, h = min(y, zero), abs(zero - y)
        color = "#2ca02c" if val >= 0 else "#d62728"
        title = f"<title>{html.escape(labels[i]) if labels else i}: {val:,.2f}</title>"
        parts.append(
            f'<rect x="{5 + i * bw:.1f}" y="{top:.1f}" width="{max(bw - 1, 1):.1f}" '
            f'height="{max(h, 0.5):.1f}" fill="{color}">{title}</rect>'
        )
    return f'<svg width="{W}" height="{H}">{"".join(parts)}</svg>'


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda x: f"{x:,.4f}", border=0)


def _breakdown(trades: pd.DataFrame, key: str) -> pd.DataFrame:
    if trades.empty:
        return pd.DataFrame({key: [], "trades": [], "pnl": [], "win_rate": []})
    g = trades.groupby(key, observed=True)["pnl"]
    return pd.DataFrame(
        {"trades": g.size(), "pnl": g.sum(), "win_rate": g.apply(lambda s: float((s > 0).mean()))}
    ).reset_index()


def _survival_sections(result: ReplayResult) -> list[tuple[str, str]]:
    """Rm chart, time per posture and posture changes when the survival controller ran."""
    eq = result.equity
    if "rm" not in eq:
        return []
    posture = eq["posture"].astype(str)
    changed = posture.ne(posture.shift())
    changes = eq.loc[changed, ["timestamp", "posture", "rm"]].head(200)
    share = posture.value_counts(normalize=True).rename_axis("posture").reset_index(name="share")
    return [
        (
            "Survival Rm (posture: APEX >= 0.90, STALKER >= 0.75, TURTLE >= 0.50)",
            line_svg(eq["rm"].to_numpy(dtype=float), "#9467bd"),
        ),
        ("Time per posture", _table(share)),
        ("Posture changes", _table(changes.assign(timestamp=changes["timestamp"].astype(str)))),
        ("Trades by posture at entry", _table(_breakdown(result.trades, "posture"))),
    ]


def render_report(
    result: ReplayResult, *, label: str, other: ReplayResult | None = None, other_label: str = ""
) -> str:
    """Return the report HTML for ``result`` (and ``other`` beside it in the metrics table)."""
    cols = {label: result.metrics}
    if other is not None:
        cols[other_label] = other.metrics
    mt = pd.DataFrame(
        {
            "metric": METRIC_ROWS,
            **{k: [_cell(m, r) for r in METRIC_ROWS] for k, m in cols.items()},
        }
    )
    eq = result.equity["equity"].to_numpy(dtype=float)
    peak = np.maximum.accumulate(eq) if eq.size else eq
    dd = (eq - peak) / peak if eq.size else eq
    t = result.trades
    hist, edges = np.histogram(t["pnl"], bins=30) if len(t) else (np.array([]), np.array([0.0]))
    lev = t.assign(leverage_band=pd.cut(t["leverage"], [0, 1, 2, 3, 4, 5, 6.01]).astype(str))
    from dolphin.backtest.notes import notes_lines

    notes = "".join(f"<li>{html.escape(x)}</li>" for x in notes_lines(result.metrics))
    sections = [
        ("Metrics", mt.to_html(index=False, border=0, escape=False)),
        ("What this run modelled", f"<ul class='notes'>{notes}</ul>"),
        ("Equity (mark to market)", line_svg(eq)),
        ("Drawdown", line_svg(dd, "#d62728")),
        ("Daily PnL", bars_svg(result.daily["pnl"], list(result.daily["date"]))),
        ("Trade PnL histogram", bars_svg(hist, [f"{a:,.1f}" for a in edges[:-1]])),
        ("Exit reasons", _table(_breakdown(t, "exit_reason"))),
        ("Leverage", _table(_breakdown(lev, "leverage_band"))),
        ("Signal buckets", _table(_breakdown(t, "bucket"))),
        *_survival_sections(result),
        ("Days", _table(result.daily)),
    ]
    body = "".join(f"<h2>{html.escape(h)}</h2>{c}" for h, c in sections)
    style = (
        "body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse}"
        "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}"
        "svg{background:#fafafa;border:1px solid #eee}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>DOLPHIN backtest</title>"
        f"<style>{style}</style></head><body><h1>DOLPHIN backtest: {html.escape(label)}</h1>"
        f"{body}</body></html>"
    )
