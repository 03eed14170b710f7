"""Bar sizes: parse ``"1m"``-style strings, format them back, infer them from a long frame."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from dolphin.core.errors import BadInputError, DataError

_UNITS = {
    "s": pd.Timedelta(seconds=1),
    "m": pd.Timedelta(minutes=1),
    "h": pd.Timedelta(hours=1),
    "d": pd.Timedelta(days=1),
    "w": pd.Timedelta(weeks=1),
}
_BAR_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
# The longest bar accepted: beyond a year a "bar" is a typo.
MAX_BAR = pd.Timedelta(days=366)
# Largest unit first so 60m formats as 1h and 1440m as 1d.
_FORMAT_UNITS = (("w", 7 * 86_400), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


def parse_bar(text: str) -> pd.Timedelta:
    """Parse a bar size such as ``"1m"``, ``"5m"``, ``"1h"``, ``"1d"``, ``"1w"`` or ``"30s"``.

    Units are Binance's kline intervals (``m`` is minutes). Pandas spellings such as ``"1min"``
    are accepted too. Months are rejected: they have no fixed length, so no regular grid.
    """
    match = _BAR_RE.match(text) if isinstance(text, str) else None
    try:  # a long digit string overflows Timedelta: OverflowError, refused below
        bar = int(match.group(1)) * _UNITS[match.group(2)] if match else pd.Timedelta(text)
    except (ValueError, TypeError, OverflowError):
        bar = pd.NaT
    if bar is pd.NaT or pd.isna(bar) or not pd.Timedelta(0) < bar <= MAX_BAR:
        raise BadInputError(
            f"not a positive bar size like 1m, 5m, 1h, 1d (at most {MAX_BAR.days}d)",
            field="bar",
            value=text,
        )
    return bar


def to_bar(bar: str | pd.Timedelta) -> pd.Timedelta:
    """Return ``bar`` as a positive Timedelta (parsing strings with :func:`parse_bar`)."""
    if isinstance(bar, str):
        return parse_bar(bar)
    try:
        td = pd.Timedelta(bar)
    except (ValueError, TypeError, OverflowError):
        td = pd.NaT
    if pd.isna(td) or not pd.Timedelta(0) < td <= MAX_BAR:
        raise BadInputError(
            f"bar size must be positive and at most {MAX_BAR.days}d", field="bar", value=str(bar)
        )
    return td


def format_bar(bar: pd.Timedelta | None) -> str:
    """Format a bar size compactly (``1m``, ``5m``, ``1h``, ``1d``); sub-second sizes verbatim."""
    if bar is None or pd.isna(bar):
        return "?"
    ns = int(pd.Timedelta(bar).value)
    if ns % 1_000_000_000:
        return str(pd.Timedelta(bar))
    seconds = ns // 1_000_000_000
    for unit, size in _FORMAT_UNITS:
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"  # pragma: no cover - the "s" unit always divides


def format_duration(td: pd.Timedelta) -> str:
    """Format a duration as e.g. ``2d 4h13m``; zero as ``0``."""
    seconds = int(pd.Timedelta(td).total_seconds())
    if seconds <= 0:
        return "0"
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if v)
    return f"{days}d {text}".strip() if days else text


def same_symbol_spacings(codes: np.ndarray, ts_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(positions, spacings)`` of consecutive same-symbol bars of a sorted frame.

    ``positions`` are the indices of the LATER bar of each pair; ``spacings`` are int64 ns.
    """
    same = codes[1:] == codes[:-1]
    positions = np.flatnonzero(same) + 1
    return positions, ts_ns[positions] - ts_ns[positions - 1]


def modal_spacing(spacings: np.ndarray) -> int | None:
    """Return the most common spacing (ties: the smallest), or None when there is none."""
    positive = spacings[spacings > 0]
    if positive.size == 0:
        return None
    counts = pd.Series(positive).value_counts(sort=False)
    best = counts.max()
    return int(counts.index[counts.to_numpy() == best].min())


def infer_bar(long_df: pd.DataFrame) -> pd.Timedelta:
    """Infer the bar size of a long frame: the most common gap between consecutive same-symbol bars.

    The most common spacing, not the smallest, is used so that a few missing bars never change
    the answer. Raises ``DataError`` when no symbol has two bars.
    """
    codes = pd.Categorical(long_df["symbol"]).codes.astype(np.int64)
    ts = _ts_ns(long_df["timestamp"])
    order = np.lexsort((ts, codes))
    _, spacings = same_symbol_spacings(codes[order], ts[order])
    bar = modal_spacing(spacings)
    if bar is None:
        raise DataError("cannot infer the bar size: no symbol has two distinct bars")
    return pd.Timedelta(bar, unit="ns")


def _ts_ns(series: pd.Series) -> np.ndarray:
    values = series.dt.tz_convert("UTC") if series.dt.tz is not None else series
    return values.to_numpy(dtype="datetime64[ns]").view(np.int64)
