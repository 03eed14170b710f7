"""Assemble a fill-based run into the replay's output frames (same files, same columns).

Both fill-based drivers — the Nautilus backtest and the internal replay under the parity cost
model — produce the engine's trade records (what the engine decided: leverage, bucket, posture,
exit reason) and the round trips (what was filled: prices, quantities, commissions). A trade row
takes its decision fields from the former and its money fields from the latter.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from dolphin.adapters.nautilus.scan_driver import DolphinCore
from dolphin.backtest.metrics import TRADE_TABLE, compute_metrics
from dolphin.backtest.replay import ReplayResult, _day_row, gate_id  # one daily row definition
from dolphin.core.config import DolphinConfig
from dolphin.core.records import BUCKETS, EXIT_REASONS, POSTURES
from dolphin.features.exf import FACTORS
from dolphin.ledger.tradelog import RoundTrip
from dolphin.risk.acb import AcbDay
from dolphin.risk.gate import denial_frame

#: The replay's trades table (``metrics.TRADE_TABLE``, the one definition) plus the filled qty.
TRADE_COLUMNS = (*(col for col, _, _ in TRADE_TABLE), "qty")


def _trade_row(rec: np.void, trip: RoundTrip, assets: Sequence[str], capital: float) -> dict:
    """Decision fields from the engine's record, money from the fills; funding is what the
    engine accrued and the driver booked on the account at each funding time."""
    d = int(rec["direction"])
    return {
        "trade_id": int(rec["trade_id"]),
        "entry_time": pd.Timestamp(int(rec["entry_ts"]), tz="UTC"),
        "exit_time": pd.Timestamp(int(rec["exit_ts"]), tz="UTC"),
        "entry_bar": int(rec["entry_bar"]),
        "exit_bar": int(rec["exit_bar"]),
        "asset": assets[int(rec["asset"])],
        "direction": "SHORT" if d < 0 else "LONG",
        "entry_price": trip.entry_price,
        "exit_price": trip.exit_price,
        "notional": trip.entry_cost,
        "leverage": float(rec["leverage"]),
        "fraction": float(rec["fraction"]),
        "confidence": float(rec["confidence"]),
        "entry_fee": trip.entry_fee,
        "exit_fee": trip.exit_fee,
        "ob_edge_pct": 0.0,
        "funding": float(rec["funding"]),
        "pnl_pct": d * (trip.exit_price - trip.entry_price) / trip.entry_price,
        "pnl": trip.pnl - float(rec["funding"]),
        "capital_after": capital,
        "exit_reason": EXIT_REASONS[int(rec["exit_reason"])],
        "bucket": BUCKETS[int(rec["bucket"])],
        "posture": POSTURES[int(rec["posture"])],
        "qty": trip.qty,
    }


def trades_frame(
    records: np.ndarray, trips: Sequence[RoundTrip], assets: Sequence[str], initial: float
) -> pd.DataFrame:
    """Join the engine's trade records with the filled round trips, in order."""
    if len(records) != len(trips):
        raise RuntimeError(
            f"engine closed {len(records)} trades but the venue filled {len(trips)} round trips"
        )
    rows, capital = [], initial
    for rec, trip in zip(records, trips, strict=True):
        if trip.asset != assets[int(rec["asset"])]:
            raise RuntimeError(f"trade {int(rec['trade_id'])}: filled {trip.asset}, "
                               f"engine traded {assets[int(rec['asset'])]}")
        capital += trip.pnl - float(rec["funding"])
        rows.append(_trade_row(rec, trip, assets, capital))
    return pd.DataFrame(rows, columns=list(TRADE_COLUMNS))


def _neutral_acb(date: str) -> AcbDay:
    return AcbDay(date=date, boost=1.0, beta=0.0, signals=0.0,
                  factors=dict.fromkeys(FACTORS, float("nan")), absent=FACTORS)


def daily_frame(core: DolphinCore, equity: pd.DataFrame) -> pd.DataFrame:
    """One row per engine day, with the day's last mark-to-market equity."""
    ends = equity.groupby(equity["timestamp"].dt.strftime("%Y-%m-%d"))["equity"].last()
    rows = []
    for summary, acb_day in zip(core.days, core.day_acb, strict=True):
        acb = acb_day if acb_day is not None else _neutral_acb(summary.date)
        rows.append(_day_row(summary, acb, float(ends.get(summary.date, summary.capital)),
                             gate_id(core.engine.mc_gate)))
    return pd.DataFrame(rows)


def assemble(
    scans: pd.DataFrame,
    core: DolphinCore,
    trips: Sequence[RoundTrip],
    equity: Sequence[tuple[int, float, bool]],
    config: DolphinConfig,
    initial: float,
    fills: np.ndarray | None = None,
) -> ReplayResult:
    """Build the ``ReplayResult`` (trades, equity, daily, metrics, the gate's denials and the
    ``FILL_DTYPE`` fills as a table) of a fill-based run."""
    records = core.engine.trades
    trades = trades_frame(records, trips, core.engine.assets, initial)
    eq = np.array([e[1] for e in equity], dtype=np.float64)
    pos = np.array([e[2] for e in equity], dtype=np.bool_)
    if len(eq) != len(scans):
        raise RuntimeError(f"{len(eq)} equity points for {len(scans)} scans")
    equity_df = pd.DataFrame(
        {"timestamp": scans["timestamp"].reset_index(drop=True), "equity": eq, "in_position": pos}
    )
    daily = daily_frame(core, equity_df)
    metrics = compute_metrics(trades, equity_df, daily, initial_capital=initial,
                              config_id=config.id)
    assets = core.engine.assets
    denials = denial_frame(core.engine.gate.denials(), assets)
    metrics["denials"] = len(denials)
    return ReplayResult(trades, equity_df, daily, metrics, records, denials,
                        fill_frame(fills, assets) if fills is not None else None)


def fill_frame(fills: np.ndarray, assets: Sequence[str]) -> pd.DataFrame:
    """Return ``FILL_DTYPE`` records as the ``fills.parquet`` table (asset names decoded)."""
    return pd.DataFrame({
        "time": pd.to_datetime(fills["ts"].astype(np.int64), utc=True),
        "bar": fills["bar"].astype(np.int64),
        "trip": fills["trip"].astype(np.int64),
        "asset": [assets[int(a)] for a in fills["asset"]],
        "side": np.where(fills["side"] > 0, "BUY", "SELL"),
        "qty": fills["qty"].astype(np.float64),
        "price": fills["price"].astype(np.float64),
        "commission": fills["commission"].astype(np.float64),
    })
