"""Exactness of the scanner on every real bar set, against the corrcoef + eigvalsh oracle."""

from __future__ import annotations

import numpy as np
import pytest

from dolphin.core.config import ScannerConfig
from dolphin.data import align_closes, fill_fraction, load_bars
from dolphin.scanner import scan_prices
from dolphin.scanner.reference import reference_rows
from tests.kit.paths import (
    SPOT_1M_2021,
    SPOT_5M_2024,
    USDM_1M_2023,
    USDM_1M_2025,
    USDM_5M_2023,
    require,
)

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
    bars = load_bars(require(path))
    wide = align_closes(bars)
    scans = scan_prices(wide, CFG, fill_fraction=fill_fraction(bars, wide))
    prices = wide.drop(columns="timestamp").to_numpy(dtype=float)
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


def test_spot_5m_2024_372_assets_matches_reference():
    scans = _check(SPOT_5M_2024, 40, min_assets=300)
    assert scans["v750_n_assets"].max() >= 350


@pytest.mark.parametrize("path", [USDM_1M_2023, USDM_1M_2025, USDM_5M_2023],
                         ids=lambda p: p.stem)
def test_perpetual_sets_match_reference(path):
    _check(path, 200)
