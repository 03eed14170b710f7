"""Daily external-factor table (ExF) for ACB v6 scale 1 (Bible §10.2).

Factors: ``funding_btc`` (BTCUSDT funding rate as a fraction), ``dvol_btc`` (Deribit DVOL),
``fng`` (Fear & Greed) and ``taker`` (taker buy/sell ratio). Sources in an indices folder:
``funding_rate_btc.json`` (8-hourly, values in PERCENT: divided by 100 here), ``dvol_btc.json``
(daily), ``fear_greed_index.csv`` (daily), ``taker_ratio_btc.json`` (daily). A missing file or a
day without a recent observation gives NaN: the factor is absent, never invented.

No look-ahead: each observation has an availability time, and the value for day D is the latest
one available at D 00:00 UTC. Daily candles (DVOL, taker) are stamped at their open and become
available one day later; a funding print is known at its own timestamp; the F&G value dated D is
published at D 00:00 UTC. An observation older than ``MAX_AGE`` at the day start is stale: absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from dolphin.core.errors import BadInputError

FACTORS = ("funding_btc", "dvol_btc", "fng", "taker")
MAX_AGE = pd.Timedelta(days=2)
_DAY = pd.Timedelta(days=1)


def _json_series(path: Path, *, scale: float, shift: pd.Timedelta) -> pd.Series:
    try:
        rows = json.loads(path.read_text())
        arr = np.asarray(rows, dtype=float).reshape(-1, 2)
    except (ValueError, OSError) as exc:
        raise BadInputError(
            f"not a JSON list of [ms, value] pairs ({exc})", source=str(path)
        ) from None
    ts = pd.to_datetime(arr[:, 0].astype(np.int64), unit="ms", utc=True) + shift
    return pd.Series(arr[:, 1] * scale, index=ts).sort_index()


def _fng_series(path: Path) -> pd.Series:
    df = pd.read_csv(path)
    if not {"Date", "fng_value"} <= set(df.columns):
        raise BadInputError("needs columns Date, fng_value", source=str(path))
    ts = pd.to_datetime(df["Date"], utc=True)
    return pd.Series(df["fng_value"].astype(float).to_numpy(), index=ts).sort_index()


def load_factor_series(indices_dir: str | Path) -> dict[str, pd.Series]:
    """Load every factor found in ``indices_dir`` as a series indexed by availability time."""
    d = Path(indices_dir)
    if not d.is_dir():
        raise BadInputError("factor folder does not exist", source=str(d))
    specs = {
        "funding_btc": ("funding_rate_btc.json", 0.01, pd.Timedelta(0)),
        "dvol_btc": ("dvol_btc.json", 1.0, _DAY),
        "taker": ("taker_ratio_btc.json", 1.0, _DAY),
    }
    out: dict[str, pd.Series] = {}
    for name, (fname, scale, shift) in specs.items():
        if (d / fname).exists():
            out[name] = _json_series(d / fname, scale=scale, shift=shift)
    if (d / "fear_greed_index.csv").exists():
        out["fng"] = _fng_series(d / "fear_greed_index.csv")
    return out


class ExfTable:
    """As-of lookups of the daily factors; absent factors are NaN."""

    def __init__(self, series: dict[str, pd.Series]) -> None:
        unknown = set(series) - set(FACTORS)
        if unknown:
            raise ValueError(f"unknown factors {sorted(unknown)}; known: {FACTORS}")
        self._series = {k: v.dropna().sort_index() for k, v in series.items()}

    @classmethod
    def from_dir(cls, indices_dir: str | Path) -> ExfTable:
        """Build the table from an indices folder."""
        return cls(load_factor_series(indices_dir))

    @classmethod
    def empty(cls) -> ExfTable:
        """A table with every factor absent."""
        return cls({})

    def for_date(self, date: str) -> dict[str, float]:
        """Return ``{factor: value or NaN}`` as known at ``date`` 00:00 UTC."""
        t0 = pd.Timestamp(date, tz="UTC")
        out = {}
        for name in FACTORS:
            s = self._series.get(name)
            value = np.nan
            if s is not None and len(s):
                i = s.index.searchsorted(t0, side="right") - 1
                if i >= 0 and t0 - s.index[i] <= MAX_AGE:
                    value = float(s.iloc[i])
            out[name] = value
        return out

    def table(self, dates: list[str]) -> pd.DataFrame:
        """Return one row per date with every factor (NaN = absent)."""
        return pd.DataFrame([self.for_date(d) for d in dates], index=pd.Index(dates, name="date"))
