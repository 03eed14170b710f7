"""`dolphin edge`: the edge test — the config's PnL against runs on block-shuffled vel_div.

Same inputs as ``dolphin backtest`` (config, factors, funding, forewarner, friction); see
``backtest.edge`` for the method. Prints the p-value and writes ``edge.json`` (every shuffled
run's PnL) and ``edge.html`` into ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``edge`` subcommand."""
    from dolphin.commands.backtest import add_gate_arguments

    p = sub.add_parser("edge", help="edge test: PnL vs runs on time-shuffled vel_div")
    p.add_argument("--scans", required=True, type=Path, help="scans parquet")
    p.add_argument("--config", type=Path, default=None, help="YAML of overrides (default: blue)")
    p.add_argument("--factors", type=Path, default=None, help="indices folder for ACB factors")
    p.add_argument("--friction", choices=("default", "hell"), default="default")
    p.add_argument("--runs", type=int, default=200, help="shuffled runs (default 200)")
    p.add_argument("--block-bars", type=int, default=None,
                   help="bootstrap block length in bars (default: the config's max_hold_bars)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffles (default 0)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    add_gate_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the edge test; print its summary and write edge.json and edge.html."""
    import json

    from dolphin.backtest.edge import edge_test
    from dolphin.backtest.sweep import prepare
    from dolphin.core.config import load_config
    from dolphin.core.io import atomic_write_text
    from dolphin.features.exf import ExfTable
    from dolphin.features.funding import load_funding
    from dolphin.scanner.schema import read_scans
    from dolphin.ui.report import render_edge_page

    config = load_config(args.config)
    print(f"config_id {config.id}")
    scans = read_scans(args.scans)
    exf = ExfTable.from_dir(args.factors) if args.factors is not None else None
    funding = load_funding(args.funding) if args.funding is not None else None
    models = None
    if args.forewarner:
        from dolphin.risk.mc_models import load_cached

        models = load_cached()
    data = prepare(scans, exf, source=str(args.scans), funding=funding, forewarner=models)
    res = edge_test(data, config, runs=args.runs, block_bars=args.block_bars, seed=args.seed,
                    hell=args.friction == "hell")
    d = res.to_dict()
    q = d["shuffled_pnl_quantiles"]
    print(f"edge: this run PnL {d['actual_pnl']:,.2f} USDT ({d['actual_trades']} trades); "
          f"{d['runs']} runs on vel_div shuffled in {d['block_bars']}-bar blocks (seed "
          f"{d['seed']}): PnL q05 {q['0.05']:,.2f}  median {q['0.5']:,.2f}  q95 {q['0.95']:,.2f}")
    verdict = "beats" if d["p_value"] < 0.05 else "does not beat"
    print(f"p-value {d['p_value']:.4f} ({d['n_at_least']} of {d['runs']} shuffled runs earned "
          f"at least as much): the signal {verdict} chance at the 5 % level on this data")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "edge.json", json.dumps(d, indent=2, sort_keys=True) + "\n")
    atomic_write_text(out / "edge.html", render_edge_page(d, scans_label=str(args.scans)))
    print(f"report {out / 'edge.html'}")
    return 0
