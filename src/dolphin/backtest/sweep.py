"""Vectorized parameter sweep: grids as parameter columns through the replay's own kernel.

``SweepData`` holds the scan arrays once; ``evaluate`` runs a batch of configs through
``sweep_nb`` (one shared bar loop; each column stepped by the replay's ``step_state_nb`` halves
on the bars where they can act) and turns the columns into the replay's ``metrics.json`` rows
(``metrics_columns``, all columns at once) plus ``trades_sha256`` and the daily returns.
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
from dolphin.backtest.metrics import metrics_columns, records_sha256
from dolphin.backtest.replay import validate_scans
from dolphin.backtest.sweep_nb import STATUS_NO_CLOSE_PRICE, last_prices_nb, sweep_nb
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
    last_price: np.ndarray = field(init=False)
    _acb: dict[AcbConfig, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.last_price = last_prices_nb(self.prices)  # shared by every chunk of columns

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
        data.vol_ok, data.prices, data.last_price, out.trades, out.eq_end, out.cap_end, out.max_dd,
        out.pos_bars, out.status,
    )  # fmt: skip
    out.n_trades[:] = states[:, lay.S_N_TRADES].astype(np.int64)
    return out


def return_moments(r: np.ndarray) -> dict[str, float | None]:
    """Return the per-period Sharpe, skewness and (non-excess) kurtosis of daily returns."""
    return return_moments_rows(np.asarray(r, dtype=np.float64).reshape(1, -1))[0]


def return_moments_rows(r: np.ndarray) -> list[dict[str, float | None]]:
    """Return ``return_moments`` of every row of a runs × days matrix."""
    none = {"sr_daily": None, "skew": None, "kurtosis": None}
    if r.shape[1] < 3:
        return [dict(none) for _ in range(r.shape[0])]
    # population moments, as scipy.stats.skew / kurtosis(fisher=False) with bias=True
    mean = np.mean(r, axis=1)
    dev = r - mean[:, None]
    m2 = np.mean(dev**2, axis=1)
    m3 = np.mean(dev**3, axis=1)
    m4 = np.mean(dev**4, axis=1)
    sd0 = np.std(r, axis=1)
    sd1 = np.std(r, axis=1, ddof=1)
    out = []
    for i in range(r.shape[0]):
        if not sd0[i] > 0:
            out.append(dict(none))
            continue
        v = float(m2[i])
        out.append(
            {
                "sr_daily": float(mean[i] / sd1[i]),
                "skew": float(m3[i]) / v**1.5,
                "kurtosis": float(m4[i]) / v**2,
            }
        )
    return out


def _check_status(cfg: DolphinConfig, status: int) -> None:
    if status == STATUS_NO_CLOSE_PRICE:
        raise HaltTradingError(f"config {cfg.id}: open position has no price to close at")
    if status != lay.STATUS_OK:
        raise HaltTradingError(f"config {cfg.id}: sweep kernel returned status {status}")


def column_rows(
    data: SweepData, configs: list[DolphinConfig], raw: RawColumns, cols: np.ndarray
) -> list[dict]:
    """Return the metrics rows of ``raw``'s columns ``cols`` (run as ``configs``, in order).

    Each row holds the ``metrics.json`` keys plus the daily-return moments and the returns.
    """
    for i, cfg in zip(cols, configs, strict=True):
        _check_status(cfg, int(raw.status[i]))
    n = raw.n_trades[cols]
    lo = np.concatenate([[0], np.cumsum(n)]).astype(np.int64)
    recs = [raw.trades[i, : raw.n_trades[i]] for i in cols]
    # field by field: concatenating whole records is several times slower
    pnl = np.concatenate([r["pnl"] for r in recs])
    held = np.concatenate([r["exit_bar"] - r["entry_bar"] for r in recs]).astype(float)
    initial = np.array([c.alpha.initial_capital for c in configs], dtype=np.float64)
    eq = raw.eq_end[cols]
    rows = metrics_columns(
        pnl=pnl,
        held=held,
        trade_lo=lo,
        max_dd=raw.max_dd[cols],
        exposure=raw.pos_bars[cols] / data.n_bars if data.n_bars else np.zeros(len(cols)),
        bars=data.n_bars,
        capital_end=raw.cap_end[cols],
        equity_end=eq,
        initial_capital=initial,
        config_ids=[c.id for c in configs],
        sha256s=[records_sha256(rec, data.assets) for rec in recs],
    )
    r = eq / np.concatenate([initial[:, None], eq[:, :-1]], axis=1) - 1.0
    for row, moments, ri in zip(rows, return_moments_rows(r), r, strict=True):
        row.update(moments)
        row["daily_returns"] = ri.tolist()
    return rows


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
    full = raw.status == lay.STATUS_TRADE_BUFFER_FULL
    rows: list[dict[str, Any]] = [{} for _ in configs]
    ok = np.flatnonzero(~full)
    if ok.size:
        done = column_rows(data, [configs[i] for i in ok], raw, ok)
        for i, row in zip(ok, done, strict=True):
            rows[i] = row
    for i in np.flatnonzero(full):  # rare: re-run alone with the replay's worst-case buffer
        big = run_kernel(data, [configs[i]], hell=hell, capacity=data.n_bars // 2 + 2)
        rows[i] = column_rows(data, [configs[i]], big, np.zeros(1, dtype=np.int64))[0]
    return rows


def trade_records(
    data: SweepData, cfg: DolphinConfig, *, hell: bool = False
) -> np.ndarray:
    """Return one config's trade records from the sweep kernel (for parity checks and studies)."""
    raw = run_kernel(data, [cfg], hell=hell, capacity=data.n_bars // 2 + 2)
    return raw.trades[0, : raw.n_trades[0]].copy()
