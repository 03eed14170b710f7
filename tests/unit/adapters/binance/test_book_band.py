"""``OrderBook.band_row``: the ``book_row`` summary read straight off the book's level lists.

Hand-built books (values worked out by hand; prices and quantities are ``T`` ticks per unit, as
the wire makes them), the empty, crossed and edge cases against ``book_row``, tables that grow
and shrink, and every shared USDT-M capture replayed with ``book_row`` of all the levels as the
reference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dolphin.adapters.binance.book import (
    _CROSSED,
    ASK,
    BID,
    OrderBook,
    Replayer,
    SyncRule,
    _apply_nb,
    _first_tick_nb,
    _tick_float_nb,
)
from dolphin.adapters.binance.wire import DepthDiff, DepthSnapshot, read_capture, to_float_array
from dolphin.features.obf import (
    B_ASK_DEPTH,
    B_ASK_QTY,
    B_BID_DEPTH,
    B_BID_QTY,
    B_CROSSED,
    B_MID,
    BOOK_COLS,
    book_row,
)
from tests.kit.paths import SHARED_DATA, require

SYM = "BTCUSDT"
T = 10**8  # ticks per unit
RTOL = 1e-12  # the depths add the same products in another order than book_row
DEPTHS = [B_BID_DEPTH, B_ASK_DEPTH]
EXACT_COLS = [B_MID, B_BID_QTY, B_ASK_QTY, B_CROSSED]


def _levels(bids, asks) -> tuple[np.ndarray, int]:
    rows = [*bids, *asks]
    return np.array(rows, dtype=np.int64).reshape(len(rows), 2), len(bids)


def book_of(bids, asks, **kw) -> OrderBook:
    """A futures book holding exactly ``bids`` and ``asks`` (tick pairs), from a snapshot."""
    book = OrderBook(SYM, SyncRule.FUTURES, **kw)
    levels, n_bids = _levels(bids, asks)
    book.on_snapshot(DepthSnapshot("", 1, 0, 0, levels, n_bids))
    return book


def diff(u, bids=(), asks=()) -> DepthDiff:
    """The futures diff after ``u - 1`` (U = u - 1: the first, u = 2, bridges the snapshot 1)."""
    levels, n_bids = _levels(bids, asks)
    return DepthDiff(SYM, u - 1, u, u - 1, 0, 0, levels, n_bids)


def reference(book: OrderBook, band_bps: float) -> np.ndarray:
    """``book_row`` of every level of ``book``, as floats (the slow path ``band_row`` replaces)."""
    bids = to_float_array(book.levels(BID, book.size(BID)))
    asks = to_float_array(book.levels(ASK, book.size(ASK)))
    return book_row(bids, asks, band_bps)


def assert_same_row(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == np.float64 and got.shape == (BOOK_COLS,)
    np.testing.assert_array_equal(got[EXACT_COLS], want[EXACT_COLS])
    np.testing.assert_allclose(got[DEPTHS], want[DEPTHS], rtol=RTOL, atol=0.0, equal_nan=True)


# --------------------------------------------------------------------------- by hand

# best bid 100.00 x 2, 99.90 x 1, 99.00 x 5; best ask 100.10 x 3, 100.20 x 1, 101.50 x 4
HAND_BIDS = ((100 * T, 2 * T), (9_990_000_000, 1 * T), (99 * T, 5 * T))
HAND_ASKS = ((10_010_000_000, 3 * T), (10_020_000_000, 1 * T), (10_150_000_000, 4 * T))


@pytest.mark.parametrize(("band_bps", "bid_depth", "ask_depth"), [
    # mid 100.05; band 50 bps: bids >= 99.54975 (100, 99.9), asks <= 100.55025 (100.1, 100.2)
    (50.0, 100 * 2 + 99.9 * 1, 100.1 * 3 + 100.2 * 1),
    # 150 bps: bids >= 98.54925, asks <= 101.55075: every level
    (150.0, 100 * 2 + 99.9 + 99 * 5, 100.1 * 3 + 100.2 + 101.5 * 4),
    # 5 bps: bids >= 99.999975 (100 only), asks <= 100.100025 (100.1 only)
    (5.0, 100 * 2, 100.1 * 3),
    # 1 bps: [100.04, 100.06] holds neither best level: both depths 0, the row is still valid
    (1.0, 0.0, 0.0),
])
def test_band_row_of_a_hand_built_book(band_bps, bid_depth, ask_depth):
    row = book_of(HAND_BIDS, HAND_ASKS).band_row(band_bps)
    assert row.dtype == np.float64 and row.shape == (BOOK_COLS,)
    assert row[B_MID] == 0.5 * (100.0 + 100.1) == pytest.approx(100.05, rel=1e-15)
    assert row[B_BID_DEPTH] == pytest.approx(bid_depth, rel=RTOL, abs=0.0)
    assert row[B_ASK_DEPTH] == pytest.approx(ask_depth, rel=RTOL, abs=0.0)
    assert (row[B_BID_QTY], row[B_ASK_QTY], row[B_CROSSED]) == (2.0, 3.0, 0.0)


def test_band_row_follows_the_diffs():
    book = book_of(HAND_BIDS, HAND_ASKS)
    # 100.00 leaves, 99.95 x 0.5 arrives; 100.10 goes to 0.25: mid 0.5 * (99.95 + 100.1)
    assert book.on_diff(diff(2, bids=[(100 * T, 0), (9_995_000_000, T // 2)],
                             asks=[(10_010_000_000, T // 4)]))
    row = book.band_row(50.0)
    assert row[B_MID] == 0.5 * (99.95 + 100.1)
    assert row[B_BID_DEPTH] == pytest.approx(99.95 * 0.5 + 99.9, rel=RTOL, abs=0.0)
    assert row[B_ASK_DEPTH] == pytest.approx(100.1 * 0.25 + 100.2, rel=RTOL, abs=0.0)
    assert (row[B_BID_QTY], row[B_ASK_QTY], row[B_CROSSED]) == (0.5, 0.25, 0.0)
    assert_same_row(row, reference(book, 50.0))


# --------------------------------------------------------------------------- empty, crossed

EMPTY = np.zeros((0, 2))


def _nan_row() -> np.ndarray:
    return book_row(EMPTY, EMPTY, 50.0)


def test_empty_book_gives_book_rows_nan_row():
    want = _nan_row()
    assert np.isnan(want).all()
    np.testing.assert_array_equal(OrderBook(SYM, SyncRule.FUTURES).band_row(50.0), want)


@pytest.mark.parametrize("empty_side", [BID, ASK])
def test_one_empty_side_gives_book_rows_nan_row(empty_side):
    bids, asks = (() if empty_side == BID else HAND_BIDS), (() if empty_side == ASK else HAND_ASKS)
    book = book_of(bids, asks)
    assert book.size(1 - empty_side) == 3 and book.size(empty_side) == 0
    want = book_row(to_float_array(np.array(bids, dtype=np.int64).reshape(-1, 2)),
                    to_float_array(np.array(asks, dtype=np.int64).reshape(-1, 2)), 50.0)
    assert np.isnan(want).all()
    np.testing.assert_array_equal(book.band_row(50.0), want)


def test_a_side_emptied_by_diffs_or_a_discard_gives_the_nan_row():
    book = book_of(HAND_BIDS, HAND_ASKS)
    assert book.on_diff(diff(2, asks=[(p, 0) for p, _ in HAND_ASKS]))
    np.testing.assert_array_equal(book.band_row(50.0), _nan_row())
    np.testing.assert_array_equal(book.band_row(50.0), reference(book, 50.0))
    book = book_of(HAND_BIDS, HAND_ASKS)
    book.discard()
    np.testing.assert_array_equal(book.band_row(50.0), _nan_row())


@pytest.mark.parametrize("best_ask", [9_990_000_000, 100 * T])  # below / at the best bid
def test_crossed_levels_set_the_flag_as_book_row_does(best_ask):
    # A book never keeps crossed levels (it discards itself), so the kernel applies them here.
    book = book_of(HAND_BIDS, HAND_ASKS)
    levels, n_bids = _levels([], [(best_ask, 7 * T)])
    assert _apply_nb(book._store, book._meta, levels, n_bids) == _CROSSED
    row = book.band_row(50.0)
    assert row[B_CROSSED] == 1.0 and row[B_ASK_QTY] == 7.0
    assert row[B_MID] == 0.5 * (100.0 + best_ask / T)
    assert_same_row(row, reference(book, 50.0))


# --------------------------------------------------------------------------- the band's edges


def _first_tick_at_or_above(x: float) -> int:
    t = math.ceil(x * T)
    while (t - 1) / T >= x:
        t -= 1
    while t / T < x:
        t += 1
    return t


@pytest.mark.parametrize("band_bps", [10.0, 33.3, 50.0, 77.7, 123.456, 500.0])
def test_levels_on_the_band_edges_are_in_exactly_when_book_row_takes_them(band_bps):
    bid, ask = 100 * T, 10_002_000_000  # 100.00 / 100.02
    mid = 0.5 * (bid / T + ask / T)
    band = band_bps * 1e-4
    lo, hi = mid * (1.0 - band), mid * (1.0 + band)  # book_row's float edges
    t_lo = _first_tick_at_or_above(lo)  # the lowest bid in the band
    t_hi = _first_tick_at_or_above(np.nextafter(hi, np.inf)) - 1  # the highest ask in it
    assert t_lo / T >= lo > (t_lo - 1) / T and (t_hi + 1) / T > hi >= t_hi / T
    # Big quantities on the edge levels, small ones just outside: a wrong call shows.
    book = book_of([(bid, T), (t_lo, 1000 * T), (t_lo - 1, 7 * T)],
                   [(ask, T), (t_hi, 1000 * T), (t_hi + 1, 7 * T)])
    row = book.band_row(band_bps)
    assert row[B_BID_DEPTH] == pytest.approx(bid / T + t_lo / T * 1000, rel=RTOL, abs=0.0)
    assert row[B_ASK_DEPTH] == pytest.approx(ask / T + t_hi / T * 1000, rel=RTOL, abs=0.0)
    assert_same_row(row, reference(book, band_bps))


def _band_putting_an_edge_on(mid: float, price: float) -> float:
    """A band_bps whose float edge (book_row's ``mid·(1 ∓ band)``) is ``price`` exactly."""
    below = price < mid
    estimate = (1.0 - price / mid if below else price / mid - 1.0) * 1e4
    for k in range(-20_000, 20_000):  # 1e-13 bps moves the edge by less than one ulp
        band_bps = estimate + k * 1e-13
        band = band_bps * 1e-4
        if (mid * (1.0 - band) if below else mid * (1.0 + band)) == price:
            return band_bps
    raise AssertionError(f"no band puts an edge on {price}")


@pytest.mark.parametrize("edge_qty", [1000 * T, 2**53 + 1])  # 2**53 + 1: past exact floats
@pytest.mark.parametrize("side", [BID, ASK])
def test_a_level_exactly_on_the_float_edge_is_in_the_band(side, edge_qty):
    bid, ask = 100 * T, 10_002_000_000  # mid 100.01
    edge = 9_950_000_000 if side == BID else 10_050_000_000  # 99.50 / 100.50, exact floats
    band_bps = _band_putting_an_edge_on(0.5 * (bid / T + ask / T), edge / T)
    # A big quantity on the edge, a small one a tick outside it: a wrong call shows.
    if side == BID:
        book = book_of([(bid, T), (edge, edge_qty), (edge - 1, 7 * T)], [(ask, T)])
    else:
        book = book_of([(bid, T)], [(ask, T), (edge, edge_qty), (edge + 1, 7 * T)])
    row = book.band_row(band_bps)
    col, best = (B_BID_DEPTH, bid) if side == BID else (B_ASK_DEPTH, ask)
    assert row[col] == pytest.approx(best / T + edge / T * (edge_qty / T), rel=RTOL, abs=0.0)
    assert_same_row(row, reference(book, band_bps))


@pytest.mark.parametrize("band_bps", [0.0, -10.0, 1e-9, 1e4, 2e4, 1e300, math.inf, -math.inf,
                                      math.nan])
def test_degenerate_bands_match_book_row(band_bps):
    row = book_of(HAND_BIDS, HAND_ASKS).band_row(band_bps)
    assert_same_row(row, reference(book_of(HAND_BIDS, HAND_ASKS), band_bps))


# --------------------------------------------------------------------------- huge ticks


def test_tick_conversion_equals_the_wires_for_every_int64():
    rng = np.random.default_rng(7)
    ticks = np.concatenate([
        rng.integers(0, 2**53, 20_000, dtype=np.int64),
        rng.integers(2**53, 2**63 - 1, 50_000, dtype=np.int64, endpoint=True),
        rng.integers(-(2**63), -(2**53), 5_000, dtype=np.int64),
        np.array([0, 1, 2**53 - 1, 2**53, 2**53 + 1, 2**63 - 1, -(2**63), -(2**53), 10**17,
                  5 * 10**17 + 1, 123_456_789 * T], dtype=np.int64),
    ])
    got = np.array([_tick_float_nb(t) for t in ticks.tolist()])
    np.testing.assert_array_equal(got, to_float_array(ticks))  # Python int division there


@pytest.mark.parametrize("strict", [False, True])
def test_first_tick_is_the_exact_edge_of_the_wires_floats(strict):
    def passes(t: int, x: float) -> bool:
        return t / T > x if strict else t / T >= x  # Python: the wire's correctly rounded floats

    top = (2**63 - 1) / T  # the largest tick's float
    rng = np.random.default_rng(3)
    xs = [*(10.0 ** rng.uniform(-8, 10.96, 3000)), *(rng.integers(1, 10**12, 500) / T), 1e-8,
          5e-9, 0.0, -1.0, -math.inf, np.nextafter(top, 0.0), *([] if strict else [top])]
    for x in xs:
        t = _first_tick_nb(float(x), strict)
        assert t >= 1 and passes(t, x) and (t == 1 or not passes(t - 1, x)), (x, t)
    for x in (np.nextafter(top, np.inf), math.inf, math.nan, *([top] if strict else [])):
        assert _first_tick_nb(x, strict) == -1  # no tick's float passes


def test_quantities_over_2_pow_53_ticks_convert_exactly():
    # A PEPE-like spot book: prices of 0.00001234 and billions of units a level.
    q_bid, q_ask = 5 * 10**17 + 12_345, 2**53 + 1
    assert float(q_bid) / 1e8 != q_bid / T and float(q_ask) / 1e8 != q_ask / T  # not the naive
    book = book_of([(1234, q_bid), (1000, 10**18)], [(1235, q_ask), (1500, 3 * 10**18 + 7)])
    row = book.band_row(50.0)
    assert row[B_BID_QTY] == q_bid / T and row[B_ASK_QTY] == q_ask / T  # Python: correctly rounded
    assert row[B_BID_DEPTH] == pytest.approx((1234 / T) * (q_bid / T), rel=RTOL, abs=0.0)
    assert row[B_ASK_DEPTH] == pytest.approx((1235 / T) * (q_ask / T), rel=RTOL, abs=0.0)
    assert_same_row(row, reference(book, 50.0))
    assert_same_row(book.band_row(1e6), reference(book, 1e6))  # every level, big ones too


# --------------------------------------------------------------------------- a grown table


@pytest.mark.parametrize("seed", range(2))
def test_band_row_matches_book_row_through_table_growth(seed):
    rng = np.random.default_rng(seed)
    tick = 10**6  # 0.01
    book = book_of([(9_000 * tick, T)], [(11_000 * tick, T)], capacity=16)
    checked = 0
    for u in range(2, 800):
        n = int(rng.integers(1, 30))
        side = rng.integers(2, size=n)
        px = np.where(side == BID, rng.integers(8_000, 10_000, n), rng.integers(10_001, 12_000, n))
        qty = np.where(rng.random(n) < 0.3, 0, rng.integers(1, 10**9, n))
        bids = [(int(p) * tick, int(q)) for s, p, q in zip(side, px, qty, strict=True) if s == BID]
        asks = [(int(p) * tick, int(q)) for s, p, q in zip(side, px, qty, strict=True) if s == ASK]
        assert book.on_diff(diff(u, bids=bids, asks=asks))
        if u % 40 == 0:
            for band_bps in (1.0, 20.0, 100.0, 1000.0):
                assert_same_row(book.band_row(band_bps), reference(book, band_bps))
            checked += 1
    assert checked == 19 and book.size(BID) > 1000  # grown well past the 16 starting slots


def _grown_book(seed: int, capacity: int = 16) -> OrderBook:
    """A book of ~1,500 levels a side from random diffs (its table grown past ``capacity``)."""
    rng = np.random.default_rng(seed)
    tick = 10**6  # 0.01
    book = book_of([(9_000 * tick, T)], [(11_000 * tick, T)], capacity=capacity)
    for u in range(2, 400):
        n = int(rng.integers(1, 30))
        px = rng.integers(8_000, 10_000, n)
        qty = np.where(rng.random(n) < 0.1, 0, rng.integers(1, 10**9, n))
        levels = [(int(p) * tick, int(q)) for p, q in zip(px, qty, strict=True)]
        asks = [(20_000 * tick - p, q) for p, q in levels]  # mirrored: 10,000.00 to 12,000.00
        assert book.on_diff(diff(u, bids=levels, asks=asks))
    return book


BAND_SET = (1.0, 20.0, 100.0, 1000.0)


@pytest.mark.parametrize("seed", range(2))
def test_a_resized_table_gives_the_same_band_row_bit_for_bit(seed):
    # A resize keeps the levels' dense order, so the depths are summed in the same order.
    book = _grown_book(seed)
    before = [book.band_row(b) for b in BAND_SET]
    top, bids, asks = book.top(), book.levels(BID, 10**4), book.levels(ASK, 10**4)
    cap = book._store.shape[2]
    for new_cap in (4 * cap, book._fit(max(book.size(BID), book.size(ASK)))):
        book._resize(new_cap)
        assert book._store.shape[2] == new_cap
        for band_bps, want in zip(BAND_SET, before, strict=True):
            np.testing.assert_array_equal(book.band_row(band_bps), want)
        assert book.top() == top
        np.testing.assert_array_equal(book.levels(BID, 10**4), bids)
        np.testing.assert_array_equal(book.levels(ASK, 10**4), asks)


@pytest.mark.parametrize("seed", range(2))
def test_band_row_matches_book_row_while_the_table_shrinks(seed):
    rng = np.random.default_rng(100 + seed)
    book = _grown_book(seed)
    grown = book._store.shape[2]
    u, checked = 400, 0
    while book.size(BID) > 20:  # remove the levels, a few dozen a diff, best ones too
        bids = book.levels(BID, book.size(BID))[:, 0]
        asks = book.levels(ASK, book.size(ASK))[:, 0]
        gone_b = rng.choice(bids, min(len(bids) - 1, 40), replace=False)  # one stays
        gone_a = rng.choice(asks, min(len(asks) - 1, 40), replace=False)
        assert book.on_diff(diff(u, bids=[(int(p), 0) for p in gone_b],
                                 asks=[(int(p), 0) for p in gone_a]))
        u += 1
        if u % 5 == 0:
            for band_bps in BAND_SET:
                assert_same_row(book.band_row(band_bps), reference(book, band_bps))
            checked += 1
    for band_bps in BAND_SET:
        assert_same_row(book.band_row(band_bps), reference(book, band_bps))
    assert checked >= 5 and book._store.shape[2] <= grown // 16  # it shrank, more than once


# --------------------------------------------------------------------------- real captures

USDM = SHARED_DATA / "raw_ws" / "binance_usdm"
CHAINS = {  # each in stream order: the second file continues the first
    "btc_2023": ("btcusdt_20230404.dat.gz", "btcusdt_20230405.dat.gz"),
    "btc_2024": ("btcusdt_20240718.gz", "btcusdt_20240719.gz"),
    "eth_2024": ("ethusdt_20240718.gz", "ethusdt_20240719.gz"),
}
BANDS = (0.5, 5.0, 25.0, 50.0, 200.0, 1000.0, 1e5)
EVERY = 25  # applied diffs between two checks


def test_the_chains_cover_every_usdm_capture():
    on_disk = {p.name for p in require(USDM).glob("*.gz")}
    assert on_disk == {name for chain in CHAINS.values() for name in chain}


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_band_row_equals_book_row_of_all_levels_on_replayed_captures(chain):
    replayer = Replayer()
    result = replayer.result
    checked, rows = 0, 0
    for name in CHAINS[chain]:
        for _, record in read_capture(require(USDM / name), result.decoder):
            replayer.feed(record)
            if result.rows == rows:
                continue
            rows = result.rows
            if rows % EVERY:
                continue
            book = result.books[result.symbol[-1]]
            bids = to_float_array(book.levels(BID, book.size(BID)))
            asks = to_float_array(book.levels(ASK, book.size(ASK)))
            for band_bps in BANDS:
                assert_same_row(book.band_row(band_bps), book_row(bids, asks, band_bps))
            checked += 1
    assert checked >= 300, result.summary()
    assert result.totals()["applied"] >= EVERY * checked
