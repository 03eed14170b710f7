"""The parity cost model and the internal replay that fills under it (no Nautilus imports).

Parity (``--parity``) is one cost model both engines can express exactly: market orders fill at
the bar's close, both legs pay the taker fee on their own filled notional (what a venue charges),
no SmartPlacer fees, no slippage, no OB edge. Quantities are rounded to ``PARITY_SIZE_PRECISION``
decimals on both sides. The internal driver steps the same ``DolphinCore`` the Nautilus strategy
uses, simulates those fills, and feeds the resulting balance back to the engine after each close
exactly as the strategy does with the Nautilus account — so the two runs can differ only where
the venues' fills differ.
"""

from __future__ import annotations

import pandas as pd

from dolphin.alpha.engine import NDAlphaEngine
from dolphin.alpha.nb import TAKER_FEE
from dolphin.backtest.replay import ReplayResult, validate_scans
from dolphin.core.config import DolphinConfig
from dolphin.execution.core import DolphinCore, OrderIntent, ScanInput, scan_inputs
from dolphin.execution.tradelog import RoundTrips
from dolphin.features.exf import ExfTable
from dolphin.risk.acb import AdaptiveCircuitBreaker

PARITY_SIZE_PRECISION = 8


def venue_config(config: DolphinConfig, *, parity: bool) -> DolphinConfig:
    """Return the engine config a fill-based driver runs: SP fees and slippage off (the venue
    charges the real costs, Bible §8.3); parity also drops the simulated OB edge."""
    overrides: dict[str, bool] = {"use_sp_fees": False, "use_sp_slippage": False}
    if parity:
        overrides["use_ob_edge"] = False
    return config.replace(**overrides)


class ParityFills:
    """Fill intents at the scan's closes with the taker fee; track the account balance."""

    def __init__(self, core: DolphinCore, initial: float, fee_rate: float = TAKER_FEE) -> None:
        self.core = core
        self.balance = initial
        self.fee_rate = fee_rate
        self.trips = RoundTrips()

    def fill(self, intent: OrderIntent, scan: ScanInput) -> None:
        """Fill one intent at the scan close (a close fills the open trip's whole quantity)."""
        price = float(scan.prices[self.core.engine.assets.index(intent.asset)])
        if intent.action == "OPEN":
            qty = round(intent.notional / intent.ref_price, PARITY_SIZE_PRECISION)
            side = intent.direction
        else:
            trip = self.trips.open[intent.asset]
            qty, side = trip.qty, -trip.direction
        fee = qty * price * self.fee_rate
        self.balance -= fee
        done = self.trips.on_fill(intent.asset, side, qty, price, fee, scan.bar_ts_ns,
                                  scan.bar_index, intent.reason)
        if done is not None:
            self.balance += done.direction * (done.exit_cost - done.entry_cost)
            self.core.sync_capital(self.balance)

    def mark(self, scan: ScanInput) -> float:
        """Return the balance plus the open trip's unrealised PnL at the scan's closes."""
        eq = self.balance
        for asset in self.trips.open:
            price = float(scan.prices[self.core.engine.assets.index(asset)])
            eq += self.trips.unrealized(asset, price)
        return eq


def run_parity_replay(
    scans: pd.DataFrame,
    config: DolphinConfig,
    *,
    exf: ExfTable | None = None,
    source: str = "scans",
) -> ReplayResult:
    """Replay ``scans`` internally under the parity cost model; same outputs as the replay."""
    from dolphin.execution.results import assemble

    assets = validate_scans(scans, source)
    cfg = venue_config(config, parity=True)
    core = DolphinCore(NDAlphaEngine(cfg, assets), acb=AdaptiveCircuitBreaker(cfg.acb, exf))
    fills = ParityFills(core, cfg.alpha.initial_capital)
    equity = []
    for scan in scan_inputs(scans, assets):
        outcome = core.on_scan(scan)
        for intent in outcome.intents:
            fills.fill(intent, scan)
        equity.append((scan.bar_ts_ns, fills.mark(scan), bool(fills.trips.open)))
    core.close_day()
    return assemble(scans, core, fills.trips.done, equity, cfg, cfg.alpha.initial_capital)
