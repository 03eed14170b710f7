"""`dolphin obf replay CAPTURE... --out OB.parquet`: order-book features from depth captures.

The captures are applied in order by the book machinery of ``dolphin book replay``; trades and
forceOrder liquidations go to an ``ObfBank``; every ``--cycle-ms`` of capture event time (the
records' exchange time ``E``) the bank runs one cycle on the books' state at that moment, each
synced book giving its ``book_row``. The recorded-features parquet (docs/obf.md) gets one row per
asset of the bank per cycle: an asset seen in the captures whose book is not synced (or not
sound) at that cycle gets NaN features, which a reader takes as neutral for that bar.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from dolphin.adapters.binance.book import OrderBook, Replayer
    from dolphin.features.obf import ObfBank, ObfCycle

#: A silence in the capture longer than this (no record at all) is not filled with cycles: the
#: next cycle is the first grid time after the next record (a reader goes neutral on old rows).
MAX_SILENCE_NS = 60 * 1_000_000_000
#: Levels read per side at first when summing a band; doubled while the band goes on.
_FIRST_LEVELS = 256


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``obf`` and its actions."""
    p = sub.add_parser("obf", help="order-book features (imbalance, withdrawal, fill odds, ...)")
    osub = p.add_subparsers(dest="obf_command", metavar="ACTION", required=True)
    r = osub.add_parser("replay", help="replay depth captures; write the OB features per cycle")
    r.add_argument("captures", nargs="+", type=Path,
                   help="capture files in stream order: one that continues an earlier capture "
                        "(no snapshot line) goes after it")
    r.add_argument("--out", required=True, type=Path, help="output parquet")
    r.add_argument("--cycle-ms", type=int, default=500, metavar="MS",
                   help="cycle period in capture event time (default 500)")
    r.add_argument("--band-bps", type=float, default=50.0, metavar="BPS",
                   help="depth band around mid, basis points (default 50)")
    r.add_argument("--symbol", default=None, help="replay only this symbol (e.g. BTCUSDT)")
    r.set_defaults(func=_replay)


def _replay(args: argparse.Namespace) -> int:
    import math

    from dolphin.core.errors import BadInputError, DataError
    from dolphin.features.obf import ObfBank, ObfParams, cycles_frame, write_ob_features

    if args.cycle_ms <= 0:
        raise BadInputError("must be > 0", field="--cycle-ms", value=args.cycle_ms)
    if not (math.isfinite(args.band_bps) and args.band_bps > 0):
        raise BadInputError("must be > 0", field="--band-bps", value=args.band_bps)
    symbol = args.symbol.upper() if args.symbol else None
    run = ObfReplay(ObfBank(ObfParams(band_bps=args.band_bps)), args.cycle_ms * 1_000_000,
                    symbol=symbol)
    run.read(args.captures)
    frame = cycles_frame(run.cycles)
    valid = run.valid_rows
    if not valid:  # NaN rows only (e.g. trades but no depth snapshot): nothing worth a file
        print(f"obf replay: {run.summary()}; {len(frame):,} rows, none valid: no rows written")
        raise DataError(run.why_no_rows(), source=", ".join(map(str, args.captures)))
    write_ob_features(frame, args.out)
    print(f"obf replay: {run.summary()}; {len(frame):,} rows ({valid:,} valid) -> {args.out}")
    return 0


