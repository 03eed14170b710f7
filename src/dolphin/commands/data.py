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
        description="Align bars on a regular grid and write the real closes (NaN where a symbol "
        "had no bar) atomically as parquet; `dolphin scan` applies the causal fill to it. With "
        "--fill-limit, write the causally filled matrix instead (each close carried forward at "
        "most that long, NaN beyond it and before listing); `dolphin scan` reads such a file as "
        "all real closes.",
    )
    align.add_argument("path", help="bar file or directory")
    align.add_argument("--bar", help="grid bar size, e.g. 1m, 5m, 1h (default: the data's bar)")
    align.add_argument("--symbols", help="comma-separated symbols, in column order (default: all)")
    align.add_argument("--symbol", help="symbol of a single-symbol file (default: from its name)")
    align.add_argument("--fill-limit", help="write the filled matrix with this fill limit, "
                       "e.g. 1d, 6h (default: real closes; gap bars counted with 1d)")
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
    from dolphin.data import (
        DEFAULT_FILL_LIMIT,
        exchange_gap_mask,
        fill_closes,
        load_bars,
        parse_fill_limit,
        real_closes,
    )

    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()] if args.symbols else None
    limit = DEFAULT_FILL_LIMIT if args.fill_limit is None else parse_fill_limit(args.fill_limit)
    bars = load_bars(args.path, symbol=args.symbol)
    real = real_closes(bars, bar=args.bar, symbols=symbols)
    filled = fill_closes(real, fill_limit=limit)
    wide = real if args.fill_limit is None else filled
    try:
        atomic_write_parquet(wide, args.out)
    except OSError as exc:
        raise BadInputError(f"cannot write output: {exc}", source=args.out) from exc
    gaps = int(exchange_gap_mask(bars, filled).sum())
    kind = "real closes" if args.fill_limit is None else f"filled for at most {args.fill_limit}"
    print(
        f"wrote {len(wide):,} rows x {wide.shape[1]} columns "
        f"(timestamp + {wide.shape[1] - 1} symbols, {kind}) to {args.out}"
    )
    print(f"exchange-wide gap bars (most live symbols missing): {gaps:,}")
    return 0
