"""The mesh end to end on a real two-member Hazelcast cluster: `dolphin mesh up --store
hazelcast://...`, trades on replayed real bars, one member SIGKILLed (the mesh goes on with one),
`dolphin mesh down` with no orphan.

The members are started by this test on free loopback ports (``LocalCluster``: tied to the test
process, always stopped) with the processors jar on their classpath (``control.start_cluster``).
The cluster is named ``dolphin``: a ``hazelcast://`` store URL carries addresses only, so the
services connect with the adapter's default cluster name. The tuning is the embedded test's
(``tests/e2e/test_mesh_e2e.py``: watchdog tick 2 s, restart backoff 12 s, the fast-recovery
research config).

Expected readings after the kill, derived by hand from ``services/watchdog.py`` and
``risk/sensors.py``: ``store_nodes`` is ``cluster_view().member_count`` as the watchdog's client
sees it, 2 before the kill and 1 once the surviving member has removed the dead one (member-side
failure detection: the connection refused at once, at worst ``max.no.heartbeat.seconds`` = 10 s
of the shipped member config). The Cat1 ``store_nodes`` health is 1.0 for any reading in
[1, inf), so one member left is as healthy as two: with every service beating again and every
value fresh, every category but the drawdown's (Cat5) is 1.0 -> Rm = Cat5 (1.0 when flat or at
the equity peak) -> APEX, published with a higher sequence. A store call that hits the dead
member's partitions before the failover completes waits up to the client's invocation timeout
(10 s); a heartbeat held up that long is older than the watchdog's 5 s limit, so a transient
dip in the posture during the failover window is allowed (and printed), a restart is not: the
services' loops log a store failure and retry.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dolphin.adapters.hazelcast.cluster import ClusterSpec, read_pid
from dolphin.adapters.hazelcast.control import LocalCluster
from dolphin.ledger.chain import verify
from dolphin.store.features import posture_cell
from tests.integration.store.hzkit import free_base_port
from tests.kit.mesh import (
    PERIOD_S,
    Safety,
    dolphin,
    down_leaves_nothing,
    ledger_kinds,
    mesh_up,
    state,
    wait_for,
)

pytestmark = [pytest.mark.hazelcast, pytest.mark.timeout(600)]

SERVICES = ("acb", "obf", "exf", "esof", "scan", "watchdog", "mc", "trader")
#: The adapter's default cluster name (a ``hazelcast://`` URL names no cluster).
CLUSTER_NAME = "dolphin"
#: The shipped member config's ``hazelcast.max.no.heartbeat.seconds``.
MEMBER_DETECTION_S = 10.0
#: ``HazelcastSettings.invocation_timeout_s``: the longest a call waits on a dead member.
INVOCATION_TIMEOUT_S = 10.0


@pytest.fixture
def cluster(tmp_path: Path):
    spec = ClusterSpec(members=2, base_port=free_base_port(2), cluster_name=CLUSTER_NAME,
                       partitions=11, state_dir=tmp_path / "hz")
    hz = LocalCluster(spec)
    try:
        hz.start()
        yield hz
    finally:
        hz.stop()


@pytest.fixture
def mesh(tmp_path: Path, cluster: LocalCluster):
    url = "hazelcast://" + ",".join(cluster.addresses)
    run_dir, up = mesh_up(tmp_path, "--store", url)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield run_dir, up.stdout, cluster
    finally:
        down = dolphin("mesh", "down", "--run-dir", str(run_dir))
        print(down.stdout, down.stderr)


def _restarts(run_dir: Path) -> dict[str, int]:
    return {n: int(s.get("restarts", 0)) for n, s in state(run_dir)["services"].items()}


def _posture(safety: Safety) -> tuple[int, dict]:
    snap = posture_cell(safety.probe.store()).read()
    return (snap.seq, dict(snap.data)) if snap is not None else (0, {})


def _healthy_rm(data: dict) -> bool:
    """Rm = Cat1 * Cat5 * min(Cat2, Cat4) * Cat3 with every category but Cat5 at 1: Rm is the
    drawdown sigmoid (1 when flat or at the equity peak, just below with a position in loss)."""
    cats = data.get("categories", {})
    return (all(cats.get(c) == 1.0 for c in
                ("invariant", "structural", "microstructure", "environmental"))
            and data.get("rm") == pytest.approx(cats.get("capital", -1.0)))


class Timeline:
    """What the watchdog published after the kill, polled every 0.25 s (for the report)."""

    def __init__(self, safety: Safety, t0: float) -> None:
        self.safety, self.t0 = safety, t0
        self.rows: list[tuple] = []

    def poll(self) -> tuple[int, dict]:
        seq, data = _posture(self.safety)
        sensors = data.get("sensors", {})
        svc = data.get("services", {})
        reasons = svc.get("reasons", {})
        row = (round(time.monotonic() - self.t0, 1), seq, data.get("posture"), data.get("rm"),
               sensors.get("store_nodes"),
               tuple(f"{n} ({reasons.get(n)})" for n in svc.get("down", ())),
               tuple(svc.get("degraded", ())))
        if not self.rows or self.rows[-1][1:] != row[1:]:
            self.rows.append(row)
        return seq, data

    def settled(self) -> bool:
        """One member seen, nothing down or degraded, APEX at the healthy Rm."""
        _, data = self.poll()
        svc = data.get("services", {})
        return (data.get("sensors", {}).get("store_nodes") == 1.0
                and not svc.get("down") and not svc.get("degraded")
                and data.get("posture") == "APEX" and _healthy_rm(data))

    def __str__(self) -> str:
        return "\n".join(f"  t+{r[0]:>5}s seq {r[1]} {r[2]} rm {r[3]} store_nodes {r[4]} "
                         f"down {list(r[5])} degraded {list(r[6])}" for r in self.rows)


def test_mesh_on_hazelcast_trades_and_survives_a_killed_member(mesh):
    run_dir, up_out, cluster = mesh
    for name in SERVICES:
        assert f"  {name:<10} ready" in up_out, up_out
    assert "  store " not in up_out  # the cluster is the store: no store process
    assert "store" not in state(run_dir)["services"]
    safety = Safety(run_dir)
    try:
        # 1. APEX with both members seen, then trades on the replayed real bars
        assert wait_for(lambda: safety.read().get("posture") == "APEX", 60), safety.read()
        assert safety.read()["sensors"]["store_nodes"] == 2.0
        assert wait_for(lambda: ledger_kinds(run_dir)["FILL"] >= 2, 240), ledger_kinds(run_dir)

        # a few watchdog ticks on two members first
        assert wait_for(lambda: _posture(safety)[0] >= 3, 4 * PERIOD_S + 5)

        # 2. one member SIGKILLed (the first address: the one every client met first)
        restarts = _restarts(run_dir)
        kinds = ledger_kinds(run_dir)
        seq0, _ = _posture(safety)
        wd_seq0 = int(safety.beat("watchdog")["seq"])
        pids = {n: int(s["pid"]) for n, s in state(run_dir)["services"].items()}
        assert cluster.kill(cluster.spec.ports[0])
        timeline = Timeline(safety, time.monotonic())

        # the watchdog sees one member, and publishes APEX again above the old sequence
        budget = MEMBER_DETECTION_S + INVOCATION_TIMEOUT_S + 4 * PERIOD_S + 10
        assert wait_for(timeline.settled, budget), f"after the kill:\n{timeline}"
        seq1, data = timeline.poll()
        assert seq1 > seq0
        assert data["sensors"]["store_nodes"] == 1.0 and _healthy_rm(data), data
        assert int(safety.beat("watchdog")["seq"]) > wd_seq0
        assert wait_for(lambda: safety.beat("watchdog").get("state") == "RUNNING", 10)
        # new scans journalled by the trader after the kill
        assert wait_for(lambda: ledger_kinds(run_dir)["SCAN"] > kinds["SCAN"] + 20, 90), \
            (kinds, ledger_kinds(run_dir))
        # and it goes on: a later posture, still one member
        assert wait_for(lambda: _posture(safety)[0] >= seq1 + 3, 4 * PERIOD_S + 5)
        _, data = timeline.poll()
        assert data["sensors"]["store_nodes"] == 1.0, data
        assert data["posture"] == "APEX" and _healthy_rm(data), f"after the kill:\n{timeline}"

        # no service was restarted by the kill: same pids, same restart counts
        now = {n: int(s["pid"]) for n, s in state(run_dir)["services"].items()}
        print(f"\nfailover timeline (posture seq {seq0} before the kill):\n{timeline}\n"
              f"restarts before {restarts} after {_restarts(run_dir)}")
        assert _restarts(run_dir) == restarts, f"after the kill:\n{timeline}"
        assert now == pids
        beat = safety.beat("trader")
        assert beat.get("state") == "RUNNING" and beat["ledger_ok"] is True, beat
        assert verify(run_dir / "ledger.sqlite").ok
    finally:
        safety.probe.close()

    # 3. down: every recorded process gone, nothing naming the run directory left
    down_leaves_nothing(run_dir)
    # the surviving member is the test's own: the mesh's stop leaves it (the fixture stops it)
    assert read_pid(cluster.spec.state_dir, cluster.spec.ports[1]) is not None
