"""The trade log fsyncs every line and never keeps a torn line (DESIGN.md: nothing half-written)."""

from __future__ import annotations

import csv
import os

from dolphin.ledger import tradelog
from dolphin.ledger.tradelog import TradeLogger


def test_every_logged_fill_is_fsynced_before_log_returns(tmp_path, monkeypatch):
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(tradelog.os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    log = TradeLogger(tmp_path, {}, session="s")
    header = len(synced)
    for i in range(3):
        log.log(ts_ns=i, event="FILL", asset="BTCUSDT", side="BUY", qty=1, price=1.0)
        assert len(synced) == header + i + 1
    log.close()


def test_a_line_torn_by_a_crash_is_cut_when_the_log_is_reopened(tmp_path):
    log = TradeLogger(tmp_path, {}, session="s")
    log.log(ts_ns=1, event="FILL", asset="BTCUSDT", side="SELL", qty=1, price=2.0)
    log.close()
    path = tmp_path / "trades_s.csv"
    with path.open("ab") as fh:
        fh.write(b"2,FILL,BTCUSDT,BU")  # power loss mid-line
    log = TradeLogger(tmp_path, {}, session="s")
    log.log(ts_ns=3, event="FILL", asset="BTCUSDT", side="BUY", qty=1, price=1.9)
    log.close()
    rows = list(csv.DictReader(path.open()))
    assert [(r["ts_ns"], r["side"]) for r in rows] == [("1", "SELL"), ("3", "BUY")]


def test_a_torn_header_is_replaced_by_a_whole_one(tmp_path):
    path = tmp_path / "trades_s.csv"
    path.write_bytes(b"ts_ns,ev")
    log = TradeLogger(tmp_path, {}, session="s")
    log.log(ts_ns=1, event="FILL", asset="X", side="BUY", qty=1, price=1.0)
    log.close()
    assert path.read_text().splitlines()[0].startswith("ts_ns,ts_wall_ns,event,asset")
