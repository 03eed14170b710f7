"""Order-book features (Bible §9): imbalance, persistence, withdrawal, depth quality, fill odds.

Pure maths on book summaries and trade prints; no I/O but the recorded-features parquet helpers
at the end. The OB service and ``dolphin obf replay`` drive the same :class:`ObfBank`: each
synced book is summarised by :func:`book_row` (mid, notional depth within ``band_bps`` of mid,
best-level quantities, a crossed flag), trades and liquidations are fed as they arrive, and one
:meth:`ObfBank.cycle` (every ~500 ms, Bible §16.2) computes every asset's features at once from
per-asset numpy rings: no Python loop over assets does numeric work (the service's budget is
10 ms for 400 assets, DESIGN.md "Performance").

Definitions, units and the choices where the Bible is silent: docs/obf.md.

The engine's OB layout (``alpha.layout.OB_*``) lives above this package (layering, STYLE.md
§1), so its column order is mirrored here (``ENGINE_ASSET_COLS``, ``ENGINE_MACRO_COLS``) and a
test checks the two agree.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from dolphin.core.errors import (
    ConfigError,
    DataError,
    DuplicateTimestampError,
    MissingColumnError,
    UnsortedTimestampError,
)
from dolphin.core.io import read_parquet

if TYPE_CHECKING:
    import pandas as pd

OBF_FEATURES = ("imbalance", "imbalance_ma5", "imbalance_persistence", "withdrawal_velocity",
                "depth_quality", "fill_probability")
OBF_MACRO = ("cascade_count", "regime_signal", "market_multiplier")
F_IMBALANCE, F_MA5, F_PERSISTENCE, F_WITHDRAWAL, F_DEPTH_QUALITY, F_FILL_PROB = range(6)
M_CASCADE, M_REGIME, M_MARKET_MULT = range(3)

#: book_row columns: mid, bid/ask notional in the band, best bid/ask qty, crossed flag.
BOOK_COLS = 6
B_MID, B_BID_DEPTH, B_ASK_DEPTH, B_BID_QTY, B_ASK_QTY, B_CROSSED = range(BOOK_COLS)

#: OBF_FEATURES columns in the engine's per-asset order (alpha.layout OB_IMBALANCE,
#: OB_PERSISTENCE, OB_WITHDRAWAL, OB_DEPTH_QUALITY, OB_FILL_PROB): the engine's "imbalance" is
#: imbalance_ma5 (Bible §4.3).
ENGINE_ASSET_COLS = (F_MA5, F_PERSISTENCE, F_WITHDRAWAL, F_DEPTH_QUALITY, F_FILL_PROB)
#: OBF_MACRO columns in the engine's macro order (OB_CASCADE, OB_REGIME, OB_MARKET_MULT).
ENGINE_MACRO_COLS = (M_CASCADE, M_REGIME, M_MARKET_MULT)


def _frozen(values: Sequence[float]) -> np.ndarray:
    a = np.array(values, dtype=np.float64)
    a.setflags(write=False)
    return a


#: "No opinion" per asset, engine layout: imbalance_ma5 0, persistence 0, withdrawal 0,
#: depth_quality 1, fill_probability 0.5.
NEUTRAL_ASSET_ROW = _frozen((0.0, 0.0, 0.0, 1.0, 0.5))
#: "No opinion" market-wide, OBF_MACRO (= engine) order: no cascade, neutral regime, ×1.
NEUTRAL_MACRO = _frozen((0.0, 0.0, 1.0))

_NS = 1_000_000_000


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True, kw_only=True)
class ObfParams:
    """Every window and threshold of the OB features (defaults: docs/obf.md)."""

    band_bps: float = 50.0  # depth band around mid (imbalance, depth quality, withdrawal)
    ma_len: int = 5  # valid cycles in imbalance_ma5
    persistence_len: int = 10  # valid cycles the persistence fraction looks at
    withdrawal_lookback: int = 10  # valid cycles back for withdrawal_velocity
    withdrawal_threshold: float = -0.20  # "book thinning" (Bible §7.2 exit rule)
    depth_window: int = 300  # valid cycles in the depth_quality baseline mean
    depth_min_cycles: int = 20  # depth_quality is 1.0 until this many valid cycles
    fill_horizon_s: float = 60.0  # horizon H of fill_probability
    flow_tau_s: float = 30.0  # time constant of the taker-flow rate estimate
    flow_warmup_s: float = 10.0  # observation before fill_probability leaves 0.5
    cascade_window_s: float = 60.0  # liquidation / one-sided-flow window
    cascade_buckets: int = 12  # the window's time buckets (60 s / 12 = 5 s resolution)
    cascade_liquidations: int = 3  # liquidations in the window that make a cascade
    cascade_one_sided: float = 0.7  # |buy - sell| / (buy + sell) of taker notional
    cascade_flow_depth: float = 0.25  # taker notional in the window / band depth, at least
    stress_share: float = 0.25  # share of assets thinning past the threshold => stress
    stress_cascades: int = 2  # assets in cascade => stress
    calm_max_imbalance: float = 0.15  # calm needs median |imbalance_ma5| at most this
    market_gain: float = 0.5  # OB-3: 1 + gain * direction * mean imbalance_ma5
    market_mult_min: float = 0.85
    market_mult_max: float = 1.20

    def __post_init__(self) -> None:
        positive = ("band_bps", "ma_len", "persistence_len", "withdrawal_lookback",
                    "depth_window", "depth_min_cycles", "fill_horizon_s", "flow_tau_s",
                    "flow_warmup_s", "cascade_window_s", "cascade_buckets",
                    "cascade_liquidations", "stress_cascades", "market_gain")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not math.isfinite(value):
                raise ConfigError(f"ObfParams.{f.name} must be a finite number, got {value!r}")
            if f.type == "int" and not isinstance(value, numbers.Integral):
                raise ConfigError(f"ObfParams.{f.name} must be an integer, got {value!r}")
            if f.name in positive and value <= 0:
                raise ConfigError(f"ObfParams.{f.name} must be > 0, got {value!r}")
        self._check_ranges()

    def _check_ranges(self) -> None:
        if self.withdrawal_lookback >= self.depth_window:
            raise ConfigError("ObfParams.withdrawal_lookback must be < depth_window (one ring "
                              f"holds both), got {self.withdrawal_lookback} >= {self.depth_window}")
        if self.depth_min_cycles > self.depth_window:
            raise ConfigError("ObfParams.depth_min_cycles must be <= depth_window")
        if not -1.0 < self.withdrawal_threshold < 0.0:
            raise ConfigError("ObfParams.withdrawal_threshold must be in (-1, 0)")
        for name in ("cascade_one_sided", "stress_share", "calm_max_imbalance"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"ObfParams.{name} must be in [0, 1]")
        if self.cascade_flow_depth < 0:
            raise ConfigError("ObfParams.cascade_flow_depth must be >= 0")
        if not 0.0 < self.market_mult_min <= 1.0 <= self.market_mult_max:
            raise ConfigError("ObfParams needs 0 < market_mult_min <= 1 <= market_mult_max")

    @property
    def id(self) -> str:
        """SHA-256 of the parameters' canonical JSON (a cache key for recorded features)."""
        text = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- one book


