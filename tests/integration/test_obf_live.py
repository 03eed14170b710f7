"""The OBF service on a live feed: a market-data client against the local exchange, on every
shared capture the client tests use, with and without faults.

The exchange replays the real recorded messages; the client keeps its local books by Binance's
procedure; the service is attached to the client (``ObfService.attach``) and publishes to an
embedded store through its background pusher. The service's clock is a ``SimulatedClock`` that
the test advances on the tape's event-time grid: a cycle at ``t`` (a multiple of 500 ms) runs
when the first record with a later exchange time arrives, before that record reaches the
service, as ``dolphin obf replay`` cycles. So the features follow the tape's own time whatever
the replay speed, and the warm-up is 60 s of tape time (the default) on the USDT-M captures; the
cryptofeed capture is 30 s long, so its warm-up is configured down to 10 s. The USDT-M tapes
play at 60x, half the client tests' speed: the service adds work to every message, and on a
loaded machine a client 10,000 messages behind is dropped by the exchange.

Each run checks: cycles run on the grid, an asset's features are valid from the first cycle
after its book was first offered (synced) and every cycle after on a clean tape, never from an
unsynced book, in their documented ranges, and the last cycle's imbalance equals a plain
computation over the client's final book; the records in ``DOLPHIN_FEATURES_SHARD_xx`` under
``ob_<SYMBOL>`` (shard ``sum(ord(c)) % 10``) and ``DOLPHIN_OB["latest_macro"]`` are the last
cycle's; the counters add up to what the tape held; an ``ObProvider`` on the same store returns
the last cycle's features in the engine's layout.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np
import pytest

from dolphin.adapters.binance.book import ASK, BID, BookState, replay
from dolphin.adapters.binance.client import MarketDataClient
from dolphin.adapters.binance.local_exchange import Faults, LocalExchange
from dolphin.adapters.binance.wire import AggTrade, Trade
from dolphin.core.clock import SimulatedClock
from dolphin.features.obf import OBF_FEATURES, OBF_MACRO
from dolphin.services import ComponentState
from dolphin.services.ob_provider import ObProvider
from dolphin.services.obf_service import ObfService, ObfServiceConfig
from dolphin.store.memory import MemoryStore
from dolphin.store.schema import decode_value
from tests.kit.ob import ENGINE_COLUMNS, MACRO_COLUMNS
from tests.kit.paths import SHARED_DATA, require
from tests.kit.procs import wait_for

RAW = SHARED_DATA / "raw_ws"
USDM = RAW / "binance_usdm"
CF = RAW / "cryptofeed_binance_futures"
EXCHANGE_INFO = CF / "BINANCE_FUTURES.0"
S = 1_000_000_000
HALF = S // 2
BAND = 50e-4  # the default 50 bps band

#: capture chains of the client tests: files, depth stream, trade stream, speed, warm-up (s)
CAPTURES = {
    "btcusdt-2023-04": ([USDM / "btcusdt_20230404.dat.gz", USDM / "btcusdt_20230405.dat.gz"],
                        "depth@0ms", "trade", 60.0, 60.0),
    "btcusdt-2024-07": ([USDM / "btcusdt_20240718.gz", USDM / "btcusdt_20240719.gz"],
                        "depth@0ms", "trade", 60.0, 60.0),
    "ethusdt-2024-07": ([USDM / "ethusdt_20240718.gz", USDM / "ethusdt_20240719.gz"],
                        "depth@0ms", "trade", 60.0, 60.0),
    "cryptofeed-4-perps": ([CF / "BINANCE_FUTURES.http.0.0", CF / "BINANCE_FUTURES.ws.1.0"],
                           "depth@100ms", "aggTrade", 10.0, 10.0),  # a 30 s tape
}
SYMBOLS = {"cryptofeed-4-perps": ["AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT"]}


@pytest.fixture(scope="module", autouse=True)
def _compiled_kernels():
    """Load the compiled book and bank kernels before any exchange plays: a first call that
    compiles would stall the event loop and the exchange would drop the client as too slow."""
    chain = CAPTURES["cryptofeed-4-perps"][0]
    books = replay([require(p) for p in chain]).books
    svc = ObfService(MemoryStore(), clock=SimulatedClock(S), background=False,
                     config=ObfServiceConfig(warmup_s=0.0))
    svc.start()
    for book in books.values():
        book.band_row(50.0)
        svc.on_order_book(book)
    svc.clock.advance(HALF)
    svc.cycle()
    svc.pusher.drain()


@dataclass
class Driver:
    """Advances the service's clock on the tape's event-time grid and runs its cycles.

    Set as the client's callbacks before ``attach``, so each record first moves the clock (and
    runs the cycles it passes) and only then reaches the service. Per cycle it keeps whether
    each client book was LIVE at that moment.
    """

    svc: ObfService
    client: MarketDataClient
    clock: SimulatedClock
    next_ns: int | None = None
    cycles: list = field(default_factory=list)
    live: list[dict[str, bool]] = field(default_factory=list)
    books: int = 0  # applied diffs offered to the service
    trades: int = 0
    #: symbol -> the index of the cycle after each time its book was offered
    offers: dict[str, list[int]] = field(default_factory=dict)

    def on_book(self, book, diff) -> None:
        self._tick(diff.ts_event)
        self.books += 1
        self.offers.setdefault(book.symbol, []).append(len(self.cycles))

    def on_record(self, record) -> None:
        if isinstance(record, Trade | AggTrade):
            self.trades += 1
        self._tick(getattr(record, "ts_event", 0))

    def _tick(self, ts: int) -> None:
        if not ts:
            return
        if self.next_ns is None:  # the first record: the service starts on the grid before it
            self.clock.set(ts - ts % HALF)
            self.svc.start()
            self.next_ns = ts - ts % HALF + HALF
        while ts >= self.next_ns:
            self.clock.set(self.next_ns)
            self.cycle()
            self.next_ns += HALF

    def cycle(self):
        self.live.append({s: b.state is BookState.LIVE for s, b in self.client.books.items()})
        cyc = self.svc.cycle()
        assert cyc is not None, self.svc.reason
        self.cycles.append(cyc)
        return cyc


@dataclass
class Run:
    ex: LocalExchange
    client: MarketDataClient
    svc: ObfService
    driver: Driver
    store: MemoryStore
    provider: ObProvider
    warmup_s: float
    beat: dict


async def _until(predicate, timeout_s: float) -> bool:
    """Poll ``predicate`` from inside the event loop until true or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


