"""What the trader accepts from the store: the posture it trades under and mid-day ACB updates.

DESIGN.md "Failure behaviour": unknown is never healthy. This overrules the Bible's §14.6
(default APEX when the posture cannot be read):

- The posture is read from ``DOLPHIN_SAFETY`` through a *posture source* (a callable). It may
  return the cell snapshot / record (``ts_ns`` + payload ``{"posture": ...}`` or a bare posture
  string), a bare posture string (an in-process source that vouches for its own freshness), or
  None (nothing published). Missing, unreadable (the source raises: store down), unknown-valued,
  future-dated or older than ``max_age_s`` -> TURTLE: no new entries, open positions still
  managed. The reason is logged once per outage, and the recovery once.
- ``max_age_s`` defaults to three watchdog periods (``POSTURE_MAX_AGE_S``): the watchdog
  rewrites the posture every period, so two missed writes in a row are tolerated, three are not.
- A mid-day ACB update (boost, beta) is applied only when both are finite numbers inside what
  the ACB can produce (``acb_bounds``); anything else is refused with a log line and the values
  in force are kept.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dolphin.core.config import AcbConfig
from dolphin.core.errors import BadInputError
from dolphin.core.records import POSTURES
from dolphin.features.exf import FACTORS
from dolphin.risk.acb import base_boost
from dolphin.store.values import is_fresh

log = logging.getLogger(__name__)

#: The watchdog's period: it republishes posture + Rm to ``DOLPHIN_SAFETY`` this often.
WATCHDOG_PERIOD_S = 10.0
#: A posture older than this is stale: three watchdog periods.
POSTURE_MAX_AGE_S = 3 * WATCHDOG_PERIOD_S
#: What the trader trades under when the posture is unknown.
FALLBACK_POSTURE = "TURTLE"
#: §10 OB sub-4: withdrawal stress raises beta by at most 25 %.
OB_BETA_STRETCH = 1.25


@dataclass(frozen=True, slots=True)
class PostureRead:
    """One judged posture read: the posture to trade under and why it is not the store's."""

    posture: str
    reason: str = ""  # empty when the store's value was used


def _payload_posture(data: Any) -> Any:
    return data.get("posture") if isinstance(data, dict) else data


def judge_posture(value: Any, now_ns: int, max_age_s: float) -> PostureRead:
    """Turn what a posture source returned into the posture to trade under."""
    if value is None:
        return PostureRead(FALLBACK_POSTURE, "missing (nothing published)")
    if isinstance(value, str):
        posture = value
    else:
        record = getattr(value, "record", value)  # a CellSnapshot carries its Record
        ts_ns = getattr(record, "ts_ns", None)
        if not isinstance(ts_ns, int) or isinstance(ts_ns, bool):
            return PostureRead(FALLBACK_POSTURE, f"no ts_ns on {type(value).__name__}")
        age_s = (now_ns - ts_ns) / 1e9
        if not is_fresh(age_s, max_age_s):
            what = "from the future" if age_s < 0 else f"stale (> {max_age_s:g}s)"
            return PostureRead(FALLBACK_POSTURE, f"{what}: age {age_s:.1f}s")
        posture = _payload_posture(getattr(record, "data", None))
    if posture not in POSTURES:
        return PostureRead(FALLBACK_POSTURE, f"unknown value {posture!r}")
    return PostureRead(posture)


class PostureGuard:
    """Read a posture source and degrade to TURTLE on anything unknown, logging once per outage."""

    def __init__(
        self, *, max_age_s: float = POSTURE_MAX_AGE_S, clock: Callable[[], int] = time.time_ns
    ) -> None:
        if not max_age_s > 0:
            raise ValueError(f"posture max age must be positive, got {max_age_s}")
        self.max_age_s = max_age_s
        self.clock = clock
        self.degraded = False
        self.last: PostureRead | None = None

    def read(self, source: Callable[[], Any]) -> str:
        """Return the posture to trade under, judged from ``source()``."""
        try:
            value = source()
        except Exception as exc:  # any store failure is an unreadable posture
            result = PostureRead(FALLBACK_POSTURE, f"unreadable ({type(exc).__name__}: {exc})")
        else:
            result = judge_posture(value, self.clock(), self.max_age_s)
        self._note(result)
        return result.posture

    def _note(self, result: PostureRead) -> None:
        self.last = result
        if result.reason and not self.degraded:
            log.warning("posture %s: trading as %s (no new entries, open positions managed) "
                        "until a fresh posture is read", result.reason, FALLBACK_POSTURE)
        elif not result.reason and self.degraded:
            log.info("posture readable again: %s", result.posture)
        self.degraded = bool(result.reason)


def acb_bounds(cfg: AcbConfig) -> tuple[tuple[float, float], tuple[float, float]]:
    """Return the ``(boost, beta)`` ranges the ACB can produce with ``cfg`` (risk/acb.py).

    Boost: ``1 + 0.5 ln(1 + signals)`` with at most one full signal per factor, 1 without any.
    Beta: ``beta_low`` or ``beta_high``, raised by at most 25 % by OB stress.
    """
    boost_hi = base_boost(float(len(FACTORS)))
    beta_hi = max(cfg.beta_high, cfg.beta_low) * OB_BETA_STRETCH
    return (1.0, boost_hi), (0.0, beta_hi)


def _number(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInputError("not a number", field=name, value=value)
    x = float(value)
    if not math.isfinite(x) or not lo <= x <= hi:
        raise BadInputError(f"outside [{lo:g}, {hi:g}]", field=name, value=value)
    return x


def validate_acb_update(data: Any, cfg: AcbConfig) -> tuple[float, float]:
    """Return ``(boost, beta)`` of an ACB update, or raise BadInputError naming the bad field."""
    if not isinstance(data, dict):
        raise BadInputError("ACB update is not an object", value=data)
    (b_lo, b_hi), (c_lo, c_hi) = acb_bounds(cfg)
    return (_number("boost", data.get("boost"), b_lo, b_hi),
            _number("beta", data.get("beta"), c_lo, c_hi))  # fmt: skip
