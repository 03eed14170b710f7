"""Builders of recorded-OB feature frames (the OBF contract's parquet schema) for tests.

``per_bar_frame`` writes one cycle per bar, at the moment the bar's scan is known (bar open + bar
length), with one row per asset: exactly the rows the as-of rule picks for that bar, so a test
sets the OB inputs of bar t and asset j by writing ``per_asset[t, j]``. Values go in unvalidated.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

#: Engine order (``alpha.layout``: OB_IMBALANCE .. OB_FILL_PROB) -> recorded column.
ENGINE_COLUMNS = ("imbalance_ma5", "imbalance_persistence", "withdrawal_velocity",
                  "depth_quality", "fill_probability")
MACRO_COLUMNS = ("cascade_count", "regime_signal", "market_multiplier")
#: The OBF contract's neutral rows, written down from the contract text.
NEUTRAL_ASSET = (0.0, 0.0, 0.0, 1.0, 0.5)
NEUTRAL_MACRO = (0.0, 0.0, 1.0)


def bar_times(scans: pd.DataFrame) -> np.ndarray:
    """Return a scan frame's bar (open) times as int64 ns."""
    return scans["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64)


def neutral(n_bars: int, n_assets: int) -> tuple[np.ndarray, np.ndarray]:
    """Return all-neutral ``(per_asset (n_bars, n_assets, 5), macro (n_bars, 3))`` arrays."""
    per_asset = np.empty((n_bars, n_assets, 5))
    per_asset[:] = NEUTRAL_ASSET
    macro = np.empty((n_bars, 3))
    macro[:] = NEUTRAL_MACRO
    return per_asset, macro


def per_bar_frame(
    bar_ts_ns: np.ndarray,
    bar_s: float,
    assets: Sequence[str],
    per_asset: np.ndarray,
    macro: np.ndarray,
) -> pd.DataFrame:
    """Return the contract frame with bar t's cycle at ``bar_ts_ns[t] + bar_s``: one row per
    asset (symbols sorted), ``per_asset[t, j]`` in engine order for ``assets[j]``, ``macro[t]``
    on every row of the cycle. The raw ``imbalance`` column repeats ``imbalance_ma5``."""
    known = np.asarray(bar_ts_ns, dtype=np.int64) + int(bar_s * 1_000_000_000)
    order = sorted(range(len(assets)), key=lambda j: assets[j])
    n, m = len(known), len(assets)
    vals = np.asarray(per_asset, dtype=np.float64)[:, order, :].reshape(n * m, 5)
    df = pd.DataFrame({"ts_ns": np.repeat(known, m),
                       "symbol": np.tile(np.array([assets[j] for j in order], dtype=object), n)})
    df["imbalance"] = vals[:, 0]
    for k, col in enumerate(ENGINE_COLUMNS):
        df[col] = vals[:, k]
    mac = np.repeat(np.asarray(macro, dtype=np.float64), m, axis=0)
    for k, col in enumerate(MACRO_COLUMNS):
        df[col] = mac[:, k]
    return df


def write_frame(path: Path, frame: pd.DataFrame) -> Path:
    """Write a frame as the recorded-OB parquet, exactly as given."""
    frame.to_parquet(path, index=False)
    return path
