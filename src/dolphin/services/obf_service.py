"""The OBF service: order books -> OB features every cycle -> shard maps, ``DOLPHIN_OB``, a file.

The live end of DESIGN.md "binance adapter -> book sync -> OBF service -> SHARD maps" (Bible §9,
§15.2–15.6, §16.2, §20). The owner feeds it books (``on_book`` with float levels, or
``on_order_book`` with a synced local book), trades and liquidations, and calls ``cycle`` at the
cadence (``DEFAULT_CADENCE_S``, 500 ms, §16.2). Each cycle runs ``features.obf.ObfBank.cycle``
over every known asset at once and hands the result to a background pusher; the cycle itself does
no I/O (§20.1 "fire-and-forget HZ push": the hot loop never blocks on the store).

Every §20.1 hardening item, each set in ``ObfServiceConfig``:

- **first flush delay**: nothing is published before ``warmup_s`` (60 s) of the injected clock
  have passed since ``start``; the bank still cycles, so its rolling windows are full by then;
- **crossed-book guard**: a book whose best ask <= best bid is discarded (counted in
  ``crossed``, logged as a warning): the asset has no row until a sound book arrives;
- **dark streak**: ``dark_streak_cycles`` consecutive cycles with no traded volume make an asset
  STALE_DATA (``dark``): counted, listed in the heartbeat and published with status ``dark``,
  which no reader takes as fresh. One trade ends it;
- **stall watchdog**: no book update of any asset for ``stall_timeout_s`` degrades the service
  (and calls ``on_stall`` once, e.g. to restart the feed); it recovers when updates return. An
  asset whose own book is older than that (or whose local book lost sync) has no row;
- **circuit breaker** (§15.6): see ``FeaturePusher``; while it is not CLOSED the service is
  DEGRADED and the JSON file is the source of truth;
- **dynamic asset discovery**: a symbol seen for the first time joins the bank; ``remove`` (or
  the attached client dropping it from its symbol set) takes it out and deletes its store key;
- **per-timestamp macro map**: ``macro_by_ts`` keeps the macro of the last ``macro_history``
  cycles keyed by cycle time (int ns), so a reader of bar ``t`` takes the macro as of ``t``.

Store layout (every value is the ``store.schema`` envelope stamped with the CYCLE time, i.e. when
the values became known; readers measure age from it):

- ``DOLPHIN_FEATURES_SHARD_xx["ob_<SYMBOL>"]`` (feature ``OB_FEATURE`` = "ob" through
  ``store.features.feature_key``, shard by ``shard_index``): one record per asset,
  ``{"symbol", "ts_ns", "status", <the six OBF_FEATURES>}``; ``status`` is ``"ok"``,
  ``"no_book"`` (no sound synced book this cycle: features null) or ``"dark"`` (STALE_DATA).
  Only ``"ok"`` is fresh. A NaN feature is null.
- ``DOLPHIN_OB["latest_macro"]``: ``{"ts_ns", "cascade_count", "regime_signal",
  "market_multiplier"}`` of the newest cycle;
- ``DOLPHIN_OB["macro_by_ts"]``: ``{"<ts_ns>": [cascade_count, regime_signal,
  market_multiplier], ...}``, the last ``macro_history`` cycles (bounded: one value, rewritten);
- ``DOLPHIN_OB["index"]``: ``{"ts_ns", "cycle", "symbols": [...], "stale": {symbol: status},
  "removed": [...]}``, the per-cycle index of the assets published.

The JSON file (``file_path``, Bible's ``ob_cache/latest_ob_features.json``), written atomically
(temp + fsync + rename, ``core.io``) after every failed push and on every snapshot while the
breaker is not CLOSED (also while CLOSED with ``file_when_closed``): the same envelope, whose data
is ``{"ts_ns", "cycle", "written_ns", "breaker", "macro": <latest_macro>, "macro_by_ts": {...},
"assets": {symbol: <asset record>}, "removed": [...]}``. It always holds every asset's latest
features, so nothing is lost while the store is down (``ob_provider.read_ob_file`` reads it).

Cost (DESIGN.md budget: one cycle for 400 assets <= 10 ms): a cycle is the band summaries of the
books that changed, one vectorised bank cycle and an enqueue. A local book is summarised by its
own ``band_row`` (``adapters.binance.book.OrderBook.band_row``): ``features.obf.book_row`` of
every level in the band, read in one compiled pass over the book's dense list of live levels
without sorting them, about 4 µs on a BTCUSDT book in cache (~1,250 levels per side within
50 bps), where reading the sorted levels and calling ``book_row`` costs ~0.7 ms. It counts
exactly the levels ``book_row`` counts, so its row is the one ``dolphin obf replay`` computes (the
depths to ~1e-15 relative: the same products added in another order), and live and recorded
features agree. Books fed as float levels cost about 3 µs each (``book_row``). A whole cycle of
400 deep books that all changed (``benchmarks/bench_obf.py``: copies of the captured BTCUSDT and
ETHUSDT books, ~3,000 levels a side, one core) takes ~5 ms p50 (p99 ~6 ms) on the development
machine: ~3.8 ms for the 400 ``band_row`` passes (bound by memory), ~0.8 ms for the bank cycle.
The pusher's work per snapshot, on its own thread, is ~2.4 ms with the embedded store up and
~1.8 ms for the fsynced file while the store is down; cycle and push together stay under 9 ms at
p99.

Threads: ``on_book``/``on_trade``/``on_liquidation``/``cycle`` are called from one thread (the
market-data loop; a local book passed to ``on_order_book`` is read at the next cycle, so it must
be the thread that mutates it). The pusher owns the store and the file on its own thread.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from dolphin.core.clock import Clock
from dolphin.core.errors import ConfigError, DataError
from dolphin.core.io import atomic_write_text
from dolphin.features.obf import (
    B_CROSSED,
    B_MID,
    OBF_FEATURES,
    OBF_MACRO,
    ObfBank,
    ObfCycle,
    ObfParams,
    book_row,
    read_ob_features,
    write_ob_features,
)
from dolphin.services.component import Component, ComponentState
from dolphin.store.features import ShardedFeatureStore, feature_key
from dolphin.store.ports import Store
from dolphin.store.schema import OB, encode_value, shard_index

_log = logging.getLogger(__name__)

DEFAULT_CADENCE_S = 0.5  # §16.2 "~500ms per cycle"
OB_FEATURE = "ob"  # shard key "ob_<SYMBOL>" (store.features.feature_key)
LATEST_MACRO = "latest_macro"
MACRO_BY_TS = "macro_by_ts"
OB_INDEX = "index"
FILE_NAME = "latest_ob_features.json"  # §15.6
STATUS_OK, STATUS_NO_BOOK, STATUS_DARK = "ok", "no_book", "dark"
#: The binance book's side indices (adapters.binance.book.BID/ASK) and its fixed-point scale
#: (adapters.binance.wire.FIXED_SCALE), repeated here because services import no adapter.
BID, ASK = 0, 1
BOOK_LIVE = 2  # adapters.binance.book.BookState.LIVE: in sync, every diff continued the last
TICKS_PER_UNIT = 10**8
_NS = 1_000_000_000
_LOG_FIRST = 5  # warnings per kind logged in full; later ones every _LOG_EVERY-th
_LOG_EVERY = 1000


@dataclass(frozen=True)
class ObfServiceConfig:
    """Every threshold of the service; the defaults are the Bible's where it gives one."""

    warmup_s: float = 60.0  # §20.1 first flush delay
    stall_timeout_s: float = 30.0  # §20.1 STALL_TIMEOUT (the Bible gives no value)
    dark_streak_cycles: int = 120  # §20.1 N (no value given): 60 s at 500 ms; 0 disables
    breaker_failures: int = 5  # §15.6 consecutive push failures that open the breaker
    backoff_s: float = 1.0  # first OPEN period; doubled after every failed probe ...
    backoff_max_s: float = 60.0  # ... up to this
    queue_size: int = 4  # snapshots waiting for the pusher; the oldest is dropped when full
    macro_history: int = 240  # cycles kept in the per-timestamp macro map (2 min)
    file_path: Path | None = None  # the §15.6 JSON fallback (None: no file)
    file_when_closed: bool = False  # also write the file while the breaker is CLOSED
    file_fsync: bool = True
    poll_s: float = 0.1  # pusher wake-up while idle, for the HALF-OPEN probe (real seconds)
    join_timeout_s: float = 2.0  # how long stop waits for the pusher thread

    def __post_init__(self) -> None:
        for name in ("warmup_s", "stall_timeout_s"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"obf: {name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("backoff_s", "backoff_max_s", "poll_s", "join_timeout_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"obf: {name} must be > 0, got {getattr(self, name)!r}")
        if self.backoff_max_s < self.backoff_s:
            raise ConfigError("obf: backoff_max_s must be >= backoff_s")
        for name in ("breaker_failures", "queue_size", "macro_history"):
            if getattr(self, name) < 1:
                raise ConfigError(f"obf: {name} must be >= 1, got {getattr(self, name)!r}")
        if self.dark_streak_cycles < 0:
            raise ConfigError("obf: dark_streak_cycles must be >= 0 (0 disables)")


