"""A local order book per symbol, kept in sync with Binance's depth stream; offline replay.

Sync follows Binance's documented procedure ("How to manage a local order book correctly"):
buffer the diffs, take a REST snapshot, drop the diffs it already holds, start at the first diff
that bridges it, then require every diff to continue the previous one:

- USDT-M futures (``SyncRule.FUTURES``): drop ``u < lastUpdateId``; the first diff applied has
  ``U <= lastUpdateId <= u``; each later diff has ``pu ==`` the previous diff's ``u``.
- Spot (``SyncRule.SPOT``, no ``pu``): drop ``u <= lastUpdateId``; the first diff applied has
  ``U <= lastUpdateId + 1 <= u``; each later diff has ``U ==`` the previous ``u + 1``.

A diff that does not continue (a gap), or one that leaves the book crossed (best ask <= best bid),
discards the book: it then needs a new snapshot and buffers diffs meanwhile (a resync). Once live,
a diff at or below the last applied ``u`` is dropped as stale (a repeat) rather than a gap.

Levels are int64 price ticks (exact, ``wire.FIXED_DECIMALS``). Each side keeps its levels as a
dense list of (price, qty) pairs, an open-addressing hash table of price -> position in that list,
and a lazy-deletion heap of prices for the best level, all in numpy arrays updated by compiled
kernels: a diff of tens of levels costs one kernel call, where a Python dict book costs ~150 ns
per level on the development machine (docs/market-data.md). ``OrderBook.band_row`` reads the OB
features' book summary (``features.obf.book_row``) straight off the dense lists, one pass per side
without sorting, reading 16 bytes per level whatever the table's size.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from dolphin.adapters.binance.wire import (
    Decoder,
    DepthDiff,
    DepthSnapshot,
    Record,
    read_capture,
    to_float_array,
)
from dolphin.features.obf import (
    B_ASK_DEPTH,
    B_ASK_QTY,
    B_BID_DEPTH,
    B_BID_QTY,
    B_CROSSED,
    B_MID,
    BOOK_COLS,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

BID, ASK = 0, 1
# ``store`` (3, 2, capacity) int64, per side: [0] the hash slots, each 1 + the position of its
# level in the dense list or _EMPTY; [1] the dense list, level j's price at 2j and qty at 2j + 1
# for j < count (count <= capacity / 2: it fits); [2] the heap.
_EMPTY = 0  # a free hash slot
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: prices are multiples of 10^k
# _meta layout: hash shift, the smallest capacity (the table never shrinks below it), level count
# per side, heap length per side, then the best levels.
_M_SHIFT, _M_FLOOR, _M_COUNT, _M_HEAP, _M_TOP = 0, 1, 2, 4, 6  # _M_TOP: bid px, qty, ask px, qty
_META_LEN = 10
# _SPARSE: applied, not crossed, and both sides at load <= 1/8 of a table above its floor. The
# two that ask for a new table come last: one compare (>= _NEED_ROOM) tells them.
_OK, _BAD_PRICE, _CROSSED, _NEED_ROOM, _SPARSE = 0, 1, 2, 3, 4
_EXACT = 2**53  # ticks below this are exact as float64
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: Hash slots per side to start with: a BTCUSDT book (a 1000-level snapshot and what the diffs
#: add) holds 2-3k levels a side; the table doubles while it is over half full, and shrinks
#: (to load <= 1/4, never below this) once both sides are at 1/8, e.g. after a resync.
_CAPACITY = 4096


class BookState(IntEnum):
    """Where a book is in the sync procedure (the adapter's own states, not domain states)."""

    NEEDS_SNAPSHOT = 0  # buffering diffs until a snapshot arrives
    SYNCING = 1  # holds a snapshot; waiting for the first diff that bridges it
    LIVE = 2  # in sync: every applied diff continued the previous one


class SyncRule(IntEnum):
    """Which of Binance's two sync rules a depth stream follows."""

    FUTURES = 0  # USDT-M: diffs carry pu, the previous diff's u
    SPOT = 1  # spot: no pu; U must be the previous u + 1


@dataclass(slots=True)
class BookCounters:
    """What a book did with its inputs.

    Every diff received ends in exactly one of ``applied``, ``dropped_stale``, ``malformed``,
    ``crossed`` (it crossed the book, which was discarded) and ``overflow`` (evicted from a full
    buffer), or is still pending: ``received == applied + dropped_stale + malformed + crossed +
    overflow + pending``. ``resyncs`` counts every loss of a synced book: each of the ``gaps``,
    each ``crossed`` and each ``discard()`` of a synced book.
    """

    received: int = 0
    applied: int = 0
    dropped_stale: int = 0
    malformed: int = 0
    crossed: int = 0
    overflow: int = 0
    gaps: int = 0
    resyncs: int = 0
    snapshots: int = 0  # snapshots loaded
    ignored_snapshots: int = 0  # offered while live, so not needed
    bad_snapshots: int = 0  # crossed or not this book's: rejected

    def as_dict(self) -> dict[str, int]:
        """Return the counters by name."""
        return asdict(self)


# --------------------------------------------------------------------------- kernels


@njit(cache=True)
def _home_nb(key, shift):
    return np.int64((np.uint64(key) * _GOLDEN) >> np.uint64(shift))


@njit(cache=True)
def _find_nb(slots, lv, side, key, shift):
    """Return the slot holding ``key`` on ``side``, or the free slot where it would go.

    A slot holds 1 + its level's position in the dense list ``lv`` (prices at even offsets).
    """
    mask = slots.shape[1] - 1
    i = _home_nb(key, shift)
    while True:
        s = slots[side, i]
        if s == _EMPTY or lv[side, 2 * (s - 1)] == key:
            return i
        i = (i + 1) & mask


@njit(cache=True)
def _delete_nb(slots, lv, side, i, shift):
    """Free slot ``i`` by backward-shift deletion (linear probing without tombstones)."""
    mask = slots.shape[1] - 1
    j = i
    while True:
        j = (j + 1) & mask
        s = slots[side, j]
        if s == _EMPTY:
            break
        h = _home_nb(lv[side, 2 * (s - 1)], shift)
        # The entry at j may fill the hole at i unless its home lies cyclically in (i, j].
        if (j > i and (h <= i or h > j)) or (j < i and h <= i and h > j):
            slots[side, i] = s
            i = j
    slots[side, i] = _EMPTY


@njit(cache=True)
def _sift_down_nb(heap, side, i, n):
    item = heap[side, i]
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and heap[side, c + 1] < heap[side, c]:
            c += 1
        if heap[side, c] >= item:
            break
        heap[side, i] = heap[side, c]
        i = c
    heap[side, i] = item


@njit(cache=True)
def _heap_push_nb(heap, side, n, cost):
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        if heap[side, parent] <= cost:
            break
        heap[side, i] = heap[side, parent]
        i = parent
    heap[side, i] = cost


@njit(cache=True)
def _heap_pop_nb(heap, side, n):
    """Remove the smallest of the ``n`` heap entries (the caller keeps ``n - 1``)."""
    heap[side, 0] = heap[side, n - 1]
    if n > 1:
        _sift_down_nb(heap, side, 0, n - 1)


@njit(cache=True)
def _cost_nb(side, px):
    # Both heaps are min-heaps: a bid's cost is its negated price.
    return px if side == ASK else -px


@njit(cache=True)
def _rebuild_heap_nb(lv, heap, meta, side):
    """Refill ``side``'s heap with its live prices only (drops the lazily deleted ones)."""
    n = meta[_M_COUNT + side]
    for j in range(n):
        heap[side, j] = _cost_nb(side, lv[side, 2 * j])
    for i in range(n // 2 - 1, -1, -1):
        _sift_down_nb(heap, side, i, n)
    meta[_M_HEAP + side] = n


@njit(cache=True)
def _refresh_top_nb(slots, lv, heap, meta, side):
    """Pop deleted prices off ``side``'s heap and record its best level (0, 0 when empty)."""
    shift = meta[_M_SHIFT]
    n = meta[_M_HEAP + side]
    top = _M_TOP + 2 * side
    meta[top] = 0
    meta[top + 1] = 0
    while n > 0:
        px = _cost_nb(side, heap[side, 0])
        s = slots[side, _find_nb(slots, lv, side, px, shift)]
        if s != _EMPTY:
            meta[top] = px
            meta[top + 1] = lv[side, 2 * s - 1]  # the qty of position s - 1
            break
        _heap_pop_nb(heap, side, n)
        n -= 1
    meta[_M_HEAP + side] = n


@njit(cache=True)
def _set_level_nb(slots, lv, heap, meta, side, px, qty):
    """Set ``side``'s level at ``px`` to ``qty``; qty 0 removes it.

    A removal moves the dense list's last level into the freed position (and repoints its slot),
    so the list stays dense: positions ``0 .. count - 1``.
    """
    shift = meta[_M_SHIFT]
    i = _find_nb(slots, lv, side, px, shift)
    s = slots[side, i]
    if qty == 0:
        if s != _EMPTY:
            _delete_nb(slots, lv, side, i, shift)
            last = meta[_M_COUNT + side] - 1
            j = s - 1
            if j != last:
                moved = lv[side, 2 * last]
                slots[side, _find_nb(slots, lv, side, moved, shift)] = j + 1
                lv[side, 2 * j] = moved
                lv[side, 2 * j + 1] = lv[side, 2 * last + 1]
            meta[_M_COUNT + side] = last
        return
    if s == _EMPTY:
        n = meta[_M_COUNT + side]
        slots[side, i] = n + 1
        lv[side, 2 * n] = px
        lv[side, 2 * n + 1] = qty
        meta[_M_COUNT + side] = n + 1
        h = meta[_M_HEAP + side]
        _heap_push_nb(heap, side, h, _cost_nb(side, px))
        meta[_M_HEAP + side] = h + 1
    else:
        lv[side, 2 * s - 1] = qty


@njit(cache=True)
def _room_nb(slots, lv, heap, meta, side, n_new):
    """Return whether ``side`` takes ``n_new`` more levels (load <= 1/2; compacts the heap)."""
    if meta[_M_COUNT + side] + n_new > slots.shape[1] // 2:
        return False
    if meta[_M_HEAP + side] + n_new > heap.shape[1]:
        _rebuild_heap_nb(lv, heap, meta, side)  # now count + n_new <= capacity / 2
    return True


@njit(cache=True)
def _apply_nb(store, meta, levels, n_bids):
    """Apply ``levels`` (bids first) in order and refresh both tops; return a status.

    ``store`` stacks the slots, dense lists and heaps (one argument: each costs at the call).
    ``_NEED_ROOM`` and ``_BAD_PRICE`` (a price <= 0) leave the book untouched; ``_CROSSED``
    means the levels were applied and left the best ask at or below the best bid; ``_SPARSE``
    that they were applied (not crossed) and left the table sparse enough to shrink.
    """
    slots, lv, heap = store[0], store[1], store[2]
    n = levels.shape[0]
    for r in range(n):
        if levels[r, 0] <= 0:
            return _BAD_PRICE
    if not _room_nb(slots, lv, heap, meta, BID, n_bids) or not _room_nb(slots, lv, heap, meta,
                                                                       ASK, n - n_bids):
        return _NEED_ROOM
    for r in range(n):
        side = BID if r < n_bids else ASK
        _set_level_nb(slots, lv, heap, meta, side, levels[r, 0], levels[r, 1])
    _refresh_top_nb(slots, lv, heap, meta, BID)
    _refresh_top_nb(slots, lv, heap, meta, ASK)
    bid_px, ask_px = meta[_M_TOP], meta[_M_TOP + 2]
    if bid_px > 0 and ask_px > 0 and ask_px <= bid_px:
        return _CROSSED
    cap = slots.shape[1]
    if cap > meta[_M_FLOOR] and 8 * max(meta[_M_COUNT], meta[_M_COUNT + 1]) <= cap:
        return _SPARSE
    return _OK


@njit(cache=True)
def _clear_nb(store, meta):
    store[0, :, :] = _EMPTY
    for m in range(_M_COUNT, _META_LEN):
        meta[m] = 0


@njit(cache=True)
def _rehash_nb(old, store, meta):
    """Move ``old``'s levels into the empty ``store`` (``meta`` set for it but for the heaps).

    The dense lists keep their order, so the levels' order, and every sum over them, is the same
    in the new table.
    """
    slots, lv, heap = store[0], store[1], store[2]
    shift = meta[_M_SHIFT]
    mask = slots.shape[1] - 1
    for side in range(2):
        n = meta[_M_COUNT + side]
        lv[side, : 2 * n] = old[1, side, : 2 * n]
        for j in range(n):
            i = _home_nb(lv[side, 2 * j], shift)
            while slots[side, i] != _EMPTY:
                i = (i + 1) & mask
            slots[side, i] = j + 1
        _rebuild_heap_nb(lv, heap, meta, side)
        _refresh_top_nb(slots, lv, heap, meta, side)


@njit(cache=True)
def _top_levels_nb(store, meta, side, out):
    """Write ``side``'s best ``len(out)`` levels into ``out``, best first; return how many."""
    slots, lv, heap = store[0], store[1], store[2]
    n = meta[_M_HEAP + side]
    work = heap[side : side + 1, :n].copy()  # popped in order; the book's heap stays as it is
    shift = meta[_M_SHIFT]
    got = 0
    last = 0  # no cost is 0 (prices are positive)
    while n > 0 and got < out.shape[0]:
        cost = work[0, 0]
        _heap_pop_nb(work, 0, n)
        n -= 1
        if cost == last:
            continue  # a price pushed again after a removal
        px = _cost_nb(side, cost)
        s = slots[side, _find_nb(slots, lv, side, px, shift)]
        if s != _EMPTY:
            out[got, 0] = px
            out[got, 1] = lv[side, 2 * s - 1]
            got += 1
            last = cost
    return got


@njit(cache=True)
def _tick_float_nb(t):
    """Return int64 ``t`` ticks as the float nearest ``t / 10**8`` (``wire.to_float``'s value)."""
    if -_EXACT < t < _EXACT:
        return t / 1e8  # exact in, correctly rounded out
    if t >= 0:
        return _big_tick_float_nb(t)
    return -_big_tick_float_nb(-t) if t != _INT64_MIN else -92233720368.54775808


@njit(cache=True)
def _big_tick_float_nb(t):
    """The float nearest ``t / 10**8`` for ``t >= 2**53`` (quantities over 90 million units).

    ``t`` is ``q`` whole units and a remainder ``r``: ``q + r / 1e8`` is within one ulp of the
    answer, and the nearest of it and its two neighbours ``c`` is the one with the smallest
    ``|(q - c)·1e8 + r|``, a residual computed exactly (``q - c`` by Sterbenz; it and the rest
    fit 53 bits). No ``t / 10**8`` is halfway between two floats, so there is no tie.
    """
    q = t // 100_000_000
    r = t - q * 100_000_000
    qf = float(q)
    best = qf + r / 1e8
    err = abs((qf - best) * 1e8 + r)
    for c in (np.nextafter(best, -np.inf), np.nextafter(best, np.inf)):
        e = abs((qf - c) * 1e8 + r)
        if e < err:
            best, err = c, e
    return best


@njit(cache=True)
def _passes_nb(t, x, strict):
    f = _tick_float_nb(t)
    return f > x if strict else f >= x


@njit(cache=True)
def _first_tick_nb(x, strict):
    """Return the smallest tick ``t >= 1`` whose float is ``>= x`` (``> x`` when ``strict``),
    or -1 when no int64 tick's is (``x`` above every tick's float, or NaN).

    A tick's float (:func:`_tick_float_nb`) does not decrease with the tick, so this is a
    binary search; ``x·1e8`` brackets the answer within a few ticks, so it takes a few steps.
    """
    if x != x or not _passes_nb(_INT64_MAX, x, strict):
        return -1
    if _passes_nb(1, x, strict):
        return 1
    a, b = 0, _INT64_MAX  # a fails (or is 0, no tick), b passes
    g = x * 1e8
    if 2.0 < g < 9.2e18:
        lo, hi = np.int64(g * (1.0 - 1e-12)) - 1, np.int64(g * (1.0 + 1e-12)) + 1
        if lo >= 1 and not _passes_nb(lo, x, strict):
            a = lo
        if _passes_nb(hi, x, strict):
            b = hi
    while b - a > 1:
        m = a + (b - a) // 2
        if _passes_nb(m, x, strict):
            b = m
        else:
            a = m
    return b


@njit(cache=True)
def _side_depth_nb(lv, side, n, lo_t, hi_t):
    """Sum ``price_ticks × qty_ticks`` (as floats) of ``side``'s levels with ``lo_t <= px <= hi_t``,
    in dense-list order."""
    depth = 0.0
    for j in range(n):
        k = lv[side, 2 * j]
        if lo_t <= k <= hi_t:
            depth += float(k) * float(lv[side, 2 * j + 1])
    return depth


@njit(cache=True)
def _band_row_nb(store, meta, band, out):
    """Kernel of :meth:`OrderBook.band_row`: ``book_row`` of the stored levels, unsorted.

    The band's edges become exact tick bounds (a level's float is in the band exactly when its
    tick is within them), so each side is one pass over its dense list of levels with integer
    compares, summing ``price_ticks × qty_ticks`` (as floats) of the levels inside; the sum is
    scaled to units once at the end.
    """
    bid_px, ask_px = meta[_M_TOP], meta[_M_TOP + 2]
    if bid_px == 0 or ask_px == 0:  # an empty side
        out[:] = np.nan
        return
    best_bid, best_ask = _tick_float_nb(bid_px), _tick_float_nb(ask_px)
    mid = 0.5 * (best_bid + best_ask)
    lo, hi = mid * (1.0 - band), mid * (1.0 + band)
    lv = store[1]
    bid_depth = 0.0
    lo_t = _first_tick_nb(lo, False)  # the bids in the band: ticks >= lo_t (none when -1)
    if lo_t > 0:
        bid_depth = _side_depth_nb(lv, BID, meta[_M_COUNT + BID], lo_t, _INT64_MAX)
    # The asks in the band: ticks <= above - 1 (a NaN edge takes none, as book_row's).
    above = _first_tick_nb(hi, True) if hi == hi else 1
    hi_t = _INT64_MAX if above < 0 else above - 1
    ask_depth = _side_depth_nb(lv, ASK, meta[_M_COUNT + ASK], 1, hi_t)
    out[B_MID] = mid
    out[B_BID_DEPTH] = bid_depth * 1e-16  # ticks² -> units²
    out[B_ASK_DEPTH] = ask_depth * 1e-16
    out[B_BID_QTY] = _tick_float_nb(meta[_M_TOP + 1])
    out[B_ASK_QTY] = _tick_float_nb(meta[_M_TOP + 3])
    out[B_CROSSED] = 1.0 if best_ask <= best_bid else 0.0


# --------------------------------------------------------------------------- the book

Applied = Callable[["OrderBook", DepthDiff], None]


def _pow2(n: int) -> int:
    """The smallest power of two >= ``n`` and >= 16."""
    return 1 << (max(n, 16) - 1).bit_length()


class OrderBook:
    """One symbol's local book: feed it diffs and snapshots, read its top and levels.

    Diffs and snapshots are the ``wire`` records (levels validated there). ``on_diff`` returns
    whether the diff was applied; after ``False`` the book may need a snapshot
    (``needs_snapshot``), which the caller fetches and passes to ``on_snapshot``. ``on_applied``
    is called after every applied diff, including buffered diffs that ``on_snapshot`` applies.
    """

    def __init__(
        self, symbol: str, rule: SyncRule, *, max_pending: int = 10_000,
        capacity: int = _CAPACITY, on_applied: Applied | None = None,
    ) -> None:
        self.symbol = symbol
        self.on_applied = on_applied
        self.rule = rule
        self._futures = rule is SyncRule.FUTURES
        self.state = BookState.NEEDS_SNAPSHOT
        #: the last applied diff's ``u``; while syncing, the snapshot's ``lastUpdateId``
        self.update_id = -1
        self.counters = BookCounters()
        self._max_pending = max_pending
        self._pending: deque[DepthDiff] = deque()
        self._meta = np.zeros(_META_LEN, dtype=np.int64)
        self._meta[_M_FLOOR] = _pow2(capacity)
        self._alloc(int(self._meta[_M_FLOOR]))

    # ---- reading

    @property
    def needs_snapshot(self) -> bool:
        """Whether the book waits for a snapshot (at start and after every resync)."""
        return self.state is BookState.NEEDS_SNAPSHOT

    @property
    def pending(self) -> int:
        """Diffs buffered for the next snapshot."""
        return len(self._pending)

    def top(self) -> tuple[int, int, int, int]:
        """Return ``(bid_px, bid_qty, ask_px, ask_qty)`` in ticks; 0s for an empty side."""
        bid_px, bid_qty, ask_px, ask_qty = self._meta[_M_TOP:].tolist()
        return bid_px, bid_qty, ask_px, ask_qty

    def levels(self, side: int, n: int) -> np.ndarray:
        """Return ``side``'s (``BID`` or ``ASK``) best ``n`` levels, best first, int64 (k, 2)."""
        out = np.empty((max(n, 0), 2), dtype=np.int64)
        got = _top_levels_nb(self._store, self._meta, side, out)
        return out[:got]

    def band_row(self, band_bps: float) -> np.ndarray:
        """Return :func:`dolphin.features.obf.book_row` of this book without sorting its levels.

        The ``(BOOK_COLS,)`` float64 row in ``book_row``'s layout and by its rules (mid, bid and
        ask notional within ``band_bps`` of mid, best quantities, crossed flag; all NaN when a
        side is empty) for the book's levels as floats (``wire.to_float``: ticks / 10**8), read
        as stored whatever the sync state, as :meth:`levels` reads them. One compiled pass over
        each side's dense list of levels (16 bytes a level, whatever the hash table's size):
        ~4 µs on a BTCUSDT book in cache (~9 µs out of it), where ``levels`` of both sides and
        ``book_row`` take ~0.7 ms (benchmarks/bench_book_band.py).

        Mid, the best quantities and the crossed flag equal ``book_row``'s bit for bit, and a
        level counts in the band exactly when ``book_row`` counts it (the float edges become
        exact tick bounds). The depths are not bit for bit ``book_row``'s: they add the same
        levels in dense-list order (the order they arrived in, a removal moving the last level
        into its place; a resize of the table keeps it), not best first, each as
        ``price_ticks × qty_ticks`` scaled by 1e-16 once at the end, not ``(price / 1e8) ×
        (qty / 1e8)``. With quantities >= 0 they agree to a relative ~1e-15 on real books, well
        inside 1e-12 (the worst-case bound, ~2n·1.1e-16 for n levels in the band, needs every
        rounding to go the same way).
        """
        out = np.empty(BOOK_COLS)
        _band_row_nb(self._store, self._meta, float(band_bps) * 1e-4, out)
        return out

    def size(self, side: int) -> int:
        """Return the number of levels on ``side``."""
        return int(self._meta[_M_COUNT + side])

    # ---- feeding

    def on_snapshot(self, snap: DepthSnapshot) -> None:
        """Load ``snap`` unless the book is live, then replay the buffered diffs over it."""
        c = self.counters
        if self.state is BookState.LIVE:
            c.ignored_snapshots += 1
            return
        if snap.symbol not in ("", self.symbol) or not self._load(snap):
            c.bad_snapshots += 1
            log.warning("book %s: rejected snapshot %d (crossed or another symbol's)",
                        self.symbol, snap.last_update_id)
            return
        c.snapshots += 1
        self.state, self.update_id = BookState.SYNCING, snap.last_update_id
        buffered, self._pending = list(self._pending), deque()
        for i, diff in enumerate(buffered):
            if self.state is BookState.NEEDS_SNAPSHOT:  # a gap or a crossed book: keep the rest
                self._pending.extend(buffered[i:])
                break
            self._take(diff)

    def discard(self) -> None:
        """Drop the levels: the book needs a new snapshot (diffs were missed: a reconnect).

        Buffered diffs stay (the next snapshot's procedure drops those it holds). Counted as a
        resync when the book had a snapshot to lose.
        """
        if self.state is not BookState.NEEDS_SNAPSHOT:
            self.counters.resyncs += 1
            log.info("book %s: discarded at %d: resync from a new snapshot", self.symbol,
                     self.update_id)
            self._discard()

    def on_diff(self, diff: DepthDiff) -> bool:
        """Apply, buffer or drop one diff; return whether it was applied to a synced book."""
        c = self.counters
        c.received += 1
        if (diff.symbol != self.symbol or diff.final_update_id < diff.first_update_id
                or (diff.prev_final_update_id >= 0) != self._futures):
            c.malformed += 1
            return False
        return self._take(diff)

    # ---- the procedure

    def _take(self, diff: DepthDiff) -> bool:
        """Take one well-formed diff in the current state."""
        if self.state is BookState.LIVE:
            if diff.final_update_id <= self.update_id:
                self.counters.dropped_stale += 1
                return False
            # The id a diff says it follows: pu on futures, U - 1 on spot.
            follows = diff.prev_final_update_id if self._futures else diff.first_update_id - 1
            if follows != self.update_id:
                return self._resync(diff, "a diff does not continue the previous one")
            return self._apply(diff)
        if self.state is BookState.NEEDS_SNAPSHOT:
            self._buffer(diff)
            return False
        return self._first(diff)

    def _first(self, diff: DepthDiff) -> bool:
        """Take one diff while syncing: drop it, apply it (the book goes live) or resync."""
        if self._stale_for_snapshot(diff):
            self.counters.dropped_stale += 1
            return False
        if not self._bridges(diff):
            return self._resync(diff, "the first diff after the snapshot starts past it")
        return self._apply(diff)

    def _stale_for_snapshot(self, diff: DepthDiff) -> bool:
        if self.rule is SyncRule.FUTURES:
            return diff.final_update_id < self.update_id
        return diff.final_update_id <= self.update_id

    def _bridges(self, diff: DepthDiff) -> bool:
        slack = 0 if self.rule is SyncRule.FUTURES else 1
        return diff.first_update_id <= self.update_id + slack

    def _resync(self, diff: DepthDiff, why: str) -> bool:
        c = self.counters
        c.gaps += 1
        c.resyncs += 1
        log.info("book %s: gap at diff U=%d u=%d after %d (%s): resync from a new snapshot",
                 self.symbol, diff.first_update_id, diff.final_update_id, self.update_id, why)
        self._discard()
        self._buffer(diff)
        return False

    def _apply(self, diff: DepthDiff) -> bool:
        status = _apply_nb(self._store, self._meta, diff.levels, diff.n_bids)
        if status >= _NEED_ROOM:
            status = self._resized(status, diff.levels, diff.n_bids)
        c = self.counters
        if status == _BAD_PRICE:
            c.malformed += 1
            return False
        if status == _CROSSED:
            c.crossed += 1
            c.resyncs += 1
            log.info("book %s: crossed after diff u=%d: discarded, resync from a new snapshot",
                     self.symbol, diff.final_update_id)
            self._discard()
            return False
        c.applied += 1
        self.state, self.update_id = BookState.LIVE, diff.final_update_id
        if self.on_applied is not None:
            self.on_applied(self, diff)
        return True

    def _buffer(self, diff: DepthDiff) -> None:
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            self.counters.overflow += 1
        self._pending.append(diff)

    def _discard(self) -> None:
        _clear_nb(self._store, self._meta)
        self.state, self.update_id = BookState.NEEDS_SNAPSHOT, -1

    def _load(self, snap: DepthSnapshot) -> bool:
        """Replace the levels with ``snap``'s; False (book left empty) when it is unusable.

        A table grown by the diffs before shrinks back here when the snapshot leaves it sparse.
        """
        _clear_nb(self._store, self._meta)
        status = _apply_nb(self._store, self._meta, snap.levels, snap.n_bids)
        if status >= _NEED_ROOM:
            status = self._resized(status, snap.levels, snap.n_bids)
        if status == _OK:
            return True
        self._discard()
        return False

    def _resized(self, status: int, levels: np.ndarray, n_bids: int) -> int:
        """Finish ``_apply_nb``'s ``status`` that asks for a new table; return the final status.

        ``_NEED_ROOM`` (nothing applied): grow until the levels fit, then apply them. ``_SPARSE``
        (applied): shrink the table to load <= 1/4, not below the floor.
        """
        while status == _NEED_ROOM:
            self._grow(len(levels))
            status = _apply_nb(self._store, self._meta, levels, n_bids)
        if status == _SPARSE:
            self._resize(self._fit(max(self.size(BID), self.size(ASK))))
            status = _OK
        return status

    # ---- storage

    def _fit(self, levels: int) -> int:
        """The capacity for ``levels`` levels a side: load <= 1/4, not below the floor."""
        return max(int(self._meta[_M_FLOOR]), _pow2(4 * levels))

    def _alloc(self, cap: int) -> None:
        """Take a new empty ``cap``-slot table (the meta's counts, heaps and tops stay)."""
        self._store = np.zeros((3, 2, cap), dtype=np.int64)  # slots, dense lists, heaps; per side
        self._meta[_M_SHIFT] = 64 - (cap.bit_length() - 1)

    def _resize(self, cap: int) -> None:
        """Move the levels into a ``cap``-slot table (their dense order kept)."""
        old = self._store
        self._alloc(cap)
        _rehash_nb(old, self._store, self._meta)

    def _grow(self, extra: int) -> None:
        need = 2 * (max(self.size(BID), self.size(ASK)) + extra)
        self._resize(_pow2(max(need, 2 * self._store.shape[2])))


# --------------------------------------------------------------------------- offline replay


@dataclass
class ReplayResult:
    """What :func:`replay` produced: one row per applied diff, and every counter."""

    symbol: list[str] = field(default_factory=list)
    update_id: list[int] = field(default_factory=list)  # the diff's u
    ts_event: list[int] = field(default_factory=list)  # the diff's E, ns
    top: list[tuple[int, int, int, int]] = field(default_factory=list)  # ticks, after the diff
    depth: list[np.ndarray] = field(default_factory=list)  # (2, N, 2) ticks when depth N > 0
    books: dict[str, OrderBook] = field(default_factory=dict)  # each symbol's final book
    decoder: Decoder = field(default_factory=Decoder)
    snapshots_seen: int = 0

    @property
    def rows(self) -> int:
        """Rows (applied diffs)."""
        return len(self.update_id)

    def totals(self) -> dict[str, int]:
        """Return the book counters summed over the symbols."""
        total = BookCounters().as_dict()
        for book in self.books.values():
            for name, value in book.counters.as_dict().items():
                total[name] += value
        return total

    def summary(self) -> str:
        """Return the counters as one line."""
        t = self.totals()
        return (f"{len(self.books)} symbol(s), {t['received']:,} diffs: {t['applied']:,} applied,"
                f" {t['dropped_stale']:,} stale, {t['gaps']:,} gaps, {t['resyncs']:,} resyncs,"
                f" {t['crossed']:,} crossed, {t['malformed']:,} malformed,"
                f" {t['overflow'] + sum(b.pending for b in self.books.values()):,} unsynced;"
                f" {t['snapshots']:,} of {self.snapshots_seen:,} snapshots used;"
                f" {self.decoder.seen:,} lines, {self.decoder.total_malformed:,} malformed lines")

    def why_no_rows(self) -> str:
        """Say why no diff was applied (call when ``rows`` is 0)."""
        if not self.snapshots_seen:
            return ("no depth snapshot in the capture(s), so no book state is exact; a capture "
                    "that continues an earlier one (no snapshot line) must be listed after it")
        return "no diff continued a depth snapshot (see the counters)"

    def frame(self, depth: int = 0) -> pd.DataFrame:
        """Return the rows as a frame: prices and quantities float64, NaN for a missing level."""
        import pandas as pd

        top = np.array(self.top, dtype=np.int64).reshape(-1, 4)
        cols: dict[str, object] = {
            "symbol": pd.Categorical(self.symbol),
            "update_id": np.array(self.update_id, dtype=np.int64),
            "ts_event": np.array(self.ts_event, dtype=np.int64),
        }
        names = ("best_bid", "best_bid_qty", "best_ask", "best_ask_qty")
        cols.update(_floats(names, top[:, 0::2], top[:, 1::2]))
        if depth:
            levels = np.array(self.depth, dtype=np.int64).reshape(-1, 2, depth, 2)
            for i in range(depth):
                names = (f"bid_px_{i}", f"bid_qty_{i}", f"ask_px_{i}", f"ask_qty_{i}")
                cols.update(_floats(names, levels[:, :, i, 0], levels[:, :, i, 1]))
        return pd.DataFrame(cols)


def _floats(names: tuple[str, ...], px: np.ndarray, qty: np.ndarray) -> dict[str, np.ndarray]:
    """Columns ``names`` (bid px, bid qty, ask px, ask qty) of (rows, 2) bid/ask tick arrays."""
    missing = px == 0
    px_f, qty_f = to_float_array(px), to_float_array(qty)
    px_f[missing] = np.nan
    qty_f[missing] = np.nan
    return dict(zip(names, (px_f[:, 0], qty_f[:, 0], px_f[:, 1], qty_f[:, 1]), strict=True))


class Replayer:
    """Feed capture records to one book per symbol and collect a row per applied diff.

    A symbol's sync rule is told by its first diff (USDT-M diffs carry ``pu``); a snapshot
    arriving before that diff waits for it.
    """

    def __init__(self, *, symbol: str | None = None, depth: int = 0) -> None:
        self.only = symbol
        self.depth = depth
        self.result = ReplayResult()
        self._early: dict[str, DepthSnapshot] = {}

    def feed(self, record: Record) -> None:
        """Take one record; anything but depth diffs and snapshots is ignored."""
        if isinstance(record, DepthDiff):
            if self.only is None or record.symbol == self.only:
                self._diff(record)
        elif isinstance(record, DepthSnapshot) and self.only in (None, record.symbol):
            self.result.snapshots_seen += 1
            book = self.result.books.get(record.symbol)
            if book is None:
                self._early[record.symbol] = record
            else:
                book.on_snapshot(record)

    def _diff(self, diff: DepthDiff) -> None:
        book = self.result.books.get(diff.symbol)
        if book is None:
            rule = SyncRule.FUTURES if diff.prev_final_update_id >= 0 else SyncRule.SPOT
            book = OrderBook(diff.symbol, rule, on_applied=self._row)
            self.result.books[diff.symbol] = book
            early = self._early.pop(diff.symbol, None)
            if early is not None:
                book.on_snapshot(early)
        book.on_diff(diff)

    def _row(self, book: OrderBook, diff: DepthDiff) -> None:
        r = self.result
        r.symbol.append(diff.symbol)
        r.update_id.append(diff.final_update_id)
        r.ts_event.append(diff.ts_event)
        r.top.append(book.top())
        if self.depth:
            out = np.zeros((2, self.depth, 2), dtype=np.int64)
            for side in (BID, ASK):
                lv = book.levels(side, self.depth)
                out[side, : len(lv)] = lv
            r.depth.append(out)


def replay(
    paths: Iterable[str | Path], *, symbol: str | None = None, depth: int = 0
) -> ReplayResult:
    """Replay capture files in order through local books; return the rows and counters.

    The files form one stream: a book seeded by a snapshot in an earlier file goes on with the
    diffs of the later ones (captures that continue the previous day's file). File problems
    raise ``DataError`` naming the file (``wire.read_capture``); bad lines are counted.
    """
    replayer = Replayer(symbol=symbol, depth=depth)
    decoder = replayer.result.decoder
    for path in paths:
        for _, record in read_capture(path, decoder):
            replayer.feed(record)
    return replayer.result
