"""Seeded optuna search with the sweep kernel as the objective.

Trials are asked in batches and evaluated together as parameter columns of one kernel run (the
bar loop, history pushes and IRP rankings are shared), then told back; with a seeded TPE sampler
and a fixed batch size the search is reproducible. Objective: the daily Sharpe (per-period, as in
the DSR), maximised; every trial's metrics are kept, and the result reports the best trial's DSR
given all the trials made (the search is a multiple-testing process too).

Space YAML: ``name: {low, high[, log]}`` (int when both bounds are ints) or ``name: {choices}``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dolphin.backtest import stats
from dolphin.backtest.sweep import SweepData
from dolphin.backtest.sweep_run import evaluate_on
from dolphin.core.chunks import ChunkRunner
from dolphin.core.config import DolphinConfig, read_yaml_file, resolve_overrides
from dolphin.core.errors import ConfigError


def load_space(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read and check a search-space YAML."""
    data = read_yaml_file(path, "space")
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: a space is a mapping of parameter -> {{low, high}}|{{choices}}")
    for name, spec in data.items():
        if not isinstance(spec, dict) or not ({"low", "high"} <= set(spec) or "choices" in spec):
            raise ConfigError(f"{path}: {name} needs low/high or choices, got {spec!r}")
        _check_spec(path, name, spec)
    return data


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)


def _check_spec(path: str | Path, name: str, spec: dict[str, Any]) -> None:
    """Refuse a range optuna would reject with a traceback: named, with the values."""
    if "choices" in spec:
        if not isinstance(spec["choices"], list) or not spec["choices"]:
            raise ConfigError(f"{path}: {name}: choices must be a non-empty list")
        return
    lo, hi = spec["low"], spec["high"]
    if not (_number(lo) and _number(hi)):
        raise ConfigError(f"{path}: {name}: low and high must be finite numbers, "
                          f"got {lo!r} and {hi!r}")
    if lo > hi:
        raise ConfigError(f"{path}: {name}: low ({lo}) is above high ({hi})")
    if spec.get("log") and lo <= 0:
        raise ConfigError(f"{path}: {name}: a log range needs low > 0, got {lo}")


def _suggest(trial, name: str, spec: dict[str, Any]) -> Any:
    if "choices" in spec:
        return trial.suggest_categorical(name, list(spec["choices"]))
    lo, hi, log = spec["low"], spec["high"], bool(spec.get("log", False))
    if isinstance(lo, int) and isinstance(hi, int):
        return trial.suggest_int(name, lo, hi, log=log)
    return trial.suggest_float(name, float(lo), float(hi), log=log)


def optimize(
    data: SweepData,
    space: dict[str, dict[str, Any]],
    n_trials: int,
    *,
    seed: int = 42,
    batch: int = 16,
    base: DolphinConfig | None = None,
    hell: bool = False,
    on_batch: Callable[[int], None] | None = None,
    runner: ChunkRunner | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run ``n_trials`` seeded TPE trials; return every trial's row and the summary.

    ``on_batch(n)`` is called after each batch with the trials made so far (a progress hook).
    ``runner`` (e.g. a Dask cluster) evaluates each batch's trials in chunks; the sampler sees
    the same values in the same order, so the study is the same.
    """
    import optuna

    if n_trials < 1 or batch < 1:
        raise ConfigError(f"--trials and --batch must be >= 1, got {n_trials} and {batch}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    rows: list[dict[str, Any]] = []
    while len(rows) < n_trials:
        trials = [study.ask() for _ in range(min(batch, n_trials - len(rows)))]
        params = [{n: _suggest(t, n, s) for n, s in space.items()} for t in trials]
        configs, ok = [], []
        for t, p in zip(trials, params, strict=True):
            try:
                configs.append(resolve_overrides(p, base=base, source="space"))
                ok.append(t)
            except ConfigError as exc:
                if "unknown field" in str(exc):
                    raise  # a misspelt parameter, not an infeasible point of the space
                study.tell(t, state=optuna.trial.TrialState.PRUNED)
        rows_ok = evaluate_on(data, configs, hell=hell, runner=runner)
        for t, p, row in zip(ok, params, rows_ok, strict=False):
            value = row["sr_daily"] if row["sr_daily"] is not None else -1e9
            study.tell(t, value)
            rows.append({"trial": t.number, **p, **row, "objective": value})
        if not ok:
            rows.append({"trial": trials[-1].number, "objective": np.nan, "invalid": True})
        if on_batch is not None:
            on_batch(len(rows))
    df = pd.DataFrame(rows)
    return df, _summary(df)


def _summary(df: pd.DataFrame) -> dict[str, Any]:
    valid = df[np.isfinite(df["objective"].astype(float))]
    if valid.empty:
        return {"trials": len(df), "best": None}
    sr = valid["sr_daily"].astype(float).to_numpy()
    dsr, sr0 = stats.dsr_column(
        sr, int(valid["days"].max()), valid["skew"].astype(float).to_numpy(),
        valid["kurtosis"].astype(float).to_numpy(),
    )  # fmt: skip
    best = valid.iloc[int(np.nanargmax(np.where(np.isfinite(sr), sr, -np.inf)))]
    return {
        "trials": len(df),
        "best": {
            "trial": int(best["trial"]),
            "config_id": best["config_id"],
            "sharpe": best["sharpe"],
            "roi": float(best["roi"]),
            "dsr": float(dsr[valid.index.get_loc(best.name)]),
        },
        "sr0_daily": sr0,
    }
