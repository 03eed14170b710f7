"""Align long bars onto a regular grid: the close matrices of DESIGN.md "Data contracts".

The canonical form is the REAL close matrix (:func:`real_closes`): per grid bar and symbol, the
close of the symbol's last bar inside that grid bar, NaN where it had none. The rest derives
from it: the scanner's matrix (:func:`fill_closes`), the real mask (:func:`real_mask`) and the
per-bar share of forward-filled cells (:func:`missing_fraction`, :func:`fill_fraction`).

The fill is causal: a missing bar carries the symbol's last real close forward (a zero return)
for at most ``fill_limit`` (default :data:`DEFAULT_FILL_LIMIT`), after which the cell is NaN
until the symbol's next real bar; before its first bar it is NaN. Where a symbol's data ends is
never used (a live system cannot know it), so the matrix up to bar t depends only on bars up to t.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from dolphin.core.errors import BadInputError, DataError, MixedBarSizeError
from dolphin.data.bars import format_bar, modal_spacing, same_symbol_spacings, to_bar
from dolphin.data.validate import validate_bars

TIMESTAMP = "timestamp"
# DESIGN.md: the scanner flags `data_gap` where MOST assets are missing on a bar.
GAP_THRESHOLD = 0.5
# A day covers an exchange maintenance (433 minutes on the shared 2021-04 spot set) while keeping
# a symbol whose data has ended from looking alive for longer than one day of zero returns.
DEFAULT_FILL_LIMIT = pd.Timedelta(days=1)


def column_codes(symbol: pd.Series, names: Sequence[str]) -> np.ndarray:
    """Return, per row, the index of its symbol in ``names`` (-1 when absent); no per-row str."""
    if isinstance(symbol.dtype, pd.CategoricalDtype):
        codes, uniques = symbol.cat.codes.to_numpy(), symbol.cat.categories
    else:
        codes, uniques = pd.factorize(symbol)
    index = {name: k for k, name in enumerate(names)}
    remap = np.array([index.get(str(u), -1) for u in uniques] + [-1], dtype=np.int64)
    return remap[codes]  # code -1 (missing) picks the trailing -1


def _select(df: pd.DataFrame, symbols: Sequence[str] | None) -> tuple[list[str], np.ndarray]:
    """Return the chosen column names and, per row of ``df``, its column (-1: not chosen)."""
    available = [str(c) for c in df["symbol"].cat.categories]
    if symbols is None:
        names = available
    else:
        names = [str(s) for s in symbols]
        if not names:
            raise DataError("no symbols selected", field="symbols")
        unknown = [s for s in names if s not in set(available)]
        if unknown:
            raise DataError(
                f"unknown symbol (have: {', '.join(available)})", field="symbols", value=unknown[0]
            )
        if len(set(names)) != len(names):
            raise DataError("symbol selected twice", field="symbols", value=",".join(names))
    return names, column_codes(df["symbol"], names)


def _target_bar(data_bar: int | None, bar: str | pd.Timedelta | None) -> int:
    if bar is None:
        if data_bar is None:
            raise DataError("cannot infer the bar size: no symbol has two bars; pass bar=")
        return data_bar
    target = int(to_bar(bar).value)
    if data_bar is not None and (target < data_bar or target % data_bar):
        raise MixedBarSizeError(
            f"cannot align {format_bar(pd.Timedelta(data_bar))} bars onto a "
            f"{format_bar(pd.Timedelta(target))} grid: the grid bar must be a whole multiple "
            "of the data's bar",
            field="bar",
            value=format_bar(pd.Timedelta(target)),
        )
    return target


def _last_per_bin(col: np.ndarray, ts: np.ndarray, close: np.ndarray, step: int):
    # Coarser grid: label each bar with the OPEN time of the coarse bar containing it (epoch
    # anchored, like Binance klines) and keep the last close inside it. Rows are sorted by
    # column then time, so the last row of each (column, label) run is that bin's close.
    key = ts - ts % step
    last = np.ones(len(ts), bool)
    last[:-1] = (col[1:] != col[:-1]) | (key[1:] != key[:-1])
    return col[last], key[last], close[last]


def _cells(df: pd.DataFrame, symbols: Sequence[str] | None, bar):
    """Return (names, step, column, timestamp, close) of the selected rows, one per grid bar."""
    names, col = _select(df, symbols)
    ts_all = df[TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)
    codes = df["symbol"].cat.codes.to_numpy().astype(np.int64)
    step = _target_bar(modal_spacing(same_symbol_spacings(codes, ts_all)[1]), bar)
    keep = col >= 0
    col, ts, close = col[keep], ts_all[keep], df["close"].to_numpy()[keep]
    if np.any(col[1:] < col[:-1]):
        # Re-sort by output column: the `symbols` order may differ from name order.
        order = np.lexsort((ts, col))
        col, ts, close = col[order], ts[order], close[order]
    return (names, step, *_last_per_bin(col, ts, close, step))


def _frame(t0: int, step: int, values: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    grid = (t0 + step * np.arange(values.shape[0], dtype=np.int64)).view("datetime64[ns]")
    out = pd.DataFrame(values, columns=list(names))
    out.insert(0, TIMESTAMP, pd.DatetimeIndex(grid).tz_localize("UTC"))
    return out


def real_closes(
    long_df: pd.DataFrame,
    *,
    bar: str | pd.Timedelta | None = None,
    symbols: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Return the real close matrix of a long bar frame (NaN where a symbol had no bar).

    Columns: ``timestamp`` (datetime64[ns, UTC], bar open times on a regular grid of step
    ``bar`` from the first to the last bar of the selected symbols), then one float64 column
    per symbol (sorted by name, or in the order of ``symbols``). A cell holds the close of the
    symbol's last bar inside that grid bar and is NaN when there was none. ``bar`` defaults to
    the data's bar; a coarser ``bar`` (a whole multiple of the data's) resamples, each coarse
    bar labelled by its open time (anchored at the epoch). A finer or non-multiple ``bar``
    raises ``MixedBarSizeError``; an unknown symbol raises ``DataError`` naming it.
    """
    names, step, col, ts, close = _cells(validate_bars(long_df), symbols, bar)
    t0 = int(ts.min())
    row = (ts - t0) // step
    mat = np.full((int(row.max()) + 1, len(names)), np.nan)
    mat[row, col] = close
    return _frame(t0, step, mat, names)


