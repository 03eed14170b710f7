"""Read aligned wide close files, and load any bar file as a wide frame (the scanner's input).

An aligned wide parquet (what ``dolphin data align`` writes) holds REAL closes: NaN where a
symbol had no bar. Loading one applies the same causal fill as a long file
(:func:`dolphin.data.align.fill_closes`). A legacy file written forward-filled cannot say which
bars were filled: every finite cell of it is read as a real close.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from dolphin.core.errors import (
    BadPriceError,
    DataError,
    DuplicateTimestampError,
    MixedBarSizeError,
    UnsortedTimestampError,
)
from dolphin.core.io import read_parquet
from dolphin.data.align import DEFAULT_FILL_LIMIT, TIMESTAMP, fill_closes, real_closes
from dolphin.data.bars import format_bar, to_bar
from dolphin.data.columns import require_columns, to_utc_ns
from dolphin.data.loaders import LONG_PARQUET, detect_format, load_bars, parquet_columns


def _check_grid(ts: np.ndarray, source: str) -> None:
    steps = np.diff(ts)
    bad = np.flatnonzero(steps <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        kind = DuplicateTimestampError if steps[i - 1] == 0 else UnsortedTimestampError
        raise kind(
            "wide timestamps must strictly increase",
            source=source,
            row=i,
            field=TIMESTAMP,
            value=str(pd.Timestamp(ts[i], tz="UTC")),
        )
    irregular = np.flatnonzero(steps != steps[0]) if steps.size else steps
    if irregular.size:
        i = int(irregular[0]) + 1
        raise MixedBarSizeError(
            f"wide grid is not regular: step {format_bar(pd.Timedelta(int(steps[i - 1])))} "
            f"after steps of {format_bar(pd.Timedelta(int(steps[0])))}",
            source=source,
            row=i,
            field=TIMESTAMP,
            value=str(pd.Timestamp(ts[i], tz="UTC")),
        )


def _check_prices(df: pd.DataFrame, names: list[str], source: str) -> np.ndarray:
    for name in names:
        if df[name].dtype.kind not in "iuf":
            raise DataError(
                "close column is not numeric", source=source, field=name, value=str(df[name].dtype)
            )
    values = df[names].to_numpy(dtype=np.float64)
    bad = ~np.isnan(values) & ~(np.isfinite(values) & (values > 0))
    if bad.any():
        r, c = (int(v[0]) for v in np.nonzero(bad))
        raise BadPriceError(
            "close must be positive where present",
            source=source,
            row=r,
            field=names[c],
            value=float(values[r, c]),
        )
    return values


def validate_wide(df: pd.DataFrame, *, source: str = "<frame>") -> pd.DataFrame:
    """Validate a wide frame and return it canonical: UTC ns ``timestamp`` + float64 columns.

    The timestamps must strictly increase on a regular step; closes must be positive or NaN.
    """
    require_columns(df, (TIMESTAMP,), source)
    if "symbol" in df.columns:
        raise DataError(
            "this is a long bar frame, not a wide close matrix", source=source, field="symbol"
        )
    if not len(df):
        raise DataError("no rows", source=source)
    ts = to_utc_ns(df[TIMESTAMP], source)
    _check_grid(ts, source)
    names = [str(c) for c in df.columns if c != TIMESTAMP]
    values = _check_prices(df.rename(columns=str), names, source)
    out = pd.DataFrame(values, columns=names)
    out.insert(0, TIMESTAMP, pd.DatetimeIndex(ts.view("datetime64[ns]")).tz_localize("UTC"))
    return out


def read_wide(path: str | Path) -> pd.DataFrame:
    """Read an aligned wide parquet (``timestamp`` + one float column per symbol), validated.

    The cells are returned as stored: real closes, NaN where there was no bar (a legacy
    forward-filled file reads as all-real).
    """
    source = str(path)
    try:
        df = read_parquet(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read parquet: {exc}", source=source) from exc
    return validate_wide(df, source=source)


def _reshape_wide(
    wide: pd.DataFrame, bar: str | pd.Timedelta | None, symbols: Sequence[str] | None, source: str
) -> pd.DataFrame:
    if symbols is not None:
        unknown = [s for s in symbols if s not in wide.columns or s == TIMESTAMP]
        if unknown:
            raise DataError("unknown symbol", source=source, field="symbols", value=unknown[0])
        wide = wide[[TIMESTAMP, *symbols]]
    if bar is None or len(wide) < 2:
        return wide
    step = wide[TIMESTAMP].iloc[1] - wide[TIMESTAMP].iloc[0]
    target = to_bar(bar)
    if target == step:
        return wide
    if target < step or target.value % step.value:
        raise MixedBarSizeError(
            f"cannot resample a {format_bar(step)} wide file onto a {format_bar(target)} grid",
            source=source,
            field="bar",
            value=format_bar(target),
        )
    # Same rule as real_closes: the last real close inside each coarse bar (groupby.last skips
    # NaN), labelled by its open time; a coarse bar with none is NaN.
    keys = wide[TIMESTAMP].dt.floor(target)
    out = wide.drop(columns=TIMESTAMP).groupby(keys.to_numpy()).last()
    out = out.reindex(pd.date_range(out.index[0], out.index[-1], freq=target))
    out.index.name = TIMESTAMP
    return out.reset_index()


def load_real_closes(
    path: str | Path,
    *,
    bar: str | pd.Timedelta | None = None,
    symbols: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Return the real close matrix of any bar file, directory or aligned wide parquet.

    A parquet without a ``symbol`` column (and without freqtrade's ``date``) is taken as an
    aligned wide file, read with :func:`read_wide` and resampled/selected; anything else is
    loaded with :func:`load_bars` and aligned with :func:`real_closes`. NaN = no real bar.
    """
    path = Path(path)
    if detect_format(path) == LONG_PARQUET and "symbol" not in parquet_columns(path):
        return _reshape_wide(read_wide(path), bar, symbols, str(path))
    return real_closes(load_bars(path), bar=bar, symbols=symbols)


def load_wide(
    path: str | Path,
    *,
    bar: str | pd.Timedelta | None = None,
    symbols: Sequence[str] | None = None,
    fill_limit: str | pd.Timedelta = DEFAULT_FILL_LIMIT,
) -> pd.DataFrame:
    """Return the aligned, causally filled close frame of any bar file or aligned wide parquet.

    ``fill_closes(load_real_closes(path, bar=bar, symbols=symbols), fill_limit=fill_limit)``.
    """
    real = load_real_closes(path, bar=bar, symbols=symbols)
    return fill_closes(real, fill_limit=fill_limit)
