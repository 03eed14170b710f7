"""Validate long bar frames (DESIGN.md, "Data contracts") with whole-column numpy checks.

Errors name the file, the 0-based row in that file as read (a CSV header line is not counted)
and the offending value. When several rows are bad, the first one in file order is reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dolphin.core.errors import (
    DuplicateTimestampError,
    MixedBarSizeError,
    UnsortedTimestampError,
)
from dolphin.data.bars import format_bar, modal_spacing, same_symbol_spacings
from dolphin.data.columns import (
    LONG_COLUMNS,
    require_columns,
    to_prices,
    to_symbols,
    to_utc_ns,
    to_volume,
)


@dataclass(frozen=True)
class Locator:
    """Maps a position of the (sorted) frame back to its file and row for error messages."""

    sources: tuple[str, ...]
    row: np.ndarray
    src: np.ndarray | None = None

    def first(self, positions: np.ndarray) -> int:
        """Return the position among ``positions`` that comes first in file order."""
        src = np.zeros(len(positions), np.int64) if self.src is None else self.src[positions]
        return int(positions[np.lexsort((self.row[positions], src))[0]])

    def where(self, position: int) -> dict[str, object]:
        """Return ``source`` and ``row`` keyword arguments for a typed error."""
        src = 0 if self.src is None else int(self.src[position])
        return {"source": self.sources[src], "row": int(self.row[position])}

    def take(self, order: np.ndarray) -> Locator:
        """Return the locator re-ordered like a frame indexed with ``order``."""
        src = None if self.src is None else self.src[order]
        return Locator(self.sources, self.row[order], src)


def _stamp(ts_ns: int) -> str:
    return str(pd.Timestamp(ts_ns, unit="ns", tz="UTC"))


def check_order(codes: np.ndarray, ts: np.ndarray, loc: Locator, names: Sequence[str]) -> None:
    """Raise on a duplicate or backwards timestamp within a symbol (frame grouped by symbol)."""
    positions, spacings = same_symbol_spacings(codes, ts)
    bad = positions[spacings <= 0]
    if bad.size == 0:
        return
    i = loc.first(bad)
    symbol = names[codes[i]]
    value = _stamp(ts[i])
    if ts[i] == ts[i - 1]:
        raise DuplicateTimestampError(
            f"duplicate timestamp within symbol {symbol}",
            field="timestamp",
            value=value,
            **loc.where(i),
        )
    raise UnsortedTimestampError(
        f"timestamp goes backwards within symbol {symbol} (previous bar {_stamp(ts[i - 1])})",
        field="timestamp",
        value=value,
        **loc.where(i),
    )


def check_bar(
    codes: np.ndarray, ts: np.ndarray, loc: Locator, names: Sequence[str]
) -> pd.Timedelta | None:
    """Check bar sizes of a frame sorted by symbol then time; return the bar (None if unknown).

    The file's bar is the most common spacing between consecutive bars of a symbol. Raises
    ``MixedBarSizeError`` when a spacing is not a whole multiple of it (gaps that are whole
    multiples are legal), when a symbol never shows that spacing (its own bar differs; a symbol
    whose every pair of bars is separated by a gap is indistinguishable from that and rejected
    too), or when a timestamp is off the grid anchored at the file's first bar.
    """
    positions, spacings = same_symbol_spacings(codes, ts)
    bar = modal_spacing(spacings)
    if bar is None:
        return None
    bar_text = format_bar(pd.Timedelta(bar, unit="ns"))
    off = spacings % bar != 0
    if off.any():
        i = loc.first(positions[off])
        raise MixedBarSizeError(
            f"{names[codes[i]]}: spacing {format_bar(pd.Timedelta(int(ts[i] - ts[i - 1])))} "
            f"to the previous bar is not a whole multiple of the file's bar {bar_text}",
            field="timestamp",
            value=_stamp(ts[i]),
            **loc.where(i),
        )
    _check_symbol_bars(codes, ts, positions, spacings, bar, loc, names)
    phase = (ts - ts.min()) % bar != 0
    if phase.any():
        i = loc.first(np.flatnonzero(phase))
        raise MixedBarSizeError(
            f"{names[codes[i]]}: timestamp is off the {bar_text} grid that starts at "
            f"{_stamp(ts.min())}",
            field="timestamp",
            value=_stamp(ts[i]),
            **loc.where(i),
        )
    return pd.Timedelta(bar, unit="ns")


def _check_symbol_bars(codes, ts, positions, spacings, bar, loc, names) -> None:
    pair_codes = codes[positions]  # ascending: the frame is grouped by symbol code
    n = len(names)
    pairs = np.bincount(pair_codes, minlength=n)
    at_bar = np.bincount(pair_codes[spacings == bar], minlength=n)
    odd = np.flatnonzero((pairs > 0) & (at_bar == 0))
    if odd.size == 0:
        return
    i = loc.first(positions[np.searchsorted(pair_codes, odd)])
    own = spacings[pair_codes == codes[i]].min()
    raise MixedBarSizeError(
        f"symbol {names[codes[i]]} has bar {format_bar(pd.Timedelta(int(own)))}, "
        f"the file's bar is {format_bar(pd.Timedelta(bar))}",
        field="timestamp",
        value=_stamp(ts[i]),
        **loc.where(i),
    )


def validate_bars(
    df: pd.DataFrame,
    *,
    source: str = "<frame>",
    rows: np.ndarray | None = None,
    text: bool = False,
) -> pd.DataFrame:
    """Validate a long bar frame and return it in the canonical long layout.

    The result has exactly the columns ``timestamp`` (datetime64[ns, UTC], bar open time),
    ``symbol`` (category, categories sorted), ``open, high, low, close, volume`` (float64),
    sorted by symbol then timestamp with a fresh RangeIndex. ``df`` is taken in file order;
    ``rows`` gives each row's 0-based row in the file when that differs from its position.
    ``text=True`` parses string values as numbers (a text format such as CSV); otherwise a
    string, boolean or other non-number where a number belongs is refused. Besides types, the
    checks are: timestamps inside ``columns.EARLIEST .. LATEST``, unique and increasing within
    a symbol, on one bar grid; prices finite and positive with low <= open, close <= high;
    volume finite and non-negative; symbols printable text.
    Raises a typed ``DataError`` subclass naming ``source``, the row and the value.
    """
    return validate_with_rows(df, source=source, rows=rows, text=text)[0]


def validate_with_rows(
    df: pd.DataFrame, *, source: str, rows: np.ndarray | None = None, text: bool = False
) -> tuple[pd.DataFrame, np.ndarray]:
    """Like :func:`validate_bars`; also return each output row's 0-based row in the file."""
    require_columns(df, LONG_COLUMNS, source)
    loc = Locator((source,), np.arange(len(df)) if rows is None else np.asarray(rows))
    ts = to_utc_ns(df["timestamp"], source, text=text)
    symbols = to_symbols(df["symbol"], source)
    prices = to_prices(df, source, text=text)
    volume = to_volume(df["volume"], source, text=text)
    codes = symbols.codes.astype(np.int64)
    order = None
    if codes.size and np.any(codes[1:] < codes[:-1]):
        # Group by symbol keeping file order inside each symbol, so "unsorted" keeps its meaning.
        order = np.argsort(codes, kind="stable")
        codes, ts, loc = codes[order], ts[order], loc.take(order)
    names = [str(c) for c in symbols.categories]
    check_order(codes, ts, loc, names)
    check_bar(codes, ts, loc, names)
    return _assemble(ts, codes, symbols.categories, prices, volume, order), loc.row


