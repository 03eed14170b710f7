"""Exactness of the scanner on every real bar set, against the corrcoef + eigvalsh oracle, and
the "no price, no trade" close columns (real closes only) on the same sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dolphin.core.config import ScannerConfig
from dolphin.data import fill_fraction, load_bars, real_closes
from dolphin.scanner import scan_prices
from dolphin.scanner.inputs import load_scan_input, scanner_input
from dolphin.scanner.reference import reference_rows
from tests.kit.paths import (
    SPOT_1M_2021,
    SPOT_5M_2024,
    USDM_1M_2023,
    USDM_1M_2025,
    USDM_5M_2023,
    require,
)
from tests.kit.scans import spot_2021_scans

CFG = ScannerConfig()
TOL = 1e-6


def _rows_to_check(scans, n_random: int, min_assets: int, seed: int = 0) -> np.ndarray:
    """Random bars (with at least ``min_assets`` in the short window) plus the bars where the
    universe or a gap flag changes."""
    rng = np.random.default_rng(seed)
    n = len(scans)
    ready = np.flatnonzero(scans["v50_n_assets"].to_numpy() >= min_assets)
    picks = [rng.choice(ready, size=min(n_random, ready.size), replace=False)]
    for col in ("v50_n_assets", "v750_n_assets", "data_gap"):
        change = np.flatnonzero(np.diff(scans[col].to_numpy().astype(np.int64))) + 1
        picks.append(change[: n_random // 3])
        picks.append(np.minimum(change[: n_random // 6] + 50, n - 1))
    return np.unique(np.concatenate(picks))


def _check(path, n_random: int, min_assets: int = 2):
    wide, real = load_scan_input(require(path))
    scans = scan_prices(wide, CFG, real=real)
    prices = wide.drop(columns="timestamp").to_numpy(dtype=float)
    names = list(wide.columns[1:])
    closes = scans[names].to_numpy()
    assert np.array_equal(np.isfinite(closes), real)
    assert np.array_equal(closes[real], prices[real])
    rows = _rows_to_check(scans, n_random, min_assets)
    ref = reference_rows(prices, rows, CFG.windows)
    compared = 0
    for col, exp in ref.items():
        if col.startswith("instability_") and int(col.split("_")[1]) not in CFG.instability_windows:
            continue
        got = scans[col].to_numpy()[rows]
        if col.endswith("_n_assets"):
            assert np.array_equal(got, exp), col
            continue
        assert np.array_equal(np.isnan(got), np.isnan(exp)), col
        ok = ~np.isnan(exp)
        err = np.max(np.abs(got[ok] - exp[ok]), initial=0.0)
        assert err <= TOL, f"{col}: max abs error {err:.3g}"
        compared += int(ok.sum())
    assert compared > 5 * len(rows)
    return scans


def test_spot_1m_2021_top50_matches_reference_including_outages():
    scans = _check(SPOT_1M_2021, 300)
    # The 2021-04-25 maintenance leaves hundreds of forward-filled minutes: flagged as gaps.
    day = scans[scans["timestamp"].dt.strftime("%Y-%m-%d") == "2021-04-25"]
    assert day["data_gap"].sum() > 250
    assert scans["data_gap"].sum() > 400


def test_fill_fraction_from_the_real_mask_equals_the_loaders():
    bars = load_bars(require(SPOT_1M_2021))
    wide, real = load_scan_input(require(SPOT_1M_2021))
    live = np.isfinite(wide.drop(columns="timestamp").to_numpy())
    exact = fill_fraction(bars, wide)
    assert np.array_equal(exact, np.where(live.any(axis=1),
                                          (live & ~real).sum(1) / np.maximum(live.sum(1), 1), 1.0))
    # The 433-minute maintenance of 2021-04-25 is shorter than the fill limit: all filled.
    day = wide[wide["timestamp"].dt.strftime("%Y-%m-%d") == "2021-04-25"]
    assert not day.drop(columns="timestamp").isna().any().any()


def test_xlm_close_is_nan_after_its_last_real_bar_on_the_2023_perps():
    bars = load_bars(require(USDM_1M_2023))
    wide, real = load_scan_input(require(USDM_1M_2023))
    scans = scan_prices(wide, CFG, real=real)
    xlm = bars[bars["symbol"] == "XLMUSDT"]
    end = xlm["timestamp"].max()
    assert end < scans["timestamp"].iloc[-1] - pd.Timedelta(days=14)
    after = scans["timestamp"] > end
    assert scans.loc[after, "XLMUSDT"].isna().all()
    got = scans.set_index("timestamp").loc[xlm["timestamp"], "XLMUSDT"].to_numpy()
    np.testing.assert_array_equal(got, xlm["close"].to_numpy())  # every real bar, as traded
    # The scanner's universe still carries XLM for one day (causal fill), then drops it.
    n = scans.set_index("timestamp")["n_assets"]
    bar = pd.Timedelta("1min")
    assert n[end + 1440 * bar] - n[end + 1441 * bar] >= 1


def test_kit_spot_2021_scans_is_the_production_path():
    start, end = "2021-04-25", "2021-04-26"
    kit = spot_2021_scans(start, end)
    bars = load_bars(require(SPOT_1M_2021))
    day = bars[(bars["timestamp"] >= start) & (bars["timestamp"] < end)]
    prices, mask = scanner_input(real_closes(day))
    pd.testing.assert_frame_equal(kit, scan_prices(prices, CFG, real=mask))
    assert len(kit) == 1440 and kit["data_gap"].sum() > 250
    assert kit.loc[kit["data_gap"], "BTCUSDT"].isna().all()  # the maintenance: no real close


def test_spot_5m_2024_372_assets_matches_reference():
    scans = _check(SPOT_5M_2024, 40, min_assets=300)
    assert scans["v750_n_assets"].max() >= 350


@pytest.mark.parametrize("path", [USDM_1M_2023, USDM_1M_2025, USDM_5M_2023],
                         ids=lambda p: p.stem)
def test_perpetual_sets_match_reference(path):
    _check(path, 200)
