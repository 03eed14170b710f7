"""`dolphin mc`: MC-Forewarner sampling, training and assessment (Bible §12).

- ``mc sample --scans S --n 4500 --out samples.parquet``: labelled Monte-Carlo outcomes.
- ``mc train --samples samples.parquet --out DIR``: fit, validate and save a model set.
- ``mc assess --config F [--models DIR]``: status, probabilities and model age of one config
  (default models: the set shipped in ``dolphin/resources/mc``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dolphin.commands._research import add_cluster_arg
from dolphin.core.io import read_parquet


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``mc`` subcommand and its three actions."""
    p = sub.add_parser("mc", help="MC-Forewarner: sample, train, assess")
    acts = p.add_subparsers(dest="mc_action", metavar="ACTION", required=True)
    s = acts.add_parser("sample", help="run configs under Monte-Carlo perturbations")
    s.add_argument("--scans", required=True, type=Path, help="scans parquet")
    s.add_argument("--n", type=int, default=4500, help="outcomes to draw")
    s.add_argument("--paths", type=int, default=3, help="Monte-Carlo paths per engine run")
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--workers", type=int, default=2)
    add_cluster_arg(s, "engine runs")
    s.add_argument("--out", required=True, type=Path, help="samples parquet to write")
    s.set_defaults(func=run_sample)
    t = acts.add_parser("train", help="fit the classifier, envelope and explored-region models")
    t.add_argument("--samples", required=True, type=Path)
    t.add_argument("--out", required=True, type=Path, help="model folder to write")
    t.set_defaults(func=run_train)
    a = acts.add_parser("assess", help="assess one config")
    a.add_argument("--config", type=Path, default=None, help="YAML of overrides (default: blue)")
    a.add_argument("--models", type=Path, default=None, help="model folder (default: shipped)")
    a.set_defaults(func=run_assess)


def run_sample(args: argparse.Namespace) -> int:
    """Draw the samples and write them with a sidecar of their provenance."""
    import time

    from dolphin.backtest.mc_sample import sample
    from dolphin.commands._research import cluster_runner
    from dolphin.core.errors import BadInputError
    from dolphin.core.io import atomic_write_parquet, atomic_write_text

    if args.n < 10:
        raise BadInputError("need at least 10 samples", field="--n", value=args.n)
    for name, value in (("--paths", args.paths), ("--workers", args.workers)):
        if value < 1:
            raise BadInputError("must be at least 1", field=name, value=value)
    if not args.scans.exists():
        raise BadInputError("scans file does not exist", source=str(args.scans))
    t0 = time.perf_counter()
    with cluster_runner(args.cluster) as runner:
        df = sample(args.scans, args.n, paths=args.paths, seed=args.seed, workers=args.workers,
                    runner=runner)
    secs = time.perf_counter() - t0
    atomic_write_parquet(df, args.out)
    info = {
        "scans": str(args.scans),
        "scans_sha256": df.attrs["scans_sha256"],
        "n": len(df),
        "runs": int(df["run_id"].nunique()),
        "seconds": round(secs, 1),
        "seed": args.seed,
    }
    atomic_write_text(Path(f"{args.out}.json"), json.dumps(info, indent=2) + "\n")
    print(json.dumps({**info, "catastrophic_share": float(df["catastrophic"].mean())}))
    return 0


def run_train(args: argparse.Namespace) -> int:
    """Train, validate and save a model set; print its metadata."""
    from dolphin.core.errors import BadInputError
    from dolphin.risk.mc_models import save, train

    try:
        df = read_parquet(args.samples)
    except (OSError, ValueError) as exc:
        raise BadInputError(f"cannot read samples ({exc})", source=str(args.samples)) from None
    side = Path(f"{args.samples}.json")
    scans_sha = json.loads(side.read_text()).get("scans_sha256", "") if side.exists() else ""
    models = train(df, scans_sha256=scans_sha)
    save(models, args.out)
    print(json.dumps(models.meta, sort_keys=True))
    return 0


def run_assess(args: argparse.Namespace) -> int:
    """Print the assessment of one config as one JSON line."""
    from dolphin.core.config import load_config
    from dolphin.risk.mc_models import assess, load

    config = load_config(args.config)
    result = assess(load(args.models), config)
    print(json.dumps({"config_id": config.id, **result.as_dict()}, sort_keys=True))
    return 0
