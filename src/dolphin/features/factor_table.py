"""The daily ExF factor table: one row per UTC day, each factor as the ACB knows it at 00:00.

The rules are ``ExfTable``'s (``features.exf``), applied to every day at once. Each series is
indexed by availability time (``load_factor_series``). The value for day D is the latest
observation available at or before D 00:00 UTC. It is NaN when there is none, or when that one is
older than ``MAX_AGE``: the factor is absent, never invented. Beside each factor,
``<factor>_asof`` holds the availability time of the observation used (NaT when absent), so
``date - MAX_AGE <= <factor>_asof <= date`` can be checked on every row. The availability time
of a daily candle (DVOL, taker) is its close, one day after the stamp in the source file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dolphin.core.errors import BadInputError
from dolphin.features.exf import FACTORS, MAX_AGE

_ABSENT = pd.Series(dtype=float, index=pd.DatetimeIndex([], tz="UTC"))  # a factor without a file


def table_columns() -> list[str]:
    """Return the columns of a factor table, in order: ``date``, then each factor and its as-of."""
    cols = ["date"]
    for name in FACTORS:
        cols += [name, f"{name}_asof"]
    return cols


def _day(value: str | pd.Timestamp, field: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise BadInputError(f"not a date ({exc})", field=field, value=str(value)) from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if ts != ts.normalize():
        raise BadInputError("must be a UTC day (00:00)", field=field, value=str(value))
    return ts


def default_span(series: dict[str, pd.Series]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Return the first and last UTC day at whose 00:00 some observation is already available."""
    known = [s.dropna().index for s in series.values()]
    known = [ix for ix in known if len(ix)]
    if not known:
        raise BadInputError("no factor observations to build a table from", field="indices")
    return min(ix.min() for ix in known).ceil("D"), max(ix.max() for ix in known).ceil("D")


def _asof(s: pd.Series, days: pd.DatetimeIndex) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Return the value and availability time of ``s`` as of each day's 00:00 (ExfTable's rule)."""
    s = s.dropna().sort_index()  # the cleaning ExfTable applies
    if not len(s):
        return np.full(len(days), np.nan), pd.DatetimeIndex([pd.NaT] * len(days), tz="UTC")
    i = s.index.searchsorted(days, side="right") - 1
    safe = np.maximum(i, 0)
    when = s.index[safe]
    ok = (i >= 0) & (days - when <= MAX_AGE)
    return np.where(ok, s.to_numpy(dtype=float)[safe], np.nan), when.where(ok)


def factor_table(
    series: dict[str, pd.Series],
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Return one row per UTC day from ``start`` to ``end`` inclusive (default ``default_span``):
    ``date`` (00:00 UTC), then each factor of ``FACTORS`` and its ``<factor>_asof``."""
    unknown = set(series) - set(FACTORS)
    if unknown:
        raise BadInputError(f"unknown factors; known: {FACTORS}", value=str(sorted(unknown)))
    lo, hi = default_span(series) if start is None or end is None else (None, None)
    first = _day(start, "start") if start is not None else lo
    last = _day(end, "end") if end is not None else hi
    if last < first:
        raise BadInputError("end is before start", field="end", value=str(last.date()))
    days = pd.date_range(first, last, freq="D")
    out = {"date": days}
    for name in FACTORS:
        out[name], out[f"{name}_asof"] = _asof(series.get(name, _ABSENT), days)
    return pd.DataFrame(out, columns=table_columns())
