"""Parallel backfill: split the history into time chunks and scan them in worker processes.

Every output of the kernel is a function of the data since the last *aligned* exact
recomputation (bar index divisible by ``recompute_every``): the sums are rebuilt from the raw
returns there and the warm-start vector is reset. A chunk starting at aligned bar ``s`` is
therefore reproduced bit for bit by a worker that starts at ``s - recompute_every - W - 1``
(W the longest window): by the aligned bar ``s - recompute_every`` its return ring is full, and
from there on it performs exactly the same floating-point operations as a single process.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

from dolphin.core.chunks import ChunkRunner
from dolphin.core.config import ScannerConfig
from dolphin.core.errors import ConfigError
from dolphin.scanner.scanner import assemble, checked_real, gap_flags, price_matrix, run_kernel


def chunk_plan(n_bars: int, workers: int, config: ScannerConfig) -> list[tuple[int, int, int]]:
    """(warm-up start, output start, end) per chunk; output starts are aligned bars."""
    period = config.recompute_every
    warm = period + max(config.windows) + 1
    step = -(-n_bars // workers)
    step = max(period, -(-step // period) * period)
    plan = []
    for start in range(0, n_bars, step):
        plan.append((max(0, start - warm), start, min(n_bars, start + step)))
    return plan


def _scan_chunk(args: tuple[np.ndarray, ScannerConfig, int, int]) -> np.ndarray:
    prices, config, t0, skip = args
    return run_kernel(prices, config, t0)[skip:]


def _scan_shared_chunk(task: tuple[int, int, int, int],
                       shared: tuple[np.ndarray, ScannerConfig]) -> tuple[int, np.ndarray]:
    """A chunk on a runner's worker: the price matrix arrives once per worker."""
    i, w0, start, end = task
    prices, config = shared
    return i, _scan_chunk((prices[w0:end], config, w0, start - w0))


def scan_prices_parallel(
    wide_prices: pd.DataFrame,
    config: ScannerConfig | None = None,
    *,
    workers: int = 2,
    real: np.ndarray | None = None,
    fill_fraction: np.ndarray | None = None,
    source: str = "<frame>",
    runner: ChunkRunner | None = None,
    chunks: int | None = None,
) -> pd.DataFrame:
    """``scan_prices`` over ``workers`` processes; byte-identical to the single-process run.

    ``real`` and ``fill_fraction`` mean what they mean for ``scan_prices``; both only shape the
    close and ``data_gap`` columns, which are computed here, not in the workers. ``runner``
    (e.g. a Dask cluster) scans the time chunks instead of a local pool; ``chunks`` is how many
    (default ``workers``).
    """
    config = config or ScannerConfig()
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if chunks is not None and chunks < 1:
        raise ConfigError(f"chunks must be >= 1, got {chunks}")
    prices, symbols = price_matrix(wide_prices, source)
    real = checked_real(real, prices, symbols, source)
    plan = chunk_plan(len(prices), chunks or workers, config)
    jobs = [(prices[w0:end], config, w0, start - w0) for w0, start, end in plan]
    if runner is not None:
        tasks = [(i, w0, start, end) for i, (w0, start, end) in enumerate(plan)]
        done = dict(runner.map_unordered(_scan_shared_chunk, tasks, (prices, config)))
        parts = [done[i] for i in range(len(tasks))]
    elif workers == 1 or len(jobs) == 1:
        parts = [_scan_chunk(j) for j in jobs]
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            parts = list(pool.map(_scan_chunk, jobs))
    out = np.concatenate(parts, axis=0)
    gaps = gap_flags(prices, fill_fraction, config, real)
    ts = wide_prices["timestamp"].to_numpy()
    return assemble(out, prices, symbols, ts, np.arange(len(prices)), gaps, config, real)
