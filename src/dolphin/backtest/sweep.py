"""Vectorized parameter sweep: grids as parameter columns through the replay's own kernel.

``SweepData`` holds the scan arrays once; ``evaluate`` runs a batch of configs through
``sweep_nb`` (one shared bar loop; each column stepped by the replay's ``step_state_nb`` halves
on the bars where they can act) and turns the columns into the replay's ``metrics.json`` rows
(``metrics_columns``, all columns at once) plus ``trades_sha256`` and the daily returns.
The driver with work directory, resume and worker processes is ``sweep_run.py``.

Decisions where issue 5 is silent:
- The sweep runs what ``dolphin backtest`` runs: APEX posture, ACB factors from ``--factors``
  (none: boost 1), funding from ``--funding`` (none: not modelled), the chosen friction and,
  when ``SweepData.forewarner`` holds a model set, the MC-Forewarner day gate (each column's
  days assessed at ``max_leverage × the day's boost``; RED halts, ORANGE halves).
- Recorded OB features (``--ob``, ``SweepData.ob``, ``backtest.ob_table``): the bars' OB inputs
  are aligned once for all columns (``ObTable.arrays``, what the replay's ``RecordedOb`` gives
  bar by bar), the kernel runs with ``has_ob`` (OB-1/2/3/5) and the days' ACB verdicts take the
  table's OB-4 stress. Without a table the kernel runs without an OB engine, as before.
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
from dolphin.alpha.session import acb_days, day_w750
from dolphin.backtest.metrics import metrics_columns, records_sha256
from dolphin.backtest.notes import describe_bars, thin_bars
from dolphin.backtest.ob_table import NS_PER_S, ObTable, RecordedOb
from dolphin.backtest.replay import ReplayInputs, scan_bar_ns
from dolphin.backtest.sweep_nb import STATUS_NO_CLOSE_PRICE, last_prices_nb, sweep_nb
from dolphin.core.config import AcbConfig, DolphinConfig
from dolphin.core.errors import HaltTradingError
from dolphin.core.records import TRADE_DTYPE
from dolphin.features.exf import ExfTable
from dolphin.features.funding import FundingEvents, assets_without_funding
from dolphin.risk.acb import AdaptiveCircuitBreaker
from dolphin.risk.gate import flat_entries_pass

DEFAULT_CAPACITY = 2048


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
    funding: FundingEvents | None = None
    funding_table: pd.DataFrame | None = None
    forewarner: Any = None  # an MC-Forewarner model set (risk.mc_models.ModelSet) or None
    inputs: ReplayInputs | None = None  # what the replay reads (the gate's exact fallback)
    ob: ObTable | None = None  # recorded OB features (None: no OB engine)
    last_price: np.ndarray = field(init=False)
    since_real: np.ndarray = field(init=False)
    thin: np.ndarray = field(init=False)
    ob_asset: np.ndarray = field(init=False)  # (bars, assets, N_OB_ASSET), one row without OB
    ob_macro: np.ndarray = field(init=False)  # (bars, N_OB_MACRO), one row without OB
    _acb: dict[AcbConfig, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # shared by every chunk of columns
        self.last_price, self.since_real = last_prices_nb(self.prices)
        self.thin = thin_bars(self.prices)
        if self.funding is None:
            self.funding = FundingEvents.none(self.n_bars)
        if self.ob is not None:
            self.ob_asset, self.ob_macro = self.ob.arrays(self.ts, self.bar_s, self.assets)
        else:  # the kernel's placeholder row, never read (``alpha.interfaces.empty_ob``)
            self.ob_asset = np.zeros((1, len(self.assets), lay.N_OB_ASSET))
            self.ob_macro = np.zeros((1, lay.N_OB_MACRO))

    @property
    def n_bars(self) -> int:
        """Number of bars."""
        return int(self.ts.shape[0])

    @property
    def bar_s(self) -> float:
        """The bar length in seconds (``replay.scan_bar_ns``)."""
        return scan_bar_ns(self.ts) / NS_PER_S

    def ob_engine(self) -> RecordedOb | None:
        """Return the replay's OB engine over ``ob`` (None without a table)."""
        return RecordedOb(self.ob, self.bar_s) if self.ob is not None else None

    def acb_days(self, cfg: AcbConfig) -> tuple[np.ndarray, np.ndarray]:
        """Return the per-day ACB boost and beta of ``cfg``, exactly as the replay computes them
        (OB-4: with the table's daily stress when there is a table)."""
        if cfg not in self._acb:
            stress = self.ob.daily_ob_stress if self.ob is not None else None
            days = acb_days(AdaptiveCircuitBreaker(cfg, self.exf), self.dates, self.w750_medians,
                            stress)
            self._acb[cfg] = (np.array([d.boost for d in days]), np.array([d.beta for d in days]))
        return self._acb[cfg]


