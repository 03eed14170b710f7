"""The tables a backtest report shows besides the metrics: benchmarks, period returns,
breakdowns, leverage over time and a rolling Sharpe. Pure functions of the replay's output
tables and the scans (the reporting edge: DataFrames in, DataFrames out).

Decisions:
- Benchmarks start with the run's initial capital on its first bar and are marked at each
  asset's last real close (DESIGN.md "No price, no trade": a NaN close keeps the last one).
  BTC buy-and-hold holds BTCUSDT; it is None when the universe has no BTCUSDT column (the
  report says so, never substituting another asset). The equal-weight universe puts
  initial / N into each of the N assets with a real close somewhere in the scans, buys each at
  its first real close (cash until then) and never rebalances.
- Period returns are of end-of-day equity: a period's return is its last day's equity over the
  previous period's (the initial capital for the first), so the monthly and weekly returns
  compound to the ROI. Weeks are ISO weeks (Monday to Sunday, UTC).
- The rolling Sharpe is mean / sample std × √(periods a year) over a trailing window: 30 daily
  returns when the run has at least ``ROLLING_DAILY_MIN_DAYS`` days, else 24 hourly returns of
  the per-bar equity (the last equity of each UTC hour) — a short run has too few days.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dolphin.scanner.schema import asset_columns

BTC = "BTCUSDT"
ROLLING_DAILY_MIN_DAYS = 90


def _marked(scans: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """Return the closes of ``cols`` with each NaN replaced by the last real close."""
    return scans[cols].ffill().to_numpy(dtype=np.float64)


def benchmarks(scans: pd.DataFrame, initial_capital: float) -> pd.DataFrame:
    """Return ``timestamp``, ``btc_hold`` (absent without BTCUSDT) and ``equal_weight`` equity."""
    assets = [a for a in asset_columns(scans) if scans[a].notna().any()]
    out = pd.DataFrame({"timestamp": pd.to_datetime(scans["timestamp"], utc=True)})
    if not assets:
        return out
    marked = _marked(scans, assets)
    first = marked[np.argmax(np.isfinite(marked), axis=0), np.arange(len(assets))]
    rel = np.where(np.isfinite(marked), marked / first, 1.0)  # cash until the first real close
    out["equal_weight"] = initial_capital * rel.mean(axis=1)
    if BTC in assets:
        out["btc_hold"] = initial_capital * rel[:, assets.index(BTC)]
    return out


def period_returns(daily: pd.DataFrame, initial_capital: float, freq: str) -> pd.DataFrame:
    """Return ``period``, ``start``, ``end``, ``days`` and ``return`` per month ("M") or ISO
    week ("W") of the end-of-day equity."""
    if freq not in ("M", "W"):
        raise ValueError(f"freq must be 'M' or 'W', got {freq!r}")
    if daily.empty:
        return pd.DataFrame({"period": [], "start": [], "end": [], "days": [], "return": []})
    dates = pd.to_datetime(daily["date"])
    if freq == "M":
        key = dates.dt.strftime("%Y-%m")
    else:
        iso = dates.dt.isocalendar()
        key = iso["year"].astype(str) + "-W" + iso["week"].astype(str).str.zfill(2)
    g = pd.DataFrame({"key": key.to_numpy(), "date": daily["date"].astype(str).to_numpy(),
                      "eq": daily["equity_end"].to_numpy(dtype=float)}).groupby("key", sort=False)
    end_eq = g["eq"].last().to_numpy()
    prev = np.concatenate([[initial_capital], end_eq[:-1]])
    return pd.DataFrame({
        "period": list(g.groups), "start": g["date"].first().to_numpy(),
        "end": g["date"].last().to_numpy(), "days": g.size().to_numpy(),
        "return": end_eq / prev - 1.0,
    })  # fmt: skip


def month_grid(monthly: pd.DataFrame) -> pd.DataFrame:
    """Return the monthly returns as a year × month (1..12) grid, NaN where no data."""
    ym = monthly["period"].str.split("-", expand=True) if len(monthly) else None
    years = sorted(set(ym[0])) if ym is not None else []
    grid = pd.DataFrame(np.nan, index=years, columns=range(1, 13))
    for (y, m), r in zip(ym.itertuples(index=False) if ym is not None else [],
                         monthly["return"], strict=True):  # fmt: skip
        grid.loc[y, int(m)] = r
    return grid


def breakdown(trades: pd.DataFrame, key: str) -> pd.DataFrame:
    """Return per value of ``key``: trades, PnL (USDT), win rate, mean PnL %, mean hold (bars),
    fees and funding (USDT), sorted by PnL."""
    cols = ["trades", "pnl", "win_rate", "mean_pnl_pct", "mean_hold_bars", "fees", "funding"]
    if trades.empty:
        return pd.DataFrame({key: [], **{c: [] for c in cols}})
    t = trades.assign(hold=trades["exit_bar"] - trades["entry_bar"],
                      fees=trades["entry_fee"] + trades["exit_fee"])  # fmt: skip
    g = t.groupby(key, observed=True)
    out = pd.DataFrame({
        "trades": g.size(), "pnl": g["pnl"].sum(), "win_rate": g["pnl"].apply(
            lambda s: float((s > 0).mean())),
        "mean_pnl_pct": g["pnl_pct"].mean(), "mean_hold_bars": g["hold"].mean(),
        "fees": g["fees"].sum(), "funding": g["funding"].sum(),
    })  # fmt: skip
    return out.sort_values("pnl", ascending=False).reset_index()


def leverage_steps(trades: pd.DataFrame, start, end) -> pd.DataFrame:
    """Return ``timestamp``, ``leverage`` as a step series: each trade's leverage from its entry
    to its exit, 0 while flat (between ``start`` and ``end``)."""
    t = trades.sort_values("entry_time")
    times = [start]
    lev = [0.0]
    for a, b, x in zip(t["entry_time"], t["exit_time"], t["leverage"], strict=True):
        times += [a, b]
        lev += [float(x), 0.0]
    times.append(end)
    lev.append(0.0)
    return pd.DataFrame({"timestamp": pd.to_datetime(times, utc=True), "leverage": lev})


def exposure_share(equity: pd.DataFrame, bar_s: float) -> pd.Series:
    """Return the share of bars in a position over the trailing 24 hours, per bar."""
    window = max(1, round(86_400 / bar_s))
    return equity["in_position"].astype(float).rolling(window, min_periods=1).mean()


def rolling_sharpe(equity: pd.DataFrame, daily: pd.DataFrame) -> tuple[pd.Series, str]:
    """Return the rolling annualised Sharpe (indexed by time) and a caption saying how."""
    if len(daily) >= ROLLING_DAILY_MIN_DAYS:
        eq = pd.Series(daily["equity_end"].to_numpy(float), index=pd.to_datetime(daily["date"]))
        r, window, per_year, what = eq.pct_change(), 30, 365.0, "30 daily returns"
    else:
        eq = pd.Series(equity["equity"].to_numpy(float),
                       index=pd.DatetimeIndex(equity["timestamp"])).resample("1h").last()
        r, window, per_year, what = eq.ffill().pct_change(), 24, 365.0 * 24, "24 hourly returns"
    roll = r.rolling(window, min_periods=window)
    sd = roll.std(ddof=1)
    sharpe = (roll.mean() / sd.where(sd > 0)) * math.sqrt(per_year)
    caption = (f"trailing {what}, mean / sample std × √{per_year:g}; each point rests on "
               f"{window} returns, so it swings widely")
    return sharpe.dropna(), caption
