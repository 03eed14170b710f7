"""`dolphin run`: the main research job on the committed sample (what `make run` does).

Load and summarise the bars, scan them, print the latest vel_div / instability, replay the scans
through the champion engine (default and HELL friction) and print the metrics and the report.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_BARS = Path("data/sample/bars_1m_sample.parquet")
DEFAULT_FACTORS = Path("data/sample/factors")
DEFAULT_OUT = Path("runs/sample")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``run`` subcommand."""
    p = sub.add_parser("run", help="run the main research job (scan + backtest) on a bar file",
                       description=__doc__)
    p.add_argument("--bars", type=Path, default=DEFAULT_BARS, help="bar file (default: sample)")
    p.add_argument("--factors", type=Path, default=DEFAULT_FACTORS,
                   help="indices folder for the ACB factors (default: the sample's)")
    p.add_argument("--config", type=Path, default=None, help="YAML overrides (default: blue)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dolphin.core.config import CHAMPION_BLUE_ID, load_config
    from dolphin.core.errors import ConfigError
    from dolphin.jobs import research_job

    if not args.bars.exists():
        raise ConfigError(f"{args.bars}: bar file not found (run from the repository root, or "
                          "pass --bars)")
    config = load_config(args.config)
    tag = "champion" if config.id == CHAMPION_BLUE_ID else "research config"
    print(f"config {config.id} ({tag})")
    factors = args.factors if args.factors and args.factors.is_dir() else None
    research_job(args.bars, config, args.out, factors=factors, echo=print)
    return 0
