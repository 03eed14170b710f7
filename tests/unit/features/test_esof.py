"""EsoF features against published almanac dates.

The dates are eclipses and Mercury stations whose times are public record (NASA's eclipse
catalogue, the standard ephemeris tables), stated here in UTC:

- new moon 2024-04-08 18:21 UTC: the total solar eclipse over North America;
- full moon 2024-09-18 02:34 UTC: the partial lunar eclipse; 2025-03-14 06:55 UTC: the total
  lunar eclipse; 2024-01-25 17:54 UTC: the "Wolf Moon";
- Mercury stationed retrograde 2024-04-01 22:14 UTC and direct 2024-04-25 12:54 UTC, and
  retrograde 2025-03-15 06:46 UTC, direct 2025-04-07 11:08 UTC.
"""

from __future__ import annotations

import pandas as pd
import pytest

from dolphin.core.errors import BadInputError
from dolphin.features.esof import esof_at, esof_daily, mercury_retrograde, moon, phase_name


def ns(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").value)


@pytest.mark.parametrize("when", ["2024-01-25 17:54", "2024-09-18 02:34", "2025-03-14 06:55"])
def test_full_moons_are_fully_lit_at_half_the_cycle(when):
    illumination, phase = moon(ns(when))
    assert illumination > 0.998
    # the phase is the fraction of the month's time: the eccentric orbit puts the full moon up
    # to ~15 h off the middle of its month (2024-01: 0.484, 2024-09: 0.506)
    assert phase == pytest.approx(0.5, abs=0.025)
    assert phase_name(phase) == "full"


def test_the_eclipse_new_moon_is_dark_and_starts_the_cycle():
    illumination, phase = moon(ns("2024-04-08 18:21"))
    assert illumination < 0.001
    assert min(phase, 1 - phase) < 0.002
    before, after = moon(ns("2024-04-08 17:00"))[1], moon(ns("2024-04-08 19:40"))[1]
    assert before > 0.99 and after < 0.01  # the phase wraps at the new moon
    assert phase_name(before) == phase_name(after) == "new"


@pytest.mark.parametrize("when, retro", [
    ("2024-03-25 12:00", False), ("2024-04-01 20:00", False), ("2024-04-02 00:30", True),
    ("2024-04-12 12:00", True), ("2024-04-25 11:00", True), ("2024-04-25 15:00", False),
    ("2024-05-10 12:00", False), ("2025-03-15 04:00", False), ("2025-03-15 09:00", True),
    ("2025-04-07 09:00", True), ("2025-04-07 13:00", False),
])
def test_mercury_retrograde_flips_at_the_published_stations(when, retro):
    assert mercury_retrograde(ns(when)) is retro


def test_weekday_and_hour_are_utc():
    f = esof_at(ns("2026-12-01 23:30"))  # a Tuesday
    assert (f["weekday"], f["hour"]) == (1, 23)
    assert set(f) == {"ts_ns", "moon_illumination", "moon_phase", "moon_phase_name",
                      "mercury_retrograde", "weekday", "hour"}


def test_the_daily_table_has_one_noon_row_per_day():
    t = esof_daily("2024-04-01", "2024-04-30")
    assert len(t) == 30 and list(t.columns) == ["date", "moon_illumination", "moon_phase",
                                                "moon_phase_name", "mercury_retrograde",
                                                "weekday"]
    # Apr 2 .. Apr 25 at noon are inside the retrograde (stations Apr 1 22:14, Apr 25 12:54)
    retro = t.loc[t["mercury_retrograde"], "date"].dt.day.tolist()
    assert retro == list(range(2, 26))
    assert t["moon_illumination"].between(0, 1).all()
    assert t.loc[t["date"] == "2024-04-08", "moon_illumination"].item() < 0.01
    assert t["weekday"].iloc[0] == 0  # 2024-04-01 was a Monday


@pytest.mark.parametrize("bad", [1.5e18, "2024", True])
def test_a_time_that_is_not_int_ns_is_refused(bad):
    with pytest.raises(BadInputError, match="ts_ns"):
        esof_at(bad)


def test_a_backwards_range_is_refused():
    with pytest.raises(BadInputError, match="before start"):
        esof_daily("2025-02-01", "2025-01-01")
