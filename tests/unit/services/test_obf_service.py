"""``ObfService``: each §20 hardening item, the store and file formats, the recorder, real data."""

from __future__ import annotations

import logging
import math
import pathlib
import threading

import numpy as np
import pytest

from dolphin.adapters.binance import book as binance_book
from dolphin.adapters.binance import wire
from dolphin.adapters.binance.book import Replayer
from dolphin.core.clock import SimulatedClock
from dolphin.core.errors import ConfigError
from dolphin.features.obf import OBF_FEATURES, OBF_MACRO, book_row, read_ob_features
from dolphin.services import ComponentState, ComponentStateError
from dolphin.services.obf_service import (
    ASK,
    BID,
    BOOK_LIVE,
    LATEST_MACRO,
    MACRO_BY_TS,
    OB_INDEX,
    STATUS_DARK,
    STATUS_NO_BOOK,
    STATUS_OK,
    TICKS_PER_UNIT,
    BreakerState,
    ObfRecorder,
    ObfService,
    ObfServiceConfig,
)
from dolphin.store.errors import StoreUnavailableError
from dolphin.store.memory import MemoryStore
from dolphin.store.ports import ClusterView
from dolphin.store.schema import OB, SHARD_MAPS, decode_value, shard_index
from tests.kit.paths import SHARED_DATA, require

S = 1_000_000_000
HALF = S // 2
T0 = 1_721_347_000 * S
A, B, C = "AAAUSDT", "BBBUSDT", "CCCUSDT"


# ------------------------------------------------------------------ test stores
class _SwitchMap:
    """A map whose writes fail while its store is down; reads pass through."""

    def __init__(self, store: SwitchStore, inner) -> None:
        self._store, self._inner = store, inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def _write(self) -> None:
        self._store.writes += 1
        if self._store.down:
            raise StoreUnavailableError("cluster unreachable")

    def put(self, key, value):
        self._write()
        self._inner.put(key, value)

    def put_all(self, entries):
        self._write()
        self._inner.put_all(entries)

    def delete(self, key):
        self._write()
        self._inner.delete(key)


class SwitchStore:
    """A MemoryStore whose writes raise StoreUnavailableError while ``down``; counts writes."""

    def __init__(self) -> None:
        self.inner = MemoryStore("switch")
        self.down = False
        self.writes = 0

    def map(self, name):
        return _SwitchMap(self, self.inner.map(name))

    def cluster_view(self):
        return ClusterView(False, 0) if self.down else self.inner.cluster_view()

    def close(self):
        self.inner.close()


