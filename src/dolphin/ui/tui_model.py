"""What ``dolphin tui`` shows, folded from the store: no Textual here, so it is tested alone.

``MeshView`` keeps the newest decoded value of every key the mesh writes that the operator
watches (``DOLPHIN_SAFETY``, ``DOLPHIN_HEARTBEAT``, ``DOLPHIN_FEATURES``' scan, ACB, MC, ExF
and EsoF values, ``DOLPHIN_STATE_BLUE["latest"]`` and ``DOLPHIN_PNL_BLUE``), the ``vel_div``
stream of the scans it saw and a bounded list of alerts. ``load`` reads everything once;
``apply`` folds one store event (a listener's ``EntryEvent``). Alerts come from comparing a
value with the one it replaces:

- posture changes, invariant breaks and services newly down or degraded (the watchdog's own
  ``alerts_between``, so the TUI and the alert hook agree), plus posture rises and the
  operator's override being set or lifted;
- an OB breaker leaving CLOSED (``breaker`` in a heartbeat) and closing again;
- book resyncs (a heartbeat's ``resyncs`` counter going up);
- stale ExF factors (``exf_latest`` factors flagged ``stale``);
- a heartbeat older than ``stale_after_s`` or a posture older than ``posture_stale_s`` as seen
  by this clock (``check_ages``, called by the TUI's one-second tick: it also catches a dead
  watchdog, which no longer reports anything itself).

Bars held: the ledger's state carries each position's quantity and entry price only, so unless
a position carries ``bars_held`` the count is the scans seen since the position appeared,
marked as a lower bound when the view started with the position already open.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dolphin.services.watchdog import OVERRIDE_KEY, alerts_between
from dolphin.store.errors import MalformedValueError
from dolphin.store.ports import EntryEvent, Store
from dolphin.store.schema import (
    ACB_BOOST,
    ESOF_LATEST,
    EXF_LATEST,
    FEATURES,
    HEARTBEAT,
    LATEST_EIGEN_SCAN,
    MC_STATUS,
    PNL_BLUE,
    POSTURE_KEY,
    SAFETY,
    STATE_BLUE,
    decode_value,
)

_log = logging.getLogger(__name__)

#: The maps the TUI listens to, and the feature keys it keeps.
WATCHED_MAPS = (SAFETY, HEARTBEAT, FEATURES, STATE_BLUE, PNL_BLUE)
FEATURE_KEYS = (LATEST_EIGEN_SCAN, ACB_BOOST, MC_STATUS, EXF_LATEST, ESOF_LATEST)
STATE_KEY = "latest"
#: Services in the mesh's start order (``mesh.plan``), then any other heartbeat by name.
SERVICE_ORDER = ("acb", "obf", "exf", "esof", "scan", "watchdog", "mc", "trader")
INFO, WARN, CRIT = "info", "warn", "crit"


@dataclass(frozen=True, slots=True)
class Alert:
    """One line of the alert list."""

    ts_ns: int
    level: str
    text: str


@dataclass(frozen=True, slots=True)
class ExitRule:
    """The exits shown for an open position (``AlphaConfig``: fixed TP, stop, max hold)."""

    tp_pct: float = 0.0095
    stop_pct: float = 1.0
    max_hold_bars: int = 120


@dataclass(slots=True)
class Value:
    """A decoded store value: its writer's time and payload."""

    ts_ns: int
    data: Any


@dataclass(slots=True)
class _Held:
    first_scan: int
    lower_bound: bool


