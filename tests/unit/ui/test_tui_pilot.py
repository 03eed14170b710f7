"""``dolphin tui`` driven by Textual's pilot against a store fed by the recorded mesh minute
(``tests/kit/mesh_record``): a posture change, a stale service and the operator's pause, each
saved as an SVG screenshot under ``docs/img/`` (80x24, the recording's own clock, so the
pictures only change when the screen does)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dolphin.core.clock import SimulatedClock
from dolphin.core.config import SurvivalConfig
from dolphin.services.watchdog import OVERRIDE_KEY, WatchdogService
from dolphin.store.features import posture_cell
from dolphin.store.memory import MemoryStore
from dolphin.store.schema import SAFETY, decode_value
from dolphin.ui.tui import DolphinTui, run_tui
from tests.kit.mesh_record import BASE_NS, EXF_LAST_BEAT_S, SERVICES, Player
from tests.kit.paths import REPO

IMG = REPO / "docs" / "img"
SIZE = (80, 24)


def screen_text(app: DolphinTui) -> str:
    """Every panel's text, for assertions on what the operator sees."""
    from textual.widgets import Static

    return "\n".join(str(w.render()) for w in app.query(Static))


def save(app: DolphinTui, name: str) -> Path:
    IMG.mkdir(parents=True, exist_ok=True)
    path = IMG / name
    app.save_screenshot(filename=name, path=str(IMG))
    assert path.stat().st_size > 10_000
    return path


async def play(pilot, player: Player, until_s: int, step_s: int = 1) -> None:
    """Feed the recording second by second, letting the app fold each second's events."""
    t = int(max(player.t_s, 0)) + 1
    while t <= until_s:
        player.play_until(t)
        t += step_s
        await pilot.pause(0.01)
    await pilot.pause(0.3)  # the last throttled repaint


def run(coro) -> None:
    asyncio.run(coro)


def test_a_posture_change_shows_in_the_header_risk_and_alerts():
    async def main() -> None:
        store = MemoryStore()
        player = Player(store)
        player.play_until(0)
        app = DolphinTui(store, clock=player.now_ns, operator="ops", age_tick_s=None)
        async with app.run_test(size=SIZE) as pilot:
            await play(pilot, player, 25)
            text = screen_text(app)
            assert "APEX" in text and "Rm 0.970" in text
            await play(pilot, player, 45)
            app.tick()
            await pilot.pause(0.05)
            text = screen_text(app)
            assert "TURTLE" in text and "Rm 0.620" in text
            assert "posture APEX -> STALKER (Rm 0.800)" in text
            assert "posture STALKER -> TURTLE (Rm 0.620)" in text
            assert "str 0.63" in text and "service_health" in text  # the category and driver
            assert "obf: breaker OPEN (3 failures)" in text and "book resync" in text
            assert "SOLUSDT SHORT -12.5" in text and "uPnL +" in text
            assert "trader at TURTLE" in text
            save(app, "tui_posture_change.svg")

    run(main())


def test_a_stale_service_is_marked_down_and_alerted_once():
    async def main() -> None:
        store = MemoryStore()
        player = Player(store)
        player.play_until(0)
        app = DolphinTui(store, clock=player.now_ns, operator="ops", age_tick_s=None)
        async with app.run_test(size=SIZE) as pilot:
            await play(pilot, player, 32)
            app.tick()  # what the one-second timer does (off here: the picture must not vary)
            app.tick()
            await pilot.pause(0.05)
            text = screen_text(app)
            age = 32 - EXF_LAST_BEAT_S
            assert f"service exf stale: heartbeat {age}s old" in text
            assert "Dexf" in text  # the watchdog's verdict: down
            assert "service exf down: heartbeat" in text
            alerts = [a.text for a in app.view.alerts]
            assert sum("service exf stale" in a for a in alerts) == 1
            save(app, "tui_stale_service.svg")

    run(main())


def test_the_pause_key_makes_the_watchdog_publish_turtle_and_unpause_lifts_it():
    clock = SimulatedClock(BASE_NS)

    async def main() -> None:
        store = MemoryStore()
        player = Player(store)
        player.play_until(0)
        app = DolphinTui(store, clock=clock.now_ns, operator="ops", age_tick_s=None)
        async with app.run_test(size=SIZE) as pilot:
            for t in range(1, 16):
                clock.advance(10**9)
                player.play_until(t)
                await pilot.pause(0.01)
            wd = WatchdogService(store, SurvivalConfig(), clock=clock, startup_grace_s=0.0,
                                 services=[s for s in SERVICES if s != "watchdog"])
            wd.start()
            assert (await asyncio.to_thread(wd.tick)).posture == "APEX"
            await pilot.pause(0.3)
            assert "APEX" in screen_text(app)
            await pilot.press("p")
            await app.workers.wait_for_complete()
            override = decode_value(store.map(SAFETY).get(OVERRIDE_KEY)).data
            assert override["posture"] == "TURTLE" and override["by"] == "ops"
            await asyncio.to_thread(wd.tick)
            cell = posture_cell(store).read().data
            assert cell["posture"] == "TURTLE" and cell["controller_posture"] == "APEX"
            assert cell["override"]["by"] == "ops"
            await pilot.pause(0.3)
            text = screen_text(app)
            assert "PAUSED by ops (ctl APEX)" in text and " TURTLE " in text
            assert "posture APEX -> TURTLE" in text and "override by ops" in text
            save(app, "tui_manual_pause.svg")
            await pilot.press("u")
            await app.workers.wait_for_complete()
            assert store.map(SAFETY).get(OVERRIDE_KEY) is None
            await asyncio.to_thread(wd.tick)
            await pilot.pause(0.3)
            assert posture_cell(store).read().data["posture"] == "APEX"
            text = screen_text(app)
            assert "PAUSED" not in text and "pause lifted" in text
            await pilot.press("q")
        wd.stop()

    run(main())


def test_the_age_timer_raises_stale_alerts_without_any_store_event():
    async def main() -> None:
        store = MemoryStore()
        player = Player(store)
        player.play_until(20)  # exf's last beat
        clock = [player.now_ns()]
        app = DolphinTui(store, clock=lambda: clock[0], age_tick_s=0.1)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.2)
            assert not any("service exf stale" in a.text for a in app.view.alerts)
            clock[0] += 6 * 10**9  # nothing written since: only the timer can notice
            await pilot.pause(0.4)
            stale = [a.text for a in app.view.alerts if "service" in a.text]
            assert "service exf stale: heartbeat 6s old" in stale
            assert "service exf stale" in screen_text(app)

    run(main())


def test_headless_screenshot_mode_saves_the_screen_and_exits(tmp_path):
    store = MemoryStore()
    player = Player(store)
    player.play_until(40)
    out = tmp_path / "shot.svg"
    assert run_tui(store, screenshot=out, after_s=0.5, clock=player.now_ns) == 0
    svg = out.read_text()
    assert svg.startswith("<svg") and "DOLPHIN" in svg and "TURTLE" in svg


def test_the_command_renders_an_empty_store_headless(tmp_path):
    import argparse

    from dolphin.commands import tui as tui_command

    sub = argparse.ArgumentParser().add_subparsers()
    tui_command.register(sub)
    out = tmp_path / "empty.svg"
    args = sub.choices["tui"].parse_args(["--store", "memory://", "--screenshot", str(out),
                                          "--after", "0.3", "--size", "100x30"])
    assert args.func(args) == 0
    svg = out.read_text()
    assert "NONE" in svg and "no&#160;heartbeats" in svg
