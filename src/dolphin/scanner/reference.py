"""The plain reference scanner: ``numpy.corrcoef`` + ``numpy.linalg.eigvalsh`` per bar.

Slow and obviously correct; it is the oracle the fast kernels are tested against and the
naive baseline of ``benchmarks/bench_scanner.py``. It follows DESIGN.md "Scans" literally:
at bar t the window holds the w log returns r[t-w+1..t] (prices t-w..t); an asset is active
when all w+1 prices are present and its returns are not all zero (non-zero variance).
"""

from __future__ import annotations

import numpy as np


def reference_window(prices: np.ndarray, t: int, w: int) -> tuple[float, float, int]:
    """(lambda_max / N, instability, N) of window ``w`` at bar ``t``; NaN while N < 2."""
    if t < w:
        return np.nan, np.nan, 0
    win = prices[t - w : t + 1]
    present = np.isfinite(win).all(axis=0)
    r = np.log(win[1:, present] / win[:-1, present])
    r = r[:, (r != 0.0).any(axis=0)]
    n = r.shape[1]
    if n < 2:
        return np.nan, np.nan, n
    c = np.corrcoef(r, rowvar=False)
    lam = float(np.linalg.eigvalsh(c)[-1]) / n
    fro2 = float((c * c).sum())
    instability = 1.0 + np.log(fro2 / (n * n)) / np.log(n)
    return lam, float(instability), n


def reference_rows(
    prices: np.ndarray,
    rows: np.ndarray,
    windows: tuple[int, ...] = (50, 150, 300, 750),
) -> dict[str, np.ndarray]:
    """Reference scan columns at the given bar indices (velocity needs bar t-1 as well)."""
    out: dict[str, np.ndarray] = {}
    for w in windows:
        lam = np.full(len(rows), np.nan)
        lam_prev = np.full(len(rows), np.nan)
        instab = np.full(len(rows), np.nan)
        n_act = np.zeros(len(rows), np.int64)
        for i, t in enumerate(rows):
            lam[i], instab[i], n_act[i] = reference_window(prices, int(t), w)
            if t >= 1:
                lam_prev[i] = reference_window(prices, int(t) - 1, w)[0]
        out[f"v{w}_lambda_max"] = lam
        out[f"v{w}_lambda_max_velocity"] = lam - lam_prev
        out[f"v{w}_n_assets"] = n_act
        out[f"instability_{w}"] = instab
    out["vel_div"] = (
        out[f"v{windows[0]}_lambda_max_velocity"] - out[f"v{windows[-1]}_lambda_max_velocity"]
    )
    return out
