"""Paper trading: a Nautilus ``TradingNode`` with the sandbox venue and a local replay feed.

``ReplayDataClient`` replays a recorded bars file as live data in (scaled) real time: for each
bar, one quote per asset at its close (the sandbox matches on quotes, FACTS) and the scan the
``IncrementalScanner`` computes from those closes (§14.4 live mode: published as it arrives,
deduplicated and age-checked by the strategy). The first ``warmup`` bars are replayed without
pacing, as a live node would backfill history before trading, and so is a restarted session's
rerun of the bars its ledger already covers (``unpaced``).

A bar is sent only once the previous one is done with: its scan processed by the strategy and
every order it sent filled or closed (``settled``). The sandbox fills a market order at the
quotes it has seen, so this keeps each fill at its own bar's quotes whatever the pacing — a
rerun at full speed fills exactly as the paced session did. The replay also moves the session's
injected event clock to each bar's time before sending it. The real Binance USDT-M client
configs (keys from the environment, masked in every repr/str) are built by
``adapters.binance.config.binance_client_configs``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from nautilus_trader.adapters.sandbox.config import SandboxExecutionClientConfig
from nautilus_trader.adapters.sandbox.factory import SandboxLiveExecClientFactory
from nautilus_trader.common.providers import InstrumentProvider
from nautilus_trader.config import (
    LiveDataClientConfig,
    LoggingConfig,
    TradingNodeConfig,
)
from nautilus_trader.live.data_client import LiveMarketDataClient
from nautilus_trader.live.factories import LiveDataClientFactory
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.data import CustomData, QuoteTick
from nautilus_trader.model.objects import Price, Quantity

from dolphin.adapters.nautilus.instruments import VENUE, instrument_id
from dolphin.adapters.nautilus.scan_driver import ScanInput
from dolphin.adapters.nautilus.scan_feed import QUOTE_SIZE, SCAN_CLIENT, SCAN_DATA_TYPE, ScanData
from dolphin.core.clock import SimulatedClock
from dolphin.core.errors import BadInputError
from dolphin.core.io import read_parquet
from dolphin.scanner.scanner import IncrementalScanner

REPLAY_CLIENT = SCAN_CLIENT.value
SANDBOX_CLIENT = "BINANCE"
#: Longest wait for a bar to settle before the next one is sent anyway (counted).
SETTLE_TIMEOUT_S = 5.0


def load_closes(path: str | Path) -> pd.DataFrame:
    """Return the bars file's REAL closes on a regular grid (NaN where a symbol had no bar).

    A live feed sends nothing for a symbol without a bar: the replay does the same (the live
    scanner carries its last close forward, the engine sees no price and does not trade it).
    """
    try:
        bars = read_parquet(path, columns=["timestamp", "symbol", "close"])
    except (OSError, ValueError, KeyError) as exc:  # missing file, not parquet, missing column
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadInputError(f"cannot read replay bars ({first})", source=str(path)) from None
    wide = bars.pivot(index="timestamp", columns="symbol", values="close").sort_index()
    wide.columns = wide.columns.astype(str)
    step = wide.index.to_series().diff().mode().iloc[0]
    return wide.reindex(pd.date_range(wide.index[0], wide.index[-1], freq=step))


def quote_tick(cache, sym: str, close: float, now: int, spread_ticks: float) -> QuoteTick | None:
    """The quote a replayed close becomes: ``spread_ticks`` exchange ticks wide around it,
    deep enough for any order (None without an instrument or a real close)."""
    inst = cache.instrument(instrument_id(sym))
    if inst is None or not np.isfinite(close) or close <= 0:
        return None
    half = spread_ticks * float(inst.price_increment) / 2
    size = Quantity(QUOTE_SIZE, inst.size_precision)
    return QuoteTick(inst.id, Price(close - half, inst.price_precision),
                     Price(close + half, inst.price_precision), size, size, now, now)


class ReplayDataClientConfig(LiveDataClientConfig, frozen=True, kw_only=True):
    """Where and how fast to replay."""

    path: str
    speed: float = 60.0
    warmup: int = 900
    spread_ticks: float = 1.0


class ReplayDataClient(LiveMarketDataClient):
    """Replay recorded closes as quotes plus live scans, paced by ``speed``."""

    def __init__(self, loop, client_id, msgbus, cache, clock, config: ReplayDataClientConfig,
                 closes: pd.DataFrame) -> None:
        super().__init__(loop=loop, client_id=client_id, venue=VENUE, msgbus=msgbus, cache=cache,
                         clock=clock, instrument_provider=InstrumentProvider(), config=config)
        self.closes = closes
        self.speed = config.speed
        self.warmup = config.warmup
        self.spread_ticks = config.spread_ticks
        self.scanner = IncrementalScanner()
        self.bars_sent = 0
        self.finished = False
        self.settle_timeouts = 0
        self.event_clock: SimulatedClock | None = ReplayDataClientFactory.event_clock
        self.scans_done: Callable[[], int] | None = ReplayDataClientFactory.scans_done
        self.unpaced: Callable[[int], bool] = ReplayDataClientFactory.unpaced or (lambda i: False)
        self._task: asyncio.Task | None = None

    async def _connect(self) -> None:
        self._task = self._loop.create_task(self._replay())

    async def _disconnect(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _subscribe(self, command) -> None:  # scans are always streamed
        return None

    async def _subscribe_quote_ticks(self, command) -> None:  # quotes are always streamed
        return None

    def _quote(self, sym: str, close: float, now: int) -> QuoteTick | None:
        return quote_tick(self._cache, sym, close, now, self.spread_ticks)

    def emit_bar(self, i: int) -> None:
        """Publish bar ``i``: the quotes, then the scan computed from them."""
        ts = self.closes.index[i]
        row = self.closes.iloc[i]
        if self.event_clock is not None:
            self.event_clock.set(int(ts.value))
        now = self._clock.timestamp_ns()
        for sym, close in row.items():
            quote = self._quote(str(sym), float(close), now)
            if quote is not None:
                self._handle_data(quote)
        real = {str(k): float(v) for k, v in row.items() if np.isfinite(v) and v > 0}
        scan = self.scanner.update(ts, real)  # absent: carried forward by the scanner
        prices = np.array([real.get(str(s), np.nan) for s in self.closes.columns])
        inp = ScanInput(i, int(ts.value), int(scan["scan_number"]), float(scan["vel_div"]),
                        float(scan.get("v750_lambda_max_velocity", np.nan)),
                        bool(scan["data_gap"]), True, prices)
        self._handle_data(CustomData(SCAN_DATA_TYPE, ScanData(inp, now, now)))
        self.bars_sent += 1

    def _busy(self) -> bool:
        """True while the last bar's scan is unprocessed or one of its orders is open."""
        if self.scans_done is not None and self.scans_done() < self.bars_sent:
            return True
        cache = self._cache
        return bool(cache.orders_total_count() - cache.orders_closed_count())

    async def settled(self) -> bool:
        """Wait until the last bar is done with (``SETTLE_TIMEOUT_S`` at most); return whether
        it was."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_TIMEOUT_S
        while self._busy():
            if loop.time() > deadline:
                self.settle_timeouts += 1
                return False
            await asyncio.sleep(0.0005)
        return True

    async def _replay(self) -> None:
        bar_s = (self.closes.index[1] - self.closes.index[0]).total_seconds()
        ready = ReplayDataClientFactory.ready
        while ready is not None and not ready():  # a scan nobody receives would be lost
            await asyncio.sleep(0.01)
        for i in range(len(self.closes)):
            await self.settled()
            self.emit_bar(i)
            fast = i < self.warmup or self.unpaced(i)
            await asyncio.sleep(0 if fast else bar_s / self.speed)
        await self.settled()
        self.finished = True


class ReplayDataClientFactory(LiveDataClientFactory):
    """Builds the ``ReplayDataClient`` for a node (closes are loaded once per process)."""

    closes: pd.DataFrame | None = None
    last: ReplayDataClient | None = None
    event_clock: SimulatedClock | None = None  # the session's injected clock, set per bar
    scans_done: Callable[[], int] | None = None  # how many scans the strategy has processed
    unpaced: Callable[[int], bool] | None = None  # bar i is sent without pacing (a rerun)
    ready: Callable[[], bool] | None = None  # the strategy is subscribed: bars may be sent

    @staticmethod
    def create(loop, name, config, msgbus, cache, clock):  # type: ignore[override]
        """Return the replay client for ``config``."""
        from nautilus_trader.model.identifiers import ClientId

        closes = ReplayDataClientFactory.closes
        if closes is None:
            closes = load_closes(config.path)
        client = ReplayDataClient(loop, ClientId(name), msgbus, cache, clock, config, closes)
        ReplayDataClientFactory.last = client
        return client


def sandbox_node(replay: LiveDataClientConfig, *, initial: float, log_level: str = "ERROR",
                 loop: asyncio.AbstractEventLoop | None = None,
                 factory: type[LiveDataClientFactory] | None = None,
                 trader_id: str = "DOLPHIN-PAPER") -> TradingNode:
    """Build (not start) a TradingNode: a scan data client (the replay client, or ``factory``'s
    for ``replay``) + sandbox execution on BINANCE."""
    config = TradingNodeConfig(
        trader_id=trader_id,
        logging=LoggingConfig(log_level=log_level),
        data_clients={REPLAY_CLIENT: replay},
        exec_clients={SANDBOX_CLIENT: SandboxExecutionClientConfig(
            venue=VENUE.value, starting_balances=[f"{initial} USDT"], base_currency="USDT",
            oms_type="NETTING", account_type="MARGIN", default_leverage=Decimal(20),
        )},
        timeout_connection=10.0,
        timeout_disconnection=2.0,
        timeout_post_stop=1.0,
    )
    node = TradingNode(config=config, loop=loop)
    node.add_data_client_factory(REPLAY_CLIENT, factory or ReplayDataClientFactory)
    node.add_exec_client_factory(SANDBOX_CLIENT, SandboxLiveExecClientFactory)
    return node

