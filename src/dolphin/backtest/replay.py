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
- Every entry the kernel decides passes the engine's risk gate (``risk.gate``: posture, Rm and
  the pre-trade checks); a refused entry is undone and recorded in ``denials`` (written as
  ``denials.parquet``).
- ``survival=True`` attaches the survival controller (``backtest.survival_replay``): the day's
  bars then run one at a time with a posture and Rm per bar, and the equity table gains ``rm``,
  ``posture`` and ``denial`` columns.
- Asset columns hold REAL closes (NaN: no real bar, DESIGN.md "No price, no trade"): the kernel
  ranks, confirms, enters and exits only on real closes, marks a held position at its last real
  close and exits it with ``DATA_END`` after ``data_end_bars`` bars without one.
- ``funding`` (a long ``timestamp, symbol, funding_rate`` frame, ``features.funding``) accrues on
  open positions in the kernel; without it the metrics say ``funding_modelled: false``.
- ``mc_gate`` is the day's MC-Forewarner (``risk.mc_models.default_gate``); without one the gate
  is open and the metrics say ``forewarner: "off"``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dolphin.alpha.engine import NDAlphaEngine
from dolphin.alpha.interfaces import McGate, ObEngine, PostureProvider
from dolphin.alpha.session import DayProtocol, day_bounds, hibernate_skips
from dolphin.core.config import DolphinConfig
from dolphin.features.exf import FACTORS, ExfTable
from dolphin.features.funding import FundingEvents, assets_without_funding, funding_events
from dolphin.risk.acb import AdaptiveCircuitBreaker
from dolphin.risk.gate import denial_frame
from dolphin.scanner.schema import asset_columns, scan_arrays, validate_scans

__all__ = ["ReplayInputs", "ReplayResult", "asset_columns", "run_replay", "validate_scans"]

@dataclass
class ReplayResult:
    """Everything a replay produces; DataFrames are exactly what gets written."""

    trades: pd.DataFrame
    equity: pd.DataFrame
    daily: pd.DataFrame
    metrics: dict[str, Any]
    records: np.ndarray
    denials: pd.DataFrame | None = None  # entries the risk gate refused (``risk.gate``)
    fills: pd.DataFrame | None = None  # a fill-based run's fills (``core.records.FILL_DTYPE``)


def _trades_frame(rec: np.ndarray, assets: list[str]) -> pd.DataFrame:
    """Return the trades table of ``rec`` (the columns ``trades_sha256`` hashes)."""
    from dolphin.backtest.metrics import trade_columns

    out = pd.DataFrame(trade_columns(rec, assets))
    for col in ("entry_time", "exit_time"):
        out[col] = out[col].dt.tz_localize("UTC")
    return out


def _day_row(summary, acb_day, equity_end: float, mc_model: str = "off") -> dict[str, Any]:
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
        "mc_model_set": mc_model,
        "posture": summary.posture,
        "absent_factors": ",".join(acb_day.absent),
    }
    row.update({f"exf_{k}": acb_day.factors[k] for k in FACTORS})
    return row


def _survival(config: DolphinConfig, exf: ExfTable | None, dates: list[str], n: int):
    from dolphin.backtest.survival_replay import ReplaySurvival

    with_dvol = exf is not None and bool(exf.table(dates)["dvol_btc"].notna().any())
    return ReplaySurvival(config, n, with_dvol=with_dvol)


def scan_bar_ns(ts: np.ndarray) -> int:
    """Return the bar length of scan timestamps (ns): their modal step, one minute if unknown."""
    if len(ts) < 2:
        return 60_000_000_000
    steps, counts = np.unique(np.diff(ts), return_counts=True)
    return int(steps[np.argmax(counts)])


def gate_id(mc_gate: McGate | None) -> str:
    """Return the MC-Forewarner model-set id of a gate, or ``off`` for none."""
    return str(getattr(mc_gate, "model_id", "off")) if mc_gate is not None else "off"


@dataclass
class ReplayInputs:
    """The scan arrays every replay driver reads, prepared once."""

    assets: list[str]
    ts: np.ndarray
    vd: np.ndarray
    prices: np.ndarray
    gap: np.ndarray
    vol_ok: np.ndarray
    v750: np.ndarray
    bounds: np.ndarray
    dates: dict[int, str]
    funding: FundingEvents

    @classmethod
    def of(cls, scans: pd.DataFrame, funding: pd.DataFrame | None, source: str) -> ReplayInputs:
        """Validate ``scans`` and return its arrays, UTC day bounds and funding events."""
        assets = validate_scans(scans, source)
        a = scan_arrays(scans, assets)  # the one scan frame -> arrays (scanner.schema)
        bounds = day_bounds(a.ts)  # UTC days (alpha.session); strftime on every row is slow
        ts = a.ts
        return cls(
            assets=assets,
            ts=ts,
            vd=a.vel_div,
            prices=a.prices,
            gap=a.data_gap,
            vol_ok=a.vol_ok,
            v750=a.v750,
            bounds=bounds,
            dates={int(lo): str(scans["timestamp"].iloc[lo].date()) for lo in bounds[:-1]},
            funding=funding_events(funding, ts, scan_bar_ns(ts), assets),
        )


