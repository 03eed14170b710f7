"""Recorded order-book features for backtests (Bible §9; OB sub-systems OB-1..OB-5).

``ObTable`` reads the recorded-OB parquet (one row per asset per OB cycle: ``ts_ns`` int64 UTC ns
when the values became known, ``symbol``, the six per-asset features and the three market-wide
values repeated on every row of a cycle; sorted by ``ts_ns`` then ``symbol``) and aligns it to
bars; ``RecordedOb`` is the engine's ``ObEngine`` over a table, for the drivers that step the
engine bar by bar (the replay, the Nautilus backtest). The sweep reads ``ObTable.arrays`` for all
bars at once; both give the same values bar by bar because ``RecordedOb`` asks ``arrays``.

As-of rule (the OBF contract): a bar's scan carries the bar's OPEN time and is known at its close
``T = open + bar length``. Per asset the bar takes the latest row with ``ts_ns <= T`` provided it
is at most ``max_age_s`` old (``T − ts_ns <= max_age_s``, default 120 s); the market-wide values
come from the latest cycle with ``ts_ns <= T`` under the same age limit. Otherwise the bar gets
the neutral values ("the OB layer has no opinion"): imbalance_ma5 0, persistence 0, withdrawal
0, depth quality 1, fill probability 0.5; cascade 0, regime 0, market multiplier 1.

Decisions where the contract is silent:
- A row with a non-finite value among the five engine inputs (``ENGINE_FEATURES``) makes its
  asset neutral for the bars it is the latest row of: it is the newest knowledge, and it says
  "not valid" (the writer puts NaN there), so no older row is used instead. Likewise a cycle
  with a non-finite market value is neutral as a whole. The raw ``imbalance`` column is checked
  but not an engine input (the engine reads ``imbalance_ma5``).
- The market values must be equal on every row of a cycle (the contract repeats them); a cycle
  whose rows disagree is malformed input.
- Two rows of one cycle for the same symbol are malformed (``DuplicateTimestampError``).
- OB-4 (``daily_ob_stress``): the day's withdrawal stress is the share of the PREVIOUS UTC day's
  recorded cycles whose ``regime_signal`` is +1, known at the day's 00:00 UTC (no look-ahead);
  a cycle with a NaN regime counts as a cycle without stress. A day whose previous day has no
  recorded cycle gets 0.0: no recording is no evidence of stress, and 0.0 leaves the ACB beta
  exactly as without OB (``AdaptiveCircuitBreaker.day``), the same "no opinion" as the neutral
  rows. (Live, a missing OB feed is reported as staleness to the survival controller; a
  backtest over a recording has no such controller input, so a gap is simply neutral.)
- The bar length is the scans' modal step (``recorded_ob``, ``SweepData.bar_s``), so the
  replay, the sweep and the Nautilus driver align to the same known times.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dolphin.alpha import layout as lay
from dolphin.core.errors import (
    DataError,
    DuplicateTimestampError,
    MissingColumnError,
    TimestampError,
    UnsortedTimestampError,
)
from dolphin.core.io import read_parquet

#: The recorded per-asset columns, in the contract's order (``dolphin.features.obf``).
OBF_FEATURES = ("imbalance", "imbalance_ma5", "imbalance_persistence", "withdrawal_velocity",
                "depth_quality", "fill_probability")
#: The recorded market-wide columns, in the contract's order.
OBF_MACRO = ("cascade_count", "regime_signal", "market_multiplier")
#: The per-asset columns the engine reads, in ``alpha.layout`` order (``OB_IMBALANCE`` ...).
ENGINE_FEATURES = ("imbalance_ma5", "imbalance_persistence", "withdrawal_velocity",
                   "depth_quality", "fill_probability")
COLUMNS = ("ts_ns", "symbol", *OBF_FEATURES, *OBF_MACRO)

NEUTRAL_ASSET_ROW = np.zeros(lay.N_OB_ASSET)
NEUTRAL_ASSET_ROW[lay.OB_DEPTH_QUALITY] = 1.0
NEUTRAL_ASSET_ROW[lay.OB_FILL_PROB] = 0.5
NEUTRAL_ASSET_ROW.flags.writeable = False
NEUTRAL_MACRO = np.zeros(lay.N_OB_MACRO)
NEUTRAL_MACRO[lay.OB_MARKET_MULT] = 1.0
NEUTRAL_MACRO.flags.writeable = False

DEFAULT_MAX_AGE_S = 120.0
NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S


@dataclass(frozen=True)
class _Series:
    """One symbol's rows (or the cycles): sorted times, values, and which rows are valid."""

    ts: np.ndarray  # int64, strictly increasing
    values: np.ndarray  # (k, m) float64
    valid: np.ndarray  # (k,) bool: every value finite

    def as_of(self, known: np.ndarray, max_age_ns: int, neutral: np.ndarray) -> np.ndarray:
        """Return the values in force at each time of ``known`` (neutral when none is fresh)."""
        out = np.empty((known.shape[0], neutral.shape[0]))
        out[:] = neutral
        i = np.searchsorted(self.ts, known, side="right") - 1
        ok = i >= 0
        ok[ok] = (known[ok] - self.ts[i[ok]] <= max_age_ns) & self.valid[i[ok]]
        out[ok] = self.values[i[ok]]
        return out


