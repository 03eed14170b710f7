"""MC-Forewarner: how likely is a config to blow up, and is it inside the explored map (Bible §12).

Three stages, each reproducible from its inputs:

1. ``sample``: draw configs from ``RANGES`` (around the champion), run each once through the
   engine (``run_replay``) with its maker fill rates jittered, then draw ``paths`` Monte-Carlo
   outcomes per run: per-trade slippage jitter and a block bootstrap of the days (blocks of
   ``BLOCK_DAYS``). One row per outcome: the config's features, ROI, max drawdown (on the daily
   path), ``catastrophic`` and ``envelope``.
2. ``train``: a calibrated classifier of P(catastrophic | config), a regressor of the envelope
   score and a one-class model of the explored region (the guard against extrapolation only: a
   one-class model alone lets through unsafe configs surrounded by safe ones). Versioned with the
   SHA-256 of the training table; 20 % of the runs (all their paths) are held out for validation.
3. ``assess``: §12 status from the two predictions; a config outside the explored region (outside
   the sampled ranges, or rejected by the one-class model) is never OK.

Outcome definitions (documented limits, docs/risk.md): catastrophic when max drawdown > 20 % or ROI
< -10 % over the replayed span; ``envelope = min((0.20 - max_dd) / 0.10, (roi + 0.10) / 0.10)``,
so it is negative exactly when catastrophic and -1 at 30 % drawdown or -20 % ROI.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dolphin.core.config import DolphinConfig
from dolphin.core.enums import MC_OK, MC_ORANGE, MC_RED, McStatus
from dolphin.core.enums import MC_STATUSES as MC_STATUSES
from dolphin.risk.mc_gate import McReport

#: Sampled parameters and their ranges: (low, high, integer?).
RANGES: dict[str, tuple[float, float, bool]] = {
    "max_leverage": (1.0, 12.0, False),
    "fraction": (0.05, 0.8, False),
    "fixed_tp_pct": (0.003, 0.03, False),
    "max_hold_bars": (10.0, 400.0, True),
    "vel_div_threshold": (-0.045, -0.005, False),
}
FEATURES = tuple(RANGES)
#: MC status names by code (``core.enums.MC_STATUSES``, re-exported): the int8 codes of
#: ``status_codes`` and ``day_status_codes``, and the survival sensor's reading
#: (``risk.sensors.MC_STATUS_CODE``).
MC_CODE_OK, MC_CODE_ORANGE, MC_CODE_RED = MC_OK, MC_ORANGE, MC_RED
_LO = np.array([RANGES[f][0] for f in FEATURES])
_HI = np.array([RANGES[f][1] for f in FEATURES])
DD_LIMIT, DD_SCALE = 0.20, 0.10
ROI_LIMIT, ROI_SCALE = -0.10, 0.10
BLOCK_DAYS = 3
FILL_JITTER = (0.6, 1.1)  # multiplies the maker fill rates (HELL-like friction at the low end)
SLIP_BPS = (0.0, 3.0)  # extra slippage per trade side, basis points of notional


@dataclass(frozen=True)
class Assessment:
    """The forewarner's verdict on one config."""

    catastrophic_probability: float
    envelope_score: float
    inside_explored: bool
    status: str
    model_version: str
    model_age_days: float

    def as_dict(self) -> dict:
        """Return a JSON-ready dict."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class ForewarnerMcReport(McReport):
    """An engine ``McReport`` that also carries the explored-region verdict (never OK outside)."""

    inside_explored: bool = True

    @property
    def status(self) -> str:
        """Return the §12 status, raised to ORANGE outside the explored region."""
        base = super().status
        if base == McStatus.OK.name and not self.inside_explored:
            return McStatus.ORANGE.name
        return base


def features_of(config: DolphinConfig | Mapping[str, float]) -> np.ndarray:
    """Return the feature vector (``FEATURES`` order) of a config or a flat dict."""
    if isinstance(config, DolphinConfig):
        a = config.alpha
        return np.array([float(getattr(a, f)) for f in FEATURES])
    return np.array([float(config[f]) for f in FEATURES])


def in_ranges(x: np.ndarray) -> bool:
    """True when every feature lies within its sampled range."""
    return bool(rows_in_ranges(np.atleast_2d(x))[0])


def rows_in_ranges(x: np.ndarray) -> np.ndarray:
    """Return, per row of ``x`` (n x features), whether every feature is within its range."""
    return np.all(np.isfinite(x) & (x >= _LO) & (x <= _HI), axis=1)


def status_of(cat_prob: float, envelope: float, inside: bool) -> str:
    """Return the §12 status (RED / ORANGE / OK); outside the explored region never OK."""
    if cat_prob > 0.25 or envelope < -1.0:
        return McStatus.RED.name
    if envelope < 0.0 or cat_prob > 0.10 or not inside:
        return McStatus.ORANGE.name
    return McStatus.OK.name


def status_codes(cat_prob: np.ndarray, envelope: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Return ``status_of`` for arrays as int8 codes (0 OK, 1 ORANGE, 2 RED)."""
    red = (cat_prob > 0.25) | (envelope < -1.0)
    orange = (envelope < 0.0) | (cat_prob > 0.10) | ~np.asarray(inside, dtype=bool)
    return np.where(red, MC_CODE_RED, np.where(orange, MC_CODE_ORANGE, MC_CODE_OK)).astype(np.int8)


