"""``dolphin backtest --engine nautilus``: the scans through a Nautilus ``BacktestEngine``.

Per asset, one quote per bar at its close (see ``data``); the scans as custom data; one
``DolphinStrategy`` on a Binance MARGIN account in USDT with the instruments of the recorded
exchangeInfo. The venue processes orders at once (``use_message_queue=False``), so a market
order sent on a scan fills against that bar's close quote. Only one engine may exist per
process: ``run_in_subprocess`` runs a backtest in a fresh interpreter and reads its results back.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from dolphin.backtest.replay import ReplayResult
from dolphin.core.config import DolphinConfig, load_config
from dolphin.core.io import read_parquet
from dolphin.features.exf import ExfTable
from dolphin.scanner.schema import validate_scans

log = logging.getLogger(__name__)

#: Realistic mode: the book is one exchange tick wide around the close (no spread is recorded).
REALISTIC_SPREAD_TICKS = 1.0


def _exchange_ticks(assets: list[str], exchange_info: str | Path | None) -> dict[str, float]:
    from dolphin.adapters.nautilus.instruments import DEFAULT_EXCHANGE_INFO, load_exchange_info

    specs = load_exchange_info(exchange_info or DEFAULT_EXCHANGE_INFO)
    ticks = {}
    for a in assets:
        f = {x["filterType"]: x for x in specs.get(a, {}).get("filters", [])}
        if "PRICE_FILTER" in f:
            ticks[a] = float(f["PRICE_FILTER"]["tickSize"])
    return ticks


def _engine(initial: float, log_level: str, modules: list):
    from nautilus_trader.backtest.engine import BacktestEngine
    from nautilus_trader.backtest.models import FillModel
    from nautilus_trader.config import BacktestEngineConfig, LoggingConfig
    from nautilus_trader.model.currencies import USDT
    from nautilus_trader.model.enums import AccountType, OmsType
    from nautilus_trader.model.objects import Money

    from dolphin.adapters.nautilus.instruments import VENUE

    engine = BacktestEngine(
        BacktestEngineConfig(logging=LoggingConfig(log_level=log_level, bypass_logging=False))
    )
    engine.add_venue(
        venue=VENUE,
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        base_currency=USDT,
        starting_balances=[Money(initial, USDT)],
        default_leverage=Decimal(20),
        fill_model=FillModel(prob_fill_on_limit=1.0, prob_slippage=0.0),
        use_message_queue=False,
        bar_execution=False,
        modules=modules,
    )
    return engine


def run_nautilus_backtest(
    scans: pd.DataFrame,
    config: DolphinConfig,
    *,
    exf: ExfTable | None = None,
    parity: bool = False,
    exchange_info: str | Path | None = None,
    source: str = "scans",
    log_level: str = "ERROR",
    funding: pd.DataFrame | None = None,
    mc_gate: Any = None,
    ob_engine: Any = None,
) -> tuple[ReplayResult, dict[str, Any]]:
    """Run the scans through a BacktestEngine; return the result and run statistics.

    ``funding`` is booked on the venue account by a ``FundingModule`` at each funding time the
    engine accrues; ``mc_gate`` is the day's MC-Forewarner (None: open, reported ``off``);
    ``ob_engine`` is the engine's OB engine (``backtest.ob_table.RecordedOb``: OB-1..OB-5, the
    day protocol taking its OB-4 stress; None: none).
    """
    from dolphin.adapters.nautilus.fill_results import assemble
    from dolphin.adapters.nautilus.funding_module import FundingModule
    from dolphin.adapters.nautilus.instruments import build_instruments
    from dolphin.adapters.nautilus.parity_fills import venue_config
    from dolphin.adapters.nautilus.scan_driver import DolphinCore
    from dolphin.adapters.nautilus.scan_feed import SCAN_CLIENT, scan_custom_data, scan_quotes
    from dolphin.adapters.nautilus.strategy import DolphinStrategy, DolphinStrategyConfig
    from dolphin.alpha.engine import NDAlphaEngine
    from dolphin.backtest.replay import run_notes_metrics, scan_bar_ns
    from dolphin.features.funding import funding_events
    from dolphin.risk.acb import AdaptiveCircuitBreaker

    assets = validate_scans(scans, source)
    cfg = venue_config(config, parity=parity)
    initial = cfg.alpha.initial_capital
    t0 = time.perf_counter()
    instruments = build_instruments(
        {a: scans[a].to_numpy(dtype=float) for a in assets}, exchange_info, parity=parity
    )
    spread = 0.0 if parity else REALISTIC_SPREAD_TICKS
    quotes = scan_quotes(scans, instruments, spread_ticks=spread,
                         exchange_ticks=_exchange_ticks(assets, exchange_info))
    ts = scans["timestamp"].to_numpy(dtype="datetime64[ns]").astype("int64")
    custom = scan_custom_data(scans, source,
                              funding=funding_events(funding, ts, scan_bar_ns(ts), assets))
    module = FundingModule()
    engine = _engine(initial, log_level, [module])
    for inst in instruments.values():
        engine.add_instrument(inst)
    for sym in assets:  # FACTS: one list per instrument, sort only on the last call
        if quotes[sym]:  # an asset with no real close in the span has no quotes at all
            engine.add_data(quotes[sym], sort=False)
    engine.add_data(custom, client_id=SCAN_CLIENT, sort=True)
    core = DolphinCore(NDAlphaEngine(cfg, assets, mc_gate=mc_gate, ob_engine=ob_engine),
                       acb=AdaptiveCircuitBreaker(cfg.acb, exf))
    strategy = DolphinStrategy(DolphinStrategyConfig(strategy_id="DOLPHIN-001"), core,
                               funding_sink=module.book)
    engine.add_strategy(strategy)
    t1 = time.perf_counter()
    engine.run()
    t2 = time.perf_counter()
    result = assemble(scans, core, strategy.trips.done, strategy.equity, cfg, initial,
                      fills=strategy.trips.fills(assets))
    result.metrics.update(run_notes_metrics(result.trades, funding, mc_gate, scans, config))
    stats = {
        "bars": len(scans),
        "assets": len(assets),
        "events": sum(len(q) for q in quotes.values()) + len(custom),
        "orders": strategy.orders_submitted,
        "setup_s": t1 - t0,
        "run_s": t2 - t1,
        "stale_state_events": core.stale_state_events,
        "funding_booked": module.total_paid,
        "funding_payments": module.payments,
    }
    engine.dispose()
    return result, stats


def main(argv: list[str] | None = None) -> int:
    """Subprocess entry: ``python -m dolphin.adapters.nautilus.backtest SCANS OUT [...]``."""
    import argparse

    from dolphin.backtest.output import write_outputs

    p = argparse.ArgumentParser(prog="dolphin.adapters.nautilus.backtest")
    p.add_argument("scans", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--config", type=Path, default=None)
    p.add_argument("--factors", type=Path, default=None)
    p.add_argument("--exchange-info", type=Path, default=None)
    p.add_argument("--parity", action="store_true")
    p.add_argument("--funding", type=Path, default=None)
    p.add_argument("--no-forewarner", action="store_true")
    p.add_argument("--ob", type=Path, default=None)
    args = p.parse_args(argv)
    from dolphin.scanner.schema import read_scans

    scans = read_scans(args.scans)
    from dolphin.backtest.gates import run_gates
    from dolphin.backtest.ob_table import recorded_ob
    from dolphin.core.io import atomic_write_text

    exf = ExfTable.from_dir(args.factors) if args.factors is not None else None
    config = load_config(args.config)
    funding, gate = run_gates(config, args.funding, not args.no_forewarner)
    result, stats = run_nautilus_backtest(
        scans, config, exf=exf, parity=args.parity,
        exchange_info=args.exchange_info, source=str(args.scans), funding=funding, mc_gate=gate,
        ob_engine=recorded_ob(args.ob, _bar_times(scans)),
    )
    write_outputs(result, args.out)
    atomic_write_text(args.out / "nautilus_stats.json", json.dumps(stats, indent=2) + "\n")
    return 0


def run_in_subprocess(
    scans_path: Path, out: Path, *, config: Path | None = None, factors: Path | None = None,
    exchange_info: Path | None = None, parity: bool = False, timeout_s: float = 1800,
    funding: Path | None = None, forewarner: bool = True, ob: Path | None = None,
) -> dict[str, Any]:
    """Run one Nautilus backtest in a fresh interpreter; return its stats (files in ``out``)."""
    cmd = [sys.executable, "-m", "dolphin.adapters.nautilus.backtest", str(scans_path), str(out)]
    for flag, value in (("--config", config), ("--factors", factors),
                        ("--exchange-info", exchange_info), ("--funding", funding),
                        ("--ob", ob)):
        if value is not None:
            cmd += [flag, str(value)]
    if parity:
        cmd.append("--parity")
    if not forewarner:
        cmd.append("--no-forewarner")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"nautilus backtest failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads((out / "nautilus_stats.json").read_text())


def _bar_times(scans: pd.DataFrame):
    """Return the scans' bar (open) times in int64 ns."""
    return scans["timestamp"].to_numpy(dtype="datetime64[ns]").astype("int64")


