"""The mesh end to end on the embedded store: `dolphin mesh up`, trades on replayed real bars,
the OBF service killed (posture degrades, then recovers after its restart), the trader killed
with SIGKILL (it restarts and continues from its ledger), `dolphin mesh down` with no orphan.

The services run as real processes under the real supervisor; the store is the embedded store
server; the trader is a NautilusTrader node on the sandbox venue. Settings that would make the
test slow are tuned through `--set` and a research config, each named where it is used:

- the watchdog ticks every 2 s (production: 10 s);
- the supervisor waits 12 s before restarting a killed service, so that the watchdog sees it
  gone (production: 0.5 s, doubling);
- the survival controller recovers at once (`recovery_alpha_per_min` and
  `recovery_rate_per_min` 60, `hysteresis_up` 1): the Bible's recovery takes hours by design.
  `hysteresis_down` stays at its default 2.

Expected postures are derived by hand from DESIGN.md and the watchdog's documented readings:
every watched service up and every value fresh -> every category 1.0 -> Rm 1.0 -> APEX; the OBF
service (non-critical) down -> service_health 0.6 -> Rm 0.6 -> TURTLE (0.50 <= 0.6 < 0.75) after
``hysteresis_down`` = 2 ticks; back up -> Rm 1.0 -> APEX after one tick.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from dolphin.ledger.chain import verify
from tests.kit.mesh import (
    BACKOFF_S,
    MAX_AGE_S,
    PERIOD_S,
    Safety,
    down_leaves_nothing,
    ledger_kinds,
    mesh_up,
    pid,
    state,
    wait_for,
)
from tests.kit.mesh import dolphin as _dolphin

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def mesh(tmp_path: Path):
    run_dir, up = mesh_up(tmp_path)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield run_dir, up.stdout
    finally:
        down = _dolphin("mesh", "down", "--run-dir", str(run_dir))
        print(down.stdout, down.stderr)


def test_mesh_trades_survives_kills_and_leaves_no_orphan(mesh):
    run_dir, up_out = mesh
    for name in ("store", "acb", "obf", "exf", "esof", "scan", "watchdog", "mc", "trader"):
        assert f"{name}" in up_out and "ready" in up_out
    safety = Safety(run_dir)
    try:
        # 1. the watchdog publishes APEX once everything beats and every value exists
        assert wait_for(lambda: safety.read().get("posture") == "APEX", 60), safety.read()
        status = _dolphin("mesh", "status", "--run-dir", str(run_dir))
        assert status.returncode == 0, status.stdout + status.stderr
        assert "posture APEX" in status.stdout and "trader" in status.stdout

        # 2. trades on the replayed real bars: orders and fills in the ledger
        assert wait_for(lambda: ledger_kinds(run_dir)["FILL"] >= 2, 240), ledger_kinds(run_dir)

        # 3. OBF killed: the watchdog sees it down and degrades the posture; then it recovers
        obf = pid(run_dir, "obf")
        os.kill(obf, signal.SIGKILL)
        t_kill = time.monotonic()
        assert wait_for(lambda: "obf" in safety.read().get("services", {}).get("down", []),
                        MAX_AGE_S + 2 * PERIOD_S + 2), safety.read()
        t_down = time.monotonic() - t_kill
        assert wait_for(lambda: safety.read().get("posture") == "TURTLE", 3 * PERIOD_S + 2), \
            safety.read()
        t_turtle = time.monotonic() - t_kill
        # service_health 0.6 is the structural category; Rm is it times Cat5 (drawdown)
        assert safety.read()["categories"]["structural"] == pytest.approx(0.6)
        # (the budget: a beat older than MAX_AGE_S, then hysteresis_down = 2 watchdog ticks)
        assert t_down <= MAX_AGE_S + PERIOD_S + 2.0
        assert t_turtle <= MAX_AGE_S + 3 * PERIOD_S + 2.0
        assert wait_for(lambda: pid(run_dir, "obf") != obf, BACKOFF_S + 20)
        assert wait_for(lambda: safety.read().get("posture") == "APEX", 30), safety.read()
        assert state(run_dir)["services"]["obf"]["restarts"] >= 1

        # 4. the trader killed with SIGKILL: restarted, it reruns its ledger and goes on
        before = ledger_kinds(run_dir)
        trader = pid(run_dir, "trader")
        os.kill(trader, signal.SIGKILL)
        assert wait_for(lambda: pid(run_dir, "trader") != trader, BACKOFF_S + 20)
        assert wait_for(lambda: ledger_kinds(run_dir)["SESSION"] == before["SESSION"] + 1, 90)
        assert wait_for(lambda: safety.beat("trader").get("state") == "RUNNING", 90), \
            safety.beat("trader")
        assert wait_for(lambda: ledger_kinds(run_dir)["SCAN"] > before["SCAN"] + 20, 90)
        beat = safety.beat("trader")
        assert beat["ledger_ok"] is True and not beat.get("reason"), beat
        v = verify(run_dir / "ledger.sqlite")
        assert v.ok, v
        log = (run_dir / "logs" / "trader.log").read_text()
        assert "rows verified, rerunning" in log
    finally:
        safety.probe.close()

    # 5. down: every recorded process gone, nothing naming the run directory left
    down_leaves_nothing(run_dir)
