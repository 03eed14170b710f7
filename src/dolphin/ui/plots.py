"""Plotly figure builders and the self-contained HTML page they go into.

Every page is one file that opens offline: plotly.js is inlined once per page (``page``), each
figure is a ``<div>`` plus a small script (``figure_html``), nothing is fetched from a CDN or
the network. Every builder titles its axes with their units, uses a date axis when x is time
(UTC, shown without an offset) and shows values with units on hover.

Stable API (the backtest report and the research pages share it):

- ``Series(name, x, y, kind="line", axis="y", color=None, dash=None, fmt=",.2f", unit="")``:
  one trace; ``kind`` is ``line``, ``step``, ``area``, ``bar`` or ``markers``; ``axis`` ``y2``
  puts it on the right-hand axis.
- ``lines(series, *, title, y_title, y_format=None, y2_title=None, y2_format=None,
  x_title="time (UTC)", hlines=(), height=320)``: lines/areas/bars/markers over a shared x.
- ``histogram(values, *, title, x_title, unit="", fmt=",.2f", bins=40, marks=())``: counts
  per bin; ``marks`` are ``(value, label)`` vertical lines (e.g. the actual run).
- ``heatmap(z, *, x, y, title, x_title, y_title, unit="", fmt=".2%", zmid=0.0,
  colorscale="RdYlGn")``: a matrix with its values written in the cells.
- ``figure_html(fig, div_id)``: the figure's HTML fragment (no plotly.js).
- ``table_html(df, *, table_id, csv_name=None, fmt=",.4f")``: an HTML table whose header
  sorts on click; with ``csv_name`` a button downloads the table as CSV.
- ``page(title, body)``: the whole document with plotly.js, the style and the table script.
- ``thin(x, y, max_points)``: min/max decimation of a long series (spikes kept).
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

MAX_POINTS = 5000
FIGURE_CONFIG = {"displaylogo": False, "responsive": True}
KINDS = ("line", "step", "area", "bar", "markers")
STYLE = (
    "body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}"
    "table{border-collapse:collapse;font-size:13px}"
    "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}"
    "th{cursor:pointer;background:#f4f4f4;position:sticky;top:0}"
    ".caption{color:#555;font-size:13px;margin:2px 0 10px}"
    ".caveat{background:#fff3cd;border:1px solid #e0c36a;padding:8px 12px;margin:8px 0}"
    ".scroll{max-height:420px;max-width:100%;overflow:auto;display:inline-block}"
    "button.csv{margin:4px 0}"
)
#: Sorts a table on a header click (numbers numerically) and downloads a table as CSV.
TABLE_SCRIPT = """
function dolphinSort(th){const t=th.closest('table'),b=t.tBodies[0],i=th.cellIndex;
const asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
const key=r=>{const s=r.cells[i].innerText.replace(/,/g,'');const n=parseFloat(s);
return isNaN(n)||!/^[-+]?[0-9.]/.test(s)?s:n;};
Array.from(b.rows).sort((x,y)=>{const a=key(x),c=key(y);
if(typeof a===typeof c){return (a<c?-1:a>c?1:0)*(asc?1:-1);}
return (typeof a==='number'?-1:1)*(asc?1:-1);}).forEach(r=>b.appendChild(r));}
function dolphinCsv(id,name){const t=document.getElementById(id);
const q=s=>/[",\\n]/.test(s)?'"'+s.replace(/"/g,'""')+'"':s;
const rows=Array.from(t.rows).map(r=>Array.from(r.cells).map(c=>q(c.innerText)).join(','));
const a=document.createElement('a');
a.href=URL.createObjectURL(new Blob([rows.join('\\n')+'\\n'],{type:'text/csv'}));
a.download=name;document.body.appendChild(a);a.click();a.remove();}
"""


@dataclass(frozen=True)
class Series:
    """One trace of a ``lines`` figure: ``y`` over ``x`` with its unit for the hover text."""

    name: str
    x: Any
    y: Any
    kind: str = "line"
    axis: str = "y"
    color: Any = None  # one colour, or one per point (bars)
    dash: str | None = None
    fmt: str = ",.2f"
    unit: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"series {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}"
            )
        if self.axis not in ("y", "y2"):
            raise ValueError(f"series {self.name!r}: axis must be 'y' or 'y2', got {self.axis!r}")


def _x(x: Any) -> Any:
    """Return ``x`` ready for plotly: tz-aware times as naive UTC (plotly.js drops offsets)."""
    if isinstance(x, pd.Series):
        x = x.to_numpy() if not isinstance(x.dtype, pd.DatetimeTZDtype) else pd.DatetimeIndex(x)
    if isinstance(x, pd.DatetimeIndex) and x.tz is not None:
        return x.tz_convert("UTC").tz_localize(None)
    return x


def thin(x: Any, y: Any, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Return at most about ``max_points`` points of ``(x, y)``: each bucket's min and max."""
    xa, ya = np.asarray(_x(x)), np.asarray(y, dtype=float)
    n = ya.size
    if n <= max_points:
        return xa, ya
    edges = np.linspace(0, n, max_points // 2 + 1).astype(np.int64)
    keep = [0, n - 1]
    for lo, hi in itertools.pairwise(edges):
        seg = ya[lo:hi]
        if hi > lo and np.isfinite(seg).any():
            keep += [lo + int(np.nanargmin(seg)), lo + int(np.nanargmax(seg))]
    idx = np.unique(np.asarray(keep))
    return xa[idx], ya[idx]


def _trace(s: Series) -> go.BaseTraceType:
    hover = f"{html.escape(s.name)}: %{{y:{s.fmt}}}{s.unit}<extra></extra>"
    common = {"x": _x(s.x), "y": s.y, "name": s.name, "hovertemplate": hover,
              "yaxis": s.axis}  # fmt: skip
    if s.kind == "bar":
        return go.Bar(**common, marker_color=s.color)
    if s.kind == "markers":
        return go.Scatter(**common, mode="markers", marker={"color": s.color, "size": 7})
    line = {"color": s.color, "dash": s.dash, "width": 1.5}
    if s.kind == "step":
        line["shape"] = "hv"
    fill = "tozeroy" if s.kind == "area" else None
    return go.Scatter(**common, mode="lines", line=line, fill=fill)


def _layout(fig: go.Figure, title: str, height: int) -> None:
    fig.update_layout(
        title={"text": title, "x": 0.01, "font": {"size": 15}},
        template="plotly_white",
        height=height,
        margin={"l": 70, "r": 70, "t": 50, "b": 50},
        legend={"orientation": "h", "x": 1.0, "xanchor": "right", "y": 1.02,
                "yanchor": "bottom"},
        hovermode="x unified",
    )


def lines(
    series: Sequence[Series],
    *,
    title: str,
    y_title: str,
    y_format: str | None = None,
    y2_title: str | None = None,
    y2_format: str | None = None,
    x_title: str = "time (UTC)",
    hlines: Sequence[tuple[float, str]] = (),
    height: int = 320,
) -> go.Figure:
    """Return a figure of ``series`` over a shared x axis (a date axis when x is time)."""
    fig = go.Figure([_trace(s) for s in series])
    _layout(fig, title, height)
    fig.update_xaxes(title_text=x_title, showline=True, ticks="outside")
    fig.update_yaxes(title_text=y_title, tickformat=y_format, showline=True, ticks="outside")
    if y2_title is not None or any(s.axis == "y2" for s in series):
        fig.update_layout(yaxis2={"title": {"text": y2_title or ""}, "overlaying": "y",
                                  "side": "right", "tickformat": y2_format, "showgrid": False,
                                  "ticks": "outside", "showline": True})  # fmt: skip
    for value, label in hlines:
        fig.add_hline(y=value, line_dash="dot", line_color="#888", annotation_text=label,
                      annotation_position="bottom right")  # fmt: skip
    return fig


def histogram(
    values: Any,
    *,
    title: str,
    x_title: str,
    unit: str = "",
    fmt: str = ",.2f",
    bins: int = 40,
    marks: Sequence[tuple[float, str]] = (),
) -> go.Figure:
    """Return a histogram of ``values`` (counts per bin) with vertical ``marks``."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    hover = f"%{{x:{fmt}}}{unit}: %{{y}}<extra></extra>"
    fig = go.Figure(go.Histogram(x=v, nbinsx=bins, marker_color="#4c78a8", name="count",
                                 hovertemplate=hover))
    _layout(fig, title, 320)
    fig.update_layout(hovermode="closest", bargap=0.05, showlegend=False)
    fig.update_xaxes(title_text=x_title, ticks="outside", showline=True)
    fig.update_yaxes(title_text="count", ticks="outside", showline=True)
    for value, label in marks:
        fig.add_vline(x=value, line_color="#d62728", line_width=2, annotation_text=label,
                      annotation_position="top")  # fmt: skip
    return fig


def heatmap(
    z: Any,
    *,
    x: Sequence[Any],
    y: Sequence[Any],
    title: str,
    x_title: str,
    y_title: str,
    unit: str = "",
    fmt: str = ".2%",
    zmid: float | None = 0.0,
    colorscale: str = "RdYlGn",
) -> go.Figure:
    """Return a heatmap of the matrix ``z`` (rows ``y`` × columns ``x``), values in the cells."""
    zz = np.asarray(z, dtype=float)
    hover = f"{x_title} %{{x}}, {y_title} %{{y}}: %{{z:{fmt}}}{unit}<extra></extra>"
    fig = go.Figure(go.Heatmap(
        z=zz, x=[str(v) for v in x], y=[str(v) for v in y], colorscale=colorscale, zmid=zmid,
        texttemplate=f"%{{z:{fmt}}}", colorbar={"tickformat": fmt, "title": {"text": unit}},
        hovertemplate=hover,
    ))
    _layout(fig, title, max(220, 60 + 36 * max(len(y), 1)))
    fig.update_layout(hovermode="closest")
    fig.update_xaxes(title_text=x_title, type="category", ticks="outside")
    fig.update_yaxes(title_text=y_title, type="category", ticks="outside", autorange="reversed")
    return fig


def figure_html(fig: go.Figure, div_id: str) -> str:
    """Return ``fig`` as an HTML fragment (its div and script; plotly.js comes from ``page``)."""
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config=FIGURE_CONFIG)  # fmt: skip


def _cell(v: Any, fmt: str) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    if isinstance(v, float | np.floating):
        return format(float(v), fmt)
    return html.escape(str(v))


def table_html(
    df: pd.DataFrame, *, table_id: str, csv_name: str | None = None, fmt: str = ",.4f"
) -> str:
    """Return ``df`` as a table sortable by its headers; with ``csv_name``, a CSV button."""
    head = "".join(f"<th onclick='dolphinSort(this)'>{html.escape(str(c))}</th>"
                   for c in df.columns)  # fmt: skip
    rows = "".join(
        "<tr>" + "".join(f"<td>{_cell(v, fmt)}</td>" for v in row) + "</tr>"
        for row in df.itertuples(index=False, name=None)
    )
    table = (f"<table id='{table_id}'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>"
             "</table>")  # fmt: skip
    if csv_name is None:
        return table
    button = (f"<button class='csv' onclick=\"dolphinCsv('{table_id}','{html.escape(csv_name)}')\""
              f">download CSV ({len(df):,} rows)</button>")  # fmt: skip
    return f"{button}<br><div class='scroll'>{table}</div>"


def page(title: str, body: str) -> str:
    """Return the self-contained document: plotly.js inline once, the style, the table script."""
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script>"
        f"<script type='text/javascript'>{TABLE_SCRIPT}</script></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
