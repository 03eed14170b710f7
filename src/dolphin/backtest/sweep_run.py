"""The sweep driver: grid → configs → chunks (optionally in worker processes) → parquet.

Results are saved as they complete: each finished chunk is written atomically as
``<out>.work/part-NNNNNN.parquet``; a re-run with the same scans and grid reads the parts, skips
every config id already there and goes on; at the end the parts are merged (with the DSR column,
which needs every trial) into ``--out`` atomically and the work folder is removed.

Decisions where issue 5 is silent: a grid combination the config validation rejects (e.g.
``vel_div_extreme >= vel_div_threshold``) is dropped and counted, not an error; duplicates (same
config id) run once; the work folder is tied to the scans and friction by a fingerprint and a
mismatching one is refused rather than mixed.

Failure behaviour: a grid with no valid combination is refused before anything is written; a
run that fails or is interrupted before its first chunk is saved removes the work folder it
created (no empty ``.work`` stays behind); worker processes ignore Ctrl-C (the parent handles it
and stops them) and die with the parent even when it is SIGKILLed (``core.procs``); a re-run of
a finished sweep (same scans, friction and grid, recorded in the summary) returns the saved
result instead of recomputing it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dolphin.backtest import stats
from dolphin.backtest.sweep import SweepData, evaluate
from dolphin.core.chunks import ChunkRunner, PoolRunner
from dolphin.core.config import DolphinConfig, read_yaml_file, resolve_overrides
from dolphin.core.errors import ConfigError
from dolphin.core.io import (
    atomic_write_parquet,
    atomic_write_text,
    read_parquet,
    remove_stale_temps,
)

DEFAULT_CHUNK = 256


def load_grid(path: str | Path) -> dict[str, list[Any]]:
    """Read a grid YAML: parameter name → list of values (a scalar is a one-value list)."""
    p = Path(path)
    data = read_yaml_file(p, "grid")
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{p}: a grid is a non-empty mapping of parameter -> list of values")
    grid = {str(k): list(v) if isinstance(v, list) else [v] for k, v in data.items()}
    empty = [k for k, v in grid.items() if not v]
    if empty:
        raise ConfigError(f"{p}: parameter(s) {', '.join(empty)} have no values")
    return grid


@dataclass
class Grid:
    """The expanded grid: parameter values per combination and the validated configs."""

    names: list[str]
    values: list[tuple[Any, ...]]
    configs: list[DolphinConfig]
    n_invalid: int


def expand_grid(grid: dict[str, list[Any]], base: DolphinConfig | None = None) -> Grid:
    """Return every valid combination of ``grid`` on top of ``base`` (default: the champion)."""
    names = list(grid)
    values, configs, seen, invalid = [], [], set(), 0
    first_error = ""
    for combo in itertools.product(*(grid[n] for n in names)):
        try:
            cfg = resolve_overrides(dict(zip(names, combo, strict=True)), base=base, source="grid")
        except ConfigError as exc:
            if "unknown field" in str(exc):
                raise
            invalid += 1
            first_error = first_error or str(exc)
            continue
        if cfg.id in seen:
            continue
        seen.add(cfg.id)
        values.append(combo)
        configs.append(cfg)
    if not configs:
        why = f"; first rejection: {first_error}" if first_error else ""
        raise ConfigError(f"grid has no valid combination ({invalid} rejected){why}")
    return Grid(names, values, configs, invalid)


def grid_digest(grid: Grid) -> str:
    """Return a digest of the set of config ids a grid runs (order and duplicates aside)."""
    return hashlib.sha256("\n".join(sorted({c.id for c in grid.configs})).encode()).hexdigest()


def fingerprint(data: SweepData, hell: bool) -> str:
    """Return a digest of what a saved part depends on besides the config: scans, friction,
    factors, funding, forewarner and recorded OB features."""
    h = hashlib.sha256()
    for arr in (data.ts, data.vel_div, data.prices, data.data_gap, data.vol_ok):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(json.dumps([data.assets, hell, data.exf is not None]).encode())
    if data.exf is not None:
        h.update(repr(data.exf).encode())
    f = data.funding  # funding events and the forewarner model set change every row
    for arr in (f.asset, f.rate, f.lo):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(json.dumps([data.funding_table is not None,
                         data.forewarner.meta["version"] if data.forewarner is not None
                         else "off"]).encode())
    if data.ob is not None:  # recorded OB features change every row; no table: digest as before
        h.update(f"ob {data.ob.digest}".encode())
    return h.hexdigest()


# ------------------------------------------------------------------ worker processes
_WORKER: dict[str, Any] = {}


def _run_chunk(task: tuple[int, list[int], list[DolphinConfig]]) -> tuple[int, list[dict]]:
    chunk_id, idx, configs = task
    rows = evaluate(_WORKER["data"], configs, hell=_WORKER["hell"])
    for i, row in zip(idx, rows, strict=True):
        row["combo"] = i
    return chunk_id, rows


def _tasks(grid: Grid, done: set[str], chunk: int) -> Iterator[tuple[int, list[int], list]]:
    todo = [i for i, c in enumerate(grid.configs) if c.id not in done]
    for k in range(0, len(todo), chunk):
        idx = todo[k : k + chunk]
        yield idx[0], idx, [grid.configs[i] for i in idx]


def _run_shared_chunk(task: tuple[int, list[int], list[DolphinConfig]],
                      shared: tuple[SweepData, bool]) -> tuple[int, list[dict]]:
    """A chunk on a runner's worker: ``shared`` (the scans, hell) arrives once per worker."""
    if _WORKER.get("shared") is not shared:
        _WORKER["data"], _WORKER["hell"] = shared
        _WORKER["shared"] = shared
    return _run_chunk(task)