class BookView(Protocol):
    """What the service reads of a local order book (``adapters.binance.book.OrderBook``)."""

    symbol: str
    state: int  # BOOK_LIVE when in sync

    def top(self) -> tuple[int, int, int, int]:
        """Return ``(bid_px, bid_qty, ask_px, ask_qty)`` in ticks; 0 for an empty side."""
        ...

    def band_row(self, band_bps: float) -> np.ndarray:
        """Return ``features.obf.book_row`` of every level within ``band_bps`` of mid, as a
        ``(BOOK_COLS,)`` float64 row (all NaN when a side is empty)."""
        ...


@dataclass(frozen=True, slots=True)
class ObfSnapshot:
    """One cycle as handed to the pusher: immutable, so the pusher thread may read it freely."""

    ts_ns: int
    cycle: int
    symbols: tuple[str, ...]
    per_asset: np.ndarray  # (n, 6) in OBF_FEATURES order
    status: tuple[str, ...]  # per symbol: STATUS_OK | STATUS_NO_BOOK | STATUS_DARK
    macro: np.ndarray  # (3,) in OBF_MACRO order
    macro_by_ts: tuple[tuple[int, tuple[float, ...]], ...]
    removed: tuple[str, ...] = ()


def asset_records(snap: ObfSnapshot) -> dict[str, dict[str, Any]]:
    """Return ``{symbol: asset record}`` of a snapshot (module docstring, shard values)."""
    out: dict[str, dict[str, Any]] = {}
    ts = snap.ts_ns
    for sym, st, vals in zip(snap.symbols, snap.status, snap.per_asset.tolist(), strict=True):
        rec: dict[str, Any] = {"symbol": sym, "ts_ns": ts, "status": st}
        rec.update(zip(OBF_FEATURES, vals, strict=True))
        out[sym] = rec
    return out


