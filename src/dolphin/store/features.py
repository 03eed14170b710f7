"""The sharded feature store (Bible §15.2–15.4) and the compare-and-set cell for posture.

Both are built on plain map operations, so they work on the embedded store and on a Community
Edition Hazelcast cluster alike (the CP subsystem the Bible's §14.6 prefers is Enterprise-only
since 5.5).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dolphin.core.errors import RetryableError
from dolphin.store.errors import MalformedValueError
from dolphin.store.ports import Store, StoreMap
from dolphin.store.processors import HeartbeatTouch, Outcome, PostureSet
from dolphin.store.schema import (
    HEARTBEAT,
    POSTURE_KEY,
    SAFETY,
    SHARD_MAPS,
    Record,
    decode_value,
    encode_value,
    shard_index,
)
from dolphin.store.values import Clock, MalformedCounter, RecordMap


def feature_key(symbol: str, feature: str) -> str:
    """Return the key of ``feature`` of ``symbol`` inside its shard: ``FEATURE_SYMBOL`` (§15.3)."""
    return f"{feature}_{symbol}"


class ShardedFeatureStore:
    """Per-asset features spread over ``DOLPHIN_FEATURES_SHARD_00..09`` by ``shard_index``."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock = time.time_ns,
        counter: MalformedCounter | None = None,
    ) -> None:
        self.counter = counter if counter is not None else MalformedCounter()
        self.clock = clock
        self._shards = tuple(
            RecordMap(store.map(name), clock=clock, counter=self.counter) for name in SHARD_MAPS
        )

    def shard(self, symbol: str) -> RecordMap:
        """Return the map holding ``symbol``'s features."""
        return self._shards[shard_index(symbol)]

    def put(self, symbol: str, feature: str, value: Any, *, ts_ns: int | None = None) -> Record:
        """Store one feature value of ``symbol``; return the record written."""
        return self.shard(symbol).write(feature_key(symbol, feature), value, ts_ns=ts_ns)

    def put_many(
        self, symbol: str, features: Mapping[str, Any], *, ts_ns: int | None = None
    ) -> None:
        """Store several features of ``symbol`` in one round trip, all stamped alike."""
        stamp = self.clock() if ts_ns is None else ts_ns
        entries = {feature_key(symbol, f): encode_value(v, stamp) for f, v in features.items()}
        self.shard(symbol).raw.put_all(entries)

    def get(self, symbol: str, feature: str) -> Record | None:
        """Return one feature record of ``symbol`` (None if absent; malformed raises, counted)."""
        return self.shard(symbol).read(feature_key(symbol, feature))

    def get_many(self, symbol: str, features: Iterable[str]) -> dict[str, Record]:
        """Return the valid records among ``features`` of ``symbol``, keyed by feature."""
        keys = {feature_key(symbol, f): f for f in features}
        found = self.shard(symbol).read_many(keys)
        return {keys[k]: record for k, record in found.items()}

    def delete(self, symbol: str, feature: str) -> None:
        """Remove one feature of ``symbol``."""
        self.shard(symbol).raw.delete(feature_key(symbol, feature))

    def staleness_s(self, symbol: str, feature: str) -> float:
        """Return the age of a feature in seconds (infinite when missing or malformed)."""
        return self.shard(symbol).staleness_s(feature_key(symbol, feature))

    def symbols(self) -> set[str]:
        """Discover every symbol present in any shard (§15.4); no static asset list needed.

        Keys that do not route to the shard they sit in were not written by this store and
        are ignored rather than guessed at.
        """
        found: set[str] = set()
        for index, shard in enumerate(self._shards):
            for key in shard.raw.keys():  # noqa: SIM118 - a StoreMap, not a dict
                _, sep, symbol = key.rpartition("_")
                if sep and symbol and shard_index(symbol) == index:
                    found.add(symbol)
        return found


class CasContentionError(RetryableError):
    """A read-modify-write of a cell lost the race too many times in a row."""


@dataclass(frozen=True, slots=True)
class CellSnapshot:
    """A cell value as read: the decoded record and the exact text compared on the next CAS."""

    record: Record
    raw: str

    @property
    def data(self) -> Any:
        """The payload."""
        return self.record.data

    @property
    def seq(self) -> int:
        """The cell's version: 1 for the first value, +1 per successful write."""
        return self.record.seq


