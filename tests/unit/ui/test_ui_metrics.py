"""Heartbeats -> Prometheus metrics (``ServiceMetrics``), the command's wiring of ``tui``."""

from __future__ import annotations

import argparse
import json

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dolphin.commands import tui as tui_command
from dolphin.core.errors import ConfigError
from dolphin.ui.metrics import ServiceMetrics, start_metrics_server
from tests.kit.mesh_record import BASE_NS, _beat

S = 10**9


def samples(metrics: ServiceMetrics) -> dict[tuple, float]:
    text = generate_latest(metrics.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_an_obf_beat_gives_breaker_resyncs_values_and_age():
    m = ServiceMetrics("obf", clock=lambda: BASE_NS + 40 * S)
    assert samples(m).get(("dolphin_service_up", (("service", "obf"),))) is None  # no beat
    m.observe(_beat("obf", 38, 7))  # breaker OPEN, 2 resyncs... at 38 one
    got = samples(m)
    svc = (("service", "obf"),)
    assert got[("dolphin_service_up", svc)] == 0.0  # DEGRADED while the breaker is open
    assert got[("dolphin_service_state", (("service", "obf"), ("state", "DEGRADED")))] == 1.0
    assert got[("dolphin_heartbeat_age_seconds", svc)] == 2.0
    assert got[("dolphin_breaker_open", svc)] == 1.0
    assert got[("dolphin_book_resyncs_total", svc)] == 1.0
    assert got[("dolphin_service_value", (("field", "books"), ("service", "obf")))] == 400 * 38


def test_watchdog_and_trader_beats_give_posture_rm_capital_and_lags():
    w = ServiceMetrics("watchdog", clock=lambda: BASE_NS + 45 * S)
    w.observe(_beat("watchdog", 45, 1))
    got = samples(w)
    assert got[("dolphin_service_posture_level", (("service", "watchdog"),))] == 2.0
    assert got[("dolphin_service_rm", (("service", "watchdog"),))] == 0.62
    s = ServiceMetrics("scan", clock=lambda: BASE_NS + 45 * S)
    s.observe(_beat("scan", 44, 1))
    got = samples(s)
    assert got[("dolphin_event_lag_seconds", (("field", "last_scan"), ("service", "scan")))] \
        == 1.0
    s.observe_scan_latency(0.003)
    s.observe_order_latency(0.02)
    got = samples(s)
    assert got[("dolphin_scan_latency_seconds_count", (("service", "scan"),))] == 1.0
    assert got[("dolphin_order_latency_seconds_sum", (("service", "scan"),))] == 0.02


def test_a_failing_source_falls_back_to_the_last_observed_beat_and_bad_input_is_refused():
    def broken():
        raise OSError("store gone")

    m = ServiceMetrics("esof", source=broken, clock=lambda: BASE_NS + S)
    m.observe(_beat("esof", 0, 1))
    assert samples(m)[("dolphin_service_up", (("service", "esof"),))] == 1.0
    with pytest.raises(ConfigError):
        ServiceMetrics("")
    with pytest.raises(ConfigError, match="port"):
        start_metrics_server(m, port=70000)


def test_the_tui_command_reads_the_run_dirs_store_url(tmp_path):
    sub = argparse.ArgumentParser().add_subparsers()
    tui_command.register(sub)
    (tmp_path / "options.json").write_text(json.dumps({"store_url": "tcp://127.0.0.1:1"}))
    args = sub.choices["tui"].parse_args(["--run-dir", str(tmp_path)])
    assert tui_command.store_url(args) == ("tcp://127.0.0.1:1", {"store_url":
                                                               "tcp://127.0.0.1:1"})
    args = sub.choices["tui"].parse_args(["--store", "memory://", "--screenshot", "x.svg"])
    assert tui_command.store_url(args)[0] == "memory://" and args.after == 2.0
    (tmp_path / "options.json").write_text("{}")
    with pytest.raises(ConfigError, match="store_url"):
        tui_command.store_url(sub.choices["tui"].parse_args(["--run-dir", str(tmp_path)]))


def test_the_operations_doc_lists_every_metric_the_dashboard_queries():
    import re

    from tests.kit.paths import REPO

    doc = (REPO / "docs" / "operations.md").read_text()
    listed = set(re.findall(r"^\| `(dolphin_\w+)`", doc, flags=re.M))
    dashboard = json.loads(doc.split("```json\n", 1)[1].split("\n```", 1)[0])
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {re.sub(r"_(bucket|count|sum)$", "", m) for e in exprs
            for m in re.findall(r"dolphin_\w+", e)}
    assert used and used <= listed, used - listed
