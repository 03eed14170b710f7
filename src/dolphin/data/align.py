"""Align long bars onto a regular grid: the wide close matrix of DESIGN.md "Data contracts".

Inside a symbol's life (its first to its last observed bar) a missing bar carries the last close
forward, i.e. a zero return; before listing and after delisting the column is NaN, so an asset
never looks alive outside the bars it really traded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from dolphin.core.errors import DataError, MixedBarSizeError
from dolphin.data.bars import format_bar, modal_spacing, same_symbol_spacings, to_bar
from dolphin.data.validate import validate_bars

TIMESTAMP = "timestamp"
# DESIGN.md: the scanner flags `data_gap` where MOST assets are missing on a bar.
GAP_THRESHOLD = 0.5


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


def _fill_within_life(mat: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    n = mat.shape[0]
    rows = np.arange(n)[:, None]
    src = np.where(np.isnan(mat), -1, rows)
    np.maximum.accumulate(src, axis=0, out=src)
    filled = np.take_along_axis(mat, np.maximum(src, 0), axis=0)
    filled[(rows < first[None, :]) | (rows > last[None, :])] = np.nan
    return filled


def align_closes(
    long_df: pd.DataFrame,
    *,
    bar: str | pd.Timedelta | None = None,
    symbols: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Return the aligned wide close matrix of a long bar frame.

    Columns: ``timestamp`` (datetime64[ns, UTC], bar open times on a regular grid of step
    ``bar`` from the first to the last bar of the selected symbols), then one float64 column
    per symbol (sorted by name, or in the order of ``symbols``). A missing bar inside a
    symbol's life repeats the previous close; cells before its first and after its last bar
    are NaN. ``bar`` defaults to the data's bar. A coarser ``bar`` (a whole multiple of the
    data's) resamples: each coarse bar, labelled by its open time (anchored at the epoch),
    gets the close of the last data bar inside it. A finer or non-multiple ``bar`` raises
    ``MixedBarSizeError``; an unknown symbol raises ``DataError`` naming it.
    """
    df = validate_bars(long_df)
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
    col, ts, close = _last_per_bin(col, ts, close, step)
    t0 = int(ts.min())
    n = int((ts.max() - t0) // step) + 1
    row = (ts - t0) // step
    mat = np.full((n, len(names)), np.nan)
    mat[row, col] = close
    first = np.full(len(names), n, np.int64)
    last = np.full(len(names), -1, np.int64)
    np.minimum.at(first, col, row)
    np.maximum.at(last, col, row)
    filled = _fill_within_life(mat, first, last)
    grid = pd.DatetimeIndex((t0 + step * np.arange(n, dtype=np.int64)).view("datetime64[ns]"))
    out = pd.DataFrame(filled, columns=names)
    out.insert(0, TIMESTAMP, grid.tz_localize("UTC"))
    return out


def fill_fraction(long_df: pd.DataFrame, wide: pd.DataFrame) -> np.ndarray:
    """Return, per grid row of ``wide``, the fraction of live symbols with no real bar there.

    A symbol is live on a row when its wide cell is not NaN (inside its life). A row counts as
    real for a symbol when ``long_df`` has at least one bar of it inside that grid bar; the
    rest were forward-filled. Rows where no symbol is live count as fully missing (1.0). The
    scanner flags ``data_gap`` where this exceeds ``GAP_THRESHOLD`` (DESIGN.md).
    """
    names = [c for c in wide.columns if c != TIMESTAMP]
    grid = wide[TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)
    n = len(grid)
    step = int(grid[1] - grid[0]) if n > 1 else 1
    col = column_codes(long_df["symbol"], names)
    ts = long_df[TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)
    row = (ts - grid[0]) // step if n else ts
    ok = (col >= 0) & (row >= 0) & (row < n)
    real = np.zeros((n, len(names)), bool)
    real[row[ok], col[ok]] = True
    live = ~np.isnan(wide[names].to_numpy(dtype=np.float64))
    n_live = live.sum(axis=1)
    n_missing = (live & ~real).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(n_live > 0, n_missing / np.maximum(n_live, 1), 1.0)
    return frac.astype(np.float64)


def exchange_gap_mask(
    long_df: pd.DataFrame, wide: pd.DataFrame, threshold: float = GAP_THRESHOLD
) -> np.ndarray:
    """Return a boolean per grid row: more than ``threshold`` of live symbols were missing."""
    return fill_fraction(long_df, wide) > threshold