def book_row(bids: np.ndarray, asks: np.ndarray, band_bps: float) -> np.ndarray:
    """Return the ``(BOOK_COLS,)`` float64 summary of one book from best-first levels.

    ``bids``/``asks`` are float ``(k, 2)`` ``[price, qty]`` rows, best first. Columns: mid,
    bid_depth and ask_depth (sum of price × qty, USDT, over the levels within ``band_bps`` of
    mid: bids at or above ``mid·(1 − band)``, asks at or below ``mid·(1 + band)``), best bid qty,
    best ask qty, crossed (1.0 when best ask <= best bid). An empty side gives an all-NaN row.
    """
    out = np.empty(BOOK_COLS)
    _book_row_nb(_levels(bids), _levels(asks), float(band_bps) * 1e-4, out)
    return out


def _levels(x: np.ndarray) -> np.ndarray:
    if isinstance(x, np.ndarray) and x.dtype == np.float64 and x.ndim == 2:
        return x
    return np.ascontiguousarray(x, dtype=np.float64).reshape(-1, 2)


@njit(cache=True)
def _book_row_nb(bids, asks, band, out):
    """Kernel of :func:`book_row` (a service calls it for every book every cycle)."""
    if bids.shape[0] == 0 or asks.shape[0] == 0:
        out[:] = np.nan
        return
    best_bid, best_ask = bids[0, 0], asks[0, 0]
    mid = 0.5 * (best_bid + best_ask)
    lo, hi = mid * (1.0 - band), mid * (1.0 + band)
    bid_depth = 0.0
    for i in range(bids.shape[0]):
        if bids[i, 0] >= lo:
            bid_depth += bids[i, 0] * bids[i, 1]
    ask_depth = 0.0
    for i in range(asks.shape[0]):
        if asks[i, 0] <= hi:
            ask_depth += asks[i, 0] * asks[i, 1]
    out[B_MID] = mid
    out[B_BID_DEPTH] = bid_depth
    out[B_ASK_DEPTH] = ask_depth
    out[B_BID_QTY] = bids[0, 1]
    out[B_ASK_QTY] = asks[0, 1]
    out[B_CROSSED] = 1.0 if best_ask <= best_bid else 0.0


