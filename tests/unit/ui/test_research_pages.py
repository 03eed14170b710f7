"""The research pages: one page per command, plotly.js inline once, tables escaped once, the
best result shown by its parameters, nested summaries flattened."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dolphin.ui import research_pages as rp

NAMES = ["vel_div_threshold", "max_hold_bars"]


def _sweep_frame() -> pd.DataFrame:
    rows = []
    for i, (v, h) in enumerate([(-0.015, 60), (-0.015, 120), (-0.02, 60), (-0.02, 120)]):
        rows.append({"vel_div_threshold": v, "max_hold_bars": h, "dsr": [0.2, 0.9, 0.1, 0.5][i],
                     "sr_daily": 0.1 * i, "sharpe": 1.0 + i, "roi": [0.01, 0.02, 0.03, -0.01][i],
                     "max_drawdown": 0.01, "trades": 10 + i, "config_id": f"{i:x}" * 64})
    return pd.DataFrame(rows)


def _plotly_once(html: str) -> None:
    assert html.count("<script type=\"text/javascript\">/**") == 1  # the bundle, inline, once
    assert "cdn.plot.ly" not in html.split("</head>")[1] and "<script src" not in html


def test_sweep_page_shows_the_best_by_dsr_with_its_parameters_and_no_escaped_dicts():
    summary = {"trials": 4, "pbo": None, "best_by_dsr": {"config_id": "1" * 64, "dsr": 0.9},
               "best_by_roi": {"config_id": "2" * 64, "roi": 0.03}}
    html = rp.sweep_page(_sweep_frame(), summary, NAMES, reproduce="dolphin backtest --config b")
    _plotly_once(html)
    assert "<title>DOLPHIN sweep: 4 combinations</title>" in html
    body = html.split("</head>")[1]
    assert "{&#x27;" not in body and "&amp;#x27;" not in body and "{'" not in body
    best = body.split("Best by deflated Sharpe")[1].split("</table>")[0]
    assert "<td>vel_div_threshold</td>" in best and "<td>-0.0150</td>" in best
    assert "<td>120</td>" in best and "1" * 64 in best  # row 1 has the highest DSR
    assert "dolphin backtest --config b" in body
    assert body.count('class="plotly-graph-div"') == 1  # one pair of swept parameters
    assert '"type":"heatmap"' in body and '"colorscale"' in body


def test_top_by_dsr_ranks_by_dsr_and_puts_parameters_first():
    top = rp.top_by_dsr(_sweep_frame(), NAMES, n=2)
    assert top["dsr"].tolist() == [0.9, 0.5]
    assert list(top.columns[:2]) == NAMES


def test_flatten_gives_dotted_rows_and_kv_table_keeps_ints_ints():
    assert rp.flatten({"a": 1, "b": {"c": 2.5, "d": [1, 2]}}) == [("a", 1), ("b.c", 2.5),
                                                                  ("b.d", "1, 2")]
    table = rp.kv_table({"trials": 16, "sr0": 1.5, "x": "<b>"})
    assert "<td>16</td>" in table and "<td>1.5000</td>" in table and "&lt;b&gt;" in table


@pytest.mark.parametrize(("value", "text"), [(None, "–"), (float("nan"), "–"), (3, "3"),
                                             (np.int64(1234), "1,234"), (0.5, "0.5000"),
                                             (True, "True"), ("x", "x")])
def test_fmt(value, text):
    assert rp.fmt(value) == text


def test_walkforward_page_has_the_stitched_equity_and_the_per_window_charts():
    table = pd.DataFrame({
        "train_start": ["2021-04-06", "2021-04-07"], "test_start": ["2021-04-07", "2021-04-08"],
        "test_end": ["2021-04-07", "2021-04-08"], "config_id": ["a" * 64, "b" * 64],
        "vel_div_threshold": [-0.015, -0.02], "max_hold_bars": [60, 120],
        "is_sharpe": [2.0, 3.0], "is_roi": [0.01, 0.02], "oos_roi": [0.001, -0.002],
        "oos_sharpe": [1.0, -1.0], "oos_max_drawdown": [0.0, 0.01], "oos_trades": [3, 4],
        "oos_dates": [["2021-04-07"], ["2021-04-08"]], "oos_daily_returns": [[0.001], [-0.002]],
    })  # fmt: skip
    html = rp.walkforward_page(table, {"days": 2, "roi": -0.001}, NAMES)
    _plotly_once(html)
    assert "<title>DOLPHIN walk-forward: 2 windows</title>" in html
    assert 'id="equity"' in html and 'id="windows-sharpe"' in html and 'id="windows-roi"' in html
    pick = html.split("Latest window")[1].split("</table>")[0]
    assert "b" * 64 in pick and "<td>120</td>" in pick
    dates, rets = rp.stitched_series(table)
    assert dates == ["2021-04-07", "2021-04-08"] and rets == [0.001, -0.002]
    assert "oos_daily_returns" not in html.split("<h2>Windows</h2>")[1]


def test_optimize_page_has_history_importances_and_the_best_trials_parameters():
    trials = pd.DataFrame({"trial": [0, 1, 2], "vel_div_threshold": [-0.02, -0.015, -0.03],
                           "max_hold_bars": [60, 90, 200], "objective": [0.1, 0.4, -1e9],
                           "sharpe": [1.0, 4.0, None], "roi": [0.0, 0.01, -0.01],
                           "trades": [3, 5, 0], "config_id": ["a" * 64, "b" * 64, "c" * 64]})
    summary = {"trials": 3, "best": {"trial": 1, "config_id": "b" * 64, "sharpe": 4.0,
                                     "roi": 0.01, "dsr": 0.7}, "sr0_daily": 0.2}
    html = rp.optimize_page(trials, summary, NAMES, {"vel_div_threshold": 0.8,
                                                      "max_hold_bars": 0.2})
    _plotly_once(html)
    assert 'id="history"' in html and 'id="importances"' in html
    best = html.split("Best trial")[1].split("</table>")[0]
    assert "<td>90</td>" in best and "<td>0.7000</td>" in best and "b" * 64 in best
    assert "not enough valid trials" in rp.optimize_page(trials, summary, NAMES, {})


def test_leverage_page_marks_peak_knee_and_the_claim_inside_the_levels():
    table = pd.DataFrame({"max_leverage": [1.0, 3.0, 6.0, 9.0],
                          "growth": [0.001, 0.002, 0.0, -0.01],
                          "band_lo": [-0.001, 0.0005, -0.003, -0.02],
                          "band_hi": [0.003, 0.004, 0.002, 0.0], "roi": [0.1, 0.2, 0.0, -0.3],
                          "max_drawdown": [0.01] * 4, "trades": [5] * 4,
                          "config_id": ["a" * 64] * 4})
    summary = {"peak_leverage": 3.0, "peak_growth_daily": 0.002, "knee_leverage": 1.0,
               "bible_claim": 6.0, "bootstrap": {"n": 10, "seed": 1, "band_pct": [5.0, 95.0]}}
    html = rp.leverage_page(table, summary)
    _plotly_once(html)
    assert "<title>DOLPHIN leverage study: 4 levels</title>" in html
    for mark in ("peak 3x", "knee 1x", "claim 6x"):
        assert mark in html
    assert '"fill":"tonexty"' in html and "bootstrap.band_pct" in html
    assert "max leverage (x)" in html and "geometric growth per day (%)" in html
