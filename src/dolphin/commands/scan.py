"""`dolphin scan`: backfill scans from bars; `dolphin scan calibrate`: re-express thresholds."""

from __future__ import annotations

import argparse
import json
import time

from dolphin.commands._research import add_cluster_arg


def _csv(text: str | None) -> list[str] | None:
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``scan`` (backfill) and its ``calibrate`` action."""
    p = sub.add_parser(
        "scan",
        help="compute eigenvalue scans (lambda_max share, velocities, vel_div, instability)",
        description="Scan a bar file (any format `dolphin data` reads, or an aligned wide "
        "parquet) into one scan row per bar, as defined in DESIGN.md 'Scans'.",
    )
    p.add_argument("--bars", help="bar file, directory, or aligned wide parquet")
    p.add_argument("--bar", help="grid bar size, e.g. 1m or 5m (default: the data's bar)")
    p.add_argument("--windows", help="comma-separated windows (default: the config's)")
    p.add_argument("--symbols", help="comma-separated symbols (default: all)")
    p.add_argument("--config", help="YAML config overrides (scanner section)")
    p.add_argument("--fill-limit", help="carry a missing bar's last real close forward for at "
                   "most this long, e.g. 1d, 6h, 0 (default: 1d)")
    p.add_argument("--workers", type=int, default=1, help="processes for the backfill")
    add_cluster_arg(p, "backfill's time chunks")
    p.add_argument("--chunks", type=int, default=None,
                   help="time chunks of the backfill (default: --workers, or 4 per cluster "
                        "worker with --cluster)")
    p.add_argument("--out", help="output scans parquet")
    p.set_defaults(func=_scan)
    ssub = p.add_subparsers(dest="scan_command", metavar="ACTION")
    cal = ssub.add_parser(
        "calibrate",
        help="vel_div distribution and threshold crossings, real vs time-shuffled surrogate",
    )
    cal.add_argument("--scans", required=True, help="scans parquet written by `dolphin scan`")
    cal.add_argument("--threshold", type=float, default=-0.02, help="vel_div threshold")
    cal.add_argument("--config", help="YAML config overrides (scanner section)")
    cal.add_argument("--seed", type=int, default=42, help="surrogate shuffle seed")
    cal.add_argument("--fill-limit", help="the fill limit the scans were made with (default: 1d)")
    cal.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cal.set_defaults(func=_calibrate)


def _scanner_config(args: argparse.Namespace):
    from dolphin.core.config import load_config

    cfg = load_config(args.config)
    windows = _csv(getattr(args, "windows", None))
    if windows:
        ws = tuple(int(w) for w in windows)
        inst = tuple(w for w in cfg.scanner.instability_windows if w in ws)
        cfg = cfg.replace(scanner={"windows": ws, "instability_windows": inst})
    return cfg.scanner


def _fill_limit(args: argparse.Namespace):
    from dolphin.data import DEFAULT_FILL_LIMIT, parse_fill_limit

    return DEFAULT_FILL_LIMIT if args.fill_limit is None else parse_fill_limit(args.fill_limit)


def _scan(args: argparse.Namespace) -> int:
    from dolphin.commands._research import cluster_runner
    from dolphin.core.errors import ConfigError
    from dolphin.core.io import atomic_write_parquet
    from dolphin.scanner.backfill import scan_prices_parallel
    from dolphin.scanner.inputs import load_scan_input

    if not args.bars or not args.out:
        raise ConfigError("dolphin scan needs --bars PATH and --out SCANS.parquet")
    config = _scanner_config(args)
    t0 = time.perf_counter()
    wide, real = load_scan_input(args.bars, bar=args.bar, symbols=_csv(args.symbols),
                                 fill_limit=_fill_limit(args))
    t1 = time.perf_counter()
    with cluster_runner(args.cluster) as runner:
        chunks = args.chunks
        if runner is not None and chunks is None:
            chunks = 4 * runner.slots
        scans = scan_prices_parallel(wide, config, workers=args.workers, real=real,
                                     source=args.bars, runner=runner, chunks=chunks)
    t2 = time.perf_counter()
    atomic_write_parquet(scans, args.out)
    n_assets = wide.shape[1] - 1
    print(f"scanned {len(scans):,} bars x {n_assets} assets, windows {list(config.windows)}: "
          f"load {t1 - t0:.1f}s, scan {t2 - t1:.1f}s ({len(scans) / max(t2 - t1, 1e-9):,.0f} "
          f"scans/s, {args.cluster or f'{args.workers} worker(s)'}) -> {args.out}")
    return 0


def _calibrate(args: argparse.Namespace) -> int:

    from dolphin.scanner.calibrate import calibrate, format_calibration
    from dolphin.scanner.schema import read_scans

    scans = read_scans(args.scans)
    result = calibrate(scans, args.threshold, _scanner_config(args), seed=args.seed,
                       fill_limit=_fill_limit(args))
    print(json.dumps(result, indent=2) if args.json else format_calibration(result))
    return 0
