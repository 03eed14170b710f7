"""Self-contained HTML pages of the research commands: sweep, walk-forward, optimize, leverage.

One page per command, each with its own title and sections. plotly.js (the pinned plotly's own
bundle) is inlined once per page, so a page opens offline and needs no CDN; figures come from
``ui.research_figures``. Tables are escaped by pandas once (values are never pre-escaped), nested
summaries are flattened to ``a.b`` rows, and a best result is shown by its parameters, not only
by its config id.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from dolphin.ui import research_figures as rf

TOP_N = 20
METRICS = ("dsr", "sharpe", "roi", "max_drawdown", "trades")
STYLE = (
    "body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}"
    "table{border-collapse:collapse;margin:6px 0 14px}"
    "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}"
    "th{background:#f4f4f4}code{background:#f4f4f4;padding:1px 4px}"
    ".figure{border:1px solid #eee;margin:8px 0}.note{color:#555}"
)


# ------------------------------------------------------------------ building blocks
def fmt(v: Any) -> str:
    """Format one value for a table cell (not escaped)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, int | np.integer):
        return f"{int(v):,}"
    if isinstance(v, float | np.floating):
        return f"{float(v):,.4f}" if abs(v) < 1e6 else f"{float(v):,.0f}"
    return str(v)


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Return ``(dotted key, value)`` rows of a nested mapping, in its order."""
    rows: list[tuple[str, Any]] = []
    for k, v in mapping.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            rows += flatten(v, key + ".")
        elif isinstance(v, list | tuple):
            rows.append((key, ", ".join(fmt(x) for x in v)))
        else:
            rows.append((key, v))
    return rows


def kv_table(mapping: Mapping[str, Any]) -> str:
    """Return a two-column table of a (nested) mapping."""
    # formatted before the frame is built: a column mixing ints and floats would turn 16 to 16.0
    rows = pd.DataFrame([(k, fmt(v)) for k, v in flatten(mapping)], columns=["item", "value"])
    return rows.to_html(index=False, border=0, escape=True)


def frame_table(df: pd.DataFrame) -> str:
    """Return an HTML table of ``df`` with formatted cells (escaped once, by pandas)."""
    shown = df.copy()
    for col in shown.columns:
        shown[col] = [fmt(v) for v in shown[col]]
    return shown.to_html(index=False, border=0, escape=True)


def figure(fig, div_id: str) -> str:
    """Return a figure's div and script; plotly.js itself is in the page head."""
    return ('<div class="figure">'
            + fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                          config={"displaylogo": False, "responsive": True})
            + "</div>")  # fmt: skip


def page(title: str, sections: Iterable[tuple[str, str]], *, lead: str = "") -> str:
    """Return the whole page: plotly.js inline once, the title, ``lead`` and the sections."""
    from plotly.offline import get_plotlyjs

    body = "".join(f"<h2>{html.escape(h)}</h2>{c}" for h, c in sections)
    lead_html = f'<p class="note">{html.escape(lead)}</p>' if lead else ""
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head>'
        f"<body><h1>{html.escape(title)}</h1>{lead_html}{body}</body></html>"
    )


def _short(config_id: Any) -> str:
    return str(config_id)[:12]


def _with_short_ids(df: pd.DataFrame) -> pd.DataFrame:
    if "config_id" in df:
        df = df.assign(config_id=[_short(v) for v in df["config_id"]])
    return df


def best_table(row: Mapping[str, Any], names: Sequence[str], metrics: Sequence[str]) -> str:
    """Return the parameters and metrics of one result, with its full config id."""
    items = {**{n: row[n] for n in names if n in row},
             **{m: row[m] for m in metrics if m in row}}  # fmt: skip
    items["config_id"] = row.get("config_id")
    return kv_table(items)


def reproduce_note(hint: str | None) -> str:
    """Return the line naming the exported config and the command reproducing it."""
    if not hint:
        return ('<p class="note">Write this config with <code>--export-best best.yml</code>; '
                "<code>dolphin backtest --config best.yml</code> reproduces it.</p>")
    return f'<p class="note">Reproduce: <code>{html.escape(hint)}</code></p>'


# ------------------------------------------------------------------ sweep
def heatmap_sections(df: pd.DataFrame, names: Sequence[str], metric: str = "sharpe") -> str:
    """Return one heatmap of mean ``metric`` per pair of parameters with several values."""
    varied = [n for n in names if n in df and df[n].nunique() > 1]
    out = []
    for k, (a, b) in enumerate(itertools.combinations(varied, 2)):
        table = df.pivot_table(index=a, columns=b, values=metric, aggfunc="mean")
        out.append(figure(rf.heatmap_figure(table, a, b, metric), f"heatmap-{k}"))
    return "".join(out) or "<p>fewer than two swept parameters: no heatmap</p>"


def top_by_dsr(df: pd.DataFrame, names: Sequence[str], n: int = TOP_N) -> pd.DataFrame:
    """Return the ``n`` best rows by DSR (ties by daily Sharpe): parameters, then metrics."""
    if "dsr" not in df or df.empty:
        return df.head(0)
    keys = ["dsr", "sr_daily"] if "sr_daily" in df else ["dsr"]
    ranked = df[np.isfinite(df["dsr"].astype(float))].sort_values(keys, ascending=False)
    cols = [*[c for c in names if c in df], *[m for m in METRICS if m in df], "config_id"]
    return ranked.head(n)[cols]


