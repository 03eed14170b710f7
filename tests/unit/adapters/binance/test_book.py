"""The local order book: Binance's sync rules on hand-built diffs, and the kernels vs a dict book.

Prices and quantities are small tick integers here (the book only sees ticks). The storage tests
check the tables' structure too (``assert_tables``): growth, shrinking and sizing at a snapshot.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dolphin.adapters.binance.book import (
    _EMPTY,
    _M_COUNT,
    _M_FLOOR,
    _M_HEAP,
    _M_SHIFT,
    ASK,
    BID,
    BookState,
    OrderBook,
    SyncRule,
    _find_nb,
)
from dolphin.adapters.binance.wire import DepthDiff, DepthSnapshot

SYM = "BTCUSDT"


def _levels(bids, asks) -> tuple[np.ndarray, int]:
    rows = [*bids, *asks]
    return np.array(rows, dtype=np.int64).reshape(len(rows), 2), len(bids)


def diff(U, u, pu=None, bids=(), asks=(), symbol=SYM) -> DepthDiff:
    """A futures diff (with ``pu``), or a spot one when ``pu`` is None."""
    levels, n_bids = _levels(bids, asks)
    return DepthDiff(symbol, U, u, -1 if pu is None else pu, 0, 0, levels, n_bids)


def snapshot(last_update_id, bids=((100, 5), (99, 7)), asks=((101, 3), (102, 4))) -> DepthSnapshot:
    levels, n_bids = _levels(bids, asks)
    return DepthSnapshot("", last_update_id, 0, 0, levels, n_bids)


def futures_book(**kw) -> OrderBook:
    return OrderBook(SYM, SyncRule.FUTURES, **kw)


def spot_book(**kw) -> OrderBook:
    return OrderBook(SYM, SyncRule.SPOT, **kw)


def assert_invariant(book: OrderBook) -> None:
    c = book.counters
    assert c.received == (c.applied + c.dropped_stale + c.malformed + c.crossed + c.overflow
                          + book.pending)


# --------------------------------------------------------------------------- futures rules


def test_futures_book_buffers_until_the_snapshot_and_drops_the_stale_diffs():
    book = futures_book()
    assert book.needs_snapshot and book.top() == (0, 0, 0, 0)
    book.on_diff(diff(90, 95, 89, bids=[(100, 1)]))  # u < lastUpdateId: stale
    book.on_diff(diff(96, 99, 95, bids=[(100, 2)]))  # u < lastUpdateId: stale
    book.on_diff(diff(100, 105, 99, bids=[(100, 9)]))  # U <= 100 <= u: the first applied
    book.on_diff(diff(106, 108, 105, asks=[(101, 0)]))
    assert book.pending == 4 and book.counters.applied == 0
    book.on_snapshot(snapshot(100))
    c = book.counters
    assert (c.dropped_stale, c.applied, c.snapshots, book.pending) == (2, 2, 1, 0)
    assert book.state is BookState.LIVE and book.update_id == 108
    assert book.top() == (100, 9, 102, 4)
    assert_invariant(book)


def test_futures_first_diff_may_end_at_the_snapshot_id():
    book = futures_book()
    book.on_snapshot(snapshot(100))
    assert book.state is BookState.SYNCING
    assert book.on_diff(diff(97, 100, 96, bids=[(100, 1)]))  # U <= 100 <= u with u == 100
    assert book.top()[:2] == (100, 1)


def test_futures_first_diff_starting_past_the_snapshot_is_a_gap():
    book = futures_book()
    book.on_snapshot(snapshot(100))
    assert not book.on_diff(diff(101, 103, 100))  # U > lastUpdateId: the snapshot is too old
    c = book.counters
    assert (c.gaps, c.resyncs, book.pending) == (1, 1, 1) and book.needs_snapshot
    book.on_snapshot(snapshot(102))  # the buffered diff bridges the new one
    assert book.state is BookState.LIVE and book.update_id == 103 and c.applied == 1
    assert_invariant(book)


def test_futures_pu_gap_resyncs_and_buffers_meanwhile():
    book = futures_book()
    book.on_snapshot(snapshot(100))
    assert book.on_diff(diff(100, 105, 99, bids=[(100, 6)]))
    assert not book.on_diff(diff(107, 110, 106, bids=[(98, 1)]))  # pu 106 != previous u 105
    c = book.counters
    assert (c.gaps, c.resyncs) == (1, 1) and book.needs_snapshot
    assert book.top() == (0, 0, 0, 0) and book.size(BID) == 0  # the book was discarded
    assert not book.on_diff(diff(111, 112, 110, asks=[(101, 8)]))  # buffered, not applied
    assert book.pending == 2
    book.on_snapshot(snapshot(109))
    assert book.update_id == 112 and book.top() == (100, 5, 101, 8)
    assert c.applied == 3 and c.snapshots == 2
    assert_invariant(book)


def test_futures_book_drops_a_repeated_diff_once_live():
    book = futures_book()
    book.on_snapshot(snapshot(100))
    first = diff(100, 105, 99, bids=[(100, 6)])
    assert book.on_diff(first)
    assert not book.on_diff(first)
    assert book.counters.dropped_stale == 1 and book.counters.gaps == 0
    assert book.state is BookState.LIVE


def test_crossed_book_is_discarded_and_resynced():
    book = futures_book()
    book.on_snapshot(snapshot(100))
    assert not book.on_diff(diff(100, 105, 99, bids=[(101, 1)]))  # bid 101 >= best ask 101
    c = book.counters
    assert (c.crossed, c.resyncs, c.applied) == (1, 1, 0)
    assert book.needs_snapshot and book.top() == (0, 0, 0, 0)
    assert_invariant(book)


def test_a_crossed_snapshot_is_rejected():
    book = futures_book()
    book.on_snapshot(snapshot(100, bids=[(101, 1)], asks=[(100, 1)]))
    assert book.needs_snapshot and book.counters.bad_snapshots == 1


def test_zero_quantity_removes_a_level_and_the_next_one_becomes_best():
    book = futures_book()
    book.on_snapshot(snapshot(100, bids=[(100, 5), (99, 7), (98, 0)], asks=[(101, 3), (102, 4)]))
    assert book.size(BID) == 2  # a snapshot level of quantity 0 is no level
    assert book.on_diff(diff(100, 101, 99, bids=[(100, 0), (97, 0)], asks=[(101, 0)]))
    assert book.top() == (99, 7, 102, 4)
    assert book.size(BID) == 1 and book.size(ASK) == 1
    assert book.on_diff(diff(102, 102, 101, bids=[(100, 2)]))  # a removed price comes back
    assert book.levels(BID, 5).tolist() == [[100, 2], [99, 7]]


def test_a_snapshot_while_live_is_ignored():
    book = futures_book()
    book.on_snapshot(snapshot(100))
    book.on_diff(diff(100, 105, 99))
    book.on_snapshot(snapshot(200, bids=[(50, 1)], asks=[(60, 1)]))
    assert book.counters.ignored_snapshots == 1 and book.top() == (100, 5, 101, 3)


@pytest.mark.parametrize("bad", [
    diff(100, 105, 99, symbol="ETHUSDT"),  # another symbol's
    diff(106, 105, 99),  # U above u
    diff(100, 105, None),  # a spot diff (no pu) in a futures book
])
def test_malformed_diffs_are_counted_and_change_nothing(bad):
    book = futures_book()
    book.on_snapshot(snapshot(100))
    assert not book.on_diff(bad)
    assert book.counters.malformed == 1 and book.state is BookState.SYNCING
    assert_invariant(book)


def test_discard_drops_a_synced_book_and_counts_a_resync_once():
    book = futures_book()
    book.discard()  # nothing to lose yet
    assert book.counters.resyncs == 0 and book.needs_snapshot
    book.on_snapshot(snapshot(100))
    book.on_diff(diff(100, 105, 99))
    book.discard()
    book.discard()
    assert book.counters.resyncs == 1 and book.needs_snapshot and book.top() == (0, 0, 0, 0)
    book.on_diff(diff(106, 107, 105))  # buffered until the next snapshot
    book.on_snapshot(snapshot(106))
    assert book.update_id == 107 and book.state is BookState.LIVE
    assert_invariant(book)


def test_a_full_buffer_evicts_its_oldest_diff():
    book = futures_book(max_pending=3)
    for u in range(1, 6):
        book.on_diff(diff(u, u, u - 1))
    assert (book.pending, book.counters.overflow) == (3, 2)
    book.on_snapshot(snapshot(3))
    assert book.update_id == 5 and book.counters.applied == 3
    assert_invariant(book)


def test_on_applied_sees_buffered_diffs_applied_by_the_snapshot():
    seen = []
    book = OrderBook(SYM, SyncRule.FUTURES, on_applied=lambda b, d: seen.append((d.final_update_id,
                                                                                 b.top())))
    book.on_diff(diff(100, 101, 99, bids=[(100, 1)]))
    book.on_diff(diff(102, 103, 101, bids=[(100, 2)]))
    book.on_snapshot(snapshot(100))
    assert seen == [(101, (100, 1, 101, 3)), (103, (100, 2, 101, 3))]


# --------------------------------------------------------------------------- spot rules


def test_spot_drops_diffs_up_to_the_snapshot_id_and_starts_at_id_plus_one():
    book = spot_book()
    book.on_diff(diff(95, 100))  # u <= lastUpdateId: stale (futures would apply it)
    book.on_diff(diff(101, 104, bids=[(100, 3)]))  # U <= 101 <= u
    book.on_snapshot(snapshot(100))
    c = book.counters
    assert (c.dropped_stale, c.applied, book.update_id) == (1, 1, 104)
    assert book.top()[:2] == (100, 3)


def test_spot_first_diff_past_id_plus_one_is_a_gap():
    book = spot_book()
    book.on_snapshot(snapshot(100))
    assert not book.on_diff(diff(102, 104))
    assert book.counters.gaps == 1 and book.needs_snapshot


def test_spot_requires_each_diff_to_start_at_the_previous_u_plus_one():
    book = spot_book()
    book.on_snapshot(snapshot(100))
    assert book.on_diff(diff(99, 103))
    assert book.on_diff(diff(104, 110, asks=[(101, 0)]))
    assert book.top() == (100, 5, 102, 4)
    assert not book.on_diff(diff(112, 115))  # U 112 != 110 + 1
    assert book.counters.gaps == 1 and book.needs_snapshot
    assert_invariant(book)


def test_a_futures_diff_in_a_spot_book_is_malformed():
    book = spot_book()
    assert not book.on_diff(diff(1, 2, 0))
    assert book.counters.malformed == 1


# --------------------------------------------------------------------------- kernels vs a reference


class DictBook:
    """The obviously correct reference: two dicts, best levels by sorting."""

    def __init__(self) -> None:
        self.sides: tuple[dict[int, int], dict[int, int]] = ({}, {})

    def apply(self, side: int, px: int, qty: int) -> None:
        if qty:
            self.sides[side][px] = qty
        else:
            self.sides[side].pop(px, None)

    def levels(self, side: int, n: int) -> list[list[int]]:
        book = self.sides[side]
        return [[p, book[p]] for p in sorted(book, reverse=side == BID)[:n]]


def test_dict_book_reference_is_itself_right():
    ref = DictBook()
    for side, px, qty in [(BID, 10, 1), (BID, 12, 2), (BID, 11, 3), (BID, 12, 0), (ASK, 20, 1),
                          (ASK, 19, 4)]:
        ref.apply(side, px, qty)
    assert ref.levels(BID, 5) == [[11, 3], [10, 1]] and ref.levels(ASK, 1) == [[19, 4]]


def capacity(book: OrderBook) -> int:
    """The book's hash slots per side."""
    return book._store.shape[2]


