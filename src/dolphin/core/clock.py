"""Clocks: where services get the time (STYLE.md §7, §12).

Every service takes a ``Clock`` instead of calling ``time`` itself, so the live system, the replay
and the tests run the same code and only the clock differs (STYLE.md §16).

- ``now_ns()`` is wall-clock time, int64 nanoseconds UTC: use it to stamp values (``ts_ns``).
- ``monotonic_ns()`` never goes backwards: use it to measure ages and timeouts, which a wall-clock
  jump (NTP step, VM resume) must not bend.
- ``sleep(seconds)`` waits; the simulated clock advances instead, so a test never waits.
"""

from __future__ import annotations

import heapq
import itertools
import math
import operator
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from dolphin.core.errors import DolphinError

NS_PER_SECOND = 1_000_000_000


class ClockError(DolphinError, ValueError):
    """A clock was asked for something time cannot do: go backwards, sleep a negative time.

    Not a ``BadInputError``: ``action_for`` maps it to HALT, because a clock that is driven
    backwards means the caller's notion of time is broken, not that one input is bad.
    """


@runtime_checkable
class Clock(Protocol):
    """Tell the time and wait; implemented by ``LiveClock`` and ``SimulatedClock``."""

    def now_ns(self) -> int:
        """Return wall-clock time as int64 nanoseconds since the Unix epoch, UTC."""
        ...

    def monotonic_ns(self) -> int:
        """Return a nanosecond count that never decreases; only differences mean anything."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (or, on a simulated clock, advance by them)."""
        ...


class LiveClock:
    """The real clock: ``time.time_ns``, ``time.monotonic_ns`` and ``time.sleep``."""

    def now_ns(self) -> int:
        """Return the system wall-clock time in int64 nanoseconds UTC."""
        return time.time_ns()

    def monotonic_ns(self) -> int:
        """Return the system monotonic clock in nanoseconds."""
        return time.monotonic_ns()

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""
        time.sleep(seconds)


def _as_ns(value: object, what: str) -> int:
    """Return ``value`` as an int, refusing floats (nanoseconds are exact integers, §12)."""
    try:
        return operator.index(value)
    except TypeError:
        raise ClockError(f"{what} must be an integer number of ns, got {value!r}") from None


class SimulatedClock:
    """A clock that moves only when told to; deterministic, no threads.

    Wall time starts at ``start_ns``, monotonic time at 0. Moving forward (``advance``, ``sleep``,
    a forward ``set``) moves both by the same amount; a backwards ``set`` (allowed only with
    ``allow_backwards=True``, to test clock jumps) moves the wall time alone, as a real NTP step
    would. Callbacks from ``call_at`` are keyed on wall time and fire in time order, ties in the
    order they were scheduled, each with the clock set to its own time.
    """

    def __init__(self, start_ns: int = 0) -> None:
        self._now = _as_ns(start_ns, "start_ns")
        self._mono = 0
        # (ns, sequence, fn): the sequence number breaks ties by scheduling order and keeps
        # heapq from ever comparing two callables.
        self._timers: list[tuple[int, int, Callable[[], object]]] = []
        self._seq = itertools.count()
        self._firing = False

    def now_ns(self) -> int:
        """Return the simulated wall-clock time in int64 nanoseconds UTC."""
        return self._now

    def monotonic_ns(self) -> int:
        """Return the simulated monotonic time in nanoseconds (starts at 0)."""
        return self._mono

    @property
    def pending(self) -> int:
        """Return how many ``call_at`` callbacks have not fired yet."""
        return len(self._timers)

    def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` (rounded to the nearest nanosecond) instead of waiting."""
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ClockError(f"sleep needs finite seconds >= 0, got {seconds!r}")
        self.advance(round(seconds * NS_PER_SECOND))

    def advance(self, ns: int) -> None:
        """Move time forward by ``ns`` nanoseconds, firing every callback due on the way."""
        ns = _as_ns(ns, "advance")
        if ns < 0:
            raise ClockError(f"advance needs ns >= 0, got {ns}; use set(..., allow_backwards=True)")
        self._move_to(self._now + ns)

    def set(self, ns: int, *, allow_backwards: bool = False) -> None:
        """Set the wall time to ``ns``; going backwards needs ``allow_backwards=True``."""
        ns = _as_ns(ns, "set")
        if ns >= self._now:
            self._move_to(ns)
            return
        if not allow_backwards:
            raise ClockError(f"set would move time backwards from {self._now} to {ns} ns")
        self._check_not_firing()
        # Only wall time jumps back; monotonic time stays, and pending callbacks now lie further
        # ahead, as real wall-clock timers would after an NTP step back.
        self._now = ns

    def call_at(self, ns: int, fn: Callable[[], object]) -> None:
        """Call ``fn()`` when time reaches ``ns``; a time already reached fires on the next move."""
        ns = _as_ns(ns, "call_at")
        if ns < self._now:
            raise ClockError(f"call_at {ns} ns is in the past (now {self._now} ns)")
        heapq.heappush(self._timers, (ns, next(self._seq), fn))

    def _check_not_firing(self) -> None:
        # Moving the clock from inside a callback would let an inner move overtake the outer
        # one's target; refuse it rather than define a confusing order.
        if self._firing:
            raise ClockError("the clock cannot be moved from inside a call_at callback")

    def _move_to(self, target: int) -> None:
        """Fire due callbacks in order, each at its own time, then stop at ``target``."""
        self._check_not_firing()
        self._firing = True
        try:
            while self._timers and self._timers[0][0] <= target:
                at, _, fn = heapq.heappop(self._timers)
                self._step_to(at)
                fn()
        finally:
            # A raising callback leaves the clock at that callback's time, not at the target.
            self._firing = False
        self._step_to(target)

    def _step_to(self, ns: int) -> None:
        self._mono += ns - self._now
        self._now = ns
