"""Replay backtest: scans -> NDAlphaEngine day by day -> trades, equity, daily, metrics.

The day loop is the Bible's §13.1 ``process_day``: ACB scales 1 and 3 once per UTC day, then every
bar through the step kernel (``NDAlphaEngine.run_bars``). Decisions:
- Leading rows with NaN vel_div are the scanner's warm-up (the 750-bar window is not full yet):
  prices still feed the histories, no entry is possible. A NaN vel_div after the first finite one
  is malformed input and raises ``BadInputError`` naming the row, unless the scan explains it
  (a flagged data gap, the row after one, or a window with fewer than two varying assets); the
  kernel makes no entry on such a row.
- A position still open after the last bar is closed at its last price (``END_OF_DATA``) so the
  trades, the equity curve and the final capital reconcile.
- ``vol_regime_ok`` is read from an optional column of that name, else True (§13.1).
- ``survival=True`` attaches the survival controller and the pre-trade gate
  (``dolphin.risk.attach``): the day's bars then run one at a time with a posture per bar, and the
  equity table gains ``rm``, ``posture`` and ``entry_block`` columns.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dolphin.alpha.engine import NDAlphaEngine
from dolphin.alpha.interfaces import McGate, ObEngine, PostureProvider
from dolphin.core.config import DolphinConfig
from dolphin.core.errors import BadInputError, MissingColumnError
from dolphin.features.exf import FACTORS, ExfTable
from dolphin.risk.acb import AdaptiveCircuitBreaker

REQUIRED = ("timestamp", "vel_div", "v750_lambda_max_velocity", "data_gap")
NON_ASSET = frozenset(
    {
        "timestamp",
        "scan_number",
        "n_assets",
        "vel_div",
        "instability_50",
        "instability_150",
        "data_gap",
        "vol_regime_ok",
    }
)


#: Per-window scan fields (v50_lambda_max, v750_n_assets, instability_150, ...).
_SCAN_FIELD = re.compile(r"^(v\d+_|instability_)")


@dataclass
class ReplayResult:
    """Everything a replay produces; DataFrames are exactly what gets written."""

    trades: pd.DataFrame
    equity: pd.DataFrame
    daily: pd.DataFrame
    metrics: dict[str, Any]
    records: np.ndarray


def asset_columns(scans: pd.DataFrame) -> list[str]:
    """Return the close-price columns of a scan frame (every column that is not a scan field)."""
    return [c for c in scans.columns if c not in NON_ASSET and not _SCAN_FIELD.match(str(c))]


def _explained_nan(scans: pd.DataFrame) -> np.ndarray:
    """Rows whose NaN vel_div the scan itself explains (the kernel makes no entry on NaN).

    A flagged ``data_gap`` row, the row right after one (a velocity needs the previous row's
    value), and a row where some window has fewer than two varying assets (no correlation
    matrix: the scanner writes NaN there, e.g. at the ragged end of a data set).
    """
    gap = scans["data_gap"].to_numpy(dtype=np.bool_)
    ok = gap | np.r_[False, gap[:-1]]
    counts = [c for c in scans.columns if re.fullmatch(r"v\d+_n_assets", str(c))]
    if counts:
        ok |= (scans[counts].to_numpy(dtype=float) < 2).any(axis=1)
    return ok


def validate_scans(scans: pd.DataFrame, source: str = "scans") -> list[str]:
    """Check a scan frame; return its asset columns or raise a typed error."""
    for col in REQUIRED:
        if col not in scans.columns:
            raise MissingColumnError("required scan column is missing", source=source, field=col)
    ts = scans["timestamp"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise BadInputError("timestamp must be tz-aware UTC", source=source, field="timestamp")
    if not ts.is_monotonic_increasing or ts.duplicated().any():
        raise BadInputError(
            "timestamps must be strictly increasing", source=source, field="timestamp"
        )
    vd = scans["vel_div"].to_numpy(dtype=float)
    finite = np.isfinite(vd) | _explained_nan(scans)
    if finite.any():
        first = int(np.argmax(np.isfinite(vd)))
        bad = np.flatnonzero(~finite[first:])
        if bad.size:
            row = first + int(bad[0])
            raise BadInputError(
                "vel_div is NaN after the warm-up",
                source=source,
                row=row,
                field="vel_div",
                value=float(vd[row]),
            )
    assets = asset_columns(scans)
    if not assets:
        raise MissingColumnError("no asset price columns", source=source)
    return assets


def _trades_frame(rec: np.ndarray, assets: list[str]) -> pd.DataFrame:
    """Return the trades table of ``rec`` (the columns ``trades_sha256`` hashes)."""
    from dolphin.backtest.metrics import trade_columns

    out = pd.DataFrame(trade_columns(rec, assets))
    for col in ("entry_time", "exit_time"):
        out[col] = out[col].dt.tz_localize("UTC")
    return out


def _day_row(summary, acb_day, equity_end: float) -> dict[str, Any]:
    row = {
        "date": summary.date,
        "pnl": summary.pnl,
        "capital_end": summary.capital,
        "equity_end": equity_end,
        "trades": summary.trades,
        "boost": summary.boost,
        "beta": summary.beta,
        "signals": acb_day.signals,
        "mc_status": summary.mc_status,
        "posture": summary.posture,
        "absent_factors": ",".join(acb_day.absent),
    }
    row.update({f"exf_{k}": acb_day.factors[k] for k in FACTORS})
    return row


def _survival(config: DolphinConfig, exf: ExfTable | None, dates: list[str], n: int):
    from dolphin.risk.attach import ReplaySurvival

    with_dvol = exf is not None and bool(exf.table(dates)["dvol_btc"].notna().any())
    return ReplaySurvival(config, n, with_dvol=with_dvol)


def run_replay(
    scans: pd.DataFrame,
    config: DolphinConfig,
    *,
    exf: ExfTable | None = None,
    hell: bool = False,
    posture_provider: PostureProvider | None = None,
    mc_gate: McGate | None = None,
    ob_engine: ObEngine | None = None,
    source: str = "scans",
    survival: bool = False,
) -> ReplayResult:
    """Replay ``scans`` through the engine and return trades, equity, daily table and metrics."""
    from dolphin.backtest.metrics import compute_metrics

    assets = validate_scans(scans, source)
    engine = NDAlphaEngine(
        config,
        assets,
        hell=hell,
        posture_provider=posture_provider,
        mc_gate=mc_gate,
        ob_engine=ob_engine,
    )
    acb = AdaptiveCircuitBreaker(config.acb, exf)
    ts = scans["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    vd = scans["vel_div"].to_numpy(dtype=np.float64)
    prices = np.ascontiguousarray(scans[assets].to_numpy(dtype=np.float64))
    gap = scans["data_gap"].to_numpy(dtype=np.bool_)
    vol_ok = (
        scans["vol_regime_ok"].to_numpy(dtype=np.bool_)
        if "vol_regime_ok" in scans
        else np.ones(len(scans), dtype=np.bool_)
    )
    v750 = scans["v750_lambda_max_velocity"].to_numpy(dtype=np.float64)
    day_no = ts // 86_400_000_000_000  # UTC day number; strftime on every row is far slower
    bounds = np.flatnonzero(np.r_[True, day_no[1:] != day_no[:-1], True])
    dates = {int(lo): str(scans["timestamp"].iloc[lo].date()) for lo in bounds[:-1]}
    equity = np.empty(len(scans))
    in_pos = np.zeros(len(scans), dtype=np.bool_)
    guard = _survival(config, exf, list(dates.values()), len(scans)) if survival else None
    days = []
    for lo, hi in itertools.pairwise(bounds):
        acb_day = acb.day(dates[int(lo)])
        if guard is None:
            engine.begin_day(dates[int(lo)], acb=acb_day)
            equity[lo:hi], in_pos[lo:hi] = engine.run_bars(
                int(lo), ts[lo:hi], vd[lo:hi], prices[lo:hi], gap[lo:hi], vol_ok[lo:hi]
            )
        else:
            engine.begin_day(dates[int(lo)], acb=acb_day, posture=guard.controller.posture)
            equity[lo:hi], in_pos[lo:hi] = guard.run_day(
                engine,
                int(lo),
                int(hi),
                (ts, vd, prices, gap, vol_ok),
                acb_day.factors.get("dvol_btc", np.nan),
            )
        if hi == len(scans) and engine.in_position:
            engine.close_open_position(hi - 1, int(ts[hi - 1]))
            equity[hi - 1] = engine.capital
        day_v750 = v750[lo:hi][np.isfinite(v750[lo:hi])]
        if day_v750.size:
            acb.observe_w750(float(np.median(day_v750)))
        days.append(_day_row(engine.end_day(), acb_day, float(equity[hi - 1])))
    rec = engine.trades
    trades = _trades_frame(rec, assets)
    equity_df = pd.DataFrame(
        {
            "timestamp": scans["timestamp"].reset_index(drop=True),
            "equity": equity,
            "in_position": in_pos,
        }
    )
    if guard is not None:
        for col, values in guard.trace().items():
            equity_df[col] = values
    daily = pd.DataFrame(days)
    metrics = compute_metrics(
        trades, equity_df, daily, initial_capital=config.alpha.initial_capital, config_id=config.id
    )
    return ReplayResult(trades, equity_df, daily, metrics, rec)