def assert_tables(book: OrderBook) -> None:
    """The storage invariants: each side's dense list holds ``size`` distinct levels, every one
    reachable through its hash slot, the load is <= 1/2, and the heap holds every live price."""
    slots, lv, heap = book._store
    meta = book._meta
    cap = capacity(book)
    assert cap & (cap - 1) == 0 and cap >= meta[_M_FLOOR]
    assert meta[_M_SHIFT] == 64 - (cap.bit_length() - 1)
    for side in (BID, ASK):
        n = int(meta[_M_COUNT + side])
        assert n == book.size(side) and 2 * n <= cap  # load <= 1/2
        px, qty = lv[side, 0 : 2 * n : 2], lv[side, 1 : 2 * n : 2]
        assert len(set(px.tolist())) == n and (px > 0).all() and (qty > 0).all()
        used = slots[side][slots[side] != _EMPTY]
        assert sorted(used.tolist()) == list(range(1, n + 1))  # one slot per level
        for j, p in enumerate(px.tolist()):
            assert slots[side, _find_nb(slots, lv, side, p, meta[_M_SHIFT])] == j + 1
        live = set((px if side == ASK else -px).tolist())
        assert live <= set(heap[side, : meta[_M_HEAP + side]].tolist())


@pytest.mark.parametrize("seed", range(4))
def test_book_kernels_match_a_dict_book_through_growth_and_heap_compaction(seed):
    rng = np.random.default_rng(seed)
    book, ref = OrderBook(SYM, SyncRule.FUTURES, capacity=16), DictBook()
    book.on_snapshot(snapshot(1, bids=[(1000, 1)], asks=[(1_000_000, 1)]))
    ref.apply(BID, 1000, 1)
    ref.apply(ASK, 1_000_000, 1)
    # Bids live in [1, 5000] and asks in [5001, 10000]: never crossed, many removals of the best.
    for u in range(1, 1500):
        n = int(rng.integers(1, 40))
        sides = rng.integers(2, size=n)
        px = np.where(sides == BID, rng.integers(1, 5001, size=n), rng.integers(5001, 10_001,
                                                                                 size=n))
        qty = np.where(rng.random(n) < 0.4, 0, rng.integers(1, 1000, size=n))
        order = np.argsort(sides, kind="stable")  # bids first, each side in its drawn order
        bids = [(int(p), int(q)) for s, p, q in zip(sides[order], px[order], qty[order],
                                                     strict=True) if s == BID]
        asks = [(int(p), int(q)) for s, p, q in zip(sides[order], px[order], qty[order],
                                                     strict=True) if s == ASK]
        for p, q in bids:
            ref.apply(BID, p, q)
        for p, q in asks:
            ref.apply(ASK, p, q)
        assert book.on_diff(diff(u, u, u - 1, bids=bids, asks=asks))
        want = [*(ref.levels(BID, 1)[0] if ref.sides[BID] else [0, 0]),
                *(ref.levels(ASK, 1)[0] if ref.sides[ASK] else [0, 0])]
        assert list(book.top()) == want
        if u % 50 == 0:
            for side in (BID, ASK):
                assert book.levels(side, 25).tolist() == ref.levels(side, 25)
                assert book.size(side) == len(ref.sides[side])
            assert_tables(book)
    assert book.size(BID) > 1000  # the table grew well past its 16 starting slots