def _load_result(out: Path) -> ReplayResult:
    """Read a run's written files back as a ``ReplayResult`` (records are not kept on disk)."""
    import numpy as np

    frames = [read_parquet(out / f) for f in ("trades.parquet", "equity.parquet",
                                                 "daily.parquet")]
    metrics = json.loads((out / "metrics.json").read_text())
    return ReplayResult(*frames, metrics, np.zeros(0))


def run_command(args: Any, config: DolphinConfig) -> int:
    """``dolphin backtest`` with ``--engine nautilus`` and/or ``--parity``.

    Writes the replay's files for the chosen engine, ``report.html``, and ``parity.json`` comparing
    it with the internal engine under the same cost model (parity) or the internal default
    (realistic: every difference quantified). A Nautilus run happens in a subprocess.
    """
    from dolphin.adapters.nautilus.parity import write_parity
    from dolphin.adapters.nautilus.parity_fills import run_parity_replay
    from dolphin.backtest.output import write_outputs
    from dolphin.backtest.replay import run_replay
    from dolphin.core.io import atomic_write_text
    from dolphin.scanner.schema import read_scans
    from dolphin.ui.report import render_report

    scans = read_scans(args.scans)
    from dolphin.backtest.gates import run_gates
    from dolphin.backtest.ob_table import recorded_ob

    exf = ExfTable.from_dir(args.factors) if args.factors is not None else None
    src = str(args.scans)
    funding, gate = run_gates(config, args.funding, args.forewarner)
    ob_path = getattr(args, "ob", None)
    kw = {"exf": exf, "source": src, "funding": funding, "mc_gate": gate,
          "ob_engine": recorded_ob(ob_path, _bar_times(scans))}
    internal = (run_parity_replay(scans, config, **kw) if args.parity
                else run_replay(scans, config, **kw))
    label_i = "internal (parity costs)" if args.parity else "internal (default costs)"
    if args.engine == "internal":
        write_outputs(internal, args.out)
        main, label, other, other_label = internal, label_i, None, ""
    else:
        stats = run_in_subprocess(Path(args.scans), Path(args.out), config=args.config,
                                  factors=args.factors, exchange_info=args.exchange_info,
                                  parity=args.parity, funding=args.funding,
                                  forewarner=args.forewarner, ob=ob_path)
        main = _load_result(Path(args.out))
        label = "nautilus (parity costs)" if args.parity else "nautilus (venue fills)"
        other, other_label = internal, label_i
        summary = write_parity(internal.trades, main.trades, label_i, label, args.out)
        print(f"nautilus {json.dumps(stats, sort_keys=True)}")
        print(f"parity identical={summary['identical']} matched={summary['matched']} "
              f"max_rel_pnl_diff={summary['max_rel_pnl_diff']:.3g} "
              f"explained={json.dumps(summary['explained'], sort_keys=True)}")
    report = Path(args.out) / "report.html"
    atomic_write_text(report, render_report(main, label=label, other=other,
                                            other_label=other_label, scans=scans,
                                            config=config))
    from dolphin.backtest.notes import notes_lines
    from dolphin.backtest.stats import sample_figures
    from dolphin.jobs import metrics_table

    figs = sample_figures(main.trades, main.equity, main.metrics)
    other_figs = (sample_figures(other.trades, other.equity, other.metrics)
                  if other is not None else None)
    print(metrics_table(main.metrics, other.metrics if other is not None else None,
                        labels=(label, other_label), figures=figs, other_figures=other_figs))
    print(json.dumps(main.metrics, sort_keys=True))
    print("\n".join(notes_lines(main.metrics)))
    print(f"report {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