async def _session(paths, depth, trades, speed, symbols, warmup_s, faults="") -> Run:
    ex = LocalExchange(captures=[require(p) for p in paths], speed=speed,
                       faults=Faults.parse(faults), exchange_info=require(EXCHANGE_INFO),
                       slow_client="wait")  # a busy machine pauses the tape, drops nothing
    await ex.start()
    client = MarketDataClient(ex.urls["http"], ex.urls["ws"], symbols,
                              streams=(depth, "bookTicker", trades), seed=7, data_timeout_s=5.0)
    store = MemoryStore()
    clock = SimulatedClock(0)
    svc = ObfService(store, clock=clock, config=ObfServiceConfig(warmup_s=warmup_s))
    driver = Driver(svc, client, clock)
    client.on_book, client.on_record = driver.on_book, driver.on_record
    svc.attach(client)
    provider = ObProvider(store, clock=clock, bar_s=5.0)
    assert provider.connect()  # listeners from the start: the pushes arrive as events
    task = asyncio.get_running_loop().create_task(client.run())
    try:
        await asyncio.wait_for(ex.finished.wait(), timeout=120)
        # let the client drain its socket (every trade of the tape in) and finish any resync
        tape_trades = _tape_trades(ex, trades)
        await _until(lambda: driver.trades == tape_trades and all(
            not b.needs_snapshot and b.update_id == ex.books[s].update_id
            for s, b in client.books.items()), 30)
    finally:
        client.stop()
        await asyncio.wait_for(task, timeout=30)
        await ex.stop()
    assert task.exception() is None
    clock.set(driver.next_ns)  # the tape is over: one more cycle sees the final books
    driver.cycle()
    beat = svc.heartbeat()
    svc.stop()  # the pusher pushes what is queued, then ends
    return Run(ex, client, svc, driver, store, provider, warmup_s, beat)


def _tape_trades(ex: LocalExchange, kind: str) -> int:
    return sum(1 for m in ex.messages if m.stream.endswith(f"@{kind}"))


