"""`dolphin optimize`: seeded optuna search over a space, the sweep kernel as the objective.

Output with ``--out``: every trial (parquet) and the page (``<out>.html``:
``ui.research_pages.optimize_page``: trial history, fANOVA parameter importances, the best
trial's parameters). ``--export-best FILE`` writes the best trial's config as a YAML
``dolphin backtest --config`` reproduces.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from dolphin.commands._research import add_cluster_arg, add_export_arg
from dolphin.commands.sweep import add_data_args, load_data

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``optimize`` subcommand."""
    p = sub.add_parser("optimize", help="optuna search (seeded) over a parameter space")
    add_data_args(p)
    p.add_argument("--space", required=True, type=Path, help="space YAML")
    p.add_argument("--trials", required=True, type=int)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--batch", type=int, default=16, help="trials evaluated per kernel run")
    p.add_argument("--out", type=Path, default=None, help="trials parquet (+ .html)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_cluster_arg(p, "trials of each batch")
    add_export_arg(p)
    p.set_defaults(func=run)


def param_value(spec: dict[str, Any], v: Any) -> Any:
    """Return a trial's value of a parameter as its space draws it (a parquet column of an int
    parameter turns float when a pruned trial leaves a gap)."""
    v = v.item() if hasattr(v, "item") else v
    if "choices" not in spec and isinstance(spec["low"], int) and isinstance(spec["high"], int):
        return int(v)
    return v


def param_importances(trials, space: dict[str, dict[str, Any]], seed: int) -> dict[str, float]:
    """Return fANOVA importances of the space's parameters for the objective ({} when the
    trials cannot support an estimate: fewer than two valid ones, or nothing varied)."""
    import numpy as np
    import optuna

    dists = {}
    for name, spec in space.items():
        if "choices" in spec:
            dists[name] = optuna.distributions.CategoricalDistribution(list(spec["choices"]))
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int):
            dists[name] = optuna.distributions.IntDistribution(spec["low"], spec["high"],
                                                               log=bool(spec.get("log")))
        else:
            dists[name] = optuna.distributions.FloatDistribution(
                float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    ok = trials[np.isfinite(trials["objective"].astype(float))]
    ok = ok[ok["objective"] > -1e8]  # the stand-in of a trial without a daily Sharpe
    if len(ok) < 2:
        return {}
    study = optuna.create_study(direction="maximize")
    for _, row in ok.iterrows():
        params = {n: param_value(space[n], row[n]) for n in dists}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                                  value=float(row["objective"])))
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
    except (RuntimeError, ValueError) as exc:  # e.g. every trial equal
        log.info("parameter importances not estimated: %s", exc)
        return {}


def _no_bar(args: argparse.Namespace) -> bool | None:
    """tqdm's ``disable``: off when asked, else None (shown only on a terminal)."""
    return True if args.no_progress or getattr(args, "quiet", False) else None


def run(args: argparse.Namespace) -> int:
    """Run the search; print the summary JSON."""
    import sys

    from tqdm import tqdm

    from dolphin.backtest.optimize import load_space, optimize
    from dolphin.commands._research import cluster_runner, finish, span_of
    from dolphin.core.config import load_config

    space = load_space(args.space)
    data = load_data(args)
    bar = tqdm(total=args.trials, desc="optimize", unit="trial", file=sys.stderr,
               disable=_no_bar(args))  # fmt: skip
    try:
        with cluster_runner(args.cluster, args.workers) as runner:
            df, summary = optimize(
                data, space, args.trials, seed=args.seed, batch=args.batch,
                base=load_config(args.config), hell=args.friction == "hell",
                on_batch=lambda n: bar.update(n - bar.n), runner=runner,
            )  # fmt: skip
    finally:
        bar.close()
    best = _export(args, space, df, summary)
    files = [best, *(_write(args, df, summary, space) if args.out is not None else [])]
    print(json.dumps(summary, sort_keys=True, default=str))
    top = summary.get("best") or {}
    finish(args, "optimize", files, config_id=None, span=span_of(data.dates),
           metrics={"trials": summary.get("trials"),
                    **{f"best_{k}": top.get(k) for k in ("dsr", "sharpe", "roi")},
                    "best_config_id": top.get("config_id")})  # fmt: skip
    return 0


def _write(args: argparse.Namespace, df, summary: dict, space: dict) -> list[Path]:
    from dolphin.commands._research import backtest_command
    from dolphin.core.io import atomic_write_parquet, atomic_write_text
    from dolphin.ui.research_pages import optimize_page

    atomic_write_parquet(df, args.out)
    page = Path(args.out).with_suffix(".html")
    reproduce = (backtest_command(args, args.export_best) if args.export_best is not None
                 else None)  # fmt: skip
    atomic_write_text(page, optimize_page(df, summary, list(space),
                                          param_importances(df, space, args.seed),
                                          reproduce=reproduce))  # fmt: skip
    print(f"trials {args.out}\nreport {page}")
    return [Path(args.out), page]


def _export(args: argparse.Namespace, space: dict, df, summary: dict) -> Path | None:
    """Write ``--export-best``: the best trial's config; return its path (None: not asked)."""
    from dolphin.commands._research import backtest_command, export_best
    from dolphin.core.config import load_config, resolve_overrides
    from dolphin.core.errors import ConfigError

    if args.export_best is None:
        return None
    best = summary.get("best")
    if not best:
        raise ConfigError("--export-best: no trial has a defined objective")
    row = df.loc[df["trial"] == best["trial"]].iloc[0]
    params = {n: param_value(spec, row[n]) for n, spec in space.items()}
    config = resolve_overrides(params, base=load_config(args.config), source="best trial")
    if config.id != best["config_id"]:  # the parquet round trip changed a parameter value
        raise ConfigError(f"--export-best: best trial's parameters give config {config.id}, "
                          f"not the trial's {best['config_id']}")
    return export_best(args.export_best, config, source=getattr(args, "command_line", ""),
                       reproduce=backtest_command(args, args.export_best),
                       details={"trial": best["trial"], "sharpe": best["sharpe"],
                                "roi": best["roi"], "dsr": best["dsr"]})  # fmt: skip
