"""`dolphin paper`: paper trading on a Nautilus TradingNode (sandbox venue, replayed data).

Production entry point: the config's id must equal the declared champion (``CHAMPION_BLUE_ID``)
unless ``--research`` is given. ``--venue binance --testnet`` builds the real Binance USDT-M
clients from environment keys; that venue cannot be reached from an offline machine, so the
command stops after validating its configuration there (``--check-only``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dolphin.core.io import read_parquet


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``paper`` subcommand."""
    p = sub.add_parser("paper", help="paper trading under NautilusTrader")
    p.add_argument("--replay", type=Path, help="bars parquet replayed as live data")
    p.add_argument("--speed", type=float, default=60.0, help="replay speed (x real time)")
    p.add_argument("--duration", type=float, default=3600.0, help="stop after S seconds")
    p.add_argument("--warmup", type=int, default=900, help="bars replayed unpaced first")
    p.add_argument("--config", type=Path, default=None, help="YAML of overrides (default: blue)")
    p.add_argument("--research", action="store_true", help="allow a non-champion config")
    p.add_argument("--venue", choices=("sandbox", "binance"), default="sandbox")
    p.add_argument("--testnet", action="store_true", help="Binance testnet (with --venue binance)")
    p.add_argument("--log-dir", type=Path, default=Path("runs/paper"),
                   help="session settings and trade logs (default runs/paper, git-ignored)")
    p.add_argument("--store", default="memory://", help="store URL for posture and ACB")
    p.add_argument("--forewarner", action=argparse.BooleanOptionalAction, default=True,
                   help="MC-Forewarner day gate on the shipped model set (default on)")
    p.add_argument("--ob", type=Path, default=None, metavar="FILE",
                   help="recorded OB features parquet (docs/obf.md) for OB-1..OB-5 on the "
                        "replayed bars; its SHA-256 is part of the session a ledger resumes "
                        "(default: off)")
    p.add_argument("--ledger", type=Path, default=None,
                   help="hash-chained SQLite ledger to append every order, fill, denial, "
                        "funding, capital and posture change to (created if missing; an "
                        "existing one is verified and its session resumed)")
    p.add_argument("--unsupervised", action="store_true",
                   help="trade without a posture source (APEX; embedded store only): nothing "
                        "publishes DOLPHIN_SAFETY into an embedded store, which otherwise reads "
                        "as TURTLE (no entries)")
    p.set_defaults(func=run)


def check_champion(config, research: bool) -> None:
    """Refuse a non-champion config on this production entry point unless ``research``."""
    from dolphin.core.config import require_champion

    if not research:
        require_champion(config, entry_point="dolphin paper (--research accepts another config)")


def _binance(args: argparse.Namespace, config) -> int:
    from dolphin.bootstrap import bootstrap

    venue = "binance-testnet" if args.testnet else "binance"
    runtime = bootstrap(config, store=args.store, forewarner=args.forewarner,
                        unsupervised=args.unsupervised, venue=venue)
    try:
        data_cfg, exec_cfg = runtime.venue_configs
        print(f"binance USDT-M {'testnet' if args.testnet else 'LIVE'}: data and exec client "
              f"configs built ({type(data_cfg).__name__}, {type(exec_cfg).__name__}); "
              "no network from this machine")
    finally:
        runtime.close()
    return 0


class StatusPrinter:
    """The session's status, compact: on a terminal one line rewritten in place; otherwise
    (a pipe, a log file) a line at each tenth of the session and at its end."""

    STEPS = 10

    def __init__(self, stream=None, tty: bool | None = None) -> None:
        import sys

        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.step, self.width = -1, 0

    def __call__(self, line: str, progress: float, final: bool) -> None:
        if self.tty:
            self.stream.write("\r" + line.ljust(self.width) + ("\n" if final else ""))
            self.width = 0 if final else len(line)
        else:
            step = int(progress * self.STEPS)
            if step == self.step and not final:
                return
            self.step = step
            self.stream.write(line + "\n")
        self.stream.flush()


def run(args: argparse.Namespace) -> int:
    """Run one paper session; print a compact status, then the session summary as JSON."""
    from dolphin.core.config import load_config
    from dolphin.core.errors import ConfigError

    config = load_config(args.config)
    check_champion(config, args.research)
    print(f"config_id {config.id}")
    ob = getattr(args, "ob", None)
    if args.venue == "binance":
        if ob is not None:
            raise ConfigError("--ob FILE replays recorded OB features: sandbox venue only (a "
                              "live venue takes its OB features from the OB service)")
        return _binance(args, config)
    if args.replay is None:
        raise ConfigError("--replay PATH is required with the sandbox venue")
    if not args.replay.is_file():
        from dolphin.core.errors import BadInputError

        raise BadInputError("replay file does not exist", source=str(args.replay))
    if ob is not None and not ob.is_file():
        from dolphin.core.errors import BadInputError

        raise BadInputError("OB features file does not exist", source=str(ob))
    from dolphin.adapters.nautilus.paper_session import PaperSettings, run_paper_session
    from dolphin.bootstrap import bootstrap

    runtime = bootstrap(config, store=args.store, forewarner=args.forewarner,
                        unsupervised=args.unsupervised)
    settings = PaperSettings(replay=args.replay, speed=args.speed, duration_s=args.duration,
                             warmup=args.warmup, log_dir=args.log_dir,
                             extra={"venue": args.venue, "store": args.store},
                             ledger=args.ledger, ob=ob)
    try:
        summary = run_paper_session(config, settings, store=runtime.store,
                                    posture_source=runtime.posture,
                                    echo=lambda line: print(line, flush=True),
                                    mc_gate=runtime.mc_gate, status=StatusPrinter())
    finally:
        runtime.close()
    print("session " + json.dumps(summary, sort_keys=True))
    _record(args, config, summary)
    if summary.get("halted"):
        import sys

        print(f"dolphin: invariant break (Cat1): {summary['halted']}; HIBERNATE: the session "
              f"refused to trade on (ledger {summary.get('ledger')})", file=sys.stderr)
        return 4
    if summary.get("stopped_early"):
        _stopped_early(summary, getattr(args, "command_line", "dolphin paper ..."))
        return 130
    return 0


def _record(args: argparse.Namespace, config, summary: dict) -> None:
    """Index the session (``dolphin runs list``)."""
    from dolphin.core.runs_index import record_run

    span = None
    try:  # the days of the bars replayed (the warm-up included)
        ts = read_parquet(args.replay, columns=["timestamp"])["timestamp"].drop_duplicates()
        ts = ts.sort_values().reset_index(drop=True)
        last = min(max(int(summary.get("bars") or 1), 1), len(ts)) - 1
        span = [str(ts.iloc[0].date()), str(ts.iloc[last].date())]
    except (OSError, ValueError, KeyError, IndexError):
        pass  # the index line goes without its span
    record_run("paper", getattr(args, "argv", None), args.log_dir, config.id, span,
               {k: summary.get(k) for k in ("bars", "trades", "pnl", "capital", "posture",
                                            "stopped_early")})  # fmt: skip


def _stopped_early(summary: dict, command: str) -> None:
    """One line for a session the node ended before its end (Ctrl-C / SIGTERM)."""
    import sys

    left = summary.get("open_positions", 0)
    print(f"dolphin: interrupted: session stopped early; fills so far in "
          f"{summary.get('trades_file')}, settings in {summary.get('settings_file')}"
          + (f"; {left} position(s) left open, not flattened" if left else "")
          + f"; start a new session with: {command}", file=sys.stderr)
