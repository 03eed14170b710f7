"""Report tables (``backtest.tables``): period returns, benchmarks, breakdowns, leverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dolphin.backtest import tables
from tests.kit.scans import build_scans


def test_monthly_and_weekly_returns_by_hand():
    daily = pd.DataFrame({
        "date": ["2024-01-30", "2024-01-31", "2024-02-01", "2024-02-05"],
        "equity_end": [101.0, 102.0, 99.0, 110.0],
    })
    m = tables.period_returns(daily, 100.0, "M")
    assert list(m["period"]) == ["2024-01", "2024-02"]
    assert m["return"].tolist() == pytest.approx([102 / 100 - 1, 110 / 102 - 1])
    assert m["days"].tolist() == [2, 2]
    # ISO weeks: Tue 30 Jan..Thu 1 Feb are week 5, Mon 5 Feb starts week 6
    w = tables.period_returns(daily, 100.0, "W")
    assert list(w["period"]) == ["2024-W05", "2024-W06"]
    assert w["return"].tolist() == pytest.approx([99 / 100 - 1, 110 / 99 - 1])
    # the periods compound to the ROI
    assert np.prod(1 + m["return"]) == pytest.approx(1.10)
    grid = tables.month_grid(m)
    assert grid.loc["2024", 2] == pytest.approx(110 / 102 - 1) and np.isnan(grid.loc["2024", 3])


def test_period_returns_rejects_an_unknown_frequency():
    with pytest.raises(ValueError, match="freq must be"):
        tables.period_returns(pd.DataFrame({"date": [], "equity_end": []}), 1.0, "D")


def test_benchmarks_buy_and_hold_from_first_real_close():
    btc = np.array([100.0, 110.0, np.nan, 121.0])
    late = np.array([np.nan, 50.0, 25.0, 100.0])  # cash until its first real close
    b = tables.benchmarks(build_scans({"BTCUSDT": btc, "XUSDT": late}), 1000.0)
    assert b["btc_hold"].tolist() == pytest.approx([1000, 1100, 1100, 1210])
    ew = 500 * np.array([1, 1.1, 1.1, 1.21]) + 500 * np.array([1, 1, 0.5, 2])
    assert b["equal_weight"].tolist() == pytest.approx(ew.tolist())


def test_benchmarks_without_btc_have_no_btc_column():
    b = tables.benchmarks(build_scans({"AUSDT": np.ones(3), "BUSDT": np.ones(3)}), 10.0)
    assert "btc_hold" not in b and b["equal_weight"].tolist() == [10.0, 10.0, 10.0]


def test_breakdown_and_leverage_steps():
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    trades = pd.DataFrame({
        "asset": ["A", "B", "A"], "pnl": [2.0, -1.0, -0.5], "pnl_pct": [0.02, -0.01, -0.005],
        "entry_bar": [0, 5, 10], "exit_bar": [3, 7, 14], "entry_fee": [0.1] * 3,
        "exit_fee": [0.1] * 3, "funding": [0.0, 0.2, 0.0], "leverage": [2.0, 3.0, 1.0],
        "entry_time": [t0, t0 + pd.Timedelta("5min"), t0 + pd.Timedelta("10min")],
        "exit_time": [t0 + pd.Timedelta("3min"), t0 + pd.Timedelta("7min"),
                      t0 + pd.Timedelta("14min")],
    })
    b = tables.breakdown(trades, "asset").set_index("asset")
    assert b.loc["A", "trades"] == 2 and b.loc["A", "pnl"] == pytest.approx(1.5)
    assert b.loc["A", "win_rate"] == 0.5 and b.loc["A", "mean_hold_bars"] == 3.5
    assert b.loc["B", "fees"] == pytest.approx(0.2) and b.loc["B", "funding"] == 0.2
    steps = tables.leverage_steps(trades, t0, t0 + pd.Timedelta("20min"))
    assert steps["leverage"].tolist() == [0.0, 2.0, 0.0, 3.0, 0.0, 1.0, 0.0, 0.0]