@dataclass
class MeshView:
    """The TUI's state, folded from store values (module docstring)."""

    clock: Callable[[], int] = time.time_ns
    history: int = 120
    max_alerts: int = 200
    stale_after_s: float = 5.0
    posture_stale_s: float = 30.0
    exits: ExitRule = field(default_factory=ExitRule)
    posture: Value | None = None
    override: Value | None = None
    beats: dict[str, Value] = field(default_factory=dict)
    features: dict[str, Value] = field(default_factory=dict)
    state: Value | None = None
    days: dict[str, Value] = field(default_factory=dict)
    vel_div: deque[float] = field(init=False)
    alerts: deque[Alert] = field(init=False)
    scans_seen: int = 0
    malformed: int = 0
    _held: dict[str, _Held] = field(default_factory=dict)
    _stale: set[str] = field(default_factory=set)
    _loaded: bool = False

    def __post_init__(self) -> None:
        self.vel_div = deque(maxlen=self.history)
        self.alerts = deque(maxlen=self.max_alerts)

    # ------------------------------------------------------------------ folding
    def load(self, store: Store) -> None:
        """Read every watched key once (the start, before the listeners' first event)."""
        safety = store.map(SAFETY).get_all([POSTURE_KEY, OVERRIDE_KEY])
        for key, text in safety.items():
            self.apply_value(SAFETY, key, text)
        hb = store.map(HEARTBEAT)
        for key, text in sorted(hb.get_all(hb.keys()).items()):
            self.apply_value(HEARTBEAT, key, text)
        for key, text in store.map(FEATURES).get_all(FEATURE_KEYS).items():
            self.apply_value(FEATURES, key, text)
        self.apply_value(STATE_BLUE, STATE_KEY, store.map(STATE_BLUE).get(STATE_KEY))
        pnl = store.map(PNL_BLUE)
        days = sorted(pnl.keys())[-7:]
        for key, text in pnl.get_all(days).items():
            self.apply_value(PNL_BLUE, key, text)
        self._loaded = True

    def apply(self, event: EntryEvent) -> bool:
        """Fold one store event; report whether it changed what is shown."""
        return self.apply_value(event.map_name, event.key, event.value)

    def apply_value(self, map_name: str, key: str, text: str | None) -> bool:
        """Fold the value ``text`` (None: removed) of ``map_name[key]``; report a change."""
        value = self._decode(map_name, key, text)
        if text is not None and value is None:
            return False
        if map_name == SAFETY:
            return self._on_safety(key, value)
        if map_name == HEARTBEAT:
            return self._on_beat(key, value)
        if map_name == FEATURES and key in FEATURE_KEYS:
            return self._on_feature(key, value)
        if map_name == STATE_BLUE and key == STATE_KEY:
            self._on_state(value)
            return True
        if map_name == PNL_BLUE:
            if value is None:
                self.days.pop(key, None)
            else:
                self.days[key] = value
            return True
        return False

    def _decode(self, map_name: str, key: str, text: str | None) -> Value | None:
        if text is None:
            return None
        try:
            record = decode_value(text, source=f"{map_name}[{key!r}]")
        except MalformedValueError as exc:
            self.malformed += 1
            _log.warning("tui: %s", exc)
            return None
        return Value(record.ts_ns, record.data)

    def _on_safety(self, key: str, value: Value | None) -> bool:
        if key == OVERRIDE_KEY:
            was, self.override = self.override, value
            if value is not None and was is None:
                d = value.data if isinstance(value.data, Mapping) else {}
                self.alert(value.ts_ns, WARN, f"pause requested by {d.get('by')}: "
                                              f"{d.get('reason')}")
            elif value is None and was is not None:
                self.alert(self.clock(), INFO, "pause lifted (override removed)")
            return True
        if key != POSTURE_KEY or value is None or not isinstance(value.data, Mapping):
            return False
        previous = self.posture.data if self.posture is not None else None
        self.posture = value
        for a in alerts_between(previous, value.data):
            level = CRIT if a["kind"] in ("invariant_break", "service_down") else WARN
            self.alert(value.ts_ns, level, a["message"])
        old, new = (previous or {}).get("posture"), value.data.get("posture")
        if previous is not None and old != new and not any(
                a["kind"] == "posture_drop" for a in alerts_between(previous, value.data)):
            self.alert(value.ts_ns, INFO, f"posture {old} -> {new} (Rm {_num(value.data, 'rm')})")
        self._stale.discard("posture")
        return True

    def _on_beat(self, name: str, value: Value | None) -> bool:
        if value is None:
            self.beats.pop(name, None)
            return True
        old = self.beats.get(name)
        self.beats[name] = value
        if not isinstance(value.data, Mapping):
            return True
        before = old.data if old is not None and isinstance(old.data, Mapping) else {}
        breaker, was = value.data.get("breaker"), before.get("breaker")
        if isinstance(breaker, str) and breaker != was:
            if breaker != "CLOSED":
                self.alert(value.ts_ns, CRIT, f"{name}: breaker {breaker} "
                                              f"({value.data.get('breaker_failures', '?')} "
                                              "failures)")
            elif was is not None:
                self.alert(value.ts_ns, INFO, f"{name}: breaker CLOSED again")
        resyncs, had = value.data.get("resyncs"), before.get("resyncs")
        if isinstance(resyncs, int) and isinstance(had, int) and resyncs > had:
            self.alert(value.ts_ns, WARN, f"{name}: {resyncs - had} book resync(s) "
                                          f"(total {resyncs})")
        if name in self._stale:
            self._stale.discard(name)
            self.alert(value.ts_ns, INFO, f"service {name} beating again")
        return True

    def _on_feature(self, key: str, value: Value | None) -> bool:
        old = self.features.get(key)
        if value is None:
            self.features.pop(key, None)
            return True
        self.features[key] = value
        data = value.data if isinstance(value.data, Mapping) else {}
        if key == LATEST_EIGEN_SCAN:
            self.scans_seen += 1
            vd = data.get("vel_div")
            self.vel_div.append(float(vd) if _finite(vd) else math.nan)
        elif key == EXF_LATEST:
            stale = _stale_factors(data)
            before = _stale_factors(old.data) if old is not None else set()
            if stale - before:
                self.alert(value.ts_ns, WARN, "stale factors: " + ", ".join(sorted(stale)))
        return True

    def _on_state(self, value: Value | None) -> None:
        self.state = value
        positions = self.positions()
        for asset in list(self._held):
            if asset not in positions:
                del self._held[asset]
        for asset in positions:
            if asset not in self._held:
                self._held[asset] = _Held(self.scans_seen, lower_bound=not self._loaded)

    # ------------------------------------------------------------------ ages and alerts
    def alert(self, ts_ns: int, level: str, text: str) -> None:
        """Add one alert (newest last)."""
        self.alerts.append(Alert(int(ts_ns), level, text))

    def check_ages(self) -> bool:
        """Alert once for each heartbeat older than ``stale_after_s`` and for a posture older
        than ``posture_stale_s``; report whether any alert was added."""
        now, added = self.clock(), False
        for name, beat in self.beats.items():
            age = (now - beat.ts_ns) / 1e9
            state = beat.data.get("state") if isinstance(beat.data, Mapping) else None
            if age > self.stale_after_s and state != "STOPPED" and name not in self._stale:
                self._stale.add(name)
                self.alert(now, WARN, f"service {name} stale: heartbeat {age:.0f}s old")
                added = True
        if self.posture is not None and "posture" not in self._stale:
            age = (now - self.posture.ts_ns) / 1e9
            if age > self.posture_stale_s:
                self._stale.add("posture")
                self.alert(now, CRIT, f"posture stale: {age:.0f}s old (is the watchdog up?)")
                added = True
        return added

    def age_s(self, value: Value | None) -> float:
        """Seconds since ``value`` was written (inf when missing)."""
        return math.inf if value is None else (self.clock() - value.ts_ns) / 1e9

    # ------------------------------------------------------------------ derived views
    def payload(self) -> Mapping[str, Any]:
        """The posture payload (empty before the first)."""
        d = self.posture.data if self.posture is not None else None
        return d if isinstance(d, Mapping) else {}

    def feature(self, key: str) -> Mapping[str, Any]:
        """A feature value's payload (empty when missing)."""
        v = self.features.get(key)
        return v.data if v is not None and isinstance(v.data, Mapping) else {}

    def positions(self) -> Mapping[str, Mapping[str, Any]]:
        """The open positions of the trader's state: ``{asset: {qty, entry_price}}``."""
        d = self.state.data if self.state is not None else None
        p = d.get("positions") if isinstance(d, Mapping) else None
        return {a: v for a, v in p.items() if isinstance(v, Mapping) and v.get("qty")} \
            if isinstance(p, Mapping) else {}

    def position_rows(self) -> list[dict[str, Any]]:
        """Each open position with side, unrealised PnL (at the latest scan's price), bars
        held and its exit levels."""
        prices = self.feature(LATEST_EIGEN_SCAN).get("asset_prices") or {}
        rows = []
        for asset, p in sorted(self.positions().items()):
            qty, entry = float(p["qty"]), p.get("entry_price")
            price = prices.get(asset)
            upnl = qty * (price - entry) if _finite(price) and _finite(entry) else math.nan
            side = -1 if qty < 0 else 1
            held = self._held.get(asset)
            bars = p.get("bars_held")
            if isinstance(bars, int):
                bars_text = str(bars)
            elif held is not None:
                bars_text = ("≥" if held.lower_bound else "") + str(self.scans_seen
                                                                     - held.first_scan)
            else:
                bars_text = "?"
            tp = sl = math.nan  # a SHORT takes profit below the entry and stops above it
            if _finite(entry):
                tp = entry * (1 + side * self.exits.tp_pct)
                if self.exits.stop_pct < 1.0 or side < 0:
                    sl = entry * (1 - side * self.exits.stop_pct)
            rows.append({"asset": asset, "side": "SHORT" if side < 0 else "LONG", "qty": qty,
                         "entry": entry, "price": price, "upnl": upnl, "bars": bars_text,
                         "tp": tp, "stop": sl, "max_hold": self.exits.max_hold_bars})
        return rows

    def today(self) -> Mapping[str, Any]:
        """The newest day's PnL row (the trader's session day, not the wall clock's)."""
        if not self.days:
            return {}
        d = self.days[max(self.days)].data
        return d if isinstance(d, Mapping) else {}

    def trader_state(self) -> Mapping[str, Any]:
        """``DOLPHIN_STATE_BLUE["latest"]``'s payload (empty when missing)."""
        d = self.state.data if self.state is not None else None
        return d if isinstance(d, Mapping) else {}

    def service_names(self) -> list[str]:
        """Every service with a heartbeat or named by the watchdog, in the mesh's order."""
        names = set(self.beats) | _named_services(self.payload())
        names = {n for n in names if not n.startswith("prefect:")}
        known = [n for n in SERVICE_ORDER if n in names]
        return known + sorted(names - set(known))


def _named_services(payload: Mapping[str, Any]) -> set[str]:
    s = payload.get("services") or {}
    return set(s.get("down") or ()) | set(s.get("degraded") or ()) | set(s.get("critical") or ())


def _stale_factors(data: Any) -> set[str]:
    factors = data.get("factors") if isinstance(data, Mapping) else None
    if not isinstance(factors, Mapping):
        return set()
    return {k for k, v in factors.items() if isinstance(v, Mapping) and v.get("stale")}


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _num(d: Mapping[str, Any], key: str) -> str:
    x = d.get(key)
    return f"{x:.3f}" if _finite(x) else "n/a"

