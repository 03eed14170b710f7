"""Builders of small bar frames and bar files (well-formed or deliberately broken) for tests.

Writers put values into files exactly as given, without validation, so a test can plant one bad
value and check that the loader names it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from tests.kit.paths import SPOT_1M_2021, require

LONG = ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
_UNIT_FACTOR = {"ms": 1_000_000, "us": 1_000, "ns": 1}


def long_bars(
    symbols: Sequence[str] = ("AAAUSDT", "BBBUSDT"),
    *,
    start: str = "2024-01-01 00:00",
    periods: int = 10,
    bar: str = "1min",
    lives: Mapping[str, tuple[int, int]] | None = None,
    drop: Mapping[str, Sequence[int]] | None = None,
) -> pd.DataFrame:
    """Return a canonical long frame on a regular grid of ``periods`` bars.

    ``lives[sym] = (first, last)`` limits a symbol to grid positions first..last inclusive;
    ``drop[sym]`` lists grid positions with no bar. Symbol k's close at grid position i is
    ``100 * (k + 1) + i`` so every expected value in a test is easy to write down.
    """
    grid = pd.date_range(start, periods=periods, freq=bar, tz="UTC")
    parts = []
    for k, sym in enumerate(symbols):
        first, last = (lives or {}).get(sym, (0, periods - 1))
        pos = [i for i in range(first, last + 1) if i not in set((drop or {}).get(sym, ()))]
        close = 100.0 * (k + 1) + np.asarray(pos, dtype=np.float64)
        parts.append(
            pd.DataFrame(
                {
                    "timestamp": grid[pos],
                    "symbol": sym,
                    "open": close - 0.5,
                    "high": close + 1.0,
                    "low": close - 1.0,
                    "close": close,
                    "volume": 10.0 + np.asarray(pos, np.float64),
                }
            )
        )
    out = pd.concat(parts, ignore_index=True)
    out["symbol"] = pd.Categorical(out["symbol"], categories=sorted(symbols))
    return out.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)


def wide_closes(
    columns: Mapping[str, Sequence[float]], *, start: str = "2024-01-01", bar: str = "1min"
) -> pd.DataFrame:
    """Return a wide close frame: ``timestamp`` on a regular grid + the given float columns."""
    n = len(next(iter(columns.values())))
    out = pd.DataFrame({k: np.asarray(v, dtype=np.float64) for k, v in columns.items()})
    out.insert(0, "timestamp", pd.date_range(start, periods=n, freq=bar, tz="UTC"))
    return out


@functools.lru_cache(maxsize=8)
def _real(symbol: str, n: int, path: Path) -> pd.DataFrame:
    table = pq.read_table(require(path), filters=[("symbol", "=", symbol)])
    df = table.slice(0, n).to_pandas()
    df["timestamp"] = df["timestamp"].astype("datetime64[ns, UTC]")
    df["symbol"] = df["symbol"].astype(str)
    return df


def real_bars(symbol: str = "BTCUSDT", n: int = 30, path: Path = SPOT_1M_2021) -> pd.DataFrame:
    """Return the first ``n`` real bars of ``symbol`` from a shared long parquet (a copy)."""
    return _real(symbol, n, path).copy()


def epoch(ts: pd.Series, unit: str = "ms") -> np.ndarray:
    """Return UTC timestamps as integer epoch values in ``unit`` (``ms``, ``us`` or ``ns``)."""
    ns = ts.to_numpy(dtype="datetime64[ns]").view(np.int64)
    return ns // _UNIT_FACTOR[unit]


def binance_rows(bars: pd.DataFrame, unit: str = "ms") -> pd.DataFrame:
    """Return ``bars`` as the 12 Binance kline columns (close time = next open - 1 unit)."""
    open_time = (
        epoch(bars["timestamp"], unit)
        if bars["timestamp"].dtype.kind == "M"
        else bars["timestamp"].to_numpy()
    )
    step = 60_000_000_000 // _UNIT_FACTOR[unit]
    close_time = open_time + step - 1 if open_time.dtype.kind in "iu" else open_time
    vol = bars["volume"]
    return pd.DataFrame(
        {
            "open_time": open_time,
            "open": bars["open"],
            "high": bars["high"],
            "low": bars["low"],
            "close": bars["close"],
            "volume": vol,
            "close_time": close_time,
            "quote_volume": vol * 2,
            "count": 7,
            "taker_buy_volume": vol / 2,
            "taker_buy_quote_volume": vol,
            "ignore": 0,
        }
    )


def write_binance_csv(
    path: Path, bars: pd.DataFrame, *, header: bool = False, unit: str = "ms"
) -> Path:
    """Write ``bars`` (one symbol) as a Binance kline CSV; ``timestamp`` may hold raw values."""
    binance_rows(bars, unit).to_csv(path, header=header, index=False)
    return path


def write_freqtrade_json(path: Path, bars: pd.DataFrame) -> Path:
    """Write ``bars`` (one symbol) as freqtrade candles JSON: ``[[ms, o, h, l, c, v], ...]``."""
    ms = epoch(bars["timestamp"]) if bars["timestamp"].dtype.kind == "M" else bars["timestamp"]
    cols = [bars[c].tolist() for c in ("open", "high", "low", "close", "volume")]
    rows = [
        [int(t) if isinstance(t, (int, np.integer)) else t, *vals]
        for t, *vals in zip(list(ms), *cols, strict=True)
    ]
    path.write_text(json.dumps(rows))
    return path


def write_freqtrade_feather(path: Path, bars: pd.DataFrame) -> Path:
    """Write ``bars`` (one symbol) as a freqtrade feather: ``date, open, ..., volume``."""
    frame = bars.drop(columns="symbol").rename(columns={"timestamp": "date"})
    frame.reset_index(drop=True).to_feather(path)
    return path


def write_long_parquet(path: Path, bars: pd.DataFrame) -> Path:
    """Write ``bars`` as a long parquet exactly as given (no sorting, no checks)."""
    bars.to_parquet(path, index=False)
    return path
