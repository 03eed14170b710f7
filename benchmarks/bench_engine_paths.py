"""The engine's three hot paths against an earlier version of the code, in the same run.

Times, for this tree and for a baseline source tree (``--baseline-src``: the ``src`` folder of a
``git worktree`` at an earlier commit), the default replay of the shared 2021-04 spot scans
(bars/s), a one-process sweep of a 1,000-combination grid over them (combos/s), the scanner on
the first 20,000 bars of the set's 50 assets (scans/s), the live scan driver (``DolphinCore`` in
live mode, posture and ACB on) stepping every scan of the set one by one (scans/s), and the IRP
ranking of 372 assets (``rank_assets_irp_nb``, rankings/s). Each measurement runs in a fresh
subprocess (numba caches are per source tree), after one warm-up call; the trees alternate and
each figure is the median of ``--repeats`` runs, so the ratio (this tree / baseline) is what a
code change did, at whatever load the machine has. Prints ONE JSON line.

    git worktree add /tmp/base-tree COMMIT
    .venv/bin/python benchmarks/bench_engine_paths.py --baseline-src /tmp/base-tree/src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DOLPHIN_SHARED_DATA", REPO.parent / "shared" / "data"))
BARS = SHARED / "bars" / "binance_spot_1m_2021-04_top50.parquet"

_PROBE = r"""
import json, sys, time
import numpy as np, pandas as pd
scans = pd.read_parquet(sys.argv[1])
what = sys.argv[2]
from dolphin.core.config import DolphinConfig
if what == "replay":
    from dolphin.backtest.replay import run_replay
    # the first whole run pays first-touch costs that swing 2x from run to run: time the second
    run_replay(scans.iloc[:5000], DolphinConfig())
    run_replay(scans, DolphinConfig())
    t = time.perf_counter(); run_replay(scans, DolphinConfig()); dt = time.perf_counter() - t
    print(json.dumps({"rate": len(scans) / dt}))
elif what == "sweep":
    from dolphin.backtest import sweep as sw
    import itertools
    base = DolphinConfig()
    grid = list(itertools.product([-0.015, -0.02, -0.025, -0.03], np.linspace(0.005, 0.015, 10),
                                  [30, 60, 90, 120, 180], [2.0, 3.0, 4.0, 5.0, 6.0]))
    cfgs = [base.replace(vel_div_threshold=float(a), fixed_tp_pct=float(b), max_hold_bars=int(c),
                         max_leverage=float(d)) for a, b, c, d in grid]
    data = sw.prepare(scans)
    sw.evaluate(data, cfgs[:8])
    t = time.perf_counter(); sw.evaluate(data, cfgs); dt = time.perf_counter() - t
    print(json.dumps({"rate": len(cfgs) / dt}))
elif what == "live":
    from dolphin.adapters.nautilus.scan_driver import DolphinCore, scan_inputs
    from dolphin.alpha.engine import NDAlphaEngine
    from dolphin.risk.acb import AdaptiveCircuitBreaker
    cfg = DolphinConfig()
    assets = [c for c in scans.columns if c.endswith("USDT")]
    inputs = scan_inputs(scans, assets)
    def run(batch):
        core = DolphinCore(NDAlphaEngine(cfg, assets), acb=AdaptiveCircuitBreaker(cfg.acb),
                           posture_source=lambda: "APEX", live_mode=True)
        idle = getattr(core, "after_scan", None)  # idle-time day roll, where the tree has it
        for scan in batch:
            core.on_scan(scan)
            if idle is not None:
                idle(scan)
    run(inputs[:5000])
    t = time.perf_counter(); run(inputs); dt = time.perf_counter() - t
    print(json.dumps({"rate": len(inputs) / dt}))
elif what == "irp":
    from dolphin.alpha import nb
    from dolphin.alpha.layout import H_LAST_REAL, new_histories
    rng = np.random.default_rng(1)
    hist, hist_n = new_histories(372)
    for a in range(372):
        for p in 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.003, 60))):
            hist[a, hist_n[a] % 64] = p
            hist_n[a] += 1
        hist[a, H_LAST_REAL] = hist_n[a]
    dq = np.zeros(372)
    nb.rank_assets_irp_nb(hist, hist_n, 50, -1, dq, False)
    n = 5000
    t = time.perf_counter()
    for _ in range(n):
        nb.rank_assets_irp_nb(hist, hist_n, 50, -1, dq, False)
    dt = time.perf_counter() - t
    print(json.dumps({"rate": n / dt}))
else:
    from dolphin.scanner.scanner import scan_prices
    cols = ["timestamp"] + [c for c in scans.columns if c.endswith("USDT")]
    wide = scans[cols].iloc[:20000].ffill()
    scan_prices(wide.iloc[:2000])
    t = time.perf_counter(); scan_prices(wide); dt = time.perf_counter() - t
    print(json.dumps({"rate": len(wide) / dt}))
"""


def _scans(tmp: Path) -> Path:
    out = tmp / "scans_2021.parquet"
    if not out.exists():
        subprocess.run([sys.executable, "-m", "dolphin", "scan", "--bars", str(BARS), "--out",
                        str(out)], check=True, capture_output=True, env=_env(REPO / "src"))
    return out


def _env(src: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(src))
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = "1"
    return env


def _rate(src: Path, scans: Path, what: str) -> float:
    out = subprocess.run([sys.executable, "-c", _PROBE, str(scans), what], check=True,
                         capture_output=True, text=True, env=_env(src))
    return float(json.loads(out.stdout.strip().splitlines()[-1])["rate"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-src", type=Path, required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tmp", type=Path, default=Path("/tmp"))
    args = ap.parse_args()
    scans = _scans(args.tmp)
    trees = {"this": REPO / "src", "baseline": args.baseline_src}
    result: dict[str, dict[str, float]] = {}
    for what in ("replay", "sweep", "scanner", "live", "irp"):
        runs: dict[str, list[float]] = {k: [] for k in trees}
        for _ in range(args.repeats):
            for name, src in trees.items():
                runs[name].append(_rate(src, scans, what))
        med = {k: statistics.median(v) for k, v in runs.items()}
        result[what] = {"this": med["this"], "baseline": med["baseline"],
                        "ratio": med["this"] / med["baseline"]}
    load = os.getloadavg()[0]
    print(json.dumps({"bench": "engine_paths", "units": {"replay": "bars/s", "sweep": "combos/s",
                      "scanner": "scans/s", "live": "scans/s", "irp": "rankings/s"},
                      "figures": result, "load_1min": round(load, 2),
                      "repeats": args.repeats}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
