"""The append-only, hash-chained ledger: one embedded SQLite database (WAL), no server.

Every row is ``(seq, ts_event, ts_wall, kind, body)`` plus ``prev_hash`` and
``hash = SHA-256(prev_hash ‖ canonical row bytes)``. ``body`` is stored as canonical JSON (sorted
keys, no spaces, finite numbers), and the canonical row bytes are the UTF-8 of
``[seq,ts_event,ts_wall,"KIND",body]`` with that text embedded as is, which is exactly the
compact sorted JSON of the row. ``seq`` starts at 1 and the
first row's ``prev_hash`` is 64 zeros, so a changed, removed, inserted or reordered row breaks
the chain at that row and ``verify`` names it.

Durability: an append is one ``BEGIN IMMEDIATE`` transaction with ``synchronous=FULL`` (the WAL
is fsynced at each commit), so a row is on disk before ``append`` returns — before the order it
records may leave. ``benchmarks/bench_ledger.py`` measures what that costs.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dolphin.core import failpoints
from dolphin.core.errors import BadInputError, DataError

GENESIS = "0" * 64
#: What a row can record.
KINDS = ("CONFIG", "DECISION", "DENIAL", "ORDER", "FILL", "POSITION", "FUNDING", "CAPITAL",
         "POSTURE", "SESSION", "SCAN")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY,
    ts_event INTEGER NOT NULL,
    ts_wall INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
)
"""


def body_text(body: Mapping[str, Any]) -> str:
    """Return ``body`` as the ledger stores it: canonical JSON (sorted keys, no spaces)."""
    return _body_json(body)


def canonical(seq: int, ts_event: int, ts_wall: int, kind: str, body: str) -> bytes:
    """Return a row's canonical bytes (``body`` is its stored canonical JSON text)."""
    return f"[{int(seq)},{int(ts_event)},{int(ts_wall)},{json.dumps(kind)},{body}]".encode()


def row_hash(prev_hash: str, seq: int, ts_event: int, ts_wall: int, kind: str,
             body: str) -> str:
    """Return ``SHA-256(prev_hash ‖ canonical row bytes)`` as hex."""
    h = hashlib.sha256(prev_hash.encode())
    h.update(canonical(seq, ts_event, ts_wall, kind, body))
    return h.hexdigest()


def _body_json(body: Mapping[str, Any]) -> str:
    try:
        return json.dumps(dict(body), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"ledger body is not finite JSON ({exc})", field="body") from None


@dataclass(frozen=True)
class Row:
    """One ledger row."""

    seq: int
    ts_event: int
    ts_wall: int
    kind: str
    body: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Verdict:
    """What ``verify`` found: ``ok``, the rows read, and the first bad row with the reason."""

    ok: bool
    rows: int
    head: str
    bad_seq: int | None = None
    reason: str = ""


class Ledger:
    """Append rows to, and read rows from, one ledger database."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise DataError(f"cannot open ledger ({exc})", source=str(self.path)) from None

    def close(self) -> None:
        """Close the database (idempotent)."""
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def head(self) -> tuple[int, str]:
        """Return ``(last seq, last hash)``; ``(0, GENESIS)`` for an empty ledger."""
        row = self._db.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
        return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))

    def append(self, kind: str, body: Mapping[str, Any], ts_event: int,
               ts_wall: int | None = None) -> Row:
        """Append one row atomically and durably; return it."""
        if kind not in KINDS:
            raise BadInputError(f"unknown ledger kind (known: {', '.join(KINDS)})", field="kind",
                                value=kind)
        text = _body_json(body)
        wall = time.time_ns() if ts_wall is None else int(ts_wall)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            seq, prev = self.head()
            seq += 1
            digest = row_hash(prev, seq, int(ts_event), wall, kind, text)
            self._db.execute("INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (seq, int(ts_event), wall, kind, text, prev, digest))
            failpoints.hit("ledger.before_commit")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        failpoints.hit("ledger.after_commit")
        failpoints.hit(f"ledger.after_commit.{kind}")
        return Row(seq, int(ts_event), wall, kind, json.loads(text), prev, digest)

    def rows(self, since_ns: int | None = None, kind: str | None = None) -> Iterator[Row]:
        """Yield rows in order, optionally from event time ``since_ns`` and of one ``kind``."""
        sql, args = "SELECT * FROM ledger", []
        where = []
        if since_ns is not None:
            where.append("ts_event >= ?")
            args.append(int(since_ns))
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        if where:
            sql += " WHERE " + " AND ".join(where)
        for r in self._db.execute(sql + " ORDER BY seq", args):
            yield Row(int(r[0]), int(r[1]), int(r[2]), str(r[3]), json.loads(r[4]), str(r[5]),
                      str(r[6]))


def _check_row(r: tuple, expected_seq: int, prev: str) -> str:
    """Return why row ``r`` breaks the chain ('' when it does not)."""
    seq, ts_event, ts_wall, kind, body, prev_hash, digest = r
    if seq != expected_seq:
        return f"seq {seq} where {expected_seq} was expected (a row is missing or inserted)"
    if prev_hash != prev:
        return "prev_hash does not match the previous row's hash"
    try:
        recomputed = row_hash(prev_hash, seq, ts_event, ts_wall, kind, body)
    except (ValueError, TypeError) as exc:
        return f"row is not well formed ({exc})"
    return "" if recomputed == digest else "hash does not match the row's contents"


def verify(path: str | Path) -> Verdict:
    """Recompute the whole chain of the ledger at ``path``; report the first bad row."""
    p = Path(path)
    if not p.exists():
        raise DataError("no such ledger", source=str(p))
    try:
        db = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        cur = db.execute("SELECT * FROM ledger ORDER BY seq")
        prev, n = GENESIS, 0
        for r in cur:
            why = _check_row(r, n + 1, prev)
            if why:
                return Verdict(False, n, prev, int(r[0]), why)
            prev, n = str(r[6]), n + 1
        return Verdict(True, n, prev)
    except sqlite3.DatabaseError as exc:
        raise DataError(f"ledger unreadable ({exc})", source=str(p)) from None
    finally:
        if "db" in locals():
            db.close()
