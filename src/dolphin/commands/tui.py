"""`dolphin tui [--store URL | --run-dir DIR] [--screenshot FILE.svg --after S]`: the operator's
live view of a running mesh (``dolphin.ui.tui``)."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_RUN_DIR = Path("runs/mesh")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``tui``."""
    p = sub.add_parser("tui", help="live posture, risk, PnL and services of a running mesh")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--store", default=None,
                       help="store URL (tcp://127.0.0.1:PORT, hazelcast://..., memory://)")
    where.add_argument("--run-dir", type=Path, default=None,
                       help=f"a `dolphin mesh up` run directory: its options.json's store_url "
                            f"(default {DEFAULT_RUN_DIR})")
    p.add_argument("--screenshot", type=Path, default=None, metavar="FILE.svg",
                   help="render headless, save the screen as SVG and exit")
    p.add_argument("--after", type=float, default=2.0, metavar="S",
                   help="with --screenshot: seconds to run before saving (default 2)")
    p.add_argument("--size", default="80x24", help="with --screenshot: COLSxROWS (80x24)")
    p.add_argument("--by", default=None, help="operator name recorded with a pause ($USER)")
    p.add_argument("--config", default=None,
                   help="config YAML for the exit levels shown (default: the run's, else "
                        "the champion)")
    p.set_defaults(func=_tui)


def store_url(args: argparse.Namespace) -> tuple[str, dict]:
    """Return the store URL to watch and the run's options (empty with ``--store``)."""
    from dolphin.core.errors import ConfigError
    from dolphin.mesh.plan import read_options

    if args.store:
        return args.store, {}
    opts = read_options(args.run_dir or DEFAULT_RUN_DIR)
    url = opts.get("store_url")
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{args.run_dir or DEFAULT_RUN_DIR}/options.json has no store_url "
                          "(pass --store URL)")
    return url, opts


def _size(text: str) -> tuple[int, int]:
    from dolphin.core.errors import BadInputError

    cols, sep, rows = text.lower().partition("x")
    if not (sep and cols.isdigit() and rows.isdigit() and int(cols) >= 40 and int(rows) >= 12):
        raise BadInputError("size must be COLSxROWS, at least 40x12", field="--size",
                            value=text)
    return int(cols), int(rows)


def _tui(args: argparse.Namespace) -> int:
    from dolphin.bootstrap import open_store
    from dolphin.core.config import load_config
    from dolphin.core.errors import BadInputError
    from dolphin.ui.tui import run_tui
    from dolphin.ui.tui_model import ExitRule, MeshView

    if not args.after >= 0:
        raise BadInputError("must be >= 0 seconds", field="--after", value=args.after)
    url, opts = store_url(args)
    alpha = load_config(args.config or opts.get("config")).alpha
    view = MeshView(exits=ExitRule(alpha.fixed_tp_pct, alpha.stop_pct, alpha.max_hold_bars))
    store = open_store(url)
    try:
        return run_tui(store, screenshot=args.screenshot, after_s=args.after,
                       size=_size(args.size) if args.screenshot else None, operator=args.by,
                       view=view)
    finally:
        store.close()
