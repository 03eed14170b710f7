"""The edge test (``backtest.edge``): block bootstrap, p-value, reproducibility, power."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dolphin.backtest import sweep as sw
from dolphin.backtest.edge import block_bootstrap, edge_test, p_value
from dolphin.backtest.replay import run_replay
from dolphin.core.config import DolphinConfig
from dolphin.core.errors import BadInputError
from tests.kit.scans import build_scans

N_BARS, PERIOD, N_ASSETS = 8000, 97, 8


def market(*, planted: bool, seed: int = 0) -> pd.DataFrame:
    """Scans of assets that fall ~1.2 % over 20 bars then recover, every ``PERIOD`` bars.

    ``planted``: vel_div spikes to -0.06 on the bar before each fall (the signal knows);
    otherwise vel_div is heavy-tailed noise with no relation to the prices.
    """
    rng = np.random.default_rng(seed)
    rets = rng.normal(0.0, 0.0005, size=(N_BARS, N_ASSETS))
    vd = rng.normal(0.0, 0.004, size=N_BARS)
    for e in range(200, N_BARS - 60, PERIOD):
        rets[e + 1 : e + 21] -= 0.0006
        rets[e + 21 : e + 61] += 0.0003
        if planted:
            vd[e] = -0.06
    if not planted:
        vd = rng.standard_t(3, size=N_BARS) * 0.01
    vd[:5] = np.nan  # a warm-up, as the scanner writes
    closes = 100.0 * np.exp(np.cumsum(rets, axis=0))
    return build_scans({f"A{i:02d}USDT": closes[:, i] for i in range(N_ASSETS)}, vd)


@pytest.fixture(scope="module")
def planted():
    return sw.prepare(market(planted=True))


def test_block_bootstrap_keeps_nan_rows_and_draws_only_observed_values():
    v = np.array([np.nan, np.nan, 1.0, 2.0, 3.0, 4.0, np.nan, 5.0])
    out = block_bootstrap(v, 2, np.random.default_rng(0))
    assert np.array_equal(np.isnan(out), np.isnan(v))
    assert set(out[np.isfinite(out)]) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_block_bootstrap_with_one_block_is_a_rotation():
    v = np.arange(10.0)
    out = block_bootstrap(v, 10, np.random.default_rng(3))
    k = int(out[0])
    assert np.array_equal(out, np.roll(v, -k))


def test_block_bootstrap_rejects_a_zero_block():
    with pytest.raises(BadInputError, match="block must be >= 1"):
        block_bootstrap(np.ones(3), 0, np.random.default_rng(0))


def test_p_value_formula_and_bounds():
    assert p_value(5.0, np.array([1.0, 5.0, 7.0, 2.0])) == pytest.approx(3 / 5)
    assert p_value(100.0, np.zeros(99)) == pytest.approx(1 / 100)  # never 0
    assert p_value(-100.0, np.zeros(99)) == 1.0


def test_actual_run_is_the_replay(planted):
    res = edge_test(planted, DolphinConfig(), runs=1)
    replay = run_replay(market(planted=True), DolphinConfig())
    assert res.actual_pnl == pytest.approx(replay.metrics["final_capital"] - 25_000.0, rel=1e-12)
    assert res.actual_trades == replay.metrics["trades"] > 0


def test_edge_test_is_reproducible_by_seed_and_extends_a_shorter_one(planted):
    a = edge_test(planted, DolphinConfig(), runs=10, seed=5)
    b = edge_test(planted, DolphinConfig(), runs=10, seed=5)
    assert np.array_equal(a.shuffled_pnl, b.shuffled_pnl) and a.p_value == b.p_value
    longer = edge_test(planted, DolphinConfig(), runs=15, seed=5)
    assert np.array_equal(longer.shuffled_pnl[:10], a.shuffled_pnl)
    other = edge_test(planted, DolphinConfig(), runs=10, seed=6)
    assert not np.array_equal(other.shuffled_pnl, a.shuffled_pnl)


def test_a_planted_signal_gets_a_small_p_value(planted):
    res = edge_test(planted, DolphinConfig(), runs=59, seed=0)
    assert res.p_value <= 0.05
    assert res.actual_pnl > np.quantile(res.shuffled_pnl, 0.95)


def test_pure_noise_vel_div_gets_a_large_p_value():
    res = edge_test(sw.prepare(market(planted=False)), DolphinConfig(), runs=59, seed=0)
    assert res.p_value > 0.2
    d = res.to_dict()
    assert d["runs"] == 59 and len(d["shuffled_pnl"]) == 59
    assert d["block_bars"] == DolphinConfig().alpha.max_hold_bars


def test_edge_test_rejects_zero_runs(planted):
    with pytest.raises(BadInputError, match="runs must be >= 1"):
        edge_test(planted, DolphinConfig(), runs=0)
