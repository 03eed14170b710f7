"""The scan kernel gives the same bits on every run, wherever its arrays fall in memory.

A chunked backfill is checked against one process bit for bit, and a rerun of a session against
its ledger row for row: neither holds if a sum's order depends on the heap. A few assets make
the scratch vectors small enough to land next to each other, and the runs are interleaved with
allocations of random sizes so that they do.
"""

from __future__ import annotations

import numpy as np

from dolphin.core.config import ScannerConfig
from dolphin.scanner.scanner import run_kernel
from tests.kit.market import factor_prices

CFG = ScannerConfig(windows=(10, 25, 60), instability_windows=(10, 25))


def test_the_kernel_is_bit_identical_from_run_to_run():
    prices = np.ascontiguousarray(
        factor_prices(600, 6).drop(columns="timestamp").to_numpy(np.float64))
    first = run_kernel(prices, CFG)
    rng = np.random.default_rng(11)
    kept = []
    for _ in range(25):
        kept.append([np.empty(int(k)) for k in rng.integers(1, 40, size=8)])
        out = run_kernel(prices.copy(), CFG)
        assert np.array_equal(out, first, equal_nan=True)
    assert np.isfinite(first[100:, 0]).all()  # lambda of the first window, once it is full
