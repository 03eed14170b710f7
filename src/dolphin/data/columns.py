"""Column conversions for raw bar frames: timestamps, prices, volumes, symbols.

Every function works on a whole column at once (no Python loop over rows of a numeric column)
and raises a typed error naming the first offending row. Rows are 0-based positions in the frame
as read, which is the 0-based data row of the file (a CSV header line is not counted).

``text=True`` is for text formats (kline CSV), where every value arrives as a string and is
parsed as a number; elsewhere (``text=False``) a string, a boolean or any other non-number where
a number belongs is refused, so ``"61000.5"`` or ``true`` in a JSON price never passes.
"""

from __future__ import annotations

import numbers
from datetime import datetime

import numpy as np
import pandas as pd

from dolphin.core.errors import (
    BadPriceError,
    BadVolumeError,
    DataError,
    InconsistentPriceError,
    MissingColumnError,
    TimestampError,
)

PRICE_COLUMNS = ("open", "high", "low", "close")
LONG_COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "volume")

# Epoch magnitude bands (DESIGN: timestamps are UTC). A value in [1e11, 1e14) is milliseconds,
# [1e14, 1e17) microseconds, >= 1e17 nanoseconds. Binance switched its public spot dumps from ms
# to µs in 2025, so both occur; smaller values (seconds) are rejected, not guessed.
_MS_MIN, _US_MIN, _NS_MIN = 1e11, 1e14, 1e17
# Bars exist from Bitcoin's first year to a horizon far beyond any data DOLPHIN reads. The window
# also keeps every accepted epoch far from int64 ns overflow (year 2262), so a ms value of year
# 2655 is refused instead of wrapping round to 2070.
EARLIEST = pd.Timestamp("2009-01-01", tz="UTC")
LATEST = pd.Timestamp("2100-01-01", tz="UTC")  # exclusive
_EARLIEST_NS, _LATEST_NS = EARLIEST.value, LATEST.value
_WINDOW = f"{EARLIEST:%Y-%m-%d} .. {LATEST:%Y-%m-%d}"


def require_columns(df: pd.DataFrame, columns: tuple[str, ...], source: str) -> None:
    """Raise ``MissingColumnError`` naming the first of ``columns`` absent from ``df``.

    A column that appears more than once is as unusable as an absent one: ``DataError``.
    """
    names = [str(c) for c in df.columns]
    for name in columns:
        count = names.count(name)
        if count == 0:
            raise MissingColumnError(
                f"missing column (have: {', '.join(names)})", source=source, field=name
            )
        if count > 1:
            raise DataError(f"column appears {count} times", source=source, field=name)


