"""NDAlphaEngine: the thin Python wrapper around ``step_bar_nb`` (Bible §13, §14.1).

``begin_day`` applies the daily ACB verdict, the MC gate and the posture (§10, §11.7, §12);
``step_bar`` runs the kernel once (live path); ``run_bars`` runs the kernel over many bars in one
numba loop (replay); ``end_day`` returns the day's summary. Nothing here decides a trade.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dolphin.alpha import layout as lay
from dolphin.alpha.interfaces import (
    ApexPosture,
    McGate,
    ObEngine,
    OpenGate,
    PostureProvider,
    empty_ob,
)
from dolphin.alpha.step_nb import (
    begin_day_nb,
    close_position_nb,
    equity_now_nb,
    last_price_nb,
    restep_state_nb,
    run_bars_nb,
    step_bar_nb,
)
from dolphin.core.config import DolphinConfig
from dolphin.core.enums import McStatus
from dolphin.core.errors import HaltTradingError
from dolphin.core.records import EXIT_END_OF_DATA, POSTURES, TRADE_DTYPE, empty_trades
from dolphin.features.esof import brake_scale
from dolphin.features.funding import FundingEvents
from dolphin.risk.acb import AcbDay
from dolphin.risk.gate import EntryRequest, RiskGate, audit, entry_requests

_NO_ASSET = np.zeros(0, dtype=np.int64)
_NO_RATE = np.zeros(0)
_TRADE_SIZE = TRADE_DTYPE.itemsize
_NO_TRADES = np.zeros(0, dtype=TRADE_DTYPE)  # a bar that closed nothing (read-only)
_NO_TRADES.flags.writeable = False

#: §7.3: a mid-day ACB drop from >= 1.25 to < 1.10 forces an exit (threshold not backtested).
SUBDAY_FROM = 1.25
SUBDAY_TO = 1.10


@dataclass(frozen=True)
class DaySummary:
    """What ``end_day`` reports (Bible §13.1 ``process_day`` return)."""

    date: str
    pnl: float
    capital: float
    boost: float
    beta: float
    mc_status: str
    posture: str
    trades: int


class NDAlphaEngine:
    """One engine state, stepped by the one kernel."""

    def __init__(
        self,
        config: DolphinConfig,
        assets: Sequence[str],
        *,
        hell: bool = False,
        posture_provider: PostureProvider | None = None,
        mc_gate: McGate | None = None,
        ob_engine: ObEngine | None = None,
    ) -> None:
        self.config = config
        self.assets = list(assets)
        self.params = lay.build_params(config.alpha, hell=hell)
        self.state = lay.new_state(config.alpha.initial_capital)
        self.hist, self.hist_n = lay.new_histories(len(self.assets))
        self.state[lay.S_FALLBACK_ASSET] = lay.fallback_asset(self.assets)  # §13.3, IRP off
        self.posture_provider = posture_provider or ApexPosture()
        self.mc_gate = mc_gate or OpenGate()
        self.ob_engine = ob_engine
        self._ob_asset, self._ob_macro = empty_ob(len(self.assets))
        self._buf = empty_trades(4)
        self._closed: list[np.ndarray] = []
        self._day: str | None = None
        self._day_start_capital = self.capital
        self._day_trades0 = 0
        self._mc_status = McStatus.OK.name
        #: The one risk gate (``risk.gate``): every entry the kernel decides is judged by it.
        self.gate = RiskGate(config.pretrade)
        #: The survival controller's Rm on paths that run one (None: this path has none).
        self.rm: float | None = None

    # ------------------------------------------------------------ properties
    @property
    def capital(self) -> float:
        """Realised capital."""
        return float(self.state[lay.S_CAPITAL])

    @property
    def in_position(self) -> bool:
        """True while a position is open."""
        return bool(self.state[lay.S_POS_OPEN])

    @property
    def posture(self) -> str:
        """The posture in force."""
        return POSTURES[int(self.state[lay.S_POSTURE])]

    @property
    def trades(self) -> np.ndarray:
        """Every closed trade so far, as ``TRADE_DTYPE`` records."""
        if not self._closed:
            return np.zeros(0, dtype=TRADE_DTYPE)
        return np.concatenate(self._closed)

    # ------------------------------------------------------------ day boundary
    def begin_day(
        self,
        date: str,
        *,
        acb: AcbDay | None = None,
        posture: str | None = None,
        direction: int | None = None,
    ) -> None:
        """Start a day: ACB boost/beta, MC gate, posture and halt (§10, §12, §13.1)."""
        self._day = date
        self._day_start_capital = self.capital
        self._day_trades0 = self._n_closed()
        boost = acb.boost if acb is not None else 1.0
        beta = acb.beta if acb is not None else 0.0
        report = self.mc_gate.assess(date, self.config.alpha.max_leverage * boost)
        self._mc_status = report.status
        # the sweep's kernel applies its days with this same kernel
        begin_day_nb(self.state, self.params, boost, beta, int(McStatus[report.status]),
                     brake_scale(date, self.config.esof))
        if direction is not None:
            self.state[lay.S_DIRECTION] = direction
        self.set_posture(posture or self.posture_provider.posture(date))

    @property
    def mc_status(self) -> str:
        """The day's MC-Forewarner status (OK, ORANGE or RED)."""
        return self._mc_status

    def set_posture(self, posture: str) -> None:
        """Apply a posture (§11.7): the gate refuses entries in TURTLE and HIBERNATE (recorded
        as denials), STALKER caps leverage, HIBERNATE forces an exit.

        May be called between bars (the survival controller's per-bar posture). The kernel's
        own halt is the day's MC RED only (§12): a posture that improves mid-day never lifts it.
        """
        if posture not in POSTURES:
            raise ValueError(f"unknown posture {posture!r}; expected one of {POSTURES}")
        self.state[lay.S_POSTURE] = POSTURES.index(posture)
        self.state[lay.S_HALT] = 1.0 if self._mc_status == McStatus.RED.name else 0.0

    def set_rm(self, rm: float | None) -> None:
        """Give the gate the survival controller's Rm for the next bars (None: no controller)."""
        self.rm = rm

    def update_acb_boost(self, boost: float, beta: float) -> None:
        """Apply a mid-day ACB update (§10.5); §7.3 flags a forced exit on a big drop."""
        old = float(self.state[lay.S_DAY_BOOST])
        self.state[lay.S_DAY_BOOST] = boost
        self.state[lay.S_DAY_BETA] = beta
        if old >= SUBDAY_FROM and boost < SUBDAY_TO and self.in_position:
            self.state[lay.S_PENDING_SUBDAY] = 1.0  # fires on the next bar, never mid-loop

    def end_day(self) -> DaySummary:
        """Close the day's books and return its summary."""
        s = self.state
        return DaySummary(
            date=self._day or "",
            pnl=self.capital - self._day_start_capital,
            capital=self.capital,
            boost=float(s[lay.S_DAY_BOOST]),
            beta=float(s[lay.S_DAY_BETA]),
            mc_status=self._mc_status,
            posture=self.posture,
            trades=self._n_closed() - self._day_trades0,
        )

    # ------------------------------------------------------------ bars
    def _ob_row(self, ts_ns: int) -> tuple[np.ndarray, np.ndarray, bool]:
        if self.ob_engine is None:
            return self._ob_asset[0], self._ob_macro[0], False
        per_asset, macro = self.ob_engine.features(ts_ns, self.assets)
        return (
            np.ascontiguousarray(per_asset, dtype=np.float64),
            np.ascontiguousarray(macro, dtype=np.float64),
            True,
        )

    def step_bar(
        self,
        bar_idx: int,
        ts_ns: int,
        vel_div: float,
        prices: np.ndarray,
        *,
        data_gap: bool = False,
        vol_ok: bool = True,
        funding: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Run one bar through the kernel and the risk gate; return the trades closed on it.

        ``prices`` holds the bar's REAL closes (NaN where an asset has none: no trade on it);
        ``funding`` is the bar's ``(asset index, rate)`` funding events (``FundingEvents.bar``).
        An entry the gate refuses is undone: the bar is stepped again from the state before it
        with entries blocked, and the denial is recorded (``gate.denials``).
        """
        per_asset, macro, has_ob = self._ob_row(ts_ns)
        if funding is None:
            f_asset, f_rate = _NO_ASSET, _NO_RATE
        else:
            f_asset = np.ascontiguousarray(funding[0], dtype=np.int64)
            f_rate = np.ascontiguousarray(funding[1], dtype=np.float64)
        if (not isinstance(prices, np.ndarray) or prices.dtype != np.float64
                or not prices.flags.c_contiguous):
            prices = np.ascontiguousarray(prices, dtype=np.float64)
        n0 = int(self.state[lay.S_N_TRADES])
        before = self.state.copy()
        status = step_bar_nb(
            self.state, self.hist, self.hist_n, self._buf, self.params, bar_idx, ts_ns,
            float(vel_div), bool(data_gap), bool(vol_ok), prices, per_asset, macro, has_ob,
            f_asset, f_rate,
        )  # fmt: skip
        self._check(status)
        if self._entered_on(bar_idx) and not self._gate_allows(bar_idx, ts_ns).allowed:
            self.state[:] = before
            self.state[lay.S_HALT] = 1.0
            status = restep_state_nb(
                self.state, self.hist, self.hist_n, self._buf, self.params, bar_idx, ts_ns,
                float(vel_div), bool(data_gap), bool(vol_ok), per_asset, macro, has_ob,
                f_asset, f_rate,
            )  # fmt: skip
            self.state[lay.S_HALT] = before[lay.S_HALT]
            self._check(status)
        closed = self._drain(n0)
        for _ in closed:
            self.gate.note_order(ts_ns)
        if self._entered_on(bar_idx):
            self.gate.note_order(ts_ns)
        return closed

    def _entered_on(self, bar_idx: int) -> bool:
        s = self.state
        return bool(s[lay.S_POS_OPEN]) and int(s[lay.S_POS_ENTRY_BAR]) == bar_idx

    def _gate_allows(self, bar_idx: int, ts_ns: int, *, equity: float | None = None):
        """Ask the gate about the entry the kernel just opened (one position at a time: the
        book is flat before it)."""
        s = self.state
        a = int(s[lay.S_POS_ASSET])
        req = EntryRequest(
            ts_ns=ts_ns, bar=bar_idx, asset=a, asset_name=self.assets[a],
            direction=int(s[lay.S_POS_DIR]), notional=float(s[lay.S_POS_NOTIONAL]),
            equity=float(s[lay.S_CAPITAL]) if equity is None else equity, positions={},
        )
        return self.gate.judge(req, self.posture, self.rm)

    def equity(self) -> float:
        """Return the mark-to-market equity (the open position at its last real close)."""
        return float(equity_now_nb(self.state, self.hist, self.hist_n))

    def run_bars(
        self,
        bar0: int,
        ts_ns: np.ndarray,
        vel_div: np.ndarray,
        prices: np.ndarray,
        data_gap: np.ndarray,
        vol_ok: np.ndarray,
        funding: FundingEvents | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run many bars (replay); return per-bar equity and exposure.

        One numba loop, then the risk gate audits every entry of the span in time order. When
        it allows them all (the usual case) the loop's result stands, exactly what bar-by-bar
        gating gives; when it refuses one, the span is replayed bar by bar through
        ``step_bar`` from a snapshot, so the refusal is applied where it happens.
        ``funding`` holds these bars' events, re-based to the first of them (``slice``).
        """
        fund = funding if funding is not None else FundingEvents.none(len(ts_ns))
        snap = (self.state.copy(), self.hist.copy(), self.hist_n.copy(), self.gate.snapshot(),
                len(self._closed))
        equity, in_pos = self._run_loop(bar0, ts_ns, vel_div, prices, data_gap, vol_ok, fund)
        if self._audit(bar0, ts_ns, snap):
            return equity, in_pos
        self.state[:], self.hist[:], self.hist_n[:] = snap[0], snap[1], snap[2]
        self.gate.restore(snap[3])
        del self._closed[snap[4]:]
        return self._run_gated(bar0, ts_ns, vel_div, prices, data_gap, vol_ok, fund)

    def _run_loop(self, bar0, ts_ns, vel_div, prices, data_gap, vol_ok, fund):
        n = len(ts_ns)
        if self.ob_engine is not None:
            rows = [self._ob_row(int(t)) for t in ts_ns]
            ob_asset = np.stack([r[0] for r in rows])
            ob_macro = np.stack([r[1] for r in rows])
        else:
            ob_asset, ob_macro = self._ob_asset, self._ob_macro
        # at most one trade per two bars (entry bar > last exit bar), plus one open at the start
        buf = empty_trades(n // 2 + 2)
        self.state[lay.S_N_TRADES] = 0
        equity = np.empty(n)
        in_pos = np.zeros(n, dtype=np.bool_)
        status = run_bars_nb(
            self.state, self.hist, self.hist_n, buf, self.params, bar0, ts_ns, vel_div,
            data_gap, vol_ok, prices, ob_asset, ob_macro, self.ob_engine is not None,
            fund.asset, fund.rate, fund.lo, equity, in_pos,
        )  # fmt: skip
        self._check(status)
        k = int(self.state[lay.S_N_TRADES])
        if k:
            self._closed.append(buf[:k].copy())
        self.state[lay.S_N_TRADES] = 0
        return equity, in_pos

    def _audit(self, bar0: int, ts_ns: np.ndarray, snap) -> bool:
        """Judge every entry of the span in time order (``risk.gate.audit``): True when the
        gate allows them all; a denial leaves the gate as it was (the caller reruns the span)."""
        new = self._closed[snap[4]:]
        closed = np.concatenate(new) if new else np.zeros(0, dtype=TRADE_DTYPE)
        def ts_of(bar):
            return ts_ns[bar - bar0]

        entries = entry_requests(closed[closed["entry_bar"] >= bar0], ts_of, self.assets)
        exits = [(int(t["exit_bar"]), int(ts_of(int(t["exit_bar"])))) for t in closed]
        s = self.state
        if s[lay.S_POS_OPEN] and int(s[lay.S_POS_ENTRY_BAR]) >= bar0:
            bar = int(s[lay.S_POS_ENTRY_BAR])
            a = int(s[lay.S_POS_ASSET])
            entries.append(EntryRequest(
                ts_ns=int(ts_of(bar)), bar=bar, asset=a, asset_name=self.assets[a],
                direction=int(s[lay.S_POS_DIR]), notional=float(s[lay.S_POS_NOTIONAL]),
                equity=float(s[lay.S_CAPITAL]), positions={},
            ))  # fmt: skip
        return audit(self.gate, entries, exits, self.posture, self.rm)

    def _run_gated(self, bar0, ts_ns, vel_div, prices, data_gap, vol_ok, fund):
        n = len(ts_ns)
        equity = np.empty(n)
        in_pos = np.zeros(n, dtype=np.bool_)
        for t in range(n):
            self.step_bar(bar0 + t, int(ts_ns[t]), vel_div[t], prices[t],
                          data_gap=bool(data_gap[t]), vol_ok=bool(vol_ok[t]),
                          funding=fund.bar(t))
            equity[t], in_pos[t] = self.equity(), self.in_position
        return equity, in_pos

    def last_price(self, asset: int) -> float:
        """Return the asset's last real close (NaN before its first): what positions mark at."""
        return float(last_price_nb(self.hist, self.hist_n, int(asset)))

    @property
    def funding_accrued(self) -> float:
        """Funding the open position has paid so far (0 when flat; negative: received)."""
        return float(self.state[lay.S_POS_FUNDING]) if self.in_position else 0.0

    def close_open_position(self, bar_idx: int, ts_ns: int) -> np.ndarray:
        """Close any open position at its last real close with reason END_OF_DATA."""
        if not self.in_position:
            return np.zeros(0, dtype=TRADE_DTYPE)
        price = last_price_nb(self.hist, self.hist_n, int(self.state[lay.S_POS_ASSET]))
        if math.isnan(price):
            raise HaltTradingError("open position has no price to close at")
        n0 = int(self.state[lay.S_N_TRADES])
        status = close_position_nb(
            self.state, self._buf, self.params, bar_idx, ts_ns, price, EXIT_END_OF_DATA
        )
        self._check(status)
        return self._drain(n0)

    # ------------------------------------------------------------ internals
    def _drain(self, n0: int) -> np.ndarray:
        k = int(self.state[lay.S_N_TRADES])
        if k == n0 == 0:  # the usual bar: nothing closed, nothing to reset
            return _NO_TRADES
        # the records' bytes copied as bytes: a structured copy sets up a transfer per field
        out = self._buf.view(np.uint8)[n0 * _TRADE_SIZE:k * _TRADE_SIZE].copy().view(TRADE_DTYPE)
        self.state[lay.S_N_TRADES] = 0
        if len(out):
            self._closed.append(out)
        return out

    def _n_closed(self) -> int:
        return sum(len(t) for t in self._closed)

    @staticmethod
    def _check(status: int) -> None:
        if status == lay.STATUS_TRADE_BUFFER_FULL:
            raise HaltTradingError("trade buffer overflow in the step kernel")
        if status != lay.STATUS_OK:
            raise HaltTradingError(f"step kernel returned status {status}")
