"""The survival controller attached to the replay, one update per bar (``backtest --survival``).

The replay has no order book, heartbeat or ledger, so only the sensors it can honestly drive are
registered (a registered sensor without readings would read as maximally stale):

- capital (Cat5): drawdown of the replay's own mark-to-market equity from its running peak, as of
  the previous bar's close (no look-ahead);
- structural (Cat2): the day's MC-Forewarner status from the engine's gate;
- environmental (Cat4): the day's DVOL from the factor table, registered only when the table holds
  DVOL for at least one replayed day; a day without DVOL then reads as unknown (a shock).

Before each bar the posture and Rm go to the engine (§11.7); the engine's risk gate
(``risk.gate``) then judges any entry the kernel decides on that bar, exactly as in the Nautilus
and paper drivers, and a refusal is recorded. The equity table gains ``rm``, ``posture`` and
``denial`` (the reason of an entry refused on that bar, empty otherwise).
"""

from __future__ import annotations

import math

import numpy as np

from dolphin.alpha.engine import NDAlphaEngine
from dolphin.alpha.session import hibernate_skips
from dolphin.core.config import DolphinConfig
from dolphin.core.records import DENIAL_REASONS
from dolphin.risk.sensors import (
    MC_STATUS_CODE,
    capital_sensors,
    environmental_sensors,
    structural_sensors,
)
from dolphin.risk.survival import SensorRegistry, SurvivalController


class ReplaySurvival:
    """Per-bar survival driver for ``run_replay``; keeps the per-bar trace."""

    def __init__(self, config: DolphinConfig, n_bars: int, *, with_dvol: bool) -> None:
        cfg = config.survival
        sensors = [*capital_sensors(cfg), structural_sensors(cfg)[0]]
        if with_dvol:
            sensors += environmental_sensors(cfg)
        self.controller = SurvivalController(cfg, SensorRegistry(sensors))
        self.config = config
        self.rm = np.full(n_bars, math.nan)
        self.posture = np.empty(n_bars, dtype=object)
        self.denial = np.full(n_bars, "", dtype=object)
        self._peak = config.alpha.initial_capital
        self._equity = config.alpha.initial_capital

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
            if hibernate_skips(engine):  # the §14 guard: a flat engine in HIBERNATE is not stepped
                equity[j] = engine.equity()
                self._after_bar(float(equity[j]))
                continue
            denied = engine.gate.n_denials
            # one bar at a time: step_bar gates the bar itself (no span to snapshot and audit)
            engine.step_bar(i, int(ts[j]), vd[j], prices[j], data_gap=bool(gap[j]),
                            vol_ok=bool(vol_ok[j]), funding=funding.bar(j))
            new = engine.gate.take_denials(denied)
            if len(new):
                self.denial[i] = DENIAL_REASONS[int(new["reason"][-1])]
            equity[j], in_pos[j] = engine.equity(), engine.in_position
            self._after_bar(float(equity[j]))
        return equity, in_pos

    def _before_bar(self, engine: NDAlphaEngine, i: int, ts_ns: int, dvol: float, mc: float):
        dd = 1.0 - self._equity / self._peak if self._peak > 0 else math.nan
        out = self.controller.update({"drawdown": dd, "dvol": dvol, "mc_status": mc}, ts_ns)
        engine.set_posture(out.posture)
        engine.set_rm(out.rm)
        self.rm[i], self.posture[i] = out.rm, out.posture

    def _after_bar(self, equity: float) -> None:
        if math.isfinite(equity):
            self._equity = equity
            self._peak = max(self._peak, equity)

    def trace(self) -> dict[str, np.ndarray]:
        """Return the per-bar columns added to the equity table."""
        return {"rm": self.rm, "posture": self.posture.astype(str), "denial": self.denial}
