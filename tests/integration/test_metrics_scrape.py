"""Scrape ``/metrics`` from a running service and parse it with the Prometheus text parser.

The service is the mesh's own loop (``mesh.runners.ServiceLoop``) running an ``EsofService`` on
a thread, its heartbeat going to the embedded store every 0.1 s; its metrics come from that
heartbeat in the store (``heartbeat_source``), the mesh's (posture, capital, every beat's age)
from the store (``MeshMetrics``), both served on 127.0.0.1 by ``start_metrics_server``.
"""

from __future__ import annotations

import threading
import time
import urllib.request

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from dolphin.core.clock import LiveClock
from dolphin.mesh.runners import ServiceLoop, Stop
from dolphin.services.esof_service import EsofService
from dolphin.store.memory import MemoryStore
from dolphin.ui.metrics import (
    MeshMetrics,
    ServiceMetrics,
    heartbeat_source,
    start_metrics_server,
)
from tests.kit.mesh_record import Player


def scrape(port: int) -> dict[str, list]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.status == 200
        text = r.read().decode()
    samples: dict[str, list] = {}  # by sample name (a histogram's _count, a counter's _total)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append(s)
    return samples


def sample(families, name: str, **labels) -> float:
    for s in families[name]:
        if all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no {name} sample with {labels}: {families[name]}")


def test_a_running_service_serves_metrics_the_prometheus_parser_reads():
    store = MemoryStore()
    Player(store).play_until(45)  # the mesh's posture, state and the other services' beats
    registry = CollectorRegistry()

    own_beat = heartbeat_source(store, "esof_live")
    metrics = ServiceMetrics("esof_live", registry=registry, source=own_beat)
    registry.register(MeshMetrics(store))
    port, stop_server = start_metrics_server(registry, 0)
    svc = EsofService(store, clock=LiveClock(), name="esof_live", period_s=0.05)
    stop = Stop()
    loop = ServiceLoop(store, svc, svc.tick, period_s=0.05, heartbeat_s=0.1, stop=stop)
    runner = threading.Thread(target=loop.run, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while own_beat() is None or own_beat().get("published", 0) < 1:
            assert time.monotonic() < deadline, "the service never beat"
            time.sleep(0.05)
        metrics.count_messages("esof", 3)
        metrics.observe_cycle(0.004)
        f = scrape(port)
        assert sample(f, "dolphin_service_up", service="esof_live") == 1.0
        assert sample(f, "dolphin_service_state", service="esof_live", state="RUNNING") == 1.0
        assert 0 <= sample(f, "dolphin_heartbeat_age_seconds", service="esof_live") < 5
        assert sample(f, "dolphin_heartbeat_beats_total", service="esof_live") >= 1
        assert sample(f, "dolphin_service_value", service="esof_live", field="published") >= 1
        assert sample(f, "dolphin_messages_total", service="esof_live", kind="esof") == 3.0
        assert sample(f, "dolphin_feature_cycle_seconds_count", service="esof_live") == 1.0
        # the mesh, from the store: the recording's TURTLE at t=45, its capital and exf's age
        assert sample(f, "dolphin_store_up") == 1.0
        assert sample(f, "dolphin_posture_level") == 2.0
        assert sample(f, "dolphin_posture", posture="TURTLE") == 1.0
        assert sample(f, "dolphin_rm") == 0.62
        assert sample(f, "dolphin_category", category="structural") < 1.0
        assert sample(f, "dolphin_services_down") == 1.0
        assert sample(f, "dolphin_capital") == 25_312.40
        assert sample(f, "dolphin_drawdown") == 0.0112
        assert sample(f, "dolphin_open_positions") == 1.0
        assert sample(f, "dolphin_mesh_heartbeat_age_seconds", service="exf") > 60
        stop.event.set()
        runner.join(timeout=5)
        f = scrape(port)  # its last beat: STOPPED, not up
        assert sample(f, "dolphin_service_up", service="esof_live") == 0.0
        assert sample(f, "dolphin_service_state", service="esof_live", state="STOPPED") == 1.0
    finally:
        stop.event.set()
        stop_server()


def test_a_mesh_service_serves_its_port_and_its_timings():
    # what `dolphin mesh service NAME` does: the port from options.json's metrics_ports, the
    # service's own beat at each scrape, and the timings its loop records (``runners.observe``)
    import socket

    from dolphin.mesh import runners
    from dolphin.store.features import touch_heartbeat

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = MemoryStore()
    now = time.time_ns()
    touch_heartbeat(store, {"component": "scan", "state": "RUNNING", "ts_ns": now,
                            "reason": None, "beats": 3, "scans": 41}, now)
    stop = runners._metrics("scan", store, {"metrics_ports": {"scan": port}})
    try:
        for seconds in (0.002, 0.004, 0.008):
            runners.observe("scan_latency", seconds)
        samples = scrape(port)
        name = "dolphin_scan_latency_seconds"
        count = {s.labels["service"]: s.value for s in samples[f"{name}_count"]}
        total = {s.labels["service"]: s.value for s in samples[f"{name}_sum"]}
        assert count == {"scan": 3.0} and abs(total["scan"] - 0.014) < 1e-12
        values = {s.labels["field"]: s.value for s in samples["dolphin_service_value"]}
        assert values["scans"] == 41.0
        runners._metrics("obf", store, {})()  # no port in the options: nothing served
        assert len(runners._PROCESS_METRICS) == 1
    finally:
        stop()
        runners._PROCESS_METRICS.clear()
