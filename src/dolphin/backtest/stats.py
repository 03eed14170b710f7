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
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata

EULER_GAMMA = 0.5772156649015329


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