def sweep_page(df: pd.DataFrame, summary: Mapping[str, Any], names: Sequence[str], *,
               reproduce: str | None = None) -> str:
    """Return the sweep page: summary, the best by DSR with its parameters, top N, heatmaps."""
    top = top_by_dsr(df, names)
    shown = {k: v for k, v in summary.items() if k not in ("best_by_dsr", "best_by_roi")}
    sections = [("Summary", kv_table(shown))]
    if len(top):
        best = top.iloc[0].to_dict()
        sections.append(("Best by deflated Sharpe (DSR)",
                         best_table(best, names, METRICS) + reproduce_note(reproduce)))
    if "roi" in df and len(df):
        sections.append(("Best by raw ROI (for contrast: not a selection rule)",
                         best_table(df.loc[df["roi"].idxmax()].to_dict(), names, METRICS)))
    sections += [
        (f"Top {min(TOP_N, len(top))} by DSR", frame_table(_with_short_ids(top))),
        ("Parameter heatmaps: mean Sharpe per pair of swept parameters",
         heatmap_sections(df, names)),
    ]
    lead = (f"{len(df):,} combinations of {', '.join(names) or 'no parameter'}; "
            "ranked by the deflated Sharpe ratio, PBO by CSCV.")
    return page(f"DOLPHIN sweep: {len(df):,} combinations", sections, lead=lead)


# ------------------------------------------------------------------ walk-forward
def stitched_series(table: pd.DataFrame) -> tuple[list[str], list[float]]:
    """Return the dates and daily returns of the chained test windows."""
    if "oos_daily_returns" not in table or table.empty:
        return [], []
    dates = [str(d) for ds in table["oos_dates"] for d in ds]
    rets = [float(r) for rs in table["oos_daily_returns"] for r in rs]
    return dates, rets


def walkforward_page(table: pd.DataFrame, stitched: Mapping[str, Any], names: Sequence[str], *,
                     select: str = "dsr", reproduce: str | None = None) -> str:
    """Return the walk-forward page: stitched metrics and equity, in/out of sample per window,
    the window table with each window's chosen parameters."""
    dates, rets = stitched_series(table)
    shown = table.drop(columns=[c for c in ("oos_daily_returns", "oos_dates") if c in table])
    sections = [("Stitched out of sample", kv_table(stitched))]
    if dates:
        sections.append(("Stitched out-of-sample equity",
                         figure(rf.equity_figure(dates, rets, [str(s) for s in
                                                               table["test_start"]]), "equity")))
    if len(table):
        sections.append(("In sample vs out of sample per window",
                         figure(rf.windows_figure(table, "sharpe"), "windows-sharpe")
                         + figure(rf.windows_figure(table, "roi"), "windows-roi")))
        last = table.iloc[-1].to_dict()
        sections.append(("Latest window's pick (the config to trade next)",
                         best_table(last, names, ("oos_roi", "oos_sharpe", "oos_trades"))
                         + reproduce_note(reproduce)))
    sections.append(("Windows", frame_table(_with_short_ids(shown))))
    lead = (f"{len(table)} window(s); on each train window the grid is swept and the best by "
            f"{select} runs on the following test window.")
    return page(f"DOLPHIN walk-forward: {len(table)} windows", sections, lead=lead)


# ------------------------------------------------------------------ optimize
def optimize_page(trials: pd.DataFrame, summary: Mapping[str, Any], names: Sequence[str],
                  importances: Mapping[str, float], *, reproduce: str | None = None) -> str:
    """Return the optimize page: best trial with its parameters, history, importances, trials."""
    sections = [("Summary", kv_table({k: v for k, v in summary.items() if k != "best"}))]
    best = summary.get("best")
    if best:
        row = trials.loc[trials["trial"] == best["trial"]].iloc[0].to_dict()
        sections.append(("Best trial (highest daily Sharpe; DSR given every trial)",
                         best_table({**row, "dsr": best.get("dsr")}, names,
                                    ("trial", *METRICS)) + reproduce_note(reproduce)))
    if "objective" in trials and len(trials):
        sections.append(("Trial history", figure(rf.history_figure(trials), "history")))
    if importances:
        sections.append(("Parameter importances",
                         figure(rf.importance_figure(importances), "importances")))
    else:
        sections.append(("Parameter importances", "<p>not enough valid trials to estimate</p>"))
    cols = [c for c in ("trial", *names, "objective", "sharpe", "roi", "max_drawdown", "trades",
                        "config_id") if c in trials]  # fmt: skip
    sections.append(("Trials", frame_table(_with_short_ids(trials[cols]))))
    return page(f"DOLPHIN optimize: {len(trials):,} trials", sections,
                lead="Seeded TPE search; objective: daily Sharpe, maximised.")


# ------------------------------------------------------------------ leverage study
def leverage_page(table: pd.DataFrame, summary: Mapping[str, Any]) -> str:
    """Return the leverage-study page: growth curve with its band, peak/knee, the table."""
    marks = {f"peak {summary['peak_leverage']:g}x": summary["peak_leverage"]}
    if summary["knee_leverage"] != summary["peak_leverage"]:
        marks[f"knee {summary['knee_leverage']:g}x"] = summary["knee_leverage"]
    claim = summary.get("bible_claim")
    levels = table["max_leverage"].astype(float)
    if claim is not None and levels.min() <= claim <= levels.max():
        marks[f"claim {claim:g}x"] = claim
    sections = [
        ("Summary", kv_table(summary)),
        ("Growth vs max leverage", figure(rf.growth_figure(table, marks), "growth")),
        ("Levels", frame_table(_with_short_ids(table))),
    ]
    lead = ("Geometric mean daily return at each max leverage; the band resamples whole days. "
            "Knee: the lowest level whose growth reaches the peak's lower band.")
    return page(f"DOLPHIN leverage study: {len(table)} levels", sections, lead=lead)
