"""ACB v6, the adaptive circuit breaker (Bible §10).

Scale 1 (daily): external factors -> signal count -> ``base_boost = 1 + 0.5 log1p(signals)``
when ``signals >= 1`` (§10.2). Scale 3 (daily): dynamic beta, ``beta_high`` when the w750
eigenvalue velocity is at or above its 60th percentile, else ``beta_low`` (§10.3). Scale 2 (per
bar) lives in the step kernel (``regime_size_mult_nb``, §10.4).

Decisions where the Bible is silent or would look ahead:
- F&G "requires confirmation": its signal counts only when another factor also signals.
- Absent factors (NaN) contribute nothing and are listed in ``AcbDay.absent``.
- The day's w750 value is the median ``v750_lambda_max_velocity`` of the PREVIOUS replayed day and
  the threshold is the percentile of all days observed so far, that day included (the Bible
  preloads a percentile over the whole data set, every day included, and reads the day's own first
  scans: both are look-ahead).
- Warm-up: a percentile of a handful of days says nothing (one observation is its own percentile,
  so day 2 of every run would be BETA_HIGH by construction). Until ``w750_warmup_days`` finite
  medians have been observed (default 7, one calendar week: the 60th percentile then lies between
  the 4th and 5th of 7 values) beta is ``beta_low``, the §10.3 "calm macro" value and the smaller
  meta-boost: without evidence of macro acceleration the conservative setting holds. The warm-up
  is an ``AcbConfig`` field, so ``config.id`` covers it; 0 restores "any history".
- OB sub-4: withdrawal stress in [0, 1] raises beta by up to 25 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dolphin.core.config import AcbConfig
from dolphin.features.exf import FACTORS, ExfTable


@dataclass(frozen=True)
class AcbDay:
    """The ACB verdict for one day."""

    date: str
    boost: float
    beta: float
    signals: float
    factors: dict[str, float] = field(default_factory=dict)
    absent: tuple[str, ...] = ()
    w750_value: float = math.nan
    w750_threshold: float = math.nan


def _two_level(value: float, strong: bool, mild: bool) -> float:
    if math.isnan(value):
        return 0.0
    return 1.0 if strong else (0.5 if mild else 0.0)


def factor_signals(factors: dict[str, float], cfg: AcbConfig) -> dict[str, float]:
    """Return each factor's bearish signal weight (1.0 / 0.5 / 0.0) per the §10.2 table."""
    f = {k: float(factors.get(k, math.nan)) for k in FACTORS}
    out = {
        "funding_btc": _two_level(
            f["funding_btc"],
            f["funding_btc"] < cfg.funding_very_bearish,
            f["funding_btc"] < cfg.funding_bearish,
        ),
        "dvol_btc": _two_level(
            f["dvol_btc"], f["dvol_btc"] > cfg.dvol_extreme, f["dvol_btc"] > cfg.dvol_elevated
        ),
        "taker": _two_level(
            f["taker"], f["taker"] < cfg.taker_selling, f["taker"] < cfg.taker_mild_selling
        ),
    }
    fng = _two_level(f["fng"], f["fng"] < cfg.fng_extreme_fear, f["fng"] < cfg.fng_fear)
    out["fng"] = fng if sum(out.values()) > 0.0 else 0.0
    return out


def base_boost(signals: float) -> float:
    """Return the §10.2 log1p boost: 1 + 0.5 log1p(signals) when signals >= 1, else 1."""
    return 1.0 + 0.5 * math.log1p(signals) if signals >= 1.0 else 1.0


def verdict_bounds(cfg: AcbConfig) -> tuple[float, float, float, float]:
    """Return ``(min_boost, max_boost, min_beta, max_beta)``: the range of any verdict ``day``
    can give (every factor fully bearish at most; beta raised by OB stress at most 25 %). The
    store refuses a verdict outside it (``store.processors.AcbApply``)."""
    lo, hi = sorted((cfg.beta_low, cfg.beta_high))
    return 1.0, base_boost(float(len(FACTORS))), lo, hi * 1.25


def dynamic_beta(value: float, history: np.ndarray, cfg: AcbConfig) -> tuple[float, float]:
    """Return ``(beta, threshold)`` of §10.3 from the day's w750 value and the observed values.

    Before ``cfg.w750_warmup_days`` finite observations (and with none at all) beta is
    ``beta_low`` and the threshold NaN (module docstring).
    """
    hist = history[np.isfinite(history)]
    if not math.isfinite(value) or hist.size < max(cfg.w750_warmup_days, 1):
        return cfg.beta_low, math.nan
    thr = float(np.percentile(hist, cfg.w750_threshold_pct))
    return (cfg.beta_high if value >= thr else cfg.beta_low), thr


class AdaptiveCircuitBreaker:
    """Daily ACB boost and beta from an ExF table and the replayed w750 velocities."""

    def __init__(self, cfg: AcbConfig, exf: ExfTable | None = None) -> None:
        self.cfg = cfg
        self.exf = exf if exf is not None else ExfTable.empty()
        self._w750: list[float] = []

    def observe_w750(self, day_median_velocity: float) -> None:
        """Record a finished day's median ``v750_lambda_max_velocity``."""
        self._w750.append(float(day_median_velocity))

    def day(self, date: str, *, ob_stress: float = 0.0) -> AcbDay:
        """Return the boost and beta for ``date`` (scales 1 and 3, §10.2–§10.3)."""
        factors = self.exf.for_date(date)
        weights = factor_signals(factors, self.cfg)
        signals = float(sum(weights.values()))
        absent = tuple(k for k in FACTORS if math.isnan(factors[k]))
        value = self._w750[-1] if self._w750 else math.nan
        beta, thr = dynamic_beta(value, np.asarray(self._w750, dtype=float), self.cfg)
        beta *= 1.0 + 0.25 * min(max(ob_stress, 0.0), 1.0)
        return AcbDay(
            date=date,
            boost=base_boost(signals),
            beta=beta,
            signals=signals,
            factors=factors,
            absent=absent,
            w750_value=value,
            w750_threshold=thr,
        )
