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

from dolphin.adapters.nautilus.scan_driver import DolphinCore, OrderIntent, ScanInput, scan_inputs
from dolphin.alpha.engine import NDAlphaEngine
from dolphin.alpha.interfaces import McGate, ObEngine
from dolphin.alpha.nb import TAKER_FEE
from dolphin.backtest.replay import ReplayResult, run_notes_metrics, scan_bar_ns
from dolphin.core.config import DolphinConfig
from dolphin.features.exf import ExfTable
from dolphin.features.funding import funding_events
from dolphin.ledger.tradelog import RoundTrips
from dolphin.risk.acb import AdaptiveCircuitBreaker
from dolphin.scanner.schema import validate_scans

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
        """Fill one intent at the asset's last real close (the scan's close on a real bar; a
        DATA_END / END_OF_DATA close on a bar without one fills at the last real close)."""
        price = self._price(intent.asset)
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

    def _price(self, asset: str) -> float:
        engine = self.core.engine
        return engine.last_price(engine.assets.index(asset))

    def book_funding(self, paid: float) -> None:
        """Take the bar's funding payment from the balance (the venue's funding transfer)."""
        self.balance -= paid

    def mark(self, scan: ScanInput) -> float:
        """Return the balance plus the open trip's unrealised PnL at its last real close."""
        eq = self.balance
        for asset in self.trips.open:
            eq += self.trips.unrealized(asset, self._price(asset))
        return eq


def run_parity_replay(
    scans: pd.DataFrame,
    config: DolphinConfig,
    *,
    exf: ExfTable | None = None,
    source: str = "scans",
    funding: pd.DataFrame | None = None,
    mc_gate: McGate | None = None,
    ob_engine: ObEngine | None = None,
) -> ReplayResult:
    """Replay ``scans`` internally under the parity cost model; same outputs as the replay
    (``ob_engine``: the engine's OB engine, as the Nautilus strategy's engine gets it)."""
    from dolphin.adapters.nautilus.fill_results import assemble

    assets = validate_scans(scans, source)
    cfg = venue_config(config, parity=True)
    core = DolphinCore(NDAlphaEngine(cfg, assets, mc_gate=mc_gate, ob_engine=ob_engine),
                       acb=AdaptiveCircuitBreaker(cfg.acb, exf))
    fills = ParityFills(core, cfg.alpha.initial_capital)
    equity = []
    ts = scans["timestamp"].to_numpy(dtype="datetime64[ns]").astype("int64")
    events = funding_events(funding, ts, scan_bar_ns(ts), assets)
    for scan in scan_inputs(scans, assets, events):
        outcome = core.on_scan(scan)
        fills.book_funding(outcome.funding_paid)  # before a close syncs the capital
        for intent in outcome.intents:
            fills.fill(intent, scan)
        equity.append((scan.bar_ts_ns, fills.mark(scan), bool(fills.trips.open)))
    core.close_day()
    result = assemble(scans, core, fills.trips.done, equity, cfg, cfg.alpha.initial_capital,
                      fills=fills.trips.fills(assets))
    result.metrics.update(run_notes_metrics(result.trades, funding, mc_gate, scans, config))
    return result