# --------------------------------------------------------------------------- one cycle


@dataclass(frozen=True, eq=False)
class ObfCycle:
    """Every asset's features at one cycle time, and the market-wide (macro) ones.

    Compared by identity (arrays have no single truth value).
    """

    ts_ns: int
    symbols: tuple[str, ...]
    per_asset: np.ndarray  # (n, 6) float64, OBF_FEATURES order, NaN where not valid
    valid: np.ndarray  # (n,) bool
    macro: np.ndarray  # (3,) float64, OBF_MACRO order

    @cached_property
    def _position(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.symbols)}

    def engine_rows(self, assets: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(per_asset (len(assets), 5), macro (3,))`` in the engine's layout.

        An asset absent from the cycle or not valid in it gets ``NEUTRAL_ASSET_ROW``.
        """
        pos = np.array([self._position.get(a, -1) for a in assets], dtype=np.int64)
        out = np.tile(NEUTRAL_ASSET_ROW, (len(pos), 1))
        if len(pos):
            known = pos >= 0
            take = np.zeros(len(pos), dtype=bool)
            take[known] = self.valid[pos[known]]
            out[take] = self.per_asset[pos[take]][:, ENGINE_ASSET_COLS]
        return out, self.macro[list(ENGINE_MACRO_COLS)].copy()


# --------------------------------------------------------------------------- many assets


class ObfBank:
    """Rolling OB state of many assets; one :meth:`cycle` computes all features vectorised.

    Per asset (one row of every state array, a "slot"): rings of the last valid cycles'
    imbalance and band depth, an exponentially weighted taker-flow sum for the fill probability,
    and time buckets of taker notional and liquidations for the cascade test. ``direction`` is
    the entry side: -1 (short: a maker sell at the best ask, filled by aggressive buys, and
    ask-heavy books confirm it) or +1 (long).
    """

    def __init__(self, params: ObfParams | None = None, *, direction: int = -1) -> None:
        if direction not in (-1, 1):
            raise ConfigError(f"ObfBank direction must be -1 or +1, got {direction!r}")
        self.params = params = ObfParams() if params is None else params
        self.direction = direction
        self._imb_len = max(params.ma_len, params.persistence_len)
        self._bucket_ns = max(int(params.cascade_window_s * _NS) // params.cascade_buckets, 1)
        self._slot: dict[str, int] = {}
        self._free: list[int] = []
        self._cap = 0
        self.symbols: tuple[str, ...] = ()
        self._order = np.zeros(0, dtype=np.int64)  # slots in symbol order
        self._grow(16)

    # ---- the asset set

    def add(self, symbol: str) -> None:
        """Start tracking ``symbol`` with a fresh state; nothing when it is tracked already."""
        if symbol in self._slot:
            return
        if not self._free:
            self._grow(2 * self._cap)
        slot = self._free.pop()
        self._reset(slot)
        self._slot[symbol] = slot
        self._reorder()

    def remove(self, symbol: str) -> None:
        """Stop tracking ``symbol`` and drop its history; nothing when it is not tracked."""
        slot = self._slot.pop(symbol, None)
        if slot is not None:
            self._free.append(slot)
            self._reorder()

    def _reorder(self) -> None:
        self.symbols = tuple(sorted(self._slot))
        self._order = np.array([self._slot[s] for s in self.symbols], dtype=np.int64)

    def _grow(self, cap: int) -> None:
        p, old = self.params, self._cap
        shapes = {
            "_imb": ((cap, self._imb_len), 0.0), "_depth": ((cap, p.depth_window), 0.0),
            "_n": ((cap,), 0), "_flow": ((cap,), 0.0), "_flow_ts": ((cap,), 0),
            "_seen_ns": ((cap,), -1), "_traded": ((cap,), False),
            "_bk_epoch": ((cap, p.cascade_buckets), -1), "_bk_buy": ((cap, p.cascade_buckets), 0.0),
            "_bk_sell": ((cap, p.cascade_buckets), 0.0), "_bk_liq": ((cap, p.cascade_buckets), 0),
        }
        for name, (shape, fill) in shapes.items():
            new = np.full(shape, fill, dtype=np.asarray(fill).dtype)
            if old:
                new[:old] = getattr(self, name)
            setattr(self, name, new)
        self._free.extend(range(cap - 1, old - 1, -1))
        self._cap = cap

    def _reset(self, slot: int) -> None:
        for name in ("_imb", "_depth", "_n", "_flow", "_flow_ts", "_traded", "_bk_buy",
                     "_bk_sell", "_bk_liq"):
            getattr(self, name)[slot] = 0
        self._seen_ns[slot] = -1
        self._bk_epoch[slot] = -1

    def _index(self, symbol: str) -> int:
        slot = self._slot.get(symbol)
        if slot is None:
            self.add(symbol)
            slot = self._slot[symbol]
        return slot

    # ---- trade flow

    def on_trade(self, symbol: str, ts_ns: int, price: float, qty: float,
                 buyer_is_maker: bool) -> None:
        """Take one trade print (adds an unknown ``symbol``).

        ``buyer_is_maker`` False is an aggressive buy (it lifts asks), True an aggressive sell.
        """
        i = self._index(symbol)
        self._seen(i, ts_ns)
        self._traded[i] = True
        if buyer_is_maker == (self.direction > 0):  # the taker hits the entry side
            ref = int(self._flow_ts[i])
            if ts_ns >= ref:
                self._flow[i] = self._flow[i] * self._decay(ts_ns - ref) + qty
                self._flow_ts[i] = ts_ns
            else:  # a late print: weighted by its age at the current reference time
                self._flow[i] += qty * self._decay(ref - ts_ns)
        slot = self._bucket(i, ts_ns)
        if slot >= 0:
            book = self._bk_sell if buyer_is_maker else self._bk_buy
            book[i, slot] += price * qty

    def on_liquidation(self, symbol: str, ts_ns: int, side: str, qty: float,
                       price: float) -> None:
        """Take one forceOrder liquidation (either side counts; adds an unknown ``symbol``)."""
        i = self._index(symbol)
        self._seen(i, ts_ns)
        slot = self._bucket(i, ts_ns)
        if slot >= 0:
            self._bk_liq[i, slot] += 1

    def _decay(self, dt_ns: int) -> float:
        return math.exp(-dt_ns / (self.params.flow_tau_s * _NS))

    def _seen(self, i: int, ts_ns: int) -> None:
        if self._seen_ns[i] < 0 or ts_ns < self._seen_ns[i]:
            self._seen_ns[i] = ts_ns

    def _bucket(self, i: int, ts_ns: int) -> int:
        """Return the bucket slot of ``ts_ns`` for asset ``i`` (cleared when it is reused), or
        -1 when the time is older than the bucket the slot now holds."""
        b = ts_ns // self._bucket_ns
        slot = b % self.params.cascade_buckets
        held = self._bk_epoch[i, slot]
        if held == b:
            return slot
        if held > b:
            return -1
        self._bk_epoch[i, slot] = b
        self._bk_buy[i, slot] = self._bk_sell[i, slot] = 0.0
        self._bk_liq[i, slot] = 0
        return slot

    # ---- the cycle

    def cycle(self, ts_ns: int, rows: Mapping[str, np.ndarray]) -> ObfCycle:
        """Compute every asset's features at ``ts_ns`` from this cycle's book rows.

        ``rows`` maps a symbol to its :func:`book_row` for every symbol whose book is synced
        now (an unknown symbol is added). A tracked symbol without a row, or whose row is
        crossed, not finite, or has no depth in the band, keeps its history and gets a NaN
        feature row (``valid`` False).
        """
        slots = np.array([self._index(s) for s in rows], dtype=np.int64)
        book = np.array(list(rows.values()), dtype=np.float64).reshape(len(slots), BOOK_COLS)
        seen = self._seen_ns[slots]
        self._seen_ns[slots] = np.where((seen < 0) | (seen > ts_ns), ts_ns, seen)
        good = (np.isfinite(book).all(axis=1) & (book[:, B_CROSSED] == 0.0)
                & (book[:, B_BID_DEPTH] + book[:, B_ASK_DEPTH] > 0.0)
                & (book[:, B_BID_QTY] > 0.0) & (book[:, B_ASK_QTY] > 0.0))
        v, book = slots[good], book[good]
        feats, depth, has_dq, has_wv = self._asset_features(ts_ns, v, book)
        n = len(self.symbols)
        pos = np.full(self._cap, -1, dtype=np.int64)
        pos[self._order] = np.arange(n)
        at = pos[v]
        per_asset = np.full((n, len(OBF_FEATURES)), np.nan)
        per_asset[at] = feats
        valid, dq_ready, wv_ready = (np.zeros(n, dtype=bool) for _ in range(3))
        valid[at], dq_ready[at], wv_ready[at] = True, has_dq, has_wv
        band_depth = np.full(n, np.nan)
        band_depth[at] = depth
        macro = self._macro(ts_ns, per_asset, valid, band_depth, dq_ready, wv_ready)
        return ObfCycle(int(ts_ns), self.symbols, per_asset, valid, macro)

    def _push(self, v: np.ndarray, imb: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Append this cycle's imbalance and depth to the rings of slots ``v``; return counts."""
        n = self._n[v]
        self._imb[v, n % self._imb_len] = imb
        self._depth[v, n % self.params.depth_window] = depth
        n = n + 1
        self._n[v] = n
        return n

    def _last(self, v: np.ndarray, n: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The last ``k`` imbalances of slots ``v`` (newest first) and which of them exist."""
        j = np.arange(k)
        vals = self._imb[v[:, None], (n[:, None] - 1 - j) % self._imb_len]
        return vals, j < n[:, None]

    def _asset_features(self, ts_ns: int, v: np.ndarray, book: np.ndarray):
        p = self.params
        bid, ask = book[:, B_BID_DEPTH], book[:, B_ASK_DEPTH]
        depth = bid + ask
        imb = (bid - ask) / depth
        n = self._push(v, imb, depth)
        vals, have = self._last(v, n, p.ma_len)
        ma = np.where(have, vals, 0.0).sum(axis=1) / np.minimum(n, p.ma_len)
        vals, have = self._last(v, n, p.persistence_len)
        same = have & (np.sign(vals) == np.sign(ma)[:, None])
        pers = np.where(ma != 0.0, same.sum(axis=1) / np.minimum(n, p.persistence_len), 0.0)
        has_wv = n > p.withdrawal_lookback
        then = self._depth[v, (n - 1 - p.withdrawal_lookback) % p.depth_window]
        wv = np.where(has_wv, depth / np.where(has_wv, then, 1.0) - 1.0, 0.0)
        has_dq = n >= p.depth_min_cycles
        base = self._depth[v].sum(axis=1) / np.minimum(n, p.depth_window)
        dq = np.where(has_dq, depth / base, 1.0)
        queue = book[:, B_ASK_QTY] if self.direction < 0 else book[:, B_BID_QTY]
        fill = self._fill_probability(ts_ns, v, queue)
        return np.column_stack((imb, ma, pers, wv, dq, fill)), depth, has_dq, has_wv

    def _fill_probability(self, ts_ns: int, v: np.ndarray, queue: np.ndarray) -> np.ndarray:
        """1 − exp(−rate·H / queue); 0.5 (no opinion) before ``flow_warmup_s`` of observation
        or while no trade of the asset has been seen."""
        p = self.params
        tau = p.flow_tau_s
        age = np.maximum(ts_ns - self._flow_ts[v], 0) / _NS
        ew = self._flow[v] * np.exp(-age / tau)
        observed = (ts_ns - self._seen_ns[v]) / _NS
        ready = self._traded[v] & (observed >= p.flow_warmup_s)
        # Bias correction of an EW sum that started `observed` seconds ago: its weights sum to
        # tau·(1 − exp(−observed/tau)) seconds, so ew / that is a rate (qty per second).
        span = tau * -np.expm1(-np.maximum(observed, p.flow_warmup_s) / tau)
        rate = ew / span
        return np.where(ready, -np.expm1(-rate * p.fill_horizon_s / queue), 0.5)

    def _macro(self, ts_ns: int, per_asset: np.ndarray, valid: np.ndarray,
               band_depth: np.ndarray, dq_ready: np.ndarray, wv_ready: np.ndarray) -> np.ndarray:
        """cascade_count, regime_signal, market_multiplier from symbol-order arrays.

        Stress and calm look only at assets with the history their test needs (``wv_ready``:
        a withdrawal lookback; ``dq_ready``: a depth baseline), so a warming-up bank is neutral.
        """
        p = self.params
        cascades = int(self._cascades(ts_ns, per_asset[:, F_WITHDRAWAL], band_depth).sum())
        out = NEUTRAL_MACRO.copy()
        out[M_CASCADE] = cascades
        thinning = per_asset[wv_ready, F_WITHDRAWAL] < p.withdrawal_threshold
        stress = cascades >= p.stress_cascades or (
            thinning.size > 0 and thinning.mean() >= p.stress_share)
        calm = (cascades == 0 and dq_ready.any()
                and np.median(per_asset[dq_ready, F_DEPTH_QUALITY]) >= 1.0
                and np.median(np.abs(per_asset[valid, F_MA5])) <= p.calm_max_imbalance)
        out[M_REGIME] = 1.0 if stress else (-1.0 if calm else 0.0)
        if valid.any():
            mult = 1.0 + p.market_gain * self.direction * per_asset[valid, F_MA5].mean()
            out[M_MARKET_MULT] = min(max(mult, p.market_mult_min), p.market_mult_max)
        return out

    def _cascades(self, ts_ns: int, withdrawal: np.ndarray, band_depth: np.ndarray) -> np.ndarray:
        """Which assets (symbol order) are in a cascade at ``ts_ns``."""
        p = self.params
        o = self._order
        cur = ts_ns // self._bucket_ns
        epoch = self._bk_epoch[o]
        live = (epoch > cur - p.cascade_buckets) & (epoch <= cur)
        liq = np.where(live, self._bk_liq[o], 0).sum(axis=1)
        buy = np.where(live, self._bk_buy[o], 0.0).sum(axis=1)
        sell = np.where(live, self._bk_sell[o], 0.0).sum(axis=1)
        total = buy + sell
        with np.errstate(invalid="ignore", divide="ignore"):
            one_sided = np.abs(buy - sell) >= p.cascade_one_sided * total
            heavy = (total > 0.0) & (total >= p.cascade_flow_depth * band_depth)
        flow = one_sided & heavy & (withdrawal < p.withdrawal_threshold)  # NaN: no book, False
        return (liq >= p.cascade_liquidations) | flow


# --------------------------------------------------------------------------- recorded features

OB_FRAME_COLUMNS = ("ts_ns", "symbol", *OBF_FEATURES, *OBF_MACRO)
#: Allowed ranges per float column (NaN allowed in per-asset columns: unknown, read as neutral).
_RANGES = {
    "imbalance": (-1.0, 1.0), "imbalance_ma5": (-1.0, 1.0),
    "imbalance_persistence": (0.0, 1.0), "withdrawal_velocity": (-1.0, math.inf),
    "depth_quality": (0.0, math.inf), "fill_probability": (0.0, 1.0),
    "cascade_count": (0.0, math.inf), "regime_signal": (-1.0, 1.0),
    "market_multiplier": (0.0, math.inf),
}


def cycles_frame(cycles: Iterable[ObfCycle]) -> pd.DataFrame:
    """Return the recorded-features frame of ``cycles``: one row per asset of the bank per
    cycle, its six features NaN where the asset was not valid that cycle.

    The NaN row is kept on purpose: a reader (``backtest.ob_table``) then takes the asset as
    neutral for that bar, exactly as the live provider does for an asset that is not fresh,
    instead of falling back to an older valid row.
    """
    import pandas as pd

    ts, sym, feats, macro = [], [], [], []
    for c in cycles:
        k = len(c.symbols)
        ts.append(np.full(k, c.ts_ns, dtype=np.int64))
        sym.extend(c.symbols)
        feats.append(c.per_asset)
        macro.append(np.tile(c.macro, (k, 1)))
    data = np.vstack([*feats, np.zeros((0, len(OBF_FEATURES)))])
    mac = np.vstack([*macro, np.zeros((0, len(OBF_MACRO)))])
    cols: dict[str, object] = {
        "ts_ns": np.concatenate([*ts, np.zeros(0, np.int64)]),
        "symbol": pd.array(sym, dtype=object),
    }
    cols.update({name: data[:, i] for i, name in enumerate(OBF_FEATURES)})
    cols.update({name: mac[:, i] for i, name in enumerate(OBF_MACRO)})
    frame = pd.DataFrame(cols)
    return frame.sort_values(["ts_ns", "symbol"], kind="stable", ignore_index=True)


def validate_ob_features(frame: pd.DataFrame, source: str = "frame") -> pd.DataFrame:
    """Return ``frame``'s schema columns, typed (ts_ns int64, symbol str, the rest float64).

    Raises ``MissingColumnError``, ``DataError`` (wrong type, value out of range, macro not
    constant within a cycle), ``UnsortedTimestampError`` or ``DuplicateTimestampError``, each
    naming ``source`` and the column.
    """
    import pandas as pd

    for col in OB_FRAME_COLUMNS:
        if col not in frame.columns:
            raise MissingColumnError("recorded OB features need this column", source=source,
                                     field=col)
    ts = frame["ts_ns"]
    if not pd.api.types.is_integer_dtype(ts.dtype):
        raise DataError(f"must be int64 nanoseconds, got {ts.dtype}", source=source,
                        field="ts_ns")
    sym = frame["symbol"]
    if len(sym) and (pd.api.types.infer_dtype(sym, skipna=False) != "string"
                     or not (sym.str.len() > 0).all()):
        raise DataError("must be non-empty strings", source=source, field="symbol")
    cols: dict[str, object] = {"ts_ns": ts.to_numpy(np.int64),
                               "symbol": sym.astype(object).to_numpy()}
    for col in (*OBF_FEATURES, *OBF_MACRO):
        cols[col] = _float_column(frame[col], col, source, nan_ok=col in OBF_FEATURES)
    out = pd.DataFrame(cols)
    _check_order(out, source)
    _check_macro_constant(out, source)
    return out


def _float_column(series: pd.Series, col: str, source: str, *, nan_ok: bool) -> np.ndarray:
    import pandas as pd

    if not pd.api.types.is_float_dtype(series.dtype):
        raise DataError(f"must be float64, got {series.dtype}", source=source, field=col)
    x = series.to_numpy(np.float64)
    lo, hi = _RANGES[col]
    bad = np.isinf(x) | (x < lo) | (x > hi)
    if not nan_ok:
        bad |= np.isnan(x)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"value outside [{lo}, {hi}]{'' if nan_ok else ' or NaN'}",
                        source=source, row=row, field=col, value=float(x[row]))
    return x


def _check_order(frame: pd.DataFrame, source: str) -> None:
    ts = frame["ts_ns"].to_numpy()
    sym = frame["symbol"].to_numpy()
    same = ts[1:] == ts[:-1]
    back = (ts[1:] < ts[:-1]) | (same & (sym[1:] < sym[:-1]))
    if back.any():
        row = int(np.flatnonzero(back)[0]) + 1
        raise UnsortedTimestampError("rows must be sorted by ts_ns then symbol", source=source,
                                     row=row, field="ts_ns", value=int(ts[row]))
    dup = same & (sym[1:] == sym[:-1])
    if dup.any():
        row = int(np.flatnonzero(dup)[0]) + 1
        raise DuplicateTimestampError(f"symbol {sym[row]} appears twice at one ts_ns",
                                      source=source, row=row, field="ts_ns", value=int(ts[row]))


def _check_macro_constant(frame: pd.DataFrame, source: str) -> None:
    ts = frame["ts_ns"].to_numpy()
    same = ts[1:] == ts[:-1]
    for col in OBF_MACRO:
        x = frame[col].to_numpy()
        differs = same & (x[1:] != x[:-1])
        if differs.any():
            row = int(np.flatnonzero(differs)[0]) + 1
            raise DataError("macro value differs within one cycle (ts_ns)", source=source,
                            row=row, field=col, value=float(x[row]))


def write_ob_features(frame: pd.DataFrame, path: str | Path) -> Path:
    """Validate ``frame`` (sorting it by ts_ns, symbol first) and write it atomically."""
    from dolphin.core.io import atomic_write_parquet

    missing = [c for c in ("ts_ns", "symbol") if c not in frame.columns]
    if not missing:
        frame = frame.sort_values(["ts_ns", "symbol"], kind="stable", ignore_index=True)
    out = validate_ob_features(frame, str(path))
    return atomic_write_parquet(out, path)


def read_ob_features(path: str | Path) -> pd.DataFrame:
    """Read and validate a recorded-features parquet (schema: docs/obf.md).

    Raises ``DataError`` naming the file when it is missing or not a readable parquet, and the
    errors of :func:`validate_ob_features` naming the file and the column.
    """
    import pyarrow as pa

    path = Path(path)
    if not path.is_file():
        raise DataError("no such recorded OB features file", source=str(path))
    try:
        frame = read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise DataError(f"not a readable parquet file ({exc})", source=str(path)) from None
    return validate_ob_features(frame, str(path))