def _assemble(ts, codes, categories, prices, volume, order) -> pd.DataFrame:
    def pick(values: np.ndarray) -> np.ndarray:
        return values if order is None else values[order]

    data = {
        "timestamp": pd.DatetimeIndex(ts.view("datetime64[ns]")).tz_localize("UTC"),
        "symbol": pd.Categorical.from_codes(codes, categories=categories),
    }
    data.update({name: pick(values) for name, values in prices.items()})
    data["volume"] = pick(volume)
    return pd.DataFrame(data)


def merge_validated(
    frames: Sequence[pd.DataFrame], rows: Sequence[np.ndarray], sources: Sequence[str]
) -> pd.DataFrame:
    """Merge frames checked by :func:`validate_with_rows` (one per file) into one frame.

    ``rows`` are the file rows that :func:`validate_with_rows` returned with each frame.

    Re-checks what only shows across files: the same bar of a symbol in two files, and bar
    sizes that differ between files. Errors name the file and row of the offending bar.
    """
    if len(frames) == 1:
        return frames[0]
    names = sorted({str(s) for f in frames for s in f["symbol"].cat.categories})
    merged = pd.concat(
        [f.assign(symbol=f["symbol"].astype(str)) for f in frames], ignore_index=True
    )
    src = np.concatenate([np.full(len(f), k, np.int64) for k, f in enumerate(frames)])
    row = np.concatenate([np.asarray(r, np.int64) for r in rows])
    codes = pd.Categorical(merged["symbol"], categories=names).codes.astype(np.int64)
    ts = merged["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    order = np.lexsort((src, ts, codes))
    loc = Locator(tuple(sources), row[order], src[order])
    codes, ts = codes[order], ts[order]
    check_order(codes, ts, loc, names)
    check_bar(codes, ts, loc, names)
    out = merged.iloc[order].reset_index(drop=True)
    out["symbol"] = pd.Categorical.from_codes(codes, categories=names)
    return out
