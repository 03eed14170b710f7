"""The TUI's panels as Rich text, from a ``MeshView`` (pure: no store, no Textual).

Each function returns one panel's body sized for the 80x24 layout of ``dolphin.ui.tui``
(columns of 24, 26 and 30 cells, borders included). Times are UTC; ages are seconds (``s``),
minutes (``m``) or hours (``h``) before the view's clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rich.text import Text

from dolphin.risk.sensors import CATEGORY_NAMES
from dolphin.store.schema import ACB_BOOST, LATEST_EIGEN_SCAN, MC_STATUS
from dolphin.ui.tui_model import CRIT, INFO, WARN, MeshView

POSTURE_STYLE = {"APEX": "bold green", "STALKER": "bold yellow", "TURTLE": "bold dark_orange",
                 "HIBERNATE": "bold red"}
STATE_STYLE = {"RUNNING": "green", "DEGRADED": "yellow", "STARTING": "cyan",
               "INITIALIZED": "cyan", "STOPPING": "red", "STOPPED": "red", "FAULTED": "bold red"}
LEVEL_STYLE = {INFO: "cyan", WARN: "yellow", CRIT: "bold red"}
MC_STYLE = {"OK": "green", "ORANGE": "dark_orange", "RED": "bold red"}
_CAT_SHORT = {"invariant": "inv", "structural": "str", "microstructure": "mic",
              "environmental": "env", "capital": "cap"}


def age(seconds: float) -> str:
    """Return a short age: ``3s``, ``4m``, ``2h``, ``-`` when unknown."""
    if not math.isfinite(seconds):
        return "-"
    s = max(seconds, 0.0)
    if s < 100:
        return f"{s:.0f}s" if s >= 10 else f"{s:.1f}s"
    if s < 6000:
        return f"{s / 60:.0f}m"
    return f"{s / 3600:.0f}h"


def clock_text(ts_ns: int) -> str:
    """``HH:MM:SS`` UTC of ``ts_ns``."""
    s = (ts_ns // 1_000_000_000) % 86400
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def num(x: Any, fmt: str = ".3f", missing: str = "n/a") -> str:
    """Format a finite number, else ``missing``."""
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return missing
    return format(x, fmt)


def header(v: MeshView) -> Text:
    """Posture, Rm (and target), the controller's posture under an override, the time."""
    p = v.payload()
    posture = p.get("posture") or "NONE"
    t = Text.assemble(" DOLPHIN ", (f" {posture} ", f"reverse {POSTURE_STYLE.get(posture, '')}"),
                      f" Rm {num(p.get('rm'))}→{num(p.get('r_target'))}")
    override = p.get("override")
    if override or v.override is not None:
        who = (override or (v.override.data if v.override else {})) or {}
        t.append(f" PAUSED by {who.get('by', '?')}", style="bold reverse dark_orange")
        if override and p.get("controller_posture"):
            t.append(f" (ctl {p['controller_posture']})")
    t.append(f" {age(v.age_s(v.posture))} ago {clock_text(v.clock())}Z")
    return t


def risk(v: MeshView) -> Text:
    """The five categories with a bar each and the driving sensor of the worst."""
    p = v.payload()
    cats: Mapping[str, Any] = p.get("categories") or {}
    drivers: Mapping[str, Any] = p.get("drivers") or {}
    t = Text()
    for name in CATEGORY_NAMES:
        x = cats.get(name)
        filled = round(10 * x) if isinstance(x, int | float) and math.isfinite(x) else 0
        style = "green" if filled >= 9 else "yellow" if filled >= 5 else "red"
        t.append(f"{_CAT_SHORT[name]} {num(x, '.2f', ' n/a')} ")
        t.append("█" * filled, style=style)
        t.append("·" * (10 - filled) + "\n", style="dim")
    worst = min(CATEGORY_NAMES, key=lambda n: _or(cats.get(n), 1.0), default=None)
    if worst is not None and _or(cats.get(worst), 1.0) < 1.0:
        t.append(f"{_CAT_SHORT[worst]}: {drivers.get(worst) or '?'}", style="dim")
    return t


def sensors(v: MeshView) -> Text:
    """Every sensor's reading (all from the payload's tick: the panel's title says its age)."""
    t = Text()
    for name, x in sorted((v.payload().get("sensors") or {}).items()):
        style = "red" if x is None else ""
        t.append(f"{name[:13]:<13}{num(x, '.3g', 'inf'):>7}\n", style=style)
    return t if t.plain else Text("no posture yet", style="dim")