def prepare(
    scans: pd.DataFrame,
    exf: ExfTable | None = None,
    source: str = "scans",
    *,
    funding: pd.DataFrame | None = None,
    forewarner: Any = None,
    ob: ObTable | None = None,
) -> SweepData:
    """Validate ``scans`` (the replay's rules) and return its arrays and day boundaries
    (``ob``: recorded OB features for every column)."""
    data = ReplayInputs.of(scans, funding, source)  # exactly what the replay reads
    medians = [day_w750(data.v750[lo:hi]) for lo, hi in itertools.pairwise(data.bounds)]
    return SweepData(
        assets=data.assets,
        ts=data.ts,
        vel_div=data.vd,
        data_gap=data.gap,
        vol_ok=data.vol_ok,
        prices=data.prices,
        day_lo=data.bounds.astype(np.int64),
        dates=[data.dates[int(lo)] for lo in data.bounds[:-1]],
        w750_medians=medians,
        exf=exf,
        funding=data.funding,
        funding_table=funding,
        forewarner=forewarner,
        inputs=data,
        ob=ob,
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
    states[:, lay.S_FALLBACK_ASSET] = lay.fallback_asset(data.assets)  # as NDAlphaEngine
    n_days = len(data.dates)
    boost, beta = np.empty((n, n_days)), np.empty((n, n_days))
    for i, c in enumerate(configs):
        boost[i], beta[i] = data.acb_days(c.acb)
    day_mc = mc_codes(data, configs, boost)
    day_scale = brake_scales(data.dates, configs)
    out = RawColumns(
        trades=np.zeros((n, capacity), dtype=TRADE_DTYPE),
        n_trades=np.zeros(n, dtype=np.int64),
        eq_end=np.zeros((n, n_days)),
        cap_end=np.zeros((n, n_days)),
        max_dd=np.zeros(n),
        pos_bars=np.zeros(n, dtype=np.int64),
        status=np.zeros(n, dtype=np.int64),
    )
    f = data.funding
    sweep_nb(
        params, states, data.day_lo, boost, beta, day_mc, day_scale, data.ts, data.vel_div,
        data.data_gap,
        data.vol_ok, data.prices, data.last_price, data.since_real, f.asset, f.rate, f.lo,
        data.ob_asset, data.ob_macro, data.ob is not None,
        out.trades, out.eq_end, out.cap_end, out.max_dd, out.pos_bars, out.status,
    )  # fmt: skip
    out.n_trades[:] = states[:, lay.S_N_TRADES].astype(np.int64)
    return out


def brake_scales(dates: list[str], configs: list[DolphinConfig]) -> np.ndarray:
    """Return each column's EsoF meta-brake size scale per day (``features.esof.brake_scale``,
    as ``NDAlphaEngine.begin_day`` applies it), computed once per distinct EsoF section."""
    from dolphin.features.esof import brake_scale

    rows: dict[object, np.ndarray] = {}
    out = np.empty((len(configs), len(dates)))
    for i, c in enumerate(configs):
        if c.esof not in rows:
            rows[c.esof] = np.array([brake_scale(d, c.esof) for d in dates], dtype=np.float64)
        out[i] = rows[c.esof]
    return out


def mc_codes(data: SweepData, configs: list[DolphinConfig], boost: np.ndarray) -> np.ndarray:
    """Return each column's MC-Forewarner code per day (0 OK, 1 ORANGE, 2 RED; all 0 when off).

    The day's config is assessed at ``max_leverage × the day's ACB boost``, as the replay's
    ``NDAlphaEngine.begin_day`` asks its gate.
    """
    if data.forewarner is None:
        return np.zeros(boost.shape, dtype=np.int8)
    from dolphin.risk.mc_models import day_status_codes

    lev = np.array([c.alpha.max_leverage for c in configs], dtype=np.float64)[:, None] * boost
    return np.ascontiguousarray(day_status_codes(data.forewarner, configs, lev), dtype=np.int8)


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
    bar_s = scan_bar_ns(data.ts) / 1e9
    for row, moments, ri, rec, cfg in zip(rows, return_moments_rows(r), r, recs, configs,
                                          strict=True):
        row.update(moments)
        row.update(_modelled(data, rec))
        row.update(describe_bars(bar_s, data.thin, cfg, rec["entry_bar"].astype(np.int64)))
        row["denials"] = 0  # evaluate() replays any column the gate would refuse an entry of
        row["daily_returns"] = ri.tolist()
    return rows


def _modelled(data: SweepData, rec: np.ndarray) -> dict[str, Any]:
    """Return the replay's ``run_notes_metrics`` fields for one column's trades."""
    modelled = data.funding_table is not None
    traded = sorted({data.assets[int(a)] for a in rec["asset"]})
    return {
        "funding_modelled": modelled,
        "funding_paid": float(rec["funding"].sum()) if modelled else None,
        "funding_missing_assets": ",".join(
            assets_without_funding(data.funding_table, data.assets, traded)
        ),
        "forewarner": str(data.forewarner.meta["version"]) if data.forewarner is not None
        else "off",
    }


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
    for i, cfg in enumerate(configs):  # the risk gate on every path (``risk.gate``)
        if not gate_allows(data, cfg, raw if not full[i] else None, i):
            rows[i] = replay_row(data, cfg, hell=hell)
    return rows


def gate_allows(data: SweepData, cfg: DolphinConfig, raw: RawColumns | None, i: int) -> bool:
    """Audit column ``i``'s entries with the replay's risk gate (APEX, no survival controller).

    The skip-ahead kernel cannot ask the gate bar by bar; the audit judges its entries in time
    order afterwards (``risk.gate.flat_entries_pass``, the gate's checks vectorised). When the
    gate allows them all (the usual case) the column is exactly what the gated replay computes;
    otherwise the caller reruns the config through the replay.
    """
    if raw is None:
        return False  # an overflowed column: let the replay decide
    rec = raw.trades[i, : raw.n_trades[i]]
    return flat_entries_pass(
        rec["notional"], rec["capital_after"] - rec["pnl"], data.ts[rec["entry_bar"]],
        data.ts[rec["exit_bar"]], cfg.pretrade,
    )  # fmt: skip


def replay_row(data: SweepData, cfg: DolphinConfig, *, hell: bool) -> dict[str, Any]:
    """Return a sweep row computed by the gated replay (a config the gate refuses entries of)."""
    from dolphin.backtest.metrics import daily_returns
    from dolphin.backtest.replay import replay_inputs
    from dolphin.risk.mc_models import ForewarnerGate

    gate = ForewarnerGate(data.forewarner, cfg) if data.forewarner is not None else None
    result = replay_inputs(data.inputs, cfg, exf=data.exf, hell=hell, mc_gate=gate,
                           funding=data.funding_table, ob_engine=data.ob_engine())
    row = dict(result.metrics)
    r = daily_returns(result.daily, cfg.alpha.initial_capital)
    row.update(return_moments(r))
    row["daily_returns"] = r.tolist()
    return row


def trade_records(
    data: SweepData, cfg: DolphinConfig, *, hell: bool = False
) -> np.ndarray:
    """Return one config's trade records from the sweep kernel (for parity checks and studies)."""
    raw = run_kernel(data, [cfg], hell=hell, capacity=data.n_bars // 2 + 2)
    return raw.trades[0, : raw.n_trades[0]].copy()
