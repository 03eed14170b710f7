"""``dolphin tui``: the operator's live view of posture, risk, PnL and the services (Textual).

Layout for an 80x24 terminal (three columns under a one-line header, key bindings below):

- header: posture, Rm and its target, the pause (with the controller's own posture), the
  posture's age and the UTC time;
- left: the five risk categories and every sensor's reading;
- middle: the ``vel_div`` sparkline and the latest scan (number, ``n_assets``, ``data_gap``),
  the ACB boost/beta and the MC status; the open position; today's PnL, capital and drawdown;
- right: each service's state and heartbeat age (``D``/``d``: the watchdog judged it down or
  degraded); the alerts, newest first.

Refreshing: a listener on each watched map (``MeshView.WATCHED_MAPS``) runs on the store's
worker thread and only queues the event and posts one ``StoreChanged`` (``post_message`` is
thread-safe):
the store's thread never waits for the screen. The loop folds every queued event into the
``MeshView`` and repaints at most every ``repaint_s``. A one-second timer repaints the ages
and raises stale alerts from what is already folded; nothing polls the store.

Keys: ``p`` pauses new entries (``watchdog.write_override``: a TURTLE override the watchdog
publishes on its next tick, which the trader then records as a POSTURE row in its ledger), ``u``
lifts the pause (``clear_override``), ``q`` quits. Store writes run on a worker thread.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Sparkline, Static

from dolphin.services.watchdog import clear_override, write_override
from dolphin.store.ports import EntryEvent, Store
from dolphin.ui import tui_render as render
from dolphin.ui.tui_model import INFO, WARN, WATCHED_MAPS, MeshView

_log = logging.getLogger(__name__)

CSS = """
Screen { layout: vertical; }
#header { height: 1; background: $panel; }
#body { height: 1fr; }
#left { width: 24; }
#middle { width: 26; }
#right { width: 30; }
.panel { border: round $primary; padding: 0 0; }
#risk { height: 8; }
#sensors-box { height: 1fr; border: round $primary; scrollbar-size-vertical: 1; }
#scan-box { height: 7; border: round $primary; }
#spark { height: 1; }
#position { height: 6; }
#pnl { height: 1fr; }
#services { height: 10; }
#alerts-box { height: 1fr; border: round $warning; scrollbar-size-vertical: 1; }
"""


class StoreChanged(Message):
    """Posted (thread-safely) by the store listeners: events are waiting in the queue."""


class DolphinTui(App[None]):
    """The live operator view (module docstring)."""

    CSS = CSS
    TITLE = "DOLPHIN"
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("p", "pause", "pause entries"),
        Binding("u", "resume", "lift pause"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, store: Store, *, view: MeshView | None = None,
                 clock: Callable[[], int] = time.time_ns, operator: str | None = None,
                 screenshot: Path | None = None, after_s: float = 2.0,
                 repaint_s: float = 0.2, age_tick_s: float | None = 1.0) -> None:
        super().__init__()
        self.store = store
        self.clock = clock
        self.view = view or MeshView(clock=clock)
        self.operator = operator or _whoami()
        self.screenshot_path = screenshot
        self.after_s = after_s
        self.repaint_s = repaint_s
        self.age_tick_s = age_tick_s  # None: no timer (a test ticks ``tick()`` itself)
        self.events: deque[EntryEvent] = deque()
        self._registrations: list[tuple[str, str]] = []
        self._listening = False
        self._wake_pending = False
        self._last_paint = 0.0
        self._paint_timer = None
        self.painted = 0

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        """Build the three columns (module docstring)."""
        yield Static(id="header")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield _panel("risk", "risk")
                with VerticalScroll(id="sensors-box"):
                    yield Static(id="sensors")
            with Vertical(id="middle"):
                with Vertical(id="scan-box"):
                    yield Sparkline([], id="spark")
                    yield Static(id="scan")
                yield _panel("position", "position")
                yield _panel("pnl", "PnL")
            with Vertical(id="right"):
                yield _panel("services", "services")
                with VerticalScroll(id="alerts-box"):
                    yield Static(id="alerts")
        yield Footer()

    async def on_mount(self) -> None:
        """Read the store once, then listen; with a screenshot, take it ``after_s`` later."""
        for ident, title in (("sensors-box", "sensors"), ("scan-box", "scan  ACB  MC"),
                             ("alerts-box", "alerts")):
            self.query_one(f"#{ident}").border_title = title
        await asyncio.to_thread(self._attach)
        if self.age_tick_s is not None:
            self.set_interval(self.age_tick_s, self.tick)
        self.paint()
        if self.screenshot_path is not None:
            self.set_timer(self.after_s, self._shoot)

    def _attach(self) -> None:
        """Read every value, then register the listeners (on a thread: the store may block)."""
        for name in WATCHED_MAPS:
            m = self.store.map(name)
            self._registrations.append((name, m.add_listener(self._on_event)))
        self.view.load(self.store)

    async def on_unmount(self) -> None:
        """Remove the listeners."""
        for name, reg in self._registrations:
            try:
                self.store.map(name).remove_listener(reg)
            except Exception as exc:  # closing anyway: a store gone is no reason to hang
                _log.debug("tui: listener %s not removed: %s", reg, exc)
        self._registrations.clear()

    # ------------------------------------------------------------------ refreshing
    def _on_event(self, event: EntryEvent) -> None:
        """Store worker thread: queue and wake the app's loop, never wait for it."""
        self.events.append(event)
        if not self._wake_pending:
            self._wake_pending = True  # one wake-up message drains every event queued by then
            if not self.post_message(StoreChanged()):  # the app is closing
                self._wake_pending = False

    def on_store_changed(self, _message: StoreChanged) -> None:
        """Fold every queued event; repaint (throttled) when anything shown changed."""
        self._wake_pending = False
        changed = False
        while self.events:
            changed |= self.view.apply(self.events.popleft())
        if changed:
            self.request_paint()

    def request_paint(self) -> None:
        """Repaint now, or once ``repaint_s`` after the last repaint."""
        wait = self.repaint_s - (time.monotonic() - self._last_paint)
        if wait <= 0:
            self.paint()
        elif self._paint_timer is None:
            self._paint_timer = self.set_timer(wait, self.paint)

    def tick(self) -> None:
        """Judge the ages (stale alerts) and repaint them."""
        self.view.check_ages()
        self.paint()

    def paint(self) -> None:
        """Render every panel from the view."""
        self._paint_timer = None
        self._last_paint = time.monotonic()
        v = self.view
        self.query_one("#header", Static).update(render.header(v))
        self.query_one("#risk", Static).update(render.risk(v))
        self.query_one("#sensors", Static).update(render.sensors(v))
        self.query_one("#sensors-box").border_title = (
            f"sensors {render.age(v.age_s(v.posture))}")
        self.query_one("#spark", Sparkline).data = [x for x in v.vel_div if x == x][-22:]
        self.query_one("#scan", Static).update(render.scan(v))
        self.query_one("#position", Static).update(render.position(v))
        self.query_one("#pnl", Static).update(render.pnl(v))
        self.query_one("#services", Static).update(render.services(v))
        self.query_one("#alerts", Static).update(render.alerts(v))
        self.painted += 1

    # ------------------------------------------------------------------ actions
    def action_pause(self) -> None:
        """Write a TURTLE override for the watchdog (no new entries, positions managed)."""
        self.run_worker(self._pause, thread=True, group="store-writes")

    def action_resume(self) -> None:
        """Remove the override."""
        self.run_worker(self._resume, thread=True, group="store-writes")

    def _pause(self) -> None:
        body = write_override(self.store, by=self.operator, reason="paused from dolphin tui",
                              now_ns=self.clock())
        self.call_from_thread(self._note, WARN, f"pause sent: TURTLE by {body['by']}")

    def _resume(self) -> None:
        clear_override(self.store)
        self.call_from_thread(self._note, INFO, "pause lift sent")

    def _note(self, level: str, text: str) -> None:
        self.view.alert(self.clock(), level, text)
        self.paint()

    def _shoot(self) -> None:
        path = Path(self.screenshot_path)
        self.paint()
        self.save_screenshot(filename=path.name, path=str(path.parent or "."))
        self.exit()


def _panel(ident: str, title: str) -> Static:
    w = Static(id=ident, classes="panel")
    w.border_title = title
    return w


def _whoami() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (a container): still name the source
        return "operator"


def run_tui(store: Store, *, screenshot: Path | None = None, after_s: float = 2.0,
            size: tuple[int, int] | None = None, clock: Callable[[], int] = time.time_ns,
            operator: str | None = None, view: MeshView | None = None) -> int:
    """Run the TUI on ``store`` until quit; with ``screenshot``, headless for ``after_s``
    seconds, then save the screen as SVG there. Return the exit code."""
    app = DolphinTui(store, clock=clock, operator=operator, screenshot=screenshot,
                     after_s=after_s, view=view)
    if screenshot is not None:
        app.run(headless=True, size=size or (80, 24))
    else:
        app.run(size=size)
    return 0
