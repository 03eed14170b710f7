"""Self-contained sweep report (HTML, inline SVG, no scripts): DSR/PBO summary, top trials by DSR,
parameter heatmaps (mean Sharpe per pair of swept parameters), the walk-forward table and the
leverage study when given.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from dolphin.ui.report import line_svg

CELL = 28
TOP_COLUMNS = ("config_id", "dsr", "sharpe", "roi", "max_drawdown", "trades", "trades_sha256")


def _color(v: float, lo: float, hi: float) -> str:
    if not np.isfinite(v):
        return "#eeeeee"
    x = (v - lo) / (hi - lo) if hi > lo else 0.5
    r, g = int(220 * (1 - x) + 30 * x), int(60 * (1 - x) + 170 * x)
    return f"rgb({r},{g},80)"


def heatmap_svg(table: pd.DataFrame, title: str) -> str:
    """Return an SVG heatmap of a pivot table (rows × columns), values in tooltips."""
    v = table.to_numpy(dtype=float)
    fin = v[np.isfinite(v)]
    lo, hi = (float(fin.min()), float(fin.max())) if fin.size else (0.0, 1.0)
    left, top = 90, 20
    w, h = left + CELL * v.shape[1] + 10, top + CELL * v.shape[0] + 30
    parts = [f'<text x="4" y="14" font-size="11">{html.escape(title)}</text>']
    for (i, r), (j, c) in itertools.product(enumerate(table.index), enumerate(table.columns)):
        val = v[i, j]
        parts.append(
            f'<rect x="{left + j * CELL}" y="{top + i * CELL}" width="{CELL - 1}" '
            f'height="{CELL - 1}" fill="{_color(val, lo, hi)}"><title>{html.escape(str(r))}, '
            f"{html.escape(str(c))}: {val:.3f}</title></rect>"
        )
    for i, r in enumerate(table.index):
        parts.append(f'<text x="4" y="{top + i * CELL + 18}" font-size="10">{r}</text>')
    for j, c in enumerate(table.columns):
        parts.append(
            f'<text x="{left + j * CELL}" y="{h - 8}" font-size="9">{html.escape(str(c))}</text>'
        )
    return f'<svg width="{w}" height="{h}">{"".join(parts)}</svg>'


def heatmaps(df: pd.DataFrame, names: Sequence[str], metric: str = "sharpe") -> str:
    """Return one heatmap of mean ``metric`` per pair of parameters with several values."""
    varied = [n for n in names if n in df and df[n].nunique() > 1]
    out = []
    for a, b in itertools.combinations(varied, 2):
        table = df.pivot_table(index=a, columns=b, values=metric, aggfunc="mean")
        out.append(heatmap_svg(table, f"mean {metric}: {a} (rows) × {b} (columns)"))
    return "".join(out) or "<p>fewer than two swept parameters</p>"


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda x: f"{x:,.4f}", border=0)


def render_sweep_report(
    df: pd.DataFrame,
    summary: dict[str, Any],
    names: Sequence[str],
    *,
    walkforward: pd.DataFrame | None = None,
    leverage: pd.DataFrame | None = None,
) -> str:
    """Return the sweep report HTML."""
    srows = pd.DataFrame(
        {"item": list(summary), "value": [html.escape(str(v)) for v in summary.values()]}
    )
    cols = [*names, *[c for c in TOP_COLUMNS if c in df]]
    top = df.sort_values("dsr", ascending=False).head(20)[cols] if "dsr" in df else df.head(0)
    sections = [
        ("Summary: best by deflated Sharpe, PBO by CSCV", srows.to_html(index=False, border=0)),
        ("Top 20 by DSR", _table(top)),
        ("Parameter heatmaps", heatmaps(df, names)),
    ]
    if walkforward is not None:
        sections.append(("Walk-forward (out of sample)", _table(walkforward)))
    if leverage is not None:
        sections.append(("Geometric growth vs max leverage", line_svg(leverage["growth"])))
        sections.append(("Leverage study", _table(leverage)))
    body = "".join(f"<h2>{html.escape(h)}</h2>{c}" for h, c in sections)
    style = (
        "body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse}"
        "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}"
        "svg{background:#fafafa;border:1px solid #eee;margin:4px}"
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>DOLPHIN sweep</title>"
        f"<style>{style}</style></head><body><h1>DOLPHIN sweep: {len(df)} trials</h1>"
        f"{body}</body></html>"
    )
