"""``ObProvider``: the engine's order-book features, read from what the OBF service publishes.

The engine's ``alpha.interfaces.ObEngine`` for the live system (Bible §9, §15.4, §15.6, §22.2).
It discovers the assets from the shard maps' keys (``ob_<SYMBOL>`` in
``DOLPHIN_FEATURES_SHARD_xx``, no static list), then keeps an in-process cache that store entry
listeners refresh on the store's own thread. ``features`` (the hot path) touches only that local
memory: no store call, no lock, no I/O (§22.2 "a pure in-process read").

As-of rule, the same as the backtest reader's (``backtest.ob_table``) so that live and replay
read the same values: the engine passes a bar's OPEN time; its scan is known at ``T = open +
bar_s``. Per asset the provider takes the newest record with ``ts_ns <= T`` (a short history is
kept per asset for that); it is used when its status is ``ok``, its five engine values are
finite and ``T - ts_ns <= max_age_s``; otherwise the asset gets ``NEUTRAL_ASSET_ROW`` (the OB
layer has no opinion; a ``dark`` or ``no_book`` record is the newest knowledge and says "not
fresh", so no older record is used instead). The macro comes from the per-timestamp macro map
(``macro_by_ts``) under the same rule, ``NEUTRAL_MACRO`` otherwise.

Staleness is not hidden behind the neutral rows: it goes to the survival controller's Cat3
through ``sensor_readings`` (``ob_age_s`` +inf when nothing was ever received: unknown is never
healthy). ``survival_registry`` makes the wiring rule explicit: a configured provider registers
the Cat3 sensors; no provider, no Cat3 (the OB layers are off and the category reads 1).

Store outages (§15.6 "consumers should prefer the JSON file during HZ outages"): ``refresh``
(called by the owner at its own pace, never on the hot path) reconnects to the store if needed
and loads the service's JSON file whenever it changed; a record or macro from the file is taken
when it is newer than what the store delivered, so during an outage the file wins and the store
takes over again once it is newer.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dolphin.backtest.ob_table import DEFAULT_MAX_AGE_S
from dolphin.core.clock import Clock
from dolphin.core.config import SurvivalConfig
from dolphin.core.errors import ConfigError
from dolphin.features.obf import (
    ENGINE_ASSET_COLS,
    ENGINE_MACRO_COLS,
    NEUTRAL_ASSET_ROW,
    NEUTRAL_MACRO,
    OBF_FEATURES,
    OBF_MACRO,
)
from dolphin.risk.sensors import (
    AnySensor,
    capital_sensors,
    environmental_sensors,
    invariant_sensors,
    microstructure_sensors,
    structural_sensors,
)
from dolphin.risk.survival import SensorRegistry
from dolphin.services.obf_service import (
    LATEST_MACRO,
    MACRO_BY_TS,
    OB_FEATURE,
    OB_INDEX,
    STATUS_NO_BOOK,
    STATUS_OK,
)
from dolphin.store.errors import MalformedValueError, StoreUnavailableError
from dolphin.store.ports import EntryEvent, Store
from dolphin.store.schema import OB, SHARD_MAPS, Record, decode_value, shard_index
from dolphin.store.values import MalformedCounter, check_not_future

_log = logging.getLogger(__name__)

_NS = 1_000_000_000
_NS_PER_DAY = 86_400 * _NS
_PREFIX = f"{OB_FEATURE}_"
#: The record fields the engine reads, in its per-asset / macro order (alpha.layout).
ENGINE_FIELDS = tuple(OBF_FEATURES[i] for i in ENGINE_ASSET_COLS)
ENGINE_MACRO_FIELDS = tuple(OBF_MACRO[i] for i in ENGINE_MACRO_COLS)
_REGIME = ENGINE_MACRO_FIELDS.index("regime_signal")
#: Days of OB cycle counts kept before the newest cycle's day (only the previous day is read).
OB_KEEP_DAYS = 3


class ObDays:
    """OB-4's cycle counts per UTC day from the live macro: each cycle once, in time order (the
    service publishes one cycle after another; a repeat or an older cycle is ``ignored``).
    ``stress(date)`` is the previous UTC day's share of cycles with regime +1, 0.0 without any:
    ``ObTable.daily_ob_stress``'s rule. The provider and the ACB processor both count with it.
    Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[int, list[int]] = {}  # UTC day number -> [cycles, cycles at +1]
        self.newest_ns: int | None = None
        self.ignored = 0

    def add(self, ts_ns: int, regime: float) -> bool:
        """Count one cycle; return False (and count it ignored) when it is not newer."""
        with self._lock:
            if self.newest_ns is not None and ts_ns <= self.newest_ns:
                self.ignored += 1  # a re-delivery of a cycle already counted
                return False
            self.newest_ns = ts_ns
            day = ts_ns // _NS_PER_DAY
            counts = self._counts.setdefault(day, [0, 0])
            counts[0] += 1
            counts[1] += regime == 1.0  # regime_signal +1: withdrawal stress (§9.2)
            for old in [d for d in self._counts if d < day - OB_KEEP_DAYS]:
                del self._counts[old]
            return True

    def ignore(self) -> None:
        """Count one cycle value that is not counted."""
        with self._lock:
            self.ignored += 1

    def counts(self, day: int) -> tuple[int, int]:
        """Return ``(cycles, cycles with regime +1)`` of UTC day number ``day``."""
        with self._lock:
            n, stressed = self._counts.get(day, (0, 0))
        return n, stressed

    def stress(self, date: str) -> float:
        """Return OB-4's stress of ``date`` (YYYY-MM-DD): the previous UTC day's share of
        cycles with regime +1, 0.0 when it has none (``ObTable.daily_ob_stress``)."""
        n, stressed = self.counts(int(np.datetime64(date, "D").astype(np.int64)) - 1)
        return float(stressed) / float(n) if n else 0.0


