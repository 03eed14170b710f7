"""Realistic outages replayed through the survival controller, one update per minute.

Each test states the expected posture timeline as ``(minute, posture)`` transitions. The numbers
follow from the champion's §11/§19.3 parameters; the comments give the arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable

from dolphin.core.config import SurvivalConfig
from dolphin.risk.survival import SurvivalController, SurvivalReading
from tests.kit.survival import HEALTHY, MIN


def replay(change: Callable[[int], dict], minutes: int) -> list[SurvivalReading]:
    """Run ``minutes`` updates of HEALTHY readings overridden by ``change(minute)``."""
    c = SurvivalController(SurvivalConfig())
    return [c.update({**HEALTHY, **change(m)}, m * MIN) for m in range(minutes)]


def transitions(out: list[SurvivalReading]) -> list[tuple[int, str]]:
    """Return the minutes at which the posture changed (and the starting posture)."""
    return [(m, o.posture) for m, o in enumerate(out) if m == 0 or o.posture != out[m - 1].posture]


def test_transitions_helper_reports_each_change_once():
    fake = [SurvivalReading(0, 1.0, 1.0, p, (1.0,) * 5, ("",) * 5, 0) for p in "AABBBA"]
    assert transitions(fake) == [(0, "A"), (2, "B"), (5, "A")]


def test_order_book_feed_dies_for_ten_minutes():
    # last book at minute 10, back at minute 20. Minute 11: age 60 s -> micro 0.5 + 0.5 e^(-58/60)
    # = 0.69 < 0.75, two bars -> TURTLE at 12; the floor (0.5) keeps it out of HIBERNATE.
    # Recovery: gap shrinks 2 %/min from 0.5; STALKER needs Rm >= 0.77 (0.5 * 0.98^k <= 0.23,
    # k = 39) plus 5 bars; APEX needs 0.92 (k = 91) plus 5 bars.
    out = replay(lambda m: {"ob_age_s": (m - 10) * 60.0 if 10 <= m < 20 else 0.5}, 240)
    assert transitions(out) == [(0, "APEX"), (12, "TURTLE"), (62, "STALKER"), (114, "APEX")]
    assert min(o.rm for o in out) >= 0.5
    assert out[15].drivers[2] == "ob_age_s"


def test_exf_feed_stale_for_two_hours():
    # age grows 1 min per minute; deadband 0.5 h, tau 6 h: f < 0.90 once age > 0.5 + 6 ln(1/0.9)
    # = 1.13 h (minute 68), two bars -> STALKER at 69. At 2 h f = e^(-0.25) = 0.78: never TURTLE.
    # Fresh again at 120: back over 0.92 after ~50 min, plus 5 bars.
    out = replay(lambda m: {"exf_age_h": m / 60.0 if m < 120 else 0.05}, 300)
    assert transitions(out) == [(0, "APEX"), (69, "STALKER"), (173, "APEX")]
    assert out[119].drivers[1] == "exf_age_h"
    assert out[119].categories[1] > 0.77


def test_drawdown_to_twelve_percent():
    # DD ramps 0 -> 12 % over an hour and stays. Normalised sigmoid: < 0.90 at DD 5.4 % (minute
    # 27), < 0.75 at 8.3 % (minute 42), each with the 2-bar delay; 12 % gives 0.514: TURTLE, not
    # HIBERNATE. Capital has no recovery while the drawdown persists.
    out = replay(lambda m: {"drawdown": min(m, 60) / 60 * 0.12}, 200)
    assert transitions(out) == [(0, "APEX"), (29, "STALKER"), (45, "TURTLE")]
    assert 0.51 < out[-1].rm < 0.52 and out[-1].drivers[4] == "drawdown"


def test_drawdown_to_twenty_percent_hibernates():
    out = replay(lambda m: {"drawdown": 0.20 if m >= 5 else 0.0}, 30)
    assert transitions(out) == [(0, "APEX"), (6, "HIBERNATE")]


def test_dvol_spike():
    # DVOL 50 -> 65 (+30 %) at minute 30: environmental 0.3 at once (fast attack), HIBERNATE after
    # two bars. The impulse decays with tau 60 min and Rm climbs at most 2 %/min of its gap:
    # TURTLE (>= 0.52) at 96, STALKER (>= 0.77) at 160, APEX (>= 0.92) at 238.
    out = replay(lambda m: {"dvol": 50.0 if m < 30 else 65.0}, 300)
    assert transitions(out) == [
        (0, "APEX"),
        (31, "HIBERNATE"),
        (96, "TURTLE"),
        (160, "STALKER"),
        (238, "APEX"),
    ]
    assert out[30].rm == 0.3 and out[30].drivers[3] == "dvol"


def test_heartbeat_loss_hibernates_on_the_same_minute_then_recovers_slowly():
    out = replay(lambda m: {"heartbeat_age_s": 45.0} if m == 10 else {}, 150)
    assert out[10].rm == 0.0 and out[10].posture == "HIBERNATE"
    assert transitions(out)[:2] == [(0, "APEX"), (10, "HIBERNATE")]
    assert out[11].rm <= 0.05  # 5 %/min cap: one minute later Rm is at most 0.05