def parse_fill_limit(fill_limit: str | pd.Timedelta) -> pd.Timedelta:
    """Return ``fill_limit`` (``"1d"``, ``"6h"``, a Timedelta; ``"0"``: no fill) as a Timedelta."""
    try:
        if str(fill_limit).strip() == "0" or pd.Timedelta(0) == fill_limit:
            return pd.Timedelta(0)
        return to_bar(fill_limit)
    except (BadInputError, TypeError, ValueError):
        raise BadInputError(
            "fill limit must be a duration like 1d, 6h or 0", field="fill_limit",
            value=str(fill_limit),
        ) from None


def fill_limit_bars(fill_limit: str | pd.Timedelta, bar: str | pd.Timedelta) -> int:
    """Return ``fill_limit`` in bars of size ``bar``, rounded up: ``ceil(fill_limit / bar)``."""
    return int(-(-parse_fill_limit(fill_limit).value // to_bar(bar).value))


def ffill_limited(values: np.ndarray, limit: int) -> np.ndarray:
    """Return a copy of ``values`` (rows = bars) with NaN cells filled from above in each column.

    A NaN cell takes the last non-NaN value above it when that is at most ``limit`` rows up;
    otherwise (and above a column's first value) it stays NaN. Only earlier rows are read.
    """
    rows = np.arange(values.shape[0])[:, None]
    src = np.where(np.isnan(values), -1, rows)
    np.maximum.accumulate(src, axis=0, out=src)
    filled = np.take_along_axis(values, np.maximum(src, 0), axis=0)
    filled[(src < 0) | (rows - src > limit)] = np.nan
    return filled


def _names(wide: pd.DataFrame) -> list[str]:
    return [c for c in wide.columns if c != TIMESTAMP]


def fill_closes(
    real: pd.DataFrame, *, fill_limit: str | pd.Timedelta = DEFAULT_FILL_LIMIT
) -> pd.DataFrame:
    """Return the scanner's close matrix: ``real`` with the causal fill of the module docstring.

    ``real`` is a wide frame on a regular grid (``timestamp`` + one column per symbol, NaN = no
    real bar), as :func:`real_closes` or ``read_wide`` give. A NaN cell takes the symbol's last
    real close when that is at most ``ceil(fill_limit / bar)`` bars earlier, else stays NaN.
    """
    limit = parse_fill_limit(fill_limit)
    names = _names(real)
    values = real[names].to_numpy(dtype=np.float64)
    if len(real) > 1:
        step = pd.Timedelta(real[TIMESTAMP].iloc[1] - real[TIMESTAMP].iloc[0])
        values = ffill_limited(values, fill_limit_bars(limit, step))
    out = pd.DataFrame(values, columns=names)
    out.insert(0, TIMESTAMP, real[TIMESTAMP].reset_index(drop=True))
    return out


def align_closes(
    long_df: pd.DataFrame,
    *,
    bar: str | pd.Timedelta | None = None,
    symbols: Sequence[str] | None = None,
    fill_limit: str | pd.Timedelta = DEFAULT_FILL_LIMIT,
) -> pd.DataFrame:
    """Return the aligned (causally filled) close matrix of a long bar frame.

    ``fill_closes(real_closes(long_df, bar=bar, symbols=symbols), fill_limit=fill_limit)``: the
    grid and columns of :func:`real_closes`, with a missing bar repeating the previous real
    close for at most ``fill_limit``, NaN before a symbol's first bar and beyond the limit.
    """
    return fill_closes(real_closes(long_df, bar=bar, symbols=symbols), fill_limit=fill_limit)


def real_mask(real: pd.DataFrame) -> np.ndarray:
    """Return the boolean T x N mask of a real close matrix: True where the symbol had a bar."""
    return ~np.isnan(real[_names(real)].to_numpy(dtype=np.float64))


def missing_fraction(real: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Return, per row, the share of ``live`` cells that are not ``real`` (1.0 where none live).

    ``real`` and ``live`` are boolean T x N masks: a real bar, and a price in the scanner's
    matrix (a real or a forward-filled close). The scanner flags ``data_gap`` where this
    exceeds its ``gap_fraction`` (DESIGN.md "Data contracts").
    """
    n_live = live.sum(axis=1)
    n_missing = (live & ~real).sum(axis=1)
    return np.where(n_live > 0, n_missing / np.maximum(n_live, 1), 1.0).astype(np.float64)


def _bar_mask(long_df: pd.DataFrame, wide: pd.DataFrame) -> np.ndarray:
    """Return the T x N mask of ``wide``'s grid cells in which ``long_df`` has a bar."""
    names = _names(wide)
    grid = wide[TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)
    n = len(grid)
    step = int(grid[1] - grid[0]) if n > 1 else 1
    col = column_codes(long_df["symbol"], names)
    ts = long_df[TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)
    row = (ts - grid[0]) // step if n else ts
    ok = (col >= 0) & (row >= 0) & (row < n)
    real = np.zeros((n, len(names)), bool)
    real[row[ok], col[ok]] = True
    return real


def fill_fraction(long_df: pd.DataFrame, wide: pd.DataFrame) -> np.ndarray:
    """Return, per grid row of ``wide``, the fraction of live symbols with no real bar there.

    A symbol is live on a row when its ``wide`` cell is not NaN. A row counts as real for a
    symbol when ``long_df`` has at least one bar of it inside that grid bar; the rest were
    forward-filled. Rows where no symbol is live count as fully missing (1.0). Equal to
    ``missing_fraction(real_mask(real), live)`` when ``real`` is the real close matrix.
    """
    live = ~np.isnan(wide[_names(wide)].to_numpy(dtype=np.float64))
    return missing_fraction(_bar_mask(long_df, wide), live)


def exchange_gap_mask(
    long_df: pd.DataFrame, wide: pd.DataFrame, threshold: float = GAP_THRESHOLD
) -> np.ndarray:
    """Return a boolean per grid row: more than ``threshold`` of live symbols were missing."""
    return fill_fraction(long_df, wide) > threshold
