"""Batch and live eigenvalue scanner (DESIGN.md "Scans").

``scan_prices`` turns an aligned wide close matrix into scan rows; ``IncrementalScanner`` is
fed one bar at a time and yields the same row. Both drive the same numba step kernel over the
same state (``ScanState``), so they agree to rounding (the live universe may be ordered
differently, which changes summation order only).

No price, no trade (DESIGN.md "Data contracts"): the kernel runs on the forward-filled matrix (a
filled bar is a zero return), but the per-asset close columns of a scan hold only REAL closes,
NaN where the asset had no bar of its own, so no consumer can mistake a filled close for a price.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from dolphin.core.config import ScannerConfig
from dolphin.core.errors import BadInputError, BadPriceError, MissingColumnError
from dolphin.data.align import missing_fraction
from dolphin.scanner import nb
from dolphin.scanner.state import ScanState

#: Without a fill mask, a bar is an exchange-wide gap when at least this share of the assets
#: priced at both bars show an unchanged close (a forward-filled outage looks exactly so).
GAP_ZERO_RETURN_FRACTION = 0.95


def price_matrix(wide: pd.DataFrame, source: str = "<frame>") -> tuple[np.ndarray, list[str]]:
    """Validated contiguous float64 prices (T x N) and the symbol names of a wide frame."""
    if "timestamp" not in wide.columns:
        raise MissingColumnError("wide prices need a 'timestamp' column", source=source,
                                 field="timestamp")
    symbols = [c for c in wide.columns if c != "timestamp"]
    if not symbols:
        raise BadInputError("no asset columns", source=source)
    try:
        prices = np.ascontiguousarray(wide[symbols].to_numpy(dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"non-numeric price column ({exc})", source=source) from None
    bad = np.isinf(prices) | (prices <= 0)
    if bad.any():
        row, col = (int(x[0]) for x in np.nonzero(bad))
        raise BadPriceError("price must be positive and finite (NaN marks a missing bar)",
                            source=source, row=row, field=symbols[col], value=prices[row, col])
    return prices, symbols


def checked_real(real: np.ndarray | None, prices: np.ndarray, symbols: Sequence[str],
                 source: str = "<frame>") -> np.ndarray | None:
    """Return the real mask as a boolean T x N array, checked against ``prices``.

    ``None`` stays ``None`` (every finite price is then taken as real). A cell marked real must
    be priced: a real close is never NaN.
    """
    if real is None:
        return None
    mask = np.asarray(real)
    if mask.shape != prices.shape or mask.dtype != np.bool_:
        raise BadInputError(f"real mask must be boolean of shape {prices.shape}, got "
                            f"{mask.dtype} {mask.shape}", source=source, field="real")
    bad = mask & np.isnan(prices)
    if bad.any():
        row, col = (int(x[0]) for x in np.nonzero(bad))
        raise BadInputError("a bar marked real has no price", source=source, row=row,
                            field=symbols[col])
    return mask


def gap_flags(prices: np.ndarray, fill_fraction: np.ndarray | None,
              config: ScannerConfig, real: np.ndarray | None = None) -> np.ndarray:
    """``data_gap`` per bar: from the fill fraction when known, else from prices.

    The fill fraction is ``fill_fraction`` when given, else derived from the ``real`` mask (the
    share of priced assets without a real bar); with neither, a bar is a gap when nearly all
    assets priced at both bars show an unchanged close.
    """
    if fill_fraction is None and real is not None:
        fill_fraction = missing_fraction(real, np.isfinite(prices))
    if fill_fraction is not None:
        frac = np.asarray(fill_fraction, dtype=np.float64)
        if frac.shape != (prices.shape[0],):
            raise BadInputError(f"fill_fraction has shape {frac.shape}, expected "
                                f"({prices.shape[0]},)", field="fill_fraction")
        return np.nan_to_num(frac, nan=0.0) > config.gap_fraction
    flags = np.zeros(prices.shape[0], dtype=bool)
    if prices.shape[0] > 1:
        both = np.isfinite(prices[1:]) & np.isfinite(prices[:-1])
        same = both & (prices[1:] == prices[:-1])
        n = both.sum(axis=1)
        flags[1:] = (n >= 2) & (same.sum(axis=1) >= GAP_ZERO_RETURN_FRACTION * np.maximum(n, 1))
    return flags


def assemble(out: np.ndarray, prices: np.ndarray, symbols: Sequence[str],
             timestamps: np.ndarray, scan_numbers: np.ndarray, gaps: np.ndarray,
             config: ScannerConfig, real: np.ndarray | None = None) -> pd.DataFrame:
    """Kernel output -> the scan DataFrame (DESIGN.md column contract).

    ``n_assets`` counts the priced (real or filled) assets; the close columns are ``prices``
    where ``real`` is True and NaN elsewhere (``real=None``: every price is real).
    """
    cols: dict[str, object] = {
        "timestamp": timestamps,
        "scan_number": scan_numbers.astype(np.int64),
        "n_assets": np.isfinite(prices).sum(axis=1).astype(np.int64),
        "data_gap": gaps.astype(bool),
    }
    for k, w in enumerate(config.windows):
        base = k * nb.N_OUT
        cols[f"v{w}_lambda_max"] = out[:, base + nb.OUT_LAMBDA]
        cols[f"v{w}_lambda_max_velocity"] = out[:, base + nb.OUT_VELOCITY]
        cols[f"v{w}_n_assets"] = out[:, base + nb.OUT_N_ACTIVE].astype(np.int64)
    first, last = config.windows[0], config.windows[-1]
    cols["vel_div"] = cols[f"v{first}_lambda_max_velocity"] - cols[f"v{last}_lambda_max_velocity"]
    for w in config.instability_windows:
        k = config.windows.index(w)
        cols[f"instability_{w}"] = out[:, k * nb.N_OUT + nb.OUT_INSTABILITY]
    frame = pd.DataFrame(cols)
    shown = prices if real is None else np.where(real, prices, np.nan)
    closes = pd.DataFrame(shown, columns=list(symbols))
    return pd.concat([frame, closes], axis=1)


def run_kernel(prices: np.ndarray, config: ScannerConfig, t0: int = 0) -> np.ndarray:
    """Raw kernel output (T x K*N_OUT) for ``prices`` whose first row is absolute bar ``t0``."""
    state = ScanState.new(config.windows, config.instability_windows, config.recompute_every,
                          prices.shape[1])
    out = np.empty((prices.shape[0], len(config.windows) * nb.N_OUT))
    state.run(prices, t0, out)
    return out


def scan_prices(
    wide_prices: pd.DataFrame,
    config: ScannerConfig | None = None,
    *,
    real: np.ndarray | None = None,
    fill_fraction: np.ndarray | None = None,
    source: str = "<frame>",
) -> pd.DataFrame:
    """Scan an aligned wide close matrix (``timestamp`` + one column per asset).

    ``wide_prices`` is the matrix the scanner computes on: forward-filled, NaN = not trading
    (``dolphin.data.fill_closes`` of the real closes). ``real`` (boolean, one cell per price:
    the asset had a real bar, ``dolphin.data.real_mask``) makes the close columns real closes
    only, NaN elsewhere, and sets ``data_gap`` exactly; ``dolphin.scanner.inputs`` gives both.
    Without ``real`` every price is taken as real. ``fill_fraction`` (one value per row: the
    share of live assets whose bar was forward filled) overrides the gap fraction; with neither,
    a bar is a gap when nearly all assets show an unchanged close.
    """
    config = config or ScannerConfig()
    prices, symbols = price_matrix(wide_prices, source)
    real = checked_real(real, prices, symbols, source)
    out = run_kernel(prices, config)
    gaps = gap_flags(prices, fill_fraction, config, real)
    ts = wide_prices["timestamp"].to_numpy()
    return assemble(out, prices, symbols, ts, np.arange(len(prices)), gaps, config, real)


class IncrementalScanner:
    """Live scanner: ``update`` one bar at a time, get the batch row for that bar.

    In an update, a symbol with a finite price has a real bar; a symbol given NaN is not
    trading (not yet listed, delisted, halted); a known symbol absent from the mapping has
    its last close carried forward internally (zero return), which counts towards the gap flag,
    exactly like the loader's forward fill. The returned row's close is the real price of this
    update and NaN for an absent or NaN symbol (no price, no trade). ``fill_limit_bars`` caps the
    carry like the batch fill (``dolphin.data.fill_limit_bars(fill_limit, bar)``): an asset
    absent for more bars leaves the universe until its next real price; ``None``: no cap.
    """

    def __init__(self, config: ScannerConfig | None = None,
                 symbols: Sequence[str] = (), capacity: int = 64,
                 fill_limit_bars: int | None = None) -> None:
        self.config = config or ScannerConfig()
        self.fill_limit_bars = fill_limit_bars
        self._slots: dict[str, int] = {}
        self._state = ScanState.new(self.config.windows, self.config.instability_windows,
                                    self.config.recompute_every, 0, capacity)
        self._price = np.full(self._state.capacity, np.nan)
        self._age = np.zeros(self._state.capacity, np.int64)  # bars since the last real price
        self._real = np.zeros(self._state.capacity, dtype=bool)
        self._out = np.empty(len(self.config.windows) * nb.N_OUT)
        self._t = 0
        self._last_ts: pd.Timestamp | None = None
        for sym in symbols:
            self._slot(sym)

    @property
    def symbols(self) -> list[str]:
        """Known symbols in slot order."""
        return list(self._slots)

    @property
    def bars_seen(self) -> int:
        return self._t

    def _slot(self, symbol: str) -> int:
        slot = self._slots.get(symbol)
        if slot is None:
            slot = len(self._slots)
            self._slots[symbol] = slot
            self._state.grow(slot + 1)
            cap = self._state.capacity
            if self._price.shape[0] < cap:
                self._price = _grown(self._price, cap, np.nan)
                self._age = _grown(self._age, cap, 0)
                self._real = _grown(self._real, cap, False)
        return slot

    def _read(self, prices: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """Validate this bar's prices; return their slots (growing the state) and values."""
        slots = np.empty(len(prices), np.int64)
        values = np.empty(len(prices))
        for i, (sym, value) in enumerate(prices.items()):
            p = float(value)
            if math.isinf(p) or p <= 0:
                raise BadPriceError("price must be positive and finite", source="update",
                                    row=self._t, field=sym, value=p)
            slots[i], values[i] = self._slot(sym), p
        return slots, values

    def _apply_prices(self, prices: Mapping[str, float]) -> tuple[int, int]:
        """Write this bar's prices; return (real bars, carried-forward bars)."""
        slots, values = self._read(prices)
        n = self._state.n
        seen = np.zeros(n, dtype=bool)
        seen[slots] = True
        self._price[slots] = values
        self._real[:] = False
        self._real[slots] = np.isfinite(values)
        self._age[:n] += 1
        self._age[self._real] = 0
        carried = ~seen & np.isfinite(self._price[:n])
        if self.fill_limit_bars is not None:
            expired = carried & (self._age[:n] > self.fill_limit_bars)
            self._price[:n][expired] = np.nan
            carried &= ~expired
        return int(self._real.sum()), int(carried.sum())

    def update(self, timestamp: object, prices: Mapping[str, float]) -> dict[str, object]:
        """Advance by one bar and return its scan row (same keys as the batch columns)."""
        ts = pd.Timestamp(timestamp)
        if self._last_ts is not None and ts <= self._last_ts:
            raise BadInputError("timestamps must increase", source="update", row=self._t,
                                field="timestamp", value=str(ts))
        real, carried = self._apply_prices(prices)
        n = self._state.n
        live = real + carried
        gap = live > 0 and carried / live > self.config.gap_fraction
        self._state.step(self._t, self._price, self._out)
        row = self._row(ts, gap, n)
        self._t += 1
        self._last_ts = ts
        return row

    def _row(self, ts: pd.Timestamp, gap: bool, n: int) -> dict[str, object]:
        """The scan row as a plain dict (no pandas on the per-bar path)."""
        out = self._out
        cfg = self.config
        row: dict[str, object] = {
            "timestamp": ts,
            "scan_number": self._t,
            "n_assets": int(np.isfinite(self._price[:n]).sum()),
            "data_gap": bool(gap),
        }
        for k, w in enumerate(cfg.windows):
            base = k * nb.N_OUT
            row[f"v{w}_lambda_max"] = float(out[base + nb.OUT_LAMBDA])
            row[f"v{w}_lambda_max_velocity"] = float(out[base + nb.OUT_VELOCITY])
            row[f"v{w}_n_assets"] = int(out[base + nb.OUT_N_ACTIVE])
        first, last = cfg.windows[0], cfg.windows[-1]
        row["vel_div"] = (row[f"v{first}_lambda_max_velocity"]  # type: ignore[operator]
                          - row[f"v{last}_lambda_max_velocity"])
        for w in cfg.instability_windows:
            k = cfg.windows.index(w)
            row[f"instability_{w}"] = float(out[k * nb.N_OUT + nb.OUT_INSTABILITY])
        for sym, slot in self._slots.items():
            row[sym] = float(self._price[slot]) if self._real[slot] else math.nan
        return row


def _grown(arr: np.ndarray, cap: int, fill: object) -> np.ndarray:
    """Return ``arr`` copied into a length-``cap`` array padded with ``fill``."""
    out = np.full(cap, fill, dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out
