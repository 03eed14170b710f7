"""The scanner's whole state as plain numpy arrays (so batch, live and workers share kernels)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from dolphin.scanner import nb


@dataclass
class ScanState:
    """Running sums, return ring and warm-start vectors for ``len(windows)`` windows.

    Arrays are sized for ``capacity`` assets; only the first ``n`` are in use, so a live
    universe can grow without reallocating on every listing.
    """

    windows: np.ndarray
    want_instab: np.ndarray
    recompute_every: int
    n: int
    prev: np.ndarray
    r0: np.ndarray
    valid: np.ndarray
    nz: np.ndarray
    ring_r: np.ndarray
    ring_v: np.ndarray
    ring_nz: np.ndarray
    S1: np.ndarray
    S2: np.ndarray
    cnt_v: np.ndarray
    cnt_nz: np.ndarray
    vec: np.ndarray
    lam_prev: np.ndarray
    m: np.ndarray
    s: np.ndarray
    y: np.ndarray
    z: np.ndarray

    @classmethod
    def new(
        cls,
        windows: tuple[int, ...],
        instability_windows: tuple[int, ...],
        recompute_every: int,
        n: int,
        capacity: int | None = None,
    ) -> ScanState:
        """Empty state for ``n`` assets (room for ``capacity``)."""
        cap = max(n, capacity or n, 1)
        k = len(windows)
        size = max(windows) + 1
        return cls(
            windows=np.asarray(windows, dtype=np.int64),
            want_instab=np.array([w in instability_windows for w in windows], dtype=np.bool_),
            recompute_every=int(recompute_every),
            n=n,
            prev=np.full(cap, np.nan),
            r0=np.zeros(cap),
            valid=np.zeros(cap, np.int64),
            nz=np.zeros(cap, np.int64),
            ring_r=np.zeros((size, cap)),
            ring_v=np.zeros((size, cap), np.int64),
            ring_nz=np.zeros((size, cap), np.int64),
            S1=np.zeros((k, cap)),
            S2=np.zeros((k, cap, cap)),
            cnt_v=np.zeros((k, cap), np.int64),
            cnt_nz=np.zeros((k, cap), np.int64),
            vec=np.zeros((k, cap)),
            lam_prev=np.full(k, np.nan),
            m=np.zeros(cap),
            s=np.zeros(cap),
            y=np.zeros(cap),
            z=np.zeros(cap),
        )

    @property
    def capacity(self) -> int:
        return self.prev.shape[0]

    def grow(self, n_new: int) -> None:
        """Make room for ``n_new`` assets; new assets start with no history."""
        if n_new <= self.capacity:
            self.n = max(self.n, n_new)
            return
        cap = max(n_new, 2 * self.capacity)
        for f in fields(self):
            arr = getattr(self, f.name)
            if not isinstance(arr, np.ndarray) or f.name in ("windows", "want_instab", "lam_prev"):
                continue
            setattr(self, f.name, _pad_assets(arr, cap, f.name))
        self.n = n_new

    def step(self, t: int, price: np.ndarray, out_row: np.ndarray) -> None:
        """Advance by one bar (absolute index ``t``); ``price`` has ``capacity`` entries."""
        nb.scan_step_nb(
            t, price, self.windows, self.want_instab, self.recompute_every, self.prev,
            self.r0, self.valid, self.nz, self.ring_r, self.ring_v, self.ring_nz, self.S1,
            self.S2, self.cnt_v, self.cnt_nz, self.vec, self.lam_prev, self.m, self.s,
            self.y, self.z, out_row, self.n,
        )

    def run(self, prices: np.ndarray, t0: int, out: np.ndarray) -> None:
        """Advance over every row of ``prices`` (shape T x n), row i being bar ``t0 + i``."""
        if prices.shape[1] != self.capacity:
            raise ValueError("prices must have one column per state slot")
        nb.scan_loop_nb(
            prices, t0, self.windows, self.want_instab, self.recompute_every, self.prev,
            self.r0, self.valid, self.nz, self.ring_r, self.ring_v, self.ring_nz, self.S1,
            self.S2, self.cnt_v, self.cnt_nz, self.vec, self.lam_prev, self.m, self.s,
            self.y, self.z, out,
        )


def _pad_assets(arr: np.ndarray, cap: int, name: str) -> np.ndarray:
    """Copy ``arr`` into a larger array along its asset axes (the last one, or two for S2)."""
    fill = np.nan if name == "prev" else 0
    shape = list(arr.shape)
    shape[-1] = cap
    if name == "S2":
        shape[-2] = cap
    out = np.full(shape, fill, dtype=arr.dtype)
    if name == "S2":
        out[..., : arr.shape[-2], : arr.shape[-1]] = arr
    else:
        out[..., : arr.shape[-1]] = arr
    return out
