"""Esoteric factors (EsoF): the moon, Mercury's apparent motion, the weekday and the hour.

All computed offline with PyEphem (VSOP87 and ELP theories compiled into the library, so no
ephemeris is downloaded at run time). Every time is UTC.

- ``moon_illumination``: the illuminated fraction of the moon's disc, in [0, 1];
- ``moon_phase``: the fraction of the synodic month's *time* elapsed since the previous new
  moon, in [0, 1). 0 is new. The full moon falls near 0.5: the eccentric orbit puts it up to
  about 15 h off the middle of its month, 0.48 to 0.52. ``moon_phase_name`` is one of the eight
  conventional phases, each 1/8 of the cycle centred on its point (new: within 1/16 of 0);
- ``mercury_retrograde``: Mercury's geocentric apparent ecliptic longitude decreasing at that
  instant (its rate over ±1 h). The stations are where the flag changes;
- ``weekday``: 0 Monday … 6 Sunday; ``hour``: 0 … 23.

``esof_at(ts_ns)`` gives the features at an instant, and ``esof_daily(start, end)`` gives one
row per UTC day at 12:00 UTC (the research table).
"""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import ephem
import pandas as pd

from dolphin.core.config import EsofConfig
from dolphin.core.errors import BadInputError

PHASE_NAMES = ("new", "waxing_crescent", "first_quarter", "waxing_gibbous", "full",
               "waning_gibbous", "last_quarter", "waning_crescent")
#: Half-width of the interval Mercury's longitude rate is measured over, in days (1 h).
RATE_HALF_DAYS = 1.0 / 24.0
#: PyEphem's dates count days from 1899-12-31 12:00 UTC.
_EPHEM_EPOCH = datetime(1899, 12, 31, 12, tzinfo=UTC)


def _ephem_date(ts_ns: int) -> ephem.Date:
    return ephem.Date(ts_ns / 86_400e9 - (_EPHEM_EPOCH.timestamp() / 86_400.0))


def moon(ts_ns: int) -> tuple[float, float]:
    """Return ``(illumination, phase)`` of the moon at ``ts_ns`` (module docstring)."""
    d = _ephem_date(ts_ns)
    illumination = float(ephem.Moon(d).moon_phase)
    prev_new, next_new = ephem.previous_new_moon(d), ephem.next_new_moon(d)
    phase = (float(d) - float(prev_new)) / (float(next_new) - float(prev_new))
    return min(max(illumination, 0.0), 1.0), min(max(phase, 0.0), math.nextafter(1.0, 0.0))


def phase_name(phase: float) -> str:
    """Return the conventional name of a moon phase fraction."""
    return PHASE_NAMES[math.floor(phase * 8 + 0.5) % 8]


def _mercury_longitude(d: float) -> float:
    return float(ephem.Ecliptic(ephem.Mercury(ephem.Date(d))).lon)


def mercury_retrograde(ts_ns: int) -> bool:
    """Return whether Mercury's geocentric ecliptic longitude is decreasing at ``ts_ns``."""
    d = float(_ephem_date(ts_ns))
    a = _mercury_longitude(d - RATE_HALF_DAYS)
    b = _mercury_longitude(d + RATE_HALF_DAYS)
    return (b - a + math.pi) % (2 * math.pi) - math.pi < 0


def esof_at(ts_ns: int) -> dict[str, Any]:
    """Return every EsoF feature at ``ts_ns`` (int64 ns UTC)."""
    if isinstance(ts_ns, bool) or not isinstance(ts_ns, int):
        raise BadInputError("EsoF time must be int64 ns UTC", field="ts_ns", value=ts_ns)
    t = datetime.fromtimestamp(ts_ns / 1e9, UTC)
    illumination, phase = moon(ts_ns)
    return {"ts_ns": ts_ns, "moon_illumination": illumination, "moon_phase": phase,
            "moon_phase_name": phase_name(phase), "mercury_retrograde": mercury_retrograde(ts_ns),
            "weekday": t.weekday(), "hour": t.hour}


def esof_daily(start: str | pd.Timestamp, end: str | pd.Timestamp) -> pd.DataFrame:
    """One row per UTC day from ``start`` to ``end`` inclusive, computed at 12:00 UTC:
    ``date, moon_illumination, moon_phase, moon_phase_name, mercury_retrograde, weekday``."""
    try:
        first = pd.Timestamp(start).tz_localize(None).normalize()
        last = pd.Timestamp(end).tz_localize(None).normalize()
    except (ValueError, TypeError) as exc:
        raise BadInputError(f"not a date ({exc})", field="start/end",
                            value=f"{start}..{end}") from None
    if last < first:
        raise BadInputError("end is before start", field="end", value=str(end))
    rows = []
    day = first.to_pydatetime().replace(tzinfo=UTC)
    while day <= last.to_pydatetime().replace(tzinfo=UTC):
        noon = day + timedelta(hours=12)
        f = esof_at(int(noon.timestamp()) * 1_000_000_000)
        rows.append({"date": day.date(), "moon_illumination": f["moon_illumination"],
                     "moon_phase": f["moon_phase"], "moon_phase_name": f["moon_phase_name"],
                     "mercury_retrograde": f["mercury_retrograde"], "weekday": f["weekday"]})
        day += timedelta(days=1)
    out = pd.DataFrame(rows)
    out["date"] = pd.to_datetime(out["date"])
    return out


WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def brake_scale(date: str, cfg: EsofConfig) -> float:
    """Return the EsoF meta-brake's size scale for the UTC day ``date`` (YYYY-MM-DD): 1.0 when
    the brake is off or the day is not flagged, else ``cfg.esof_brake_mult``. A day is flagged
    by its weekday (``esof_brake_weekdays``) or, with ``esof_brake_retrograde``, by Mercury being
    retrograde at the day's 00:00 UTC: both are known at the day's open."""
    if not cfg.esof_brake:
        return 1.0
    try:
        day = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=UTC)
    except (TypeError, ValueError) as exc:
        raise BadInputError("EsoF brake date must be YYYY-MM-DD", field="date",
                            value=date) from exc
    flagged = WEEKDAY_NAMES[day.weekday()] in cfg.esof_brake_weekdays
    if not flagged and cfg.esof_brake_retrograde:
        flagged = _retrograde_at_open(date)
    return cfg.esof_brake_mult if flagged else 1.0


@functools.lru_cache(maxsize=4096)
def _retrograde_at_open(date: str) -> bool:
    day = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=UTC)
    return mercury_retrograde(int(day.timestamp()) * 1_000_000_000)
