"""``DolphinStrategy``: the thin Nautilus wire from scans to ``NDAlphaEngine`` to orders (§14).

All decisions are the engine's; the per-scan protocol (ACB handoff, date boundary, posture,
HIBERNATE guard, gate snapshot, live dedup) is ``DolphinCore``. This class only translates:
scan data in, order intents out as market orders, fills back into the core (capital from the
Nautilus account) and into the independent trade logger.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.events import OrderFilled, PositionClosed
from nautilus_trader.trading.strategy import Strategy

from dolphin.adapters.nautilus.instruments import VENUE, instrument_id
from dolphin.adapters.nautilus.scan_driver import DolphinCore, OrderIntent, ScanInput, StepOutcome
from dolphin.adapters.nautilus.scan_feed import SCAN_CLIENT, SCAN_DATA_TYPE, ScanData
from dolphin.ledger.recorder import SessionRecorder
from dolphin.ledger.tradelog import RoundTrips, TradeLogger
from dolphin.ledger.views import LedgerView
from dolphin.store.ports import Store, StoreMap
from dolphin.store.schema import ACB_BOOST, FEATURES

log = logging.getLogger(__name__)


class DolphinStrategyConfig(StrategyConfig, frozen=True):
    """Nautilus-side settings of the strategy (the engine's own config is ``DolphinConfig``)."""

    subscribe_quotes: bool = False
    record_equity: bool = True


class DolphinStrategy(Strategy):
    """Own a ``DolphinCore`` (and through it the engine); trade its intents on Binance perps."""

    def __init__(
        self,
        config: DolphinStrategyConfig,
        core: DolphinCore,
        *,
        store: Store | None = None,
        trade_logger: TradeLogger | None = None,
        on_scan_done: Callable[[DolphinStrategy, ScanInput, StepOutcome], None] | None = None,
        funding_sink: Callable[[float], None] | None = None,
        recorder: SessionRecorder | None = None,
        event_clock: Callable[[], int] | None = None,
        view: LedgerView | None = None,
    ) -> None:
        super().__init__(config)
        self.core = core
        self.recorder = recorder  # the session's ledger (``ledger.recorder``), if any
        # The session's injected clock for event times (a replay: the bar being replayed);
        # None: the node's clock.
        self.event_clock = event_clock
        self.view = view  # the ledger's fold, kept current by the recorder (reconciliation)
        self.halt_reason = ""  # set on an invariant break: nothing more is sent
        self.scans_done = 0  # scans handled (the replay waits for each before the next bar)
        self._reconciled = False
        self.funding_sink = funding_sink  # books a bar's funding payment on the venue account
        self.store = store
        self.trade_logger = trade_logger
        self.on_scan_done = on_scan_done
        self.trips = RoundTrips()
        self.equity: list[tuple[int, float, bool]] = []
        self.orders_submitted = 0
        self.denials = 0  # entries the risk gate refused
        self._acb_map: StoreMap | None = None
        self._acb_reg: str | None = None
        # order latency: the decision's submit to the venue's fill, on the monotonic clock
        self._sent_ns: dict[str, int] = {}
        self.on_order_latency: Callable[[float], None] | None = None
        self._bar_of_order: dict[str, tuple[int, str]] = {}
        self._scan: ScanInput | None = None

    # ------------------------------------------------------------ §14 names, for callers/tests
    @property
    def engine(self):
        """The ``NDAlphaEngine`` the core drives."""
        return self.core.engine

    @property
    def posture(self) -> str:
        """The posture in force for the current day."""
        return self.core.posture

    def event_ns(self) -> int:
        """Return the event time now on the session's injected clock."""
        return self.event_clock() if self.event_clock is not None else self.clock.timestamp_ns()

    @property
    def rerunning(self) -> bool:
        """True while a restarted session is regenerating the rows its ledger already holds."""
        led = self.recorder.ledger if self.recorder is not None else None
        return getattr(led, "caught_up", True) is False

    @property
    def halted(self) -> bool:
        """True after an invariant break (a rerun that differs from the ledger, a venue that
        disagrees with it): the trader sends nothing more."""
        if not self.halt_reason and self.recorder is not None:
            self._note_mismatch()
        return bool(self.halt_reason)

    def _note_mismatch(self) -> None:
        mismatch = getattr(self.recorder.ledger, "mismatch", None) if self.recorder else None
        if mismatch is not None:
            self.halt("ledger mismatch: " + mismatch.describe())

    def halt(self, reason: str) -> None:
        """Cat1 invariant break: refuse to trade from now on, posture HIBERNATE, reason logged."""
        if not self.halt_reason:
            self.halt_reason = reason
            self.core.posture = "HIBERNATE"
            self.log.error(f"invariant break (Cat1): {reason}; HIBERNATE, refusing to trade")

    def reconcile(self) -> str:
        """Compare the venue's open positions and balance with the ledger's; return why they
        disagree ('' when they agree)."""
        if self.view is None:
            return ""
        venue: dict[str, float] = {}
        for position in self.cache.positions_open(strategy_id=self.id):
            asset = position.instrument_id.symbol.value.removesuffix("-PERP")
            venue[asset] = venue.get(asset, 0.0) + position.signed_qty
        ledger = self.view.net_positions()
        for asset in sorted(set(venue) | set(ledger)):
            a, b = venue.get(asset, 0.0), ledger.get(asset, 0.0)
            if abs(a - b) > 1e-9 * max(abs(a), abs(b), 1.0):
                return f"position {asset}: venue {a:g}, ledger {b:g}"
        account = self.portfolio.account(VENUE)
        balance = account.balance_total(USDT) if account is not None else None
        want = self.view.balance
        if balance is None or want != want:
            return f"balance: venue {balance}, ledger {want}"
        got = balance.as_double()
        if abs(got - want) > 1e-6 * max(abs(want), 1.0):
            return f"balance: venue {got:.8f} USDT, ledger {want:.8f} USDT"
        return ""

    def _on_acb_event(self, event) -> None:
        """Store listener callback (runs on the store's thread): §14.2 park only."""
        self.core.on_acb_event(event)

    # ------------------------------------------------------------ lifecycle
    def on_start(self) -> None:
        """Sync capital from the account, attach the ACB listener, subscribe to scans."""
        self.sync_capital()
        if self.store is not None:
            try:
                self._acb_map = self.store.map(FEATURES)
                self._acb_reg = self._acb_map.add_listener(self._on_acb_event, key=ACB_BOOST)
            except Exception as exc:  # store down at start: run on daily ACB only
                self.log.warning(f"ACB listener not attached ({exc}); daily ACB only")
        self.subscribe_data(SCAN_DATA_TYPE, client_id=SCAN_CLIENT)
        if self.config.subscribe_quotes:
            for sym in self.core.engine.assets:
                self.subscribe_quote_ticks(instrument_id(sym))

    def on_stop(self) -> None:
        """Close the day, detach from the store, close the trade log; never raise."""
        if self.core.current_date is not None:
            self.core.close_day()
        if self._acb_map is not None and self._acb_reg is not None:
            try:
                self._acb_map.remove_listener(self._acb_reg)
            except Exception as exc:  # store gone at stop is not fatal (§18.3 on_stop)
                self.log.warning(f"ACB listener not removed ({exc})")
        if self.trade_logger is not None:
            self.trade_logger.close()
        self.core.processed_dates.clear()

    # ------------------------------------------------------------ data
    def on_data(self, data: Any) -> None:
        """Step the engine on a scan and send the orders it implies."""
        payload = getattr(data, "data", data)
        if not isinstance(payload, ScanData):
            return
        try:
            self._on_scan(payload)
        finally:
            self.scans_done += 1

    def _on_scan(self, payload: ScanData) -> None:
        scan = payload.scan
        self._scan = scan
        if self.halted:
            return
        if not self._reconciled and not self.rerunning:
            self._reconciled = True  # the venue has done everything the ledger says
            why = self.reconcile()
            if why:
                self.halt(f"venue and ledger disagree ({why})")
                return
        age_s = (self.clock.timestamp_ns() - payload.ts_init) / 1e9 if self.core.live_mode else 0.0
        outcome = self.core.on_scan(scan, age_s=age_s)
        self._log_denials(outcome)
        self._record(self.event_ns(), scan, outcome)
        if outcome.funding_paid and self.funding_sink is not None:
            self.funding_sink(outcome.funding_paid)  # before a close syncs the capital
        for intent in outcome.intents:
            self.execute(intent, scan)
        if self.config.record_equity:
            self.equity.append((payload.ts_event, self.mark_to_market(scan), bool(self.trips.open)))
        if self.on_scan_done is not None:
            self.on_scan_done(self, scan, outcome)
        if self.core.live_mode:
            self.core.after_scan(scan)  # idle time: a day boundary ahead is crossed now

    def _record(self, ts_ns: int, scan: ScanInput, outcome: StepOutcome) -> None:
        """Write the scan's posture, denials, funding and decision to the ledger (orders:
        ``execute``)."""
        r = self.recorder
        if r is None:
            return
        r.posture(ts_ns, self.core.posture)
        if outcome.denials is not None and len(outcome.denials):
            r.denials(outcome.denials, self.engine.assets)
        if outcome.funding_paid:
            r.funding(ts_ns, outcome.funding_paid)
        if not outcome.skipped:
            r.decision(ts_ns, self.core.total_bars - 1, scan.scan_number, scan.vel_div,
                       self.core.posture, len(outcome.intents))

    def _log_denials(self, outcome: StepOutcome) -> None:
        """Record each entry the risk gate refused (no order was sent for it)."""
        from dolphin.core.records import DENIAL_REASONS

        if outcome.denials is None:
            return
        for d in outcome.denials:
            self.denials += 1
            reason = DENIAL_REASONS[int(d["reason"])]
            self.log.warning(f"entry denied ({reason}): {self.engine.assets[int(d['asset'])]} "
                             f"notional {float(d['notional']):.2f}")
            if self.trade_logger is not None and not self.rerunning:
                price = self.engine.last_price(int(d["asset"]))
                self.trade_logger.log(ts_ns=int(d["ts"]), event="DENIED",
                                      asset=self.engine.assets[int(d["asset"])],
                                      side="BUY" if d["direction"] > 0 else "SELL",
                                      price=price, qty=float(d["notional"]) / price,
                                      reason=reason)

    def execute(self, intent: OrderIntent, scan: ScanInput) -> None:
        """Turn one intent into a market order (close: the whole net position); the ledger row
        is written first (a durable append), at the node clock's time."""
        if self.halted:
            return
        if self.recorder is not None and not self.recorder.order(
            self.event_ns(), intent.action, intent.asset, intent.direction, intent.notional,
            intent.reason,
        ):
            self._note_mismatch()  # the recorder refused the row: the rerun differs
            return
        iid = instrument_id(intent.asset)
        self._sent_ns[intent.asset] = time.monotonic_ns()
        if intent.action == "CLOSE":
            for position in self.cache.positions_open(instrument_id=iid, strategy_id=self.id):
                self.close_position(position, tags=[f"reason={intent.reason}"])
                self.orders_submitted += 1
            self._bar_of_order[intent.asset] = (scan.bar_index, intent.reason)
            return
        instrument = self.cache.instrument(iid)
        qty = instrument.make_qty(intent.notional / intent.ref_price)
        if qty.as_double() <= 0:
            self.log.warning(f"{intent.asset}: notional {intent.notional:.2f} below one lot")
            return
        side = OrderSide.SELL if intent.direction < 0 else OrderSide.BUY
        self.submit_order(self.order_factory.market(iid, side, qty))
        self.orders_submitted += 1
        self._bar_of_order[intent.asset] = (scan.bar_index, "")

    # ------------------------------------------------------------ fills
    def on_order_filled(self, event: OrderFilled) -> None:
        """Pair the fill into a round trip and log it independently."""
        asset = event.instrument_id.symbol.value.removesuffix("-PERP")
        side = 1 if event.order_side == OrderSide.BUY else -1
        bar, reason = self._bar_of_order.get(asset, (-1, ""))
        sent = self._sent_ns.pop(asset, None)
        if sent is not None and self.on_order_latency is not None and not self.rerunning:
            self.on_order_latency((time.monotonic_ns() - sent) / 1e9)
        qty, px = event.last_qty.as_double(), event.last_px.as_double()
        fee = event.commission.as_double()
        self.trips.on_fill(asset, side, qty, px, fee, event.ts_event, bar, reason)
        if self.recorder is not None:
            self.recorder.fill(self.event_ns(), asset, side, qty, px, fee)
        if self.trade_logger is not None and not self.rerunning:
            self.trade_logger.log(ts_ns=self.event_ns(), event="FILL", asset=asset,
                                  side="BUY" if side > 0 else "SELL", qty=qty, price=px,
                                  commission=fee, order_id=event.client_order_id.value,
                                  reason=reason)

    def on_position_closed(self, event: PositionClosed) -> None:
        """The venue's account is the truth: feed its balance back as the engine's capital."""
        balance = self.sync_capital()
        if self.recorder is not None and balance is not None:
            self.recorder.capital(self.event_ns(), balance)

    def sync_capital(self) -> float | None:
        """Set the engine's capital to the account's USDT balance; return it."""
        account = self.portfolio.account(VENUE)
        if account is None:
            return None
        balance = account.balance_total(USDT)
        if balance is None:
            return None
        self.core.sync_capital(balance.as_double())
        return balance.as_double()

    def mark_to_market(self, scan: ScanInput) -> float:
        """Return capital plus the open trip's unrealised PnL at its last real close, less its
        entry fee and the funding it has paid (the engine's ``equity_nb``)."""
        engine = self.core.engine
        eq = engine.capital - engine.funding_accrued
        for asset, trip in self.trips.open.items():
            price = engine.last_price(engine.assets.index(asset))
            eq += self.trips.unrealized(asset, price) - trip.entry_fee
        return eq
