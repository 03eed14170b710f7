"""The hash-chained ledger: the chain worked by hand, and every kind of tampering caught."""

from __future__ import annotations

import hashlib
import itertools
import json
import sqlite3

import pandas as pd
import pytest

from dolphin.cli import main as dolphin
from dolphin.core.errors import BadInputError, DataError
from dolphin.ledger.chain import GENESIS, Ledger, verify


def _fill(i: int) -> dict:
    return {"asset": "BTCUSDT", "side": -1, "qty": 0.01 * (i + 1), "price": 60_000.0 + i}


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "ledger.db"
    with Ledger(path) as led:
        led.append("CONFIG", {"config_id": "abc"}, ts_event=1_000, ts_wall=5)
        for i in range(5):
            led.append("FILL", _fill(i), ts_event=2_000 + i, ts_wall=6 + i)
    return path


def test_the_first_rows_hash_is_worked_by_hand(tmp_path):
    with Ledger(tmp_path / "l.db") as led:
        row = led.append("CONFIG", {"config_id": "abc", "a": 1}, ts_event=7, ts_wall=9)
    text = '[1,7,9,"CONFIG",{"a":1,"config_id":"abc"}]'
    assert row.prev_hash == GENESIS
    assert row.hash == hashlib.sha256(GENESIS.encode() + text.encode()).hexdigest()


def test_an_intact_ledger_verifies_and_chains_each_row_to_the_last(db):
    v = verify(db)
    assert v.ok and v.rows == 6
    with Ledger(db) as led:
        rows = list(led.rows())
        assert [r.seq for r in rows] == list(range(1, 7))
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
        assert led.head() == (6, v.head)
        assert [r.kind for r in led.rows(kind="FILL")] == ["FILL"] * 5
        assert [r.seq for r in led.rows(since_ns=2_003)] == [5, 6]


def _sql(db, statement, *args):
    con = sqlite3.connect(db)
    con.execute(statement, args)
    con.commit()
    con.close()


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "intact"),
    [
        (("UPDATE ledger SET body = ? WHERE seq = 4", json.dumps(_fill(99))), 4, 3),
        (("UPDATE ledger SET ts_event = 1 WHERE seq = 2",), 2, 1),
        (("DELETE FROM ledger WHERE seq = 3",), 4, 2),  # the next row finds a gap
        (("UPDATE ledger SET seq = -seq WHERE seq IN (4, 5)",), 4, 3),  # step 1 of a swap
    ],
)
def test_tampering_fails_verify_at_the_right_row(db, tamper, bad_seq, intact):
    _sql(db, *tamper)
    if tamper[0].startswith("UPDATE ledger SET seq = -seq"):  # reorder: rows 4 and 5 swap
        _sql(db, "UPDATE ledger SET seq = 5 WHERE seq = -4")
        _sql(db, "UPDATE ledger SET seq = 4 WHERE seq = -5")
    v = verify(db)
    assert not v.ok and v.bad_seq == bad_seq and v.rows == intact


def test_a_truncated_or_junk_file_is_a_typed_error(db, tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(db.read_bytes()[:100])
    with pytest.raises(DataError):
        verify(junk)
    with pytest.raises(DataError):
        verify(tmp_path / "missing.db")


def test_bad_rows_are_refused_before_anything_is_written(tmp_path):
    with Ledger(tmp_path / "l.db") as led:
        with pytest.raises(BadInputError):
            led.append("TRADE", {}, ts_event=1)
        with pytest.raises(BadInputError):
            led.append("FILL", {"price": float("nan")}, ts_event=1)
        assert led.head() == (0, GENESIS)


def test_the_cli_verifies_shows_and_exports(db, tmp_path, capsys):
    assert dolphin(["ledger", "verify", str(db)]) == 0
    assert "6 rows, chain intact" in capsys.readouterr().out
    assert dolphin(["ledger", "show", str(db), "--kind", "FILL"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and json.loads(lines[0])["body"]["price"] == 60_000.0
    out = tmp_path / "fills.parquet"
    assert dolphin(["ledger", "export", str(db), "--out", str(out), "--kind", "FILL"]) == 0
    df = pd.read_parquet(out)
    assert list(df["qty"]) == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.05])
    _sql(db, "UPDATE ledger SET body = '{}' WHERE seq = 2")
    assert dolphin(["ledger", "verify", str(db)]) == 1
    assert "BROKEN at row 2" in capsys.readouterr().out


def test_the_session_recorder_writes_one_row_per_event_and_postures_on_change(tmp_path):
    import numpy as np

    from dolphin.core.records import DENIAL_DTYPE
    from dolphin.ledger.recorder import SessionRecorder

    with Ledger(tmp_path / "s.db") as led:
        rec = SessionRecorder(led)
        rec.config(1, "cfg", "venue-cfg", ["A", "B"])
        rec.posture(2, "APEX")
        rec.posture(3, "APEX")  # unchanged: no row
        rec.posture(4, "TURTLE")
        rec.denials(np.array([(5, 7, 1, -1, 1, 2, 900.0, 25_000.0, np.nan)], dtype=DENIAL_DTYPE),
                    ["A", "B"])
        assert rec.order(6, "OPEN", "B", -1, 900.0) is True
        rec.fill(7, "B", -1, 0.5, 1_800.0, 0.45)
        rec.funding(8, -0.12)
        rec.capital(9, 25_001.5)
        rec.decision(10, 3, 12, float("nan"), "TURTLE", 0)
        rows = list(led.rows())
    assert [r.kind for r in rows] == ["CONFIG", "POSTURE", "POSTURE", "DENIAL", "ORDER", "FILL",
                                      "FUNDING", "CAPITAL", "DECISION"]
    assert rows[3].body == {"bar": 7, "asset": "B", "direction": -1, "reason": "reduce_only",
                            "posture": "TURTLE", "notional": 900.0, "equity": 25_000.0}
    assert rows[5].body == {"asset": "B", "side": -1, "qty": 0.5, "price": 1_800.0,
                            "commission": 0.45}
    # a non-finite signal is recorded as null: the ledger holds finite JSON only
    assert rows[8].body == {"bar": 3, "scan_number": 12, "vel_div": None, "posture": "TURTLE",
                            "intents": 0}
    assert [r.ts_event for r in rows] == [1, 2, 4, 5, 6, 7, 8, 9, 10]
    assert verify(tmp_path / "s.db").ok
