"""Write a replay's files atomically: trades, equity, daily, metrics.json (and the report)."""

from __future__ import annotations

import json
from pathlib import Path

from dolphin.backtest.replay import ReplayResult
from dolphin.core.errors import HaltTradingError
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
    if result.denials is not None:  # entries the risk gate refused, with reason and values
        paths["denials.parquet"] = out / "denials.parquet"
        atomic_write_parquet(result.denials, paths["denials.parquet"])
    if result.fills is not None:  # what the venue filled, one row per fill
        paths["fills.parquet"] = out / "fills.parquet"
        atomic_write_parquet(result.fills, paths["fills.parquet"])
    atomic_write_text(paths["metrics.json"], metrics_json(result.metrics))
    return paths


def metrics_json(metrics: dict) -> str:
    """Return ``metrics`` as strict JSON (RFC 8259: no NaN or Infinity).

    A non-finite metric is an engine defect, never a value to write: it raises naming the key.
    """
    try:
        return json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except ValueError:
        bad = sorted(k for k, v in metrics.items() if (isinstance(v, float) and v != v)
                     or (isinstance(v, float) and abs(v) == float("inf")))
        raise HaltTradingError(f"metrics hold non-finite values: {', '.join(bad)}") from None
