"""Per-symbol summary of a long bar frame: span, rows, bar, expected rows and gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dolphin.data.bars import modal_spacing, same_symbol_spacings
from dolphin.data.validate import validate_bars

SUMMARY_COLUMNS = (
    "symbol",
    "first",
    "last",
    "rows",
    "bar",
    "expected_rows",
    "gaps",
    "longest_gap",
)


def summarize(long_df: pd.DataFrame) -> pd.DataFrame:
    """Return one row per symbol describing its bars.

    Columns: ``symbol``; ``first`` and ``last`` bar open times; ``rows`` (bars present);
    ``bar`` (the frame's bar size, NaT when no symbol has two bars); ``expected_rows`` (bars on
    the grid from first to last); ``gaps`` (missing bars inside the symbol's life, i.e.
    ``expected_rows - rows``); ``longest_gap`` (duration of the longest run of missing bars).
    """
    df = validate_bars(long_df)
    codes = df["symbol"].cat.codes.to_numpy().astype(np.int64)
    ts = df["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    names = [str(c) for c in df["symbol"].cat.categories]
    k = len(names)
    rows = np.bincount(codes, minlength=k)
    ends = np.cumsum(rows)
    starts = ends - rows
    first, last = ts[starts], ts[ends - 1]
    positions, spacings = same_symbol_spacings(codes, ts)
    bar = modal_spacing(spacings)
    longest = np.zeros(k, np.int64)
    if bar is None:
        expected = rows.copy()
    else:
        expected = (last - first) // bar + 1
        np.maximum.at(longest, codes[positions], spacings - bar)
    return pd.DataFrame(
        {
            "symbol": names,
            "first": pd.to_datetime(first, unit="ns", utc=True),
            "last": pd.to_datetime(last, unit="ns", utc=True),
            "rows": rows.astype(np.int64),
            "bar": pd.to_timedelta(np.full(k, np.nan if bar is None else bar), unit="ns"),
            "expected_rows": expected.astype(np.int64),
            "gaps": (expected - rows).astype(np.int64),
            "longest_gap": pd.to_timedelta(longest, unit="ns"),
        },
        columns=list(SUMMARY_COLUMNS),
    )
