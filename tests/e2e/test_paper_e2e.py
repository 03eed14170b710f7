"""End to end: `dolphin paper` on the committed real sample, sandbox venue, replayed live.

The session must place and close orders, print status lines and a summary, exit 0, and leave
a settings JSON and a trades CSV whose fills match the summary.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pandas as pd

from tests.kit.paths import SAMPLE, require


def test_paper_session_trades_and_exits_cleanly(tmp_path):
    bars = require(SAMPLE / "bars_1m_sample.parquet")
    cmd = [sys.executable, "-m", "dolphin", "paper", "--replay", str(bars), "--speed", "6000",
           "--duration", "12", "--log-dir", str(tmp_path), "--unsupervised",
           "--ledger", str(tmp_path / "ledger.db")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert any("posture=APEX" in ln and "capital=" in ln for ln in lines)
    summary = json.loads(next(ln for ln in lines if ln.startswith("session "))[8:])
    assert summary["trades"] >= 1 and summary["orders"] == 2 * summary["trades"]
    assert summary["open_positions"] == 0
    with open(summary["trades_file"]) as fh:
        fills = list(csv.DictReader(fh))
    assert len(fills) == summary["orders"]
    bar_times = pd.to_datetime([int(f["ts_ns"]) for f in fills], utc=True)
    assert bar_times.min() >= pd.Timestamp("2021-04-12", tz="UTC")  # the bar's time, not 2026's
    assert bar_times.max() < pd.Timestamp("2021-04-19", tz="UTC")
    assert all(int(f["ts_wall_ns"]) > int(f["ts_ns"]) for f in fills)
    assert {f["side"] for f in fills} == {"BUY", "SELL"}
    _check_ledger(tmp_path / "ledger.db", summary, len(fills))
    with open(summary["settings_file"]) as fh:
        settings = json.load(fh)
    assert settings["config"]["alpha"]["use_sp_fees"] is False


def test_paper_session_without_a_posture_source_reads_turtle_and_never_enters(tmp_path):
    bars = require(SAMPLE / "bars_1m_sample.parquet")
    cmd = [sys.executable, "-m", "dolphin", "paper", "--replay", str(bars), "--speed", "6000",
           "--duration", "8", "--log-dir", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert any("reads TURTLE" in ln for ln in lines)
    assert any("posture=TURTLE" in ln for ln in lines)
    assert not any("posture=APEX" in ln for ln in lines)
    summary = json.loads(next(ln for ln in lines if ln.startswith("session "))[8:])
    assert summary["trades"] == 0 and summary["orders"] == 0
    # the engine decided entries; the risk gate refused each one and the trade log kept it
    assert summary["denials"] >= 1
    with open(summary["trades_file"]) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == summary["denials"]
    assert {r["event"] for r in rows} == {"DENIED"}
    assert {r["reason"] for r in rows} == {"reduce_only"}  # TURTLE: reductions only


def _check_ledger(path, summary, n_fills):
    """The session's ledger: intact chain, one CONFIG first, every order and fill, capital."""
    from dolphin.ledger.chain import Ledger, verify

    v = verify(path)
    assert v.ok, v
    with Ledger(path) as led:
        rows = list(led.rows())
    kinds = [r.kind for r in rows]
    assert kinds[0] == "CONFIG" and rows[0].body["config_id"] == summary["config_id"]
    assert kinds.count("FILL") == n_fills
    # every engine order (entries, exits, the final flatten) is written before it is sent
    assert kinds.count("ORDER") == summary["orders"]
    assert kinds.count("CAPITAL") >= summary["trades"] >= 1
    # one DECISION per scan stepped; the session was stopped by --duration before the data's end
    assert 0 < kinds.count("DECISION") <= summary["bars"]
    # event times are the replayed bars' times (April 2021), wall times when it was written
    first, last = pd.Timestamp("2021-04-12", tz="UTC").value, pd.Timestamp("2021-04-19", tz="UTC")
    assert all(first <= r.ts_event < last.value for r in rows)
    assert all(r.ts_wall > pd.Timestamp("2025-01-01", tz="UTC").value for r in rows)
