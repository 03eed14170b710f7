"""`dolphin book replay CAPTURE... --out BOOK.parquet`: local order books from depth captures."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``book`` and its actions."""
    p = sub.add_parser("book", help="local order books rebuilt from Binance depth captures")
    bsub = p.add_subparsers(dest="book_command", metavar="ACTION", required=True)
    r = bsub.add_parser("replay", help="apply captures in order; write one row per applied diff")
    r.add_argument("captures", nargs="+", type=Path,
                   help="capture files in stream order: one that continues an earlier capture "
                        "(no snapshot line) goes after it")
    r.add_argument("--out", required=True, type=Path, help="output parquet")
    r.add_argument("--depth", type=int, default=0, metavar="N",
                   help="also write the best N levels of each side (default 0)")
    r.add_argument("--symbol", default=None, help="replay only this symbol (e.g. BTCUSDT)")
    r.set_defaults(func=_replay)


def _replay(args: argparse.Namespace) -> int:
    from dolphin.adapters.binance.book import replay
    from dolphin.core.errors import BadInputError, DataError
    from dolphin.core.io import atomic_write_parquet

    if args.depth < 0:
        raise BadInputError("must be 0 or more", field="--depth", value=args.depth)
    result = replay(args.captures, symbol=args.symbol.upper() if args.symbol else None,
                    depth=args.depth)
    if not result.rows:
        print(f"book replay: {result.summary()}; no rows written")
        raise DataError(result.why_no_rows(), source=", ".join(map(str, args.captures)))
    atomic_write_parquet(result.frame(args.depth), args.out)
    print(f"book replay: {result.summary()}; {result.rows:,} rows -> {args.out}")
    return 0