def _random_diff(rng, u, ref, p_remove, live_only=False):
    """A diff of up to 40 levels, each a removal with probability ``p_remove``, applied to
    ``ref`` too: bids in [1, 5000], asks in [5001, 10000], or (``live_only``) the live ones."""
    pools = [np.arange(1, 5001), np.arange(5001, 10_001)]
    if live_only:
        pools = [np.array(sorted(ref.sides[s])) if ref.sides[s] else pools[s] for s in (BID, ASK)]
    n = int(rng.integers(1, 40))
    sides = np.sort(rng.integers(2, size=n))  # bids first
    px = np.where(sides == BID, rng.choice(pools[BID], n), rng.choice(pools[ASK], n))
    qty = np.where(rng.random(n) < p_remove, 0, rng.integers(1, 1000, size=n))
    levels = [(int(s), int(p), int(q)) for s, p, q in zip(sides, px, qty, strict=True)]
    for s, p, q in levels:
        ref.apply(s, p, q)
    return diff(u, u, u - 1, bids=[(p, q) for s, p, q in levels if s == BID],
                asks=[(p, q) for s, p, q in levels if s == ASK])


def assert_same_book(book: OrderBook, ref: DictBook) -> None:
    want = [*(ref.levels(BID, 1)[0] if ref.sides[BID] else [0, 0]),
            *(ref.levels(ASK, 1)[0] if ref.sides[ASK] else [0, 0])]
    assert list(book.top()) == want
    for side in (BID, ASK):
        assert book.size(side) == len(ref.sides[side])
        assert book.levels(side, book.size(side)).tolist() == ref.levels(side, len(ref.sides[side]))
    assert_tables(book)


