"""Bars/s through the Nautilus BacktestEngine driver vs the internal replay, same scans, one run.

Scans come from the committed sample (20 real assets x 7 days of 1m). The internal replay runs
in this process; the Nautilus driver in a subprocess (one engine per process). Prints ONE JSON
line. Run: ``.venv/bin/python benchmarks/bench_nautilus.py``.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from dolphin.adapters.nautilus.backtest import run_in_subprocess
from dolphin.adapters.nautilus.parity_fills import run_parity_replay
from dolphin.backtest.replay import run_replay
from dolphin.cli import main
from dolphin.core.config import DolphinConfig

SAMPLE = Path(__file__).resolve().parents[1] / "data/sample/bars_1m_sample.parquet"


def bench() -> dict:
    """Return the benchmark record."""
    with tempfile.TemporaryDirectory() as tmp:
        scans_path = Path(tmp) / "scans.parquet"
        main(["scan", "--bars", str(SAMPLE), "--out", str(scans_path)])
        scans = pd.read_parquet(scans_path)
        run_replay(scans.iloc[:2000], DolphinConfig())  # compile / warm caches
        t = time.perf_counter()
        internal = run_replay(scans, DolphinConfig())
        t_int = time.perf_counter() - t
        t = time.perf_counter()
        run_parity_replay(scans, DolphinConfig())
        t_par = time.perf_counter() - t
        stats = run_in_subprocess(scans_path, Path(tmp) / "nt", parity=True)
    n = len(scans)
    return {
        "bench": "nautilus_driver",
        "bars": n,
        "assets": stats["assets"],
        "nautilus_events": stats["events"],
        "nautilus_orders": stats["orders"],
        "internal_replay_bars_per_s": round(n / t_int),
        "internal_parity_driver_bars_per_s": round(n / t_par),
        "nautilus_run_bars_per_s": round(n / stats["run_s"]),
        "nautilus_incl_setup_bars_per_s": round(n / (stats["run_s"] + stats["setup_s"])),
        "internal_trades": len(internal.trades),
    }


if __name__ == "__main__":
    print(json.dumps(bench()))