def _plain_imbalance(book) -> float:
    """The band imbalance of every level of ``book``, summed in Python from its levels."""
    bids = book.levels(BID, book.size(BID)).tolist()
    asks = book.levels(ASK, book.size(ASK)).tolist()
    mid = (bids[0][0] + asks[0][0]) / 2 / 1e8
    bid_n = sum(p / 1e8 * q / 1e8 for p, q in bids if p / 1e8 >= mid * (1 - BAND))
    ask_n = sum(p / 1e8 * q / 1e8 for p, q in asks if p / 1e8 <= mid * (1 + BAND))
    return (bid_n - ask_n) / (bid_n + ask_n)


def _valid(run: Run, symbol: str) -> list[bool]:
    """Per cycle: whether ``symbol`` had valid features (False before it joined the bank)."""
    return [symbol in c.symbols and bool(c.valid[c.symbols.index(symbol)])
            for c in run.driver.cycles]


def _expected_valid(run: Run, symbol: str) -> list[bool]:
    """Per cycle, the rule: valid when the client's book is LIVE and has been offered since the
    last cycle that found it out of sync (a resync drops the row until the book comes again)."""
    offers, out, lost = set(run.driver.offers.get(symbol, ())), [], -1
    for k, live in enumerate(lv[symbol] for lv in run.driver.live):
        if not live:
            lost = k
        out.append(live and any(lost < j <= k for j in offers))
    return out


def _check_ranges(run: Run) -> None:
    for cyc in run.driver.cycles:
        ok, bad = cyc.per_asset[cyc.valid], cyc.per_asset[~cyc.valid]
        imb, ma5, pers, wd, dq, fill = ok.T
        assert np.all(np.abs(imb) <= 1) and np.all(np.abs(ma5) <= 1)
        assert np.all((pers >= 0) & (pers <= 1)) and np.all(wd >= -1)
        assert np.all(dq >= 0) and np.all((fill >= 0) & (fill <= 1))
        assert np.isnan(bad).all()
        assert np.isfinite(cyc.macro).all()


def _expected_shard_map(symbol: str) -> str:
    return f"DOLPHIN_FEATURES_SHARD_{sum(ord(c) for c in symbol) % 10:02d}"


def _check_store_and_provider(run: Run, symbols: list[str]) -> None:
    last = run.driver.cycles[-1]
    for i, sym in enumerate(last.symbols):
        text = run.store.map(_expected_shard_map(sym)).get(f"ob_{sym}")
        assert text is not None, sym
        rec = decode_value(text)
        assert rec.ts_ns == last.ts_ns and rec.data["ts_ns"] == last.ts_ns
        assert rec.data["symbol"] == sym and rec.data["status"] == "ok"
        assert [rec.data[f] for f in OBF_FEATURES] == last.per_asset[i].tolist()
    macro = decode_value(run.store.map("DOLPHIN_OB").get("latest_macro"))
    assert macro.ts_ns == last.ts_ns == macro.data["ts_ns"]
    assert [macro.data[m] for m in OBF_MACRO] == last.macro.tolist()
    # the provider's cache, refreshed by the store's listeners: the last cycle, engine layout
    asked = sorted(symbols)
    assert wait_for(lambda: run.provider.macro_age_s(last.ts_ns) == 0 and all(
        age == 0 for age in run.provider.asset_ages(last.ts_ns, asked).values()), timeout_s=10)
    per, mac = run.provider.features(last.ts_ns - 5 * S, asked)
    for j, sym in enumerate(asked):
        row = last.per_asset[last.symbols.index(sym)]
        want = [row[OBF_FEATURES.index(c)] for c in ENGINE_COLUMNS]
        assert per[j].tolist() == want, sym
    assert mac.tolist() == [last.macro[OBF_MACRO.index(c)] for c in MACRO_COLUMNS]
    run.provider.close()


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_the_service_on_a_live_feed_publishes_sound_features_on_every_capture(name):
    paths, depth, trades, speed, warmup_s = CAPTURES[name]
    symbols = SYMBOLS.get(name) or [paths[0].name.split("_")[0].upper()]
    run = asyncio.run(_session(paths, depth, trades, speed, symbols, warmup_s))
    d, c = run.driver, run.svc.counters
    assert run.client.decoder.total_malformed == 0 and run.client.counters.reconnects == 0

    # cycles on the 500 ms grid, the first flush after the warm-up of tape time
    ts = [cyc.ts_ns for cyc in d.cycles]
    assert np.all(np.diff(ts) == HALF) and len(ts) >= 50
    start = ts[0] - HALF  # the service started one step before the first cycle
    warm = sum(1 for t in ts if t - start < warmup_s * S)
    assert warm == round(warmup_s * 2) - 1  # cycles at 0.5 .. warm-up - 0.5 s
    assert (c.cycles, c.warmup_cycles, c.published) == (len(ts), warm, len(ts) - warm)

    # valid from the first cycle after the book was first offered, on every cycle after it
    assert sorted(d.offers) == sorted(symbols)
    for sym in symbols:
        valid = _valid(run, sym)
        first = d.offers[sym][0]
        assert not any(valid[:first]) and all(valid[first:]), (sym, first, valid.count(False))
        assert valid == _expected_valid(run, sym)
        assert d.cycles[-1].per_asset[d.cycles[-1].symbols.index(sym), 0] == pytest.approx(
            _plain_imbalance(run.client.books[sym]), rel=1e-9)
    _check_ranges(run)

    # counters: what the tape held and what was done with it
    assert c.trades == d.trades == _tape_trades(run.ex, trades) > 0
    assert c.books == d.books > 0
    assert (c.crossed, c.unsynced, c.empty_books, c.stalls) == (0, 0, 0, 0)
    assert (c.added, c.removed) == (len(symbols), 0)
    p = run.svc.pusher.counters
    assert p.submitted == c.published and p.pushes_failed == 0
    assert p.pushes_ok + p.dropped == p.submitted and p.pushes_ok > 0
    assert run.beat["state"] == "RUNNING" and run.beat["breaker"] == "CLOSED"
    assert run.svc.state is ComponentState.STOPPED
    _check_store_and_provider(run, symbols)


