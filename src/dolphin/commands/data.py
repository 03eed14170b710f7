"""`dolphin data info PATH` and `dolphin data align PATH --out W.parquet`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``data`` command and its ``info`` and ``align`` actions."""
    p = sub.add_parser("data", help="inspect and align bar data")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    info = dsub.add_parser(
        "info",
        help="print format, bar size, symbols, span, rows and gaps per symbol",
        description="Load and validate a bar file (long parquet, Binance kline CSV, freqtrade "
        "JSON/feather) or a directory of them, then print a summary.",
    )
    info.add_argument("path", help="bar file or directory")
    info.add_argument("--symbol", help="symbol of a single-symbol file (default: from its name)")
    info.set_defaults(func=_info)
    align = dsub.add_parser(
        "align",
        help="write the aligned wide close matrix (timestamp + one column per symbol)",
        description="Align bars on a regular grid (forward fill inside each symbol's life, NaN "
        "before listing and after delisting) and write it atomically as parquet.",
    )
    align.add_argument("path", help="bar file or directory")
    align.add_argument("--bar", help="grid bar size, e.g. 1m, 5m, 1h (default: the data's bar)")
    align.add_argument("--symbols", help="comma-separated symbols, in column order (default: all)")
    align.add_argument("--symbol", help="symbol of a single-symbol file (default: from its name)")
    align.add_argument("--out", required=True, help="output parquet path")
    align.set_defaults(func=_align)


def _info(args: argparse.Namespace) -> int:
    from dolphin.data import detect_format, load_bars, summarize
    from dolphin.data.report import format_info

    fmt = detect_format(args.path)
    bars = load_bars(args.path, symbol=args.symbol)
    print(format_info(args.path, fmt, summarize(bars)))
    return 0


def _align(args: argparse.Namespace) -> int:
    from dolphin.core.errors import BadInputError
    from dolphin.core.io import atomic_write_parquet
    from dolphin.data import align_closes, exchange_gap_mask, load_bars

    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()] if args.symbols else None
    bars = load_bars(args.path, symbol=args.symbol)
    wide = align_closes(bars, bar=args.bar, symbols=symbols)
    try:
        atomic_write_parquet(wide, args.out)
    except OSError as exc:
        raise BadInputError(f"cannot write output: {exc}", source=args.out) from exc
    gaps = int(exchange_gap_mask(bars, wide).sum())
    print(
        f"wrote {len(wide):,} rows x {wide.shape[1]} columns "
        f"(timestamp + {wide.shape[1] - 1} symbols) to {args.out}"
    )
    print(f"exchange-wide gap bars (most live symbols missing): {gaps:,}")
    return 0
