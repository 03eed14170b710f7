"""Paper trading: a Nautilus ``TradingNode`` with the sandbox venue and a local replay feed.

``ReplayDataClient`` replays a recorded bars file as live data in (scaled) real time: for each
bar, one quote per asset at its close (the sandbox matches on quotes, FACTS) and the scan the
``IncrementalScanner`` computes from those closes (§14.4 live mode: published as it arrives,
deduplicated and age-checked by the strategy). The first ``warmup`` bars are replayed without
pacing, as a live node would backfill history before trading. The real Binance USDT-M client
configs (keys from the environment, masked in every repr/str) are built by
``adapters.binance.config.binance_client_configs``.
"""

from __future__ import annotations

import asyncio
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
from dolphin.core.errors import BadInputError
from dolphin.scanner.scanner import IncrementalScanner

REPLAY_CLIENT = SCAN_CLIENT.value
SANDBOX_CLIENT = "BINANCE"


def load_closes(path: str | Path) -> pd.DataFrame:
    """Return the bars file's REAL closes on a regular grid (NaN where a symbol had no bar).

    A live feed sends nothing for a symbol without a bar: the replay does the same (the live
    scanner carries its last close forward, the engine sees no price and does not trade it).
    """
    try:
        bars = pd.read_parquet(path, columns=["timestamp", "symbol", "close"])
    except (OSError, ValueError, KeyError) as exc:  # missing file, not parquet, missing column
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadInputError(f"cannot read replay bars ({first})", source=str(path)) from None
    wide = bars.pivot(index="timestamp", columns="symbol", values="close").sort_index()
    wide.columns = wide.columns.astype(str)
    step = wide.index.to_series().diff().mode().iloc[0]
    return wide.reindex(pd.date_range(wide.index[0], wide.index[-1], freq=step))


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
        inst = self._cache.instrument(instrument_id(sym))
        if inst is None or not np.isfinite(close) or close <= 0:
            return None
        half = self.spread_ticks * float(inst.price_increment) / 2
        size = Quantity(QUOTE_SIZE, inst.size_precision)
        return QuoteTick(inst.id, Price(close - half, inst.price_precision),
                         Price(close + half, inst.price_precision), size, size, now, now)

    def emit_bar(self, i: int) -> None:
        """Publish bar ``i``: the quotes, then the scan computed from them."""
        ts = self.closes.index[i]
        row = self.closes.iloc[i]
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

    async def _replay(self) -> None:
        bar_s = (self.closes.index[1] - self.closes.index[0]).total_seconds()
        for i in range(len(self.closes)):
            self.emit_bar(i)
            await asyncio.sleep(0 if i < self.warmup else bar_s / self.speed)
        self.finished = True


class ReplayDataClientFactory(LiveDataClientFactory):
    """Builds the ``ReplayDataClient`` for a node (closes are loaded once per process)."""

    closes: pd.DataFrame | None = None
    last: ReplayDataClient | None = None

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


def sandbox_node(replay: ReplayDataClientConfig, *, initial: float, log_level: str = "ERROR",
                 loop: asyncio.AbstractEventLoop | None = None) -> TradingNode:
    """Build (not start) a TradingNode: replay data client + sandbox execution on BINANCE."""
    config = TradingNodeConfig(
        trader_id="DOLPHIN-PAPER",
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
    node.add_data_client_factory(REPLAY_CLIENT, ReplayDataClientFactory)
    node.add_exec_client_factory(SANDBOX_CLIENT, SandboxLiveExecClientFactory)
    return node

