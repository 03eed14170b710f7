"""Honest statistics of a sweep: deflated Sharpe ratio and probability of backtest overfitting.

DSR (Bailey & López de Prado, "The Deflated Sharpe Ratio", 2014), per-period (daily) Sharpe:
- expected maximum Sharpe of N independent trials with Sharpe variance V under the null
  ``SR0 = sqrt(V) * ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e)))``, γ the Euler–Mascheroni
  constant;
- ``DSR = Φ((SR − SR0) sqrt(T − 1) / sqrt(1 − γ3 SR + (γ4 − 1)/4 SR²))`` with T returns, their
  skewness γ3 and (non-excess) kurtosis γ4. With SR0 = 0 it is the probabilistic Sharpe ratio.

PBO by combinatorially symmetric cross-validation (Bailey, Borwein, López de Prado & Zhu, "The
Probability of Backtest Overfitting", 2015): split the T × N return matrix into S row blocks; for
every choice of S/2 blocks as in-sample, take the in-sample best column, find its relative rank
ω in the out-of-sample performance (rank / (N + 1)), λ = logit ω; PBO = share of λ ≤ 0.

Bootstrap intervals of one run (``sample_figures``): percentile intervals (Efron) from
``n_boot`` resamples drawn with a seeded generator, so the same run gives the same interval.
- ROI, Sharpe, Sortino and Calmar resample whole UTC days with replacement: a resampled run is
  its days' per-bar equity moves laid end to end (the day structure of the strategy kept), and
  each figure is computed on it with the ``backtest.metrics`` definitions (Sharpe and Sortino
  from its daily returns, Calmar from its CAGR and its per-bar max drawdown).
- Win rate and profit factor resample trades with replacement.
An interval is None when fewer than half the resamples define the figure (e.g. one day).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm, rankdata

from dolphin.alpha.session import day_bounds
from dolphin.backtest.metrics import annualisation_caveat, cagr, max_drawdown, ratio_rows

EULER_GAMMA = 0.5772156649015329
BOOT_RUNS = 1000
LEVEL = 0.95
#: The figures ``sample_figures`` gives an interval for, in the order tables show them.
INTERVAL_FIGURES = ("roi", "sharpe", "sortino", "calmar", "win_rate", "profit_factor")


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """Return SR0, the expected maximum Sharpe of ``n_trials`` unskilled trials."""
    if n_trials < 2 or not sharpe_variance > 0:
        return 0.0
    z1 = norm.ppf(1.0 - 1.0 / n_trials)
    z2 = norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def probabilistic_sharpe(
    sharpe: float, benchmark: float, n_obs: int, skew: float, kurtosis: float
) -> float:
    """Return Φ((SR − SR*) sqrt(T − 1) / sqrt(1 − γ3 SR + (γ4 − 1)/4 SR²))."""
    denom = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if n_obs < 2 or not denom > 0:
        return math.nan
    return float(norm.cdf((sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denom)))


def deflated_sharpe(
    sharpe: float, n_obs: int, skew: float, kurtosis: float, n_trials: int, sharpe_variance: float
) -> float:
    """Return the DSR of a per-period Sharpe selected among ``n_trials`` trials."""
    sr0 = expected_max_sharpe(n_trials, sharpe_variance)
    return probabilistic_sharpe(sharpe, sr0, n_obs, skew, kurtosis)


def dsr_column(
    sharpe: np.ndarray, n_obs: int, skew: np.ndarray, kurtosis: np.ndarray
) -> tuple[np.ndarray, float]:
    """Return the DSR of every trial (NaN where undefined) and the SR0 used.

    N is the number of trials with a defined Sharpe, V the variance of their Sharpe ratios.
    """
    ok = np.isfinite(sharpe) & np.isfinite(skew) & np.isfinite(kurtosis)
    n = int(ok.sum())
    var = float(np.var(sharpe[ok], ddof=1)) if n > 1 else 0.0
    sr0 = expected_max_sharpe(n, var)
    out = np.full(sharpe.shape, np.nan)
    if n_obs < 2:
        return out, sr0
    # probabilistic_sharpe over all trials at once (same operations, element by element)
    s, g3, g4 = sharpe[ok], skew[ok], kurtosis[ok]
    denom = 1.0 - g3 * s + (g4 - 1.0) / 4.0 * (s * s)
    good = denom > 0
    z = (s[good] - sr0) * math.sqrt(n_obs - 1) / np.sqrt(denom[good])
    vals = np.full(s.shape, np.nan)
    vals[good] = norm.cdf(z)
    out[ok] = vals
    return out, sr0


def block_sharpe(returns: np.ndarray) -> np.ndarray:
    """Return the per-column Sharpe (mean / std, ddof 1) of a T × N block; 0 where std is 0."""
    sd = returns.std(axis=0, ddof=1)
    mean = returns.mean(axis=0)
    return np.divide(mean, sd, out=np.zeros_like(mean), where=sd > 0)


@dataclass(frozen=True)
class PboResult:
    """CSCV outcome: PBO and the logits of every split."""

    pbo: float
    logits: np.ndarray
    n_splits: int
    n_blocks: int


def pbo_cscv(returns: np.ndarray, n_blocks: int = 8) -> PboResult:
    """Return the probability of backtest overfitting of a T × N matrix of returns.

    Rows (time) are cut into ``n_blocks`` contiguous blocks of equal length (the last rows that
    do not fill a block are dropped, as in the paper). Performance is the Sharpe ratio.
    """
    r = np.asarray(returns, dtype=float)
    t, n = r.shape
    if n_blocks % 2 or n_blocks < 2:
        raise ValueError(f"n_blocks must be even and >= 2, got {n_blocks}")
    size = t // n_blocks
    if size < 2 or n < 2:
        raise ValueError(f"need >= 2 rows per block and >= 2 columns, got {t} x {n}")
    blocks = [r[i * size : (i + 1) * size] for i in range(n_blocks)]
    perf: dict[tuple[int, ...], np.ndarray] = {}  # a half is one split's IS, another's OOS

    def half_sharpe(half: tuple[int, ...]) -> np.ndarray:
        if half not in perf:
            perf[half] = block_sharpe(np.concatenate([blocks[i] for i in half]))
        return perf[half]

    logits = []
    for train in itertools.combinations(range(n_blocks), n_blocks // 2):
        test = tuple(i for i in range(n_blocks) if i not in train)
        is_perf = half_sharpe(train)
        oos_perf = half_sharpe(test)
        best = int(np.argmax(is_perf))
        omega = _average_rank(oos_perf, best) / (n + 1)
        logits.append(math.log(omega / (1.0 - omega)))
    lam = np.asarray(logits)
    return PboResult(float(np.mean(lam <= 0)), lam, len(lam), n_blocks)


def _average_rank(x: np.ndarray, i: int) -> float:
    """Return ``rankdata(x)[i]`` (1-based, ties averaged) without ranking every element."""
    if not np.isfinite(x).all():
        return float(rankdata(x)[i])  # NaN ranks as scipy defines them
    below = int(np.count_nonzero(x < x[i]))
    equal = int(np.count_nonzero(x == x[i]))
    return below + (equal + 1) / 2.0


def pbo_blocks_for(n_rows: int) -> int:
    """Return the block count for ``n_rows`` returns: 8 (70 splits), fewer for short samples."""
    for s in (8, 6, 4, 2):
        if n_rows // s >= 2:
            return s
    return 0


def percentile_interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float] | None:
    """Return the central ``level`` percentile interval of the finite ``samples`` (None when
    fewer than half of them are finite)."""
    s = np.asarray(samples, dtype=np.float64)
    ok = s[np.isfinite(s)]
    if ok.size == 0 or ok.size * 2 < s.size:
        return None
    a = (1.0 - level) / 2.0
    return float(np.quantile(ok, a)), float(np.quantile(ok, 1.0 - a))


def _resampled_drawdowns(bar_growth: np.ndarray, lo: np.ndarray, n: np.ndarray,
                         pick: np.ndarray) -> np.ndarray:
    """Return the per-bar max drawdown of every resampled run (rows of day indices ``pick``)."""
    out = np.empty(pick.shape[0])
    for b, days in enumerate(pick):
        lens = n[days]
        ends = np.cumsum(lens)
        idx = np.arange(ends[-1]) + np.repeat(lo[days] - (ends - lens), lens)
        out[b] = max_drawdown(np.cumprod(bar_growth[idx]))
    return out


def day_bootstrap(
    bar_equity: np.ndarray,
    day_lo: np.ndarray,
    initial_capital: float,
    *,
    n_boot: int = BOOT_RUNS,
    seed: int = 0,
    level: float = LEVEL,
) -> dict[str, tuple[float, float] | None]:
    """Return the ROI, Sharpe, Sortino and Calmar intervals of a run by resampling its days.

    ``bar_equity``: the per-bar mark-to-market equity; ``day_lo``: the first bar of every day,
    then the bar count (``alpha.session.day_bounds``).
    """
    none = dict.fromkeys(("roi", "sharpe", "sortino", "calmar"))
    eq = np.asarray(bar_equity, dtype=np.float64)
    lo = np.asarray(day_lo, dtype=np.int64)
    n_days = lo.shape[0] - 1
    if n_days < 2 or not np.all(eq > 0) or not initial_capital > 0:
        return none
    bar_growth = eq / np.concatenate([[initial_capital], eq[:-1]])
    day_end = eq[lo[1:] - 1]
    day_growth = day_end / np.concatenate([[initial_capital], day_end[:-1]])
    pick = np.random.default_rng(seed).integers(0, n_days, size=(n_boot, n_days))
    g = day_growth[pick]
    growth = np.prod(g, axis=1)
    sharpe, sortino = ratio_rows(g - 1.0)
    mdd = _resampled_drawdowns(bar_growth, lo[:-1], np.diff(lo), pick)
    with np.errstate(divide="ignore", invalid="ignore"):
        calmar = np.where(mdd > 0, cagr(growth, n_days) / mdd, np.nan)
    return {
        "roi": percentile_interval(growth - 1.0, level),
        "sharpe": percentile_interval(sharpe, level),
        "sortino": percentile_interval(sortino, level),
        "calmar": percentile_interval(calmar, level),
    }


def trade_bootstrap(
    pnl: np.ndarray, *, n_boot: int = BOOT_RUNS, seed: int = 0, level: float = LEVEL
) -> dict[str, tuple[float, float] | None]:
    """Return the win-rate and profit-factor intervals of a run by resampling its trades."""
    p = np.asarray(pnl, dtype=np.float64)
    if p.size < 2:
        return {"win_rate": None, "profit_factor": None}
    s = p[np.random.default_rng(seed).integers(0, p.size, size=(n_boot, p.size))]
    wins = np.where(s > 0, s, 0.0).sum(axis=1)
    losses = -np.where(s < 0, s, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pf = np.where(losses > 0, wins / losses, np.nan)
    return {
        "win_rate": percentile_interval((s > 0).mean(axis=1), level),
        "profit_factor": percentile_interval(pf, level),
    }


def sample_figures(
    trades: pd.DataFrame,
    equity: pd.DataFrame,
    metrics: dict,
    *,
    n_boot: int = BOOT_RUNS,
    seed: int = 0,
    level: float = LEVEL,
) -> dict:
    """Return a run's sample (days, trades), its bootstrap intervals and the annualisation
    caveat (``backtest.metrics.annualisation_caveat``), as written to ``intervals.json``."""
    days, n_trades = int(metrics.get("days", 0)), int(metrics.get("trades", len(trades)))
    ts = pd.DatetimeIndex(equity["timestamp"]).as_unit("ns").asi8 if len(equity) else np.zeros(0)
    lo = day_bounds(ts) if len(equity) else np.zeros(1, dtype=np.int64)
    eq = equity["equity"].to_numpy(dtype=np.float64)
    intervals = day_bootstrap(eq, lo, float(metrics["initial_capital"]), n_boot=n_boot, seed=seed,
                              level=level)  # fmt: skip
    intervals.update(trade_bootstrap(trades["pnl"].to_numpy(dtype=np.float64), n_boot=n_boot,
                                     seed=seed, level=level))  # fmt: skip
    caveat = annualisation_caveat(days, n_trades)
    return {
        "days": days,
        "trades": n_trades,
        "annualisation_meaningful": caveat is None,
        "caveat": caveat,
        "level": level,
        "n_boot": n_boot,
        "seed": seed,
        "intervals": {k: (list(v) if v is not None else None)
                      for k, v in ((k, intervals[k]) for k in INTERVAL_FIGURES)},
    }
