"""Entry processors vs read + compare-and-set, on a real member and on the embedded store.

The posture cell written two ways, one writer, no contention (the floor of each):

- ``get_cas``: the ``LatestCell`` path, a ``get`` then ``replace_if_same`` (two round trips on
  Hazelcast; the decode of the stored value and the encode of the new one are included);
- ``entry_processor``: ``set_posture``, one ``PostureSet`` entry processor that checks and writes
  on the member owning the key (one round trip, the check in Java).

Then both under contention: ``--writers`` threads of one client updating the same cell, each
update retried until it lands (``LatestCell.update``) or sent once with a fresh sequence (the
processor never needs a retry). Starts its own one-member cluster on a free loopback port and
prints ONE JSON line: p50/p99 in microseconds per path and store, the ratio processor / get+CAS,
and the contended throughput of each path with the CAS retries counted.

    .venv/bin/python benchmarks/bench_processors.py [--updates 3000] [--writers 4]
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from dolphin.adapters.hazelcast.cluster import ClusterSpec
from dolphin.adapters.hazelcast.control import LocalCluster
from dolphin.adapters.hazelcast.store import HazelcastStore
from dolphin.store.features import posture_cell, set_posture
from dolphin.store.memory import MemoryStore
from dolphin.store.ports import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_store import _free_base

WARMUP = 200


def pct(samples_ns: list[int]) -> dict[str, float]:
    """p50/p99 of nanosecond samples, in microseconds."""
    a = np.asarray(samples_ns, dtype=np.float64) / 1e3
    return {"p50": round(float(np.percentile(a, 50)), 2),
            "p99": round(float(np.percentile(a, 99)), 2)}


def single(store: Store, n: int) -> dict[str, dict[str, float]]:
    """One writer: n CAS updates, then n processor updates, each timed."""
    cell = posture_cell(store)
    cell.overwrite({"posture": "APEX", "rm": 1.0})
    cas: list[int] = []
    for i in range(n + WARMUP):
        t0 = time.perf_counter_ns()
        current = cell.read()
        done = cell.compare_and_set(current, {"posture": "APEX", "rm": (i % 100) / 100})
        cas.append(time.perf_counter_ns() - t0)
        assert done is not None  # one writer: a CAS never loses
    seq0 = cell.read().seq
    ep: list[int] = []
    for i in range(n + WARMUP):
        t0 = time.perf_counter_ns()
        out = set_posture(store, {"posture": "APEX", "rm": (i % 100) / 100}, seq0 + i + 1)
        ep.append(time.perf_counter_ns() - t0)
        assert out.applied
    return {"get_cas": pct(cas[WARMUP:]), "entry_processor": pct(ep[WARMUP:])}


def contended(store: Store, n: int, writers: int) -> dict[str, float]:
    """``writers`` threads, n updates in all, on one cell: CAS retried vs processor once."""
    cell = posture_cell(store)
    cell.overwrite({"posture": "APEX", "rm": 1.0})
    per = n // writers
    attempts = [0]
    lock = threading.Lock()

    def cas_writer() -> None:
        for _ in range(per):
            def fn(data):
                with lock:
                    attempts[0] += 1
                return {"posture": "APEX", "rm": 0.5}
            cell.update(fn, attempts=10_000)

    seqs = itertools.count(cell.read().seq + 1)

    def ep_writer() -> None:
        for _ in range(per):
            with lock:
                seq = next(seqs)
            set_posture(store, {"posture": "APEX", "rm": 0.5}, seq)

    out: dict[str, float] = {}
    for name, target in (("get_cas", cas_writer), ("entry_processor", ep_writer)):
        threads = [threading.Thread(target=target) for _ in range(writers)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out[f"{name}_updates_per_s"] = round(per * writers / (time.perf_counter() - t0), 1)
    out["cas_attempts_per_update"] = round(attempts[0] / (per * writers), 3)
    return out


def run(args: argparse.Namespace) -> dict:
    """The result record."""
    rec: dict = {"bench": "processors", "units": "us", "updates": args.updates,
                 "writers": args.writers}
    with MemoryStore("bench") as mem:
        rec["embedded"] = single(mem, args.updates)
    spec = ClusterSpec(members=1, base_port=_free_base(5891), cluster_name="dolphin-bench-ep",
                       partitions=11, state_dir=Path(tempfile.mkdtemp(prefix="dolphin-bench-ep-")))
    with LocalCluster(spec), HazelcastStore.connect(
            ",".join(spec.addresses), cluster_name=spec.cluster_name) as hz:
        rec["hazelcast"] = single(hz, args.updates)
        rec["hazelcast_contended"] = contended(hz, args.updates, args.writers)
    h = rec["hazelcast"]
    rec["hazelcast_ratio_p50"] = round(h["entry_processor"]["p50"] / h["get_cas"]["p50"], 3)
    c = rec["hazelcast_contended"]
    rec["contended_speedup"] = round(c["entry_processor_updates_per_s"]
                                     / c["get_cas_updates_per_s"], 2)
    return rec


def main() -> int:
    """Parse arguments, run, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--writers", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(run(args), separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
