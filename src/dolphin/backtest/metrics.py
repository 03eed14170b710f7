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
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import pandas as pd

SQRT365 = math.sqrt(365.0)


def trades_sha256(trades: pd.DataFrame) -> str:
    """Return the SHA-256 of the trades table in a canonical CSV form (17 significant digits)."""
    text = trades.to_csv(index=False, float_format="%.17g", date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    return hashlib.sha256(text.encode()).hexdigest()


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


def _risk_ratios(r: np.ndarray) -> tuple[float | None, float | None]:
    if r.size < 2:
        return None, None
    sd = float(np.std(r, ddof=1))
    sharpe = float(np.mean(r)) / sd * SQRT365 if sd > 0 else None
    downside = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)))
    sortino = float(np.mean(r)) / downside * SQRT365 if downside > 0 else None
    return sharpe, sortino


def _trade_stats(pnl: np.ndarray, held: np.ndarray) -> dict[str, Any]:
    wins = float(pnl[pnl > 0].sum())
    losses = float(-pnl[pnl < 0].sum())
    return {
        "profit_factor": wins / losses if losses > 0 else None,
        "win_rate": float((pnl > 0).mean()) if pnl.size else None,
        "trades": int(pnl.size),
        "avg_hold_bars": float(held.mean()) if held.size else None,
    }


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
    """Return the metrics dict from plain arrays (the one definition; the sweep calls it too).

    ``pnl``/``held``: per trade; ``capital_end``/``equity_end``: per day; ``max_dd`` and
    ``exposure`` of the per-bar mark-to-market equity curve.
    """
    final = float(capital_end[-1]) if capital_end.size else initial_capital
    days = max(capital_end.size, 1)
    growth = final / initial_capital
    prev = np.concatenate([[initial_capital], equity_end[:-1]])
    sharpe, sortino = _risk_ratios(equity_end / prev - 1.0)
    cagr = growth ** (365.0 / days) - 1.0 if growth > 0 else -1.0
    out: dict[str, Any] = {
        "roi": growth - 1.0,
        "sharpe": _none_if_bad(sharpe),
        "sortino": _none_if_bad(sortino),
        "calmar": _none_if_bad(cagr / max_dd) if max_dd > 0 else None,
        "max_drawdown": max_dd,
        "geometric_growth_daily": growth ** (1.0 / days) - 1.0 if growth > 0 else -1.0,
        "exposure": exposure,
        "final_capital": final,
        "initial_capital": initial_capital,
        "days": int(capital_end.size),
        "bars": int(bars),
        "config_id": config_id,
        "trades_sha256": sha256,
    }
    out.update(_trade_stats(pnl, held))
    return out


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
