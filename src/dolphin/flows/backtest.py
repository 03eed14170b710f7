"""The daily research backtest as a Prefect flow: scans in, the replay's files out.

Thin (STYLE.md §8): each task calls one pure function; the flow adds Prefect's retries, state
and run history. The replay itself runs inside one task (Prefect never wraps the bar loop).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow, task

from dolphin.core.io import read_parquet

# FACTS: analytics off, or the local server reports "database is locked" and calls out.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@task(retries=2, retry_delay_seconds=1)
def load_scans(path: str):
    """Read a scans parquet (retried: a file being replaced atomically may be missing briefly)."""
    return read_parquet(path)


@task
def replay(scans, config_path: str | None, forewarner: bool, funding_path: str | None):
    """Run the gated replay with the run's forewarner and funding (``backtest.gates``)."""
    from dolphin.backtest.gates import run_gates
    from dolphin.backtest.replay import run_replay
    from dolphin.core.config import load_config

    config = load_config(config_path)
    funding, gate = run_gates(config, funding_path, forewarner)
    return run_replay(scans, config, mc_gate=gate, funding=funding)


@task
def write(result, out: str) -> dict[str, str]:
    """Write the replay's files atomically; return their paths."""
    from dolphin.backtest.output import write_outputs

    return {k: str(v) for k, v in write_outputs(result, out).items()}


@flow(name="dolphin-backtest")
def backtest_flow(scans: str, out: str, config: str | None = None, forewarner: bool = True,
                  funding: str | None = None) -> dict[str, Any]:
    """Backtest ``scans`` into ``out``; return the metrics and the written paths."""
    result = replay(load_scans(scans), config, forewarner, funding)
    return {"metrics": result.metrics, "paths": write(result, str(Path(out)))}
