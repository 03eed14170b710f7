"""Column conversions for raw bar frames: timestamps, prices, volumes, symbols.

Every function works on a whole column at once (no Python loop over rows) and raises a typed
error naming the first offending row. Rows are 0-based positions in the frame as read, which is
the 0-based data row of the file (a CSV header line is not counted).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dolphin.core.errors import (
    BadPriceError,
    BadVolumeError,
    DataError,
    MissingColumnError,
    TimestampError,
)

PRICE_COLUMNS = ("open", "high", "low", "close")
LONG_COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "volume")

# Epoch magnitude bands (DESIGN: timestamps are UTC). A value in [1e11, 1e14) is milliseconds
# (1973..5138), [1e14, 1e17) microseconds, >= 1e17 nanoseconds. Binance switched its public spot
# dumps from ms to µs in 2025, so both occur; smaller values are rejected, not guessed.
_MS_MIN, _US_MIN, _NS_MIN = 1e11, 1e14, 1e17
_NS_PER_DAY = 86_400_000_000_000


def require_columns(df: pd.DataFrame, columns: tuple[str, ...], source: str) -> None:
    """Raise ``MissingColumnError`` naming the first of ``columns`` absent from ``df``."""
    for name in columns:
        if name not in df.columns:
            raise MissingColumnError(
                f"missing column (have: {', '.join(map(str, df.columns))})",
                source=source,
                field=name,
            )


def _first(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def _epoch_to_ns(values: np.ndarray, source: str, field: str) -> np.ndarray:
    # Fractions of the unit (sub-millisecond parts of a ms time) are rounded away: bars are
    # whole seconds at least.
    if values.dtype.kind == "f":
        finite = np.isfinite(values)
        ints = np.rint(np.where(finite, values, 0)).astype(np.int64)
    else:  # integers stay integers: ns epochs exceed float64's 53-bit mantissa
        finite = np.ones(len(values), bool)
        ints = values.astype(np.int64)
    bad = ~finite | (ints < _MS_MIN)
    if bad.any():
        i = _first(bad)
        raise TimestampError(
            "epoch time is not a ms, µs or ns count after 1973",
            source=source,
            row=i,
            field=field,
            value=values[i].item(),
        )
    factor = np.where(ints >= _NS_MIN, 1, np.where(ints >= _US_MIN, 1_000, 1_000_000))
    return ints * factor


def _datetime_to_ns(series: pd.Series) -> np.ndarray:
    # tz-naive datetimes are taken as UTC: every source DOLPHIN reads is UTC.
    if series.dt.tz is None:
        series = series.dt.tz_localize("UTC")
    return series.dt.tz_convert("UTC").to_numpy(dtype="datetime64[ns]").view(np.int64)


def _text_to_ns(series: pd.Series, source: str, field: str) -> np.ndarray:
    numeric = pd.to_numeric(series, errors="coerce")
    bad = numeric.isna().to_numpy()
    if bad.all():
        parsed = pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
        bad = parsed.isna().to_numpy()
        if not bad.any():
            return _datetime_to_ns(parsed)
    elif not bad.any():
        return _epoch_to_ns(numeric.to_numpy(), source, field)
    # Mixed: a column of epoch numbers with some junk, or ISO text with some junk.
    i = _first(bad)
    raise TimestampError(
        "unparsable timestamp", source=source, row=i, field=field, value=series.iloc[i]
    )


def to_utc_ns(series: pd.Series, source: str, field: str = "timestamp") -> np.ndarray:
    """Convert a timestamp column to int64 ns since the epoch, UTC.

    Accepts datetimes (tz-aware, or naive meaning UTC), epoch numbers in ms, µs or ns (detected
    per value by magnitude) and ISO-8601 text. Raises ``TimestampError`` at the first row that
    is missing or unparsable.
    """
    missing = series.isna().to_numpy()
    if missing.any():
        i = _first(missing)
        raise TimestampError(
            "missing timestamp", source=source, row=i, field=field, value=str(series.iloc[i])
        )
    kind = series.dtype.kind
    if kind == "M":
        return _datetime_to_ns(series)
    if kind in "iuf":
        return _epoch_to_ns(series.to_numpy(), source, field)
    try:
        return _text_to_ns(series.astype(str), source, field)
    except (OverflowError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise TimestampError(str(exc), source=source, field=field) from exc


def _to_float(series: pd.Series, source: str, error: type[DataError]) -> np.ndarray:
    if series.dtype.kind == "f":
        return series.to_numpy(dtype=np.float64)
    if series.dtype.kind in "iub":
        return series.to_numpy(dtype=np.float64)
    numeric = pd.to_numeric(series, errors="coerce")
    bad = (numeric.isna() & series.notna()).to_numpy()
    if bad.any():
        i = _first(bad)
        raise error(
            "not a number", source=source, row=i, field=str(series.name), value=series.iloc[i]
        )
    return numeric.to_numpy(dtype=np.float64)


def to_prices(df: pd.DataFrame, source: str) -> dict[str, np.ndarray]:
    """Return the four price columns as float64; raise ``BadPriceError`` on NaN, inf or <= 0."""
    out = {}
    for name in PRICE_COLUMNS:
        values = _to_float(df[name], source, BadPriceError)
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            i = _first(bad)
            raise BadPriceError(
                "price must be finite and positive",
                source=source,
                row=i,
                field=name,
                value=values[i].item(),
            )
        out[name] = values
    return out


def to_volume(series: pd.Series, source: str) -> np.ndarray:
    """Return volume as float64; raise ``BadVolumeError`` on NaN, inf or negative values."""
    values = _to_float(series, source, BadVolumeError)
    bad = ~(np.isfinite(values) & (values >= 0))
    if bad.any():
        i = _first(bad)
        raise BadVolumeError(
            "volume must be finite and non-negative",
            source=source,
            row=i,
            field=str(series.name),
            value=values[i].item(),
        )
    return values


def to_symbols(series: pd.Series, source: str) -> pd.Categorical:
    """Return symbols as a Categorical whose categories are sorted by name (codes sort by name).

    Works on the distinct values only (a 3M-row column has a few hundred), never row by row.
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        uniques = np.asarray(series.cat.categories, dtype=object)
    else:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    names = np.array([str(u) for u in uniques], dtype=object)
    blank = np.array([len(n.strip()) == 0 for n in names], dtype=bool)
    missing = (codes < 0) | (blank[codes] if names.size else False)
    if np.any(missing):
        i = _first(np.asarray(missing))
        raise DataError(
            "missing symbol",
            source=source,
            row=i,
            field="symbol",
            value=None if codes[i] < 0 else names[codes[i]],
        )
    categories = sorted(set(names[np.unique(codes)])) if names.size else []
    rank = {name: k for k, name in enumerate(categories)}
    remap = np.array([rank.get(n, -1) for n in names], dtype=np.int64)
    return pd.Categorical.from_codes(remap[codes], categories=categories)
