"""The alert hook and the watchdog's alerts: posture drops, invariant breaks and dead services
reach a command (JSON on stdin) and a webhook on 127.0.0.1, without blocking the tick."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from dolphin.core.clock import SimulatedClock
from dolphin.core.config import SurvivalConfig
from dolphin.core.errors import ConfigError
from dolphin.services.watchdog import WatchdogService, alerts_between
from dolphin.store.features import touch_heartbeat
from dolphin.store.memory import MemoryStore
from dolphin.ui.alerts import AlertHook, alert_hook
from tests.kit.mesh_record import BASE_NS, SERVICES, Player, posture_payload

S = 10**9


class Sink:
    """A webhook on 127.0.0.1 recording what is POSTed."""

    def __init__(self, delay_s: float = 0.0) -> None:
        got: list[dict] = []
        self.got = got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                time.sleep(delay_s)
                n = int(self.headers["Content-Length"])
                got.append(json.loads(self.rfile.read(n)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_a) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alert"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(cond, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_alerts_between_names_drops_invariant_breaks_and_newly_down_services():
    apex = posture_payload(20, "APEX", 0.97)
    stalker = posture_payload(30, "STALKER", 0.80, ("exf",))
    kinds = [(a["kind"], a.get("service")) for a in alerts_between(apex, stalker)]
    assert kinds == [("posture_drop", None), ("service_down", "exf")]
    assert alerts_between(stalker, stalker) == []  # nothing new: no alert
    assert alerts_between(stalker, apex) == []  # a rise is not an alert
    broken = {**stalker, "posture": "HIBERNATE", "rm": 0.0,
              "categories": {**stalker["categories"], "invariant": 0.0},
              "drivers": {**stalker["drivers"], "invariant": "ledger_ok"}}
    a = alerts_between(stalker, broken)
    assert [x["kind"] for x in a] == ["posture_drop", "invariant_break"]
    assert a[1]["driver"] == "ledger_ok"
    assert a[0]["message"] == "posture STALKER -> HIBERNATE (Rm 0.000)"
    assert [x["kind"] for x in alerts_between(None, broken)] == ["invariant_break",
                                                                 "service_down"]


def test_the_hook_posts_to_a_loopback_webhook_and_feeds_a_command(tmp_path):
    sink = Sink()
    out = tmp_path / "alerts.jsonl"
    script = f"import sys; open({str(out)!r}, 'a').write(sys.stdin.read() + '\\n')"
    hook = AlertHook(command=[sys.executable, "-c", script], url=sink.url, timeout_s=5)
    try:
        hook({"kind": "posture_drop", "posture": "TURTLE", "ts_ns": 1})
        hook({"kind": "service_down", "service": "exf", "ts_ns": 2})
        hook.close(timeout_s=10)
        assert [a["kind"] for a in sink.got] == ["posture_drop", "service_down"]
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        assert [a["kind"] for a in lines] == ["posture_drop", "service_down"]
        assert (hook.sent, hook.failed, hook.dropped) == (4, 0, 0)
    finally:
        sink.close()


def test_a_slow_or_failing_hook_never_blocks_the_caller():
    sink = Sink(delay_s=0.5)
    hook = AlertHook(url=sink.url, command=[sys.executable, "-c", "import sys; sys.exit(3)"],
                     timeout_s=2, queue_size=1)
    try:
        t0 = time.monotonic()
        for i in range(5):
            hook({"kind": "service_down", "n": i})
        assert time.monotonic() - t0 < 0.2  # queued or dropped, never waited for
        wait_for(lambda: hook.failed >= 1 and len(sink.got) >= 1)
        assert hook.dropped >= 1
    finally:
        hook.close(timeout_s=10)
        sink.close()


def test_hook_options_are_checked():
    assert alert_hook({}) is None
    with pytest.raises(ConfigError, match="argv"):
        AlertHook(command="notify-send x")
    with pytest.raises(ConfigError, match="http"):
        AlertHook(url="ftp://127.0.0.1/x")
    with pytest.raises(ConfigError, match="alert_timeout_s"):
        alert_hook({"alert_url": "http://127.0.0.1:1/", "alert_timeout_s": 0})


def test_the_watchdog_sends_a_dead_service_and_the_posture_drop_to_the_hook():
    sink = Sink()
    hook = AlertHook(url=sink.url)
    clock = SimulatedClock(BASE_NS)
    store = MemoryStore()
    player = Player(store)
    player.play_until(15)
    clock.advance(15 * S)
    watched = [s for s in SERVICES if s != "watchdog"]
    wd = WatchdogService(store, SurvivalConfig(), clock=clock, startup_grace_s=0.0,
                         services=watched, alert=hook)
    wd.start()
    try:
        assert wd.tick().posture == "APEX"
        for _ in range(4):  # the trader stops beating: a critical service down, Cat1 = 0
            clock.advance(5 * S)
            now = clock.now_ns()
            for name in watched:
                if name != "trader":
                    touch_heartbeat(store, {"component": name, "state": "RUNNING",
                                            "ts_ns": now, "beats": 1}, now)
            wd.tick()
        hook.close(timeout_s=10)
        kinds = [a["kind"] for a in sink.got]
        assert "invariant_break" in kinds and "posture_drop" in kinds
        down = [a for a in sink.got if a["kind"] == "service_down"]
        assert [a["service"] for a in down] == ["trader"]
        assert down[0]["reason"].startswith("heartbeat") and wd.alerts_sent == len(sink.got)
    finally:
        sink.close()


def test_a_broken_alert_callable_never_costs_a_posture_update():
    clock = SimulatedClock(BASE_NS + 15 * S)
    store = MemoryStore()
    Player(store).play_until(15)

    def boom(_alert) -> None:
        raise RuntimeError("hook is down")

    wd = WatchdogService(store, SurvivalConfig(), clock=clock, startup_grace_s=0.0,
                         services=[s for s in SERVICES if s not in ("watchdog", "exf")],
                         alert=boom)
    wd.start()
    clock.advance(20 * S)  # every beat now 20 s old: all down
    assert wd.tick().posture == "HIBERNATE" and wd.published == 1 and wd.alerts_sent == 0
