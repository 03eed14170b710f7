"""NautilusTrader's own Binance USDT-M data client against the local exchange (run as a script).

Prints one JSON line: the counts of book deltas, quotes and trades the Nautilus strategy got,
the exchange's counters, and the best bid/ask of Nautilus's book next to the exchange's own at
the end of the tape.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from pathlib import Path

from dolphin.adapters.binance.local_exchange import LocalExchange
from dolphin.adapters.binance.wire import to_float


def serve(capture: Path, info: Path, box: list) -> None:
    async def main() -> None:
        ex = LocalExchange(captures=[capture], speed=60.0, exchange_info=info,
                           ping_interval_s=1.0, slow_client="wait")
        await ex.start()  # the tape starts at Nautilus's first WebSocket connection: however
        box.append(ex)  # long the node takes to build, it misses none of it
        await asyncio.Event().wait()

    asyncio.run(main())


def main(capture: Path, info: Path) -> None:
    box: list = []
    threading.Thread(target=serve, args=(capture, info, box), daemon=True).start()
    while not box:
        time.sleep(0.02)
    ex = box[0]

    from nautilus_trader.adapters.binance import (
        BINANCE,
        BinanceAccountType,
        BinanceDataClientConfig,
        BinanceLiveDataClientFactory,
    )
    from nautilus_trader.config import (
        InstrumentProviderConfig,
        LoggingConfig,
        StrategyConfig,
        TradingNodeConfig,
    )
    from nautilus_trader.live.node import TradingNode
    from nautilus_trader.model.enums import BookType
    from nautilus_trader.model.identifiers import InstrumentId
    from nautilus_trader.trading.strategy import Strategy

    iid = InstrumentId.from_str("BTCUSDT-PERP.BINANCE")

    class Probe(Strategy):
        def __init__(self) -> None:
            super().__init__(StrategyConfig(strategy_id="PROBE-001"))
            self.n = {"deltas": 0, "quotes": 0, "trades": 0}

        def on_start(self) -> None:
            self.subscribe_order_book_deltas(iid, book_type=BookType.L2_MBP)
            self.subscribe_quote_ticks(iid)
            self.subscribe_trade_ticks(iid)

        def on_order_book_deltas(self, deltas) -> None:
            self.n["deltas"] += 1

        def on_quote_tick(self, tick) -> None:
            self.n["quotes"] += 1

        def on_trade_tick(self, tick) -> None:
            self.n["trades"] += 1

    config = TradingNodeConfig(
        trader_id="PROBE-001", logging=LoggingConfig(log_level="ERROR"),
        data_clients={BINANCE: BinanceDataClientConfig(
            api_key="local-exchange", api_secret="local-exchange",
            account_type=BinanceAccountType.USDT_FUTURES, base_url_http=ex.urls["http"],
            base_url_ws=ex.urls["ws"],
            instrument_provider=InstrumentProviderConfig(load_ids=frozenset({iid.value})))},
        timeout_connection=20.0)
    node = TradingNode(config=config)
    probe = Probe()
    node.trader.add_strategy(probe)
    node.add_data_client_factory(BINANCE, BinanceLiveDataClientFactory)
    node.build()
    out: dict = {}

    async def run() -> None:
        task = asyncio.ensure_future(node.run_async())
        while not ex.finished.is_set():
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # the last messages in flight
        book = node.cache.order_book(iid)
        truth = ex.books["BTCUSDT"].top()
        out.update(probe.n, exchange=dict(ex.counters), rest_requests=ex.rest_requests,
                   nautilus_top=[book.best_bid_price().as_double(),
                                 book.best_ask_price().as_double()],
                   exchange_top=[to_float(truth[0]), to_float(truth[2])])
        await node.stop_async()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    try:
        asyncio.get_event_loop().run_until_complete(run())
    finally:
        node.dispose()
    print("probe " + json.dumps(out, sort_keys=True), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
