"""MC-Forewarner sampling: configs x Monte-Carlo perturbations -> labelled outcomes (§12).

The vectorized sweep is not available, so each config runs through ``run_replay`` (the same step
kernel, bar by bar in one numba loop per day) in a process pool; a run's ``paths`` outcomes reuse
its trades (slippage jitter and the day bootstrap are applied after the run).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from dolphin.backtest.replay import run_replay
from dolphin.core.chunks import ChunkRunner
from dolphin.core.config import DolphinConfig
from dolphin.core.io import read_parquet
from dolphin.risk.forewarner import (
    FILL_JITTER,
    SLIP_BPS,
    bootstrap_path,
    config_from_row,
    daily_returns,
    draw_configs,
    label,
    path_outcome,
)

_SCANS: pd.DataFrame | None = None


def _init(scans_path: str) -> None:
    global _SCANS
    _SCANS = read_parquet(scans_path)


def run_one(task: tuple[int, dict, int, int]) -> list[dict]:
    """Run one config with jittered fills; return its ``paths`` perturbed outcomes."""
    run_id, row, paths, seed = task
    rng = np.random.default_rng(seed)
    base = DolphinConfig()
    k = rng.uniform(*FILL_JITTER)
    cfg = config_from_row(row, base).replace(
        sp_maker_entry_rate=min(1.0, base.alpha.sp_maker_entry_rate * k),
        sp_maker_exit_rate=min(1.0, base.alpha.sp_maker_exit_rate * k),
    )
    res = run_replay(_SCANS, cfg)
    ts = _SCANS["timestamp"]
    days = pd.date_range(ts.iloc[0].floor("D"), ts.iloc[-1].floor("D"), freq="D")
    out = []
    for _ in range(paths):
        slip = rng.uniform(*SLIP_BPS) / 1e4
        r = daily_returns(res.trades, days, cfg.alpha.initial_capital, slip)
        roi, dd = path_outcome(bootstrap_path(r, rng))
        out.append(
            {
                **row,
                "run_id": run_id,
                "fill_k": k,
                "slip_bps": slip * 1e4,
                "roi": roi,
                "max_dd": dd,
                "trades": len(res.trades),
            }
        )
    return out


_PATH: dict[str, str] = {}  # the scans file a runner's worker has read


def _run_shared(task: tuple[int, dict, int, int], shared: str) -> tuple[int, list[dict]]:
    """One run on a runner's worker: it reads the scans file (``shared``) once."""
    if _PATH.get("scans") != shared:
        _init(shared)
        _PATH["scans"] = shared
    return task[0], run_one(task)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sample(
    scans_path: str | Path, n: int, *, paths: int = 3, seed: int = 7, workers: int = 2,
    runner: ChunkRunner | None = None,
) -> pd.DataFrame:
    """Return ``n`` labelled outcomes (``ceil(n / paths)`` engine runs of ``paths`` each).

    ``runner`` (e.g. a Dask cluster) runs the engine runs instead of a local pool; every worker
    reads ``scans_path`` itself (on several machines it must be at the same path on each).
    The rows are in run order either way, so the result does not depend on where runs ran.
    """
    runs = -(-n // paths)
    rng = np.random.default_rng(seed)
    configs = draw_configs(runs, rng)
    seeds = rng.integers(0, 2**31 - 1, runs)
    tasks = [(i, configs.iloc[i].to_dict(), paths, int(seeds[i])) for i in range(runs)]
    if runner is not None:
        done = dict(runner.map_unordered(_run_shared, tasks, str(Path(scans_path).resolve())))
        rows = [r for i in range(runs) for r in done[i]]
    elif workers <= 1:
        _init(str(scans_path))
        rows = [r for t in tasks for r in run_one(t)]
    else:
        with ProcessPoolExecutor(workers, initializer=_init, initargs=(str(scans_path),)) as ex:
            rows = [r for batch in ex.map(run_one, tasks, chunksize=8) for r in batch]
    out = label(pd.DataFrame(rows).iloc[:n].reset_index(drop=True))
    out.attrs["scans_sha256"] = file_sha256(scans_path)
    return out