def _series(ts: np.ndarray, values: np.ndarray) -> _Series:
    return _Series(ts, values, np.isfinite(values).all(axis=1))


def read_frame(path: str | Path) -> pd.DataFrame:
    """Read a recorded-OB parquet; a missing or unreadable file is a typed error naming it."""
    try:
        return read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"cannot read OB features ({type(exc).__name__}: {exc})",
                        source=str(path)) from None


def _check_columns(df: pd.DataFrame, source: str) -> None:
    """Every contract column present and of its type; no NaN ``ts_ns``."""
    for col in COLUMNS:
        if col not in df.columns:
            raise MissingColumnError("missing OB features column", source=source, field=col)
    ts = df["ts_ns"]
    if ts.isna().any():
        row = int(np.flatnonzero(ts.isna().to_numpy())[0])
        raise TimestampError("NaN ts_ns", source=source, row=row, field="ts_ns")
    if not pd.api.types.is_integer_dtype(ts.dtype):
        raise DataError("ts_ns must be int64 ns UTC", source=source, field="ts_ns",
                        value=str(ts.dtype))
    sym = df["symbol"]
    if not (pd.api.types.is_object_dtype(sym.dtype) or pd.api.types.is_string_dtype(sym.dtype)
            or isinstance(sym.dtype, pd.CategoricalDtype)):
        raise DataError("symbol must be a string column", source=source, field="symbol",
                        value=str(sym.dtype))
    names = sym.cat.categories if isinstance(sym.dtype, pd.CategoricalDtype) else sym
    if sym.isna().any() or (len(names) and pd.api.types.infer_dtype(names, skipna=False)
                            != "string"):
        row = int(np.flatnonzero(~sym.map(lambda s: isinstance(s, str)).to_numpy(bool))[0])
        raise DataError("symbol must be a string", source=source, row=row, field="symbol",
                        value=sym.iloc[row])
    for col in (*OBF_FEATURES, *OBF_MACRO):
        if df[col].dtype != np.float64:
            raise DataError("OB feature column must be float64", source=source, field=col,
                            value=str(df[col].dtype))


def _check_order(ts: np.ndarray, sym: np.ndarray, source: str) -> None:
    """Rows sorted by ``ts_ns`` then ``symbol``, no (ts_ns, symbol) twice."""
    if ts.shape[0] < 2:
        return
    dt = np.diff(ts)
    same = dt == 0
    back = (dt < 0) | (same & (sym[1:] < sym[:-1]))
    if back.any():
        row = int(np.flatnonzero(back)[0]) + 1
        raise UnsortedTimestampError("OB features not sorted by ts_ns then symbol",
                                     source=source, row=row, value=int(ts[row]))
    dup = same & (sym[1:] == sym[:-1])
    if dup.any():
        row = int(np.flatnonzero(dup)[0]) + 1
        raise DuplicateTimestampError("symbol twice in one OB cycle", source=source, row=row,
                                      field="symbol", value=str(sym[row]))