def macro_record(ts_ns: int, macro: Iterable[float]) -> dict[str, Any]:
    """Return the ``latest_macro`` payload of one cycle."""
    rec: dict[str, Any] = {"ts_ns": ts_ns}
    rec.update(zip(OBF_MACRO, (float(v) for v in macro), strict=True))
    return rec


def _macro_map(snap: ObfSnapshot) -> dict[str, list[float]]:
    return {str(ts): list(m) for ts, m in snap.macro_by_ts}


def _stale(snap: ObfSnapshot) -> dict[str, str]:
    return {s: st for s, st in zip(snap.symbols, snap.status, strict=True) if st != STATUS_OK}


class BreakerState(Enum):
    """The §15.6 circuit breaker of the store pushes."""

    CLOSED = "closed"  # pushing
    OPEN = "open"  # file-only until the backoff ends
    HALF_OPEN = "half_open"  # one probe push decides


@dataclass(slots=True)
class PushCounters:
    """What the pusher has done; every field goes into the service heartbeat."""

    submitted: int = 0
    dropped: int = 0  # superseded in the queue before the pusher took them
    pushes_ok: int = 0
    pushes_failed: int = 0
    opens: int = 0
    probes: int = 0
    probe_failures: int = 0
    closes: int = 0
    file_writes: int = 0
    file_failures: int = 0
    deleted: int = 0


