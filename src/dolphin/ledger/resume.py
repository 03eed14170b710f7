"""Resuming a session from its ledger: regenerate the rows it holds, then go on appending.

A trader restarted over an existing ledger reruns its session from the start on the same data
(a replayed session's bars are deterministic, and so are the engine and the sandbox venue).
Every row the rerun would append is compared with the ledger's next row instead — kind, event
time and canonical body, byte for byte — so the engine, the venue and the ledger's fold are
rebuilt exactly as they were; once the rerun has regenerated the last row it appends for real.
The first row that differs is an invariant break: the rerun stops appending and reports it.

``SESSION`` rows (one per start) record restarts and the ``CONFIG`` row the session itself
(a restart checks it against its own config and data instead): neither is regenerated. Nor are
``SCAN`` rows: a trader fed by the store (the mesh) journals each scan it takes before acting on
it, and its rerun takes them back as its input.
With no ledger to append to (``dolphin replay-session``) the check ends at the last row.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dolphin.ledger.chain import Ledger, Row, body_text

#: Rows a rerun does not regenerate.
NOT_REGENERATED = frozenset({"SESSION", "CONFIG", "SCAN"})
#: How much of a body a mismatch line shows.
SHOW_CHARS = 240


@dataclass(frozen=True)
class Mismatch:
    """The first row a rerun did not reproduce (``got_kind`` None: the rerun ended first)."""

    seq: int
    kind: str
    ts_event: int
    body: dict[str, Any]
    got_kind: str | None = None
    got_ts_event: int | None = None
    got_body: dict[str, Any] | None = None

    def describe(self) -> str:
        """Return one line saying what differs."""
        want = f"{self.kind} at {self.ts_event} {_clip(body_text(self.body))}"
        if self.got_kind is None:
            return f"row {self.seq}: the rerun ended before reproducing {want}"
        got = f"{self.got_kind} at {self.got_ts_event} {_clip(body_text(self.got_body or {}))}"
        return f"row {self.seq}: ledger has {want}; the rerun gives {got}"


def _clip(text: str) -> str:
    return text if len(text) <= SHOW_CHARS else text[:SHOW_CHARS] + "..."


class ResumingLedger:
    """Stand in for ``Ledger`` (same ``append``): check against ``rows``, then append to
    ``ledger`` (None: check only)."""

    def __init__(self, rows: Sequence[Row], ledger: Ledger | None,
                 on_row: Callable[[Row], None] | None = None) -> None:
        self.expected = [r for r in rows if r.kind not in NOT_REGENERATED]
        self.ledger = ledger
        self.on_row = on_row
        self.matched = 0
        self.appended = 0
        self.beyond = 0  # rows a check-only rerun produced past the ledger's end
        self.mismatch: Mismatch | None = None

    @property
    def caught_up(self) -> bool:
        """True once every row of the ledger has been regenerated."""
        return self.matched >= len(self.expected)

    @property
    def ok(self) -> bool:
        """False after a mismatch."""
        return self.mismatch is None

    def append(self, kind: str, body: Mapping[str, Any], ts_event: int,
               ts_wall: int | None = None) -> Row | None:
        """Check or append one row; return it, or None (a mismatch, or past a check's end)."""
        if self.mismatch is not None:
            return None
        if not self.caught_up:
            want = self.expected[self.matched]
            if (want.kind == kind and want.ts_event == int(ts_event)
                    and body_text(want.body) == body_text(body)):
                self.matched += 1
                if self.on_row is not None:
                    self.on_row(want)
                return want
            self.mismatch = Mismatch(want.seq, want.kind, want.ts_event, want.body, kind,
                                     int(ts_event), dict(body))
            return None
        if self.ledger is None:
            self.beyond += 1
            return None
        row = self.ledger.append(kind, body, ts_event, ts_wall)
        self.appended += 1
        if self.on_row is not None:
            self.on_row(row)
        return row

    def finish(self) -> Mismatch | None:
        """Return the mismatch, or the first row the rerun never reached, or None."""
        if self.mismatch is None and not self.caught_up:
            want = self.expected[self.matched]
            self.mismatch = Mismatch(want.seq, want.kind, want.ts_event, want.body)
        return self.mismatch


class RecordedPostures:
    """A posture source that returns the posture the ledger recorded as of the event time.

    During a rerun the posture the session traded under must be the one it had then, not the
    one published now: POSTURE rows carry the scan time at which each posture took effect.
    """

    def __init__(self, rows: Sequence[Row], now_ns: Callable[[], int]) -> None:
        marks = [(r.ts_event, str(r.body["posture"])) for r in rows if r.kind == "POSTURE"]
        self._ts = [t for t, _ in marks]
        self._posture = [p for _, p in marks]
        self.now_ns = now_ns

    def __call__(self) -> str | None:
        """Return the recorded posture in force at ``now_ns()`` (None before the first)."""
        i = bisect.bisect_right(self._ts, self.now_ns()) - 1
        return self._posture[i] if i >= 0 else None
