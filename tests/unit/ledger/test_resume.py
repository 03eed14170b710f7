"""Resuming from a ledger: the rerun's rows checked one by one, then appended; the postures it
trades under; failpoints that kill the process where a crash test asks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from dolphin.core import failpoints
from dolphin.core.errors import ConfigError
from dolphin.ledger.chain import Ledger, verify
from dolphin.ledger.resume import RecordedPostures, ResumingLedger


@pytest.fixture
def prior(tmp_path):
    path = tmp_path / "l.db"
    with Ledger(path) as led:
        led.append("CONFIG", {"config_id": "c"}, 1)
        led.append("SESSION", {"session": "first"}, 1)
        led.append("POSTURE", {"posture": "APEX"}, 10)
        led.append("ORDER", {"asset": "X", "notional": 100.0}, 20)
        led.append("POSTURE", {"posture": "TURTLE"}, 30)
        rows = list(led.rows())
    return path, rows


def test_a_rerun_is_checked_row_by_row_then_appended(prior):
    path, rows = prior
    with Ledger(path) as led:
        seen = []
        res = ResumingLedger(rows, led, on_row=seen.append)
        assert not res.caught_up  # CONFIG and SESSION rows are not regenerated
        assert res.append("POSTURE", {"posture": "APEX"}, 10) is rows[2]
        assert res.append("ORDER", {"notional": 100.0, "asset": "X"}, 20) is rows[3]  # key order
        assert res.append("POSTURE", {"posture": "TURTLE"}, 30) is rows[4]
        assert res.caught_up and res.matched == 3 and res.appended == 0
        new = res.append("ORDER", {"asset": "Y"}, 40)
        assert new.seq == 6 and res.appended == 1
        assert seen == [rows[2], rows[3], rows[4], new]
    assert verify(path).ok and res.finish() is None


@pytest.mark.parametrize("kind, body, ts", [
    ("ORDER", {"asset": "X", "notional": 100.0}, 10),  # wrong kind
    ("POSTURE", {"posture": "APEX"}, 11),  # wrong event time
    ("POSTURE", {"posture": "STALKER"}, 10),  # wrong body
])
def test_the_first_row_that_differs_stops_every_append(prior, kind, body, ts):
    path, rows = prior
    with Ledger(path) as led:
        res = ResumingLedger(rows, led)
        assert res.append(kind, body, ts) is None
        assert not res.ok and res.mismatch.seq == 3
        assert res.append("POSTURE", {"posture": "APEX"}, 10) is None  # nothing after it either
        assert led.head()[0] == 5  # the ledger was not touched
    line = res.mismatch.describe()
    assert line.startswith('row 3: ledger has POSTURE at 10 {"posture":"APEX"}; the rerun gives')


def test_a_rerun_that_ends_early_names_the_row_it_never_reached(prior):
    _, rows = prior
    res = ResumingLedger(rows, None)
    res.append("POSTURE", {"posture": "APEX"}, 10)
    m = res.finish()
    assert m.seq == 4 and m.got_kind is None
    assert m.describe().startswith("row 4: the rerun ended before reproducing ORDER at 20")


def test_a_check_only_rerun_counts_what_goes_past_the_ledger(prior):
    _, rows = prior
    res = ResumingLedger(rows, None)
    for kind, body, ts in [("POSTURE", {"posture": "APEX"}, 10),
                           ("ORDER", {"asset": "X", "notional": 100.0}, 20),
                           ("POSTURE", {"posture": "TURTLE"}, 30), ("ORDER", {}, 40)]:
        res.append(kind, body, ts)
    assert res.caught_up and res.beyond == 1 and res.finish() is None


def test_recorded_postures_follow_the_event_clock(prior):
    _, rows = prior
    now = [5]
    src = RecordedPostures(rows, lambda: now[0])
    assert src() is None  # before the first posture: unknown, read as TURTLE by the guard
    for t, want in [(10, "APEX"), (29, "APEX"), (30, "TURTLE"), (10**18, "TURTLE")]:
        now[0] = t
        assert src() == want


def test_failpoint_specs_parse_or_fail_with_the_entry():
    assert failpoints.parse("a=1, b.c=20,") == {"a": 1, "b.c": 20}
    for bad in ("a", "a=0", "a=x", "=3"):
        with pytest.raises(ConfigError, match="bad failpoint"):
            failpoints.parse(bad)


_CHILD = """
import sys
from dolphin.ledger.chain import Ledger
with Ledger(sys.argv[1]) as led:
    for i in range(10):
        led.append("DECISION", {"bar": i}, i)
"""


@pytest.mark.parametrize("spec, rows", [
    ("ledger.before_commit=4", 3),  # killed inside the 4th append's transaction: not there
    ("ledger.after_commit=4", 4),  # killed just after the 4th commit: there
    ("ledger.after_commit.DECISION=7", 7),
])
def test_a_failpoint_kills_the_process_and_the_ledger_keeps_whole_rows(tmp_path, spec, rows):
    path = tmp_path / "k.db"
    env = {**os.environ, failpoints.ENV: spec}
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path)], env=env, timeout=60,
                          check=False, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    v = verify(path)
    assert v.ok and v.rows == rows


def test_journalled_scans_are_inputs_not_regenerated(tmp_path):
    # a store-fed trader's SCAN rows are what its rerun feeds back, so the rerun is checked
    # against the other rows only, and a SCAN appended after catching up is a new row
    path = tmp_path / "scan.db"
    with Ledger(path) as led:
        led.append("CONFIG", {"config_id": "c"}, 1)
        led.append("SCAN", {"scan_number": 5}, 10)
        led.append("DECISION", {"scan_number": 5}, 10)
        led.append("SCAN", {"scan_number": 6}, 20)  # journalled, then the process died
        rows = list(led.rows())
        res = ResumingLedger(rows, led)
        assert [r.kind for r in res.expected] == ["DECISION"]
        assert res.append("DECISION", {"scan_number": 5}, 10) is rows[2]
        assert res.caught_up
        decided = res.append("DECISION", {"scan_number": 6}, 20)  # the scan it never decided
        assert decided.seq == 5 and res.appended == 1
    assert verify(path).ok
