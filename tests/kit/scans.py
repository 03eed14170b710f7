"""Builders of small synthetic scan frames with the DESIGN.md "Scans" schema.

Until the scanner lands these stand in for ``dolphin.scanner.scan_prices`` output: same columns,
same dtypes, chosen values. The helpers are themselves tested (tests/unit/backtest/test_kit_scans).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

WINDOWS = (50, 150, 300, 750)


def scan_columns() -> list[str]:
    """Return the non-price columns of a scan frame, in order."""
    cols = ["timestamp", "scan_number", "n_assets"]
    for w in WINDOWS:
        cols += [f"v{w}_lambda_max", f"v{w}_lambda_max_velocity"]
    return [*cols, "vel_div", "instability_50", "instability_150", "data_gap"]


def trend_prices(n_bars: int, start: float, step_pct: float) -> np.ndarray:
    """Return a price path moving linearly by ``step_pct`` percent of ``start`` per bar."""
    return start * (1.0 + step_pct / 100.0 * np.arange(n_bars))


def build_scans(
    prices: dict[str, np.ndarray],
    vel_div: np.ndarray | None = None,
    *,
    start: str = "2024-01-01",
    freq: str = "1min",
    gap_bars: Sequence[int] = (),
    v750_velocity: np.ndarray | None = None,
) -> pd.DataFrame:
    """Return a scan frame with the given asset closes and vel_div (default 0)."""
    n = len(next(iter(prices.values())))
    vd = np.zeros(n) if vel_div is None else np.asarray(vel_div, dtype=float)
    v750 = np.zeros(n) if v750_velocity is None else np.asarray(v750_velocity, dtype=float)
    df = pd.DataFrame(
        {
            "timestamp": pd.date_range(start, periods=n, freq=freq, tz="UTC"),
            "scan_number": np.arange(n, dtype=np.int64),
            "n_assets": np.full(n, len(prices), dtype=np.int64),
        }
    )
    for w in WINDOWS:
        df[f"v{w}_lambda_max"] = 0.3
        df[f"v{w}_lambda_max_velocity"] = v750 if w == 750 else v750 + vd
    df["vel_div"] = vd
    df["instability_50"] = 0.1
    df["instability_150"] = 0.1
    gap = np.zeros(n, dtype=bool)
    gap[list(gap_bars)] = True
    df["data_gap"] = gap
    for name, p in prices.items():
        df[name] = np.asarray(p, dtype=np.float64)
    return df


def random_scans(
    n_bars: int, n_assets: int, *, seed: int = 0, start: str = "2024-01-01"
) -> pd.DataFrame:
    """Return a random-walk scan frame with a heavy-tailed vel_div (signals now and then)."""
    rng = np.random.default_rng(seed)
    rets = rng.normal(0.0, 0.002, size=(n_bars, n_assets))
    closes = 100.0 * np.exp(np.cumsum(rets, axis=0))
    vd = rng.standard_t(3, size=n_bars) * 0.008
    names = [f"A{i:02d}USDT" for i in range(n_assets)]
    return build_scans(dict(zip(names, closes.T, strict=True)), vd, start=start)


def spot_2021_scans(start: str, end: str, config=None, *, fill_limit=None) -> pd.DataFrame:
    """Return production-scanner scans of the shared 2021-04 spot 1m set between ``start``
    (inclusive) and ``end`` (exclusive), made the way ``dolphin scan`` makes them: the real
    closes of the bars (NaN where a symbol has no bar), the causal fill (``fill_limit``, default
    ``dolphin.data.DEFAULT_FILL_LIMIT``) for the kernel, and real closes in the close columns."""
    from dolphin.core.config import ScannerConfig
    from dolphin.data import DEFAULT_FILL_LIMIT, real_closes
    from dolphin.scanner.inputs import scanner_input
    from dolphin.scanner.scanner import scan_prices
    from tests.kit.paths import SPOT_1M_2021, require

    lo, hi = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    bars = pd.read_parquet(
        require(SPOT_1M_2021), filters=[("timestamp", ">=", lo), ("timestamp", "<", hi)]
    )
    prices, real = scanner_input(real_closes(bars), fill_limit=fill_limit or DEFAULT_FILL_LIMIT)
    return scan_prices(prices, config or ScannerConfig(), real=real)
