"""Ledger speed: durable appends per second, and ``verify`` of 1,000,000 rows; ONE JSON line.

Appends go through ``Ledger.append`` (one transaction each, ``synchronous=FULL``: on disk before
it returns); the baseline in the same run is the same appends with ``synchronous=OFF`` (no fsync),
so the ratio is what durability costs on this disk. ``verify`` recomputes the chain of a
1,000,000-row ledger built with the chain's own hashing in bulk (target ≤ 10 s).
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from dolphin.ledger.chain import _SCHEMA, GENESIS, Ledger, row_hash, verify

BODY = {"asset": "BTCUSDT", "side": -1, "qty": 0.0123, "price": 61234.5, "commission": 0.37}


def _appends(path: Path, n: int, sync: str) -> float:
    with Ledger(path) as led:
        led._db.execute(f"PRAGMA synchronous={sync}")
        t = time.perf_counter()
        for i in range(n):
            led.append("FILL", BODY, ts_event=i, ts_wall=i)
        return n / (time.perf_counter() - t)


def _bulk(path: Path, n: int) -> None:
    body = json.dumps(BODY, sort_keys=True, separators=(",", ":"))
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(_SCHEMA)
    prev, rows = GENESIS, []
    for seq in range(1, n + 1):
        h = row_hash(prev, seq, seq, seq, "FILL", body)
        rows.append((seq, seq, seq, "FILL", body, prev, h))
        prev = h
    con.executemany("INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    con.commit()
    con.close()


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        durable = _appends(d / "full.db", 2_000, "FULL")
        fast = _appends(d / "off.db", 2_000, "OFF")
        _bulk(d / "big.db", 1_000_000)
        t = time.perf_counter()
        v = verify(d / "big.db")
        verify_s = time.perf_counter() - t
    print(json.dumps({
        "bench": "ledger", "appends_per_s_durable": round(durable), "baseline": "synchronous=OFF",
        "appends_per_s_no_fsync": round(fast), "durability_cost_ratio": round(fast / durable, 2),
        "verify_rows": v.rows, "verify_ok": v.ok, "verify_s": round(verify_s, 2),
        "verify_target_s": 10.0, "meets_target": v.ok and verify_s <= 10.0,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