def scan(v: MeshView) -> Text:
    """The latest scan, the ACB verdict and the MC status."""
    s, a, mc = v.feature(LATEST_EIGEN_SCAN), v.feature(ACB_BOOST), v.feature(MC_STATUS)
    gap = s.get("data_gap")
    t = Text.assemble(f"vd {num(s.get('vel_div'), '+.4f')} n {s.get('n_assets', '-')} ",
                      ("GAP" if gap else "ok", "bold red" if gap else "green"), "\n")
    t.append(f"#{s.get('scan_number', '-')} {age(v.age_s(v.features.get(LATEST_EIGEN_SCAN)))}"
             f" ago\n")
    t.append(f"ACB {num(a.get('boost'), '.2f')} b {num(a.get('beta'), '.2f')} "
             f"{age(v.age_s(v.features.get(ACB_BOOST)))}\n")
    status = mc.get("status") or "-"
    t.append("MC ")
    t.append(str(status), style=MC_STYLE.get(status, "dim"))
    t.append(f" {age(v.age_s(v.features.get(MC_STATUS)))}")
    return t


def position(v: MeshView) -> Text:
    """The open position(s): asset, side, entry, unrealised PnL, bars held, exits."""
    rows = v.position_rows()
    if not rows:
        return Text("flat", style="dim")
    t = Text()
    for r in rows[:2]:
        t.append(f"{r['asset']} ", style="bold")
        t.append(r["side"], style="magenta" if r["side"] == "SHORT" else "cyan")
        t.append(f" {num(r['qty'], '.4g')}\n")
        t.append(f"entry {num(r['entry'], '.5g')} now {num(r['price'], '.5g')}\n")
        t.append("uPnL ")
        t.append(num(r["upnl"], "+,.2f"), style=_sign(r["upnl"]))
        t.append(f" bars {r['bars']}/{r['max_hold']}\n")
        t.append(f"TP {num(r['tp'], '.5g')} SL {num(r['stop'], '.5g', 'none')}\n", style="dim")
    if len(rows) > 2:
        t.append(f"+{len(rows) - 2} more", style="dim")
    return t


def pnl(v: MeshView) -> Text:
    """Today's PnL and trades, capital and drawdown."""
    d, st = v.today(), v.trader_state()
    t = Text.assemble("today ", (num(d.get("pnl"), "+,.2f"), _sign(d.get("pnl"))),
                      f" {d.get('trades', '-')} tr\n")
    t.append(f"capital {num(st.get('capital'), ',.2f')}\n")
    dd = st.get("drawdown")
    t.append(f"dd {num(dd * 100 if _finite(dd) else None, '.2f')}% "
             f"pk {num(st.get('peak'), ',.0f')}\n")
    t.append(f"orders {st.get('orders', '-')} denials {st.get('denials', '-')}\n", style="dim")
    posture = st.get("posture") or "-"
    t.append("trader at ")
    t.append(str(posture), style=POSTURE_STYLE.get(posture, "dim"))
    return t


def services(v: MeshView) -> Text:
    """Each service's state, heartbeat age and the watchdog's verdict (D down, d degraded)."""
    s = v.payload().get("services") or {}
    down, degraded = set(s.get("down") or ()), set(s.get("degraded") or ())
    t = Text()
    for name in v.service_names():
        beat = v.beats.get(name)
        state = beat.data.get("state", "?") if beat is not None and isinstance(
            beat.data, Mapping) else "NONE"
        mark = "D" if name in down else "d" if name in degraded else " "
        a = v.age_s(beat)
        t.append(f"{mark}", style="bold red" if mark == "D" else "yellow")
        t.append(f"{name[:8]:<8} ")
        t.append(f"{state[:9]:<9}", style=STATE_STYLE.get(state, "red"))
        t.append(f"{age(a):>6}\n", style="red" if a > v.stale_after_s else "")
    return t if t.plain else Text("no heartbeats", style="dim")


def alerts(v: MeshView, limit: int = 40) -> Text:
    """The newest alerts first, with their UTC time."""
    t = Text()
    for a in list(v.alerts)[::-1][:limit]:
        t.append(clock_text(a.ts_ns) + " ", style="dim")
        t.append(a.text + "\n", style=LEVEL_STYLE.get(a.level, ""))
    return t if t.plain else Text("no alerts", style="dim")


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _or(x: Any, default: float) -> float:
    return float(x) if _finite(x) else default


def _sign(x: Any) -> str:
    return "" if not _finite(x) else "green" if x > 0 else "red" if x < 0 else ""
