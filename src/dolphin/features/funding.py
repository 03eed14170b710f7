"""Perpetual funding rates: load them, and turn them into the step kernel's per-bar events.

A USDT-M perpetual position pays (or earns) ``rate × its notional`` at every funding time (every
8 h on Binance) it is open across. Every driver (replay, sweep, Nautilus, paper) reads the same
events, built here once: ``FundingEvents`` holds, for each bar, the funding times that fall in it
as ``(asset index, rate)`` pairs (``asset[lo[t]:lo[t + 1]]``).

Timing rule (DESIGN.md "Data contracts"): a bar's scan row carries the bar's OPEN time and is
known at its close (open + one bar). A funding time F belongs to the first bar whose close is at
or after F; a position opened on an earlier bar pays it, one opened on that bar does not (it was
not open at F), one closed on that bar does (it was still open at F): a position pays every F
with entry close < F <= exit close. The amount is ``direction × rate × qty × price`` with the
asset's last real close at that bar (the kernel's ``funding_payment_nb``): a long pays a positive
rate, a short receives it.

Inputs: a long table ``timestamp, symbol, funding_rate`` (parquet or CSV, as in
``shared/data/funding``), Binance's REST ``fundingRate`` layout (``fundingTime, symbol,
fundingRate``), or Binance's monthly dump CSV (``calc_time, funding_interval_hours,
last_funding_rate``, the symbol taken from the file name ``BTCUSDT-fundingRate-2023-07.csv``);
a directory loads every such file in it. Rates are fractions per interval (0.0001 = 1 bp).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dolphin.core.errors import BadInputError, DataError, DuplicateTimestampError
from dolphin.core.io import read_parquet

#: A funding rate beyond this (10 % per interval) is not a real rate: a unit or parsing error.
MAX_ABS_RATE = 0.10
_TS_NAMES = ("timestamp", "fundingTime", "calc_time")
_RATE_NAMES = ("funding_rate", "fundingRate", "last_funding_rate")
_DUMP_NAME = re.compile(r"^([A-Z0-9]+)-fundingRate-")


@dataclass(frozen=True)
class FundingEvents:
    """Funding events per bar: bar t's are ``asset[lo[t]:lo[t + 1]]`` with ``rate``."""

    asset: np.ndarray  # int64 asset column index
    rate: np.ndarray  # float64 fraction per interval
    lo: np.ndarray  # int64, n_bars + 1

    @classmethod
    def none(cls, n_bars: int) -> FundingEvents:
        """Return the empty event table of ``n_bars`` bars (funding not modelled)."""
        return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(n_bars + 1, np.int64))

    def slice(self, lo: int, hi: int) -> FundingEvents:
        """Return the events of bars ``lo..hi`` with ``lo`` re-based to 0."""
        b = self.lo[lo : hi + 1]
        k0, k1 = int(b[0]), int(b[-1])
        return FundingEvents(self.asset[k0:k1], self.rate[k0:k1], b - k0)

    def bar(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Return bar ``t``'s ``(asset, rate)`` arrays."""
        k0, k1 = int(self.lo[t]), int(self.lo[t + 1])
        return self.asset[k0:k1], self.rate[k0:k1]

    @property
    def count(self) -> int:
        """Number of events."""
        return int(self.asset.shape[0])


def _pick(df: pd.DataFrame, names: Sequence[str], what: str, source: str) -> str:
    for n in names:
        if n in df.columns:
            return n
    raise DataError(f"no {what} column (expected one of {', '.join(names)})", source=source,
                    field=what)


def _read_one(path: Path) -> pd.DataFrame:
    source = str(path)
    try:
        df = read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:  # pyarrow and the CSV parser raise many unrelated types
        raise DataError(f"cannot read funding file ({type(exc).__name__}: {exc})",
                        source=source) from None
    if "symbol" not in df.columns:
        m = _DUMP_NAME.match(path.name)
        if m is None:
            raise DataError("no symbol column, and the file name is not SYMBOL-fundingRate-*",
                            source=source, field="symbol")
        df = df.assign(symbol=m.group(1))
    ts_col = _pick(df, _TS_NAMES, "timestamp", source)
    rate_col = _pick(df, _RATE_NAMES, "funding_rate", source)
    return _canonical(df[[ts_col, "symbol", rate_col]], ts_col, rate_col, source)


def _to_utc(values: pd.Series, field: str, source: str) -> pd.Series:
    try:
        if values.dtype.kind in "iuf":
            ts = pd.to_datetime(values, unit="ms", utc=True)
        else:
            ts = pd.to_datetime(values, utc=True)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"bad funding time ({exc})", source=source, field=field) from None
    if ts.isna().any():
        row = int(np.flatnonzero(ts.isna().to_numpy())[0])
        raise DataError("missing funding time", source=source, row=row, field=field)
    return ts


