"""Write a replay's files atomically: trades, equity, daily, metrics.json (and the report)."""

from __future__ import annotations

import json
from pathlib import Path

from dolphin.backtest.replay import ReplayResult
from dolphin.core.io import atomic_write_parquet, atomic_write_text

FILES = ("trades.parquet", "equity.parquet", "daily.parquet", "metrics.json")


def write_outputs(result: ReplayResult, out_dir: str | Path) -> dict[str, Path]:
    """Write the four data files into ``out_dir`` (created if needed); return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in FILES}
    atomic_write_parquet(result.trades, paths["trades.parquet"])
    atomic_write_parquet(result.equity, paths["equity.parquet"])
    atomic_write_parquet(result.daily, paths["daily.parquet"])
    atomic_write_text(
        paths["metrics.json"], json.dumps(result.metrics, indent=2, sort_keys=True) + "\n"
    )
    return paths