class HangingStore(SwitchStore):
    """Every write blocks until ``release`` is set; ``entered`` tells a write has begun."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def map(self, name):
        store = self

        class _Hang(_SwitchMap):
            def _write(self) -> None:
                store.entered.set()
                store.release.wait()
                super()._write()

        return _Hang(self, self.inner.map(name))


# ------------------------------------------------------------------ helpers
def levels(mid: float, bid_qty: float = 2.0, ask_qty: float = 1.0, n: int = 3,
           tick: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """A two-sided book of ``n`` levels per side around ``mid`` (inside any 50 bps band)."""
    steps = tick * (np.arange(n) + 0.5)
    bids = np.column_stack([mid - steps, np.full(n, bid_qty)])
    asks = np.column_stack([mid + steps, np.full(n, ask_qty)])
    return bids, asks


def make(store=None, *, clock=None, background=False, recorder=None, on_stall=None, **cfg):
    """A started service on a simulated clock at T0 (no warm-up unless asked)."""
    cfg.setdefault("warmup_s", 0.0)
    cfg.setdefault("dark_streak_cycles", 0)
    svc = ObfService(store if store is not None else MemoryStore(),
                     clock=clock or SimulatedClock(T0), config=ObfServiceConfig(**cfg),
                     background=background, recorder=recorder, on_stall=on_stall)
    svc.start()
    return svc


def tick(svc, books=(A, B), trades=None, *, dt=HALF, drain=True):
    """Advance half a second, feed a book (and a trade) per symbol, run one cycle."""
    svc.clock.advance(dt)
    now = svc.clock.now_ns()
    for sym in books:
        svc.on_book(sym, now, *levels(100.0 + len(sym)))
    for sym in books if trades is None else trades:
        svc.on_trade(sym, now, 100.0, 0.5, False)
    cyc = svc.cycle()
    if drain:
        svc.pusher.drain()
    return cyc


def shard_record(store, symbol):
    text = store.map(SHARD_MAPS[shard_index(symbol)]).get(f"ob_{symbol}")
    return None if text is None else decode_value(text)


def ob_record(store, key):
    text = store.map(OB).get(key)
    return None if text is None else decode_value(text)


def inner(store):
    return store.inner if isinstance(store, SwitchStore) else store


# ------------------------------------------------------------------ formats
def test_the_adapter_constants_repeated_here_agree_with_the_adapter():
    assert (BID, ASK) == (binance_book.BID, binance_book.ASK)
    assert BOOK_LIVE == binance_book.BookState.LIVE
    assert TICKS_PER_UNIT == wire.FIXED_SCALE


def test_each_asset_is_one_shard_record_with_the_six_features_and_the_cycle_time():
    store = MemoryStore()
    svc = make(store)
    svc.clock.advance(HALF)
    now = svc.clock.now_ns()
    # bid 100 x 3, ask 100.1 x 1: both inside 50 bps of mid 100.05
    svc.on_book(A, now, np.array([[100.0, 3.0]]), np.array([[100.1, 1.0]]))
    cyc = svc.cycle()
    svc.pusher.drain()
    rec = shard_record(store, A)
    assert rec.ts_ns == now
    data = rec.data
    assert data["symbol"] == A and data["ts_ns"] == now and data["status"] == STATUS_OK
    assert set(data) == {"symbol", "ts_ns", "status", *OBF_FEATURES}
    # imbalance = (bid notional - ask notional) / total, by hand
    assert data["imbalance"] == pytest.approx((300.0 - 100.1) / 400.1, abs=1e-12)
    assert data["imbalance_ma5"] == pytest.approx((300.0 - 100.1) / 400.1, abs=1e-12)
    assert [data[f] for f in OBF_FEATURES] == pytest.approx(cyc.per_asset[0].tolist())
    macro = ob_record(store, LATEST_MACRO)
    assert macro.ts_ns == now and macro.data["ts_ns"] == now
    assert [macro.data[m] for m in OBF_MACRO] == pytest.approx(cyc.macro.tolist())
    index = ob_record(store, OB_INDEX).data
    assert index == {"ts_ns": now, "cycle": 1, "symbols": [A], "stale": {}, "removed": []}
    assert ob_record(store, MACRO_BY_TS).data == {str(now): cyc.macro.tolist()}


def test_an_asset_without_a_book_is_published_as_no_book_with_null_features():
    store = MemoryStore()
    svc = make(store)
    tick(svc, books=(A, B))
    tick(svc, books=(A,))
    svc.clock.advance(31 * S)  # B's last book is older than the stall timeout (30 s)
    now = svc.clock.now_ns()
    svc.on_book(A, now, *levels(100.0))
    svc.cycle()
    svc.pusher.drain()
    rec = shard_record(store, B).data
    assert rec["status"] == STATUS_NO_BOOK
    assert all(rec[f] is None for f in OBF_FEATURES)
    assert ob_record(store, OB_INDEX).data["stale"] == {B: STATUS_NO_BOOK}


# ------------------------------------------------------------------ §20.1 first flush delay
def test_nothing_is_published_before_60_s_of_warm_up_and_everything_after():
    store = SwitchStore()
    store.down = True  # even the file-only path must wait for the warm-up
    svc = make(store, warmup_s=60.0, file_path=None)
    for _ in range(119):  # cycles at 0.5 s .. 59.5 s after the start
        tick(svc)
    assert svc.counters.warmup_cycles == 119 and svc.counters.published == 0
    assert store.writes == 0 and svc.pusher.counters.submitted == 0
    store.down = False
    tick(svc)  # 60.0 s: the first flush
    assert svc.counters.published == 1 and svc.counters.warmup_cycles == 119
    assert shard_record(store.inner, A).ts_ns == T0 + 60 * S


def test_the_bank_cycles_during_warm_up_so_its_windows_are_full_at_the_first_flush():
    svc = make(warmup_s=2.0)
    for _ in range(4):
        cyc = tick(svc)
    assert svc.counters.cycles == 4 and svc.counters.published == 1
    assert cyc.valid.all()


# ------------------------------------------------------------------ §20.1 crossed-book guard
def test_a_crossed_book_is_discarded_counted_and_warned(caplog):
    store = MemoryStore()
    svc = make(store)
    tick(svc, books=(A,))  # a sound row first
    svc.clock.advance(HALF)
    now = svc.clock.now_ns()
    with caplog.at_level(logging.WARNING, logger="dolphin.services.obf_service"):
        ok = svc.on_book(A, now, np.array([[100.2, 1.0]]), np.array([[100.1, 1.0]]))
        touching = svc.on_book(B, now, np.array([[100.1, 1.0]]), np.array([[100.1, 1.0]]))
    assert ok is False and touching is False  # ask <= bid: ask == bid is crossed too
    assert svc.counters.crossed == 2
    assert sum("crossed_book" in r.message for r in caplog.records) == 2
    cyc = svc.cycle()
    svc.pusher.drain()
    # the earlier sound row is not the book any more: A has no row this cycle
    assert cyc.valid.tolist() == [False, False]
    assert shard_record(store, A).data["status"] == STATUS_NO_BOOK
    assert svc.state is ComponentState.RUNNING  # bad rows are dropped, the service goes on
    tick(svc, books=(A,))
    assert shard_record(store, A).data["status"] == STATUS_OK


class FakeBook:
    """A local book in ticks (the ``BookView`` the service reads): its ``band_row`` is
    ``book_row`` of all its levels as floats, what ``OrderBook.band_row`` returns."""

    def __init__(self, symbol, bids, asks, state=BOOK_LIVE):
        self.symbol, self.state = symbol, state
        self._lv = {BID: np.asarray(bids, dtype=np.int64), ASK: np.asarray(asks, dtype=np.int64)}
        self.reads = []  # the band of every band_row call

    def top(self):
        b, a = self._lv[BID], self._lv[ASK]
        return (int(b[0, 0]) if len(b) else 0, int(b[0, 1]) if len(b) else 0,
                int(a[0, 0]) if len(a) else 0, int(a[0, 1]) if len(a) else 0)

    def band_row(self, band_bps):
        self.reads.append(band_bps)
        return book_row(self._lv[BID] / TICKS_PER_UNIT, self._lv[ASK] / TICKS_PER_UNIT, band_bps)


def test_a_crossed_local_book_is_discarded_too():
    svc = make()
    e8 = TICKS_PER_UNIT
    crossed = FakeBook(A, [[101 * e8, e8]], [[100 * e8, e8]])
    assert svc.on_order_book(crossed) is False
    assert svc.counters.crossed == 1 and crossed.reads == []


def test_a_local_book_is_read_to_the_end_of_its_band_and_dropped_when_it_loses_sync():
    svc = make()
    e8 = TICKS_PER_UNIT
    # 20 bid levels 0.01 apart below 100 (all within 50 bps), one ask
    bids = [[round((100 - 0.01 * i) * e8), e8] for i in range(20)]
    book = FakeBook(A, bids, [[round(100.01 * e8), e8]])
    svc.clock.advance(HALF)
    assert svc.on_order_book(book) is True
    cyc = svc.cycle()
    mid = (100 + 100.01) / 2
    bid_notional = sum(100 - 0.01 * i for i in range(20))  # every level, not the first 4
    expected = (bid_notional - 100.01) / (bid_notional + 100.01)
    assert mid * 0.995 < 100 - 0.19
    assert cyc.per_asset[0, 0] == pytest.approx(expected, rel=1e-12)
    assert book.reads == [50.0]  # once, at the cycle, with the service's band
    book.state = 0  # resync: the book is no longer the market
    svc.clock.advance(HALF)
    cyc = svc.cycle()
    assert cyc.valid.tolist() == [False] and svc.counters.unsynced == 1


# ------------------------------------------------------------------ §20.1 dark streak
def test_n_cycles_without_volume_make_an_asset_stale_data_until_it_trades_again(caplog):
    store = MemoryStore()
    svc = make(store, dark_streak_cycles=3)
    statuses = []
    with caplog.at_level(logging.WARNING, logger="dolphin.services.obf_service"):
        for _ in range(4):
            tick(svc, books=(A, B), trades=(A,))  # B has a book but no trade
            statuses.append(shard_record(store, B).data["status"])
    assert statuses == [STATUS_OK, STATUS_OK, STATUS_DARK, STATUS_DARK]
    assert shard_record(store, A).data["status"] == STATUS_OK
    assert svc.counters.dark_events == 1 and svc.dark == {B}
    beat = svc.heartbeat()
    assert beat["dark"] == [B] and beat["n_dark"] == 1
    assert sum("stale_data" in r.message for r in caplog.records) == 1
    assert ob_record(store, OB_INDEX).data["stale"] == {B: STATUS_DARK}
    tick(svc, books=(A, B), trades=(A, B))  # one trade ends it
    assert shard_record(store, B).data["status"] == STATUS_OK and svc.dark == set()


# ------------------------------------------------------------------ §20.1 stall watchdog
def test_no_book_update_for_the_stall_timeout_degrades_and_updates_recover():
    stalls = []
    svc = make(stall_timeout_s=5.0, on_stall=stalls.append)
    tick(svc)
    for _ in range(10):  # 5.0 s without a book: not yet beyond the timeout
        tick(svc, books=(), trades=())
    assert svc.state is ComponentState.RUNNING
    tick(svc, books=(), trades=())  # 5.5 s
    assert svc.state is ComponentState.DEGRADED and "stall" in svc.reason
    assert stalls == [5.5] and svc.counters.stalls == 1
    tick(svc, books=(), trades=())
    assert svc.counters.stalls == 1 and len(stalls) == 1  # one stall, one alert
    tick(svc)
    assert svc.state is ComponentState.RUNNING and svc.reason is None


def test_the_stall_clock_starts_at_start():
    svc = make(stall_timeout_s=1.0)
    tick(svc, books=(), trades=(), dt=S)
    assert svc.state is ComponentState.RUNNING
    tick(svc, books=(), trades=(), dt=HALF)
    assert svc.state is ComponentState.DEGRADED


# ------------------------------------------------------------------ §15.6 circuit breaker
def test_the_breaker_opens_after_exactly_five_consecutive_push_failures(tmp_path):
    store = SwitchStore()
    svc = make(store, file_path=tmp_path / "latest_ob_features.json")
    tick(svc)
    store.down = True
    for k in range(1, 5):
        tick(svc)
        assert svc.pusher.state is BreakerState.CLOSED and svc.pusher.failures == k
    tick(svc)
    assert svc.pusher.state is BreakerState.OPEN
    assert svc.pusher.counters.pushes_failed == 5 and svc.pusher.counters.opens == 1
    tick(svc)  # the cycle sees the open breaker
    assert svc.state is ComponentState.DEGRADED and "breaker OPEN" in svc.reason
    assert svc.heartbeat()["breaker"] == "OPEN"


def test_a_success_between_failures_resets_the_count():
    store = SwitchStore()
    svc = make(store)
    for down in (True, True, True, True, False, True, True, True, True):
        store.down = down
        tick(svc)
    assert svc.pusher.state is BreakerState.CLOSED and svc.pusher.failures == 4


def test_the_backoff_doubles_after_each_failed_half_open_probe_up_to_its_cap(tmp_path):
    store = SwitchStore()
    svc = make(store, backoff_s=1.0, backoff_max_s=4.0, file_path=tmp_path / "ob.json")
    store.down = True
    for _ in range(5):
        tick(svc)
    opened = svc.clock.now_ns()
    assert svc.pusher.state is BreakerState.OPEN
    attempts = []
    for _ in range(30):  # 15 s in half-second cycles
        before = svc.pusher.counters.pushes_failed
        tick(svc)
        if svc.pusher.counters.pushes_failed > before:
            attempts.append((svc.clock.now_ns() - opened) / S)
    # open 1 s, then 2, 4, 4 (capped): probes 1, 1+2, 3+4, 7+4 and 11+4 s after opening
    assert attempts == [1.0, 3.0, 7.0, 11.0, 15.0]
    assert svc.pusher.counters.probes == 5 and svc.pusher.counters.probe_failures == 5
    assert svc.pusher.backoff_s == 4.0


def test_a_successful_probe_closes_the_breaker_and_pushes_the_latest_state(tmp_path):
    store = SwitchStore()
    svc = make(store, backoff_s=1.0, file_path=tmp_path / "ob.json")
    store.down = True
    for _ in range(6):
        tick(svc, books=(A, B, C))
    assert svc.pusher.state is BreakerState.OPEN
    store.down = False
    tick(svc, books=(A, B, C))  # 1 s after opening: the HALF-OPEN probe
    assert svc.pusher.state is BreakerState.CLOSED and svc.pusher.counters.closes == 1
    now = svc.clock.now_ns()
    for sym in (A, B, C):
        assert shard_record(store.inner, sym).ts_ns == now
    assert ob_record(store.inner, LATEST_MACRO).ts_ns == now
    tick(svc, books=(A, B, C))
    assert svc.state is ComponentState.RUNNING and svc.pusher.backoff_s == 1.0


def test_an_idle_pusher_probes_with_the_backlog_when_the_backoff_ends():
    store = SwitchStore()
    svc = make(store, backoff_s=1.0)
    store.down = True
    for _ in range(5):
        last = tick(svc)
    store.down = False
    assert svc.pusher.step() is False  # still within the backoff: nothing to do
    svc.clock.advance(S)
    assert svc.pusher.step() is True  # no new cycle came: the backlog is the probe
    assert svc.pusher.state is BreakerState.CLOSED
    assert shard_record(store.inner, A).ts_ns == last.ts_ns


def test_while_the_store_is_down_the_file_holds_every_assets_latest_features(tmp_path):
    path = tmp_path / "latest_ob_features.json"
    store = SwitchStore()
    svc = make(store, file_path=path)
    tick(svc, books=(A, B, C))
    assert not path.exists()  # CLOSED and healthy: file-only mode is not on
    store.down = True
    for i in range(12):
        books = (A, B, C) if i % 2 else (A, C)  # B's book comes every other cycle
        cyc = tick(svc, books=books)
        rec = decode_value(path.read_bytes())
        assert rec.ts_ns == cyc.ts_ns
        data = rec.data
        assert set(data["assets"]) == {A, B, C}
        for i_sym, sym in enumerate(cyc.symbols):
            got = data["assets"][sym]
            assert got["ts_ns"] == cyc.ts_ns
            want = [None if math.isnan(v) else v for v in cyc.per_asset[i_sym].tolist()]
            assert [got[f] for f in OBF_FEATURES] == pytest.approx(want)
        assert data["macro"] == {"ts_ns": cyc.ts_ns,
                                 **dict(zip(OBF_MACRO, cyc.macro.tolist(), strict=True))}
        assert str(cyc.ts_ns) in data["macro_by_ts"]
    assert data["breaker"] == "OPEN"
    assert svc.pusher.counters.file_writes == 12
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_the_file_is_replaced_atomically_a_failed_write_leaves_the_last_one(tmp_path,
                                                                            monkeypatch):
    path = tmp_path / "ob.json"
    store = SwitchStore()
    store.down = True
    svc = make(store, file_path=path)
    tick(svc)
    good = path.read_bytes()
    real = pathlib.Path.write_bytes

    def half_then_fail(self, data):
        real(self, data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(pathlib.Path, "write_bytes", half_then_fail)
    tick(svc)
    assert path.read_bytes() == good  # readers still see a complete file
    assert decode_value(path.read_bytes()).data["assets"][A]["status"] == STATUS_OK
    assert svc.pusher.counters.file_failures == 1
    assert list(tmp_path.iterdir()) == [path]
    monkeypatch.setattr(pathlib.Path, "write_bytes", real)
    cyc = tick(svc)
    assert decode_value(path.read_bytes()).ts_ns == cyc.ts_ns


# ------------------------------------------------------------------ §20.1 fire-and-forget
def test_the_cycle_never_waits_for_a_store_that_hangs():
    store = HangingStore()
    svc = make(store, background=True, queue_size=2, join_timeout_s=30.0)
    try:
        tick(svc, drain=False)
        assert store.entered.wait(30)  # the pusher thread is inside a write that never ends
        for _ in range(50):
            tick(svc, drain=False)  # each cycle returns while that write still hangs
        assert not store.release.is_set()
        assert svc.counters.cycles == 51 and svc.counters.published == 51
        # the worker holds the first snapshot; the queue keeps the newest two
        assert svc.pusher.pending == 2 and svc.pusher.counters.dropped == 48
        assert svc.pusher.counters.pushes_ok == svc.pusher.counters.pushes_failed == 0
    finally:
        store.release.set()
    svc.stop()  # the worker finishes the hung push, pushes the queued two and ends
    assert not svc.pusher.alive and svc.state is ComponentState.STOPPED
    assert svc.pusher.counters.pushes_ok == 3
    assert shard_record(store.inner, A).ts_ns == svc.last_cycle.ts_ns


def test_stop_does_not_hang_on_a_stuck_pusher():
    store = HangingStore()
    svc = make(store, background=True, join_timeout_s=0.05)
    try:
        tick(svc, drain=False)
        assert store.entered.wait(30)
        svc.stop()
        assert svc.state is ComponentState.STOPPED and svc.pusher.alive
    finally:
        store.release.set()


def test_a_removal_survives_its_snapshot_being_dropped_from_the_queue():
    store = MemoryStore()
    svc = make(store, queue_size=1)
    tick(svc, books=(A, B))
    svc.remove(B)
    tick(svc, books=(A,), drain=False)  # carries the removal ...
    tick(svc, books=(A,), drain=False)  # ... and supersedes it in the one-slot queue
    assert svc.pusher.counters.dropped == 1
    svc.pusher.drain()
    assert shard_record(store, B) is None and shard_record(store, A) is not None


# ------------------------------------------------------------------ §20.1 asset discovery
def test_a_new_symbol_joins_the_bank_and_a_removed_one_leaves_the_store():
    store = MemoryStore()
    svc = make(store)
    tick(svc, books=(A,))
    assert svc.symbols == (A,)
    tick(svc, books=(A, B))
    assert svc.symbols == (A, B) and svc.counters.added == 2
    assert shard_record(store, B) is not None
    assert svc.sync_symbols([A, C]) == [B]
    tick(svc, books=(A,))
    assert svc.symbols == (A,) and shard_record(store, B) is None
    assert ob_record(store, OB_INDEX).data["removed"] == [B]


class FakeClient:
    """The parts of a ``MarketDataClient`` that ``attach`` uses."""

    def __init__(self, symbols):
        self.symbols = list(symbols)
        self.on_book = None
        self.on_record = None


def test_attach_routes_a_clients_books_trades_and_liquidations_and_follows_its_symbols():
    svc = make()
    client = FakeClient([A, B])
    seen = []
    client.on_record = seen.append  # a callback already there keeps being called
    svc.attach(client)
    e8 = TICKS_PER_UNIT
    for sym in (A, B):
        client.on_book(FakeBook(sym, [[100 * e8, e8]], [[101 * e8, e8]]), object())
    trade = wire.Trade(symbol=A, trade_id=1, price=100 * e8, qty=e8 // 2, buyer_is_maker=False,
                       ts_event=T0, ts_trade=T0)
    liq = wire.Liquidation(symbol=B, side="SELL", order_type="LIMIT", time_in_force="IOC",
                           status="FILLED", qty=2 * e8, price=99 * e8, avg_price=99 * e8,
                           last_filled_qty=2 * e8, filled_qty=2 * e8, ts_event=T0, ts_trade=T0)
    client.on_record(trade)
    client.on_record(liq)
    assert seen == [trade, liq]
    assert (svc.counters.books, svc.counters.trades, svc.counters.liquidations) == (2, 1, 1)
    svc.clock.advance(HALF)
    assert svc.cycle().valid.tolist() == [True, True]
    client.symbols = [A]  # refresh_symbols dropped B
    svc.clock.advance(HALF)
    assert svc.cycle().symbols == (A,) and svc.counters.removed == 1


# ------------------------------------------------------------------ §20.1 per-timestamp macro
def test_the_macro_map_is_keyed_by_cycle_time_and_bounded():
    store = MemoryStore()
    svc = make(store, macro_history=3)
    cycles = [tick(svc) for _ in range(5)]
    assert list(svc.macro_by_ts) == [c.ts_ns for c in cycles[-3:]]
    published = ob_record(store, MACRO_BY_TS).data
    assert list(published) == [str(c.ts_ns) for c in cycles[-3:]]
    assert svc.macro_at(cycles[3].ts_ns + HALF // 2) == tuple(cycles[3].macro.tolist())
    assert svc.macro_at(cycles[0].ts_ns) is None  # no longer kept


# ------------------------------------------------------------------ heartbeat, lifecycle
def test_the_heartbeat_carries_the_counters_and_the_breaker():
    store = SwitchStore()
    svc = make(store)
    tick(svc)
    store.down = True
    tick(svc)
    svc.on_book(A, 0, np.array([[2.0, 1.0]]), np.array([[1.0, 1.0]]))
    beat = svc.heartbeat()
    assert beat["component"] == "obf" and beat["state"] == "RUNNING"
    assert (beat["cycles"], beat["published"], beat["crossed"]) == (2, 2, 1)
    assert (beat["push_pushes_ok"], beat["push_pushes_failed"]) == (1, 1)
    assert beat["breaker"] == "CLOSED" and beat["breaker_failures"] == 1
    assert beat["assets"] == 2 and beat["stalls"] == 0 and beat["push_file_writes"] == 0
    assert beat["last_cycle_ts_ns"] == svc.last_cycle.ts_ns


def test_a_cycle_needs_a_running_service():
    svc = ObfService(MemoryStore(), clock=SimulatedClock(T0), background=False)
    with pytest.raises(ComponentStateError):
        svc.cycle()


@pytest.mark.parametrize("field,value", [("breaker_failures", 0), ("backoff_s", 0.0),
                                         ("queue_size", 0), ("dark_streak_cycles", -1),
                                         ("warmup_s", -1.0), ("backoff_max_s", 0.5)])
def test_a_bad_setting_is_a_config_error(field, value):
    with pytest.raises(ConfigError):
        ObfServiceConfig(**{field: value})


# ------------------------------------------------------------------ recorder
def test_the_recorder_writes_the_contract_schema_with_nan_for_assets_that_are_not_fresh(
        tmp_path):
    rec = ObfRecorder(tmp_path / "rec", cycles_per_part=2)
    svc = make(recorder=rec, dark_streak_cycles=2)
    cycles = [tick(svc, books=(A, B), trades=(A,)) for _ in range(3)]  # B dark from cycle 2
    assert rec.parts == 1 and rec.buffered == 1
    svc.stop()
    frame = read_ob_features(tmp_path / "rec" / "ob_features.parquet")
    assert list(frame.columns) == ["ts_ns", "symbol", *OBF_FEATURES, *OBF_MACRO]
    assert frame["ts_ns"].tolist() == [c.ts_ns for c in cycles for _ in (A, B)]
    assert frame["symbol"].tolist() == [A, B] * 3
    for k, c in enumerate(cycles):
        np.testing.assert_array_equal(frame.loc[2 * k, list(OBF_FEATURES)].to_numpy(float),
                                      c.per_asset[0])
        assert frame.loc[2 * k, list(OBF_MACRO)].tolist() == c.macro.tolist()
    b_rows = frame[frame["symbol"] == B]
    assert not b_rows.iloc[0][list(OBF_FEATURES)].isna().any()
    assert b_rows.iloc[1:][list(OBF_FEATURES)].isna().all().all()  # dark: not fresh
    assert len(list((tmp_path / "rec").glob("part-*.parquet"))) == 2


def test_the_recorder_refuses_a_directory_that_holds_a_session(tmp_path):
    (tmp_path / "part-000000.parquet").write_bytes(b"")
    with pytest.raises(ConfigError):
        ObfRecorder(tmp_path).open()


# ------------------------------------------------------------------ a real capture
def test_a_real_btcusdt_capture_through_local_books_gives_sound_features():
    capture = require(SHARED_DATA / "raw_ws" / "binance_usdm" / "btcusdt_20240718.gz")
    clock = SimulatedClock(0)
    store = MemoryStore()
    svc = make(store, clock=clock, dark_streak_cycles=20)
    replayer = Replayer()
    next_cycle = None
    cycles = []
    for _, record in wire.read_capture(capture, replayer.result.decoder):
        ts = getattr(record, "ts_event", 0)
        if ts and next_cycle is None:
            next_cycle = ts - ts % HALF + HALF
        while ts and ts >= next_cycle:
            clock.set(next_cycle)
            cycles.append(svc.cycle())
            svc.pusher.drain()
            next_cycle += HALF
        if isinstance(record, wire.DepthDiff | wire.DepthSnapshot):
            replayer.feed(record)
            book = replayer.result.books.get(record.symbol)
            if book is not None and book.state is binance_book.BookState.LIVE:
                svc.on_order_book(book)
        else:
            svc.on_wire_record(record)
    assert len(cycles) > 300 and svc.counters.crossed == 0
    valid = [c for c in cycles if c.valid.any()]
    assert len(valid) > 0.9 * len(cycles)
    per = np.vstack([c.per_asset for c in valid])
    assert np.all(np.abs(per[:, 0]) <= 1.0) and np.all((per[:, 5] >= 0) & (per[:, 5] <= 1))
    # the last row against a plain reference over every level of the final book
    book = replayer.result.books["BTCUSDT"]
    bids = book.levels(binance_book.BID, 10_000) / wire.FIXED_SCALE
    asks = book.levels(binance_book.ASK, 10_000) / wire.FIXED_SCALE
    mid = (bids[0, 0] + asks[0, 0]) / 2
    bid_n = sum(p * q for p, q in bids if p >= mid * (1 - 0.005))
    ask_n = sum(p * q for p, q in asks if p <= mid * (1 + 0.005))
    clock.advance(HALF)
    last = svc.cycle()
    svc.pusher.drain()
    assert last.per_asset[0, 0] == pytest.approx((bid_n - ask_n) / (bid_n + ask_n), rel=1e-9)
    assert shard_record(store, "BTCUSDT").data["imbalance"] == pytest.approx(
        last.per_asset[0, 0])
    assert svc.heartbeat()["trades"] > 0