def _canonical(df: pd.DataFrame, ts_col: str, rate_col: str, source: str) -> pd.DataFrame:
    ts = _to_utc(df[ts_col], ts_col, source)
    rate = pd.to_numeric(df[rate_col], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(rate) | (np.abs(rate) > MAX_ABS_RATE)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise BadInputError(
            f"funding rate must be finite and within ±{MAX_ABS_RATE} per interval",
            source=source, row=row, field=rate_col, value=str(df[rate_col].iloc[row]),
        )
    return pd.DataFrame({"timestamp": ts.to_numpy(), "symbol": df["symbol"].astype(str).to_numpy(),
                         "funding_rate": rate})


def load_funding(path: str | Path) -> pd.DataFrame:
    """Load funding rates (file or directory) as a sorted long frame; typed errors name the file."""
    p = Path(path)
    if not p.exists():
        raise DataError("funding file not found", source=str(p))
    files = sorted(f for f in p.iterdir() if f.suffix in (".parquet", ".csv")) if p.is_dir() \
        else [p]
    if not files:
        raise DataError("no .parquet or .csv funding files in the folder", source=str(p))
    out = pd.concat([_read_one(f) for f in files], ignore_index=True)
    out = out.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)
    dup = out.duplicated(["symbol", "timestamp"], keep=False)
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise DuplicateTimestampError(
            "funding time repeated for a symbol", source=str(p), row=row, field="timestamp",
            value=f"{out['symbol'].iloc[row]} {out['timestamp'].iloc[row]}",
        )
    return out


def funding_events(
    funding: pd.DataFrame | None, ts_ns: np.ndarray, bar_ns: int, assets: Sequence[str]
) -> FundingEvents:
    """Return the per-bar events of ``funding`` on bars opening at ``ts_ns`` (module timing rule).

    Funding times before the first bar's close or after the last bar's close are dropped;
    symbols that are not among ``assets`` are ignored.
    """
    n = len(ts_ns)
    if funding is None or not len(funding) or not n:
        return FundingEvents.none(n)
    index = {a: i for i, a in enumerate(assets)}
    col = funding["symbol"].astype(str).map(index)
    keep = col.notna().to_numpy()
    f_ts = funding["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64)[keep]
    closes = np.asarray(ts_ns, dtype=np.int64) + int(bar_ns)
    bar = np.searchsorted(closes, f_ts, side="left")
    inside = (bar < n) & (f_ts > closes[0] - int(bar_ns))
    bar = bar[inside]
    asset = col.to_numpy()[keep][inside].astype(np.int64)
    rate = funding["funding_rate"].to_numpy(dtype=np.float64)[keep][inside]
    order = np.lexsort((asset, bar))
    lo = np.searchsorted(bar[order], np.arange(n + 1), side="left").astype(np.int64)
    return FundingEvents(asset[order], rate[order], lo)


def assets_without_funding(
    funding: pd.DataFrame | None, assets: Sequence[str], traded: Sequence[str]
) -> list[str]:
    """Return the traded assets that have no funding row at all (their funding reads as 0)."""
    if funding is None:
        return []
    have = set(funding["symbol"].astype(str))
    return sorted({a for a in traded if a in set(assets) and a not in have})