class FeaturePusher:
    """Push snapshots to the store off the hot loop, behind a circuit breaker (§15.6, §20.1).

    ``submit`` only enqueues (never blocks: the queue keeps the newest ``queue_size``; a
    snapshot is the whole latest state, so a dropped one loses nothing but its own time). The
    worker pushes each snapshot; ``breaker_failures`` consecutive failures open the breaker:
    file-only mode, the latest snapshot kept as the backlog. After the backoff (``backoff_s``,
    doubled after every failed probe up to ``backoff_max_s``, measured on the injected clock's
    monotonic time) the next push is a HALF-OPEN probe of the latest state: success closes the
    breaker (that push is the backlog), failure reopens it. Without ``start`` nothing runs on
    its own: ``step``/``drain`` do the same work on the caller's thread (deterministic tests).
    """

    def __init__(self, store: Store, *, clock: Clock, config: ObfServiceConfig,
                 name: str = "obf") -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.name = name
        self.counters = PushCounters()
        self.state = BreakerState.CLOSED
        self.failures = 0  # consecutive
        self.backoff_s = config.backoff_s  # the next OPEN period
        self.open_until_ns = 0
        self.backlog: ObfSnapshot | None = None
        self.last_error: str | None = None
        self._deletes: set[str] = set()
        self._features: ShardedFeatureStore | None = None
        self._cond = threading.Condition()
        self._queue: deque[ObfSnapshot] = deque()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- producer side
    def submit(self, snap: ObfSnapshot) -> None:
        """Enqueue ``snap`` for the worker; drop the oldest waiting one when the queue is full."""
        with self._cond:
            if len(self._queue) >= self.config.queue_size:
                old = self._queue.popleft()
                self.counters.dropped += 1
                if old.removed:  # a removal must survive its snapshot being superseded
                    snap = replace(snap, removed=tuple(dict.fromkeys(old.removed + snap.removed)))
            self._queue.append(snap)
            self.counters.submitted += 1
            self._cond.notify()

    @property
    def pending(self) -> int:
        """Return how many snapshots wait for the worker."""
        with self._cond:
            return len(self._queue)

    # ---------------------------------------------------------------- worker side
    def step(self) -> bool:
        """Handle one queued snapshot, or a due HALF-OPEN probe; report whether work was done."""
        with self._cond:
            snap = self._queue.popleft() if self._queue else None
        if snap is None:
            if not self._probe_due():
                return False
            snap = self.backlog
        self._handle(snap)
        return True

    def drain(self) -> int:
        """Run ``step`` until there is nothing to do; return how many steps ran."""
        return sum(1 for _ in iter(self.step, False))

    def _probe_due(self) -> bool:
        return (self.state is BreakerState.OPEN and self.backlog is not None
                and self.clock.monotonic_ns() >= self.open_until_ns)

    def _handle(self, snap: ObfSnapshot) -> None:
        self._deletes = (self._deletes | set(snap.removed)) - set(snap.symbols)
        if self.state is BreakerState.OPEN:
            if self.clock.monotonic_ns() < self.open_until_ns:
                self.backlog = snap
                self._write_file(snap)
                return
            self.state = BreakerState.HALF_OPEN
            self.counters.probes += 1
        if self._push(snap):
            self._pushed(snap)
            return
        self.failures += 1
        self.backlog = snap
        self._write_file(snap)
        if self.state is BreakerState.HALF_OPEN:
            self.counters.probe_failures += 1
            self.backoff_s = min(self.backoff_s * 2.0, self.config.backoff_max_s)
            self._open()
        elif self.failures >= self.config.breaker_failures:
            self.counters.opens += 1
            self._open()

    def _pushed(self, snap: ObfSnapshot) -> None:
        if self.state is BreakerState.HALF_OPEN:
            self.counters.closes += 1
            _log.info("component=%s event=breaker_closed after_failures=%d", self.name,
                      self.failures)
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.backoff_s = self.config.backoff_s
        self.backlog = None
        if self.config.file_when_closed:
            self._write_file(snap)

    def _open(self) -> None:
        self.state = BreakerState.OPEN
        self.open_until_ns = self.clock.monotonic_ns() + round(self.backoff_s * _NS)
        _log.warning("component=%s event=breaker_open failures=%d backoff_s=%g last_error=%r "
                     "mode=file_only", self.name, self.failures, self.backoff_s, self.last_error)

    def _push(self, snap: ObfSnapshot) -> bool:
        """Write one snapshot to the store; report success (every failure is counted)."""
        try:
            if self._features is None:
                self._features = ShardedFeatureStore(self.store, clock=self.clock.now_ns)
            features, ts = self._features, snap.ts_ns
            by_shard: dict[int, tuple[str, dict[str, str]]] = {}
            for sym, rec in asset_records(snap).items():
                entries = by_shard.setdefault(shard_index(sym), (sym, {}))[1]
                entries[feature_key(sym, OB_FEATURE)] = encode_value(rec, ts)
            # one round trip per shard map, not one per asset (ShardedFeatureStore routing)
            for sym, entries in by_shard.values():
                features.shard(sym).raw.put_all(entries)
            for sym in sorted(self._deletes):
                features.delete(sym, OB_FEATURE)
                self.counters.deleted += 1
            self._deletes.clear()
            self.store.map(OB).put_all({
                LATEST_MACRO: encode_value(macro_record(ts, snap.macro), ts),
                MACRO_BY_TS: encode_value(_macro_map(snap), ts),
                OB_INDEX: encode_value({"ts_ns": ts, "cycle": snap.cycle,
                                        "symbols": list(snap.symbols), "stale": _stale(snap),
                                        "removed": list(snap.removed)}, ts),
            })
        except Exception as exc:  # a worker thread must survive any store failure
            self.counters.pushes_failed += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            if self.counters.pushes_failed <= _LOG_FIRST:
                _log.warning("component=%s event=push_failed error=%s", self.name,
                             self.last_error)
            return False
        self.counters.pushes_ok += 1
        return True

    def file_payload(self, snap: ObfSnapshot) -> dict[str, Any]:
        """Return the data of the JSON fallback file for ``snap`` (module docstring)."""
        return {"ts_ns": snap.ts_ns, "cycle": snap.cycle, "written_ns": self.clock.now_ns(),
                "breaker": self.state.name, "macro": macro_record(snap.ts_ns, snap.macro),
                "macro_by_ts": _macro_map(snap), "assets": asset_records(snap),
                "removed": sorted(self._deletes)}

    def _write_file(self, snap: ObfSnapshot) -> None:
        path = self.config.file_path
        if path is None:
            return
        try:
            text = encode_value(self.file_payload(snap), snap.ts_ns)
            atomic_write_text(path, text, fsync=self.config.file_fsync)
        except Exception as exc:  # disk full, folder gone: count, keep pushing
            self.counters.file_failures += 1
            if self.counters.file_failures <= _LOG_FIRST:
                _log.warning("component=%s event=file_failed path=%s error=%r", self.name, path,
                             exc)
            return
        self.counters.file_writes += 1

    # ---------------------------------------------------------------- thread
    def start(self) -> None:
        """Run the worker on a daemon thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-pusher",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> bool:
        """Let the worker push what is queued and end; report whether it ended in time.

        A worker stuck in a store call that never returns is left behind (a daemon thread):
        stopping must not hang on the store either.
        """
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread = self._thread
        if thread is None:
            return True
        thread.join(self.config.join_timeout_s)
        if thread.is_alive():
            _log.warning("component=%s event=pusher_stuck join_timeout_s=%g", self.name,
                         self.config.join_timeout_s)
            return False
        return True

    @property
    def alive(self) -> bool:
        """Whether the worker thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping and not self._probe_due():
                    self._cond.wait(self.config.poll_s)
                if self._stopping and not self._queue:
                    return
            try:
                self.step()
            except Exception:  # never let the worker die: the hot loop relies on it
                _log.exception("component=%s event=pusher_error", self.name)


