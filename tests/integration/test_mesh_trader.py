"""The mesh trader on a real NautilusTrader node, fed by a store: scans published by a real
``ScanService`` on the committed sample bars, posture APEX published as the watchdog does.

Checks: every store scan is journalled (a SCAN row) before its decision; a restart over the same
ledger reruns the journalled scans and reproduces every row (no mismatch), then takes new
store scans only (numbers above the last journalled); a duplicate or older scan is dropped; a
ledger whose chain was tampered with refuses to trade.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dolphin.adapters.nautilus.mesh_trader import TraderSettings, run_mesh_trader, scan_row
from dolphin.core.clock import LiveClock
from dolphin.core.config import DolphinConfig
from dolphin.core.errors import InvariantBreakError
from dolphin.data.wide import load_real_closes
from dolphin.ledger.chain import Ledger, verify
from dolphin.services.bars import BarBuilder, BarSet, BarSource
from dolphin.services.scan_service import ScanService
from dolphin.store.errors import MalformedValueError
from dolphin.store.features import posture_cell, set_posture
from dolphin.store.memory import MemoryStore
from dolphin.store.schema import FEATURES, LATEST_EIGEN_SCAN

REPO = Path(__file__).resolve().parents[2]
BARS = REPO / "data" / "sample" / "bars_1m_sample.parquet"

pytestmark = pytest.mark.timeout(300)


class Publisher:
    """Scans of bars ``[0, end)`` of the sample: ``[0, start)`` fed silently (the scanner's
    windows), ``[start, end)`` published one every ``pace_s``; posture APEX every 50 bars."""

    def __init__(self, store: MemoryStore) -> None:
        real = load_real_closes(BARS)
        self.ts = real["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        real = real.drop(columns=["timestamp"])
        self.names = [str(c) for c in real.columns]
        self.values = real.to_numpy(dtype=np.float64)
        self.store = store
        self.svc = ScanService(store, BarBuilder(sorted(self.names), source=BarSource.KLINES,
                                                 interval_s=60), clock=LiveClock(), name="scan")
        self.svc.start()
        self.seq = 0
        self.done = threading.Event()

    def closes(self, i: int) -> dict[str, float]:
        return {s: float(v) for s, v in zip(self.names, self.values[i], strict=True)
                if np.isfinite(v)}

    def run(self, start: int, end: int, pace_s: float = 0.003, delay_s: float = 2.0) -> None:
        for i in range(start):
            self.svc.scanner.update(pd.Timestamp(int(self.ts[i]), tz="UTC"), self.closes(i))
        time.sleep(delay_s)  # the node starts
        for i in range(start, end):
            if (i - start) % 50 == 0:
                self.seq += 1
                set_posture(self.store, {"posture": "APEX", "rm": 1.0}, self.seq)
            c = self.closes(i)
            self.svc.on_bar_set(BarSet(int(self.ts[i]), c, dict.fromkeys(c, False), {}))
            time.sleep(pace_s)
        self.done.set()


def _session(tmp: Path, start: int, end: int, *, replay_old: bool = False) -> dict:
    store = MemoryStore("mesh-trader")
    texts: list[str] = []
    store.map(FEATURES).add_listener(lambda e: texts.append(e.value), key=LATEST_EIGEN_SCAN)
    pub = Publisher(store)
    feeder = threading.Thread(target=pub.run, args=(start, end), daemon=True)
    feeder.start()
    stop_at = [float("inf")]

    def stop() -> bool:
        if pub.done.is_set() and stop_at[0] == float("inf"):
            stop_at[0] = time.monotonic() + 2.0
            if replay_old:  # an older scan delivered again (a retried put, a stale cache)
                store.map(FEATURES).put(LATEST_EIGEN_SCAN, texts[5])
        return time.monotonic() > stop_at[0]

    s = TraderSettings(bars=BARS, ledger=tmp / "ledger.sqlite", log_dir=tmp / "trader",
                       heartbeat_s=0.2, status_every_s=60)
    summary = run_mesh_trader(DolphinConfig(), s, store=store,
                              posture_source=posture_cell(store).read, echo=lambda line: None,
                              stop=stop)
    feeder.join(10)
    store.close()
    return summary


def _kinds(path: Path) -> tuple[Counter, list]:
    with Ledger(path) as led:
        rows = list(led.rows())
    return Counter(r.kind for r in rows), rows


def test_journals_every_scan_and_a_restart_reproduces_then_continues(tmp_path: Path):
    first = _session(tmp_path, 1000, 1600)
    assert first["rerun_mismatch"] is None and first["halted"] is None
    kinds, rows = _kinds(tmp_path / "ledger.sqlite")
    assert kinds["SCAN"] == 600 == first["scans"]  # every published scan taken, in order
    assert kinds["DECISION"] == 600
    # each scan is journalled before the decision it leads to
    order = [r.kind for r in rows if r.kind in ("SCAN", "DECISION")]
    assert order == ["SCAN", "DECISION"] * 600
    numbers = [r.body["scan_number"] for r in rows if r.kind == "SCAN"]
    assert numbers == sorted(numbers) and len(set(numbers)) == 600
    assert kinds["FILL"] >= 2, kinds  # the sample trades in these bars (APEX, champion)

    # an older scan re-put at the end of the second session: dropped, not journalled
    second = _session(tmp_path, 1600, 1800, replay_old=True)
    assert second["duplicates"] >= 1  # (a value put while the listener registers counts too)
    assert second["resumed_rows"] == len(rows)
    assert second["rerun_scans"] == 600 and second["rerun_mismatch"] is None
    assert second["halted"] is None
    kinds2, rows2 = _kinds(tmp_path / "ledger.sqlite")
    assert kinds2["SESSION"] == 2 and kinds2["CONFIG"] == 1
    assert kinds2["SCAN"] == 800
    numbers2 = [r.body["scan_number"] for r in rows2 if r.kind == "SCAN"]
    assert numbers2 == sorted(set(numbers2))  # strictly increasing across the restart
    assert verify(tmp_path / "ledger.sqlite").ok
    # the rerun rebuilt the same capital as the first session ended with before going on
    caps = [r.body["balance"] for r in rows if r.kind == "CAPITAL"]
    if caps:
        assert second["capital"] != 0 and first["capital"] == pytest.approx(caps[-1])


def test_a_tampered_ledger_refuses_to_trade(tmp_path: Path):
    _session(tmp_path, 1000, 1200)
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    db.execute("UPDATE ledger SET body = replace(body, 'APEX', 'TURTLE') WHERE kind='POSTURE'")
    db.commit()
    db.close()
    assert not verify(tmp_path / "ledger.sqlite").ok
    with pytest.raises(InvariantBreakError, match="fails verification"):
        _session(tmp_path, 1200, 1250)


def test_scan_row_keeps_the_traders_assets_in_order_and_names_a_missing_field():
    payload = {"timestamp_ns": 1, "scan_number": 7, "vel_div": -0.03, "data_gap": False,
               "v750_lambda_max_velocity": None, "asset_prices": {"B": 2.0, "A": 1.0}}
    body = scan_row(payload, ["A", "B", "C"])
    assert list(body["asset_prices"].items()) == [("A", 1.0), ("B", 2.0), ("C", None)]
    assert body["scan_number"] == 7 and body["v750_lambda_max_velocity"] is None
    with pytest.raises(MalformedValueError, match="vel_div"):
        scan_row({k: v for k, v in payload.items() if k != "vel_div"}, ["A"])
    with pytest.raises(MalformedValueError, match="asset_prices"):
        scan_row({**payload, "asset_prices": [1.0]}, ["A"])