def _hibernate_day(engine, lo: int, bars, fund) -> tuple[np.ndarray, np.ndarray]:
    """Run a HIBERNATE day: bar by bar while a position is open (its forced exit), then the
    §14 guard skips every flat bar (``alpha.session.hibernate_skips``), as the live driver."""
    ts = bars[0]
    n = len(ts)
    equity = np.empty(n)
    in_pos = np.zeros(n, dtype=np.bool_)
    for j in range(n):
        if hibernate_skips(engine):
            equity[j:] = engine.equity()
            break
        s = slice(j, j + 1)
        eq, ip = engine.run_bars(lo + j, *(b[s] for b in bars), funding=fund.slice(j, j + 1))
        equity[j], in_pos[j] = eq[0], ip[0]
    return equity, in_pos


def _run_days(engine, acb, data: ReplayInputs, guard, equity, in_pos, mc_model: str) -> list:
    days = []
    n = len(data.ts)
    protocol = DayProtocol(engine, acb)  # the one day protocol (alpha.session)
    for lo, hi in itertools.pairwise(data.bounds):
        lo, hi = int(lo), int(hi)
        posture = guard.controller.posture if guard is not None else None
        acb_day = protocol.begin(data.dates[lo], posture=posture)
        fund = data.funding.slice(lo, hi)
        bars = (data.ts[lo:hi], data.vd[lo:hi], data.prices[lo:hi], data.gap[lo:hi],
                data.vol_ok[lo:hi])
        if guard is None and engine.posture == "HIBERNATE":
            equity[lo:hi], in_pos[lo:hi] = _hibernate_day(engine, lo, bars, fund)
        elif guard is None:
            equity[lo:hi], in_pos[lo:hi] = engine.run_bars(lo, *bars, funding=fund)
        else:
            equity[lo:hi], in_pos[lo:hi] = guard.run_day(
                engine, lo, bars, fund, acb_day.factors.get("dvol_btc", np.nan)
            )
        if hi == n and engine.in_position:
            engine.close_open_position(hi - 1, int(data.ts[hi - 1]))
            equity[hi - 1] = engine.capital
        protocol.observe_v750(data.v750[lo:hi])
        days.append(_day_row(protocol.end(), acb_day, float(equity[hi - 1]), mc_model))
    return days


def run_notes_metrics(
    trades: pd.DataFrame,
    funding: pd.DataFrame | None,
    mc_gate,
    scans: pd.DataFrame,
    config: DolphinConfig,
) -> dict[str, Any]:
    """Return the metrics fields that say what the run modelled (funding, forewarner) and
    what its reader must know (bar size, durations, warnings: ``backtest.notes``)."""
    assets = asset_columns(scans)
    ts = scans["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return _notes(trades, funding, mc_gate, assets, ts, scans[assets].to_numpy(np.float64),
                  config)


def _notes(trades, funding, mc_gate, assets, ts, prices, config) -> dict[str, Any]:
    from dolphin.backtest.notes import describe_run

    traded = sorted(set(trades["asset"])) if len(trades) else []
    return {
        "funding_modelled": funding is not None,
        "funding_paid": float(trades["funding"].sum()) if funding is not None else None,
        "funding_missing_assets": ",".join(assets_without_funding(funding, assets, traded)),
        "forewarner": gate_id(mc_gate),
        **describe_run(ts, prices, config, trades),
    }


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
    funding: pd.DataFrame | None = None,
) -> ReplayResult:
    """Replay ``scans`` through the engine and return trades, equity, daily table and metrics."""
    return replay_inputs(
        ReplayInputs.of(scans, funding, source), config, exf=exf, hell=hell,
        posture_provider=posture_provider, mc_gate=mc_gate, ob_engine=ob_engine,
        survival=survival, funding=funding,
    )  # fmt: skip


def replay_inputs(
    data: ReplayInputs,
    config: DolphinConfig,
    *,
    exf: ExfTable | None = None,
    hell: bool = False,
    posture_provider: PostureProvider | None = None,
    mc_gate: McGate | None = None,
    ob_engine: ObEngine | None = None,
    survival: bool = False,
    funding: pd.DataFrame | None = None,
) -> ReplayResult:
    """``run_replay`` on prepared inputs (``funding``: the table ``data.funding`` came from)."""
    from dolphin.backtest.metrics import compute_metrics

    engine = NDAlphaEngine(
        config,
        data.assets,
        hell=hell,
        posture_provider=posture_provider,
        mc_gate=mc_gate,
        ob_engine=ob_engine,
    )
    acb = AdaptiveCircuitBreaker(config.acb, exf)
    n = len(data.ts)
    equity = np.empty(n)
    in_pos = np.zeros(n, dtype=np.bool_)
    guard = _survival(config, exf, list(data.dates.values()), n) if survival else None
    days = _run_days(engine, acb, data, guard, equity, in_pos, gate_id(mc_gate))
    rec = engine.trades
    trades = _trades_frame(rec, data.assets)
    times = pd.DatetimeIndex(data.ts.view("datetime64[ns]")).tz_localize("UTC")
    equity_df = pd.DataFrame({"timestamp": times, "equity": equity, "in_position": in_pos})
    if guard is not None:
        for col, values in guard.trace().items():
            equity_df[col] = values
    daily = pd.DataFrame(days)
    metrics = compute_metrics(
        trades, equity_df, daily, initial_capital=config.alpha.initial_capital, config_id=config.id
    )
    metrics.update(_notes(trades, funding, mc_gate, data.assets, data.ts, data.prices, config))
    denials = denial_frame(engine.gate.denials(), data.assets)
    metrics["denials"] = len(denials)
    return ReplayResult(trades, equity_df, daily, metrics, rec, denials)
