"""Scan backfill: one core against a Dask LocalCluster, and the year-at-400-assets projection.

Prints ONE JSON line. One close matrix is scanned by ``scan_prices`` in this
process (BLAS and numba pinned to one thread) and by ``scan_prices_parallel`` on a
``--cluster local:N`` cluster; the two scans files must be byte-identical. The cluster's start
is timed apart from the scan.

No shared file holds a year of 1 m bars at 400 assets, so the matrix is scaled from the shared
spot 5m 2024-07 set: its stretch where the whole universe trades (2,164 bars; the 371 assets live
throughout it) gives real cross-sectional return vectors, drawn in day blocks to ``--bars`` rows
(60,000 by default: 42 days of 1 m bars, every asset live on every bar, so time chunks cost the
same). The year at 400 assets is projected from the measured rates: a scan costs bars x N^2
(the four N x N sums are streamed each bar), so seconds = 525,600 x (400 / N)^2 / rate.

    .venv/bin/python benchmarks/bench_backfill.py [--workers 2] [--chunks 8]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from dolphin.adapters.cluster import DaskRunner  # noqa: E402
from dolphin.core.config import ScannerConfig  # noqa: E402
from dolphin.scanner import scan_prices  # noqa: E402
from dolphin.scanner.backfill import scan_prices_parallel  # noqa: E402
from dolphin.scanner.inputs import load_scan_input  # noqa: E402

BARS = Path(os.environ.get("DOLPHIN_SHARED_DATA", Path(__file__).resolve().parents[2] /
                           "shared" / "data")) / "bars"
YEAR_1M_BARS = 525_600
TARGET_ASSETS = 400


def _long_matrix(path: Path, min_assets: int, bars: int, seed: int):
    """``bars`` rows of closes for every asset of the set's full-universe stretch, made of its
    real one-bar return vectors (the whole cross-section of a bar kept together, so the
    correlation structure is the real one) drawn in blocks of a day, compounded from 100."""
    import numpy as np
    import pandas as pd

    wide, _ = load_scan_input(path)
    closes = wide.drop(columns="timestamp")
    live = closes.notna().sum(axis=1).to_numpy()
    first = int((live >= min_assets).argmax())
    stretch = closes.iloc[first:]
    stretch = stretch.loc[:, stretch.notna().all(axis=0)]  # live through the whole stretch
    r = np.diff(np.log(stretch.to_numpy(np.float64)), axis=0)
    rng = np.random.default_rng(seed)
    block = 288
    starts = rng.integers(0, len(r) - block, size=-(-bars // block))
    rows = np.concatenate([r[s : s + block] for s in starts])[:bars]
    prices = 100.0 * np.exp(np.cumsum(rows, axis=0))
    ts = pd.date_range("2024-01-01", periods=bars, freq="1min", tz="UTC")
    out = pd.DataFrame(prices, columns=stretch.columns)
    out.insert(0, "timestamp", ts)
    return out, np.ones(prices.shape, dtype=bool)


def _warm(cfg: ScannerConfig) -> None:
    import numpy as np

    from dolphin.scanner.scanner import run_kernel

    rng = np.random.default_rng(0)
    run_kernel(np.exp(np.cumsum(rng.normal(0, 0.01, (max(cfg.windows) + 20, 8)), axis=0)), cfg)


def _bytes(frame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf)
    return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster workers")
    ap.add_argument("--chunks", type=int, default=8, help="time chunks on the cluster")
    ap.add_argument("--set", default="binance_spot_5m_2024-07.parquet")
    ap.add_argument("--min-assets", type=int, default=300,
                    help="the stretch starts at the first bar with this many live assets")
    ap.add_argument("--bars", type=int, default=60_000, help="rows of the matrix scanned")
    ap.add_argument("--seed", type=int, default=3, help="block bootstrap seed")
    args = ap.parse_args()
    cfg = ScannerConfig()
    wide, real = _long_matrix(BARS / args.set, args.min_assets, args.bars, args.seed)
    n, bars = wide.shape[1] - 1, len(wide)
    scan_prices(wide.iloc[: max(cfg.windows) + 20], cfg)  # compile outside the timing
    t = time.perf_counter()
    one = scan_prices(wide, cfg, real=real)
    one_s = time.perf_counter() - t
    t = time.perf_counter()
    with DaskRunner(f"local:{args.workers}") as runner:
        start_s = time.perf_counter() - t
        runner.client.run(_warm, cfg)  # every worker compiles (or loads the cache) first
        t = time.perf_counter()
        many = scan_prices_parallel(wide, cfg, real=real, runner=runner, chunks=args.chunks)
        cluster_s = time.perf_counter() - t
    identical = _bytes(one) == _bytes(many)
    one_rate, cluster_rate = bars / one_s, bars / cluster_s
    year_one_s = YEAR_1M_BARS * (TARGET_ASSETS / n) ** 2 / one_rate  # cost ~ bars x N^2
    speedup = cluster_rate / one_rate
    print(json.dumps({
        "bench": "backfill", "set": args.set, "bars": bars, "n_assets": n,
        "windows": list(cfg.windows),
        "one_core": {"seconds": round(one_s, 2), "scans_per_s": round(one_rate, 1)},
        "cluster": {"workers": args.workers, "chunks": args.chunks,
                    "start_seconds": round(start_s, 2), "seconds": round(cluster_s, 2),
                    "scans_per_s": round(cluster_rate, 1)},
        "ratio_cluster_vs_one_core": round(speedup, 2), "byte_identical": identical,
        "projected_year_1m_400_assets_minutes": {
            "one_core": round(year_one_s / 60, 1),
            "cluster": round(year_one_s / speedup / 60, 1)},
        "cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2),
    }))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
