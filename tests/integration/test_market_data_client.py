"""The market-data client against the local exchange, on every shared USDT-M capture and under
every fault kind.

The exchange replays the real recorded messages and keeps its own book from the capture's
snapshot and diffs. The client syncs by Binance's procedure. After the tape ends, the client's
book must equal the exchange's level for level at the same update id. While it runs, every
bookTicker at an applied diff's ``u`` must equal the client's top. Each injected fault must
show in the client's counters, and the client must never crash.
"""

from __future__ import annotations

import asyncio

import pytest

from dolphin.adapters.binance.book import ASK, BID
from dolphin.adapters.binance.client import MarketDataClient
from dolphin.adapters.binance.local_exchange import Faults, LocalExchange
from tests.kit.paths import SHARED_DATA, require

RAW = SHARED_DATA / "raw_ws"
USDM = RAW / "binance_usdm"
CF = RAW / "cryptofeed_binance_futures"
EXCHANGE_INFO = CF / "BINANCE_FUTURES.0"

#: capture chains (a continuation file follows the file it continues), depth stream, speed
CAPTURES = {
    "btcusdt-2023-04": ([USDM / "btcusdt_20230404.dat.gz", USDM / "btcusdt_20230405.dat.gz"],
                        "depth@0ms", 120.0),
    "btcusdt-2024-07": ([USDM / "btcusdt_20240718.gz", USDM / "btcusdt_20240719.gz"],
                        "depth@0ms", 120.0),
    "ethusdt-2024-07": ([USDM / "ethusdt_20240718.gz", USDM / "ethusdt_20240719.gz"],
                        "depth@0ms", 120.0),
    "cryptofeed-4-perps": ([CF / "BINANCE_FUTURES.http.0.0", CF / "BINANCE_FUTURES.ws.1.0"],
                           "depth@100ms", 10.0),
}
SYMBOLS = {"cryptofeed-4-perps": ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"]}
#: Levels per side that must be equal: a resync's snapshot is 1,000 deep (Binance's too), and
#: the exchange's own book also holds far levels the diffs brought in after its snapshot.
EXACT_LEVELS = 500


async def _session(paths, depth, speed, symbols, faults="", **client_kw):
    ex = LocalExchange(captures=[require(p) for p in paths], speed=speed,
                       faults=Faults.parse(faults), exchange_info=require(EXCHANGE_INFO),
                       max_connection_s=client_kw.pop("server_max_connection_s", 24 * 3600.0),
                       slow_client="wait")  # a busy machine pauses the tape, drops nothing
    await ex.start()
    client = MarketDataClient(ex.urls["http"], ex.urls["ws"], symbols,
                              streams=(depth, "bookTicker"), seed=7, **client_kw)
    task = asyncio.get_running_loop().create_task(client.run())
    try:
        await asyncio.wait_for(ex.finished.wait(), timeout=120)
        for _ in range(600):  # let the client drain its socket and finish any resync
            await asyncio.sleep(0.05)
            if all(not b.needs_snapshot and b.update_id == ex.books[s].update_id
                   for s, b in client.books.items()):
                break
    finally:
        client.stop()
        await asyncio.wait_for(task, timeout=30)
        await ex.stop()
    assert task.exception() is None
    return ex, client


def _assert_exact(ex, client):
    for symbol, book in client.books.items():
        truth = ex.books[symbol]
        assert not book.needs_snapshot, (symbol, book.counters)
        assert book.update_id == truth.update_id
        for side in (BID, ASK):  # a snapshot carries 1,000 levels: deeper ones it never sees
            n = min(EXACT_LEVELS, truth.size(side))
            mine, theirs = book.levels(side, n), truth.levels(side, n)
            assert len(mine) == len(theirs) == n > 0
            assert (mine == theirs).all(), (symbol, side)
    assert client.counters.top_mismatches == 0
    assert client.counters.tops_checked > 0


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_the_client_keeps_an_exact_book_on_every_capture(name):
    paths, depth, speed = CAPTURES[name]
    symbols = SYMBOLS.get(name) or [paths[0].name.split("_")[0].upper()]
    ex, client = asyncio.run(_session(paths, depth, speed, symbols))
    _assert_exact(ex, client)
    for symbol, book in client.books.items():  # every diff received was applied, or older
        c = book.counters  # than the snapshot; no gap, no resync on a clean tape
        diffs = sum(1 for m in ex.messages if m.record is not None and m.record.symbol == symbol)
        assert c.received == diffs and c.applied + c.dropped_stale == diffs, (symbol, c)
        assert c.applied > 0.5 * diffs and c.gaps == c.resyncs == c.crossed == 0, (symbol, c)
    assert client.decoder.total_malformed == 0 and client.counters.reconnects == 0


ONE = ([USDM / "btcusdt_20240718.gz"], "depth@0ms", 40.0)


@pytest.mark.parametrize("faults, check", [
    # diffs 1500 and 3000 of 3,326: late enough that the book is live even on a busy machine
    ("gap@1500,gap@3000", lambda ex, c: sum(b.counters.gaps for b in c.books.values()) == 2),
    ("crossed@1600", lambda ex, c: sum(b.counters.crossed for b in c.books.values()) == 1),
    ("malformed@1200,malformed@2800", lambda ex, c: c.decoder.total_malformed == 2),
    ("dup@1700,dup@2600", lambda ex, c: sum(b.counters.dropped_stale for b in c.books.values())
     >= 1),
    ("reorder@1800", lambda ex, c: sum(b.counters.resyncs + b.counters.dropped_stale
                                      for b in c.books.values()) >= 1),
    ("drop@1000,drop@6000", lambda ex, c: c.counters.reconnects >= 2),
    ("stall@1500:2.5", lambda ex, c: c.counters.timeouts >= 1 and c.counters.reconnects >= 1),
    ("rest429@1,rest5xx@2", lambda ex, c: c.rest.counters["http_429"] == 1
     and c.rest.counters["http_5xx"] == 1),
], ids=["gap", "crossed", "malformed", "duplicate", "out-of-order", "drop", "stall", "rest"])
def test_each_fault_is_survived_counted_and_the_book_ends_exact(faults, check):
    paths, depth, speed = ONE
    ex, client = asyncio.run(_session(paths, depth, speed, ["BTCUSDT"], faults,
                                      data_timeout_s=1.0))
    assert sum(ex.counters[k] for k in Faults.parse(faults).at) >= 1  # the fault was injected
    _assert_exact(ex, client)
    assert check(ex, client), (dict(ex.counters), client.counters.as_dict(),
                               {s: b.counters for s, b in client.books.items()},
                               dict(client.rest.counters))


def test_the_server_lifetime_disconnect_is_followed_by_a_resync():
    paths, depth, _ = ONE
    ex, client = asyncio.run(_session(paths, depth, 30.0, ["BTCUSDT"],
                                      server_max_connection_s=1.5))
    assert ex.counters["lifetime_closed"] >= 2
    assert client.counters.reconnects >= 2 and client.counters.connects >= 3
    _assert_exact(ex, client)


def test_symbols_come_and_go_from_exchange_info():
    async def run():
        ex = LocalExchange(captures=[require(p) for p in CAPTURES["cryptofeed-4-perps"][0]],
                           speed=10.0, exchange_info=require(EXCHANGE_INFO), slow_client="wait")
        await ex.start()
        client = MarketDataClient(ex.urls["http"], ex.urls["ws"], ["SUSHIUSDT"],
                                  streams=("depth@100ms", "bookTicker"), seed=1)
        task = asyncio.get_running_loop().create_task(client.run())
        await asyncio.sleep(0.3)
        added, removed = await client.refresh_symbols(["SUSHIUSDT", "CTKUSDT", "NOSUCHUSDT"])
        await asyncio.sleep(0.5)
        added2, removed2 = await client.refresh_symbols(["CTKUSDT"])
        await asyncio.wait_for(ex.finished.wait(), timeout=60)
        await asyncio.sleep(0.5)
        client.stop()
        await task
        await ex.stop()
        return client, (added, removed, added2, removed2)

    client, (added, removed, added2, removed2) = asyncio.run(run())
    assert (added, removed) == (["CTKUSDT"], [])  # NOSUCHUSDT is not in exchangeInfo
    assert (added2, removed2) == ([], ["SUSHIUSDT"])
    assert sorted(client.books) == ["CTKUSDT"]
    assert client.counters.subscribes == 1 and client.counters.unsubscribes == 1
    assert client.counters.streams["ctkusdt@DepthDiff"].messages > 10
    assert not client.books["CTKUSDT"].needs_snapshot