@pytest.mark.parametrize("seed", range(3))
def test_a_book_that_loses_most_levels_shrinks_its_table_and_keeps_every_level(seed):
    rng = np.random.default_rng(seed)
    book, ref = OrderBook(SYM, SyncRule.FUTURES, capacity=16), DictBook()
    book.on_snapshot(snapshot(1, bids=[(1000, 1)], asks=[(1_000_000, 1)]))
    ref.apply(BID, 1000, 1)
    ref.apply(ASK, 1_000_000, 1)
    caps = []
    # Grow to thousands of levels a side, then remove live levels (re-setting a few) until
    # hardly any are left.
    for u in range(1, 1401):
        assert book.on_diff(_random_diff(rng, u, ref, 0.1) if u <= 700
                            else _random_diff(rng, u, ref, 0.95, live_only=True))
        most = max(book.size(BID), book.size(ASK))
        assert capacity(book) <= max(16, 8 * most)  # never sparser than 1/8 above the floor
        if caps and capacity(book) < caps[-1]:  # a shrink leaves room: load <= 1/4
            assert capacity(book) == 16 or 4 * most <= capacity(book) < 8 * most
        caps.append(capacity(book))
        if u % 25 == 0:
            assert_same_book(book, ref)
    assert_same_book(book, ref)
    biggest = max(caps)
    assert biggest >= 8192 and book.size(BID) + book.size(ASK) < 100
    assert capacity(book) <= biggest // 64  # shrunk several times, by the diffs
    assert sum(b < a for a, b in itertools.pairwise(caps)) >= 3


