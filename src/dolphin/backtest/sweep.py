"""Vectorized parameter sweep: grids as parameter columns through the replay's own kernel.

``SweepData`` holds the scan arrays once; ``evaluate`` runs a batch of configs through
``sweep_nb`` (one shared bar loop, one ``step_state_nb`` call per column per bar) and turns each
column into the replay's ``metrics.json`` row plus its ``trades_sha256`` and daily returns.
The driver with work directory, resume and worker processes is ``sweep_run.py``.

Decisions where issue 5 is silent:
- The sweep runs what ``dolphin backtest`` runs by default: MC gate open, APEX posture, no OB
  engine, ACB factors from ``--factors`` (none: boost 1) and the chosen friction.
- The ACB verdict per day depends on the ACB section and the scans only; it is computed once per
  distinct ACB config with the replay's own ``AdaptiveCircuitBreaker``.
- A column's trade buffer holds ``capacity`` trades; a column that overflows it is re-run alone
  with the replay's worst-case capacity (one trade per two bars), never truncated.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dolphin.alpha import layout as lay
from dolphin.backtest.metrics import metrics_from_arrays
from dolphin.backtest.replay import validate_scans
from dolphin.backtest.sweep_hash import TradeHasher
from dolphin.backtest.sweep_nb import STATUS_NO_CLOSE_PRICE, sweep_nb
from dolphin.core.config import AcbConfig, DolphinConfig
from dolphin.core.errors import HaltTradingError
from dolphin.core.records import TRADE_DTYPE
from dolphin.features.exf import ExfTable
from dolphin.risk.acb import AdaptiveCircuitBreaker

DEFAULT_CAPACITY = 2048
NS_PER_DAY = 86_400_000_000_000


@dataclass
class SweepData:
    """The scan arrays every column reads, prepared once (what ``run_replay`` reads)."""

    assets: list[str]
    ts: np.ndarray
    vel_div: np.ndarray
    data_gap: np.ndarray
    vol_ok: np.ndarray
    prices: np.ndarray
    day_lo: np.ndarray
    dates: list[str]
    w750_medians: list[float | None]
    exf: ExfTable | None = None
    hasher: TradeHasher = field(init=False)
    _acb: dict[AcbConfig, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.hasher = TradeHasher(self.assets, self.ts)

    @property
    def n_bars(self) -> int:
        """Number of bars."""
        return int(self.ts.shape[0])

    def acb_days(self, cfg: AcbConfig) -> tuple[np.ndarray, np.ndarray]:
        """Return the per-day ACB boost and beta of ``cfg``, exactly as the replay computes them."""
        if cfg not in self._acb:
            acb = AdaptiveCircuitBreaker(cfg, self.exf)
            boost, beta = np.empty(len(self.dates)), np.empty(len(self.dates))
            for d, date in enumerate(self.dates):
                day = acb.day(date)
                boost[d], beta[d] = day.boost, day.beta
                if self.w750_medians[d] is not None:
                    acb.observe_w750(self.w750_medians[d])
            self._acb[cfg] = (boost, beta)
        return self._acb[cfg]


def prepare(scans: pd.DataFrame, exf: ExfTable | None = None, source: str = "scans") -> SweepData:
    """Validate ``scans`` (the replay's rules) and return its arrays and day boundaries."""
    assets = validate_scans(scans, source)
    ts = scans["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    day_no = ts // NS_PER_DAY
    day_lo = np.flatnonzero(np.r_[True, day_no[1:] != day_no[:-1], True]).astype(np.int64)
    dates = [str(scans["timestamp"].iloc[lo].date()) for lo in day_lo[:-1]]
    v750 = scans["v750_lambda_max_velocity"].to_numpy(dtype=np.float64)
    medians: list[float | None] = []
    for lo, hi in itertools.pairwise(day_lo):
        fin = v750[lo:hi][np.isfinite(v750[lo:hi])]
        medians.append(float(np.median(fin)) if fin.size else None)
    vol_ok = (
        scans["vol_regime_ok"].to_numpy(dtype=np.bool_)
        if "vol_regime_ok" in scans
        else np.ones(len(scans), dtype=np.bool_)
    )
    return SweepData(
        assets=assets,
        ts=ts,
        vel_div=scans["vel_div"].to_numpy(dtype=np.float64),
        data_gap=scans["data_gap"].to_numpy(dtype=np.bool_),
        vol_ok=vol_ok,
        prices=np.ascontiguousarray(scans[assets].to_numpy(dtype=np.float64)),
        day_lo=day_lo,
        dates=dates,
        w750_medians=medians,
        exf=exf,
    )


@dataclass
class RawColumns:
    """What ``sweep_nb`` returns for a batch of columns."""

    trades: np.ndarray
    n_trades: np.ndarray
    eq_end: np.ndarray
    cap_end: np.ndarray
    max_dd: np.ndarray
    pos_bars: np.ndarray
    status: np.ndarray


def run_kernel(
    data: SweepData, configs: list[DolphinConfig], *, hell: bool, capacity: int
) -> RawColumns:
    """Run ``sweep_nb`` over ``configs`` with a ``capacity``-trade buffer per column."""
    n = len(configs)
    params = np.stack([lay.build_params(c.alpha, hell=hell) for c in configs])
    states = np.stack([lay.new_state(c.alpha.initial_capital) for c in configs])
    if "BTCUSDT" in data.assets:  # §13.3 fallback asset when IRP is off (as NDAlphaEngine)
        states[:, lay.S_FALLBACK_ASSET] = data.assets.index("BTCUSDT")
    n_days = len(data.dates)
    boost, beta = np.empty((n, n_days)), np.empty((n, n_days))
    for i, c in enumerate(configs):
        boost[i], beta[i] = data.acb_days(c.acb)
    out = RawColumns(
        trades=np.zeros((n, capacity), dtype=TRADE_DTYPE),
        n_trades=np.zeros(n, dtype=np.int64),
        eq_end=np.zeros((n, n_days)),
        cap_end=np.zeros((n, n_days)),
        max_dd=np.zeros(n),
        pos_bars=np.zeros(n, dtype=np.int64),
        status=np.zeros(n, dtype=np.int64),
    )
    sweep_nb(
        params, states, data.day_lo, boost, beta, data.ts, data.vel_div, data.data_gap,
        data.vol_ok, data.prices, out.trades, out.eq_end, out.cap_end, out.max_dd,
        out.pos_bars, out.status,
    )  # fmt: skip
    out.n_trades[:] = states[:, lay.S_N_TRADES].astype(np.int64)
    return out


def return_moments(r: np.ndarray) -> dict[str, float | None]:
    """Return the per-period Sharpe, skewness and (non-excess) kurtosis of daily returns."""
    if r.size < 3 or not np.std(r) > 0:
        return {"sr_daily": None, "skew": None, "kurtosis": None}
    # population moments, as scipy.stats.skew / kurtosis(fisher=False) with bias=True
    dev = r - r.mean()
    m2 = float(np.mean(dev**2))
    return {
        "sr_daily": float(np.mean(r) / np.std(r, ddof=1)),
        "skew": float(np.mean(dev**3)) / m2**1.5,
        "kurtosis": float(np.mean(dev**4)) / m2**2,
    }


def column_row(data: SweepData, cfg: DolphinConfig, raw: RawColumns, i: int) -> dict[str, Any]:
    """Return the metrics row of column ``i`` (``metrics.json`` keys plus return moments)."""
    if raw.status[i] == STATUS_NO_CLOSE_PRICE:
        raise HaltTradingError(f"config {cfg.id}: open position has no price to close at")
    if raw.status[i] != lay.STATUS_OK:
        raise HaltTradingError(f"config {cfg.id}: sweep kernel returned status {raw.status[i]}")
    rec = raw.trades[i, : raw.n_trades[i]]
    initial = cfg.alpha.initial_capital
    row = metrics_from_arrays(
        pnl=rec["pnl"],
        held=(rec["exit_bar"] - rec["entry_bar"]).astype(float),
        max_dd=float(raw.max_dd[i]),
        exposure=float(raw.pos_bars[i]) / data.n_bars if data.n_bars else 0.0,
        bars=data.n_bars,
        capital_end=raw.cap_end[i],
        equity_end=raw.eq_end[i],
        initial_capital=initial,
        config_id=cfg.id,
        sha256=data.hasher.sha256(rec),
    )
    eq = raw.eq_end[i]
    r = eq / np.concatenate([[initial], eq[:-1]]) - 1.0
    row.update(return_moments(r))
    row["daily_returns"] = r.tolist()
    return row


def evaluate(
    data: SweepData,
    configs: list[DolphinConfig],
    *,
    hell: bool = False,
    capacity: int = DEFAULT_CAPACITY,
) -> list[dict[str, Any]]:
    """Run ``configs`` as parameter columns; return one metrics row per config, in order."""
    if not configs:
        return []
    raw = run_kernel(data, configs, hell=hell, capacity=capacity)
    full = np.flatnonzero(raw.status == lay.STATUS_TRADE_BUFFER_FULL)
    rows: list[dict[str, Any]] = []
    for i, cfg in enumerate(configs):
        if i in full:  # rare: re-run alone with the replay's worst-case buffer
            big = run_kernel(data, [cfg], hell=hell, capacity=data.n_bars // 2 + 2)
            rows.append(column_row(data, cfg, big, 0))
        else:
            rows.append(column_row(data, cfg, raw, i))
    return rows


def trade_records(
    data: SweepData, cfg: DolphinConfig, *, hell: bool = False
) -> np.ndarray:
    """Return one config's trade records from the sweep kernel (for parity checks and studies)."""
    raw = run_kernel(data, [cfg], hell=hell, capacity=data.n_bars // 2 + 2)
    return raw.trades[0, : raw.n_trades[0]].copy()
