"""Does a label separate a sample? Permutation tests, multiple-testing corrections, draw odds.

- ``kruskal_h``: the Kruskal–Wallis statistic on midranks, ``H = (N − 1) Σ_g n_g (R̄_g − R̄)² /
  Σ_i (r_i − R̄)²``: the between-group variance of the mean ranks over the total rank variance.
  It is tie-corrected by construction and equals ``scipy.stats.kruskal``. Ranks make it robust
  to the heavy tails of daily PnL, where one wipeout would dominate any variance of raw means.
- ``permutation_h``: the p-value of H under exchangeable labels (the null: the label says
  nothing about the value). When the distinct label arrangements number at most
  ``n_permutations`` they are all enumerated and ``p = #{H* ≥ H} / #arrangements`` is exact (the
  observed arrangement is one of them). Otherwise labels are shuffled ``n_permutations`` times
  and ``p = (k + 1) / (n + 1)`` (Phipson & Smyth 2010: never 0, valid at any n).
- ``holm`` (Holm 1979, family-wise error) and ``benjamini_hochberg`` (BH 1995, false discovery
  rate) adjust a family of p-values; NaN entries are not part of the family and stay NaN.
- ``hypergeom_tail``, ``distinct_groups_cdf``: exact odds of draws without replacement, for
  "the worst n days all fell on these weekdays" claims.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

#: Relative tolerance for "H* ≥ H": the same grouping summed in another order must count as equal.
TIE_RTOL = 1e-12
#: Most label arrangements an exact test enumerates.
MAX_EXACT = 1_000_000
#: Permutations evaluated per block (bounds memory at block × N labels).
_BLOCK = 2000


@dataclass(frozen=True)
class PermutationResult:
    """Outcome of a permutation test of H: statistic, p-value and how it was obtained."""

    statistic: float
    p_value: float
    n_permutations: int  # arrangements enumerated (exact) or shuffles drawn
    exact: bool


def _codes(labels: Sequence) -> tuple[np.ndarray, np.ndarray]:
    _, codes, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    return codes.astype(np.int64), counts


def _h_of_sums(sums: np.ndarray, counts: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Return H for rank sums per group (last axis); the denominator is permutation-invariant."""
    n = len(ranks)
    mean = ranks.mean()
    total = float(np.sum((ranks - mean) ** 2))
    between = np.sum(sums**2 / counts, axis=-1) - n * mean**2
    return (n - 1) * between / total


def _rank_sums(codes: np.ndarray, ranks: np.ndarray, n_groups: int) -> np.ndarray:
    """Return the rank sum of every group for each row of label codes (B × N -> B × G)."""
    rows = codes.shape[0]
    flat = (codes + n_groups * np.arange(rows)[:, None]).ravel()
    weights = np.broadcast_to(ranks, codes.shape).ravel()
    return np.bincount(flat, weights=weights, minlength=rows * n_groups).reshape(rows, n_groups)


def kruskal_h(values: Sequence[float], labels: Sequence) -> float:
    """Return the Kruskal–Wallis H of ``values`` grouped by ``labels`` (NaN if undefined)."""
    x = np.asarray(values, dtype=float)
    codes, counts = _codes(labels)
    if len(x) != len(codes):
        raise ValueError(f"{len(x)} values but {len(codes)} labels")
    ranks = rankdata(x)
    if len(counts) < 2 or np.ptp(ranks) == 0:
        return math.nan
    return float(_h_of_sums(_rank_sums(codes[None, :], ranks, len(counts)), counts, ranks)[0])


def n_arrangements(counts: Sequence[int]) -> int:
    """Return the number of distinct label arrangements, N! / Π n_g!."""
    out, left = 1, int(sum(counts))
    for c in counts:
        out *= math.comb(left, int(c))
        left -= int(c)
    return out


def arrangements(counts: Sequence[int]) -> Iterator[np.ndarray]:
    """Yield every distinct arrangement of ``counts[g]`` copies of each code g, once each."""
    n = int(sum(counts))

    def fill(g: int, free: tuple[int, ...], codes: np.ndarray) -> Iterator[np.ndarray]:
        if g == len(counts) - 1:
            codes[list(free)] = g
            yield codes.copy()
            return
        for chosen in itertools.combinations(free, int(counts[g])):
            codes[list(chosen)] = g
            yield from fill(g + 1, tuple(i for i in free if i not in chosen), codes)

    yield from fill(0, tuple(range(n)), np.zeros(n, dtype=np.int64))


