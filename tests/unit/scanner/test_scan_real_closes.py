"""No price, no trade: scans carry real closes only; the kernel still runs on the causal fill."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dolphin.core.config import ScannerConfig
from dolphin.core.errors import BadInputError
from dolphin.data import fill_closes, real_closes, real_mask
from dolphin.scanner import IncrementalScanner, scan_prices
from dolphin.scanner.backfill import scan_prices_parallel
from dolphin.scanner.inputs import load_scan_input, scanner_input
from tests.kit.builders import long_bars, write_long_parquet
from tests.kit.market import factor_prices

CFG = ScannerConfig(windows=(10, 25, 60), instability_windows=(10, 25), recompute_every=50)
NAN = np.nan
SYMS = ["AAAUSDT", "BBBUSDT", "CCCUSDT"]
NUMERIC = ["v10_lambda_max", "v25_lambda_max_velocity", "v60_lambda_max", "vel_div",
           "instability_10", "instability_25", "v10_n_assets", "v60_n_assets"]


def _small_scans(fill_limit: str = "2m") -> pd.DataFrame:
    bars = long_bars(SYMS, periods=8, lives={"CCCUSDT": (0, 3)},
                     drop={"AAAUSDT": [2], "BBBUSDT": [2, 5]})
    prices, real = scanner_input(real_closes(bars), fill_limit=fill_limit)
    return scan_prices(prices, CFG, real=real)


def test_close_columns_are_real_closes_and_nan_elsewhere():
    scans = _small_scans()
    np.testing.assert_array_equal(scans["AAAUSDT"], [100, 101, NAN, 103, 104, 105, 106, 107])
    np.testing.assert_array_equal(scans["BBBUSDT"], [200, 201, NAN, 203, 204, NAN, 206, 207])
    np.testing.assert_array_equal(scans["CCCUSDT"], [300, 301, 302, 303, NAN, NAN, NAN, NAN])


def test_n_assets_counts_the_filled_universe_and_data_gap_is_exact():
    scans = _small_scans()
    # CCC ends at bar 3: carried on 4 and 5 (a 2-bar limit), out of the universe from 6.
    assert scans["n_assets"].tolist() == [3, 3, 3, 3, 3, 3, 2, 2]
    # Filled shares: bar 2 2/3 (AAA, BBB), bar 4 1/3 (CCC), bar 5 2/3 (BBB, CCC).
    assert np.flatnonzero(scans["data_gap"]).tolist() == [2, 5]


def test_real_mask_changes_only_the_close_and_gap_columns():
    wide = factor_prices(300, 6, seed=4)
    wide.loc[:40, "A05USDT"] = NAN
    real = np.isfinite(wide.drop(columns="timestamp").to_numpy())
    real[[100, 101, 102], 2] = False  # as if forward filled: same price, not a real bar
    real[200:, 4] = False
    plain = scan_prices(wide, CFG)
    marked = scan_prices(wide, CFG, real=real)
    pd.testing.assert_frame_equal(plain[NUMERIC], marked[NUMERIC])
    assert (plain["n_assets"] == marked["n_assets"]).all()
    assert marked["A02USDT"].iloc[100:103].isna().all()
    assert marked["A04USDT"].iloc[200:].isna().all()
    assert marked["A04USDT"].iloc[:200].equals(plain["A04USDT"].iloc[:200])


def test_parallel_scan_with_a_real_mask_is_byte_identical(tmp_path):
    wide = factor_prices(260, 5, seed=9)
    wide.loc[150:, "A03USDT"] = NAN
    prices, real = scanner_input(wide, fill_limit="30min")
    single = scan_prices(prices, CFG, real=real)
    single.to_parquet(tmp_path / "a.parquet")
    for workers in (2, 3):
        scan_prices_parallel(prices, CFG, workers=workers, real=real).to_parquet(
            tmp_path / "b.parquet")
        assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert single["A03USDT"].iloc[150:].isna().all()
    assert single["n_assets"].iloc[179] == 5 and single["n_assets"].iloc[180] == 4  # 149 + 30


def test_real_mask_must_match_the_prices():
    wide = factor_prices(20, 3)
    with pytest.raises(BadInputError, match="shape"):
        scan_prices(wide, CFG, real=np.ones((20, 2), bool))
    wide.loc[5, "A01USDT"] = NAN
    with pytest.raises(BadInputError, match=r"row 5, field 'A01USDT'.*no price"):
        scan_prices(wide, CFG, real=np.ones((20, 3), bool))


def test_long_file_and_aligned_wide_file_give_the_same_scans(tmp_path):
    bars = long_bars(SYMS, periods=90, lives={"CCCUSDT": (0, 60)}, drop={"AAAUSDT": [30, 31]})
    long_path = write_long_parquet(tmp_path / "long.parquet", bars)
    wide_path = tmp_path / "wide.parquet"
    real_closes(bars).to_parquet(wide_path, index=False)
    from_long = load_scan_input(long_path, fill_limit="10m")
    from_wide = load_scan_input(wide_path, fill_limit="10m")
    a = scan_prices(from_long.prices, CFG, real=from_long.real)
    b = scan_prices(from_wide.prices, CFG, real=from_wide.real)
    pd.testing.assert_frame_equal(a, b)
    assert a["CCCUSDT"].iloc[61:].isna().all() and a["n_assets"].iloc[70] == 3
    assert a["n_assets"].iloc[71] == 2


def test_legacy_filled_wide_file_is_read_as_all_real(tmp_path):
    bars = long_bars(SYMS, periods=6, drop={"AAAUSDT": [2, 3], "BBBUSDT": [2, 3]})
    path = tmp_path / "legacy.parquet"
    fill_closes(real_closes(bars)).to_parquet(path, index=False)
    prices, real = load_scan_input(path)
    assert real.all()
    scans = scan_prices(prices, CFG, real=real)
    assert scans["AAAUSDT"].tolist() == [100, 101, 101, 101, 104, 105]
    assert not scans["data_gap"].any()


def _feed(live: IncrementalScanner, real: pd.DataFrame) -> pd.DataFrame:
    """Send each real close; a NaN cell of a known symbol is left out (absent from the update)."""
    rows = []
    for i, ts in enumerate(real["timestamp"]):
        bar = {s: real.at[i, s] for s in real.columns[1:] if np.isfinite(real.at[i, s])}
        rows.append(live.update(ts, bar))
    return pd.DataFrame(rows)


def test_live_rows_equal_batch_rows_with_the_same_fill_limit():
    real = factor_prices(200, 6, seed=13)
    real.loc[120:, "A04USDT"] = NAN  # data ends: absent from every later update
    real.loc[60:63, "A01USDT"] = NAN  # four bars absent: carried
    prices, mask = scanner_input(real, fill_limit="5min")
    batch = scan_prices(prices, CFG, real=mask)
    live = _feed(IncrementalScanner(CFG, fill_limit_bars=5), real)
    for col in [*NUMERIC, "n_assets", "data_gap"]:
        a, b = batch[col].to_numpy(dtype=float), live[col].to_numpy(dtype=float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), col
        assert np.nanmax(np.abs(a - b), initial=0.0) <= 1e-9, col
    for sym in real.columns[1:]:
        np.testing.assert_array_equal(live[sym].to_numpy(dtype=float), batch[sym].to_numpy())
    assert live["n_assets"].iloc[124] == 6 and live["n_assets"].iloc[125] == 5  # 119 + 5


def test_live_close_is_nan_when_absent_or_given_nan_but_the_asset_is_carried():
    live = IncrementalScanner(CFG)
    live.update("2024-01-01 00:00", {"A": 1.0, "B": 2.0, "C": 3.0})
    row = live.update("2024-01-01 00:01", {"A": 1.1, "C": NAN})
    assert row["A"] == 1.1 and np.isnan(row["B"]) and np.isnan(row["C"])
    assert row["n_assets"] == 2  # B carried (in the universe), C not trading
    row = live.update("2024-01-01 00:02", {"B": 2.2})
    assert np.isnan(row["A"]) and row["B"] == 2.2 and np.isnan(row["C"])
    assert row["n_assets"] == 2


def test_live_carry_stops_after_the_fill_limit():
    live = IncrementalScanner(CFG, fill_limit_bars=2)
    live.update("2024-01-01 00:00", {"A": 1.0, "B": 2.0})
    counts = [live.update(f"2024-01-01 00:0{i}", {"A": 1.0 + i})["n_assets"] for i in (1, 2, 3)]
    assert counts == [2, 2, 1]
    assert live.update("2024-01-01 00:04", {"A": 1.5, "B": 2.5})["n_assets"] == 2


def test_live_scanner_grows_past_its_capacity_in_one_update():
    live = IncrementalScanner(CFG, capacity=2)
    row = live.update("2024-01-01", {f"S{i}": 1.0 + i for i in range(5)})
    assert row["n_assets"] == 5 and row["S4"] == 5.0


def test_real_mask_of_the_scanner_input_is_the_real_close_matrix():
    bars = long_bars(SYMS, periods=5, drop={"BBBUSDT": [1]})
    real = real_closes(bars)
    prices, mask = scanner_input(real)
    np.testing.assert_array_equal(mask, real_mask(real))
    assert prices["BBBUSDT"].tolist() == [200, 200, 202, 203, 204]
