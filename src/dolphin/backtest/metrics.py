"""Backtest metrics: the one definition of DESIGN.md "Metrics", computed from the output tables.

Every number is a function of ``trades``, ``equity`` and ``daily`` exactly as they are written to
parquet, so anyone can recompute ``metrics.json`` from the files.

- ROI = final / initial capital − 1; profit factor = gross win / gross loss (``None`` when there
  is no losing trade); win rate = trades with pnl > 0 / trades.
- Max drawdown on the mark-to-market equity curve (per bar), as a positive fraction.
- Sharpe and Sortino from daily returns of end-of-day equity (first day against the initial
  capital), annualised with √365; Sharpe uses the sample std (ddof 1), Sortino the root mean
  square of the negative daily returns. ``None`` when undefined (fewer than 2 days, zero risk).
- Calmar = CAGR / max drawdown with CAGR = (final / initial)^(365 / days) − 1.
- Geometric growth rate = (final / initial)^(1 / days) − 1 per day.
- Exposure = share of bars with an open position; average hold in bars.
- ``trades_sha256``: SHA-256 of the trades table in a canonical binary form (``table_sha256``).
- Annualised figures (Sharpe, Sortino, Calmar) from fewer than ``MIN_ANNUALISE_DAYS`` days are
  not meaningful: every place that shows them shows the sample and ``annualisation_caveat``
  (their bootstrap intervals: ``backtest.stats.sample_figures``).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dolphin.core.enums import BUCKETS, EXIT_REASONS, POSTURES, Direction

SQRT365 = math.sqrt(365.0)
#: Below this many days the √365 / 365-day annualisation of a run says nothing reliable.
MIN_ANNUALISE_DAYS = 30
ANNUALISED = ("sharpe", "sortino", "calmar")


def annualisation_caveat(days: int, trades: int) -> str | None:
    """Return the warning an annualised figure from ``days`` days carries (None from 30 on)."""
    if days >= MIN_ANNUALISE_DAYS:
        return None
    return (f"{days} days, {trades} trades: annualised figures ({', '.join(ANNUALISED)}) are "
            f"not meaningful under {MIN_ANNUALISE_DAYS} days")


def ratio_rows(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return per row the annualised Sharpe and Sortino of a runs × days return matrix, NaN
    where undefined (the arithmetic ``metrics_columns`` applies to one run at a time)."""
    mean, sd, downside = _risk_ratios(r)
    nan = np.full(r.shape[0], np.nan)
    if r.shape[1] < 2:
        return nan, nan.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(sd > 0, mean / sd * SQRT365, np.nan)
        sortino = np.where(downside > 0, mean / downside * SQRT365, np.nan)
    return sharpe, sortino


