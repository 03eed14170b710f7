"""Store latency: MemoryStore vs Hazelcast (remote, near cache) with a 400-asset scan payload.

Starts its own one-member cluster on a free loopback port (from 5851 up), measures, stops it,
and prints ONE JSON line: get/put p50/p99 in microseconds per store, the listener propagation
latency (put on one client -> callback on another), and each figure's ratio to the MemoryStore
baseline of the same run. Targets (Bible acceptance): remote get p50 <= 500 us, near-cache get
p50 <= 20 us.

    .venv/bin/python benchmarks/bench_store.py [--gets 20000] [--puts 3000] [--events 500]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dolphin.adapters.hazelcast.cluster import ClusterSpec
from dolphin.adapters.hazelcast.control import LocalCluster
from dolphin.adapters.hazelcast.store import HazelcastStore
from dolphin.store.memory import MemoryStore
from dolphin.store.ports import EntryEvent, Store
from dolphin.store.schema import FEATURES, LATEST_EIGEN_SCAN, decode_value, encode_value

TARGET_REMOTE_GET_P50_US = 500.0
TARGET_NEAR_GET_P50_US = 20.0


def eigen_scan_payload(n_assets: int = 400, seed: int = 7) -> str:
    """A realistic ``latest_eigen_scan`` value: scan fields plus 400 asset closes."""
    rng = np.random.default_rng(seed)
    closes = {f"A{i:03d}USDT": float(round(rng.lognormal(3, 2), 8)) for i in range(n_assets)}
    scan: dict[str, object] = {
        "timestamp": 1_714_000_000_000_000_000,
        "scan_number": 123_456,
        "n_assets": n_assets,
        "vel_div": -0.0213,
        "instability_50": 0.41,
        "instability_150": 0.37,
        "asset_prices": closes,
    }
    for w in (50, 150, 300, 750):
        scan[f"v{w}_lambda_max"] = float(rng.uniform(0.1, 0.6))
        scan[f"v{w}_lambda_max_velocity"] = float(rng.normal(0, 0.01))
    return encode_value(scan, time.time_ns())


def percentiles_us(samples_ns: list[int]) -> dict[str, float]:
    """p50/p99 of nanosecond samples, in microseconds."""
    arr = np.asarray(samples_ns, dtype=np.float64) / 1e3
    return {
        "p50": round(float(np.percentile(arr, 50)), 2),
        "p99": round(float(np.percentile(arr, 99)), 2),
    }


def timed(op: Callable[[], object], n: int) -> list[int]:
    """Run ``op`` n times (after a warm-up) and return each call's duration in ns."""
    for _ in range(min(200, n)):
        op()
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        op()
        out.append(clock() - t0)
    return out


def measure_map(store: Store, payload: str, gets: int, puts: int) -> dict[str, dict[str, float]]:
    """get / decoded get / put latencies on ``DOLPHIN_FEATURES['latest_eigen_scan']``."""
    m = store.map(FEATURES)
    m.put(LATEST_EIGEN_SCAN, payload)
    return {
        "get": percentiles_us(timed(lambda: m.get(LATEST_EIGEN_SCAN), gets)),
        "get_decoded": percentiles_us(timed(lambda: decode_value(m.get(LATEST_EIGEN_SCAN)), gets)),
        "put": percentiles_us(timed(lambda: m.put(LATEST_EIGEN_SCAN, payload), puts)),
    }


def measure_listener(writer: Store, reader: Store, payload: str, n: int) -> dict[str, float]:
    """Put on ``writer`` -> callback on ``reader``'s listener thread, one event at a time."""
    arrived = threading.Event()
    stamp = [0]

    def on_event(event: EntryEvent) -> None:
        stamp[0] = time.perf_counter_ns()
        arrived.set()

    reg = reader.map(FEATURES).add_listener(on_event, key="bench_listener")
    samples = []
    for i in range(n + 20):
        arrived.clear()
        t0 = time.perf_counter_ns()
        writer.map(FEATURES).put("bench_listener", payload)
        if not arrived.wait(5):
            raise RuntimeError("listener event lost")
        if i >= 20:  # warm-up
            samples.append(stamp[0] - t0)
    reader.map(FEATURES).remove_listener(reg)
    return percentiles_us(samples)


def _free_base(start: int = 5851) -> int:
    for port in range(start, start + 100):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def ratios(figures: dict[str, dict], baseline: dict) -> dict[str, float]:
    """Each store's p50 divided by the MemoryStore p50 of the same operation."""
    out = {}
    for store, ops in figures.items():
        for op, stats in ops.items():
            base = baseline.get(op, {}).get("p50")
            if base:
                out[f"{store}.{op}.p50"] = round(stats["p50"] / base, 1)
    return out


def run(args: argparse.Namespace) -> dict[str, object]:
    """Run every measurement and return the result record."""
    payload = eigen_scan_payload()
    with MemoryStore() as mem:
        figures = {"memory": measure_map(mem, payload, args.gets, args.puts)}
        figures["memory"]["listener"] = measure_listener(mem, mem, payload, args.events)
    spec = ClusterSpec(
        members=1,
        base_port=_free_base(),
        cluster_name="dolphin-bench",
        state_dir=Path(tempfile.mkdtemp(prefix="dolphin-bench-hz-")),
    )
    with LocalCluster(spec):
        addresses = ",".join(spec.addresses)
        with HazelcastStore.connect(
            addresses, cluster_name=spec.cluster_name, near_cache_maps=()
        ) as remote:
            figures["hazelcast_remote"] = measure_map(remote, payload, args.remote_gets, args.puts)
            with HazelcastStore.connect(addresses, cluster_name=spec.cluster_name) as near:
                figures["hazelcast_near_cache"] = measure_map(near, payload, args.gets, args.puts)
                stats = near.map(FEATURES).near_cache_stats() or {}
                figures["hazelcast_remote"]["listener"] = measure_listener(
                    remote, near, payload, args.events
                )
    near_get = figures["hazelcast_near_cache"]["get"]["p50"]
    remote_get = figures["hazelcast_remote"]["get"]["p50"]
    return {
        "bench": "store",
        "payload_bytes": len(payload.encode()),
        "n_assets": 400,
        "units": "us",
        "figures": figures,
        "ratio_vs_memory": ratios(figures, figures["memory"]),
        "near_cache_hits": stats.get("hits"),
        "near_cache_misses": stats.get("misses"),
        "targets": {
            "remote_get_p50_us": TARGET_REMOTE_GET_P50_US,
            "near_cache_get_p50_us": TARGET_NEAR_GET_P50_US,
        },
        "meets_targets": bool(
            remote_get <= TARGET_REMOTE_GET_P50_US and near_get <= TARGET_NEAR_GET_P50_US
        ),
        "hazelcast": "5.6.0 member (1, loopback, -Xmx512m), hazelcast-python-client 5.7.0",
        "python": sys.version.split()[0],
    }


def main() -> int:
    """Parse arguments, run, print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gets", type=int, default=20_000, help="local gets (memory, near cache)")
    parser.add_argument("--remote-gets", type=int, default=3_000, help="remote gets")
    parser.add_argument("--puts", type=int, default=3_000)
    parser.add_argument("--events", type=int, default=500)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = run(args)
    print(json.dumps(result, separators=(",", ":"), allow_nan=False, default=_finite))
    return 0


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


if __name__ == "__main__":
    raise SystemExit(main())
