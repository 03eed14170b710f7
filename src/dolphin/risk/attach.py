"""Survival controller and pre-trade gate attached to the replay, one update per bar.

The replay has no order book, heartbeat or ledger, so only the sensors it can honestly drive are
registered (a registered sensor without readings would read as maximally stale):

- capital (Cat5): drawdown of the replay's own mark-to-market equity from its running peak, as of
  the previous bar's close (no look-ahead);
- structural (Cat2): the day's MC-Forewarner status from the engine's gate;
- environmental (Cat4): the day's DVOL from the factor table, registered only when the table holds
  DVOL for at least one replayed day; a day without DVOL then reads as unknown (a shock).

Before each bar the posture goes to the engine (§11.7) and the pre-trade pipeline judges the
largest entry the kernel could place on that bar (capital x fraction x the posture's leverage cap);
a denial blocks entries for that bar. Orders for the rate limit are the entries and exits seen in
the bar-by-bar position flag.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from dolphin.alpha.engine import NDAlphaEngine
from dolphin.core.config import DolphinConfig
from dolphin.risk.pretrade import OrderIntent, RiskContext, pre_trade
from dolphin.risk.sensors import (
    MC_STATUS_CODE,
    capital_sensors,
    environmental_sensors,
    structural_sensors,
)
from dolphin.risk.survival import SensorRegistry, SurvivalController

_NS_PER_MIN = 60_000_000_000


class ReplaySurvival:
    """Per-bar survival and pre-trade driver for ``run_replay``; keeps the per-bar trace."""

    def __init__(self, config: DolphinConfig, n_bars: int, *, with_dvol: bool) -> None:
        cfg = config.survival
        sensors = [*capital_sensors(cfg), structural_sensors(cfg)[0]]
        if with_dvol:
            sensors += environmental_sensors(cfg)
        self.controller = SurvivalController(cfg, SensorRegistry(sensors))
        self.config = config
        self.rm = np.full(n_bars, math.nan)
        self.posture = np.empty(n_bars, dtype=object)
        self.block = np.full(n_bars, "", dtype=object)
        self._peak = config.alpha.initial_capital
        self._equity = config.alpha.initial_capital
        self._was_in = False
        self._orders: deque[int] = deque()

    def run_day(
        self,
        engine: NDAlphaEngine,
        lo: int,
        bars: tuple[np.ndarray, ...],
        funding,
        dvol: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run the day's bars (from absolute bar ``lo``) one at a time; return equity, exposure.

        ``bars`` are the day's ``(ts, vel_div, prices, gap, vol_ok)`` rows and ``funding`` their
        ``FundingEvents`` (re-based to the day's first bar).
        """
        ts, vd, prices, gap, vol_ok = bars
        n = len(ts)
        equity = np.empty(n)
        in_pos = np.zeros(n, dtype=np.bool_)
        mc = MC_STATUS_CODE.get(engine.mc_status, math.nan)
        for j in range(n):
            i = lo + j
            self._before_bar(engine, i, int(ts[j]), dvol, mc)
            s = slice(j, j + 1)
            eq, ip = engine.run_bars(i, ts[s], vd[s], prices[s], gap[s], vol_ok[s],
                                     funding=funding.slice(j, j + 1))
            equity[j], in_pos[j] = eq[0], ip[0]
            self._after_bar(float(eq[0]), bool(ip[0]), int(ts[j]))
        return equity, in_pos

    def _before_bar(self, engine: NDAlphaEngine, i: int, ts_ns: int, dvol: float, mc: float):
        dd = 1.0 - self._equity / self._peak if self._peak > 0 else math.nan
        out = self.controller.update({"drawdown": dd, "dvol": dvol, "mc_status": mc}, ts_ns)
        engine.set_posture(out.posture)
        self.rm[i], self.posture[i] = out.rm, out.posture
        if engine.in_position:  # one position at a time: no entry can happen on this bar
            engine.set_entry_block(False)
            return
        verdict = pre_trade(
            self._largest_entry(engine, out.posture),
            self._context(engine, ts_ns, out.posture),
            self.config.pretrade,
        )
        engine.set_entry_block(not verdict.allowed)
        if verdict.denial is not None:
            self.block[i] = verdict.denial.value

    def _largest_entry(self, engine: NDAlphaEngine, posture: str) -> OrderIntent:
        a = self.config.alpha
        cap = a.stalker_max_leverage if posture == "STALKER" else a.abs_max_leverage
        side = -1 if a.direction == "short" else 1
        return OrderIntent("<next entry>", side, engine.capital * a.fraction * cap)

    def _context(self, engine: NDAlphaEngine, ts_ns: int, posture: str) -> RiskContext:
        while self._orders and self._orders[0] <= ts_ns - _NS_PER_MIN:
            self._orders.popleft()
        return RiskContext(ts_ns, posture, engine.capital, {}, tuple(self._orders))

    def _after_bar(self, equity: float, in_pos: bool, ts_ns: int) -> None:
        if in_pos != self._was_in:
            self._orders.append(ts_ns)
        self._was_in = in_pos
        if math.isfinite(equity):
            self._equity = equity
            self._peak = max(self._peak, equity)

    def trace(self) -> dict[str, np.ndarray]:
        """Return the per-bar columns added to the equity table."""
        return {"rm": self.rm, "posture": self.posture.astype(str), "entry_block": self.block}