def _cycles(ts: np.ndarray, macro: np.ndarray, source: str) -> _Series:
    """The market-wide values per cycle (first row of each ``ts_ns``), equal on all its rows."""
    first = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]]) if ts.shape[0] else np.zeros(0, int)
    per_row = np.repeat(macro[first], np.diff(np.r_[first, ts.shape[0]]), axis=0)
    differ = ~((per_row == macro) | (np.isnan(per_row) & np.isnan(macro))).all(axis=1)
    if differ.any():
        row = int(np.flatnonzero(differ)[0])
        raise DataError("market-wide OB values differ within one cycle", source=source,
                        row=row, value=int(ts[row]))
    return _series(ts[first], macro[first])


class ObTable:
    """A validated recorded-OB table, aligned to bars as-of (module docstring)."""

    def __init__(
        self, frame: pd.DataFrame, *, source: str = "ob", max_age_s: float = DEFAULT_MAX_AGE_S
    ) -> None:
        if not (np.isfinite(max_age_s) and max_age_s >= 0):
            raise ValueError(f"max_age_s must be finite and >= 0, got {max_age_s}")
        _check_columns(frame, source)
        ts = frame["ts_ns"].to_numpy(dtype=np.int64)
        sym = frame["symbol"].astype(str).to_numpy(dtype=str)
        _check_order(ts, sym, source)
        self.source = source
        self.max_age_s = float(max_age_s)
        self._max_age_ns = round(max_age_s * NS_PER_S)
        values = frame[list(ENGINE_FEATURES)].to_numpy(dtype=np.float64)
        macro = frame[list(OBF_MACRO)].to_numpy(dtype=np.float64)
        self._macro = _cycles(ts, macro, source)
        order = np.argsort(sym, kind="stable")  # rows of a symbol stay in time order
        names, lo = np.unique(sym[order], return_index=True)
        hi = np.r_[lo[1:], order.shape[0]][: lo.shape[0]]  # no row: no symbol
        self._assets = {
            str(n): _series(ts[order[a:b]], values[order[a:b]])
            for n, a, b in zip(names, lo, hi, strict=True)
        }
        self._digest = _digest(ts, sym, values, macro, self._max_age_ns)

    @classmethod
    def read(cls, path: str | Path, *, max_age_s: float = DEFAULT_MAX_AGE_S) -> ObTable:
        """Read and validate a recorded-OB parquet (typed errors name the file)."""
        return cls(read_frame(path), source=str(path), max_age_s=max_age_s)

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols the table has rows for, sorted."""
        return tuple(sorted(self._assets))

    @property
    def n_cycles(self) -> int:
        """Number of recorded cycles (distinct ``ts_ns``)."""
        return int(self._macro.ts.shape[0])

    @property
    def digest(self) -> str:
        """SHA-256 of the table's content and age limit (what a saved sweep depends on)."""
        return self._digest

    def arrays(
        self, bar_ts_ns: np.ndarray, bar_s: float, assets: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the engine's OB inputs of bars opening at ``bar_ts_ns`` (int64 ns) and
        lasting ``bar_s`` seconds: ``ob_asset (n_bars, n_assets, N_OB_ASSET)`` and
        ``ob_macro (n_bars, N_OB_MACRO)``, C-contiguous float64, as-of the bars' closes."""
        if not (np.isfinite(bar_s) and bar_s > 0):
            raise ValueError(f"bar_s must be finite and > 0, got {bar_s}")
        known = np.asarray(bar_ts_ns, dtype=np.int64) + round(bar_s * NS_PER_S)
        ob_asset = np.empty((known.shape[0], len(assets), lay.N_OB_ASSET))
        ob_asset[:] = NEUTRAL_ASSET_ROW
        for j, name in enumerate(assets):
            series = self._assets.get(str(name))
            if series is not None:
                ob_asset[:, j] = series.as_of(known, self._max_age_ns, NEUTRAL_ASSET_ROW)
        ob_macro = self._macro.as_of(known, self._max_age_ns, NEUTRAL_MACRO)
        return np.ascontiguousarray(ob_asset), np.ascontiguousarray(ob_macro)

    def daily_ob_stress(self, date: str) -> float:
        """Return OB-4's withdrawal stress of UTC day ``date`` (YYYY-MM-DD) in [0, 1]: the
        share of the previous day's cycles with ``regime_signal == +1`` (0.0 without any)."""
        start = int(np.datetime64(date, "D").astype("datetime64[ns]").astype(np.int64))
        ts = self._macro.ts
        lo, hi = np.searchsorted(ts, [start - NS_PER_DAY, start], side="left")
        if hi <= lo:
            return 0.0
        regime = self._macro.values[lo:hi, lay.OB_REGIME]
        return float(np.count_nonzero(regime == 1.0)) / float(hi - lo)


def _digest(ts, sym, values, macro, max_age_ns: int) -> str:
    h = hashlib.sha256()
    for arr in (ts, values, macro):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update("\n".join(sym.tolist()).encode())
    h.update(str(max_age_ns).encode())
    return h.hexdigest()


class RecordedOb:
    """The engine's ``ObEngine`` over a recorded table (replay and Nautilus backtest).

    ``features(ts_ns, assets)`` takes the bar's OPEN time, as the engine passes it, and returns
    ``ObTable.arrays`` of that one bar: the same values the sweep reads. ``daily_ob_stress``
    is what the day protocol (``alpha.session.DayProtocol``) hands the ACB as OB-4.

    The engines ask bar after bar; one ``arrays`` call per bar costs a search per asset, so the
    values of the next ``block`` bars on the bar grid are aligned at once and kept. A bar's
    values depend on its own time only, so a kept block gives exactly what a call for that one
    bar gives; a bar off the grid (after a gap) or outside the block starts a new block.
    """

    def __init__(self, table: ObTable, bar_s: float, *, block: int = 1024) -> None:
        if not (np.isfinite(bar_s) and bar_s > 0):
            raise ValueError(f"bar_s must be finite and > 0, got {bar_s}")
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        self.table = table
        self.bar_s = float(bar_s)
        self._bar_ns = round(bar_s * NS_PER_S)
        self._block = int(block)
        self._kept: tuple[tuple[str, ...], int, np.ndarray, np.ndarray] | None = None

    def features(self, ts_ns: int, assets: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(per_asset (n_assets, N_OB_ASSET), macro (N_OB_MACRO,))`` of the bar."""
        key = tuple(assets)
        ts_ns = int(ts_ns)
        kept = self._kept
        if kept is not None and kept[0] == key:
            i, off = divmod(ts_ns - kept[1], self._bar_ns)
            if off == 0 and 0 <= i < kept[2].shape[0]:
                return kept[2][i].copy(), kept[3][i].copy()  # the caller may write to them
        times = ts_ns + self._bar_ns * np.arange(self._block, dtype=np.int64)
        per_asset, macro = self.table.arrays(times, self.bar_s, key)
        self._kept = (key, ts_ns, per_asset, macro)
        return per_asset[0].copy(), macro[0].copy()

    def daily_ob_stress(self, date: str) -> float:
        """Return the table's OB-4 stress of ``date`` (``ObTable.daily_ob_stress``)."""
        return self.table.daily_ob_stress(date)


def recorded_ob(path: str | Path | None, bar_ts_ns: np.ndarray) -> RecordedOb | None:
    """Return the ``RecordedOb`` of ``--ob FILE`` for scans with these bar times (None: no OB).

    The bar length is the scans' modal step (``backtest.replay.scan_bar_ns``).
    """
    if path is None:
        return None
    from dolphin.backtest.replay import scan_bar_ns

    return RecordedOb(ObTable.read(path), scan_bar_ns(np.asarray(bar_ts_ns)) / NS_PER_S)
