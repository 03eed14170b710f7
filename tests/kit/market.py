"""Synthetic multi-asset price paths with a market mode, for scanner tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def factor_prices(
    n_bars: int = 400,
    n_assets: int = 8,
    *,
    beta: float = 0.8,
    seed: int = 7,
    start: str = "2024-01-01",
    bar: str = "1min",
) -> pd.DataFrame:
    """Wide closes driven by one market factor plus idiosyncratic noise (log-normal paths)."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0, 1e-3, n_bars)
    idio = rng.normal(0.0, 1e-3, (n_bars, n_assets))
    loads = beta * (0.5 + rng.random(n_assets))
    rets = market[:, None] * loads[None, :] + idio
    prices = 100.0 * np.exp(np.cumsum(rets, axis=0))
    frame = pd.DataFrame(prices, columns=[f"A{i:02d}USDT" for i in range(n_assets)])
    frame.insert(0, "timestamp", pd.date_range(start, periods=n_bars, freq=bar, tz="UTC"))
    return frame
