"""`dolphin factors esof`: the esoteric factors per UTC day, for research (``features.esof``);
`dolphin factors build`: the daily ExF table the ACB reads (``features.factor_table``);
`dolphin factors study`: whether an EsoF feature separates the champion's daily returns
(``backtest.esof_study``)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from dolphin.commands.backtest import add_gate_arguments

#: The shared factor histories, found as the tests find the shared data (``DOLPHIN_SHARED_DATA``
#: or ``../shared/data`` beside the repository).
_SHARED_DATA = os.environ.get(
    "DOLPHIN_SHARED_DATA", Path(__file__).resolve().parents[4] / "shared" / "data"
)
DEFAULT_INDICES = Path(_SHARED_DATA) / "indices"
TABLE_NAME = "factors.parquet"


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``factors`` and its actions."""
    p = sub.add_parser("factors", help="external and esoteric factor tables")
    fsub = p.add_subparsers(dest="factors_command", metavar="ACTION", required=True)
    e = fsub.add_parser("esof", help="moon, Mercury retrograde and weekday per UTC day")
    e.add_argument("--start", required=True, help="first UTC day, e.g. 2025-01-01")
    e.add_argument("--end", required=True, help="last UTC day (inclusive)")
    e.add_argument("--out", required=True, type=Path, help="output parquet")
    e.set_defaults(func=_esof)
    b = fsub.add_parser("build", help="daily ExF table (funding, DVOL, F&G, taker), as-of times")
    b.add_argument("--indices", type=Path, default=DEFAULT_INDICES,
                   help="folder of factor histories (default: %(default)s)")
    b.add_argument("--out", required=True, type=Path, help="output folder (factors.parquet)")
    b.add_argument("--start", default=None, help="first UTC day (default: first known)")
    b.add_argument("--end", default=None, help="last UTC day, inclusive (default: last known)")
    b.set_defaults(func=_build)
    s = fsub.add_parser("study", help="does weekday, moon quarter or Mercury separate daily PnL?")
    s.add_argument("--scans", required=True, type=Path, help="scans parquet")
    s.add_argument("--out", type=Path, default=None, help="folder for study.json and days.parquet")
    s.add_argument("--permutations", type=int, default=10_000, help="label shuffles per feature")
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--factors", type=Path, default=None, help="indices folder for ACB factors")
    add_gate_arguments(s)
    s.set_defaults(func=_study)


def _esof(args: argparse.Namespace) -> int:
    from dolphin.core.io import atomic_write_parquet
    from dolphin.features.esof import esof_daily

    table = esof_daily(args.start, args.end)
    atomic_write_parquet(table, args.out)
    retro = int(table["mercury_retrograde"].sum())
    print(f"esof: {len(table):,} days {args.start} .. {args.end} (illumination at 12:00 UTC), "
          f"{retro} with Mercury retrograde -> {args.out}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from dolphin.core.io import atomic_write_parquet
    from dolphin.features.exf import FACTORS, load_factor_series
    from dolphin.features.factor_table import factor_table

    table = factor_table(load_factor_series(args.indices), args.start, args.end)
    args.out.mkdir(parents=True, exist_ok=True)
    path = atomic_write_parquet(table, args.out / TABLE_NAME)
    present = ", ".join(f"{name} {int(table[name].notna().sum()):,}" for name in FACTORS)
    first, last = table["date"].iloc[0].date(), table["date"].iloc[-1].date()
    print(f"factors: {len(table):,} days {first} .. {last}; days with a value: {present} -> {path}")
    return 0


def _study(args: argparse.Namespace) -> int:
    from dolphin.backtest.esof_study import report_lines, run_study, study_days
    from dolphin.backtest.gates import run_gates
    from dolphin.backtest.replay import run_replay
    from dolphin.core.config import DolphinConfig
    from dolphin.core.errors import BadInputError
    from dolphin.core.io import atomic_write_parquet, atomic_write_text
    from dolphin.features.exf import ExfTable
    from dolphin.scanner.schema import read_scans

    if args.permutations < 1:
        raise BadInputError("must be at least 1", field="--permutations", value=args.permutations)
    config = DolphinConfig()  # the champion, as `dolphin backtest` runs it without --config
    print(f"config_id {config.id}")
    funding, gate = run_gates(config, args.funding, args.forewarner)
    exf = ExfTable.from_dir(args.factors) if args.factors is not None else None
    result = run_replay(read_scans(args.scans), config, exf=exf, source=str(args.scans),
                        funding=funding, mc_gate=gate)  # fmt: skip
    days = study_days(result.daily, config.alpha.initial_capital)
    study = run_study(days, n_permutations=args.permutations, seed=args.seed)
    study.update(config_id=config.id, scans=str(args.scans),
                 trades_sha256=result.metrics["trades_sha256"])  # fmt: skip
    print("\n".join(report_lines(study)))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        text = json.dumps(study, indent=2, sort_keys=True, allow_nan=False) + "\n"
        atomic_write_text(args.out / "study.json", text)
        atomic_write_parquet(days, args.out / "days.parquet")
        print(f"study {args.out / 'study.json'}, days {args.out / 'days.parquet'}")
    return 0
