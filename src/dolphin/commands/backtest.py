"""`dolphin backtest`: replay scans through the engine and write trades, metrics and a report.

Research command: any valid config is accepted (a partial YAML of overrides included) and its id is
printed. The run with the other friction (default vs HELL) is computed too and shown beside it in
``report.html``; the chosen friction's files go into ``--out``, the other's into ``--out/hell``
(or ``--out/default`` with ``--friction hell``), each with its ``intervals.json`` (sample sizes,
bootstrap intervals, the annualisation caveat). It prints the same metrics table as
``dolphin run`` (``jobs.metrics_table``). ``--ob FILE`` attaches
recorded OB features (``backtest.ob_table.RecordedOb``) to every engine of the run, the Nautilus
one included.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``backtest`` subcommand."""
    p = sub.add_parser("backtest", help="replay scans through NDAlphaEngine")
    p.add_argument("--scans", required=True, type=Path, help="scans parquet")
    p.add_argument("--config", type=Path, default=None, help="YAML of overrides (default: blue)")
    p.add_argument("--factors", type=Path, default=None, help="indices folder for ACB factors")
    p.add_argument("--friction", choices=("default", "hell"), default="default")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--survival",
        action="store_true",
        help="attach the survival controller and pre-trade checks (posture per bar)",
    )
    p.add_argument("--engine", choices=("internal", "nautilus"), default="internal",
                   help="internal replay, or a Nautilus BacktestEngine (fills from the venue)")
    p.add_argument("--parity", action="store_true",
                   help="shared cost model: fills at bar closes, taker fee, no SP fees/slippage")
    p.add_argument("--exchange-info", type=Path, default=None,
                   help="Binance exchangeInfo capture for instrument tick/lot sizes (nautilus)")
    p.add_argument("--ob", type=Path, default=None,
                   help="recorded OB features parquet (dolphin obf replay): OB sub-systems 1-5 "
                        "on every engine (default: no OB engine)")
    add_gate_arguments(p)
    p.set_defaults(func=run)


def add_gate_arguments(p: argparse.ArgumentParser, *, forewarner_default: bool = True) -> None:
    """Add ``--funding FILE`` and ``--forewarner/--no-forewarner`` (see ``backtest.gates``)."""
    p.add_argument("--funding", type=Path, default=None,
                   help="funding rates (timestamp, symbol, funding_rate; or Binance's "
                        "fundingRate CSV dump): accrue perpetual funding on open positions")
    p.add_argument("--forewarner", action=argparse.BooleanOptionalAction,
                   default=forewarner_default,
                   help="MC-Forewarner day gate on the shipped model set (RED halts entries, "
                        "ORANGE halves size)")


def run(args: argparse.Namespace) -> int:
    """Run the backtest; print the config id, the metrics and the report path."""

    import time

    from dolphin.backtest.replay import run_replay
    from dolphin.core.config import load_config
    from dolphin.core.errors import BadInputError
    from dolphin.features.exf import ExfTable
    from dolphin.jobs import metrics_table, record, report_runs

    t0_wall = time.time()
    config = load_config(args.config)
    print(f"config_id {config.id}")
    if args.exchange_info is not None and not Path(args.exchange_info).is_file():
        # checked here: the Nautilus run happens in a subprocess, whose errors arrive as text
        raise BadInputError("exchangeInfo file does not exist", source=str(args.exchange_info))
    if args.engine == "nautilus" or args.parity:
        from dolphin.adapters.nautilus.backtest import run_command

        return run_command(args, config)
    from dolphin.scanner.schema import read_scans

    scans = read_scans(args.scans)
    from dolphin.backtest.gates import run_gates
    from dolphin.backtest.ob_table import recorded_ob

    exf = ExfTable.from_dir(args.factors) if args.factors is not None else None
    hell = args.friction == "hell"
    funding, gate = run_gates(config, args.funding, args.forewarner)
    ob = recorded_ob(args.ob, scans["timestamp"].to_numpy(dtype="datetime64[ns]").astype("int64"))
    kw = {"exf": exf, "source": str(args.scans), "survival": args.survival,
          "funding": funding, "mc_gate": gate, "ob_engine": ob}
    main = run_replay(scans, config, hell=hell, **kw)
    other = run_replay(scans, config, hell=not hell, **kw)
    labels = (
        ("HELL friction", "default friction") if hell else ("default friction", "HELL friction")
    )
    report, figs, other_figs = report_runs(
        main, other, labels, Path(args.out), other_dir="default" if hell else "hell",
        scans=scans, config=config,
    )
    from dolphin.backtest.notes import notes_lines

    short = ("HELL", "default") if hell else ("default", "HELL")
    print(metrics_table(main.metrics, other.metrics, labels=short, figures=figs,
                        other_figures=other_figs))
    print("\n".join(notes_lines(main.metrics)))
    print(f"trades_sha256 {main.metrics['trades_sha256']}")
    record("backtest", Path(args.out), config, scans, main.metrics, t0_wall)
    print(f"report {report}")
    return 0
