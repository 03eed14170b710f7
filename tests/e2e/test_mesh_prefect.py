"""The mesh with Prefect, end to end on the embedded store: `dolphin mesh up --prefect` starts a
real ``prefect server start`` and serves the §17 deployments against it; a deployment runs on
schedule and its flow heartbeat lands in the mesh's store; a crashed flow run shows in the
watchdog's published posture, and the next good run clears it; `dolphin mesh down` leaves no
process behind.

Tuning (besides the embedded test's, ``tests/e2e/test_mesh_e2e.py``):

- ``--set flow_intervals=...``: ``dolphin-esof-refresh`` every ``ESOF_EVERY_S`` (production:
  15 min), so that it runs within the test; ``dolphin-prefect-watch`` hourly (production: every
  minute), so that the only flow runs in the test are the refresh's (two cores, shared). The
  daily deployments (MC at 00:00, paper at 00:05 UTC) do not fire unless the test runs across
  those minutes.
- The failure is a crash, the cheapest there is: the flow-run process (``python -m
  prefect.engine``, a child of the ``flows`` service: Prefect's runner) is SIGKILLed while it
  runs. The runner
  marks the run Crashed and runs the flow's ``on_crashed`` hook in the serving process
  (``flows.hooks``), which writes ``FAULTED`` into ``DOLPHIN_HEARTBEAT["prefect:<flow>"]``.

Expected readings, derived by hand from ``services/watchdog.py`` and ``risk/survival.py``: a flow
beat that is not RUNNING is listed in ``services.degraded`` (``_flow_statuses``, not judged by
age) and counts as degraded in ``service_health`` (code 0.5 -> ``degraded_health`` 0.85); every
other Cat2 sensor is healthy, so Cat2 = 0.85 and Rm = 0.85 x Cat5 (a drop is followed at once;
Cat5, the drawdown sigmoid, is 1 when flat and just below 1 with a position open) -> STALKER
(0.75 <= Rm < 0.90) after ``hysteresis_down`` = 2 ticks. The next run completes, its hook
writes RUNNING, the flow leaves ``degraded``: Rm 1.0 -> APEX after one tick (fast recovery).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from dolphin.mesh.plan import read_options
from tests.kit.mesh import (
    PERIOD_S,
    Safety,
    alive,
    dolphin,
    down_leaves_nothing,
    mesh_up,
    pid,
    state,
    wait_for,
)

pytestmark = pytest.mark.timeout(600)

SERVICES = ("store", "prefect", "flows", "acb", "obf", "exf", "esof", "scan", "watchdog", "mc",
            "trader")
ESOF = "dolphin-esof-refresh"  # the deployment, and its flow's name
ESOF_BEAT = f"prefect:{ESOF}"
ESOF_EVERY_S = 12.0
FLOW_INTERVALS = {ESOF: ESOF_EVERY_S, "dolphin-prefect-watch": 3600.0}
#: A flow run: the process start (Prefect and DOLPHIN imported again), the tick, the hook.
RUN_SLACK_S = 30.0


def _children(pid: int) -> list[tuple[int, str]]:
    """Live children of ``pid`` with their command lines."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            ppid = int((p / "stat").read_text().rpartition(")")[2].split()[1])
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and alive(int(p.name)):
            out.append((int(p.name), cmd))
    return out


def _flow_runs(flows_pid: int) -> list[int]:
    """The flow-run processes of the serving process (Prefect's runner starts each run as
    ``python -m prefect.engine``)."""
    return [p for p, cmd in _children(flows_pid) if "-m prefect.engine" in cmd]


