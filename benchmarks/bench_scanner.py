"""Scanner throughput: incremental kernel vs the naive corrcoef + eigvalsh reference.

Prints ONE JSON line. Both run on one core in the same process: BLAS is pinned to one thread
before numpy loads. Sets: N=50 (spot 1m 2021-04, every bar) and N~372 (spot 5m 2024-07, the
stretch where the full universe trades). The naive reference is timed on a sample of bars
(it costs ~0.1 s per window at N=372) and expressed per scan (4 windows at one bar).

    .venv/bin/python benchmarks/bench_scanner.py [--naive-bars-50 400] [--naive-bars-372 12]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from dolphin.core.config import ScannerConfig  # noqa: E402
from dolphin.data import align_closes, load_bars  # noqa: E402
from dolphin.scanner import nb  # noqa: E402
from dolphin.scanner.reference import reference_window  # noqa: E402
from dolphin.scanner.scanner import run_kernel  # noqa: E402

BARS = Path(os.environ.get("DOLPHIN_SHARED_DATA", Path(__file__).resolve().parents[2] /
                           "shared" / "data")) / "bars"


def _prices(name: str, min_assets: int) -> np.ndarray:
    wide = align_closes(load_bars(BARS / name))
    prices = wide.drop(columns="timestamp").to_numpy(dtype=np.float64)
    live = np.isfinite(prices).sum(axis=1)
    first = int(np.argmax(live >= min_assets))
    cols = np.isfinite(prices[first:]).any(axis=0)
    return np.ascontiguousarray(prices[first:, cols])


def _incremental(prices: np.ndarray, cfg: ScannerConfig) -> tuple[float, np.ndarray]:
    t = time.perf_counter()
    out = run_kernel(prices, cfg)
    return time.perf_counter() - t, out


def _naive(prices: np.ndarray, cfg: ScannerConfig, n_bars: int) -> float:
    """Seconds per scan of the reference (one bar, every window)."""
    bars = np.linspace(max(cfg.windows), len(prices) - 1, n_bars).astype(int)
    t = time.perf_counter()
    for b in bars:
        for w in cfg.windows:
            reference_window(prices, int(b), w)
    return (time.perf_counter() - t) / len(bars)


def _traffic(out: np.ndarray, n: int, cfg: ScannerConfig) -> dict[str, float]:
    """Mean power iterations per window and the S2 bytes streamed per scan (one pass per
    iteration; the first pass also does the rank-2 update and the Frobenius norm)."""
    warm = max(cfg.windows)
    iters = out[warm:, nb.OUT_ITERATIONS :: nb.N_OUT]
    mean_iters = [float(np.mean(np.where(c > 0, c, 1))) for c in iters.T]
    fallbacks = int((iters < 0).sum())
    passes = sum(mean_iters)
    # fused pass: update 2 FMA + matvec 1 + Frobenius 2 per element; later passes: 1 FMA.
    flops = 2 * n * n * (len(cfg.windows) * 5 + (passes - len(cfg.windows)))
    return {"mean_iterations": [round(x, 2) for x in mean_iters], "exact_fallbacks": fallbacks,
            "matrix_passes_per_scan": round(passes, 2),
            "bytes_per_scan": 8.0 * n * n * passes, "flops_per_scan": flops}


def _case(name: str, min_assets: int, naive_bars: int, cfg: ScannerConfig) -> dict:
    prices = _prices(name, min_assets)
    run_kernel(prices[: max(cfg.windows) + 20], cfg)  # compile outside the timing
    secs, out = _incremental(prices, cfg)
    naive_s = _naive(prices, cfg, naive_bars)
    n = prices.shape[1]
    traffic = _traffic(out, n, cfg)
    inc_rate = len(prices) / secs
    return {
        "set": name, "n_assets": n, "bars": len(prices), "windows": list(cfg.windows),
        "incremental_scans_per_s": round(inc_rate, 1),
        "naive_scans_per_s": round(1.0 / naive_s, 2), "naive_bars_timed": naive_bars,
        "speedup": round(inc_rate * naive_s, 1),
        "gflops": round(traffic["flops_per_scan"] * inc_rate / 1e9, 2),
        "gbytes_per_s": round(traffic["bytes_per_scan"] * inc_rate / 1e9, 2),
        **traffic,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--naive-bars-50", type=int, default=400)
    ap.add_argument("--naive-bars-372", type=int, default=12)
    args = ap.parse_args()
    cfg = ScannerConfig()
    cases = [
        _case("binance_spot_1m_2021-04_top50.parquet", 2, args.naive_bars_50, cfg),
        _case("binance_spot_5m_2024-07.parquet", 300, args.naive_bars_372, cfg),
    ]
    big = cases[1]
    line = {
        "bench": "scanner", "cases": cases,
        "targets": {"scans_per_s_at_372": 1000, "speedup_at_372": 50},
        "meets_targets": big["incremental_scans_per_s"] >= 1000 and big["speedup"] >= 50,
        "single_core": True, "python": platform.python_version(), "machine": platform.machine(),
        "cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
