"""Walk-forward: roll train/test windows of whole UTC days, pick on train, measure out of sample.

For each window the grid runs on the train days (the sweep kernel), the best combination by DSR
(``select``: ``dsr``, ``sharpe`` or ``roi``) is chosen, and that one config runs on the following
test days. Windows roll by the test length. The stitched out-of-sample record chains the test
windows' daily returns.

Decisions where issue 5 is silent: every window (train and test) starts from a fresh engine state
and the config's initial capital, reading only its own rows (no state or price history leaks
across the boundary; each test window loses its first ``lookback`` bars to the warm-up, as a
fresh live start would); DSR within a train window counts that window's trials only.

Each window row carries its test days and their daily returns (``oos_dates``,
``oos_daily_returns``: the stitched equity is drawn from them) and the test run's
``oos_trades_sha256``, so a ``dolphin backtest`` of the window's pick on the test days can be
checked against it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from dolphin.backtest import stats
from dolphin.backtest.sweep import SweepData, evaluate, prepare
from dolphin.backtest.sweep_run import Grid, evaluate_on
from dolphin.core.chunks import ChunkRunner
from dolphin.core.errors import ConfigError

SELECT = ("dsr", "sharpe", "roi")


def day_windows(n_days: int, train: int, test: int) -> list[tuple[int, int, int]]:
    """Return ``(train_lo, test_lo, test_hi)`` day indices of every full window."""
    if train < 1 or test < 1:
        raise ConfigError(f"train and test days must be >= 1, got {train}, {test}")
    out, lo = [], 0
    while lo + train + test <= n_days:
        out.append((lo, lo + train, lo + train + test))
        lo += test
    if not out:
        raise ConfigError(f"{n_days} days cannot hold one {train}+{test}-day window")
    return out


def _slice(scans: pd.DataFrame, day_no: np.ndarray, days: np.ndarray, lo: int, hi: int):
    keep = (day_no >= days[lo]) & (day_no < days[hi] if hi < len(days) else True)
    return scans.loc[keep].reset_index(drop=True)


def _pick(rows: list[dict[str, Any]], select: str) -> int:
    if select == "dsr":
        sr = np.array([np.nan if r["sr_daily"] is None else r["sr_daily"] for r in rows])
        sk = np.array([np.nan if r["skew"] is None else r["skew"] for r in rows])
        ku = np.array([np.nan if r["kurtosis"] is None else r["kurtosis"] for r in rows])
        score, _ = stats.dsr_column(sr, int(rows[0]["days"]), sk, ku)
    else:
        score = np.array([np.nan if r[select] is None else r[select] for r in rows], dtype=float)
    score = np.where(np.isfinite(score), score, -np.inf)
    return int(np.argmax(score))


def walk_forward(
    scans: pd.DataFrame,
    grid: Grid,
    train_days: int,
    test_days: int,
    *,
    select: str = "dsr",
    hell: bool = False,
    exf=None,
    on_window: Callable[[int, int], None] | None = None,
    runner: ChunkRunner | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Return the per-window table and the stitched out-of-sample metrics.

    ``on_window(done, total)`` is called after each window (a progress bar's hook). ``runner``
    (e.g. a Dask cluster) evaluates each window's in-sample grid in chunks; same result.
    """
    if select not in SELECT:
        raise ConfigError(f"select must be one of {SELECT}, got {select!r}")
    ts = scans["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    day_no = ts // 86_400_000_000_000
    days = np.unique(day_no)
    rows, stitched = [], []
    windows = day_windows(len(days), train_days, test_days)
    for lo, mid, hi in windows:
        train = prepare(_slice(scans, day_no, days, lo, mid), exf)
        test = prepare(_slice(scans, day_no, days, mid, hi), exf)
        is_rows = evaluate_on(train, grid.configs, hell=hell, runner=runner)
        best = _pick(is_rows, select)
        oos = evaluate(test, [grid.configs[best]], hell=hell)[0]
        stitched.extend(oos["daily_returns"])
        rows.append(_window_row(train, test, grid, best, is_rows[best], oos))
        if on_window is not None:
            on_window(len(rows), len(windows))
    return pd.DataFrame(rows), stitched_metrics(np.asarray(stitched))


def _window_row(train: SweepData, test: SweepData, grid: Grid, best: int, ins, oos) -> dict:
    row = {
        "train_start": train.dates[0],
        "test_start": test.dates[0],
        "test_end": test.dates[-1],
        "config_id": grid.configs[best].id,
    }
    row.update(dict(zip(grid.names, grid.values[best], strict=True)))
    row.update({"is_sharpe": ins["sharpe"], "is_roi": ins["roi"]})
    row.update({f"oos_{k}": oos[k] for k in ("roi", "sharpe", "max_drawdown", "trades",
                                             "trades_sha256")})
    row.update(oos_dates=list(test.dates), oos_daily_returns=list(oos["daily_returns"]))
    return row


def stitched_metrics(r: np.ndarray) -> dict[str, Any]:
    """Return compounded ROI, annualised Sharpe (√365) and max drawdown of chained returns."""
    if r.size == 0:
        return {"days": 0, "roi": 0.0, "sharpe": None, "max_drawdown": 0.0}
    eq = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.r_[1.0, eq])[1:]
    sd = float(np.std(r, ddof=1)) if r.size > 1 else 0.0
    sharpe = float(np.mean(r)) / sd * math.sqrt(365.0) if sd > 0 else None
    return {
        "days": int(r.size),
        "roi": float(eq[-1] - 1.0),
        "sharpe": sharpe,
        "max_drawdown": float(np.max((peak - eq) / peak)),
    }
