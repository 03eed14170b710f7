"""Live (one bar at a time) and chunked backfill agree with the batch scan."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from dolphin.core.config import ScannerConfig
from dolphin.core.errors import BadInputError, BadPriceError, ConfigError
from dolphin.scanner import IncrementalScanner, scan_prices
from dolphin.scanner.backfill import chunk_plan, scan_prices_parallel
from tests.kit.market import factor_prices

CFG = ScannerConfig(windows=(10, 25, 60), instability_windows=(10, 25), recompute_every=50)
NUMERIC = ["v10_lambda_max", "v25_lambda_max_velocity", "v60_lambda_max", "vel_div",
           "instability_10", "instability_25"]


def _universe_with_turnover() -> pd.DataFrame:
    wide = factor_prices(260, 7, seed=21)
    wide.loc[:80, "A05USDT"] = np.nan  # listed at bar 81
    wide.loc[180:, "A06USDT"] = np.nan  # delisted after 179
    return wide


def _feed(live: IncrementalScanner, wide: pd.DataFrame, carried: set[tuple[int, str]]):
    rows = []
    symbols = [c for c in wide.columns if c != "timestamp"]
    for i, ts in enumerate(wide["timestamp"]):
        bar = {}
        for s in symbols:
            if (i, s) in carried:
                continue  # absent from the update: the scanner carries the last close
            p = wide.at[i, s]
            if np.isnan(p) and s not in live.symbols:
                continue  # not listed yet: the live feed does not know the symbol
            bar[s] = p
        rows.append(live.update(ts, bar))
    return pd.DataFrame(rows)


def test_live_rows_equal_batch_rows_with_listing_delisting_and_carried_bars():
    wide = _universe_with_turnover()
    carried = {(i, "A02USDT") for i in range(120, 124)}
    for i in range(120, 124):  # what the loader's forward fill would give
        wide.at[i, "A02USDT"] = wide.at[119, "A02USDT"]
    batch = scan_prices(wide, CFG)
    live = _feed(IncrementalScanner(CFG, symbols=["A00USDT", "A01USDT"]), wide, carried)
    assert len(live) == len(batch)
    for col in NUMERIC:
        a, b = batch[col].to_numpy(), live[col].to_numpy(dtype=float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), col
        assert np.nanmax(np.abs(a - b)) <= 1e-9, col
    assert (batch["v10_n_assets"].to_numpy() == live["v10_n_assets"].to_numpy()).all()
    assert live.loc[100, "A05USDT"] == wide.at[100, "A05USDT"]
    # Carried internally (same lambdas as the filled batch) but no real close in the row.
    assert live.loc[120:123, "A02USDT"].isna().all() and live.loc[124, "A02USDT"] > 0
    assert (live["n_assets"].to_numpy() == batch["n_assets"].to_numpy()).all()


def test_live_flags_a_gap_when_most_assets_are_carried():
    live = IncrementalScanner(CFG)
    wide = factor_prices(30, 4)
    rows = []
    for i, ts in enumerate(wide["timestamp"]):
        bar = {s: wide.at[i, s] for s in wide.columns[1:]}
        if i == 20:
            bar = {"A00USDT": bar["A00USDT"]}  # three of four assets carried
        rows.append(live.update(ts, bar))
    assert [r["data_gap"] for r in rows].index(True) == 20
    assert sum(r["data_gap"] for r in rows) == 1


def test_live_rejects_time_going_backwards_and_bad_prices():
    live = IncrementalScanner(CFG)
    live.update("2024-01-01 00:01", {"A": 1.0, "B": 2.0})
    with pytest.raises(BadInputError, match="timestamps must increase"):
        live.update("2024-01-01 00:00", {"A": 1.0})
    with pytest.raises(BadPriceError, match="'B'"):
        live.update("2024-01-01 00:02", {"A": 1.0, "B": -3.0})


def test_chunk_plan_aligns_chunks_and_covers_every_bar():
    plan = chunk_plan(1000, 3, CFG)
    assert [p[1] % CFG.recompute_every for p in plan] == [0] * len(plan)
    assert plan[0][1] == 0 and plan[-1][2] == 1000
    assert all(a[2] == b[1] for a, b in itertools.pairwise(plan))
    assert all(w0 <= max(0, s - CFG.recompute_every - 61) for w0, s, _ in plan)


def test_chunked_backfill_is_bit_identical(tmp_path):
    wide = _universe_with_turnover()
    wide.loc[140, "A03USDT"] *= 80.0  # a bad tick inside a chunk's warm-up
    single = scan_prices(wide, CFG)
    for workers in (2, 3):
        multi = scan_prices_parallel(wide, CFG, workers=workers)
        single.to_parquet(tmp_path / "a.parquet")
        multi.to_parquet(tmp_path / "b.parquet")
        assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_backfill_rejects_zero_workers():
    with pytest.raises(ConfigError, match="workers"):
        scan_prices_parallel(factor_prices(20, 3), CFG, workers=0)


def test_fill_fraction_sets_data_gap_exactly():
    wide = factor_prices(40, 4)
    frac = np.zeros(40)
    frac[17] = 0.75
    frac[18] = 0.5  # not more than half: not a gap
    scans = scan_prices(wide, CFG, fill_fraction=frac)
    assert np.flatnonzero(scans["data_gap"].to_numpy()).tolist() == [17]


def test_without_fill_fraction_an_all_flat_bar_is_a_gap():
    wide = factor_prices(40, 4)
    wide.loc[25, wide.columns[1:]] = wide.loc[24, wide.columns[1:]].to_numpy()
    scans = scan_prices(wide, CFG)
    assert np.flatnonzero(scans["data_gap"].to_numpy()).tolist() == [25]
