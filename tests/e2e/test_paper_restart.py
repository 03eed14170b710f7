"""Restart = cold start: a paper session killed with SIGKILL at 20 points resumes from its ledger
and ends exactly where an uninterrupted session on the same bars ends.

Two chains of kills on two days of the committed real sample: one at failpoints (right after an
ORDER row, i.e. between an order and its fill; right after an entry FILL, i.e. during a
position; inside an append's open transaction; after a CAPITAL row), one by an outside
``kill -9`` once the ledger has grown by a random number of rows. After each kill the ledger
still verifies; after the last restart runs to the end, every row but the SESSION markers
equals the uninterrupted session's — decisions, orders, fills, capital — and so do the
summary's capital, trade count and the store view rebuilt from the ledger.

Then what must halt halts: a ledger that fails verification, a rerun that differs from a
(re-chained) ledger, a venue whose balance disagrees with the ledger's, all exit 4 with the
reason; and ``dolphin replay-session`` reproduces the reference ledger or names the first
differing row.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dolphin.ledger.chain import GENESIS, Ledger, row_hash, verify
from dolphin.ledger.views import LedgerView
from tests.kit.paths import SAMPLE, require

TIMEOUT_S = 240


@pytest.fixture(scope="module")
def bars(tmp_path_factory) -> Path:
    """The first two days of the committed real sample (20 assets, 1 m bars)."""
    sample = pd.read_parquet(require(SAMPLE / "bars_1m_sample.parquet"))
    first = sample["timestamp"].min()
    out = tmp_path_factory.mktemp("bars") / "bars_2d.parquet"
    sample[sample["timestamp"] < first + pd.Timedelta(days=2)].to_parquet(out)
    return out


def _cmd(bars: Path, db: Path, logs: Path, supervised: bool = False) -> list[str]:
    return [sys.executable, "-m", "dolphin", "paper", "--replay", str(bars), "--speed", "1e6",
            "--warmup", "100000", "--duration", "600", "--log-dir", str(logs), "--ledger", str(db),
            *([] if supervised else ["--unsupervised"])]


def _summary(stdout: str) -> dict:
    return json.loads(next(ln for ln in stdout.splitlines() if ln.startswith("session "))[8:])


def _run(bars: Path, db: Path, logs: Path, failpoints: str = "",
         supervised: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOLPHIN_FAILPOINTS": failpoints}
    return subprocess.run(_cmd(bars, db, logs, supervised), capture_output=True, text=True,
                          env=env, timeout=TIMEOUT_S, check=False)


def _rows(db: Path) -> list[tuple]:
    """The rows a rerun must reproduce: all but the SESSION markers, without wall times."""
    with Ledger(db) as led:
        return [(r.kind, r.ts_event, r.body) for r in led.rows() if r.kind != "SESSION"]


def _head(db: Path) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)
    try:
        return int(con.execute("SELECT coalesce(max(seq), 0) FROM ledger").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        con.close()


@pytest.fixture(scope="module")
def reference(bars, tmp_path_factory):
    """An uninterrupted session: its ledger rows and summary."""
    d = tmp_path_factory.mktemp("reference")
    proc = _run(bars, d / "ledger.db", d)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = _summary(proc.stdout)
    assert summary["trades"] >= 5 and summary["open_positions"] == 0
    return d / "ledger.db", _rows(d / "ledger.db"), summary


def _check_kill(db: Path, what: str) -> LedgerView:
    v = verify(db)
    assert v.ok, (what, v)
    with Ledger(db) as led:
        return LedgerView.rebuild(led.rows())


def _finish_and_compare(bars, db, logs, reference, kills: int) -> dict:
    proc = _run(bars, db, logs)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = _summary(proc.stdout)
    _, ref_rows, ref = reference
    got = _rows(db)
    first = next((i for i, (a, b) in enumerate(zip(got, ref_rows, strict=False)) if a != b), None)
    assert got == ref_rows, f"first difference at row {first}: {got[first]} vs {ref_rows[first]}"
    assert summary["capital"] == ref["capital"]
    assert summary["trades"] == ref["trades"] and summary["orders"] == ref["orders"]
    assert summary["rerun_mismatch"] is None and summary["halted"] is None
    with Ledger(db) as led:
        rows = list(led.rows())
    assert [r.kind for r in rows].count("SESSION") == kills + 1
    assert summary["state"] == LedgerView.rebuild(rows).state()  # the store view = the ledger's
    return summary


def test_kills_at_failpoints_resume_exactly(bars, reference, tmp_path):
    db = tmp_path / "ledger.db"
    points = [
        ("ledger.after_commit.ORDER=1", "between the first order and its fill"),
        ("ledger.after_commit.FILL=1", "right after an entry fill: during a position"),
        ("ledger.before_commit=7", "inside an append's open transaction"),
        ("ledger.after_commit.ORDER=2", "between an exit order and its fill"),
        ("ledger.after_commit.CAPITAL=1", "right after a capital change"),
        ("ledger.before_commit=400", "inside an append's open transaction"),
        ("ledger.after_commit.FILL=3", "after a fill"),
        ("ledger.after_commit.ORDER=3", "between an order and its fill"),
        ("ledger.after_commit.DECISION=300", "after a decision, between bars"),
        ("ledger.before_commit=90", "inside an append's open transaction"),
    ]
    seen_open, seen_order_head = False, False
    for fp, what in points:
        before = _head(db)
        proc = _run(bars, db, tmp_path, fp)
        assert proc.returncode == -signal.SIGKILL, (fp, proc.returncode, proc.stderr[-2000:])
        view = _check_kill(db, what)
        with Ledger(db) as led:
            last = list(led.rows())[-1]
        if fp.startswith("ledger.after_commit.ORDER"):
            assert last.kind == "ORDER"  # killed before the order was sent
            seen_order_head = True
        if fp.startswith("ledger.before_commit"):  # the N-th append never committed
            assert _head(db) == before + int(fp.rpartition("=")[2]) - 1
        seen_open |= bool(view.positions)
    assert seen_open and seen_order_head
    _finish_and_compare(bars, db, tmp_path, reference, kills=len(points))


def test_kills_at_random_points_resume_exactly(bars, reference, tmp_path):
    seed = 20261201
    rng = random.Random(seed)
    db = tmp_path / "ledger.db"
    total = len(reference[1])
    kills = 10
    for k in range(kills):
        start = _head(db)
        target = start + rng.randint(5, max(6, (total - start) // 3))
        proc = subprocess.Popen(_cmd(bars, db, tmp_path), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while _head(db) < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            assert proc.poll() is None, f"seed {seed}: kill {k} came after the session ended"
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        _check_kill(db, f"seed {seed}: random kill {k} at row ~{target}")
    _finish_and_compare(bars, db, tmp_path, reference, kills=kills)


def _rechain(db: Path, edit) -> None:
    """Rewrite rows with ``edit(seq, kind, body) -> body`` and recompute every hash, so the
    chain verifies: only a rerun can tell the ledger is wrong."""
    con = sqlite3.connect(db)
    rows = con.execute("SELECT seq, ts_event, ts_wall, kind, body FROM ledger ORDER BY seq")
    prev, out = GENESIS, []
    for seq, ts_event, ts_wall, kind, body in rows.fetchall():
        text = json.dumps(edit(seq, kind, json.loads(body)), sort_keys=True,
                          separators=(",", ":"))
        digest = row_hash(prev, seq, ts_event, ts_wall, kind, text)
        out.append((text, prev, digest, seq))
        prev = digest
    con.executemany("UPDATE ledger SET body = ?, prev_hash = ?, hash = ? WHERE seq = ?", out)
    con.commit()
    con.close()
    assert verify(db).ok


def _first_seq(db: Path, kind: str) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute("SELECT min(seq) FROM ledger WHERE kind = ?", (kind,)).fetchone()[0])
    finally:
        con.close()


def _copy(src: Path, dst: Path) -> Path:
    with Ledger(src):  # checkpoint: the WAL's rows into the main file
        pass
    dst.write_bytes(src.read_bytes())
    return dst


def test_a_tampered_ledger_is_refused(bars, reference, tmp_path):
    db = _copy(reference[0], tmp_path / "tampered.db")
    con = sqlite3.connect(db)
    con.execute("UPDATE ledger SET body = replace(body, '\"qty\":', '\"qty\":1') "
                "WHERE seq = (SELECT min(seq) FROM ledger WHERE kind = 'FILL')")
    con.commit()
    con.close()
    proc = _run(bars, db, tmp_path)
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert "fails verification at row" in proc.stderr and "HIBERNATE" in proc.stderr


def test_a_rerun_that_differs_from_the_ledger_halts_at_that_row(bars, reference, tmp_path):
    db = _copy(reference[0], tmp_path / "rechained.db")
    target = _first_seq(db, "FILL")
    _rechain(db, lambda seq, kind, body: {**body, "price": body["price"] * 1.01}
             if seq == target else body)
    rows_before = _head(db)
    proc = _run(bars, db, tmp_path)
    assert proc.returncode == 4, proc.stderr[-2000:]
    summary = _summary(proc.stdout)
    assert summary["halted"].startswith(f"ledger mismatch: row {target}: ledger has FILL")
    assert "invariant break (Cat1)" in proc.stderr
    assert _head(db) == rows_before + 1  # only this start's SESSION row was added


def test_a_venue_that_disagrees_with_the_ledger_halts(bars, reference, tmp_path):
    db = _copy(reference[0], tmp_path / "richer.db")
    _rechain(db, lambda seq, kind, body: {**body, "initial_capital": 30_000.0}
             if kind == "CONFIG" else body)
    con = sqlite3.connect(db)  # keep only the first rows: the rerun catches up before a trade
    con.execute("DELETE FROM ledger WHERE seq > 40")
    con.commit()
    con.close()
    proc = _run(bars, db, tmp_path)
    assert proc.returncode == 4, proc.stderr[-2000:]
    halted = _summary(proc.stdout)["halted"]
    assert halted.startswith("venue and ledger disagree (balance: venue 25000.00000000 USDT, "
                             "ledger 30000.00000000 USDT)"), halted


def test_replay_session_reproduces_the_ledger_or_names_the_first_difference(reference, tmp_path):
    db = _copy(reference[0], tmp_path / "ref.db")
    cmd = [sys.executable, "-m", "dolphin", "replay-session", str(db), "--log-dir", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    n = sum(1 for r in reference[1] if r[0] != "CONFIG")
    assert f"reproduced all {n:,} rows bit for bit" in proc.stdout
    target = _first_seq(db, "ORDER")
    _rechain(db, lambda seq, kind, body: {**body, "notional": body["notional"] + 0.01}
             if seq == target else body)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"first difference: row {target}: ledger has ORDER" in proc.stdout


def test_a_supervised_session_resumes_under_the_postures_it_recorded(bars, tmp_path):
    """With a posture source (the embedded store: nothing publishes one, so TURTLE) the rerun
    trades under the recorded POSTURE rows and regenerates every risk-gate denial."""
    ref_db, db = tmp_path / "ref.db", tmp_path / "killed.db"
    ref = _run(bars, ref_db, tmp_path, supervised=True)
    assert ref.returncode == 0, ref.stderr[-3000:]
    ref_rows = _rows(ref_db)
    kinds = [r[0] for r in ref_rows]
    assert kinds.count("DENIAL") >= 2 and "ORDER" not in kinds
    assert {r[2]["posture"] for r in ref_rows if r[0] == "POSTURE"} == {"TURTLE"}
    proc = _run(bars, db, tmp_path, "ledger.after_commit.DENIAL=2", supervised=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    proc = _run(bars, db, tmp_path, supervised=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _summary(proc.stdout)["rerun_mismatch"] is None
    assert _rows(db) == ref_rows
