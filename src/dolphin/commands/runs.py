"""`dolphin runs list`: past runs from the run index (``core.runs_index``), newest last.

One line per run: id, command, config id (12 hex digits; ``-`` for a run over many configs),
the data's first and last day, its key metrics and where it wrote. ``--json`` prints the index
lines as they are.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``runs`` and its ``list`` action."""
    p = sub.add_parser("runs", help="past runs (the run index)")
    rsub = p.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    ls = rsub.add_parser("list", help="list past runs: id, command, config id, span, metrics")
    ls.add_argument("--index", type=Path, default=None,
                    help="index file (default: $DOLPHIN_RUNS_INDEX or runs/index.jsonl)")
    ls.add_argument("--last", type=int, default=20, help="show the last N runs (0: all)")
    ls.add_argument("--command", dest="only", default=None, metavar="NAME",
                    help="only runs of this command (e.g. sweep)")
    ls.add_argument("--json", action="store_true", help="print the index lines as JSON")
    ls.set_defaults(func=run_list)


def _metric(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, str) and len(v) == 64:  # a config id among the metrics
        return v[:12]
    return str(v)


def format_run(run: dict[str, Any]) -> list[str]:
    """Return the table cells of one index line."""
    span = run.get("span") or []
    metrics = run.get("metrics") or {}
    return [
        str(run.get("id", "")),
        str(run.get("command", "")),
        (run.get("config_id") or "-")[:12],
        " .. ".join(span) if span else "-",
        " ".join(f"{k}={_metric(v)}" for k, v in metrics.items() if v is not None) or "-",
        str(run.get("out") or "-"),
    ]


def run_list(args: argparse.Namespace) -> int:
    """Print the runs of the index (a missing index: no runs, exit 0)."""
    from dolphin.core.runs_index import index_path, read_runs

    runs = read_runs(args.index)
    if args.only:
        runs = [r for r in runs if r.get("command") == args.only]
    if args.last > 0:
        runs = runs[-args.last:]
    if args.json:
        for r in runs:
            print(json.dumps(r, sort_keys=True))
        return 0
    if not runs:
        print(f"no runs recorded in {args.index or index_path()}")
        return 0
    rows = [["ID", "COMMAND", "CONFIG", "SPAN", "METRICS", "OUT"], *map(format_run, runs)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return 0
