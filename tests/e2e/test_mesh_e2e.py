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

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from dolphin.ledger.chain import Ledger, verify
from dolphin.mesh.plan import HeartbeatProbe, read_options
from dolphin.store.features import posture_cell
from tests.kit.procs import wait_for as _wait_for

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample" / "bars_1m_sample.parquet"
PERIOD_S = 2.0
BACKOFF_S = 12.0
MAX_AGE_S = 5.0  # the watchdog's heartbeat_max_age_s default

pytestmark = pytest.mark.timeout(600)

FAST_RECOVERY = """\
survival:
  recovery_alpha_per_min: 60.0
  recovery_rate_per_min: 60.0
  hysteresis_up: 1
"""


def wait_for(predicate, timeout_s: float) -> bool:
    """Poll every 0.25 s; a predicate that raises (a file mid-replace, a store hiccup) is
    false for that poll."""
    def safe() -> bool:
        try:
            return bool(predicate())
        except Exception:
            return False
    return _wait_for(safe, timeout_s, 0.25)


def _dolphin(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dolphin", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=timeout)


def _state(run_dir: Path) -> dict:
    return json.loads((run_dir / "mesh.json").read_text())


def _pid(run_dir: Path, name: str) -> int:
    return int(_state(run_dir)["services"][name]["pid"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


def _procs_naming(text: str) -> list[int]:
    """Pids of live processes whose command line holds ``text`` (orphans of this mesh)."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd and _alive(int(p.name)):
            out.append(int(p.name))
    return out


def _ledger_kinds(run_dir: Path) -> Counter:
    with Ledger(run_dir / "ledger.sqlite") as led:
        return Counter(r.kind for r in led.rows())


class Safety:
    """The watchdog's published posture, read as the trader reads it."""

    def __init__(self, run_dir: Path) -> None:
        self.probe = HeartbeatProbe(read_options(run_dir)["store_url"])

    def read(self) -> dict:
        snap = posture_cell(self.probe.store()).read()
        return dict(snap.data) if snap is not None else {}

    def beat(self, name: str) -> dict:
        return self.probe.beat(name) or {}


@pytest.fixture
def mesh(tmp_path: Path):
    run_dir = tmp_path / "mesh"
    config = tmp_path / "fast-recovery.yml"
    config.write_text(FAST_RECOVERY)
    up = _dolphin("mesh", "up", "--run-dir", str(run_dir), "--replay", str(SAMPLE),
                  "--speed", "600", "--warmup", "1000", "--config", str(config), "--research",
                  "--set", f"watchdog_period_s={PERIOD_S}",
                  "--set", f"restart_backoff_s={BACKOFF_S}",
                  "--set", f"restart_backoff_max_s={BACKOFF_S}")
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
        assert wait_for(lambda: _ledger_kinds(run_dir)["FILL"] >= 2, 240), _ledger_kinds(run_dir)

        # 3. OBF killed: the watchdog sees it down and degrades the posture; then it recovers
        obf = _pid(run_dir, "obf")
        os.kill(obf, signal.SIGKILL)
        t_kill = time.monotonic()
        assert wait_for(lambda: "obf" in safety.read().get("services", {}).get("down", []),
                        MAX_AGE_S + 2 * PERIOD_S + 2), safety.read()
        t_down = time.monotonic() - t_kill
        assert wait_for(lambda: safety.read().get("posture") == "TURTLE", 3 * PERIOD_S + 2), \
            safety.read()
        t_turtle = time.monotonic() - t_kill
        assert safety.read()["rm"] == pytest.approx(0.6)
        # (the budget: a beat older than MAX_AGE_S, then hysteresis_down = 2 watchdog ticks)
        assert t_down <= MAX_AGE_S + PERIOD_S + 2.0
        assert t_turtle <= MAX_AGE_S + 3 * PERIOD_S + 2.0
        assert wait_for(lambda: _pid(run_dir, "obf") != obf, BACKOFF_S + 20)
        assert wait_for(lambda: safety.read().get("posture") == "APEX", 30), safety.read()
        assert _state(run_dir)["services"]["obf"]["restarts"] >= 1

        # 4. the trader killed with SIGKILL: restarted, it reruns its ledger and goes on
        before = _ledger_kinds(run_dir)
        trader = _pid(run_dir, "trader")
        os.kill(trader, signal.SIGKILL)
        assert wait_for(lambda: _pid(run_dir, "trader") != trader, BACKOFF_S + 20)
        assert wait_for(lambda: _ledger_kinds(run_dir)["SESSION"] == before["SESSION"] + 1, 90)
        assert wait_for(lambda: safety.beat("trader").get("state") == "RUNNING", 90), \
            safety.beat("trader")
        assert wait_for(lambda: _ledger_kinds(run_dir)["SCAN"] > before["SCAN"] + 20, 90)
        beat = safety.beat("trader")
        assert beat["ledger_ok"] is True and not beat.get("reason"), beat
        v = verify(run_dir / "ledger.sqlite")
        assert v.ok, v
        log = (run_dir / "logs" / "trader.log").read_text()
        assert "rows verified, rerunning" in log
    finally:
        safety.probe.close()

    # 5. down: every recorded process gone, nothing naming the run directory left
    pids = [int(s["pid"]) for s in _state(run_dir)["services"].values() if s.get("pid")]
    pids.append(int(_state(run_dir)["supervisor_pid"]))
    down = _dolphin("mesh", "down", "--run-dir", str(run_dir))
    assert down.returncode == 0, down.stdout + down.stderr
    assert wait_for(lambda: not any(_alive(p) for p in pids), 30)
    assert _procs_naming(str(run_dir)) == []
    assert verify(run_dir / "ledger.sqlite").ok
    assert _dolphin("mesh", "status", "--run-dir", str(run_dir)).returncode != 0