def test_a_table_never_shrinks_below_its_starting_capacity():
    book = futures_book(capacity=1000)  # rounded up to 1024
    book.on_snapshot(snapshot(1, bids=[(p, 1) for p in range(1, 3001)],
                              asks=[(p, 1) for p in range(5001, 8001)]))
    assert capacity(book) == 16384  # grown for the snapshot in one step
    assert book.on_diff(diff(1, 2, 0, bids=[(p, 0) for p in range(1, 3001)],
                             asks=[(p, 0) for p in range(5002, 8001)]))
    assert (book.size(BID), book.size(ASK)) == (0, 1) and capacity(book) == 1024
    assert book.top() == (0, 0, 5001, 1)
    assert_tables(book)


def test_a_diff_that_needs_room_but_leaves_the_book_sparse_ends_in_a_small_table():
    book = futures_book(capacity=16)
    book.on_snapshot(snapshot(1))  # 2 levels a side: 16 slots
    # 200 removals of absent prices: room for 200 new levels is needed first (the table grows),
    # then nothing is left but the 4 levels (it shrinks back within the same diff).
    assert book.on_diff(diff(1, 2, 0, bids=[(p, 0) for p in range(1, 99)],
                             asks=[(p, 0) for p in range(103, 205)]))
    assert capacity(book) == 16 and book.top() == (100, 5, 101, 3)
    assert book.levels(BID, 5).tolist() == [[100, 5], [99, 7]]
    assert_tables(book)


def test_a_table_grown_by_the_diffs_shrinks_back_at_the_snapshot_of_a_resync():
    book = futures_book(capacity=16)
    big = [(p, 1) for p in range(1, 2001)]
    book.on_snapshot(snapshot(1, bids=big, asks=[(p, 1) for p in range(3001, 5001)]))
    assert capacity(book) == 8192 and book.size(BID) == 2000  # grown for it in one step
    for u in range(1, 11):  # more levels: the table grows
        assert book.on_diff(diff(u, u, u - 1, asks=[(p, 2) for p in range(5001 + 500 * u,
                                                                             5501 + 500 * u)]))
    assert capacity(book) == 16384
    assert not book.on_diff(diff(20, 20, 19))  # a gap: resync
    book.on_snapshot(snapshot(30, bids=[(100, 5), (99, 7)], asks=[(101, 3)]))
    assert capacity(book) == 16 and book.size(BID) == 2 and book.size(ASK) == 1
    assert book.on_diff(diff(30, 31, 30, asks=[(102, 9)]))
    assert book.top() == (100, 5, 101, 3) and book.levels(ASK, 3).tolist() == [[101, 3], [102, 9]]
    assert_tables(book)