@dataclass
class ObfReplay:
    """Drive an ``ObfBank`` from capture records on a grid of event times."""

    bank: ObfBank
    cycle_ns: int
    symbol: str | None = None
    cycles: list[ObfCycle] = field(default_factory=list)
    trades: int = 0
    liquidations: int = 0
    replayer: Replayer = field(init=False)
    _next: int = field(init=False, default=-1)  # the next cycle time; -1 before any record
    _last: int = field(init=False, default=-1)  # the latest event time seen

    def __post_init__(self) -> None:
        from dolphin.adapters.binance.book import Replayer

        self.replayer = Replayer(symbol=self.symbol)

    def read(self, paths: list[Path]) -> None:
        """Feed every record of the capture files, in order, then run the last due cycles."""
        from dolphin.adapters.binance.wire import read_capture

        decoder = self.replayer.result.decoder
        for path in paths:
            for _, record in read_capture(path, decoder):
                self.feed(record)
        if self._next >= 0:
            self._run_until(self._last, inclusive=True)

    def feed(self, record: object) -> None:
        """Take one record: cycles due before its event time run first."""
        from dolphin.adapters.binance.wire import (
            AggTrade,
            DepthDiff,
            DepthSnapshot,
            Liquidation,
            Trade,
            to_float,
        )

        if not isinstance(record, DepthDiff | DepthSnapshot | Trade | AggTrade | Liquidation):
            return
        if self.symbol is not None and record.symbol not in ("", self.symbol):
            return
        self._advance(record.ts_event)
        if isinstance(record, DepthDiff | DepthSnapshot):
            self.replayer.feed(record)
        elif isinstance(record, Liquidation):
            self.liquidations += 1
            price = record.avg_price or record.price
            self.bank.on_liquidation(record.symbol, record.ts_event, record.side,
                                     to_float(record.qty), to_float(price))
        else:
            self.trades += 1
            self.bank.on_trade(record.symbol, record.ts_event, to_float(record.price),
                               to_float(record.qty), record.buyer_is_maker)

    def _advance(self, ts: int) -> None:
        if ts <= 0:  # a record without an event time (spot snapshots) does not move the clock
            return
        if self._next < 0 or ts - self._last > MAX_SILENCE_NS:
            self._next = -(-ts // self.cycle_ns) * self.cycle_ns  # the first grid time >= ts
        self._run_until(ts, inclusive=False)
        self._last = max(self._last, ts)

    def _run_until(self, ts: int, *, inclusive: bool) -> None:
        while self._next < ts or (inclusive and self._next == ts):
            self.cycles.append(self.bank.cycle(self._next, self._rows()))
            self._next += self.cycle_ns

    def _rows(self) -> dict[str, np.ndarray]:
        from dolphin.adapters.binance.book import BookState

        band = self.bank.params.band_bps
        return {s: book_row_of(b, band) for s, b in self.replayer.result.books.items()
                if b.state is BookState.LIVE}

    @property
    def valid_rows(self) -> int:
        """Return how many (cycle, asset) rows had valid features (finite, not NaN)."""
        return sum(int(c.valid.sum()) for c in self.cycles)

    def summary(self) -> str:
        """Return what the replay did as one line (the row counts are the caller's)."""
        return (f"{len(self.cycles):,} cycles of {self.cycle_ns // 1_000_000} ms; "
                f"{self.trades:,} trades, {self.liquidations:,} liquidations; "
                f"books: {self.replayer.result.summary()}")

    def why_no_rows(self) -> str:
        """Say why no valid feature row came out (call when there is none)."""
        result = self.replayer.result
        if not result.rows:
            return result.why_no_rows()
        if not self.cycles:
            return "the captures span less than one cycle"
        return "no synced book with a sound row at any cycle time"


def book_row_of(book: OrderBook, band_bps: float) -> np.ndarray:
    """Return ``features.obf.book_row`` of a live book, reading as many levels as the band holds."""
    from dolphin.adapters.binance.book import ASK, BID
    from dolphin.adapters.binance.wire import to_float_array
    from dolphin.features.obf import book_row

    bid_px, _, ask_px, _ = book.top()
    mid = 0.5 * (bid_px + ask_px)
    band = band_bps * 1e-4
    sides = []
    for side, inside in ((BID, lambda px: px >= mid * (1 - band)),
                         (ASK, lambda px: px <= mid * (1 + band))):
        n = _FIRST_LEVELS
        levels = book.levels(side, n)
        while len(levels) == n and inside(levels[-1, 0]):  # the band may go on past them
            n *= 4
            levels = book.levels(side, n)
        sides.append(to_float_array(levels))
    return book_row(sides[0], sides[1], band_bps)
