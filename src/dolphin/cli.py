"""The one `dolphin` command. Each subcommand lives in `dolphin.commands.<name>`.

A command module exposes ``register(subparsers)``; it adds its parser and sets ``func`` to a
handler taking the parsed namespace and returning an exit code. Handlers import heavy modules
lazily so ``dolphin --help`` stays fast. Typed DOLPHIN errors become one line on stderr and the
error's exit code; nothing else is caught.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from dolphin import __version__
from dolphin.core.errors import DolphinError

COMMAND_MODULES = (
    "run", "data", "config", "scan", "hz", "backtest", "mc", "paper",
    "sweep", "walkforward", "optimize", "study",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="dolphin",
        description="DOLPHIN: correlation-structure crypto perpetual-futures trading system.",
    )
    parser.add_argument("--version", action="version", version=f"dolphin {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"dolphin.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dolphin` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except DolphinError as exc:
        print(f"dolphin: error: {exc}", file=sys.stderr)
        return exc.exit_code