class LatestCell:
    """One value with compare-and-set, on ``put_if_absent`` / ``replace_if_same``.

    ``compare_and_set(expected, data)`` writes only if the cell still holds exactly the text
    of ``expected`` (or is empty when ``expected`` is None). Each write carries ``seq`` one
    above the value it replaces and a fresh ``ts_ns``, so a value that went A→B→A in between
    still differs from the snapshot: no ABA.
    """

    def __init__(
        self,
        store_map: StoreMap,
        key: str = POSTURE_KEY,
        *,
        clock: Clock = time.time_ns,
        counter: MalformedCounter | None = None,
    ) -> None:
        self.key = key
        self._records = RecordMap(store_map, clock=clock, counter=counter)
        self._map = store_map
        self.clock = clock

    @property
    def counter(self) -> MalformedCounter:
        """Malformed values seen by this cell."""
        return self._records.counter

    def read(self) -> CellSnapshot | None:
        """Return the current value, or None when empty; a malformed value raises (counted)."""
        raw = self._map.get(self.key)
        if raw is None:
            return None
        return CellSnapshot(self._records.decode(self.key, raw), raw)

    def compare_and_set(self, expected: CellSnapshot | None, data: Any) -> CellSnapshot | None:
        """Write ``data`` if the cell still holds ``expected``; return the new snapshot or None."""
        seq = 1 if expected is None else expected.seq + 1
        text = encode_value(data, self.clock(), seq=seq)
        if expected is None:
            ok = self._map.put_if_absent(self.key, text) is None
        else:
            ok = self._map.replace_if_same(self.key, expected.raw, text)
        return CellSnapshot(decode_value(text), text) if ok else None

    def update(self, fn: Callable[[Any | None], Any], *, attempts: int = 16) -> CellSnapshot:
        """Read-modify-write: apply ``fn`` to the current payload (None when empty) until a CAS
        succeeds; raise CasContentionError after ``attempts`` lost races."""
        for _ in range(attempts):
            current = self.read()
            done = self.compare_and_set(current, fn(None if current is None else current.data))
            if done is not None:
                return done
        raise CasContentionError(f"cell {self._map.name}[{self.key!r}]: {attempts} lost races")

    def overwrite(self, data: Any) -> CellSnapshot:
        """Write ``data`` unconditionally (repairs a malformed cell); seq restarts above 0."""
        try:
            current = self.read()
        except MalformedValueError:
            current = None
        seq = 1 if current is None else current.seq + 1
        text = encode_value(data, self.clock(), seq=seq)
        self._map.put(self.key, text)
        return CellSnapshot(decode_value(text), text)

    def staleness_s(self) -> float:
        """Age of the value in seconds; infinite when empty or malformed."""
        return self._records.staleness_s(self.key)


def posture_cell(
    store: Store, *, clock: Clock = time.time_ns, counter: MalformedCounter | None = None
) -> LatestCell:
    """Return the posture cell: ``DOLPHIN_SAFETY["latest"]`` (§15.1)."""
    return LatestCell(store.map(SAFETY), POSTURE_KEY, clock=clock, counter=counter)


def set_posture(store: Store, data: Mapping[str, Any], seq: int, *,
                clock: Clock = time.time_ns) -> Outcome:
    """Write the posture cell with ``data`` (``posture``, ``rm``, sensors) and sequence ``seq``
    through the ``PostureSet`` entry processor: applied only when valid and newer than the
    stored sequence, atomically where the key lives (``store.processors``)."""
    text = encode_value(dict(data), clock(), seq=seq)
    return store.map(SAFETY).execute(POSTURE_KEY, PostureSet(text))


def touch_heartbeat(store: Store, beat: Mapping[str, Any], ts_ns: int) -> Outcome:
    """Record a component's heartbeat (``Component.heartbeat()``) in ``DOLPHIN_HEARTBEAT`` under
    its name, only when later than the stored one (``HeartbeatTouch``)."""
    name = beat.get("component")
    if not isinstance(name, str) or not name:
        raise MalformedValueError("heartbeat has no component name", field="component",
                                  value=name)
    return store.map(HEARTBEAT).execute(name, HeartbeatTouch(encode_value(dict(beat), ts_ns)))