def envelope_score(roi: np.ndarray, max_dd: np.ndarray) -> np.ndarray:
    """Return the envelope score of outcomes (module docstring)."""
    return np.minimum((DD_LIMIT - max_dd) / DD_SCALE, (roi - ROI_LIMIT) / ROI_SCALE)


def draw_configs(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Draw ``n`` configs uniformly from ``RANGES``."""
    cols = {}
    for name, (lo, hi, integer) in RANGES.items():
        v = rng.uniform(lo, hi, n)
        cols[name] = np.round(v) if integer else v
    return pd.DataFrame(cols)


def config_from_row(row: Mapping[str, float], base: DolphinConfig | None = None) -> DolphinConfig:
    """Return the full config for a sampled row (abs_max_leverage widened when needed)."""
    base = base or DolphinConfig()
    lev = float(row["max_leverage"])
    return base.replace(
        max_leverage=lev,
        abs_max_leverage=max(base.alpha.abs_max_leverage, lev),
        min_leverage=min(base.alpha.min_leverage, lev),
        fraction=float(row["fraction"]),
        fixed_tp_pct=float(row["fixed_tp_pct"]),
        max_hold_bars=int(row["max_hold_bars"]),
        vel_div_threshold=float(row["vel_div_threshold"]),
    )


def daily_returns(
    trades: pd.DataFrame, days: pd.DatetimeIndex, c0: float, slip: float
) -> np.ndarray:
    """Return daily returns of a trade list after ``slip`` (fraction of notional per side)."""
    pnl = trades["pnl"].to_numpy(dtype=float) - 2.0 * slip * trades["notional"].to_numpy(float)
    day = trades["exit_time"].dt.floor("D")
    by_day = pd.Series(pnl, index=day).groupby(level=0).sum().reindex(days, fill_value=0.0)
    cap = c0 + np.r_[0.0, np.cumsum(by_day.to_numpy())[:-1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(cap > 0, by_day.to_numpy() / cap, -1.0)
    return np.maximum(r, -1.0)


def bootstrap_path(r: np.ndarray, rng: np.random.Generator, block: int = BLOCK_DAYS) -> np.ndarray:
    """Return a block-bootstrap resample of the daily returns ``r`` (same length)."""
    n = len(r)
    starts = rng.integers(0, max(n - block + 1, 1), size=math.ceil(n / block))
    idx = (starts[:, None] + np.arange(block)[None, :]).ravel()[:n]
    return r[np.minimum(idx, n - 1)]


def path_outcome(r: np.ndarray) -> tuple[float, float]:
    """Return ``(roi, max_drawdown)`` of a daily-return path."""
    eq = np.cumprod(1.0 + np.r_[0.0, r])
    peak = np.maximum.accumulate(eq)
    return float(eq[-1] - 1.0), float(np.max(1.0 - eq / peak))


def training_hash(samples: pd.DataFrame) -> str:
    """SHA-256 of the training table (feature and outcome columns, float64, row order)."""
    cols = [*FEATURES, "run_id", "roi", "max_dd"]
    arr = np.ascontiguousarray(samples[cols].to_numpy(dtype=np.float64))
    h = hashlib.sha256(",".join(cols).encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def label(samples: pd.DataFrame) -> pd.DataFrame:
    """Add ``catastrophic`` and ``envelope`` columns from ``roi`` and ``max_dd``."""
    out = samples.copy()
    out["catastrophic"] = (out["max_dd"] > DD_LIMIT) | (out["roi"] < ROI_LIMIT)
    out["envelope"] = envelope_score(out["roi"].to_numpy(), out["max_dd"].to_numpy())
    return out
