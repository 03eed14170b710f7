"""The fast scanner against the plain corrcoef + eigvalsh reference, on hard synthetic cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dolphin.core.config import ScannerConfig
from dolphin.core.errors import BadPriceError, MissingColumnError
from dolphin.scanner import scan_prices
from dolphin.scanner.reference import reference_rows
from tests.kit.market import factor_prices

CFG = ScannerConfig(windows=(10, 25, 60), instability_windows=(10, 25), recompute_every=97)


def assert_matches_reference(scans: pd.DataFrame, wide: pd.DataFrame, cfg=CFG, tol=1e-6):
    prices = wide.drop(columns="timestamp").to_numpy(dtype=float)
    rows = np.arange(len(wide))
    ref = reference_rows(prices, rows, cfg.windows)
    checked = 0
    for w in cfg.windows:
        cols = [f"v{w}_lambda_max", f"v{w}_lambda_max_velocity"]
        cols += [f"instability_{w}"] if w in cfg.instability_windows else []
        for col in cols:
            got, exp = scans[col].to_numpy(), ref[col]
            assert np.array_equal(np.isnan(got), np.isnan(exp)), col
            ok = ~np.isnan(exp)
            assert np.max(np.abs(got[ok] - exp[ok]), initial=0.0) <= tol, col
            checked += int(ok.sum())
        assert np.array_equal(scans[f"v{w}_n_assets"].to_numpy(), ref[f"v{w}_n_assets"])
    vd, vd_ref = scans["vel_div"].to_numpy(), ref["vel_div"]
    assert np.array_equal(np.isnan(vd), np.isnan(vd_ref))
    ok = ~np.isnan(vd_ref)
    assert np.max(np.abs(vd[ok] - vd_ref[ok]), initial=0.0) <= tol
    assert checked > 0
    return checked


def test_helper_rejects_a_wrong_value():
    wide = factor_prices(120, 5)
    scans = scan_prices(wide, CFG)
    bad = scans.copy()
    bad.loc[100, "v25_lambda_max"] += 1e-5
    with pytest.raises(AssertionError):
        assert_matches_reference(bad, wide)


def test_matches_reference_on_a_clean_market():
    wide = factor_prices(300, 8)
    assert assert_matches_reference(scan_prices(wide, CFG), wide) > 1000


def test_columns_follow_the_contract():
    wide = factor_prices(80, 4)
    scans = scan_prices(wide, CFG)
    head = ["timestamp", "scan_number", "n_assets", "data_gap"]
    assert list(scans.columns[:4]) == head
    assert list(scans.columns[-4:]) == list(wide.columns[1:])
    assert (scans["timestamp"] == wide["timestamp"]).all()
    assert scans["scan_number"].tolist() == list(range(80))
    floats = [c for c in scans.columns if c.startswith(("v", "inst")) and "n_assets" not in c]
    assert all(scans[c].dtype == np.float64 for c in floats)


def test_rows_before_a_window_is_full_are_nan():
    scans = scan_prices(factor_prices(80, 4), CFG)
    assert scans["v60_lambda_max"].iloc[:60].isna().all()
    assert scans["v60_lambda_max"].iloc[60:].notna().all()
    assert scans["v60_lambda_max_velocity"].iloc[:61].isna().all()
    assert scans["vel_div"].iloc[:61].isna().all() and scans["vel_div"].iloc[61:].notna().all()


def test_listings_delistings_and_missing_bars_inside_windows():
    wide = factor_prices(320, 8)
    wide.loc[:90, "A01USDT"] = np.nan  # listed at bar 91
    wide.loc[200:, "A02USDT"] = np.nan  # delisted after bar 199
    wide.loc[150:152, "A03USDT"] = np.nan  # a halt inside its life
    wide.loc[40:70, "A04USDT"] = np.nan
    scans = scan_prices(wide, CFG)
    assert_matches_reference(scans, wide)
    # The listed asset joins a window only with a full window of history.
    assert scans.loc[100, "v10_n_assets"] == 7  # prices 90..100 needed, 90 is missing
    assert scans.loc[101, "v10_n_assets"] == 8
    assert scans.loc[155, "v10_n_assets"] == 7  # A03 halted
    assert scans.loc[163, "v10_n_assets"] == 8  # A03 back after a full window
    assert scans.loc[200, "v10_n_assets"] == 7  # A02 delisted


def test_zero_variance_asset_is_left_out():
    wide = factor_prices(200, 6)
    wide["A05USDT"] = 42.0  # never trades
    wide.loc[100:140, "A04USDT"] = wide.loc[100, "A04USDT"]  # stalls for 40 bars
    scans = scan_prices(wide, CFG)
    assert_matches_reference(scans, wide)
    assert scans.loc[120, "v10_n_assets"] == 4
    assert scans.loc[120, "v60_n_assets"] == 5


def test_fewer_than_two_assets_gives_nan():
    wide = factor_prices(100, 3)
    wide.loc[:, ["A01USDT", "A02USDT"]] = np.nan
    scans = scan_prices(wide, CFG)
    assert scans["v10_lambda_max"].isna().all()
    assert scans["instability_10"].isna().all()


def test_absurd_tick_does_not_poison_later_rows():
    clean = factor_prices(400, 8, seed=3)
    spiked = clean.copy()
    spiked.loc[150, "A02USDT"] *= 100.0
    a, b = scan_prices(clean, CFG), scan_prices(spiked, CFG)
    assert_matches_reference(b, spiked)
    # The spike's two returns (bars 150 and 151) leave the longest window after bar 211.
    later = slice(212, None)
    for col in ("v10_lambda_max", "v25_lambda_max", "v60_lambda_max", "instability_25",
                "vel_div"):
        diff = np.abs(a[col].to_numpy()[later] - b[col].to_numpy()[later])
        assert diff.max() < 1e-9, col
    assert abs(a.loc[180, "v60_lambda_max"] - b.loc[180, "v60_lambda_max"]) > 1e-3


def test_nan_input_is_a_missing_bar():
    wide = factor_prices(200, 5)
    wide.loc[77, "A01USDT"] = np.nan
    scans = scan_prices(wide, CFG)
    assert_matches_reference(scans, wide)
    assert scans.loc[80, "v10_n_assets"] == 4


def test_sums_do_not_drift_without_recompute():
    wide = factor_prices(3000, 10, seed=11)
    wide.loc[1000, "A03USDT"] *= 50.0
    exact = scan_prices(wide, ScannerConfig(windows=(10, 25, 60), instability_windows=(10,),
                                            recompute_every=1))
    lazy = scan_prices(wide, ScannerConfig(windows=(10, 25, 60), instability_windows=(10,),
                                           recompute_every=10**9))
    for col in ("v10_lambda_max", "v60_lambda_max", "instability_10"):
        diff = np.nanmax(np.abs(exact[col].to_numpy() - lazy[col].to_numpy()))
        assert diff < 1e-9, col


def test_weak_market_mode_uses_the_exact_fallback_and_stays_exact():
    wide = factor_prices(300, 12, beta=0.02, seed=5)
    assert_matches_reference(scan_prices(wide, CFG), wide)


def test_missing_timestamp_column_is_a_typed_error():
    wide = factor_prices(30, 3).drop(columns="timestamp")
    with pytest.raises(MissingColumnError, match="timestamp"):
        scan_prices(wide, CFG)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.inf])
def test_non_positive_or_infinite_price_is_a_typed_error(bad):
    wide = factor_prices(30, 3)
    wide.loc[12, "A01USDT"] = bad
    with pytest.raises(BadPriceError) as info:
        scan_prices(wide, CFG, source="w.parquet")
    msg = str(info.value)
    assert "w.parquet" in msg and "row 12" in msg and "A01USDT" in msg
