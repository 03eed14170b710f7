"""Book summaries: ``OrderBook.band_row`` vs ``levels`` + ``book_row``; prints ONE JSON line.

The OB service needs ``book_row`` (mid, notional depth within ``band_bps`` of mid, best
quantities, crossed) of up to 400 books every 500 ms. Two ways to get it from a local book:

- ``band_row``: one compiled pass over each side's dense list of live levels, no sorting;
- ``levels``: ``book.levels(side, book.size(side))`` of both sides (every level, sorted), to
  floats, then ``book_row`` (the baseline, same run); and ``levels_banded``: the same with just
  the levels the band holds (``n`` = the in-band count, known here: the best case of the
  service's depth hint, which reads a few more).

The books are real: the shared USDT-M captures (BTCUSDT 2023, BTCUSDT 2024, ETHUSDT 2024, each
with its continuation file) replayed through ``OrderBook``, and copied at evenly spaced diffs, 400
books in all. Per-call figures are the median over a sample of those books of the best of
``--repeats`` timed loops on one book (hot caches). The cycle figures time one pass over all 400
different books (each table read once, as in a service cycle; best of ``--repeats``), next to
the estimate 400 × the per-call median: the tables (``tables_mb``) do not fit in the caches, so
the measured cycle is bound by memory. ``max_rel_depth_diff`` is band_row against levels +
book_row over every book (the depths are the same products, rounded otherwise and added in
another order: equal to ~1e-15, not bit for bit).
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from dolphin.adapters.binance.book import ASK, BID, BookState, OrderBook, SyncRule
from dolphin.adapters.binance.wire import Decoder, DepthDiff, to_float_array
from dolphin.features.obf import B_ASK_DEPTH, B_BID_DEPTH, book_row

RAW = Path(os.environ.get("DOLPHIN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared"
                          / "data")) / "raw_ws" / "binance_usdm"
CHAINS = (
    ("BTCUSDT", ("btcusdt_20230404.dat.gz", "btcusdt_20230405.dat.gz")),
    ("BTCUSDT", ("btcusdt_20240718.gz", "btcusdt_20240719.gz")),
    ("ETHUSDT", ("ethusdt_20240718.gz", "ethusdt_20240719.gz")),
)
N_BOOKS = 400


def _records(files: tuple[str, ...]) -> list:
    decoder, out = Decoder(), []
    for name in files:
        if not (RAW / name).is_file():
            raise SystemExit(f"capture missing: {RAW / name} (set DOLPHIN_SHARED_DATA)")
        with gzip.open(RAW / name, "rb") as fh:
            out += [decoder.line(ln)[1] for ln in fh
                    if b'"depthUpdate"' in ln or b'"lastUpdateId"' in ln]
    return out


def _books(symbol: str, records: list, k: int) -> list[OrderBook]:
    """Copies of the replayed book, live, after ``k`` evenly spaced diffs of ``records``."""
    n_diffs = sum(type(r) is DepthDiff for r in records)
    marks = set(np.linspace(n_diffs / k, n_diffs, k).astype(int).tolist())
    book, seen, out = OrderBook(symbol, SyncRule.FUTURES), 0, []
    for record in records:
        if type(record) is DepthDiff:
            book.on_diff(record)
            seen += 1
            if seen in marks and book.state is BookState.LIVE:
                out.append(copy.deepcopy(book))
        else:
            book.on_snapshot(record)
    return out


def _full(book: OrderBook, band_bps: float) -> np.ndarray:
    bids = to_float_array(book.levels(BID, book.size(BID)))
    asks = to_float_array(book.levels(ASK, book.size(ASK)))
    return book_row(bids, asks, band_bps)


def _in_band(book: OrderBook, band_bps: float) -> tuple[int, int]:
    """How many levels of each side the band holds (the fewest ``levels`` must read)."""
    row = book.band_row(band_bps)
    mid, band = row[0], band_bps * 1e-4
    bids = to_float_array(book.levels(BID, book.size(BID)))[:, 0]
    asks = to_float_array(book.levels(ASK, book.size(ASK)))[:, 0]
    return (int(np.count_nonzero(bids >= mid * (1.0 - band))),
            int(np.count_nonzero(asks <= mid * (1.0 + band))))


def _per_call_us(fn, calls: int, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, time.perf_counter() - t)
    return best / calls * 1e6


def _cycle_ms(fn, books: list[OrderBook], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for book in books:
            fn(book)
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--band-bps", type=float, default=50.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sample", type=int, default=4, help="books per capture timed per call")
    args = parser.parse_args()
    band = args.band_bps
    load = os.getloadavg()[0]
    per_chain = -(-N_BOOKS // len(CHAINS))
    books: list[OrderBook] = []
    for symbol, files in CHAINS:
        books += _books(symbol, _records(files), per_chain)
    books = books[:N_BOOKS]
    sample = [books[i] for i in np.linspace(0, len(books) - 1, args.sample * len(CHAINS))
              .round().astype(int)]

    rel = 0.0
    for book in books:
        got, want = book.band_row(band), _full(book, band)
        assert np.array_equal(np.delete(got, [B_BID_DEPTH, B_ASK_DEPTH]),
                              np.delete(want, [B_BID_DEPTH, B_ASK_DEPTH]), equal_nan=True)
        d = [B_BID_DEPTH, B_ASK_DEPTH]
        rel = max(rel, float(np.max(np.abs(got[d] - want[d]) / np.abs(want[d]))))

    band_us, full_us, banded_us = [], [], []
    for book in sample:
        n_bid, n_ask = _in_band(book, band)

        def banded(book=book, n_bid=n_bid, n_ask=n_ask):
            return book_row(to_float_array(book.levels(BID, n_bid)),
                            to_float_array(book.levels(ASK, n_ask)), band)

        band_us.append(_per_call_us(lambda book=book: book.band_row(band), 2000, args.repeats))
        full_us.append(_per_call_us(lambda book=book: _full(book, band), 100, args.repeats))
        banded_us.append(_per_call_us(banded, 100, args.repeats))
    band_call, full_call = statistics.median(band_us), statistics.median(full_us)
    banded_call = statistics.median(banded_us)
    cycle_band = _cycle_ms(lambda b: b.band_row(band), books, 4 * args.repeats)
    cycle_full = _cycle_ms(lambda b: _full(b, band), books, max(args.repeats // 2, 1))
    levels = [(b.size(BID) + b.size(ASK)) / 2 for b in books]
    in_band = [sum(_in_band(b, band)) / 2 for b in sample]
    print(json.dumps({
        "bench": "book_band", "books": len(books), "band_bps": band,
        "levels_per_side_mean": round(statistics.mean(levels)),
        "in_band_levels_per_side_mean": round(statistics.mean(in_band)),
        "hash_slots_per_side": sorted({int(b._store.shape[2]) for b in books}),
        "tables_mb": round(sum(b._store[:2].nbytes for b in books) / 1e6, 1),  # keys + values
        "band_row_us": round(band_call, 2),
        "baseline": "levels(side, size) of both sides -> to_float_array -> book_row",
        "levels_book_row_us": round(full_call, 1),
        "speedup": round(full_call / band_call, 1),
        "levels_banded_book_row_us": round(banded_call, 1),
        "speedup_vs_banded": round(banded_call / band_call, 1),
        "cycle_400_band_row_ms": round(cycle_band, 2),
        "cycle_400_estimate_ms": round(N_BOOKS * band_call / 1e3, 2),
        "cycle_400_levels_book_row_ms": round(cycle_full, 1),
        "max_rel_depth_diff": rel,
        "repeats": args.repeats, "sample_books": len(sample),
        "load_1m_before": round(load, 2), "python": sys.version.split()[0],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
