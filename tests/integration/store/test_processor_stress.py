"""Concurrent writers in several processes, through the entry processors, on a 2-member cluster
with a member SIGKILLed mid-run: no update is lost or reordered (seeded)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dolphin.adapters.hazelcast.control import LocalCluster
from dolphin.store.processors import parse_envelope
from dolphin.store.schema import HEARTBEAT, SAFETY
from tests.integration.store.hzkit import TEST_CLUSTER, fast_store, make_spec, wait_for
from tests.kit.paths import REPO

pytestmark = pytest.mark.hazelcast

WRITERS, UPDATES, SEED = 3, 120, 20261201

# Writer w sends posture sequences w+1, w+1+W, w+1+2W, ... (the writers interleave one global
# order) and heartbeats with those sequences as their time; it prints one JSON line per call:
# its sequence, whether it was applied, and the sequence stored after the call.
WRITER = """
import json, random, sys, time
from dolphin.adapters.hazelcast.store import HazelcastStore
from dolphin.store.processors import HeartbeatTouch, PostureSet, parse_envelope
from dolphin.store.schema import HEARTBEAT, SAFETY, encode_value
w, n, writers, seed, addresses, cluster = sys.argv[1:7]
w, n, writers = int(w), int(n), int(writers)
rng = random.Random(int(seed) + w)
store = HazelcastStore.connect(addresses, cluster_name=cluster, invocation_timeout_s=60.0,
                               cluster_connect_timeout_s=60.0)
safety, beats = store.map(SAFETY), store.map(HEARTBEAT)
posture = ("APEX", "STALKER", "TURTLE", "HIBERNATE")
for k in range(n):
    seq = k * writers + w + 1
    data = {"posture": posture[rng.randrange(4)], "rm": rng.random()}
    out = safety.execute("latest", PostureSet(encode_value(data, seq, seq=seq)))
    beat = beats.execute("trader", HeartbeatTouch(encode_value({"component": "trader"}, seq)))
    print(json.dumps({"seq": seq, "applied": out.applied,
                      "stored": parse_envelope(out.value).seq,
                      "beat_stored": parse_envelope(beat.value).ts_ns}), flush=True)
    time.sleep(rng.uniform(0.0, 0.004))
store.close()
"""


def test_concurrent_writers_lose_nothing_across_a_killed_member(tmp_path: Path) -> None:
    cluster = LocalCluster(make_spec(tmp_path, 2))
    procs: list[subprocess.Popen] = []
    try:
        cluster.start()
        addresses = ",".join(cluster.addresses)
        with fast_store(cluster.addresses, invocation_timeout_s=60.0,
                        cluster_connect_timeout_s=60.0) as watcher:
            events: list[int] = []
            lock = threading.Lock()

            def on_event(e) -> None:
                with lock:
                    events.append(parse_envelope(e.value).seq)

            watcher.map(SAFETY).add_listener(on_event, key="latest")
            env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
            procs += [subprocess.Popen(
                [sys.executable, "-c", WRITER, str(w), str(UPDATES), str(WRITERS), str(SEED),
                 addresses, TEST_CLUSTER], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, env=env) for w in range(WRITERS)]  # fmt: skip
            # Kill the member the writers met first once a third of the updates are in.
            assert wait_for(lambda: len(events) >= UPDATES, 120.0, 0.01), events[-5:]
            assert cluster.kill(cluster.spec.ports[0])
            assert any(p.poll() is None for p in procs)  # killed while they were writing
            outputs = [p.communicate(timeout=300) for p in procs]
            for p, (_, err) in zip(procs, outputs, strict=True):
                assert p.returncode == 0, err[-2000:]
            top = UPDATES * WRITERS
            final = parse_envelope(watcher.map(SAFETY).get("latest"))
            assert final.seq == top  # the newest update of all is the one kept
            assert parse_envelope(watcher.map(HEARTBEAT).get("trader")).ts_ns == top
        calls = [[json.loads(line) for line in out.splitlines()] for out, _ in outputs]
        for rows in calls:
            assert len(rows) == UPDATES
            stored = [r["stored"] for r in rows]
            # Never lost: after each call the cell holds this update or a newer one; never
            # reordered: what one writer sees stored only moves forward.
            assert all(r["stored"] >= r["seq"] for r in rows)
            assert all(r["beat_stored"] >= r["seq"] for r in rows)
            assert stored == sorted(stored)
            # Applied means it was newer than what was stored; refused means it was not.
            assert all(r["stored"] == r["seq"] or not r["applied"] for r in rows)
        # The cell's history as the listener saw it only ever moved forward.
        assert events == sorted(set(events))
    finally:
        for p in procs:  # a failed assertion must not leave a writer behind
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
        cluster.stop()
