"""Full-stack replay speed at 50 assets; prints one JSON line.

``replay_bars_per_s``: ``run_replay`` end to end (validation, daily ACB, the numba bar loop over
``step_bar_nb``, trade/equity/daily tables, metrics) on a random-walk scan frame. Baseline in the
same run: the live path, one Python ``NDAlphaEngine.step_bar`` call per bar over the same bars.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dolphin.alpha.engine import NDAlphaEngine
from dolphin.backtest.replay import asset_columns, run_replay
from dolphin.core.config import DolphinConfig
from tests.kit.scans import random_scans

N_BARS = 30 * 1440
N_ASSETS = 50
N_BASELINE = 20_000


def main() -> None:
    """Time the replay and the per-bar Python baseline; print the JSON line."""
    scans = random_scans(N_BARS, N_ASSETS, seed=1)
    cfg = DolphinConfig()
    run_replay(scans.iloc[:3000], cfg)  # compile / load the numba cache
    t0 = time.perf_counter()
    res = run_replay(scans, cfg)
    replay_s = time.perf_counter() - t0

    assets = asset_columns(scans)
    prices = scans[assets].to_numpy(dtype=np.float64)
    vd = scans["vel_div"].to_numpy()
    eng = NDAlphaEngine(cfg, assets)
    eng.begin_day("2024-01-01")
    t0 = time.perf_counter()
    for i in range(N_BASELINE):
        eng.step_bar(i, i, vd[i], prices[i])
    base_s = time.perf_counter() - t0

    replay_bps = N_BARS / replay_s
    base_bps = N_BASELINE / base_s
    print(
        json.dumps(
            {
                "bench": "replay_full_stack",
                "assets": N_ASSETS,
                "bars": N_BARS,
                "trades": int(res.metrics["trades"]),
                "replay_bars_per_s": round(replay_bps),
                "baseline": "python per-bar NDAlphaEngine.step_bar",
                "baseline_bars_per_s": round(base_bps),
                "speedup": round(replay_bps / base_bps, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
