"""Plotly figures of the research pages: sweep heatmaps, walk-forward windows and stitched
equity, optimisation history and parameter importances, the leverage growth curve.

Builders take plain frames and return ``plotly.graph_objects.Figure``; the page module
(``ui.research_pages``) embeds them. Every figure has titled axes so a reader never has to guess
what a tick means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

#: Red (low) to green (high); the same scale for every metric heatmap.
COLORSCALE = "RdYlGn"
LAYOUT = {"template": "plotly_white", "margin": {"l": 70, "r": 30, "t": 50, "b": 60},
          "height": 380, "font": {"size": 12}}  # fmt: skip


def _fig(title: str, x_title: str, y_title: str, **layout) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title={"text": title, "x": 0.01}, **{**LAYOUT, **layout})
    fig.update_xaxes(title_text=x_title, showticklabels=True)
    fig.update_yaxes(title_text=y_title, showticklabels=True)
    return fig


def heatmap_figure(table: pd.DataFrame, row_name: str, col_name: str, metric: str) -> go.Figure:
    """Return a heatmap of a pivot table (rows × columns of two parameters), cells annotated."""
    z = table.to_numpy(dtype=float)
    fig = _fig(f"mean {metric}: {row_name} × {col_name}", col_name, row_name,
               height=max(260, 70 + 45 * len(table.index)))  # fmt: skip
    fig.add_trace(go.Heatmap(
        z=np.where(np.isfinite(z), z, None).tolist(),
        x=[str(c) for c in table.columns], y=[str(r) for r in table.index],
        colorscale=COLORSCALE, colorbar={"title": {"text": metric}},
        texttemplate="%{z:.3g}", hovertemplate=f"{row_name}=%{{y}}<br>{col_name}=%{{x}}<br>"
                                                f"{metric}=%{{z:.4g}}<extra></extra>",
    ))  # fmt: skip
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    return fig


def windows_figure(table: pd.DataFrame, metric: str = "sharpe") -> go.Figure:
    """Return in-sample vs out-of-sample ``metric`` per walk-forward window (grouped bars)."""
    x = [str(v) for v in table["test_start"]]
    fig = _fig(f"{metric} per window: in sample (train) vs out of sample (test)",
               "test window start", metric, barmode="group")  # fmt: skip
    fig.add_trace(go.Bar(x=x, y=table[f"is_{metric}"].astype(float), name="in sample"))
    fig.add_trace(go.Bar(x=x, y=table[f"oos_{metric}"].astype(float), name="out of sample"))
    fig.update_xaxes(type="category")
    return fig


def equity_figure(dates: Sequence[str], returns: Sequence[float], starts: Sequence[str] = ()
                  ) -> go.Figure:
    """Return the stitched out-of-sample equity (1 before the first test day, then each day's
    close) with a dotted line at each window start."""
    eq = np.r_[1.0, np.cumprod(1.0 + np.asarray(returns, dtype=float))]
    x = ["start", *[str(d) for d in dates]]
    fig = _fig("stitched out-of-sample equity (compounded test-window daily returns)",
               "test day (UTC), equity at its end", "equity (start = 1)")  # fmt: skip
    fig.add_trace(go.Scatter(x=x, y=eq, mode="lines+markers", name="OOS equity"))
    fig.update_xaxes(type="category")
    for s in starts:
        if s in x:
            fig.add_vline(x=x.index(s), line={"dash": "dot", "color": "#999", "width": 1})
    fig.add_hline(y=1.0, line={"color": "#bbb", "width": 1})
    return fig


def history_figure(trials: pd.DataFrame) -> go.Figure:
    """Return the objective of every trial and the best so far, by trial number."""
    ok = trials[np.isfinite(trials["objective"].astype(float))]
    ok = ok[ok["objective"] > -1e8]  # the stand-in value of a trial without a daily Sharpe
    fig = _fig("optimisation history", "trial", "objective (daily Sharpe)")
    fig.add_trace(go.Scatter(x=ok["trial"], y=ok["objective"], mode="markers", name="trial"))
    fig.add_trace(go.Scatter(x=ok["trial"], y=ok["objective"].cummax(), mode="lines",
                             name="best so far", line={"shape": "hv"}))  # fmt: skip
    return fig


def importance_figure(importances: Mapping[str, float]) -> go.Figure:
    """Return the parameter importances (fANOVA) as horizontal bars, largest on top."""
    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig = _fig("parameter importances (fANOVA on the objective)", "importance (sums to 1)",
               "parameter", height=max(260, 90 + 40 * len(items)))  # fmt: skip
    fig.add_trace(go.Bar(x=[v for _, v in items], y=[k for k, _ in items], orientation="h"))
    return fig


def growth_figure(table: pd.DataFrame, marks: Mapping[str, float]) -> go.Figure:
    """Return daily geometric growth against max leverage with its bootstrap band, and a
    vertical line at each of ``marks`` (label → leverage: peak, knee, a claimed level)."""
    x = table["max_leverage"].astype(float).tolist()
    pct = {c: (table[c].astype(float) * 100.0).tolist() for c in ("growth", "band_lo", "band_hi")}
    fig = _fig("geometric growth per day vs max leverage (band: bootstrap of days)",
               "max leverage (x)", "geometric growth per day (%)")  # fmt: skip
    fig.add_trace(go.Scatter(x=x, y=pct["band_hi"], mode="lines", line={"width": 0},
                             showlegend=False, hoverinfo="skip"))  # fmt: skip
    fig.add_trace(go.Scatter(x=x, y=pct["band_lo"], mode="lines", line={"width": 0},
                             fill="tonexty", fillcolor="rgba(158,202,225,0.5)",
                             name="bootstrap band"))  # fmt: skip
    fig.add_trace(go.Scatter(x=x, y=pct["growth"], mode="lines+markers", name="growth",
                             line={"color": "#08519c", "width": 2}))  # fmt: skip
    fig.add_hline(y=0.0, line={"color": "#999", "width": 1})
    for label, level in marks.items():
        fig.add_vline(x=level, line={"dash": "dash", "width": 1}, annotation_text=label)
    return fig