def evaluate_on(data: SweepData, configs: list[DolphinConfig], *, hell: bool = False,
                runner: ChunkRunner | None = None) -> list[dict]:
    """``sweep.evaluate`` of ``configs``, on ``runner`` when given (a few chunks per slot).

    A config's row does not depend on the configs evaluated with it, so the rows are the
    same whoever computes them; they come back in the order of ``configs``.
    """
    if runner is None or len(configs) < 2:
        return evaluate(data, configs, hell=hell)
    size = max(1, -(-len(configs) // (4 * runner.slots)))
    tasks = [(k, list(range(k, min(k + size, len(configs)))), configs[k : k + size])
             for k in range(0, len(configs), size)]
    done = dict(runner.map_unordered(_run_shared_chunk, tasks, (data, hell)))
    rows = [row for k, _, _ in tasks for row in done[k]]
    for row in rows:
        row.pop("combo", None)
    return rows


def _results(
    tasks: list, data: SweepData, hell: bool, workers: int, runner: ChunkRunner | None = None
) -> Iterator[tuple[int, list[dict]]]:
    """Each chunk's rows as it finishes: on ``runner``, else on a pool of ``workers`` processes
    (forked: they inherit the numba cache and the loaded modules), else here."""
    if runner is None:
        runner = PoolRunner(workers)
    yield from runner.map_unordered(_run_shared_chunk, tasks, (data, hell))


# ------------------------------------------------------------------ work folder
def work_dir(out: Path) -> Path:
    """Return the work folder of ``out`` (beside it)."""
    return out.with_name(out.name + ".work")


def saved_parts(out: Path) -> list[Path]:
    """Return the chunk files saved so far in the work folder of ``out``."""
    return sorted(work_dir(out).glob("part-*.parquet"))


def _open_work(out: Path, fp: str) -> tuple[Path, set[str]]:
    wd = work_dir(out)
    wd.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(wd)  # chunk files of a SIGKILLed earlier run
    manifest = wd / "manifest.json"
    if manifest.exists():
        if json.loads(manifest.read_text())["fingerprint"] != fp:
            raise ConfigError(
                f"{wd}: saved results belong to other scans or friction; remove it to start over"
            )
    else:
        atomic_write_text(manifest, json.dumps({"fingerprint": fp}) + "\n")
    done: set[str] = set()
    for part in sorted(wd.glob("part-*.parquet")):
        done.update(read_parquet(part, columns=["config_id"])["config_id"])
    return wd, done


def _part_frame(grid: Grid, rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    params = pd.DataFrame([grid.values[i] for i in df["combo"]], columns=grid.names)
    return pd.concat([params, df], axis=1)


def finalize(parts: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Add the DSR column over all trials; return the frame and the DSR/PBO summary."""
    df = parts.sort_values("combo").reset_index(drop=True)
    nan = np.nan
    sr = df["sr_daily"].astype(float).fillna(nan).to_numpy()
    dsr, sr0 = stats.dsr_column(
        sr, int(df["days"].max()),
        df["skew"].astype(float).to_numpy(), df["kurtosis"].astype(float).to_numpy(),
    )  # fmt: skip
    df["dsr"] = dsr
    return df, summarize(df, sr0)


def summarize(df: pd.DataFrame, sr0: float) -> dict[str, Any]:
    """Return the sweep summary: best by DSR (not raw ROI), PBO by CSCV, trial counts."""
    out: dict[str, Any] = {"trials": len(df), "sr0_daily": sr0}
    ranked = df[np.isfinite(df["dsr"])].sort_values(["dsr", "sr_daily"], ascending=False)
    if len(ranked):
        best = ranked.iloc[0]
        out["best_by_dsr"] = {
            k: _plain(best[k]) for k in ("config_id", "dsr", "sharpe", "roi", "trades")
        }
    out["best_by_roi"] = {k: _plain(df.loc[df["roi"].idxmax(), k]) for k in ("config_id", "roi")}
    rets = np.array(df["daily_returns"].tolist(), dtype=float).T
    blocks = stats.pbo_blocks_for(rets.shape[0]) if rets.ndim == 2 else 0
    if blocks and rets.shape[1] >= 2:
        res = stats.pbo_cscv(rets, blocks)
        out.update(pbo=res.pbo, pbo_splits=res.n_splits, pbo_blocks=res.n_blocks)
    else:
        out["pbo"] = None
    return out


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def completed(data: SweepData, grid: Grid, out: str | Path, *, hell: bool = False):
    """Return ``(frame, summary)`` of a finished sweep of exactly this scans/friction/grid at
    ``out``, or None when there is none (missing, unreadable or made from other inputs)."""
    out = Path(out)
    summary_path = out.with_suffix(".summary.json")
    if not (out.is_file() and summary_path.is_file()):
        return None
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("grid_sha256") != grid_digest(grid):
        return None
    if summary.get("scans_fingerprint") != fingerprint(data, hell):
        return None
    try:
        return read_parquet(out), summary
    except (OSError, ValueError):
        return None


def run_sweep(
    data: SweepData,
    grid: Grid,
    out: str | Path,
    *,
    hell: bool = False,
    workers: int = 1,
    chunk: int = DEFAULT_CHUNK,
    progress: bool = True,
    stop_after_chunks: int | None = None,
    on_chunk: Callable[[int], None] | None = None,
    runner: ChunkRunner | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run (or resume) the sweep; write ``out`` and return the frame and the summary.

    ``runner`` (e.g. a Dask cluster) runs the chunks instead of this process or its pool of
    ``workers``; the result is the same bytes either way. ``stop_after_chunks`` stops after
    that many chunks were saved, leaving the work folder as an interrupted run would (tests
    use it to exercise the resume).
    """
    if chunk < 1 or workers < 1:
        raise ConfigError(f"--chunk and --workers must be >= 1, got {chunk} and {workers}")
    if not grid.configs:
        raise ConfigError("grid has no valid combination")
    out = Path(out)
    fp = fingerprint(data, hell)
    fresh = not work_dir(out).exists()
    wd, done = _open_work(out, fp)
    try:
        _run_chunks(data, grid, wd, done, hell=hell, workers=workers, chunk=chunk,
                    progress=progress, stop_after_chunks=stop_after_chunks, on_chunk=on_chunk,
                    runner=runner)
    except BaseException:
        if fresh and not saved_parts(out):  # nothing computed: leave no empty work folder
            shutil.rmtree(wd, ignore_errors=True)
        raise
    parts = [read_parquet(p) for p in saved_parts(out)]
    wanted = {c.id for c in grid.configs}
    frame = pd.concat(parts, ignore_index=True)
    frame = frame[frame["config_id"].isin(wanted)].drop_duplicates("config_id")
    df, summary = finalize(frame)
    summary["invalid_combinations"] = grid.n_invalid
    summary["scans_fingerprint"], summary["grid_sha256"] = fp, grid_digest(grid)
    atomic_write_parquet(df, out)
    atomic_write_text(out.with_suffix(".summary.json"), json.dumps(summary, indent=2) + "\n")
    shutil.rmtree(wd)
    return df, summary


def _run_chunks(data: SweepData, grid: Grid, wd: Path, done: set[str], *, hell: bool,
                workers: int, chunk: int, progress: bool, stop_after_chunks: int | None,
                on_chunk: Callable[[int], None] | None,
                runner: ChunkRunner | None = None) -> None:
    """Evaluate every config not in ``done`` and save each chunk as it completes."""
    from tqdm import tqdm

    tasks = list(_tasks(grid, done, chunk))
    bar = tqdm(total=sum(len(t[1]) for t in tasks), file=sys.stderr, disable=not progress,
               unit="combo", desc="sweep")  # fmt: skip
    results = _results(tasks, data, hell, workers, runner)
    try:
        for n_saved, (chunk_id, rows) in enumerate(results, 1):
            atomic_write_parquet(_part_frame(grid, rows), wd / f"part-{chunk_id:06d}.parquet")
            bar.set_postfix_str(f"chunks {n_saved}/{len(tasks)}", refresh=False)
            bar.update(len(rows))
            if on_chunk is not None:
                on_chunk(n_saved)
            if stop_after_chunks is not None and n_saved >= stop_after_chunks:
                raise SweepInterruptedError(f"stopped after {n_saved} chunk(s); re-run to resume")
    finally:
        results.close()  # stops the worker processes at once when we leave early
        bar.close()


class SweepInterruptedError(RuntimeError):
    """Raised by the ``stop_after_chunks`` hook; the saved parts stay for the resume."""
