"""`dolphin config show [FILE]`: print the resolved config and its id."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="inspect configurations")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = csub.add_parser(
        "show", help="print the resolved config (champion + FILE overrides) and its id"
    )
    show.add_argument("file", nargs="?", help="YAML file of overrides (default: the champion)")
    show.set_defaults(func=_show)


def _show(args: argparse.Namespace) -> int:
    from dolphin.core.config import CHAMPION_BLUE_ID, dump_yaml, load_config

    cfg = load_config(args.file)
    print(dump_yaml(cfg), end="")
    tag = " (champion)" if cfg.id == CHAMPION_BLUE_ID else ""
    print(f"# config id: {cfg.id}{tag}")
    return 0
