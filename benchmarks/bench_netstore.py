"""Store-server round trips against the embedded store; prints ONE JSON line.

Measured on one ``NetStore`` client of a ``StoreServer`` run as its own process, as the mesh
runs it (``--inproc``: in this process, sharing the interpreter lock with the client): the
latency of ``get`` and ``put`` (p50/p99, µs) and of ``put`` -> listener callback on a second
client. The baseline in the same run is a ``MemoryStore`` doing the same calls (its listener
runs on its worker thread); ``*_ratio`` is net / memory at p50. A envelope-sized value (~200
bytes) is written, as the services write.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dolphin.adapters.netstore.client import NetStore
from dolphin.adapters.netstore.server import StoreServer
from dolphin.store.memory import MemoryStore
from dolphin.store.ports import EntryEvent, Store
from dolphin.store.schema import encode_value

MAP = "DOLPHIN_FEATURES"
VALUE = encode_value({"boost": 1.35, "beta": 0.2, "date": "2024-03-01", "pad": "x" * 120}, 1)


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _round_trips(store: Store, n: int) -> dict[str, list[float]]:
    m = store.map(MAP)
    out: dict[str, list[float]] = {"get": [], "put": []}
    for i in range(n):
        t0 = time.perf_counter_ns()
        m.put(f"k{i % 64}", VALUE)
        t1 = time.perf_counter_ns()
        m.get(f"k{i % 64}")
        t2 = time.perf_counter_ns()
        out["put"].append((t1 - t0) / 1e3)
        out["get"].append((t2 - t1) / 1e3)
    return out


def _listener_latency(writer: Store, reader: Store, n: int) -> list[float]:
    arrived = threading.Event()
    stamp = [0]

    def on_event(event: EntryEvent) -> None:
        stamp[0] = time.perf_counter_ns()
        arrived.set()

    reg = reader.map(MAP).add_listener(on_event, key="watched")
    samples = []
    for _ in range(n):
        arrived.clear()
        t0 = time.perf_counter_ns()
        writer.map(MAP).put("watched", VALUE)
        if not arrived.wait(5.0):
            raise RuntimeError("listener event did not arrive within 5 s")
        samples.append((stamp[0] - t0) / 1e3)
    reader.map(MAP).remove_listener(reg)
    return samples


def _summary(rt: dict[str, list[float]], ev: list[float]) -> dict[str, float]:
    return {
        "get_p50_us": round(_pct(rt["get"], 0.5), 1), "get_p99_us": round(_pct(rt["get"], 0.99), 1),
        "put_p50_us": round(_pct(rt["put"], 0.5), 1), "put_p99_us": round(_pct(rt["put"], 0.99), 1),
        "event_p50_us": round(_pct(ev, 0.5), 1), "event_p99_us": round(_pct(ev, 0.99), 1),
    }


@contextmanager
def _server(inproc: bool) -> Iterator[str]:
    if inproc:
        with StoreServer("127.0.0.1", 0) as server:
            yield server.address
        return
    with tempfile.TemporaryDirectory() as tmp:
        ready = Path(tmp) / "ready.json"
        proc = subprocess.Popen([sys.executable, "-m", "dolphin.adapters.netstore.server",
                                 "--ready-file", str(ready)], stderr=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        try:
            deadline = time.monotonic() + 20
            while not ready.exists():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("store server did not start")
                time.sleep(0.02)
            yield f"127.0.0.1:{json.loads(ready.read_text())['port']}"
        finally:
            proc.terminate()
            proc.wait(10)


def main() -> None:
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ops", type=int, default=5000)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--inproc", action="store_true", help="run the server in this process")
    args = parser.parse_args()

    with MemoryStore("bench") as mem:
        _round_trips(mem, 500)  # warm-up
        memory = _summary(_round_trips(mem, args.ops), _listener_latency(mem, mem, args.events))

    with (_server(args.inproc) as address, NetStore.connect(address) as net,
          NetStore.connect(address) as peer):
        _round_trips(net, 500)
        network = _summary(_round_trips(net, args.ops), _listener_latency(net, peer, args.events))
    line = {"bench": "netstore", "server": "inproc" if args.inproc else "process",
            "ops": args.ops, "events": args.events,
            "net": network, "memory": memory}
    for name in ("get", "put", "event"):
        line[f"{name}_ratio"] = round(network[f"{name}_p50_us"] /
                                      max(memory[f"{name}_p50_us"], 0.1), 1)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