def _procs_of(run_dir: Path) -> list[tuple[int, str]]:
    """Live processes whose command line, working directory or environment names ``run_dir``
    (the Prefect server names it only in its cwd and ``PREFECT_HOME``)."""
    text, out = str(run_dir), []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(p / "cwd")
            env = (p / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if (text in cmd or cwd.startswith(text) or text in env) and alive(int(p.name)):
            out.append((int(p.name), cmd[:200]))
    return out


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def mesh(tmp_path: Path):
    t0 = time.monotonic()
    run_dir, up = mesh_up(tmp_path, "--prefect",
                          "--set", f"flow_intervals={json.dumps(FLOW_INTERVALS)}")
    print(f"\nmesh up --prefect: {time.monotonic() - t0:.1f} s")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield run_dir, up.stdout
    finally:
        down = dolphin("mesh", "down", "--run-dir", str(run_dir))
        print(down.stdout, down.stderr)


def test_mesh_prefect_runs_flows_on_schedule_and_reports_a_crashed_run(mesh):
    run_dir, up_out = mesh
    for name in SERVICES:
        assert f"  {name:<10} ready" in up_out, up_out
    opts = read_options(run_dir)
    assert opts["flow_intervals"] == FLOW_INTERVALS
    safety = Safety(run_dir)
    try:
        # 1. the services and the Prefect pair are listed by status
        assert wait_for(lambda: safety.read().get("posture") == "APEX", 60), safety.read()
        status = dolphin("mesh", "status", "--run-dir", str(run_dir))
        assert status.returncode == 0, status.stdout + status.stderr
        rows = {ln.split()[0]: ln.split() for ln in status.stdout.splitlines()[2:] if ln.strip()}
        for name in ("prefect", "flows"):
            assert rows[name][1] in ("ready", "running"), status.stdout
            assert rows[name][4] == "-", status.stdout  # no heartbeat of their own
        assert "posture APEX" in status.stdout

        # 2. the refresh runs on its schedule against the mesh's store: RUNNING beats
        assert wait_for(lambda: safety.beat(ESOF_BEAT).get("state") == "RUNNING",
                        ESOF_EVERY_S + RUN_SLACK_S), safety.beat(ESOF_BEAT)
        first = safety.beat(ESOF_BEAT)
        assert first["component"] == ESOF_BEAT and first["flow_run"]
        assert wait_for(lambda: safety.beat(ESOF_BEAT)["flow_run"] != first["flow_run"],
                        ESOF_EVERY_S + RUN_SLACK_S), "no second scheduled run"
        assert safety.beat(ESOF_BEAT)["state"] == "RUNNING"
        assert ESOF_BEAT not in safety.read()["services"]["degraded"]

        # 3. the next run crashes (its process SIGKILLed): FAULTED, degraded, STALKER at 0.85
        flows = pid(run_dir, "flows")
        done = set(_flow_runs(flows))  # the completed run's process may still be exiting
        runs: list[int] = []
        assert wait_for(lambda: bool(runs.extend(set(_flow_runs(flows)) - done) or runs),
                        ESOF_EVERY_S + RUN_SLACK_S), _children(flows)
        killed_at = time.monotonic()
        for run in runs:
            os.kill(run, signal.SIGKILL)
        assert wait_for(lambda: safety.beat(ESOF_BEAT).get("state") == "FAULTED", 20), \
            safety.beat(ESOF_BEAT)
        beat = safety.beat(ESOF_BEAT)
        assert beat["reason"].startswith("Crashed"), beat
        assert wait_for(lambda: ESOF_BEAT in safety.read()["services"]["degraded"],
                        2 * PERIOD_S + 2), safety.read()["services"]
        published = safety.read()
        assert published["services"]["reasons"][ESOF_BEAT] == beat["reason"]
        assert published["services"]["down"] == []
        assert wait_for(lambda: safety.read().get("posture") == "STALKER", 3 * PERIOD_S + 2), \
            safety.read()
        published = safety.read()
        cats = published["categories"]
        assert cats["structural"] == pytest.approx(0.85), published
        assert published["drivers"]["structural"] == "service_health"
        # Rm = Cat1 * Cat5 * min(Cat2, Cat4) * Cat3; Cat5 is the trader's drawdown, just below 1
        # with a position open, every other category 1
        assert cats["invariant"] == cats["microstructure"] == cats["environmental"] == 1.0
        assert published["rm"] == pytest.approx(0.85 * cats["capital"]), published
        print(f"crash -> STALKER in {time.monotonic() - killed_at:.1f} s")

        # 4. the next scheduled run completes: RUNNING again, nothing degraded, APEX
        assert wait_for(lambda: safety.beat(ESOF_BEAT).get("state") == "RUNNING",
                        ESOF_EVERY_S + RUN_SLACK_S), safety.beat(ESOF_BEAT)
        assert wait_for(lambda: safety.read().get("posture") == "APEX", 2 * PERIOD_S + 2), \
            safety.read()
        assert safety.read()["services"]["degraded"] == []
        assert state(run_dir)["services"]["flows"]["restarts"] == 0
    finally:
        safety.probe.close()

    # 5. down: the services, the Prefect server and any flow run gone
    down_leaves_nothing(run_dir)
    assert wait_for(lambda: _procs_of(run_dir) == [], 15), _procs_of(run_dir)
    assert not _port_open(int(opts["prefect_port"]))
