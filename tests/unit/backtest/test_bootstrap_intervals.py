"""Bootstrap intervals and the annualisation caveat (``backtest.stats``, ``backtest.metrics``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dolphin.alpha.session import day_bounds
from dolphin.backtest.metrics import (
    MIN_ANNUALISE_DAYS,
    annualisation_caveat,
    compute_metrics,
    ratio_rows,
)
from dolphin.backtest.stats import day_bootstrap, percentile_interval, sample_figures

BARS_PER_DAY = 24


def run(days: int, seed: int = 0, drift: float = 4e-4):
    """A synthetic run: hourly equity with a small drift, its trades, daily table, metrics."""
    rng = np.random.default_rng(seed)
    n = days * BARS_PER_DAY
    eq = 1000.0 * np.cumprod(1 + rng.normal(drift, 0.004, n))
    ts = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    equity = pd.DataFrame({"timestamp": ts, "equity": eq, "in_position": np.ones(n, bool)})
    lo = day_bounds(ts.as_unit("ns").asi8)
    end = eq[lo[1:] - 1]
    daily = pd.DataFrame({"date": [str(d.date()) for d in ts[lo[:-1]]], "equity_end": end,
                          "capital_end": end})
    pnl = rng.normal(1.0, 5.0, 3 * days)
    trades = pd.DataFrame({"pnl": pnl, "entry_bar": np.zeros(pnl.size, int),
                           "exit_bar": np.ones(pnl.size, int)})
    m = compute_metrics(trades.assign(x=0), equity, daily, initial_capital=1000.0, config_id="c")
    return trades, equity, daily, m, lo


def test_ratio_rows_is_the_metrics_sharpe_and_sortino():
    _, _, daily, m, _ = run(60)
    r = daily["equity_end"].to_numpy() / np.r_[1000.0, daily["equity_end"].to_numpy()[:-1]] - 1
    sharpe, sortino = ratio_rows(r[None, :])
    assert sharpe[0] == m["sharpe"] and sortino[0] == m["sortino"]


def test_intervals_contain_the_point_estimates():
    trades, equity, _, m, _ = run(120)
    f = sample_figures(trades, equity, m)
    for key in ("roi", "sharpe", "sortino", "calmar", "win_rate", "profit_factor"):
        lo, hi = f["intervals"][key]
        assert lo <= m[key] <= hi, key


def test_sharpe_interval_shrinks_with_more_days():
    widths = []
    for days in (40, 160, 640):
        trades, equity, _, m, _ = run(days, seed=1)
        lo, hi = sample_figures(trades, equity, m)["intervals"]["sharpe"]
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] / widths[2] == pytest.approx(4.0, rel=0.35)  # ~ 1 / sqrt(days)


def test_intervals_are_reproducible_by_seed():
    trades, equity, _, m, _ = run(50)
    a = sample_figures(trades, equity, m, seed=7)
    assert sample_figures(trades, equity, m, seed=7) == a
    assert sample_figures(trades, equity, m, seed=8)["intervals"] != a["intervals"]


def test_one_day_has_no_interval_and_the_caveat():
    trades, equity, _, m, lo = run(1)
    f = sample_figures(trades, equity, m)
    assert f["intervals"]["sharpe"] is None and f["intervals"]["roi"] is None
    assert f["annualisation_meaningful"] is False and "1 days, 3 trades" in f["caveat"]
    assert day_bootstrap(equity["equity"].to_numpy(), lo, 1000.0)["calmar"] is None


def test_caveat_from_30_days_on_is_gone():
    assert annualisation_caveat(MIN_ANNUALISE_DAYS - 1, 5) is not None
    assert annualisation_caveat(MIN_ANNUALISE_DAYS, 5) is None


def test_percentile_interval_needs_half_the_samples_defined():
    assert percentile_interval(np.array([1.0, np.nan, np.nan])) is None
    assert percentile_interval(np.arange(101.0), 0.9) == pytest.approx((5.0, 95.0))
