"""Typed access to a map: versioned records in, validated records out, staleness on the side.

Services read through ``RecordMap`` rather than the raw ``StoreMap`` so that every malformed
value is rejected the same way (a typed error, counted once) and every reader measures age
against an injected clock, which keeps replays and tests deterministic.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from dolphin.store.errors import MalformedValueError, StoreUnavailableError
from dolphin.store.ports import StoreMap
from dolphin.store.schema import Record, decode_value, encode_value

log = logging.getLogger(__name__)

Clock = Callable[[], int]
"""Returns the current time in int64 nanoseconds UTC."""


class MalformedCounter:
    """Thread-safe count of malformed values seen, per map; shared by a service's readers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_map: Counter[str] = Counter()

    def record(self, map_name: str, key: str, error: MalformedValueError) -> None:
        """Count one malformed value and log it once, with where it was found."""
        with self._lock:
            self._by_map[map_name] += 1
        log.warning("malformed value map=%s key=%s error=%s", map_name, key, error)

    @property
    def total(self) -> int:
        """Every malformed value seen so far."""
        with self._lock:
            return sum(self._by_map.values())

    def by_map(self) -> dict[str, int]:
        """Malformed values seen, per map name."""
        with self._lock:
            return dict(self._by_map)


class RecordMap:
    """A ``StoreMap`` seen through the envelope codec, with staleness from an injected clock."""

    def __init__(
        self,
        raw: StoreMap,
        *,
        clock: Clock = time.time_ns,
        counter: MalformedCounter | None = None,
    ) -> None:
        self.raw = raw
        self.clock = clock
        self.counter = counter if counter is not None else MalformedCounter()

    @property
    def name(self) -> str:
        """The underlying map's name."""
        return self.raw.name

    def write(self, key: str, data: Any, *, ts_ns: int | None = None) -> Record:
        """Store ``data`` under ``key`` stamped with ``ts_ns`` (default: now); return the record."""
        stamp = self.clock() if ts_ns is None else ts_ns
        text = encode_value(data, stamp)
        self.raw.put(key, text)
        return decode_value(text)

    def decode(self, key: str, text: str) -> Record:
        """Decode ``text`` read from ``key``; count and re-raise when malformed."""
        try:
            return decode_value(text, source=f"{self.raw.name}[{key!r}]")
        except MalformedValueError as exc:
            self.counter.record(self.raw.name, key, exc)
            raise

    def read(self, key: str) -> Record | None:
        """Return the record under ``key`` or None; raise MalformedValueError (counted)."""
        text = self.raw.get(key)
        return None if text is None else self.decode(key, text)

    def read_many(self, keys: Iterable[str]) -> dict[str, Record]:
        """Return the valid records among ``keys``; malformed ones are counted and left out."""
        out: dict[str, Record] = {}
        for key, text in self.raw.get_all(keys).items():
            try:
                out[key] = self.decode(key, text)
            except MalformedValueError:
                continue
        return out

    def age_s(self, record: Record) -> float:
        """Return the age of ``record`` by this map's clock, in seconds."""
        return record.age_s(self.clock())

    def staleness_s(self, key: str) -> float:
        """Return the age of the value under ``key``; infinite when missing, malformed or the
        store is unreachable.

        A missing or unreadable value is information decay, never "all clear" (DESIGN.md).
        """
        try:
            record = self.read(key)
        except (MalformedValueError, StoreUnavailableError):
            return math.inf
        return math.inf if record is None else self.age_s(record)

    def read_fresh(self, key: str, max_age_s: float) -> Record | None:
        """Return the record under ``key`` only if it is at most ``max_age_s`` old."""
        record = self.read(key)
        if record is None or self.age_s(record) > max_age_s:
            return None
        return record