def test_a_gap_and_a_crossed_book_on_the_feed_the_service_keeps_going_and_counts_them():
    # diffs 1000 and 2000 of 3,326: the gap and the crossed book each cost a resync. The
    # exchange answers one REST request with 503 (the client retries it after >= 0.2 s, i.e.
    # >= 8 s of tape at 40x): the 3rd, which is the first resync's when the initial snapshot
    # took one request and the initial snapshot's retry when the exchange had no book yet (it
    # then took two), so one of the two resyncs always spans cycles.
    paths = [USDM / "btcusdt_20240718.gz"]
    faults = "gap@1000,crossed@2000,rest5xx@3"
    run = asyncio.run(_session(paths, "depth@0ms", "trade", 40.0, ["BTCUSDT"], 60.0, faults))
    ex, book, c = run.ex, run.client.books["BTCUSDT"], run.svc.counters
    assert (ex.counters["gap"], ex.counters["crossed"], ex.counters["rest5xx"]) == (1, 1, 1)
    assert (book.counters.gaps, book.counters.crossed, book.counters.resyncs) == (1, 1, 2)

    # the client's book discards a crossed diff itself, so the service never sees a crossed
    # book: its crossed guard stays at 0, and its unsynced counter takes each resync it saw
    assert c.crossed == 0 and 1 <= c.unsynced <= 2
    valid = _valid(run, "BTCUSDT")
    live = [lv["BTCUSDT"] for lv in run.driver.live]
    first = run.driver.offers["BTCUSDT"][0]
    unsynced = [i for i, lv in enumerate(live) if not lv and i >= first]
    assert len(unsynced) >= 8  # >= 4 s of tape in resync: cycles went on
    episodes = sum(1 for i in unsynced if live[i - 1])  # resyncs that a cycle found
    assert c.unsynced == episodes
    assert not any(valid[i] for i in unsynced) and valid[-1]  # dropped, then back
    assert valid == _expected_valid(run, "BTCUSDT")
    assert run.driver.cycles[-1].per_asset[0, 0] == pytest.approx(_plain_imbalance(book),
                                                                  rel=1e-9)
    _check_ranges(run)

    # the service went on cycling and publishing through both faults
    assert c.cycles == len(run.driver.cycles) and c.published == c.cycles - c.warmup_cycles > 0
    assert c.trades == _tape_trades(ex, "trade") and c.stalls == 0
    assert run.beat["state"] == "RUNNING" and run.beat["breaker"] == "CLOSED"
    assert run.svc.pusher.counters.pushes_failed == 0
    _check_store_and_provider(run, ["BTCUSDT"])
