"""`dolphin exchange serve` as a command: serves a capture on 127.0.0.1, answers REST and
WebSocket clients, reports its counters at the end, and refuses a bad fault spec clearly."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from dolphin.cli import main
from tests.kit.paths import SHARED_DATA, require

CAPTURE = SHARED_DATA / "raw_ws" / "binance_usdm" / "btcusdt_20240718.gz"


def _depth_when_seeded(url: str, timeout_s: float = 60.0) -> tuple[dict, int, int]:
    """GET the depth once the capture's snapshot has seeded the book (the server holds the
    answer up to 10 s, then 503; a cold numba cache can delay the tape by seconds). Returns the
    depth, the attempts and how many of them the server reset while still starting (on a loaded
    machine)."""
    deadline, attempts, resets = time.monotonic() + timeout_s, 0, 0
    while True:
        attempts += 1
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.loads(r.read()), attempts, resets
        except urllib.error.HTTPError as exc:
            if exc.code != 503 or time.monotonic() > deadline:
                raise
        except ConnectionResetError:
            if time.monotonic() > deadline:
                raise
            resets += 1
        time.sleep(0.05)


def test_the_command_serves_rest_and_streams_then_reports():
    cmd = [sys.executable, "-m", "dolphin", "exchange", "serve", "--capture",
           str(require(CAPTURE)), "--speed", "200", "--start", "--exit-at-end",
           "--faults", "gap@50"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(proc.stdout.readline().removeprefix("exchange "))
        url = first["http"] + "/fapi/v1/depth?symbol=BTCUSDT&limit=5"
        depth, attempts, resets = _depth_when_seeded(url)
        with urllib.request.urlopen(first["http"] + "/fapi/v1/time", timeout=10) as r:
            assert "serverTime" in json.loads(r.read())
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert len(depth["bids"]) == len(depth["asks"]) == 5 and depth["lastUpdateId"] > 0
    assert float(depth["bids"][0][0]) < float(depth["asks"][0][0])
    end = json.loads(next(ln for ln in out.splitlines() if ln.startswith("exchange-end "))[13:])
    assert end["played"] == first["messages"] and end["gap"] == 1
    # the depth attempts and the time; a request reset before its handler ran is not counted
    assert attempts + 1 - resets <= end["rest_requests"] <= attempts + 1


@pytest.mark.parametrize("faults", ["drop", "nosuch@3", "stall@x", "gap@0"])
def test_a_bad_fault_spec_is_a_config_error(faults, capsys):
    code = main(["exchange", "serve", "--capture", str(require(CAPTURE)), "--faults", faults])
    assert code == 3
    assert "--faults" in capsys.readouterr().err


def test_a_missing_or_unreadable_capture_is_a_clear_error(tmp_path, capsys):
    junk = tmp_path / "junk.txt"
    junk.write_text("not a capture\n")
    fake = tmp_path / "fake.gz"
    fake.write_text("plain text under a gzip name\n")
    torn = tmp_path / "torn.gz"
    torn.write_bytes(b"\x1f\x8b" + b"junk")
    for path, why in [(tmp_path / "missing.gz", "no such capture file"),
                      (junk, "no Binance capture line"), (fake, "not a gzip file"),
                      (torn, "cannot read the capture")]:
        assert main(["exchange", "serve", "--capture", str(path), "--exit-at-end"]) == 2
        err = capsys.readouterr().err
        assert str(path) in err and why in err, err
