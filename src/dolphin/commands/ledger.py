"""`dolphin ledger verify|show|export DB`: the hash-chained ledger's views (``ledger.chain``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``ledger`` and its actions."""
    p = sub.add_parser("ledger", help="verify, show or export a hash-chained ledger")
    lsub = p.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    v = lsub.add_parser("verify", help="recompute the hash chain; report the first bad row")
    v.add_argument("db", type=Path, help="ledger database (SQLite)")
    v.set_defaults(func=_verify)
    s = lsub.add_parser("show", help="print rows as JSON lines")
    s.add_argument("db", type=Path)
    s.add_argument("--since", default=None, help="event time, e.g. 2021-04-12T00:00Z")
    s.add_argument("--kind", default=None, help="only rows of this kind (FILL, ORDER, ...)")
    s.set_defaults(func=_show)
    e = lsub.add_parser("export", help="write rows (one column per body field) to parquet")
    e.add_argument("db", type=Path)
    e.add_argument("--out", required=True, type=Path, help="output parquet")
    e.add_argument("--kind", default=None, help="only rows of this kind")
    e.set_defaults(func=_export)


def _open(db: Path):
    from dolphin.core.errors import DataError
    from dolphin.ledger.chain import Ledger

    if not db.exists():
        raise DataError("no such ledger", source=str(db))
    return Ledger(db)


def _verify(args: argparse.Namespace) -> int:
    from dolphin.ledger.chain import verify

    v = verify(args.db)
    if v.ok:
        print(f"ledger {args.db}: {v.rows:,} rows, chain intact, head {v.head}")
        return 0
    print(f"ledger {args.db}: BROKEN at row {v.bad_seq} ({v.reason}); {v.rows:,} rows before "
          "it are intact")
    return 1


def _since_ns(text: str | None) -> int | None:
    import pandas as pd

    from dolphin.core.errors import BadInputError

    if text is None:
        return None
    try:
        ts = pd.Timestamp(text)
    except ValueError:
        raise BadInputError("not a time", field="--since", value=text) from None
    return int((ts if ts.tzinfo else ts.tz_localize("UTC")).value)


def _show(args: argparse.Namespace) -> int:
    with _open(args.db) as led:
        for r in led.rows(_since_ns(args.since), args.kind):
            print(json.dumps({"seq": r.seq, "ts_event": r.ts_event, "kind": r.kind,
                              "body": r.body, "hash": r.hash}, sort_keys=True))
    return 0


def _export(args: argparse.Namespace) -> int:
    import pandas as pd

    from dolphin.core.io import atomic_write_parquet

    with _open(args.db) as led:
        rows = [{"seq": r.seq, "time": pd.Timestamp(r.ts_event, tz="UTC"), "kind": r.kind,
                 **r.body, "hash": r.hash} for r in led.rows(kind=args.kind)]
    atomic_write_parquet(pd.DataFrame(rows), args.out)
    print(f"exported {len(rows):,} rows -> {args.out}")
    return 0
