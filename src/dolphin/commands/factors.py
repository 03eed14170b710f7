"""`dolphin factors esof`: the esoteric factors per UTC day, for research (``features.esof``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``factors`` and its actions."""
    p = sub.add_parser("factors", help="external and esoteric factor tables")
    fsub = p.add_subparsers(dest="factors_command", metavar="ACTION", required=True)
    e = fsub.add_parser("esof", help="moon, Mercury retrograde and weekday per UTC day")
    e.add_argument("--start", required=True, help="first UTC day, e.g. 2025-01-01")
    e.add_argument("--end", required=True, help="last UTC day (inclusive)")
    e.add_argument("--out", required=True, type=Path, help="output parquet")
    e.set_defaults(func=_esof)


def _esof(args: argparse.Namespace) -> int:
    from dolphin.core.io import atomic_write_parquet
    from dolphin.features.esof import esof_daily

    table = esof_daily(args.start, args.end)
    atomic_write_parquet(table, args.out)
    retro = int(table["mercury_retrograde"].sum())
    print(f"esof: {len(table):,} days {args.start} .. {args.end} (illumination at 12:00 UTC), "
          f"{retro} with Mercury retrograde -> {args.out}")
    return 0
