"""A recorded minute of mesh store content, replayed into a store on a chosen clock.

Synthetic but shaped: the values are written by hand in the exact shapes the mesh's writers
produce (the watchdog's ``_payload``, ``Component.heartbeat()`` plus each service's extras, the
trader's ``_beat``, ``scan_payload``, the ACB verdict, ``_Mc``, ``exf_latest``,
``LedgerView.state()``/``day()``); ``tests/unit/ui/test_mesh_record.py`` checks them against
the real writers' keys. What happens in the minute (t in seconds):

- 0..60: every service beats each second, one scan per second (``vel_div`` a slow wave, a
  ``data_gap`` at 33), a SHORT SOLUSDT position open throughout, its price drifting down.
- exf stops beating at 20 (a stale service); the watchdog's payload names it down from 30.
- posture: APEX (Rm 0.97) at 0, 10, 20; STALKER (0.80) at 30; TURTLE (0.62) at 40 and 50.
- obf: one book resync at 25, the push breaker OPEN from 36 to 45, a second resync at 44.
- ``exf_latest`` (written at 0) has ``funding_btc`` stale.

``Player(store, base_ns).play_until(t)`` writes every frame up to ``t`` with
``ts_ns = base_ns + t`` (the posture through ``set_posture`` with increasing ``seq``, the
heartbeats through ``touch_heartbeat``, as the services do).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dolphin.store.features import set_posture, touch_heartbeat
from dolphin.store.ports import Store
from dolphin.store.schema import (
    ACB_BOOST,
    ESOF_LATEST,
    EXF_LATEST,
    FEATURES,
    HEARTBEAT,
    LATEST_EIGEN_SCAN,
    MC_STATUS,
    PNL_BLUE,
    SAFETY,
    STATE_BLUE,
    encode_value,
)

S = 1_000_000_000
#: 2024-03-01 12:00:00 UTC, the recording's own start.
BASE_NS = 1_709_294_400 * S
DATE = "2024-03-01"
SERVICES = ("acb", "obf", "exf", "esof", "scan", "watchdog", "mc", "trader")
DURATION_S = 60
EXF_LAST_BEAT_S = 20
BREAKER_OPEN_S = (36, 45)
RESYNC_AT_S = (25, 44)
ENTRY = 142.30
QTY = -12.5


@dataclass(frozen=True, slots=True)
class Frame:
    """One store write at ``t_s`` seconds into the recording (``data=None``: a delete)."""

    t_s: float
    map_name: str
    key: str
    data: Any


def posture_payload(t: int, posture: str, rm: float, down: tuple[str, ...] = ()) -> dict:
    """The watchdog's ``_payload`` at ``t`` (categories from Rm: structural carries the loss)."""
    struct = round(rm / 0.99, 4)
    reasons = {n: f"heartbeat {t - EXF_LAST_BEAT_S:.1f}s old (> 5s)" for n in down}
    sensors = {"heartbeat_age_s": 0.4, "store_nodes": 1.0, "ledger_ok": 1.0,
               "scan_age_s": 0.6, "acb_age_h": 0.2, "esof_age_s": 12.0,
               "exf_age_h": (t / 3600.0), "mc_status": 0.0, "mc_age_h": 0.01,
               "service_health": 0.0 if down else 1.0, "dvol": 52.3, "drawdown": 0.0112}
    return {"ts_ns": BASE_NS + t * S, "rm": rm, "r_target": min(1.0, rm + 0.01),
            "posture": posture,
            "categories": {"invariant": 1.0, "structural": struct, "microstructure": 1.0,
                           "environmental": 1.0, "capital": 0.99},
            "drivers": {"invariant": "heartbeat_age_s",
                        "structural": "service_health" if down else "esof_age_s",
                        "microstructure": None, "environmental": "dvol",
                        "capital": "drawdown"},
            "degraded": 1 if down else 0, "sensors": sensors,
            "services": {"down": list(down), "degraded": [], "critical": ["scan", "trader"],
                         "reasons": reasons},
            "watchdog": "watchdog", "controller_posture": posture, "override": None}