def cagr(growth: np.ndarray | float, days: int) -> np.ndarray | float:
    """Return (final / initial)^(365 / days) − 1, −1 where the growth is not positive."""
    g = np.asarray(growth, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out = np.where(g > 0, np.abs(g) ** (365.0 / max(days, 1)) - 1.0, -1.0)
    return float(out) if out.ndim == 0 else out


#: The trades table, in column order: (column, ``TRADE_DTYPE`` field, kind). A kind is "int",
#: "time" (int64 ns UTC), "float", or the labels its codes index ("asset": the scan's assets;
#: "direction": SHORT for a negative direction, else LONG).
TRADE_TABLE: tuple[tuple[str, str, str | tuple[str, ...]], ...] = (
    ("trade_id", "trade_id", "int"),
    ("entry_time", "entry_ts", "time"),
    ("exit_time", "exit_ts", "time"),
    ("entry_bar", "entry_bar", "int"),
    ("exit_bar", "exit_bar", "int"),
    ("asset", "asset", "asset"),
    ("direction", "direction", "direction"),
    *(
        (f, f, "float")
        for f in (
            "entry_price",
            "exit_price",
            "notional",
            "leverage",
            "fraction",
            "confidence",
            "entry_fee",
            "exit_fee",
            "ob_edge_pct",
            "funding",
            "pnl_pct",
            "pnl",
            "capital_after",
        )
    ),
    ("exit_reason", "exit_reason", EXIT_REASONS),
    ("bucket", "bucket", BUCKETS),
    ("posture", "posture", POSTURES),
)
#: Indexed by ``direction >= 0`` (not by the ``Direction`` value, which is -1 / +1).
DIRECTIONS = (Direction.SHORT.name, Direction.LONG.name)


@dataclass(frozen=True)
class CodedText:
    """A text column given as integer codes into its labels (how trade records hold text)."""

    codes: np.ndarray
    labels: Sequence[str]

    def decode(self) -> np.ndarray:
        """Return the column as an object array of str."""
        return np.asarray(list(self.labels), dtype=object)[self.codes]


def record_table(rec: np.ndarray, assets: Sequence[str]) -> list[tuple[str, Any]]:
    """Return the trades table of ``TRADE_DTYPE`` records as ``(column, values)`` in order.

    Times are ``datetime64[ns]`` (UTC); text columns are ``CodedText``. The replay's trades frame
    is this table decoded, and ``records_sha256`` hashes it as is: both see the same table.
    """
    out: list[tuple[str, Any]] = []
    for col, field, kind in TRADE_TABLE:
        v = rec[field]
        if kind == "time":
            out.append((col, v.astype(np.int64).view("datetime64[ns]")))
        elif kind == "int":
            out.append((col, v.astype(np.int64)))
        elif kind == "float":
            out.append((col, v.astype(np.float64)))
        elif kind == "direction":
            out.append((col, CodedText((v >= 0).astype(np.int64), DIRECTIONS)))
        else:
            out.append((col, CodedText(v.astype(np.int64), assets if kind == "asset" else kind)))
    return out


def trade_columns(rec: np.ndarray, assets: Sequence[str]) -> dict[str, np.ndarray]:
    """Return ``record_table`` as plain columns (text decoded), for the trades frame."""
    return {
        col: v.decode() if isinstance(v, CodedText) else v for col, v in record_table(rec, assets)
    }


def _text_bytes(encoded: list[bytes]) -> bytes:
    """Return fixed-width text: the width (longest value, in bytes) then NUL-padded values."""
    w = max(map(len, encoded), default=0)
    head = np.int64(w).astype("<i8").tobytes()
    return head + np.array(encoded, dtype=f"S{w}").tobytes() if w else head


@functools.lru_cache(maxsize=64)
def _label_table(labels: tuple[str, ...], width: int) -> np.ndarray:
    """Return ``labels`` as UTF-8 NUL-padded to ``width`` (longer ones cut: never indexed)."""
    return np.array([x.encode() for x in labels], dtype=f"S{max(width, 1)}")


@functools.lru_cache(maxsize=64)
def _label_lengths(labels: tuple[str, ...]) -> np.ndarray:
    return np.array([len(x.encode()) for x in labels], dtype=np.int64)


def _coded_bytes(col: CodedText) -> bytes:
    """Return ``_text_bytes`` of the decoded column without decoding it (same bytes)."""
    labels = tuple(col.labels)
    w = int(_label_lengths(labels)[col.codes].max()) if col.codes.size else 0
    head = np.int64(w).astype("<i8").tobytes()
    return head + _label_table(labels, w)[col.codes].tobytes() if w else head


def _column_bytes(values: Any) -> bytes | np.ndarray:
    """Return one column's canonical bytes (see ``table_sha256``), as bytes or a contiguous
    array whose memory is those bytes (hashed without another copy)."""
    if isinstance(values, CodedText):
        return _coded_bytes(values)
    values = np.asarray(values)
    kind = values.dtype.kind
    if kind == "M":
        return np.ascontiguousarray(values.astype("datetime64[ns]", copy=False).view("<i8"))
    if kind in "iub":
        return np.ascontiguousarray(values.astype("<i8", copy=False))
    if kind == "f":
        return np.ascontiguousarray(values.astype("<f8", copy=False))
    return _text_bytes([str(x).encode() for x in values.tolist()])


def table_sha256(columns: Iterable[tuple[str, Any]]) -> str:
    """Return the SHA-256 of a table in canonical binary form: the one ``trades_sha256``.

    The row count, then per column in table order: its name in UTF-8 and a NUL, then its values:
    times as int64 nanoseconds since the epoch (UTC), integers and booleans as int64, floats as
    float64; text as the column's width w (its longest value's UTF-8 length) then each value's
    UTF-8 bytes NUL-padded to w. Integers are little-endian int64. Floats are hashed bit for bit:
    two tables hash equal only when every value is identical.
    """
    h = hashlib.sha256()
    first = True
    for name, values in columns:
        if first:
            n = len(values.codes) if isinstance(values, CodedText) else len(values)
            h.update(np.int64(n).astype("<i8").tobytes())
            first = False
        h.update(f"{name}\0".encode())
        h.update(_column_bytes(values))
    return h.hexdigest()


def trades_sha256(trades: pd.DataFrame) -> str:
    """Return ``table_sha256`` of a trades table (every column, in the table's order)."""
    cols = []
    for name in trades.columns:
        s = trades[name]
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        if s.dtype.kind in "iubfM":
            cols.append((str(name), s.to_numpy()))
        else:
            cols.append((str(name), s.to_numpy(dtype=object)))
    return table_sha256(cols)


def records_sha256(rec: np.ndarray, assets: Sequence[str]) -> str:
    """Return ``trades_sha256`` of the trades table of ``rec`` without building a DataFrame."""
    return table_sha256(record_table(rec, assets))


def max_drawdown(equity: np.ndarray) -> float:
    """Return the largest peak-to-trough fall of ``equity`` as a positive fraction of the peak."""
    if equity.size == 0:
        return 0.0
    peak = np.maximum.accumulate(equity)
    return float(np.max((peak - equity) / peak))


def _none_if_bad(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def daily_returns(daily: pd.DataFrame, initial_capital: float) -> np.ndarray:
    """Return end-of-day equity returns, the first day against the initial capital."""
    eq = daily["equity_end"].to_numpy(dtype=float)
    prev = np.concatenate([[initial_capital], eq[:-1]])
    return eq / prev - 1.0


def _risk_ratios(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return per row (mean, sample std, downside RMS) of a columns × days return matrix."""
    if r.shape[1] == 0:
        return np.zeros(r.shape[0]), np.zeros(r.shape[0]), np.zeros(r.shape[0])
    mean = np.mean(r, axis=1)
    sd = np.std(r, axis=1, ddof=1) if r.shape[1] >= 2 else np.zeros(r.shape[0])
    downside = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2, axis=1))
    return mean, sd, downside


def segment_sums(x: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Return the sums of ``x[lo[i]:lo[i + 1]]`` (0.0 for an empty segment)."""
    out = np.zeros(lo.shape[0] - 1)
    full = lo[1:] > lo[:-1]
    if full.any():
        out[full] = np.add.reduceat(x[: lo[-1]], lo[:-1][full])
    return out


def _trade_stats(pnl: np.ndarray, held: np.ndarray, lo: np.ndarray) -> list[dict[str, Any]]:
    n = np.diff(lo)
    wins = segment_sums(np.where(pnl > 0, pnl, 0.0), lo)
    losses = -segment_sums(np.where(pnl < 0, pnl, 0.0), lo)
    n_win = segment_sums((pnl > 0).astype(np.float64), lo)
    hold = segment_sums(held, lo)
    out = []
    for i in range(n.shape[0]):
        k = int(n[i])
        out.append(
            {
                "profit_factor": float(wins[i] / losses[i]) if losses[i] > 0 else None,
                "win_rate": float(n_win[i] / k) if k else None,
                "trades": k,
                "avg_hold_bars": float(hold[i] / k) if k else None,
            }
        )
    return out


def metrics_columns(
    *,
    pnl: np.ndarray,
    held: np.ndarray,
    trade_lo: np.ndarray,
    max_dd: np.ndarray,
    exposure: np.ndarray,
    bars: int,
    capital_end: np.ndarray,
    equity_end: np.ndarray,
    initial_capital: np.ndarray,
    config_ids: list[str],
    sha256s: list[str],
) -> list[dict[str, Any]]:
    """Return the metrics dict of many runs at once (the one definition; the replay is one run).

    ``pnl``/``held``: every run's trades back to back, run ``i``'s at
    ``trade_lo[i]:trade_lo[i + 1]``; ``capital_end``/``equity_end``: runs × days;
    ``max_dd``/``exposure``/``initial_capital``: per run, of the per-bar mark-to-market curve.
    """
    n_run, days = capital_end.shape
    init = np.asarray(initial_capital, dtype=np.float64)
    prev = np.concatenate([init[:, None], equity_end[:, :-1]], axis=1)
    mean, sd, downside = _risk_ratios(equity_end / prev - 1.0)
    trades = _trade_stats(pnl, held, trade_lo)
    out = []
    for i in range(n_run):
        initial = float(init[i])
        final = float(capital_end[i, -1]) if days else initial
        growth = final / initial
        mdd = float(max_dd[i])
        sharpe = sortino = None
        if days >= 2:
            sharpe = float(mean[i]) / float(sd[i]) * SQRT365 if sd[i] > 0 else None
            sortino = float(mean[i]) / float(downside[i]) * SQRT365 if downside[i] > 0 else None
        n_days = max(days, 1)
        cagr = growth ** (365.0 / n_days) - 1.0 if growth > 0 else -1.0
        row: dict[str, Any] = {
            "roi": growth - 1.0,
            "sharpe": _none_if_bad(sharpe),
            "sortino": _none_if_bad(sortino),
            "calmar": _none_if_bad(cagr / mdd) if mdd > 0 else None,
            "max_drawdown": mdd,
            "geometric_growth_daily": growth ** (1.0 / n_days) - 1.0 if growth > 0 else -1.0,
            "exposure": float(exposure[i]),
            "final_capital": final,
            "initial_capital": initial,
            "days": int(days),
            "bars": int(bars),
            "config_id": config_ids[i],
            "trades_sha256": sha256s[i],
        }
        row.update(trades[i])
        out.append(row)
    return out


def metrics_from_arrays(
    *,
    pnl: np.ndarray,
    held: np.ndarray,
    max_dd: float,
    exposure: float,
    bars: int,
    capital_end: np.ndarray,
    equity_end: np.ndarray,
    initial_capital: float,
    config_id: str,
    sha256: str,
) -> dict[str, Any]:
    """Return the metrics dict of one run: ``metrics_columns`` with a single run.

    ``pnl``/``held``: per trade; ``capital_end``/``equity_end``: per day; ``max_dd`` and
    ``exposure`` of the per-bar mark-to-market equity curve.
    """
    return metrics_columns(
        pnl=np.asarray(pnl, dtype=np.float64),
        held=np.asarray(held, dtype=np.float64),
        trade_lo=np.array([0, len(pnl)], dtype=np.int64),
        max_dd=np.array([max_dd]),
        exposure=np.array([exposure]),
        bars=bars,
        capital_end=np.asarray(capital_end, dtype=np.float64).reshape(1, -1),
        equity_end=np.asarray(equity_end, dtype=np.float64).reshape(1, -1),
        initial_capital=np.array([initial_capital], dtype=np.float64),
        config_ids=[config_id],
        sha256s=[sha256],
    )[0]


def compute_metrics(
    trades: pd.DataFrame,
    equity: pd.DataFrame,
    daily: pd.DataFrame,
    *,
    initial_capital: float,
    config_id: str,
) -> dict[str, Any]:
    """Return the metrics dict written to ``metrics.json``."""
    return metrics_from_arrays(
        pnl=trades["pnl"].to_numpy(dtype=float),
        held=(trades["exit_bar"] - trades["entry_bar"]).to_numpy(dtype=float),
        max_dd=max_drawdown(equity["equity"].to_numpy(dtype=float)),
        exposure=float(equity["in_position"].mean()) if len(equity) else 0.0,
        bars=len(equity),
        capital_end=daily["capital_end"].to_numpy(dtype=float) if len(daily) else np.zeros(0),
        equity_end=daily["equity_end"].to_numpy(dtype=float) if len(daily) else np.zeros(0),
        initial_capital=initial_capital,
        config_id=config_id,
        sha256=trades_sha256(trades),
    )
