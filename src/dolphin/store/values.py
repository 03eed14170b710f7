"""Typed access to a map: versioned records in, validated records out, staleness on the side.

Services read through ``RecordMap`` rather than the raw ``StoreMap`` so that every malformed
value is rejected the same way (a typed error, counted once) and every reader measures age
against an injected clock, which keeps replays and tests deterministic.

Time rules (DESIGN.md "Failure behaviour": unknown is never healthy):

- A value stamped more than ``MAX_CLOCK_SKEW_S`` after the reader's clock cannot have been
  written yet: it is malformed (``FutureValueError``, counted like any malformed value).
- A value from the future within that skew is readable but never fresh: its age is negative,
  so ``read_fresh`` returns None and ``staleness_s`` reports it as infinitely stale.
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

#: How far a writer's clock may run ahead of a reader's before its values count as malformed.
MAX_CLOCK_SKEW_S = 5.0


class FutureValueError(MalformedValueError):
    """A stored value is stamped further in the future than the allowed clock skew."""


def check_not_future(
    record: Record, now_ns: int, *, source: str, max_skew_s: float = MAX_CLOCK_SKEW_S
) -> Record:
    """Return ``record``, or raise FutureValueError when it lies beyond ``max_skew_s`` ahead."""
    ahead_s = (record.ts_ns - now_ns) / 1e9
    if ahead_s > max_skew_s:
        raise FutureValueError(
            f"ts_ns is {ahead_s:.3f}s in the future (allowed clock skew {max_skew_s:g}s)",
            source=source, field="ts_ns", value=record.ts_ns,
        )  # fmt: skip
    return record


def is_fresh(age_s: float, max_age_s: float) -> bool:
    """Report whether a value of age ``age_s`` is fresh: known, not from the future, not old."""
    return 0.0 <= age_s <= max_age_s


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
        """Decode ``text`` read from ``key``; count and re-raise when malformed (future-dated
        beyond the allowed clock skew included)."""
        source = f"{self.raw.name}[{key!r}]"
        try:
            return check_not_future(decode_value(text, source=source), self.clock(), source=source)
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
        """Return the age of the value under ``key``; infinite when missing, malformed, from
        the future or the store is unreachable.

        A missing or unreadable value is information decay, never "all clear" (DESIGN.md).
        """
        try:
            record = self.read(key)
        except (MalformedValueError, StoreUnavailableError):
            return math.inf
        if record is None:
            return math.inf
        age = self.age_s(record)
        return age if age >= 0.0 else math.inf

    def read_fresh(self, key: str, max_age_s: float) -> Record | None:
        """Return the record under ``key`` only if it is fresh: at most ``max_age_s`` old and
        not from the future."""
        record = self.read(key)
        if record is None or not is_fresh(self.age_s(record), max_age_s):
            return None
        return record
