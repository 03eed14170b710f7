"""`dolphin study leverage`: geometric growth against max leverage with a bootstrap band."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dolphin.commands.sweep import add_data_args, load_data


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``study`` and its ``leverage`` action."""
    p = sub.add_parser("study", help="research studies over the sweep kernel")
    ssub = p.add_subparsers(dest="study_command", metavar="STUDY", required=True)
    lev = ssub.add_parser("leverage", help="geometric growth vs max leverage; reports the knee")
    add_data_args(lev)
    lev.add_argument("--levels", default=None, help="comma-separated max leverage levels")
    lev.add_argument("--bootstrap", type=int, default=1000, help="bootstrap draws")
    lev.add_argument("--seed", type=int, default=42)
    lev.add_argument("--out", type=Path, default=None, help="HTML report (table beside as .csv)")
    lev.set_defaults(func=run_leverage)


def parse_levels(text: str | None) -> list[float] | None:
    """Parse ``--levels 1,1.5,2``; raise ``BadInputError`` naming the item that is no level."""
    from dolphin.backtest.leverage_study import check_levels
    from dolphin.core.errors import BadInputError

    if text is None:
        return None
    values = []
    for item in text.split(","):
        try:
            values.append(float(item))
        except ValueError:
            raise BadInputError(
                "leverage level must be a number", field="--levels", value=item.strip()
            ) from None
    return check_levels(values)


def run_leverage(args: argparse.Namespace) -> int:
    """Run the leverage study; print the table and the peak/knee summary."""
    from dolphin.backtest.leverage_study import DEFAULT_LEVELS, leverage_study
    from dolphin.commands._research import finish, span_of
    from dolphin.core.config import load_config
    from dolphin.core.io import atomic_write_text
    from dolphin.ui.research_pages import leverage_page

    levels = parse_levels(args.levels) or list(DEFAULT_LEVELS)
    data = load_data(args)
    table, summary = leverage_study(
        data, levels, base=load_config(args.config), n_boot=args.bootstrap,
        seed=args.seed, hell=args.friction == "hell",
    )  # fmt: skip
    print(table.to_string(index=False))
    print(json.dumps(summary, sort_keys=True))
    files: list[Path] = []
    if args.out is not None:
        csv = Path(args.out).with_suffix(".csv")
        atomic_write_text(args.out, leverage_page(table, summary))
        atomic_write_text(csv, table.to_csv(index=False))
        print(f"report {args.out}\ntable {csv}")
        files = [Path(args.out), csv]
    finish(args, "study leverage", files, config_id=load_config(args.config).id,
           span=span_of(data.dates),
           metrics={k: summary[k] for k in ("peak_leverage", "knee_leverage",
                                             "peak_growth_daily")})  # fmt: skip
    return 0