def _count_at_least(stats: np.ndarray, observed: float) -> int:
    return int(np.count_nonzero(stats >= observed - TIE_RTOL * max(1.0, abs(observed))))


def permutation_h(
    values: Sequence[float],
    labels: Sequence,
    *,
    n_permutations: int = 10_000,
    seed: int | np.random.SeedSequence = 42,
    exact: bool | None = None,
) -> PermutationResult:
    """Return H and its permutation p-value (module docstring). ``exact=None`` enumerates when
    the arrangements are at most ``n_permutations``; True or False forces one way. An undefined
    H (one group, or all values equal) gives NaN for both."""
    h = kruskal_h(values, labels)
    if not math.isfinite(h):
        return PermutationResult(math.nan, math.nan, 0, False)
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    codes, counts = _codes(labels)
    ranks = rankdata(np.asarray(values, dtype=float))
    total = n_arrangements(counts)
    enumerate_all = total <= n_permutations if exact is None else exact
    if enumerate_all and total > MAX_EXACT:
        raise ValueError(f"{total:,} arrangements are too many to enumerate (max {MAX_EXACT:,})")
    if enumerate_all:
        every = np.array(list(arrangements(counts)))
        stats = _h_of_sums(_rank_sums(every, ranks, len(counts)), counts, ranks)
        return PermutationResult(h, _count_at_least(stats, h) / total, total, True)
    rng = np.random.default_rng(seed)
    k = 0
    for start in range(0, n_permutations, _BLOCK):
        rows = min(_BLOCK, n_permutations - start)
        shuffled = rng.permuted(np.broadcast_to(codes, (rows, len(codes))), axis=1)
        k += _count_at_least(_h_of_sums(_rank_sums(shuffled, ranks, len(counts)), counts, ranks), h)
    return PermutationResult(h, (k + 1) / (n_permutations + 1), n_permutations, False)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Return Holm–Bonferroni adjusted p-values: ``max_{j≤i} min(1, (m − j + 1) p_(j))``."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """Return Benjamini–Hochberg q-values: ``min_{j≥i} min(1, m p_(j) / j)``."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    scaled = m * p[order] / np.arange(1, m + 1)
    out[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return out


def hypergeom_tail(total: int, marked: int, draws: int, at_least: int) -> float:
    """Return P(X ≥ ``at_least``) for X marked items among ``draws`` drawn without replacement
    from ``total`` items of which ``marked`` are marked (exact, integer arithmetic)."""
    if not 0 <= marked <= total or not 0 <= draws <= total:
        raise ValueError(f"need 0 <= marked, draws <= total, got {marked}, {draws}, {total}")
    ways = sum(math.comb(marked, j) * math.comb(total - marked, draws - j)
               for j in range(max(at_least, 0), draws + 1))  # fmt: skip
    return ways / math.comb(total, draws)


def distinct_groups_cdf(counts: Sequence[int], draws: int, max_groups: int) -> float:
    """Return P(``draws`` items drawn without replacement span ≤ ``max_groups`` groups), the
    items of group g numbering ``counts[g]`` (exact: counts the subsets group by group)."""
    if not 0 <= draws <= sum(counts):
        raise ValueError(f"cannot draw {draws} of {sum(counts)} items")
    # ways[j][k]: subsets of j items, from the groups seen so far, touching exactly k groups
    ways = [[0] * (len(counts) + 1) for _ in range(draws + 1)]
    ways[0][0] = 1
    for c in counts:
        new = [[0] * (len(counts) + 1) for _ in range(draws + 1)]
        for j, k in itertools.product(range(draws + 1), range(len(counts) + 1)):
            if not ways[j][k]:
                continue
            for take in range(min(int(c), draws - j) + 1):
                new[j + take][k + (take > 0)] += ways[j][k] * math.comb(int(c), take)
        ways = new
    return sum(ways[draws][: max_groups + 1]) / math.comb(int(sum(counts)), draws)
