"""The mesh's trader: the Dolphin strategy on a TradingNode, fed by the store's scans.

The scan service publishes each scan to ``DOLPHIN_FEATURES["latest_eigen_scan"]``; the trader's
data client (``StoreFeed``) listens to that key. Each value is decoded, deduplicated on its scan
number (a re-delivery or an older scan is dropped and counted: Bible §14.4), journalled to the
ledger as a ``SCAN`` row and only then handed to the engine: first the quotes of its real
closes (the sandbox venue matches on them, as in ``dolphin paper``), then the scan itself
(``scan_driver.payload_scan_input``: no price, no trade). A scan's age is measured from its
publish time (the envelope's ``ts_ns``): an old one is warned about and counted
(``DolphinCore``'s staleness guard).

Restart = cold start (DESIGN.md). A trader started over an existing ledger verifies it and
reruns its journalled ``SCAN`` rows unpaced: every row it would write is checked against the
ledger's (``ledger.resume``), which rebuilds the engine, the sandbox venue and the ledger's fold
exactly, the venue is reconciled with the ledger, and only then are store scans taken again
(those not newer than the last journalled scan are dropped). A scan journalled but not acted on
when the process died is acted on by the rerun, and its rows are appended then. A ledger that
fails verification or a rerun that differs halts the trader (HIBERNATE: no orders) and its
heartbeat says FAULTED with the reason.

The trader runs until SIGTERM/SIGINT (Nautilus stops the node) or ``stop()``; positions are not
flattened at a stop: the next start resumes them from the ledger. Its heartbeat
(``DOLPHIN_HEARTBEAT["trader"]``) is written every ``heartbeat_s``: STARTING while the rerun
is behind the ledger, RUNNING, or FAULTED after a halt; its ``ledger_ok`` (the watchdog's Cat1
ledger sensor) is False after a halt or a rerun that differs from the ledger.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nautilus_trader.common.providers import InstrumentProvider
from nautilus_trader.config import LiveDataClientConfig
from nautilus_trader.live.data_client import LiveMarketDataClient
from nautilus_trader.live.factories import LiveDataClientFactory
from nautilus_trader.model.data import CustomData

from dolphin.adapters.nautilus.instruments import VENUE, build_instruments
from dolphin.adapters.nautilus.paper import load_closes, quote_tick, sandbox_node
from dolphin.adapters.nautilus.paper_session import (
    SessionLedger,
    await_run_end,
    check_same_session,
    file_sha256,
    prior_rows,
)
from dolphin.adapters.nautilus.parity_fills import venue_config
from dolphin.adapters.nautilus.scan_driver import DolphinCore, PostureSource, payload_scan_input
from dolphin.adapters.nautilus.scan_feed import SCAN_DATA_TYPE, ScanData
from dolphin.adapters.nautilus.strategy import DolphinStrategy, DolphinStrategyConfig
from dolphin.alpha.engine import NDAlphaEngine
from dolphin.backtest.replay import gate_id
from dolphin.core.clock import SimulatedClock
from dolphin.core.config import DolphinConfig
from dolphin.core.errors import DataError
from dolphin.ledger.tradelog import TradeLogger, session_name
from dolphin.risk.acb import AdaptiveCircuitBreaker
from dolphin.store.errors import MalformedValueError, StoreUnavailableError
from dolphin.store.features import touch_heartbeat
from dolphin.store.ports import EntryEvent, Store
from dolphin.store.schema import FEATURES, LATEST_EIGEN_SCAN, decode_value

log = logging.getLogger(__name__)

#: The scan payload fields the trader acts on: what a ``SCAN`` row journals.
SCAN_FIELDS = ("timestamp_ns", "scan_number", "vel_div", "v750_lambda_max_velocity", "data_gap")
#: Longest wait for the venue to finish the last scan's orders before the next scan.
SETTLE_TIMEOUT_S = 5.0
STARTUP_S = 15.0


def scan_row(payload: Mapping[str, Any], assets: list[str]) -> dict[str, Any]:
    """Return the ``SCAN`` row body of a published scan: its signal fields and the real closes
    of the trader's ``assets`` in their order (null: no real close)."""
    for name in ("timestamp_ns", "scan_number", "vel_div", "data_gap", "asset_prices"):
        if name not in payload:
            raise MalformedValueError("scan payload lacks a field", source=LATEST_EIGEN_SCAN,
                                      field=name)
    closes = payload["asset_prices"]
    if not isinstance(closes, Mapping):
        raise MalformedValueError("asset_prices is not an object", source=LATEST_EIGEN_SCAN,
                                  field="asset_prices", value=type(closes).__name__)
    body = {k: payload.get(k) for k in SCAN_FIELDS}
    body["asset_prices"] = {a: closes.get(a) for a in assets}
    return body