def _first(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def _raise_out_of_window(values: np.ndarray, bad: np.ndarray, source: str, field: str) -> None:
    i = _first(bad)
    value = values[i]
    raise TimestampError(
        f"epoch time is not a ms, µs or ns count within {_WINDOW} UTC",
        source=source,
        row=i,
        field=field,
        value=value.item() if hasattr(value, "item") else value,
    )


def _epoch_to_ns(values: np.ndarray, source: str, field: str) -> np.ndarray:
    # Fractions of the unit (sub-millisecond parts of a ms time) are rounded away: bars are
    # whole seconds at least. The window is checked on float64 BEFORE any int64 arithmetic, so
    # nothing can overflow; int64 inputs are converted exactly (ns exceed the 53-bit mantissa).
    approx = values.astype(np.float64)
    finite = np.isfinite(approx)
    safe = np.where(finite, approx, 0.0)
    factor = np.where(safe >= _NS_MIN, 1, np.where(safe >= _US_MIN, 1_000, 1_000_000))
    scaled = safe * factor
    bad = ~finite | (safe < _MS_MIN) | (scaled < _EARLIEST_NS) | (scaled >= _LATEST_NS)
    if bad.any():
        _raise_out_of_window(values, bad, source, field)
    ints = np.rint(safe).astype(np.int64) if values.dtype.kind == "f" else values.astype(np.int64)
    return ints * factor


def _datetime_to_ns(series: pd.Series, source: str, field: str) -> np.ndarray:
    # tz-naive datetimes are taken as UTC: every source DOLPHIN reads is UTC. The window is
    # checked in whole seconds first, so a µs-resolution year 2700 cannot wrap in ns.
    if series.dt.tz is None:
        series = series.dt.tz_localize("UTC")
    naive = series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    seconds = naive.astype("datetime64[s]").view(np.int64)
    bad = (seconds < _EARLIEST_NS // 10**9) | (seconds >= _LATEST_NS // 10**9)
    if bad.any():
        i = _first(bad)
        raise TimestampError(
            f"timestamp outside {_WINDOW} UTC",
            source=source,
            row=i,
            field=field,
            value=str(naive[i]),
        )
    return naive.astype("datetime64[ns]").view(np.int64)


def _text_to_ns(series: pd.Series, source: str, field: str) -> np.ndarray:
    numeric = pd.to_numeric(series, errors="coerce")
    bad = numeric.isna().to_numpy()
    if bad.all():
        parsed = pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
        bad = parsed.isna().to_numpy()
        if not bad.any():
            return _datetime_to_ns(parsed, source, field)
    elif not bad.any():
        return _epoch_to_ns(numeric.to_numpy(), source, field)
    # Mixed: a column of epoch numbers with some junk, or ISO text with some junk.
    i = _first(bad)
    raise TimestampError(
        "unparsable timestamp", source=source, row=i, field=field, value=series.iloc[i]
    )


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_time(value: object) -> bool:
    return _is_number(value) or isinstance(value, (str, datetime, np.datetime64))


def _refuse_non_numbers(series: pd.Series, source: str, error: type[DataError], time: bool):
    """Raise ``error`` at the first value that is not a number (or a time if ``time``)."""
    what = "a number, a datetime or ISO-8601 text" if time else "a number"
    if series.dtype.kind != "O" or isinstance(series.dtype, pd.CategoricalDtype):
        raise error(
            f"column of {series.dtype} where {what} belongs",
            source=source,
            row=0,
            field=str(series.name),
            value=series.iloc[0],
        )
    check = _is_time if time else _is_number
    values = series.to_numpy(dtype=object)
    ok = np.fromiter((check(v) for v in values), dtype=bool, count=len(values))
    if not ok.all():
        i = _first(~ok)
        raise error(
            f"{type(values[i]).__name__} where {what} belongs",
            source=source,
            row=i,
            field=str(series.name),
            value=values[i],
        )


def _refuse_quoted_epochs(series: pd.Series, source: str, field: str) -> None:
    # ISO text is a time; a number in quotes ("1617321600000") is a number where one belongs.
    values = series.to_numpy(dtype=object)
    is_text = np.fromiter((isinstance(v, str) for v in values), dtype=bool, count=len(values))
    if not is_text.any():
        return
    numeric = pd.to_numeric(pd.Series(values[is_text]), errors="coerce").notna().to_numpy()
    if numeric.any():
        i = int(np.flatnonzero(is_text)[np.argmax(numeric)])
        raise TimestampError(
            "a quoted number where an epoch number belongs",
            source=source,
            row=i,
            field=field,
            value=values[i],
        )


def to_utc_ns(
    series: pd.Series, source: str, field: str = "timestamp", *, text: bool = True
) -> np.ndarray:
    """Convert a timestamp column to int64 ns since the epoch, UTC.

    Accepts datetimes (tz-aware, or naive meaning UTC), epoch numbers in ms, µs or ns (detected
    per value by magnitude) and ISO-8601 text; epoch numbers written as text are accepted only
    when ``text`` (a CSV), elsewhere a quoted number is refused. Every time must fall in
    ``EARLIEST .. LATEST``. Raises ``TimestampError`` at the first row that is missing,
    unparsable or out of that window.
    """
    missing = series.isna().to_numpy()
    if missing.any():
        i = _first(missing)
        raise TimestampError(
            "missing timestamp", source=source, row=i, field=field, value=str(series.iloc[i])
        )
    kind = series.dtype.kind
    if kind == "M":
        return _datetime_to_ns(series, source, field)
    if kind in "iuf":
        return _epoch_to_ns(series.to_numpy(), source, field)
    if not text:
        _refuse_non_numbers(series, source, TimestampError, time=True)
        _refuse_quoted_epochs(series, source, field)
    try:
        return _text_to_ns(series.astype(str), source, field)
    except (OverflowError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise TimestampError(str(exc), source=source, field=field) from exc


def _to_float(series: pd.Series, source: str, error: type[DataError], text: bool) -> np.ndarray:
    if series.dtype.kind in "iuf":
        return series.to_numpy(dtype=np.float64)
    if not text:
        _refuse_non_numbers(series, source, error, time=False)
    strings = series.astype(str).str.strip() if text else series
    numeric = pd.to_numeric(strings, errors="coerce")
    bad = (numeric.isna() & series.notna()).to_numpy()
    if bad.any():
        i = _first(bad)
        raise error(
            "not a number", source=source, row=i, field=str(series.name), value=series.iloc[i]
        )
    return numeric.to_numpy(dtype=np.float64)


def to_prices(df: pd.DataFrame, source: str, *, text: bool = False) -> dict[str, np.ndarray]:
    """Return the four price columns as float64.

    Raises ``BadPriceError`` on a non-number, NaN, inf or a price <= 0, and its subclass
    ``InconsistentPriceError`` when high < low or open or close lies outside [low, high].
    """
    out = {}
    for name in PRICE_COLUMNS:
        values = _to_float(df[name], source, BadPriceError, text)
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
    check_ohlc(out, source)
    return out


def check_ohlc(prices: dict[str, np.ndarray], source: str) -> None:
    """Raise ``InconsistentPriceError`` at the first bar with high < low or open/close outside."""
    low, high = prices["low"], prices["high"]
    masks = {
        "high": high < low,
        "open": (prices["open"] < low) | (prices["open"] > high),
        "close": (prices["close"] < low) | (prices["close"] > high),
    }
    bad = masks["high"] | masks["open"] | masks["close"]
    if not bad.any():
        return
    i = _first(bad)
    name = next(n for n, m in masks.items() if m[i])
    lo, hi = float(low[i]), float(high[i])
    raise InconsistentPriceError(
        f"high is below low {lo!r}"
        if name == "high"
        else f"{name} outside [low, high] = [{lo!r}, {hi!r}]",
        source=source,
        row=i,
        field=name,
        value=prices[name][i].item(),
    )


def to_volume(series: pd.Series, source: str, *, text: bool = False) -> np.ndarray:
    """Return volume as float64; raise ``BadVolumeError`` on non-numbers, NaN, inf or < 0."""
    values = _to_float(series, source, BadVolumeError, text)
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


def _symbol_codes(series: pd.Series, source: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.codes.to_numpy(), np.asarray(series.cat.categories, dtype=object)
    if series.dtype.kind != "O":
        raise DataError(
            f"symbol column of {series.dtype}, expected text",
            source=source,
            row=0,
            field="symbol",
            value=series.iloc[0],
        )
    try:
        return pd.factorize(series, use_na_sentinel=True)
    except TypeError:  # unhashable values (lists, dicts): find the first for the message
        values = series.to_numpy(dtype=object)
        ok = np.fromiter((isinstance(v, str) for v in values), dtype=bool, count=len(values))
        i = _first(~ok)
        raise DataError(
            f"symbol is a {type(values[i]).__name__}, expected text",
            source=source,
            row=i,
            field="symbol",
            value=values[i],
        ) from None


def _valid_symbol(name: object) -> bool:
    return isinstance(name, str) and name != "" and name.isprintable() and name.split() == [name]


def to_symbols(series: pd.Series, source: str) -> pd.Categorical:
    """Return symbols as a Categorical whose categories are sorted by name (codes sort by name).

    A symbol must be non-empty printable text without spaces. Works on the distinct
    values only (a 3M-row column has a few hundred), never row by row.
    """
    codes, uniques = _symbol_codes(series, source)
    valid = np.array([_valid_symbol(u) for u in uniques], dtype=bool)
    invalid = (codes < 0) | (~valid[codes] if uniques.size else False)
    if np.any(invalid):
        i = _first(np.asarray(invalid))
        value = None if codes[i] < 0 else uniques[codes[i]]
        blank = value is None or (isinstance(value, str) and not value.strip())
        raise DataError(
            "missing symbol" if blank else "symbol must be printable text without spaces",
            source=source,
            row=i,
            field="symbol",
            value=value,
        )
    names = np.asarray(uniques, dtype=object)
    categories = sorted(set(names[np.unique(codes)])) if names.size else []
    rank = {name: k for k, name in enumerate(categories)}
    remap = np.array([rank.get(n, -1) for n in names], dtype=np.int64)
    return pd.Categorical.from_codes(remap[codes], categories=categories)