# ==================================================================== recorder
class ObfRecorder:
    """Record OB feature rows to parquet in the contract's schema, for replays and backtests.

    One row per asset of the bank per cycle: ``ts_ns`` int64 (the cycle time), ``symbol``, the
    six ``OBF_FEATURES`` and the three ``OBF_MACRO`` (repeated on every row of the cycle),
    sorted by ``ts_ns`` then ``symbol`` (``features.obf.write_ob_features`` validates and writes
    atomically). An asset that is not fresh in a cycle (no sound book, or dark) gets a row of
    NaN features: the newest knowledge about it is "not valid", which the backtest reader
    (``backtest.ob_table``) and the live provider both read as neutral, rather than leaving the
    reader to fall back on an older row. Every ``cycles_per_part`` cycles the buffer becomes
    ``part-NNNNNN.parquet``; ``close`` writes the rest and ``ob_features.parquet`` (all parts
    in one file). A failed write keeps its rows for the next attempt.
    """

    def __init__(self, directory: str | Path, *, cycles_per_part: int = 120) -> None:
        if cycles_per_part < 1:
            raise ConfigError(f"obf recorder: cycles_per_part must be >= 1, got {cycles_per_part}")
        self.directory = Path(directory)
        self.cycles_per_part = cycles_per_part
        self.parts = 0
        self._buf: list[tuple[int, tuple[str, ...], np.ndarray, np.ndarray]] = []

    def open(self) -> None:
        """Create the directory; refuse one that already holds parts."""
        if self.directory.is_dir() and any(self.directory.glob("part-*.parquet")):
            raise ConfigError(f"recording directory already holds a session: {self.directory}")
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def buffered(self) -> int:
        """Return how many cycles wait for the next part."""
        return len(self._buf)

    def record(self, ts_ns: int, symbols: tuple[str, ...], per_asset: np.ndarray,
               fresh: np.ndarray, macro: np.ndarray) -> bool:
        """Buffer one cycle (features of non-``fresh`` assets become NaN); report a write."""
        rows = np.array(per_asset, dtype=np.float64)  # a copy: NaN-ed below
        rows[~np.asarray(fresh, dtype=bool)] = np.nan
        self._buf.append((int(ts_ns), tuple(symbols), rows, np.array(macro, dtype=np.float64)))
        if len(self._buf) % self.cycles_per_part:
            return False
        self.flush()
        return True

    def frame(self) -> pd.DataFrame:
        """Return the buffered cycles as one frame in the recorded schema."""
        counts = [len(s) for _, s, _, _ in self._buf]
        feats = np.vstack([np.empty((0, len(OBF_FEATURES))), *(r for *_, r, _ in self._buf)])
        macro = np.repeat(np.vstack([np.empty((0, len(OBF_MACRO))),
                                     *(m[None, :] for *_, m in self._buf)]), counts, axis=0)
        cols: dict[str, Any] = {
            "ts_ns": np.repeat(np.array([t for t, *_ in self._buf], dtype=np.int64), counts),
            "symbol": list(itertools.chain.from_iterable(s for _, s, _, _ in self._buf)),
        }
        cols.update({f: feats[:, i] for i, f in enumerate(OBF_FEATURES)})
        cols.update({m: macro[:, j] for j, m in enumerate(OBF_MACRO)})
        return pd.DataFrame(cols)

    def discard(self) -> int:
        """Drop the buffered cycles; return how many."""
        n, self._buf = len(self._buf), []
        return n

    def flush(self) -> None:
        """Write the buffered cycles as the next part (nothing when empty)."""
        if not self._buf:
            return
        write_ob_features(self.frame(), self.directory / f"part-{self.parts:06d}.parquet")
        self.parts += 1
        self._buf = []

    def close(self) -> Path | None:
        """Write the last part and ``ob_features.parquet``; return its path (None if empty)."""
        self.flush()
        parts = sorted(self.directory.glob("part-*.parquet"))
        if not parts:
            return None
        frame = pd.concat([read_ob_features(p) for p in parts], ignore_index=True)
        return write_ob_features(frame, self.directory / "ob_features.parquet")


# ==================================================================== service
@dataclass(slots=True)
class ObfCounters:
    """What the service has done; every field goes into its heartbeat."""

    cycles: int = 0
    warmup_cycles: int = 0  # cycles run before the first flush
    published: int = 0  # snapshots handed to the pusher
    books: int = 0  # book updates received
    crossed: int = 0  # books discarded by the crossed-book guard
    empty_books: int = 0  # books with an empty side (or no usable row)
    unsynced: int = 0  # local books found out of sync at a cycle
    trades: int = 0
    liquidations: int = 0
    added: int = 0
    removed: int = 0
    dark_events: int = 0  # assets that entered STALE_DATA
    stalls: int = 0  # times the stall watchdog fired
    record_failures: int = 0


_STALL, _STORE = "stall", "store"


def _best_prices(src: tuple[np.ndarray, np.ndarray] | BookView) -> tuple[float, float]:
    """Return the best bid and ask of float levels or of a local book (for the crossed log)."""
    if isinstance(src, tuple):
        return float(src[0][0][0]), float(src[1][0][0])
    bid_px, _, ask_px, _ = src.top()
    return bid_px / TICKS_PER_UNIT, ask_px / TICKS_PER_UNIT


