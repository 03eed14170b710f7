"""The one day/bar protocol every driver runs (Bible §13.1 ``process_day``, §14.1).

One place for each rule the drivers must agree on:

- the UTC day split (``utc_day``, ``utc_date``, ``day_bounds``): a day starts at 00:00 UTC of a
  bar's own (open) timestamp;
- the day's w750 value for the ACB (``day_w750``): the median of the day's finite
  ``v750_lambda_max_velocity``, fed to the ACB after the day (never the same day: no look-ahead);
- the day boundary (``DayProtocol``): the ACB verdict of the day (scales 1 and 3), the engine's
  ``begin_day`` (MC-Forewarner status at ``max_leverage × boost``, posture) and ``end_day``;
- the §14 HIBERNATE guard (``hibernate_skips``): a flat engine in HIBERNATE is not stepped;
- the ACB days of a whole span (``acb_days``), what the sweep needs for every ACB config;
- OB-4 (Bible §9.4): the day's withdrawal stress goes to ``AdaptiveCircuitBreaker.day``. The day
  protocol takes it from the engine's OB engine when that offers ``daily_ob_stress(date)``
  (``backtest.ob_table.RecordedOb``), so a driver that attaches OB features for OB-1/2/3/5
  cannot forget OB-4; without one the stress is 0.0 and the beta is exactly the no-OB beta.

The replay (``backtest.replay``) and the Nautilus scan driver (``adapters.nautilus.scan_driver``)
step ``DayProtocol``; the sweep's kernel applies the same per-day values through
``step_nb.begin_day_nb``, the kernel ``NDAlphaEngine.begin_day`` calls too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from dolphin.alpha.engine import DaySummary, NDAlphaEngine
from dolphin.risk.acb import AcbDay, AdaptiveCircuitBreaker

NS_PER_DAY = 86_400_000_000_000


def utc_day(ts_ns):
    """Return the UTC day number(s) of bar timestamps in int64 ns (days since the epoch)."""
    return np.asarray(ts_ns, dtype=np.int64) // NS_PER_DAY


def utc_date(ts_ns: int) -> str:
    """Return the ``YYYY-MM-DD`` UTC date of one bar timestamp."""
    return str(np.datetime64(int(ts_ns) // NS_PER_DAY, "D"))


def day_bounds(ts_ns: np.ndarray) -> np.ndarray:
    """Return the first bar of every UTC day, then the bar count (``bounds[d]:bounds[d + 1]``)."""
    day = utc_day(ts_ns)
    return np.flatnonzero(np.r_[True, day[1:] != day[:-1], True]).astype(np.int64)


def day_w750(v750) -> float | None:
    """Return the median of a day's finite w750 velocities, None when it has none.

    ``np.median``'s number: the middle value, or the two middle values' sum halved (numpy's
    mean of two), from a plain sort; a test checks it against ``np.median``. Far less code
    runs than in ``np.median``, which matters on the first scan of a live day.
    """
    v = np.asarray(v750, dtype=np.float64)
    v = np.sort(v[np.isfinite(v)]).tolist()
    n = len(v)
    if not n:
        return None
    m = n // 2
    return v[m] if n % 2 else (v[m - 1] + v[m]) / 2.0


def hibernate_skips(engine: NDAlphaEngine) -> bool:
    """Return True when the §14 HIBERNATE guard skips the bar: HIBERNATE and flat.

    A flat engine in HIBERNATE is not stepped at all (no histories, no counters); with a
    position open it is stepped so the forced exit (§11.7) closes it. Every driver asks here.
    """
    return engine.posture == "HIBERNATE" and not engine.in_position


def ob_stress_of(ob_engine: object, date: str) -> float:
    """Return OB-4's stress of ``date`` from an OB engine offering ``daily_ob_stress``, else 0."""
    source = getattr(ob_engine, "daily_ob_stress", None)
    return float(source(date)) if source is not None else 0.0


def acb_days(
    acb: AdaptiveCircuitBreaker,
    dates: Sequence[str],
    medians: Sequence[float | None],
    ob_stress: Callable[[str], float] | None = None,
) -> list[AcbDay]:
    """Return the ACB verdict of each day, feeding each day's w750 median after its verdict.

    ``ob_stress(date)`` is the day's OB-4 withdrawal stress (None: no OB, stress 0).
    """
    out = []
    for date, median in zip(dates, medians, strict=True):
        out.append(acb.day(date, ob_stress=ob_stress(date) if ob_stress is not None else 0.0))
        if median is not None:
            acb.observe_w750(median)
    return out


class DayProtocol:
    """Begin and end an engine's days; keep each day's summary and ACB verdict."""

    def __init__(self, engine: NDAlphaEngine, acb: AdaptiveCircuitBreaker | None) -> None:
        self.engine = engine
        self.acb = acb
        self.date: str | None = None
        self.acb_day: AcbDay | None = None
        self.days: list[DaySummary] = []
        self.day_acb: list[AcbDay | None] = []
        self._v750: list[float] = []

    def begin(self, date: str, posture: str | None = None) -> AcbDay | None:
        """Start ``date``: its ACB verdict (with the OB-4 stress), then ``engine.begin_day``
        (MC status, posture)."""
        self.date = date
        if self.acb is not None:
            stress = ob_stress_of(getattr(self.engine, "ob_engine", None), date)
            self.acb_day = self.acb.day(date, ob_stress=stress)
        else:
            self.acb_day = None
        self.engine.begin_day(date, acb=self.acb_day, posture=posture)
        self._v750 = []
        return self.acb_day

    def observe_v750(self, values) -> None:
        """Keep the day's w750 velocities (one value or an array; NaN are dropped later)."""
        if type(values) is float:  # the live scan's one value
            self._v750.append(values)
            return
        self._v750.extend(np.atleast_1d(np.asarray(values, dtype=np.float64)).tolist())

    def end(self) -> DaySummary:
        """End the day: the engine's summary, and the day's w750 median to the ACB."""
        summary = self.engine.end_day()
        median = day_w750(self._v750)
        if self.acb is not None and median is not None:
            self.acb.observe_w750(median)
        self.days.append(summary)
        self.day_acb.append(self.acb_day)
        self._v750 = []
        return summary
