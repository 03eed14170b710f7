"""Numba kernels of the eigenvalue scanner (DESIGN.md "Scans").

For every window w the scanner keeps sliding sums of the log returns of every asset of the
universe: ``S1[k, i] = sum r_i`` and the upper triangle of ``S2[k, i, j] = sum r_i r_j`` over the
last w bars, with a missing return counted as 0 and a per-asset count of valid and of non-zero
returns. An asset is *active* in window w when all w returns are valid (a full window of
history, so the NaN-as-0 sums are exact) and not all of them are zero (non-zero variance).

The correlation matrix of the active assets is never formed. With ``m = S1/w``,
``cov = S2/w - m m^T`` and ``s_i = 1/sigma_i`` for active assets (0 otherwise),
``C' = diag(s) cov diag(s)`` has the active correlation matrix as its non-zero block, so
``lambda_max`` and ``||C||_F`` are those of ``C'`` and every loop runs over contiguous memory.

``lambda_max`` comes from a power iteration warm-started at the previous bar's eigenvector,
stopped when the Rayleigh quotient moves by less than ``LAMBDA_TOL`` with a geometric-tail guard.
It is then certified: if ``rho^2 > ||C||_F^2 / 2`` no other eigenvalue can exceed ``rho``
(``sum lambda_k^2 = ||C||_F^2``). When the certificate fails (weak market mode) or the
iteration does not converge, the exact LAPACK ``eigh`` of the active block is used instead.

Drift of the running sums is bounded by an exact recomputation from the return ring every
``recompute_every`` bars (aligned on the absolute bar index, which also resets the warm start,
so a chunked backfill reproduces the single-process output bit for bit) and whenever a return
larger than ``LARGE_RETURN`` leaves a window (a bad tick cannot leave residue behind it).
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Absolute tolerance on successive Rayleigh quotients (lambda units, lambda <= N).
LAMBDA_TOL = 1e-9
#: Power-iteration cap before falling back to LAPACK.
MAX_ITER = 60
#: |log return| above which the exit of that return from a window forces an exact recompute.
LARGE_RETURN = 0.5

# Per-window output layout (columns of ``out[t, k * N_OUT + c]``).
OUT_LAMBDA = 0
OUT_VELOCITY = 1
OUT_N_ACTIVE = 2
OUT_INSTABILITY = 3
OUT_ITERATIONS = 4
N_OUT = 5

# Iteration-count codes for the diagnostics column.
ITER_EXACT_FALLBACK = -1.0

_FM = {"reassoc", "contract", "nsz", "arcp"}


@njit(cache=True)
def log_returns_nb(prev, price, r0, valid, nz):
    """Log returns of one bar: r0 (NaN as 0), valid and non-zero flags. Updates ``prev``."""
    n = price.shape[0]
    for i in range(n):
        p = price[i]
        q = prev[i]
        ok = p == p and q == q
        if ok:
            r = np.log(p / q)
            r0[i] = r
            valid[i] = 1
            nz[i] = 1 if r != 0.0 else 0
        else:
            r0[i] = 0.0
            valid[i] = 0
            nz[i] = 0
        prev[i] = p


@njit(cache=True, fastmath=_FM)
def _sum_products_nb(x, y, n):
    """``x . y`` in a loop that stores nothing. A loop that stored and summed would get a
    runtime check from the vectoriser on how close the arrays lie in memory; its answer, and
    with it the order of the sum, would depend on where they were allocated, and a scan would
    not be bit-identical from run to run."""
    acc = 0.0
    for j in range(n):
        acc += x[j] * y[j]
    return acc


@njit(cache=True, fastmath=_FM)
def fused_pass_nb(S2, a, b, m, s, w, x, z, n, want_fro):
    """One sweep over ``S2``: rank-2 update, first matvec and Frobenius norm together.

    ``S2 += a a^T - b b^T`` (full symmetric storage, so every loop is a contiguous, vectorised
    row); then for active rows ``z = S2 (s * x)`` and, when ``want_fro``,
    ``||C'||_F^2 = sum_ij (s_i s_j (S2_ij / w - m_i m_j))^2``. One pass reads the matrix once,
    which is what bounds the speed at a few hundred assets. Returns ``(mu, fro2)`` where
    ``mu = m . (s * x)`` completes the matvec.
    """
    inv_w = 1.0 / w
    u = np.empty(n)
    sw = np.empty(n)
    sm = np.empty(n)
    for j in range(n):
        u[j] = s[j] * x[j]
        sw[j] = s[j] * inv_w
        sm[j] = s[j] * m[j]
    mu = _sum_products_nb(m, u, n)
    fro2 = 0.0
    for i in range(n):
        ai = a[i]
        bi = b[i]
        row = S2[i]
        if ai != 0.0 or bi != 0.0:
            for j in range(n):
                row[j] += ai * a[j] - bi * b[j]
        si = s[i]
        if si == 0.0:
            z[i] = 0.0
            continue
        acc = 0.0
        for j in range(n):
            acc += row[j] * u[j]
        z[i] = acc
        if want_fro:
            mi = m[i]
            f = 0.0
            for j in range(n):
                c = sw[j] * row[j] - mi * sm[j]
                f += c * c
            fro2 += si * si * f
    return mu, fro2


@njit(cache=True, fastmath=_FM)
def corr_matvec_nb(S2, m, s, w, x, z, n):
    """``z = S2 (s * x)`` over active rows; returns ``mu = m . (s * x)``."""
    u = np.empty(n)
    for j in range(n):
        u[j] = s[j] * x[j]
    mu = _sum_products_nb(m, u, n)
    for i in range(n):
        if s[i] == 0.0:
            z[i] = 0.0
            continue
        row = S2[i]
        acc = 0.0
        for j in range(n):
            acc += row[j] * u[j]
        z[i] = acc
    return mu


@njit(cache=True)
def finish_matvec_nb(z, m, s, w, mu, y, n):
    """``y = diag(s) (z / w - m mu)``: the correlation matvec from the covariance one."""
    inv_w = 1.0 / w
    for i in range(n):
        y[i] = s[i] * (z[i] * inv_w - m[i] * mu)


@njit(cache=True)
def exact_lambda_nb(S2, m, s, w, vec, n):
    """Exact ``lambda_max`` of the active block by LAPACK ``eigh``; refreshes ``vec``."""
    idx = np.empty(n, np.int64)
    k = 0
    for i in range(n):
        if s[i] != 0.0:
            idx[k] = i
            k += 1
    c = np.empty((k, k))
    inv_w = 1.0 / w
    for a in range(k):
        i = idx[a]
        for b in range(a, k):
            j = idx[b]
            v = s[i] * s[j] * (S2[i, j] * inv_w - m[i] * m[j])
            c[a, b] = v
            c[b, a] = v
    vals, vecs = np.linalg.eigh(c)
    for i in range(n):
        vec[i] = 0.0
    for a in range(k):
        vec[idx[a]] = vecs[a, k - 1]
    return vals[k - 1]


@njit(cache=True)
def start_vector_nb(vec, s, n):
    """Mask the warm start to the active set; uniform when nothing of it survives."""
    norm = 0.0
    for i in range(n):
        if s[i] == 0.0:
            vec[i] = 0.0
        norm += vec[i] * vec[i]
    if norm < 1e-6:
        norm = 0.0
        for i in range(n):
            vec[i] = 1.0 if s[i] != 0.0 else 0.0
            norm += vec[i]
    if norm == 0.0:
        return
    inv = 1.0 / np.sqrt(norm)
    for i in range(n):
        vec[i] *= inv


@njit(cache=True)
def rayleigh_step_nb(vec, y, fro2, n):
    """Rayleigh quotient of ``vec`` given ``y = C vec``, its Kato-Temple error bound, and the
    next iterate (written into ``vec``).

    With ``rho = x.Cx`` and residual ``eps = ||Cx - rho x||``, ``rho <= lambda_max`` and,
    when ``alpha = sqrt(fro2 - rho^2) < rho`` (no other eigenvalue can reach alpha, since
    ``sum lambda^2 = fro2``), ``lambda_max - rho <= eps^2 / (rho - alpha)``. The bound is
    infinite when that certificate fails.
    """
    rho = 0.0
    for i in range(n):
        rho += vec[i] * y[i]
    eps2 = 0.0
    norm = 0.0
    for i in range(n):
        d = y[i] - rho * vec[i]
        eps2 += d * d
        norm += y[i] * y[i]
    alpha = np.sqrt(max(fro2 - rho * rho, 0.0))
    bound = eps2 / (rho - alpha) if rho > alpha else np.inf
    if norm > 0.0:
        inv = 1.0 / np.sqrt(norm)
        for i in range(n):
            vec[i] = y[i] * inv
    return rho, bound


@njit(cache=True)
def lambda_window_nb(S2, a, b, m, s, w, vec, y, z, n, n_act, want_instab):
    """Update window sums and return (lambda_max / N, instability, iterations).

    Iterations are power steps until the rigorous Kato-Temple bound on ``lambda_max`` drops
    below ``LAMBDA_TOL * N``; a negative count means the exact LAPACK fallback was used.
    """
    start_vector_nb(vec, s, n)
    mu, fro2 = fused_pass_nb(S2, a, b, m, s, w, vec, z, n, True)
    if n_act < 2:
        return np.nan, np.nan, 0.0
    tol = LAMBDA_TOL * n_act
    rho = 0.0
    iters = 0.0
    for it in range(1, MAX_ITER + 1):
        if it > 1:
            mu = corr_matvec_nb(S2, m, s, w, vec, z, n)
        finish_matvec_nb(z, m, s, w, mu, y, n)
        rho, bound = rayleigh_step_nb(vec, y, fro2, n)
        iters = float(it)
        if bound <= tol:
            break
        if bound == np.inf and it >= 3:
            iters = ITER_EXACT_FALLBACK
            break
    else:
        iters = ITER_EXACT_FALLBACK
    if iters == ITER_EXACT_FALLBACK:
        rho = exact_lambda_nb(S2, m, s, w, vec, n)
    instab = np.nan
    if want_instab:
        # H2 = -ln(||C||_F^2 / N^2); instability = 1 - H2 / ln N.
        instab = 1.0 + np.log(fro2 / (n_act * n_act)) / np.log(n_act)
    return rho / n_act, instab, iters


@njit(cache=True, fastmath=_FM)
def recompute_window_nb(ring_r, ring_v, ring_nz, t, w, S1, S2, cnt_v, cnt_nz, n):
    """Exact sums of window ``w`` ending at bar ``t`` from the return ring (drift reset).

    A plain loop rather than BLAS: the result must not depend on the BLAS build or its thread
    count, or a chunked backfill could not be bit-identical to a single process.
    """
    size = ring_r.shape[0]
    first = max(1, t - w + 1)
    for i in range(n):
        S1[i] = 0.0
        cnt_v[i] = 0
        cnt_nz[i] = 0
        for j in range(n):
            S2[i, j] = 0.0
    for tt in range(first, t + 1):
        src = tt % size
        row = ring_r[src]
        for i in range(n):
            ri = row[i]
            S1[i] += ri
            cnt_v[i] += ring_v[src, i]
            cnt_nz[i] += ring_nz[src, i]
            if ri == 0.0:
                continue
            dst = S2[i]
            for j in range(i, n):
                dst[j] += ri * row[j]
    for i in range(n):
        for j in range(i + 1, n):
            S2[j, i] = S2[i, j]


@njit(cache=True)
def window_stats_nb(S1, S2, cnt_v, cnt_nz, a, b, w, m, s, n):
    """Means and inverse st.devs of the active assets after adding ``a``/removing ``b``.

    Returns ``(n_active, ok)``; ``ok`` is False when an active asset's running variance is not
    positive (cancellation in the sums), which the caller answers with an exact recompute.
    """
    n_act = 0
    ok = True
    for i in range(n):
        mi = S1[i] / w
        m[i] = mi
        if cnt_v[i] == w and cnt_nz[i] > 0:
            var = (S2[i, i] + (a[i] * a[i] - b[i] * b[i])) / w - mi * mi
            if var > 0.0:
                s[i] = 1.0 / np.sqrt(var)
                n_act += 1
            else:
                s[i] = 0.0
                ok = False
        else:
            s[i] = 0.0
    return n_act, ok


@njit(cache=True)
def _slide_counts_nb(k, r0, valid, nz, b, bv, bnz, S1, cnt_v, cnt_nz, n):
    """O(N) part of the slide: first moments and the valid / non-zero counters."""
    for i in range(n):
        cnt_v[k, i] += valid[i] - bv[i]
        cnt_nz[k, i] += nz[i] - bnz[i]
        S1[k, i] += r0[i] - b[i]


@njit(cache=True)
def scan_step_nb(t, price, windows, want_instab, recompute_every, prev, r0, valid, nz,
                 ring_r, ring_v, ring_nz, S1, S2, cnt_v, cnt_nz, vec, lam_prev,
                 m, s, y, z, out_row, n):
    """Advance the scanner by one bar (absolute index ``t``) and write its outputs."""
    log_returns_nb(prev[:n], price[:n], r0, valid, nz)
    size = ring_r.shape[0]
    pos = t % size
    ring_r[pos, :n] = r0[:n]
    ring_v[pos, :n] = valid[:n]
    ring_nz[pos, :n] = nz[:n]
    zero = np.zeros(n)
    izero = np.zeros(n, np.int64)
    for k in range(windows.shape[0]):
        w = windows[k]
        e = t - w
        if e >= 1:
            es = e % size
            b, bv, bnz = ring_r[es, :n], ring_v[es, :n], ring_nz[es, :n]
        else:
            b, bv, bnz = zero, izero, izero
        large = False
        for i in range(n):
            if abs(b[i]) > LARGE_RETURN:
                large = True
        aligned = t % recompute_every == 0
        a = r0[:n]
        if aligned or large:
            recompute_window_nb(ring_r, ring_v, ring_nz, t, w, S1[k], S2[k], cnt_v[k],
                                cnt_nz[k], n)
            a, b = zero, zero
            if aligned:
                # A fixed warm start after each aligned recompute makes every output a function
                # of the data since the last aligned bar (bit-identical chunked backfill).
                vec[k, :n] = 0.0
        else:
            _slide_counts_nb(k, r0, valid, nz, b, bv, bnz, S1, cnt_v, cnt_nz, n)
        n_act, ok = window_stats_nb(S1[k], S2[k], cnt_v[k], cnt_nz[k], a, b, w, m, s, n)
        if not ok:
            # Apply the pending update, then rebuild the sums exactly.
            recompute_window_nb(ring_r, ring_v, ring_nz, t, w, S1[k], S2[k], cnt_v[k],
                                cnt_nz[k], n)
            a, b = zero, zero
            n_act, ok = window_stats_nb(S1[k], S2[k], cnt_v[k], cnt_nz[k], a, b, w, m, s, n)
        lam, instab, iters = lambda_window_nb(S2[k], a, b, m, s, w, vec[k], y, z, n, n_act,
                                              want_instab[k])
        base = k * N_OUT
        out_row[base + OUT_LAMBDA] = lam
        out_row[base + OUT_VELOCITY] = lam - lam_prev[k]
        out_row[base + OUT_N_ACTIVE] = n_act
        out_row[base + OUT_INSTABILITY] = instab if want_instab[k] else np.nan
        out_row[base + OUT_ITERATIONS] = iters
        lam_prev[k] = lam


@njit(cache=True)
def scan_loop_nb(prices, t0, windows, want_instab, recompute_every, prev, r0, valid, nz,
                 ring_r, ring_v, ring_nz, S1, S2, cnt_v, cnt_nz, vec, lam_prev, m, s, y, z,
                 out):
    """Run ``scan_step_nb`` over every row of ``prices``; row i is absolute bar ``t0 + i``."""
    n = prices.shape[1]
    for i in range(prices.shape[0]):
        scan_step_nb(t0 + i, prices[i], windows, want_instab, recompute_every, prev, r0,
                     valid, nz, ring_r, ring_v, ring_nz, S1, S2, cnt_v, cnt_nz, vec, lam_prev,
                     m, s, y, z, out[i], n)