class ObfService(Component):
    """Compute the OB features of every asset each cycle and publish them (module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        config: ObfServiceConfig | None = None,
        params: ObfParams | None = None,
        bank: ObfBank | None = None,
        direction: int = -1,
        recorder: ObfRecorder | None = None,
        background: bool = True,
        on_stall: Callable[[float], None] | None = None,
        name: str = "obf",
        max_retries: int = 3,
    ) -> None:
        super().__init__(name, clock=clock, max_retries=max_retries)
        self.config = config or ObfServiceConfig()
        self.params = params or ObfParams()
        self.bank = bank if bank is not None else ObfBank(self.params, direction=direction)
        self.recorder = recorder
        self.background = background
        self.on_stall = on_stall
        self.pusher = FeaturePusher(store, clock=clock, config=self.config, name=name)
        self.counters = ObfCounters()
        self.dark: set[str] = set()
        self.macro_by_ts: OrderedDict[int, tuple[float, ...]] = OrderedDict()
        self.last_cycle: ObfCycle | None = None
        self.last_status: tuple[str, ...] = ()
        self._band = float(self.params.band_bps)
        self._known: set[str] = set(self.bank.symbols)
        self._pending: dict[str, tuple[np.ndarray, np.ndarray] | BookView] = {}
        self._books: dict[str, BookView] = {}
        self._rows: dict[str, np.ndarray] = {}
        self._row_ns: dict[str, int] = {}
        self._volume: dict[str, float] = {}
        self._streak: dict[str, int] = {}
        self._removed: list[str] = []
        self._problems: dict[str, str] = {}
        self._started_ns = 0
        self._last_book_ns = 0
        self._client: Any = None
        self._client_symbols: object = None

    # ------------------------------------------------------------------ market data in
    def on_book(self, symbol: str, ts_ns: int, bids: np.ndarray, asks: np.ndarray) -> bool:
        """Take a book as float ``(k, 2)`` [price, qty] levels, best first; report acceptance.

        The arrays are kept until the next cycle (do not mutate them); pass every level of the
        depth band. A crossed book (best ask <= best bid) or one with an empty side is
        discarded and counted. ``ts_ns`` is the book's own time, informational: features are
        stamped with the cycle time, when they became known.
        """
        self._see(symbol)
        self.counters.books += 1
        if len(bids) == 0 or len(asks) == 0:
            return self._reject_empty(symbol)
        if asks[0][0] <= bids[0][0]:
            return self._reject_crossed(symbol, bids[0][0], asks[0][0])
        self._pending[symbol] = (bids, asks)
        return True

    def on_order_book(self, book: BookView) -> bool:
        """Take a synced local book (read at the next cycle); report acceptance."""
        symbol = book.symbol
        self._see(symbol)
        self.counters.books += 1
        self._books[symbol] = book
        bid_px, _, ask_px, _ = book.top()
        if not bid_px or not ask_px:
            return self._reject_empty(symbol)
        if ask_px <= bid_px:
            return self._reject_crossed(symbol, bid_px / TICKS_PER_UNIT, ask_px / TICKS_PER_UNIT)
        self._pending[symbol] = book
        return True

    def on_trade(self, symbol: str, ts_ns: int, price: float, qty: float,
                 buyer_is_maker: bool) -> None:
        """Take one trade: trade flow for the bank, traded volume for the dark-streak detector."""
        self._see(symbol)
        self.counters.trades += 1
        self._volume[symbol] = self._volume.get(symbol, 0.0) + qty
        self.bank.on_trade(symbol, ts_ns, price, qty, buyer_is_maker)

    def on_liquidation(self, symbol: str, ts_ns: int, side: str, qty: float,
                       price: float) -> None:
        """Take one liquidation order (cascade detection)."""
        self._see(symbol)
        self.counters.liquidations += 1
        self.bank.on_liquidation(symbol, ts_ns, side, qty, price)

    def _reject_empty(self, symbol: str) -> bool:
        self.counters.empty_books += 1
        self._pending.pop(symbol, None)
        self._rows.pop(symbol, None)
        return False

    def _reject_crossed(self, symbol: str, bid: float, ask: float) -> bool:
        c = self.counters
        c.crossed += 1
        self._pending.pop(symbol, None)
        self._rows.pop(symbol, None)  # the last sound row is no longer the book
        if c.crossed <= _LOG_FIRST or c.crossed % _LOG_EVERY == 0:
            _log.warning("component=%s event=crossed_book symbol=%s bid=%r ask=%r n=%d",
                         self.name, symbol, bid, ask, c.crossed)
        return False

    # ------------------------------------------------------------------ assets
    def _see(self, symbol: str) -> None:
        if symbol not in self._known:
            self._known.add(symbol)
            self.bank.add(symbol)
            self.counters.added += 1
            _log.info("component=%s event=asset_added symbol=%s", self.name, symbol)

    @property
    def symbols(self) -> tuple[str, ...]:
        """Return the current asset set (the bank's, sorted)."""
        return tuple(self.bank.symbols)

    def remove(self, symbol: str) -> None:
        """Take ``symbol`` out of the bank; its store key is deleted with the next push."""
        if symbol not in self._known:
            return
        self._known.discard(symbol)
        self.bank.remove(symbol)
        for d in (self._pending, self._books, self._rows, self._row_ns, self._volume,
                  self._streak):
            d.pop(symbol, None)
        self.dark.discard(symbol)
        self._removed.append(symbol)
        self.counters.removed += 1
        _log.info("component=%s event=asset_removed symbol=%s", self.name, symbol)

    def sync_symbols(self, symbols: Iterable[str]) -> list[str]:
        """Remove every known asset not in ``symbols`` (a feed's current set); return them."""
        keep = {s.upper() for s in symbols}
        gone = sorted(s for s in self._known if s not in keep)
        for s in gone:
            self.remove(s)
        return gone

    def attach(self, client: Any) -> None:
        """Wire a ``MarketDataClient``: its books, trades and liquidations come here.

        Its ``on_book(book, diff)`` and ``on_record(record)`` callbacks are set (a callback
        already there is still called first); ``Trade``/``AggTrade`` go to ``on_trade``,
        ``Liquidation`` to ``on_liquidation`` (ticks become floats). At every cycle an asset
        the client no longer has in ``symbols`` is removed.
        """
        prev_book, prev_record = client.on_book, client.on_record

        def on_book(book: BookView, diff: object) -> None:
            if prev_book is not None:
                prev_book(book, diff)
            self.on_order_book(book)

        def on_record(record: Any) -> None:
            if prev_record is not None:
                prev_record(record)
            self.on_wire_record(record)

        client.on_book, client.on_record = on_book, on_record
        self._client = client

    def on_wire_record(self, record: Any) -> None:
        """Route one binance wire record (trades, liquidations; others are ignored)."""
        kind = type(record).__name__
        if kind in ("Trade", "AggTrade"):
            self.on_trade(record.symbol, record.ts_trade or record.ts_event,
                          record.price / TICKS_PER_UNIT, record.qty / TICKS_PER_UNIT,
                          record.buyer_is_maker)
        elif kind == "Liquidation":
            self.on_liquidation(record.symbol, record.ts_trade or record.ts_event, record.side,
                                record.qty / TICKS_PER_UNIT,
                                (record.avg_price or record.price) / TICKS_PER_UNIT)

    def _follow_client(self) -> None:
        client = self._client
        if client is not None and client.symbols is not self._client_symbols:
            self._client_symbols = client.symbols  # refresh_symbols assigns a new list
            self.sync_symbols(client.symbols)

    # ------------------------------------------------------------------ the cycle
    def cycle(self, now_ns: int | None = None) -> ObfCycle | None:
        """Run one feature cycle at ``now_ns`` (default: the clock); return it (None if the
        step failed). No I/O: publishing is enqueued for the pusher."""
        now = self.clock.now_ns() if now_ns is None else int(now_ns)
        out: list[ObfCycle] = []
        self.run_step(lambda: out.append(self._cycle(now)))
        if self.state is ComponentState.RUNNING or self.state is ComponentState.DEGRADED:
            self._health(now)
        return out[0] if out else None

    def _cycle(self, now: int) -> ObfCycle:
        self._follow_client()
        if self._resolve_books(now):
            self._last_book_ns = now
        rows = self._fresh_rows(now)
        cyc = self.bank.cycle(now, rows)
        status = self._status(cyc)
        self._remember_macro(now, cyc.macro)
        c = self.counters
        c.cycles += 1
        self.last_cycle, self.last_status = cyc, status
        if now - self._started_ns < round(self.config.warmup_s * _NS):
            c.warmup_cycles += 1
        else:
            removed, self._removed = tuple(self._removed), []
            self.pusher.submit(ObfSnapshot(now, c.cycles, tuple(cyc.symbols), cyc.per_asset,
                                           status, cyc.macro, tuple(self.macro_by_ts.items()),
                                           removed))
            c.published += 1
        if self.recorder is not None:
            self._record(cyc, status)
        return cyc

    def _resolve_books(self, now: int) -> bool:
        """Turn the books received since the last cycle into rows; report whether any came.

        Float levels go through ``book_row``; a local book through its own ``band_row`` (the
        same row, module docstring), read now, as the book stands at the cycle.
        """
        pending, self._pending = self._pending, {}
        for sym, src in pending.items():
            if isinstance(src, tuple):
                row = book_row(src[0], src[1], self._band)
            elif src.state != BOOK_LIVE:
                continue  # lost sync since it was offered: the check below drops the row
            else:
                row = src.band_row(self._band)
            if row[B_MID] != row[B_MID]:  # NaN: an empty side (book_row's NaN row)
                self._reject_empty(sym)
            elif row[B_CROSSED] >= 1.0:
                self._reject_crossed(sym, *_best_prices(src))
            else:
                self._rows[sym] = row
                self._row_ns[sym] = now
        for sym, book in self._books.items():
            if book.state != BOOK_LIVE:
                if self._rows.pop(sym, None) is not None:
                    self.counters.unsynced += 1
            elif sym in self._rows:
                self._row_ns[sym] = now  # a quiet book in sync is still the book
        return bool(pending)

    def _fresh_rows(self, now: int) -> dict[str, np.ndarray]:
        oldest = now - round(self.config.stall_timeout_s * _NS)
        row_ns = self._row_ns
        return {s: r for s, r in self._rows.items() if row_ns[s] >= oldest}

    def _status(self, cyc: ObfCycle) -> tuple[str, ...]:
        """Per asset: no_book, dark (dark-streak detector) or ok; resets the cycle's volume."""
        n_dark = self.config.dark_streak_cycles
        volume, self._volume = self._volume, {}
        streak, dark = self._streak, self.dark
        out: list[str] = []
        for sym, valid in zip(cyc.symbols, cyc.valid.tolist(), strict=True):
            is_dark = False
            if n_dark:
                s = 0 if volume.get(sym, 0.0) > 0.0 else streak.get(sym, 0) + 1
                streak[sym] = s
                is_dark = s >= n_dark
                if is_dark and sym not in dark:
                    dark.add(sym)
                    self.counters.dark_events += 1
                    _log.warning("component=%s event=stale_data symbol=%s zero_volume_cycles=%d",
                                 self.name, sym, s)
                elif not is_dark and sym in dark:
                    dark.discard(sym)
                    _log.info("component=%s event=stale_data_cleared symbol=%s", self.name, sym)
            out.append(STATUS_NO_BOOK if not valid else STATUS_DARK if is_dark else STATUS_OK)
        return tuple(out)

    def _remember_macro(self, now: int, macro: np.ndarray) -> None:
        m = self.macro_by_ts
        m[now] = tuple(float(v) for v in macro)
        while len(m) > self.config.macro_history:
            m.popitem(last=False)

    def macro_at(self, ts_ns: int) -> tuple[float, ...] | None:
        """Return the macro of the newest cycle at or before ``ts_ns`` (None if none is kept)."""
        best = None
        for ts, m in reversed(self.macro_by_ts.items()):
            if ts <= ts_ns:
                best = m
                break
        return best

    def _record(self, cyc: ObfCycle, status: tuple[str, ...]) -> None:
        fresh = np.fromiter((s == STATUS_OK for s in status), dtype=bool, count=len(status))
        try:
            self.recorder.record(cyc.ts_ns, tuple(cyc.symbols), cyc.per_asset, fresh, cyc.macro)
        except OSError as exc:  # disk full, folder gone: keep cycling, rows stay buffered
            self.counters.record_failures += 1
            _log.warning("component=%s event=record_failed error=%r", self.name, exc)
        except DataError as exc:  # rows the schema refuses would fail every later write too
            self.counters.record_failures += 1
            dropped = self.recorder.discard()
            _log.error("component=%s event=record_rejected cycles_dropped=%d error=%s",
                       self.name, dropped, exc)

    # ------------------------------------------------------------------ health
    def _health(self, now: int) -> None:
        quiet_s = (now - self._last_book_ns) / _NS
        if quiet_s > self.config.stall_timeout_s:
            if _STALL not in self._problems:
                self.counters.stalls += 1
                self._problem(_STALL, f"stall: no book update for {quiet_s:.1f}s "
                                      f"(timeout {self.config.stall_timeout_s:g}s)")
                if self.on_stall is not None:
                    self.on_stall(quiet_s)
        else:
            self._solved(_STALL)
        breaker = self.pusher.state
        if breaker is BreakerState.CLOSED:
            self._solved(_STORE)
        else:
            self._problem(_STORE, f"store pushes failing: breaker {breaker.name}, file-only mode"
                                  f" (last error: {self.pusher.last_error})")

    def _problem(self, key: str, reason: str) -> None:
        if key not in self._problems:
            self._problems[key] = reason
            self.degrade(reason)

    def _solved(self, key: str) -> None:
        if self._problems.pop(key, None) is not None and self._problems:
            self.degrade(next(iter(self._problems.values())))  # the reason still true
        if not self._problems and self.state is ComponentState.DEGRADED:
            self.recover()

    # ------------------------------------------------------------------ lifecycle
    def on_start(self) -> None:
        """Start the warm-up and stall clocks, the recorder and the pusher thread."""
        self._started_ns = self._last_book_ns = self.clock.now_ns()
        if self.recorder is not None:
            self.recorder.open()
        if self.background:
            self.pusher.start()

    def on_stop(self) -> None:
        """Let the pusher push what is queued (bounded wait) and close the recorder."""
        self.pusher.stop()
        if self.recorder is not None:
            path = self.recorder.close()
            _log.info("component=%s event=recorded parts=%d file=%s", self.name,
                      self.recorder.parts, path)

    def heartbeat(self) -> dict[str, Any]:
        """Return the base heartbeat plus every counter, the breaker and the dark assets."""
        beat = super().heartbeat()
        beat.update(asdict(self.counters))
        p = self.pusher
        beat.update({f"push_{k}": v for k, v in asdict(p.counters).items()})
        beat.update({
            "breaker": p.state.name,
            "breaker_failures": p.failures,
            "backoff_s": p.backoff_s,
            "push_pending": p.pending,
            "push_last_error": p.last_error,
            "pusher_alive": p.alive,
            "assets": len(self._known),
            "dark": sorted(self.dark),
            "n_dark": len(self.dark),
            "warming_up": self.counters.published == 0,
            "last_cycle_ts_ns": None if self.last_cycle is None else self.last_cycle.ts_ns,
        })
        return beat

