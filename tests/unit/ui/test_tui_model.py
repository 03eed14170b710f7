"""``MeshView``: what the TUI folds from store values, alone (no Textual)."""

from __future__ import annotations

import math
import time

import pytest

from dolphin.services.watchdog import OVERRIDE_KEY
from dolphin.store.memory import MemoryStore
from dolphin.store.schema import FEATURES, HEARTBEAT, LATEST_EIGEN_SCAN, SAFETY, encode_value
from dolphin.ui import tui_render as render
from dolphin.ui.tui_model import MeshView
from tests.kit.mesh_record import BASE_NS, ENTRY, QTY, Player

S = 10**9


def fed(until_s: int) -> tuple[MeshView, Player]:
    """A view listening to a store the recording plays into, second by second."""
    store = MemoryStore()
    player = Player(store)
    view = MeshView(clock=player.now_ns)
    view.load(store)
    done = []
    for name in ("DOLPHIN_SAFETY", "DOLPHIN_HEARTBEAT", "DOLPHIN_FEATURES", "DOLPHIN_STATE_BLUE",
                 "DOLPHIN_PNL_BLUE"):
        store.map(name).add_listener(lambda e: done.append(view.apply(e)))
    for t in range(until_s + 1):
        player.play_until(t)
    n = len(player.frames[:player.i])
    deadline = 200
    while len(done) < n and deadline:  # the listener thread catches up
        time.sleep(0.01)
        deadline -= 1
    store.close()
    return view, player


def texts(view: MeshView) -> list[str]:
    return [a.text for a in view.alerts]


def test_the_recorded_minute_folds_into_posture_alerts_and_the_open_position():
    view, _ = fed(50)
    assert view.payload()["posture"] == "TURTLE" and view.scans_seen == 51
    a = texts(view)
    assert a.index("posture APEX -> STALKER (Rm 0.800)") < a.index(
        "posture STALKER -> TURTLE (Rm 0.620)")
    assert "service exf down: heartbeat 10.0s old (> 5s)" in a
    assert "obf: breaker OPEN (3 failures)" in a and "obf: breaker CLOSED again" in a
    assert "obf: 1 book resync(s) (total 1)" in a and "obf: 1 book resync(s) (total 2)" in a
    assert "stale factors: funding_btc" in a
    (row,) = view.position_rows()
    price = ENTRY * (1 - 0.0004 * 50)
    assert row["side"] == "SHORT" and row["upnl"] == pytest.approx(QTY * (price - ENTRY))
    assert row["tp"] == pytest.approx(ENTRY * (1 - 0.0095)) and row["bars"] == "50"
    assert row["stop"] == pytest.approx(ENTRY * 2.0)
    assert view.today()["pnl"] == 212.40 and len(view.vel_div) == 51


def test_ages_raise_one_stale_alert_per_service_and_a_stale_posture():
    view, player = fed(26)  # exf's last beat was at 20
    assert view.check_ages() is True
    assert texts(view)[-1] == "service exf stale: heartbeat 6s old"
    assert view.check_ages() is False  # once
    player.t_s = 26 + 30
    assert view.check_ages() is True
    assert "posture stale: 36s old (is the watchdog up?)" in texts(view)


def test_an_override_and_a_malformed_value_are_handled():
    view = MeshView(clock=lambda: BASE_NS)
    body = {"posture": "TURTLE", "by": "ops", "reason": "news", "ts_ns": BASE_NS}
    assert view.apply_value(SAFETY, OVERRIDE_KEY, encode_value(body, BASE_NS))
    assert texts(view) == ["pause requested by ops: news"]
    assert "PAUSED by ops" in render.header(view).plain
    assert view.apply_value(SAFETY, OVERRIDE_KEY, None)
    assert texts(view)[-1] == "pause lifted (override removed)"
    assert view.apply_value(HEARTBEAT, "scan", "{not json") is False and view.malformed == 1
    scan = {"vel_div": None, "n_assets": 3, "data_gap": True}
    assert view.apply_value(FEATURES, LATEST_EIGEN_SCAN, encode_value(scan, BASE_NS))
    assert math.isnan(view.vel_div[-1]) and "GAP" in render.scan(view).plain


def test_render_helpers_format_ages_and_missing_numbers():
    assert [render.age(x) for x in (0.25, 12, 300, 7200, math.inf)] == [
        "0.2s", "12s", "5m", "2h", "-"]
    assert render.num(None) == "n/a" and render.num(math.nan) == "n/a"
    assert render.clock_text(BASE_NS + 3 * 3600 * S + 61 * S) == "15:01:01"
    empty = MeshView(clock=lambda: BASE_NS)
    for panel in (render.header, render.risk, render.sensors, render.scan, render.position,
                  render.pnl, render.services, render.alerts):
        assert isinstance(panel(empty).plain, str)  # nothing published yet: no crash