def _beat(name: str, t: int, n: int) -> dict:
    beat: dict[str, Any] = {"component": name, "state": "RUNNING", "ts_ns": BASE_NS + t * S,
                            "reason": None, "beats": n}
    if name == "obf":
        open_ = BREAKER_OPEN_S[0] <= t < BREAKER_OPEN_S[1]
        beat.update(cycles=10 * t, published=10 * t, books=400 * t, unsynced=0,
                    breaker="OPEN" if open_ else "CLOSED", breaker_failures=3 if open_ else 0,
                    push_pending=1 if open_ else 0, assets=48, n_dark=0, dark=[],
                    resyncs=sum(t >= r for r in RESYNC_AT_S))
        if open_:
            beat.update(state="DEGRADED", reason="push breaker OPEN: file-only mode")
    elif name == "scan":
        beat.update(bar_sets=t, scans=t, published=t, publish_failures=0, last_scan_number=t,
                    last_scan_ts_ns=BASE_NS + t * S, bar=t, bars=DURATION_S, done=False)
    elif name == "trader":
        beat.update(scans=t, trades=7, capital=25_312.40, ledger_ok=True)
    elif name == "acb":
        beat.update(writer=True, standby=False, published=1, boost=1.18, beta=0.5)
    elif name == "esof":
        beat.update(computed=t // 10 + 1, published=t // 10 + 1, last_ts_ns=BASE_NS)
    elif name == "mc":
        beat.update(status="OK")
    elif name == "watchdog":
        posture, rm = _posture_at(t)
        beat.update(posture=posture, rm=rm, seq=t // 10 + 1, published=t // 10 + 1,
                    refused=0, pending=[], down=["exf"] if t >= 30 else [], degraded=[],
                    override=False)
    elif name == "exf":
        beat.update(errors={}, stale=["funding_btc"], published=t)
    return beat


def _posture_at(t: int) -> tuple[str, float]:
    if t < 30:
        return "APEX", 0.97
    if t < 40:
        return "STALKER", 0.80
    return "TURTLE", 0.62


def _price(t: float) -> float:
    return round(ENTRY * (1 - 0.0004 * t), 4)


def scan_value(t: int) -> dict:
    """One ``scan_payload`` (scan fields plus ``asset_prices``)."""
    vd = -0.012 + 0.016 * math.sin(t / 4.0) - (0.01 if 30 <= t < 40 else 0.0)
    return {"timestamp_ns": BASE_NS + t * S, "scan_number": t, "vel_div": round(vd, 6),
            "v50_lambda_max_velocity": round(0.01 * math.cos(t / 5.0), 6),
            "v150_lambda_max_velocity": 0.002, "v300_lambda_max_velocity": 0.001,
            "v750_lambda_max_velocity": 0.0005, "instability_50": 0.1, "instability_150": 0.08,
            "n_assets": 48, "data_gap": t == 33,
            "asset_prices": {"BTCUSDT": 61_000.0 + 5 * t, "ETHUSDT": 3_400.0 + t,
                             "SOLUSDT": _price(t)}}


def state_value(t: int) -> dict:
    """``LedgerView.state()`` with one SHORT SOLUSDT position."""
    posture, _ = _posture_at(t)
    return {"config_id": "c0ffee", "capital": 25_312.40, "peak": 25_600.0,
            "drawdown": 0.0112, "balance": 25_312.40, "posture": posture,
            "positions": {"SOLUSDT": {"qty": QTY, "entry_price": ENTRY}}, "trades": 7,
            "loss_streak": 1, "orders": 15, "fills": 15, "denials": 2, "decisions": 40 + t,
            "sessions": 1, "funding_paid": -1.2, "last_event_ns": BASE_NS + t * S,
            "last_bar_ns": BASE_NS + t * S, "ledger_head_seq": 120 + t,
            "ledger_head_hash": "ab" * 32}


def day_value() -> dict:
    """``LedgerView.day(DATE)``."""
    return {"date": DATE, "pnl": 212.40, "funding": -1.2, "trades": 7, "capital": 25_312.40}


def frames() -> list[Frame]:
    """The whole recording, in write order."""
    out = [Frame(0, FEATURES, ACB_BOOST, {"date": DATE, "boost": 1.18, "beta": 0.5,
                                          "signals": 0.4, "absent": [], "factors": {},
                                          "w750_value": None, "ob_stress": 0.0}),
           Frame(0, FEATURES, MC_STATUS, {"date": DATE, "status": "OK", "max_leverage": 5.0}),
           Frame(0, FEATURES, EXF_LATEST, {"ts_ns": BASE_NS, "factors": {
               "dvol_btc": {"value": 52.3, "stale": False, "available_ns": BASE_NS},
               "funding_btc": {"value": None, "stale": True, "available_ns": BASE_NS - 9 * S},
           }}),
           Frame(0, FEATURES, ESOF_LATEST, {"weekday": 4, "hour": 12}),
           Frame(0, PNL_BLUE, DATE, day_value())]
    counts = dict.fromkeys(SERVICES, 0)
    for t in range(DURATION_S + 1):
        if t % 10 == 0:
            posture, rm = _posture_at(t)
            out.append(Frame(t, SAFETY, "latest",
                             posture_payload(t, posture, rm, ("exf",) if t >= 30 else ())))
        out.append(Frame(t, FEATURES, LATEST_EIGEN_SCAN, scan_value(t)))
        if t % 5 == 0:
            out.append(Frame(t, STATE_BLUE, "latest", state_value(t)))
        for name in SERVICES:
            if name == "exf" and t > EXF_LAST_BEAT_S:
                continue
            counts[name] += 1
            out.append(Frame(t, HEARTBEAT, name, _beat(name, t, counts[name])))
    return out


class Player:
    """Write the recording's frames into a store on ``base_ns`` (module docstring)."""

    def __init__(self, store: Store, base_ns: int = BASE_NS) -> None:
        self.store = store
        self.base_ns = base_ns
        self.frames = frames()
        self.i = 0
        self.seq = 0
        self.t_s = -1.0

    def now_ns(self) -> int:
        """The recording's time as wall time: ``base_ns + t_s`` of the last frame played."""
        return self.base_ns + round(max(self.t_s, 0.0) * S)

    def play_until(self, t_s: float) -> int:
        """Write every frame up to ``t_s``; return how many were written."""
        n = 0
        while self.i < len(self.frames) and self.frames[self.i].t_s <= t_s:
            self._write(self.frames[self.i])
            self.i += 1
            n += 1
        self.t_s = t_s
        return n

    def _write(self, f: Frame) -> None:
        ts = self.base_ns + round(f.t_s * S)
        data = _shift(f.data, self.base_ns - BASE_NS)
        if f.map_name == SAFETY and f.key == "latest":
            self.seq += 1
            set_posture(self.store, data, self.seq, clock=lambda: ts)
        elif f.map_name == HEARTBEAT:
            touch_heartbeat(self.store, data, ts)
        elif f.data is None:
            self.store.map(f.map_name).delete(f.key)
        else:
            self.store.map(f.map_name).put(f.key, encode_value(data, ts))


def _shift(data: Any, delta_ns: int) -> Any:
    """Move every ``*ts_ns``/``*_ns`` time of a payload by ``delta_ns`` (another base)."""
    if not delta_ns or not isinstance(data, dict):
        return data
    out = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out[k] = _shift(v, delta_ns)
        elif k.endswith("_ns") and isinstance(v, int) and v > S:
            out[k] = v + delta_ns
        else:
            out[k] = v
    return out
