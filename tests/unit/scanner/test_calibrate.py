from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dolphin.core.config import ScannerConfig
from dolphin.core.errors import BadInputError
from dolphin.scanner import scan_prices
from dolphin.scanner.calibrate import calibrate, shuffled_prices, tradable_vel_div, vel_div_stats
from tests.kit.market import factor_prices

CFG = ScannerConfig(windows=(10, 25, 60), instability_windows=(10, 25))


def test_crossings_and_bars_below_are_counted_by_hand():
    vd = np.array([0.0, -0.03, -0.03, 0.0, -0.05, np.nan, -0.03, 0.0])
    stats = vel_div_stats(vd, bar_seconds=86_400 / 7, threshold=-0.02)
    # 7 tradable bars = 1 day; below on bars 1, 2, 4, 6; entries into the region at 1, 4, 6
    # (the NaN at 5 breaks the run).
    assert stats.days == pytest.approx(1.0)
    assert stats.bars_below_per_day == pytest.approx(4.0)
    assert stats.crossings_per_day == pytest.approx(3.0)


def test_long_threshold_counts_bars_above():
    vd = np.array([0.0, 0.02, 0.0, 0.03])
    stats = vel_div_stats(vd, bar_seconds=21_600, threshold=0.01)
    assert stats.bars_below_per_day == pytest.approx(2.0)


def test_gap_bars_and_the_short_window_after_them_are_not_tradable():
    scans = pd.DataFrame({"timestamp": pd.date_range("2024", periods=8, freq="1min"),
                          "vel_div": np.zeros(8), "data_gap": [0, 0, 1, 0, 0, 0, 0, 0]})
    vd = tradable_vel_div(scans, short_window=3)
    assert np.isnan(vd).tolist() == [False, False, True, True, True, False, False, False]


def test_shuffle_keeps_each_bars_returns_and_only_reorders_them():
    wide = factor_prices(50, 4).drop(columns="timestamp")
    wide.loc[:5, "A03USDT"] = np.nan  # not priced on every bar: left out of the surrogate
    sur = shuffled_prices(wide, np.random.default_rng(1))
    assert list(sur.columns) == ["A00USDT", "A01USDT", "A02USDT"]
    real_r = np.diff(np.log(wide[sur.columns].to_numpy()), axis=0)
    sur_r = np.diff(np.log(sur.to_numpy()), axis=0)
    key = lambda m: sorted(map(tuple, np.round(m, 12)))  # noqa: E731
    assert key(real_r) == key(sur_r)
    assert not np.allclose(real_r, sur_r)


def test_surrogate_needs_two_complete_assets():
    wide = factor_prices(20, 2).drop(columns="timestamp")
    wide.iloc[0, 0] = np.nan
    with pytest.raises(BadInputError, match="two assets"):
        shuffled_prices(wide, np.random.default_rng(0))


def test_calibrate_reports_real_and_surrogate_side_by_side():
    scans = scan_prices(factor_prices(600, 6), CFG)
    res = calibrate(scans, -0.02, CFG, seed=3)
    assert res["assets_real"] == res["assets_surrogate"] == 6
    assert res["real"]["bars"] > 400 and res["surrogate"]["bars"] > 400
    sur = res["surrogate"]
    assert res["threshold_in_surrogate_sigma"] == pytest.approx(
        (-0.02 - sur["mean"]) / sur["std"])
    assert calibrate(scans, -0.02, CFG, seed=3) == res


def test_calibrate_rebuilds_the_filled_matrix_from_real_closes():
    wide = factor_prices(600, 6)
    real = np.ones((600, 6), bool)
    real[[200, 201, 350], 1] = False  # forward-filled bars: NaN in the scans' close column
    for t in (200, 201, 350):
        wide.loc[t, "A01USDT"] = wide.loc[t - 1, "A01USDT"]
    scans = scan_prices(wide, CFG, real=real)
    assert scans["A01USDT"].isna().sum() == 3
    # Same surrogate as from the filled closes: the asset is still priced on every bar.
    assert calibrate(scans, -0.02, CFG, seed=3) == calibrate(scan_prices(wide, CFG), -0.02, CFG,
                                                             seed=3)
