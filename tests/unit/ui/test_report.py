"""The backtest report page and the plotly builders it is made of (``dolphin.ui``)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from dolphin.backtest.replay import run_replay
from dolphin.core.config import DolphinConfig
from dolphin.ui import plots
from dolphin.ui.report import render_edge_page, render_report
from tests.kit.scans import random_scans


@pytest.fixture(scope="module")
def scans() -> pd.DataFrame:
    s = random_scans(3000, 6, seed=4)
    return s.rename(columns={"A00USDT": "BTCUSDT"})


@pytest.fixture(scope="module")
def runs(scans):
    return run_replay(scans, DolphinConfig()), run_replay(scans, DolphinConfig(), hell=True)


def test_report_inlines_plotly_once_and_loads_nothing_from_the_network(runs, scans):
    main, hell = runs
    page = render_report(main, label="default friction", other=hell, other_label="HELL friction",
                         scans=scans, config=DolphinConfig())
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<script type='text/javascript'>/**") == 1  # plotly.js's banner, once
    rest = page.replace(get_plotlyjs(), "")  # plotly.js itself mentions URLs it never loads
    assert not re.search(r"<(script|link|img|iframe)[^>]*(src|href)=", rest)
    assert "http://" not in rest and "https://" not in rest
    for div in ("fig-equity", "fig-underwater", "fig-daily", "fig-rolling-sharpe",
                "fig-exposure", "fig-trade-pnl", "fig-vel-div", "fig-monthly"):
        assert f'id="{div}"' in page, div
    for table in ("metrics", "parameters", "monthly", "weekly", "by-asset", "by-exit", "trades"):
        assert f"id='{table}'" in page, table
    assert "HELL friction" in page and "95 % interval" in page
    assert "BTC buy-and-hold" in page and "equal-weight universe" in page


def test_report_says_when_annualisation_is_not_meaningful(runs):
    main, _ = runs
    assert main.metrics["days"] < 30
    page = render_report(main, label="default friction")
    assert f"{main.metrics['days']} days, {main.metrics['trades']} trades: annualised" in page
    assert "not meaningful under 30 days" in page


def test_report_names_a_missing_btc_instead_of_inventing_one(runs, scans):
    main, _ = runs
    no_btc = scans.rename(columns={"BTCUSDT": "A00USDT"})
    page = render_report(main, label="x", scans=no_btc)
    assert "BTCUSDT is not in this universe" in page
    assert "BTC buy-and-hold holds" not in page


def test_report_without_scans_or_config_says_what_is_missing(runs):
    page = render_report(runs[0], label="x")
    assert "Benchmarks not shown: the scans were not given" in page
    assert "parameters not given" in page


def test_edge_page_shows_the_p_value_and_the_run():
    edge = {"actual_pnl": 120.0, "actual_trades": 9, "p_value": 0.25, "n_at_least": 4,
            "runs": 19, "block_bars": 60, "seed": 1, "config_id": "ab" * 32,
            "friction": "default", "shuffled_pnl": list(np.linspace(-50, 200, 19)),
            "shuffled_trades": [9] * 19,
            "shuffled_pnl_quantiles": {"0.05": -40.0, "0.5": 75.0, "0.95": 190.0}}
    page = render_edge_page(edge, scans_label="s.parquet")
    assert "p-value 0.2500 = (1 + 4 shuffled runs" in page and 'id="fig-edge"' in page


def test_lines_titles_axes_and_uses_naive_utc_dates():
    t = pd.date_range("2024-01-01", periods=3, freq="1h", tz="Europe/Paris")
    fig = plots.lines([plots.Series("eq", t, [1.0, 2.0, 3.0], unit=" USDT")],
                      title="T", y_title="equity (USDT)")
    assert fig.layout.yaxis.title.text == "equity (USDT)"
    assert fig.layout.xaxis.title.text == "time (UTC)"
    x = pd.DatetimeIndex(fig.data[0].x)
    assert x.tz is None and x[0] == pd.Timestamp("2023-12-31 23:00")  # Paris 00:00 = 23:00 UTC
    assert "USDT" in fig.data[0].hovertemplate


def test_series_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        plots.Series("x", [1], [1], kind="pie")


def test_thin_keeps_every_spike_and_both_ends():
    y = np.zeros(100_000)
    y[12_345], y[77_777] = 9.0, -9.0
    x, yy = plots.thin(np.arange(y.size), y, 1000)
    assert len(yy) <= 1002 and yy.max() == 9.0 and yy.min() == -9.0
    assert x[0] == 0 and x[-1] == y.size - 1


def test_heatmap_writes_values_in_cells_with_a_colour_scale():
    fig = plots.heatmap([[0.01, -0.02]], x=["Jan", "Feb"], y=["2024"], title="m",
                        x_title="month", y_title="year")
    assert fig.data[0].texttemplate == "%{z:.2%}" and fig.data[0].zmid == 0.0


def test_table_html_is_sortable_and_exports_csv():
    html = plots.table_html(pd.DataFrame({"a": [1.5, None], "b": ["x", "<y>"]}),
                            table_id="t1", csv_name="t.csv")
    assert "onclick='dolphinSort(this)'" in html and "dolphinCsv('t1','t.csv')" in html
    assert "&lt;y&gt;" in html and "n/a" in html