class StoreFeedConfig(LiveDataClientConfig, frozen=True, kw_only=True):
    """How the store feed quotes the venue."""

    spread_ticks: float = 1.0


@dataclass
class FeedHooks:
    """What the session gives the feed (set before the node builds it)."""

    store: Store
    assets: list[str]
    prior: list[tuple[int, dict[str, Any]]]  # the ledger's SCAN rows: (ts_event, body)
    journal: Callable[[int, dict[str, Any]], bool]
    scans_done: Callable[[], int]
    ready: Callable[[], bool]
    event_clock: SimulatedClock


class StoreFeed(LiveMarketDataClient):
    """Scans from the store (after the ledger's journalled ones) as quotes plus scan data."""

    hooks: FeedHooks | None = None
    last: StoreFeed | None = None

    def __init__(self, loop, client_id, msgbus, cache, clock, config: StoreFeedConfig) -> None:
        super().__init__(loop=loop, client_id=client_id, venue=VENUE, msgbus=msgbus, cache=cache,
                         clock=clock, instrument_provider=InstrumentProvider(), config=config)
        if StoreFeed.hooks is None:
            raise RuntimeError("StoreFeed built without session hooks")
        self.h = StoreFeed.hooks
        self.spread_ticks = config.spread_ticks
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.last_scan: int | None = None
        self.scans_sent = 0
        self.rerun_sent = 0
        self.duplicates = 0
        self.malformed = 0
        self.settle_timeouts = 0
        self.live = False
        self._reg: str | None = None
        self._task: asyncio.Task | None = None
        StoreFeed.last = self

    async def _connect(self) -> None:
        self._task = self._loop.create_task(self._run())

    async def _disconnect(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._reg is not None:
            try:
                self.h.store.map(FEATURES).remove_listener(self._reg)
            except StoreUnavailableError as exc:
                log.warning("scan listener not removed (%s)", exc)

    async def _subscribe(self, command) -> None:  # scans are always streamed
        return None

    async def _subscribe_quote_ticks(self, command) -> None:  # quotes are always streamed
        return None

    def _on_event(self, event: EntryEvent) -> None:
        """Store thread: hand the value to the node's loop, nothing else."""
        if event.value is not None:
            self._loop.call_soon_threadsafe(self.queue.put_nowait, event.value)

    def emit(self, body: dict[str, Any], published_ns: int) -> None:
        """Hand one journalled scan to the engine: its quotes, then the scan."""
        h = self.h
        inp = payload_scan_input(body, h.assets, self.scans_sent)
        h.event_clock.set(inp.bar_ts_ns)
        now = self._clock.timestamp_ns()
        for sym, close in zip(h.assets, inp.prices, strict=True):
            quote = quote_tick(self._cache, sym, float(close), now, self.spread_ticks)
            if quote is not None:
                self._handle_data(quote)
        self._handle_data(CustomData(SCAN_DATA_TYPE, ScanData(inp, now, min(published_ns, now))))
        self.last_scan = inp.scan_number
        self.scans_sent += 1

    def take(self, text: str) -> dict[str, Any] | None:
        """Decode a store value; return its ``SCAN`` body, or None (malformed, duplicate)."""
        try:
            record = decode_value(text, source=f"{FEATURES}[{LATEST_EIGEN_SCAN!r}]")
            body = scan_row(record.data, self.h.assets)
            number = int(body["scan_number"])
        except (MalformedValueError, TypeError, ValueError) as exc:
            self.malformed += 1
            log.warning("scan dropped: %s", exc)
            return None
        if self.last_scan is not None and number <= self.last_scan:
            self.duplicates += 1
            return None
        body["_published_ns"] = record.ts_ns
        return body

    def _busy(self) -> bool:
        if self.h.scans_done() < self.scans_sent:
            return True
        cache = self._cache
        return bool(cache.orders_total_count() - cache.orders_closed_count())

    async def settled(self) -> None:
        """Wait until the last scan is done with (``SETTLE_TIMEOUT_S`` at most)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_TIMEOUT_S
        while self._busy():
            if loop.time() > deadline:
                self.settle_timeouts += 1
                return
            await asyncio.sleep(0.0005)

    async def _run(self) -> None:
        h = self.h
        while not h.ready():  # a scan nobody receives would be lost
            await asyncio.sleep(0.01)
        for _, body in h.prior:  # the rerun: the journalled scans, unpaced
            await self.settled()
            self.emit(body, self._clock.timestamp_ns())
            self.rerun_sent += 1
        await self.settled()
        self.live = True
        fmap = h.store.map(FEATURES)
        while self._reg is None:
            try:
                self._reg = fmap.add_listener(self._on_event, key=LATEST_EIGEN_SCAN)
                current = fmap.get(LATEST_EIGEN_SCAN)
            except StoreUnavailableError as exc:
                log.warning("store unavailable (%s); retrying the scan listener", exc)
                await asyncio.sleep(1.0)
                continue
            if current is not None:
                self.queue.put_nowait(current)
        while True:
            text = await self.queue.get()
            body = self.take(text)
            if body is None:
                continue
            published = body.pop("_published_ns")
            if not h.journal(int(body["timestamp_ns"]), body):
                log.error("scan %s not journalled: the ledger refused it", body["scan_number"])
                continue
            self.emit(body, published)
            await self.settled()


class StoreFeedFactory(LiveDataClientFactory):
    """Builds the ``StoreFeed`` for a node."""

    @staticmethod
    def create(loop, name, config, msgbus, cache, clock):  # type: ignore[override]
        """Return the store feed for ``config``."""
        from nautilus_trader.model.identifiers import ClientId

        return StoreFeed(loop, ClientId(name), msgbus, cache, clock, config)


@dataclass
class TraderSettings:
    """What the mesh trader needs besides the engine config and the store."""

    bars: Path  # the instruments and the universe (the bars the mesh replays)
    ledger: Path
    log_dir: Path
    name: str = "trader"
    heartbeat_s: float = 1.0
    status_every_s: float = 5.0
    log_level: str = "ERROR"


def _beat(store: Store, name: str, state: str, reason: str | None, beats: int,
          **extra: Any) -> None:
    now = time.time_ns()
    try:
        touch_heartbeat(store, {"component": name, "state": state, "ts_ns": now,
                                "reason": reason, "beats": beats, **extra}, now)
    except StoreUnavailableError as exc:
        log.warning("heartbeat not written (%s)", exc)


def _release_arrow_memory() -> None:
    """Hand back to the OS what Arrow's allocator kept after the bars file was read."""
    try:
        import pyarrow
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        return
    pyarrow.default_memory_pool().release_unused()


def run_mesh_trader(config: DolphinConfig, s: TraderSettings, *, store: Store,
                    posture_source: PostureSource | None, mc_gate: Any = None,
                    echo: Callable[[str], None] = print,
                    stop: Callable[[], bool] = lambda: False,
                    on_order_latency: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Run the trader until the node is stopped (signal) or ``stop()``; return a summary.
    ``on_order_latency`` gets each live order's submit-to-fill time in seconds (metrics)."""
    closes = load_closes(s.bars)
    assets = list(closes.columns)
    first_ns = int(closes.index[0].value)
    cfg = venue_config(config, parity=False)
    instruments = build_instruments({a: closes[a].to_numpy(dtype=float) for a in assets})
    del closes  # only the universe, the instruments and the first bar time are kept
    _release_arrow_memory()
    identity = {"config_id": config.id, "venue_config_id": cfg.id, "assets": assets,
                "feed": "store", "bars_sha256": file_sha256(s.bars),
                "forewarner": gate_id(mc_gate), "supervised": posture_source is not None}
    prior = prior_rows(s.ledger)
    if prior:
        check_same_session(prior, identity, s.ledger)
    scans = [(r.ts_event, dict(r.body)) for r in prior if r.kind == "SCAN"]
    echo(f"trader: ledger {s.ledger}: " + (f"{len(prior):,} rows verified, rerunning "
                                           f"{len(scans):,} journalled scans" if prior
                                           else "new session"))
    if prior and not any(r.kind == "CONFIG" for r in prior):
        raise DataError("ledger holds rows but no CONFIG row", source=str(s.ledger))
    event_clock = SimulatedClock(first_ns)
    core = DolphinCore(NDAlphaEngine(cfg, assets, mc_gate=mc_gate), posture_source=posture_source,
                       acb=AdaptiveCircuitBreaker(cfg.acb), live_mode=True)
    session = session_name()
    tlog = TradeLogger(s.log_dir, {"config_id": config.id, "venue_config_id": cfg.id,
                                   "config": cfg.to_dict(), "feed": "store",
                                   "bars": str(s.bars), "assets": assets, "session": session,
                                   "resumed_rows": len(prior)}, session=session)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    sl = SessionLedger(s.ledger, prior, store, event_clock.now_ns,
                       direction=cfg.alpha.direction, session=session)
    sl.start(session, core, config=config.to_dict(), initial_capital=cfg.alpha.initial_capital,
             bars=str(s.bars), **identity)
    StoreFeed.hooks = FeedHooks(
        store=store, assets=assets, prior=scans,
        journal=lambda ts, body: sl.recorder.scan(ts, body),
        scans_done=lambda: strategy.scans_done, ready=lambda: strategy.is_running,
        event_clock=event_clock)
    node = sandbox_node(StoreFeedConfig(), initial=cfg.alpha.initial_capital,
                        log_level=s.log_level, loop=loop, factory=StoreFeedFactory,
                        trader_id="DOLPHIN-MESH")
    node.build()
    for inst in instruments.values():
        node.kernel.cache.add_instrument(inst)
    strategy = DolphinStrategy(
        DolphinStrategyConfig(strategy_id="DOLPHIN-MESH-001", subscribe_quotes=True,
                              record_equity=False),
        core, store=store, trade_logger=tlog, recorder=sl.recorder,
        event_clock=event_clock.now_ns, view=sl.views.view,
    )
    strategy.on_order_latency = on_order_latency
    node.trader.add_strategy(strategy)
    try:
        loop.run_until_complete(_drive(node, strategy, sl, s, store, echo, stop))
    finally:
        node.dispose()
        loop.close()
        sl.close()
        StoreFeed.hooks = None
    feed = StoreFeed.last
    mismatch = sl.resuming.finish() if sl.resuming is not None else None
    return {"session": session, "resumed_rows": len(prior), "rerun_scans": len(scans),
            "scans": feed.scans_sent if feed is not None else 0,
            "duplicates": feed.duplicates if feed is not None else 0,
            "trades": len(strategy.trips.done), "open_positions": len(strategy.trips.open),
            "capital": core.engine.capital, "posture": core.posture,
            "rerun_mismatch": mismatch.describe() if mismatch is not None else None,
            "halted": strategy.halt_reason or None, "stale_scans": core.stale_scans}


def _status(strategy: DolphinStrategy, feed: StoreFeed | None) -> str:
    core = strategy.core
    pos = ", ".join(f"{t.asset} {'SHORT' if t.direction < 0 else 'LONG'}"
                    for t in strategy.trips.open.values()) or "flat"
    return (f"[{core.current_date}] posture={core.posture} position={pos} "
            f"capital={core.engine.capital:,.2f} trades={len(strategy.trips.done)} "
            f"scans={feed.scans_sent if feed else 0} "
            f"live={'yes' if feed is not None and feed.live else 'no'}")


async def _drive(node, strategy: DolphinStrategy, sl: SessionLedger, s: TraderSettings,
                 store: Store, echo: Callable[[str], None], stop: Callable[[], bool]) -> None:
    run = asyncio.ensure_future(node.run_async())
    t0 = time.monotonic()
    while not node.kernel.trader.is_running and time.monotonic() - t0 < STARTUP_S:
        await asyncio.sleep(0.05)
    beats, last_status = 0, 0.0
    while node.kernel.trader.is_running and not stop():
        feed = StoreFeed.last
        if strategy.halted:
            state, reason = "FAULTED", strategy.halt_reason
        elif sl.rerunning or feed is None or not feed.live:
            state, reason = "STARTING", "rerunning the ledger's scans"
        else:
            state, reason = "RUNNING", None
        beats += 1
        extra = {"scans": feed.scans_sent if feed else 0, "trades": len(strategy.trips.done),
                 "capital": strategy.core.engine.capital,
                 "ledger_ok": not strategy.halted and (sl.resuming is None or sl.resuming.ok)}
        await asyncio.get_running_loop().run_in_executor(
            None, lambda st=state, rs=reason, b=beats, x=extra: _beat(store, s.name, st, rs, b,
                                                                      **x))
        if time.monotonic() - last_status >= s.status_every_s:
            echo(_status(strategy, feed))
            last_status = time.monotonic()
        await asyncio.sleep(s.heartbeat_s)
    if node.kernel.trader.is_running:
        await node.stop_async()
    else:  # Nautilus's signal handler stopped the node: let its stop finish
        stopping = [t for t in asyncio.all_tasks() if t is not run
                    and getattr(t.get_coro(), "__qualname__", "").endswith("stop_async")]
        if stopping:
            await asyncio.wait(stopping, timeout=10.0)
    _beat(store, s.name, "STOPPED", None, beats + 1,
          ledger_ok=not strategy.halted and (sl.resuming is None or sl.resuming.ok))
    await await_run_end(run, 10.0)  # never cancelled while it drains: no empty [ERROR] line
