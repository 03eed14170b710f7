"""Entry processors: guarded single-key updates applied atomically where the data lives.

On Hazelcast an entry processor runs on the member that owns the key's partition, under that
partition's lock, so a check and the write it guards cannot be split by another writer (seed 000
§III: the ACB cut applied "atomically on the cluster node that owns the data partition"). The
Java classes are in ``resources/hazelcast/processors`` (built on first use,
``adapters.hazelcast.processors_jar``) and registered on every member by the factory id below;
the embedded store runs :meth:`Processor.decide` under its own lock. Both give the same answer,
and the store contract suite checks that on both.

Each processor carries one new value (a store envelope, ``schema.encode_value``) and replaces
the stored value with it only when nothing stands against it:

- :class:`PostureSet`: the posture cell. The posture is one of ``core.records.POSTURES``, Rm (if
  given) a number in [0, 1], and the envelope's ``seq`` above the stored one.
- :class:`AcbApply`: the ACB verdict. ``date`` is YYYY-MM-DD and not before the stored date,
  ``boost`` and ``beta`` are finite and inside the bounds sent with the processor, and ``seq``
  is above the stored one, so a processor that lost its writer lock cannot undo a newer verdict.
- :class:`HeartbeatTouch`: a component's heartbeat. ``component`` is a non-empty string and the
  envelope's ``ts_ns`` is later than the stored one: a delayed beat never makes a component look
  older than it is.

A stored value that is not an envelope never blocks an update (a corrupt cell heals). The answer
is a :class:`Outcome`: whether the value was applied, why not, and the value stored afterwards.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec

from dolphin.core.records import POSTURES
from dolphin.store.errors import MalformedValueError

#: The Java ``ProcessorFactory.FACTORY_ID``; class ids are each processor's ``CLASS_ID``.
FACTORY_ID = 7301

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits, as Java's \\d


class _Envelope(msgspec.Struct):
    """The parts of a store envelope a processor looks at (the Java ``Envelope``)."""

    schema: int
    ts_ns: int
    data: dict[str, Any]
    seq: int = 0


_envelope = msgspec.json.Decoder(_Envelope)


def parse_envelope(text: str | None) -> _Envelope | None:
    """Return the envelope of ``text``, or None when it is absent or not an envelope."""
    if text is None:
        return None
    try:
        return _envelope.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _number(env: _Envelope, name: str) -> float:
    value = env.data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value) if math.isfinite(value) else math.nan


def _string(env: _Envelope, name: str) -> str | None:
    value = env.data.get(name)
    return value if isinstance(value, str) else None


def _stale_seq(new: _Envelope, current: _Envelope | None) -> str | None:
    if current is not None and new.seq <= current.seq:
        return f"stale: seq {new.seq} <= stored {current.seq}"
    return None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a processor did: applied or not, why not, and the value stored afterwards."""

    applied: bool
    reason: str
    value: str | None

    @classmethod
    def from_json(cls, text: str) -> Outcome:
        """Read the answer a member sent (the Java ``Envelope.result``)."""
        try:
            raw = msgspec.json.decode(text)
            return cls(bool(raw["applied"]), str(raw["reason"]), raw["value"])
        except (msgspec.DecodeError, KeyError, TypeError) as exc:
            raise MalformedValueError(f"entry processor answer is not readable: {exc}",
                                      source="entry processor", value=text[:80]) from exc


@dataclass(frozen=True, slots=True)
class Processor:
    """A guarded replacement of one key's value by ``value`` (subclasses say what guards it)."""

    value: str
    CLASS_ID: ClassVar[int] = 0

    def refuse(self, new: _Envelope, current: _Envelope | None) -> str | None:
        """Return why ``new`` must not replace ``current``, or None to apply it."""
        raise NotImplementedError

    def decide(self, current: str | None) -> Outcome:
        """Return the outcome of this processor on a key holding ``current``."""
        new = parse_envelope(self.value)
        if new is None:
            return Outcome(False, "malformed: not a store envelope", current)
        why = self.refuse(new, parse_envelope(current))
        if why is not None:
            return Outcome(False, why, current)
        return Outcome(True, "", self.value)

    def fields(self) -> tuple[tuple[str, Any], ...]:
        """The serialised fields in the Java class's order: ``(kind, value)`` pairs."""
        return (("string", self.value),)


@dataclass(frozen=True, slots=True)
class PostureSet(Processor):
    """Set the posture cell only with a valid posture, Rm in [0, 1] and a newer ``seq``."""

    CLASS_ID: ClassVar[int] = 1

    def refuse(self, new: _Envelope, current: _Envelope | None) -> str | None:
        """Module docstring."""
        posture = _string(new, "posture")
        if posture not in POSTURES:
            return f"invalid: posture {posture}"
        if new.data.get("rm") is not None:
            rm = _number(new, "rm")
            if not 0.0 <= rm <= 1.0:
                return "invalid: rm out of [0, 1]"
        return _stale_seq(new, current)


@dataclass(frozen=True, slots=True)
class HeartbeatTouch(Processor):
    """Record a heartbeat only when it is later than the stored one."""

    CLASS_ID: ClassVar[int] = 3

    def refuse(self, new: _Envelope, current: _Envelope | None) -> str | None:
        """Module docstring."""
        if not _string(new, "component"):
            return "invalid: no component"
        if current is not None and new.ts_ns <= current.ts_ns:
            return f"stale: ts_ns {new.ts_ns} <= stored {current.ts_ns}"
        return None


@dataclass(frozen=True, slots=True)
class AcbApply(Processor):
    """Apply an ACB verdict only when valid (bounds, date) and newer (``seq``)."""

    min_boost: float = 1.0
    max_boost: float = 3.0
    min_beta: float = 0.0
    max_beta: float = 2.0
    CLASS_ID: ClassVar[int] = 2

    def refuse(self, new: _Envelope, current: _Envelope | None) -> str | None:
        """Module docstring."""
        date = _string(new, "date")
        if date is None or not _DATE.fullmatch(date):
            return f"invalid: date {date}"
        boost = _number(new, "boost")
        if not self.min_boost <= boost <= self.max_boost:
            return f"invalid: boost outside [{self.min_boost!r}, {self.max_boost!r}]"
        beta = _number(new, "beta")
        if not self.min_beta <= beta <= self.max_beta:
            return f"invalid: beta outside [{self.min_beta!r}, {self.max_beta!r}]"
        if current is not None:
            stored = _string(current, "date")
            if stored is not None and date < stored:
                return f"stale: date {date} before stored {stored}"
        return _stale_seq(new, current)

    def fields(self) -> tuple[tuple[str, Any], ...]:
        """The value, then the four bounds (the Java ``writeData`` order)."""
        return (("string", self.value), ("double", self.min_boost), ("double", self.max_boost),
                ("double", self.min_beta), ("double", self.max_beta))