@dataclass(frozen=True, slots=True)
class ObEntry:
    """One asset record as cached: its cycle time, status, and the engine row if fresh."""

    ts_ns: int
    status: str
    fresh: bool  # status ok and the five engine values finite
    row: np.ndarray  # (N_OB_ASSET,) engine layout; NEUTRAL_ASSET_ROW when not fresh


def _float(value: Any, what: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedValueError("not a number", field=what, value=value)
    return float(value)


def entry_from_record(data: Any, ts_ns: int) -> ObEntry:
    """Return the cache entry of one asset record (``obf_service`` schema); malformed raises."""
    if not isinstance(data, Mapping):
        raise MalformedValueError("an OB asset record must be an object", value=type(data))
    status = data.get("status")
    if not isinstance(status, str):
        raise MalformedValueError("status must be a string", field="status", value=status)
    row = np.array([_float(data.get(f), f) for f in ENGINE_FIELDS])
    fresh = status == STATUS_OK and bool(np.isfinite(row).all())
    if not fresh:
        row = NEUTRAL_ASSET_ROW
    else:
        row.setflags(write=False)
    return ObEntry(int(ts_ns), status, fresh, row)


@dataclass(frozen=True, slots=True)
class _MacroBook:
    """The per-timestamp macro map as cached: sorted cycle times and engine-order values."""

    ts: np.ndarray  # (k,) int64, strictly increasing
    vals: np.ndarray  # (k, N_OB_MACRO)


_NO_MACRO = _MacroBook(np.zeros(0, dtype=np.int64), np.zeros((0, len(ENGINE_MACRO_FIELDS))))


def _macro_items(data: Any, ts_ns: int, key: str) -> list[tuple[int, tuple[float, ...]]]:
    """Return ``[(cycle ts, engine-order macro)]`` of a ``latest_macro`` or ``macro_by_ts``
    payload; malformed raises."""
    if not isinstance(data, Mapping):
        raise MalformedValueError(f"{key} must be an object", value=type(data))
    if key == LATEST_MACRO:
        ts = data.get("ts_ns", ts_ns)
        if not isinstance(ts, int) or isinstance(ts, bool):
            raise MalformedValueError("ts_ns must be an int", field="ts_ns", value=ts)
        return [(ts, tuple(_float(data.get(f), f) for f in ENGINE_MACRO_FIELDS))]
    out = []
    order = [OBF_MACRO.index(f) for f in ENGINE_MACRO_FIELDS]
    for k, v in data.items():
        if not (isinstance(k, str) and k.isdigit()) or not isinstance(v, list) or len(v) != 3:
            raise MalformedValueError("macro_by_ts entries are '<ts_ns>': [3 numbers]", value=k)
        out.append((int(k), tuple(_float(v[j], "macro") for j in order)))
    return out


def read_ob_file(path: str | Path) -> Record:
    """Read the OBF service's JSON fallback file (``obf_service`` docstring); malformed or
    unsupported content raises ``MalformedValueError`` naming the file."""
    return decode_value(Path(path).read_bytes(), source=str(path))


class ObProvider:
    """The live ``ObEngine``: a listener-refreshed local cache of the OBF service's values."""

    def __init__(
        self,
        store: Store | None = None,
        *,
        clock: Clock,
        bar_s: float,
        file_path: str | Path | None = None,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        history: int = 16,
        macro_history: int = 240,
        jitter_window: int = 20,
        counter: MalformedCounter | None = None,
    ) -> None:
        if not (math.isfinite(bar_s) and bar_s >= 0):
            raise ConfigError(f"ob provider: bar_s must be finite and >= 0, got {bar_s!r}")
        if not (math.isfinite(max_age_s) and max_age_s >= 0):
            raise ConfigError(f"ob provider: max_age_s must be finite and >= 0, got {max_age_s!r}")
        if min(history, macro_history, jitter_window) < 1:
            raise ConfigError("ob provider: history, macro_history, jitter_window must be >= 1")
        self.store = store
        self.clock = clock
        self.file_path = None if file_path is None else Path(file_path)
        self.bar_s = float(bar_s)
        self.max_age_s = float(max_age_s)
        self.history = history
        self.macro_history = macro_history
        self.jitter_window = jitter_window
        self.counter = counter if counter is not None else MalformedCounter()
        self.connected = False
        self.received = 0  # records and macro cycles taken into the cache
        self.file_loads = 0
        self.source: str | None = None  # where the newest asset record came from
        self._bar_ns = round(self.bar_s * _NS)
        self._max_ns = round(self.max_age_s * _NS)
        self._lock = threading.Lock()  # writers only (listener thread, file loader)
        self._hist: dict[str, tuple[ObEntry, ...]] = {}
        self._book_ns: dict[str, int] = {}  # newest record with a known book (ok or dark)
        self._macro = _NO_MACRO
        self.days = ObDays()  # OB-4's cycle counts per UTC day
        self._asked: tuple[str, ...] = ()
        self._registrations: list[tuple[Any, str]] = []
        self._file_key: tuple[int, int] | None = None

    # ------------------------------------------------------------------ store side
    def connect(self) -> bool:
        """Register the listeners, then discover and load every asset and the macro (§15.4).

        Listeners first, so no change between the read and the registration is missed (the
        cache ignores anything not newer than what it holds). Report success; an unreachable
        store leaves the provider on its file fallback.
        """
        if self.store is None:
            return False
        self._drop_listeners()
        try:
            for name in SHARD_MAPS:
                m = self.store.map(name)
                self._registrations.append((m, m.add_listener(self._on_shard_event)))
            ob = self.store.map(OB)
            self._registrations.append((ob, ob.add_listener(self._on_ob_event)))
            for index, name in enumerate(SHARD_MAPS):
                m = self.store.map(name)
                keys = [k for k in m.keys() if k.startswith(_PREFIX)  # noqa: SIM118 - StoreMap
                        and _routes(k[len(_PREFIX):], index)]
                for key, text in m.get_all(keys).items():
                    self._take_asset(name, key, text, "store")
            for key, text in ob.get_all([LATEST_MACRO, MACRO_BY_TS]).items():
                self._take_macro(OB, key, text)
        except StoreUnavailableError as exc:
            _log.warning("ob provider: store unavailable (%s); using the file fallback", exc)
            self._drop_listeners()
            self.connected = False
            return False
        self.connected = True
        return True

    def close(self) -> None:
        """Stop listening (the cache keeps its values, which then only age)."""
        self._drop_listeners()
        self.connected = False

    def _drop_listeners(self) -> None:
        for m, reg in self._registrations:
            with contextlib.suppress(StoreUnavailableError):
                m.remove_listener(reg)
        self._registrations = []

    def refresh(self) -> str | None:
        """Reconnect if the store was lost, load the JSON file if it changed; return the source
        of the newest asset record (``"store"``, ``"file"`` or None). Not for the hot path."""
        if self.store is not None:
            try:
                up = self.store.cluster_view().connected
            except StoreUnavailableError:
                up = False
            if not up:
                self.connected = False
            elif not self.connected:
                self.connect()
        self.load_file()
        return self.source

    def _on_shard_event(self, event: EntryEvent) -> None:
        key = event.key
        if not key.startswith(_PREFIX):
            return  # another feature sharing the shard map
        symbol = key[len(_PREFIX):]
        if SHARD_MAPS[shard_index(symbol)] != event.map_name:
            return  # not written by a ShardedFeatureStore: ignored, not guessed at
        if event.value is None:
            self.remove(symbol)
        else:
            self._take_asset(event.map_name, key, event.value, "store")

    def _on_ob_event(self, event: EntryEvent) -> None:
        if event.value is None:
            return
        if event.key in (LATEST_MACRO, MACRO_BY_TS):
            self._take_macro(event.map_name, event.key, event.value)
        elif event.key == OB_INDEX:
            record = self._decode(event.map_name, event.key, event.value)
            removed = record.data.get("removed") if record is not None and isinstance(
                record.data, Mapping) else None
            for symbol in removed if isinstance(removed, list) else ():
                if isinstance(symbol, str):
                    self.remove(symbol)

    def _decode(self, map_name: str, key: str, text: str) -> Record | None:
        source = f"{map_name}[{key!r}]"
        try:
            return check_not_future(decode_value(text, source=source), self.clock.now_ns(),
                                    source=source)
        except MalformedValueError as exc:
            self.counter.record(map_name, key, exc)
            return None

    def _take_asset(self, map_name: str, key: str, text: str, source: str) -> None:
        record = self._decode(map_name, key, text)
        if record is None:
            return
        try:
            self.apply_record(key[len(_PREFIX):], record.data, record.ts_ns, source=source)
        except MalformedValueError as exc:
            self.counter.record(map_name, key, exc)

    def _take_macro(self, map_name: str, key: str, text: str) -> None:
        record = self._decode(map_name, key, text)
        if record is None:
            return
        try:
            self.apply_macro(_macro_items(record.data, record.ts_ns, key))
        except MalformedValueError as exc:
            self.counter.record(map_name, key, exc)

    # ------------------------------------------------------------------ cache writers
    def apply_record(self, symbol: str, data: Any, ts_ns: int, *, source: str = "store") -> bool:
        """Take one asset record into the cache; report whether it was newer than the cache's."""
        entry = entry_from_record(data, ts_ns)
        with self._lock:
            hist = self._hist.get(symbol, ())
            if hist and entry.ts_ns <= hist[-1].ts_ns:
                return False
            self._hist[symbol] = (*hist[-(self.history - 1):], entry) if self.history > 1 \
                else (entry,)
            if entry.status != STATUS_NO_BOOK:
                self._book_ns[symbol] = entry.ts_ns
            self.received += 1
            self.source = source
        return True

    def apply_macro(self, items: Iterable[tuple[int, Sequence[float]]]) -> int:
        """Merge cycles ``(ts_ns, engine-order macro)`` into the per-timestamp map; return how
        many were new."""
        items = list(items)
        with self._lock:
            book = self._macro
            known = set(book.ts.tolist())
            new = [(ts, v) for ts, v in items if ts not in known]
            if not new:
                return 0
            ts = np.concatenate([book.ts, np.array([t for t, _ in new], dtype=np.int64)])
            vals = np.vstack([book.vals, np.array([v for _, v in new], dtype=np.float64)])
            ts, first = np.unique(ts, return_index=True)  # sorted, one value per cycle
            keep = slice(-self.macro_history, None)
            self._macro = _MacroBook(ts[keep], vals[first][keep])
            for t, v in sorted(new, key=lambda item: item[0]):
                self.days.add(t, float(v[_REGIME]))
            self.received += len(new)
        return len(new)

    def remove(self, symbol: str) -> None:
        """Forget ``symbol`` (the service removed it)."""
        with self._lock:
            self._hist.pop(symbol, None)
            self._book_ns.pop(symbol, None)

    def load_file(self) -> bool:
        """Load the JSON fallback file if it changed since the last load; report a load."""
        path = self.file_path
        if path is None:
            return False
        try:
            st = path.stat()
        except FileNotFoundError:
            return False
        key = (st.st_mtime_ns, st.st_size)
        if key == self._file_key:
            return False
        try:
            record = check_not_future(read_ob_file(path), self.clock.now_ns(), source=str(path))
            data = record.data
            assets = data["assets"]
            for symbol, rec in assets.items():
                self.apply_record(symbol, rec, _stamp(rec, record.ts_ns), source="file")
            self.apply_macro(_macro_items(data.get("macro_by_ts", {}), record.ts_ns,
                                          MACRO_BY_TS))
            self.apply_macro(_macro_items(data["macro"], record.ts_ns, LATEST_MACRO))
            for symbol in data.get("removed", ()):
                self.remove(symbol)
        except (OSError, MalformedValueError, KeyError, TypeError, AttributeError) as exc:
            err = exc if isinstance(exc, MalformedValueError) else MalformedValueError(
                f"unreadable OB file: {type(exc).__name__}: {exc}", source=str(path))
            self.counter.record("file", str(path), err)
            return False
        self._file_key = key
        self.file_loads += 1
        return True

    # ------------------------------------------------------------------ the engine's read
    def features(self, ts_ns: int, assets: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(per_asset (len(assets), N_OB_ASSET), macro (N_OB_MACRO,))`` for the bar
        opening at ``ts_ns`` (module docstring: as of ``ts_ns + bar_s``, neutral when stale)."""
        self._asked = tuple(assets)
        known = ts_ns + self._bar_ns
        max_ns, hist, neutral = self._max_ns, self._hist, NEUTRAL_ASSET_ROW
        rows = []
        for a in self._asked:
            h = hist.get(a)
            row = neutral
            if h:
                e = h[-1]
                if e.ts_ns > known:
                    e = _as_of(h, known)
                if e is not None and e.fresh and known - e.ts_ns <= max_ns:
                    row = e.row
            rows.append(row)
        per_asset = np.array(rows) if rows else np.empty((0, len(ENGINE_FIELDS)))
        return per_asset, self._macro_at(known)

    def _macro_at(self, known: int) -> np.ndarray:
        book = self._macro
        i = int(np.searchsorted(book.ts, known, side="right")) - 1
        if i < 0 or known - int(book.ts[i]) > self._max_ns or not np.isfinite(book.vals[i]).all():
            return NEUTRAL_MACRO.copy()
        return book.vals[i].copy()

    def daily_ob_stress(self, date: str) -> float:
        """Return OB-4's stress of ``date`` (YYYY-MM-DD): the share of the PREVIOUS UTC day's
        cycles seen here whose regime is +1 (0.0 when none was seen), as the backtest does."""
        return self.days.stress(date)

    # ------------------------------------------------------------------ ages and sensors
    @property
    def symbols(self) -> tuple[str, ...]:
        """Return the assets discovered so far, sorted."""
        return tuple(sorted(self._hist))

    def asset_ages(self, now_ns: int, assets: Iterable[str] | None = None) -> dict[str, float]:
        """Return each asset's feature age in seconds: since its newest record with a known
        book (status ok or dark); +inf for an asset without one."""
        book_ns = self._book_ns
        names = self.symbols if assets is None else assets
        return {a: (now_ns - book_ns[a]) / _NS if a in book_ns else math.inf for a in names}

    def macro_age_s(self, now_ns: int) -> float:
        """Return the age of the newest macro cycle in seconds (+inf when none was received)."""
        ts = self._macro.ts
        return (now_ns - int(ts[-1])) / _NS if len(ts) else math.inf

    def jitter_ms(self) -> float:
        """Return the feed jitter: the mean absolute deviation of the last ``jitter_window``
        intervals between received cycles from their median, in ms (0 with one cycle, +inf
        with none)."""
        ts = self._macro.ts[-(self.jitter_window + 1):]
        if len(ts) < 2:
            return 0.0 if len(ts) else math.inf
        d = np.diff(ts).astype(np.float64)
        return float(np.abs(d - np.median(d)).mean()) / 1e6

    def sensor_readings(self, now_ns: int, assets: Sequence[str] | None = None,
                        traded: str | None = None) -> dict[str, float]:
        """Return the Cat3 readings at ``now_ns`` for the survival controller.

        - ``ob_age_s``: the larger of the macro's age and the age of the oldest of ``assets``
          (default: those the engine last asked for, else every discovered asset) among the
          assets the feed covers (an asset the service never published is not an OB asset);
          +inf when nothing was ever received;
        - ``ob_jitter_ms``: ``jitter_ms``;
        - ``ob_depth_quality`` and ``ob_fill_probability``: of ``traded`` (the asset of the open
          or intended position) when given, else the median over those assets' fresh records
          (fresh: status ok and at most ``max_age_s`` old at ``now_ns``); NaN when none is
          fresh, which the sensors read as their floor.
        """
        names = assets if assets is not None else (self._asked or self.symbols)
        hist = self._hist
        covered = [a for a in names if a in hist]
        ages = self.asset_ages(now_ns, covered)
        age = max([self.macro_age_s(now_ns), *ages.values()])
        pick = [traded] if traded is not None else covered
        fresh = [e.row for e in (self._latest_fresh(a, now_ns) for a in pick) if e is not None]
        if fresh:
            q = np.median(np.array(fresh), axis=0)
            depth, fill = float(q[ENGINE_FIELDS.index("depth_quality")]), float(
                q[ENGINE_FIELDS.index("fill_probability")])
        else:
            depth = fill = math.nan
        return {"ob_age_s": age, "ob_jitter_ms": self.jitter_ms(), "ob_depth_quality": depth,
                "ob_fill_probability": fill}

    def _latest_fresh(self, symbol: str, now_ns: int) -> ObEntry | None:
        h = self._hist.get(symbol)
        if not h:
            return None
        e = h[-1]
        return e if e.fresh and 0 <= now_ns - e.ts_ns <= self._max_ns else None


def _as_of(hist: tuple[ObEntry, ...], known: int) -> ObEntry | None:
    for e in reversed(hist):
        if e.ts_ns <= known:
            return e
    return None


def _stamp(rec: Any, default: int) -> int:
    ts = rec.get("ts_ns", default) if isinstance(rec, Mapping) else default
    if not isinstance(ts, int) or isinstance(ts, bool) or ts < 0:
        raise MalformedValueError("ts_ns must be a non-negative int", field="ts_ns", value=ts)
    return ts


def _routes(symbol: str, index: int) -> bool:
    return bool(symbol) and shard_index(symbol) == index


# ---------------------------------------------------------------------- the Cat3 wiring rule
def microstructure_sensors_for(cfg: SurvivalConfig, provider: ObProvider | None
                               ) -> list[AnySensor]:
    """Return the Cat3 sensors to register: all four with a provider, none without one."""
    return microstructure_sensors(cfg) if provider is not None else []


def survival_registry(cfg: SurvivalConfig, provider: ObProvider | None) -> SensorRegistry:
    """Return the standard registry, with Cat3 (MICROSTRUCTURE) only when an OB provider is
    configured: without one the OB layers are off and the category has nothing to monitor."""
    return SensorRegistry([
        *invariant_sensors(cfg),
        *structural_sensors(cfg),
        *microstructure_sensors_for(cfg, provider),
        *environmental_sensors(cfg),
        *capital_sensors(cfg),
    ])
