"""The ACB processor: the day's boost and beta from live factors, into
``DOLPHIN_FEATURES["acb_boost"]``.

ACB v6 scales 1 and 3 (``risk.acb``) run here on live inputs. The factors are the ExF
service's ``exf_latest`` (a stale or missing factor is absent, never a value:
``exf_service.live_factors``). The w750 history is the median
``v750_lambda_max_velocity`` of each finished UTC day of the published scans (``on_scan``, fed
by a store listener on ``latest_eigen_scan``), exactly as the replay's ``DayProtocol`` feeds its
ACB. ``tick()`` computes the verdict at the UTC day's open and again whenever the factors
or the OB-4 stress change, and writes ``{date, boost, beta, signals, absent, factors,
w750_value, ob_stress}``. The trader's listener applies it by the pending-flag pattern (§14.2),
and the engine's ``update_acb_boost`` applies the §7.3 sub-day exit rule.

OB-4 (Bible §9.4): the day's withdrawal stress is the share of the PREVIOUS UTC day's OB cycles
whose ``regime_signal`` is +1, 0.0 when that day has no cycle: the rule of
``backtest.ob_table.ObTable.daily_ob_stress``, so a live day's beta is the beta a backtest over
the recorded cycles gives. The cycles come from the OB service's ``DOLPHIN_OB["latest_macro"]``
(``{ts_ns, cycle?, cascade_count, regime_signal, market_multiplier}``, ``obf_service``): a store
listener on that key, attached on start, hands each value to ``on_ob_macro``, which counts the
cycle on the UTC day of its ``ts_ns`` (a null regime, i.e. NaN, is a cycle without stress). Each
cycle counts once: the key's single writer publishes cycles in time order, so a value whose
``ts_ns`` is not newer than the newest counted is a re-delivery (a retried push) and is ignored,
and so is one stamped beyond the allowed clock skew in the future (it would otherwise hide every
later cycle); both are counted in ``ob_ignored``. The counts live in memory: a processor started
mid-day knows only the cycles it has seen since, and a day it saw nothing of gives 0.0, the
no-OB beta exactly (as a gap in a recording does).

Single writer: a processor writes only while it holds the map lock on ``acb_boost`` (the CP
subsystem is not available; a Hazelcast map lock is released when its holder's client goes).
One that cannot take it stands by, counts ``standby`` and retries the lock each tick. The write
itself is an ``AcbApply`` entry processor (``store.processors``), run on the member that owns the
key: the verdict's sequence continues the stored one's, and the store refuses a verdict out of
``risk.acb.verdict_bounds``, for an earlier date or not newer than the stored one (counted in
``refused``; the processor degrades), so even a writer that lost its lock cannot undo a newer
verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from dolphin.alpha.session import day_w750, utc_date
from dolphin.core.clock import Clock
from dolphin.core.config import AcbConfig
from dolphin.core.errors import BadInputError
from dolphin.features.exf import FACTORS
from dolphin.risk.acb import AcbDay, AdaptiveCircuitBreaker, verdict_bounds
from dolphin.services.component import Component
from dolphin.services.exf_service import live_factors
from dolphin.services.ob_provider import ObDays
from dolphin.services.obf_service import LATEST_MACRO as OB_LATEST_MACRO
from dolphin.store.errors import MalformedValueError
from dolphin.store.ports import EntryEvent, Store
from dolphin.store.processors import AcbApply, parse_envelope
from dolphin.store.schema import ACB_BOOST, EXF_LATEST, FEATURES, OB, decode_value, encode_value
from dolphin.store.values import MAX_CLOCK_SKEW_S, MalformedCounter


class _LiveFactors:
    """The ACB's factor source (``ExfTable.for_date``'s shape) over the latest live values."""

    def __init__(self) -> None:
        self.values: dict[str, float] = dict.fromkeys(FACTORS, math.nan)

    def for_date(self, date: str) -> dict[str, float]:
        """Return the live factors (the date is the processor's current day)."""
        return dict(self.values)


class AcbProcessor(Component):
    """Compute and publish the ACB verdict (module docstring)."""

    def __init__(self, store: Store, cfg: AcbConfig, *, clock: Clock,
                 exf_max_age_s: float | None = None, name: str = "acb_processor",
                 max_retries: int = 3) -> None:
        super().__init__(name, clock=clock, max_retries=max_retries)
        self.store = store
        self.cfg = cfg
        self.exf_max_age_s = exf_max_age_s
        self._factors = _LiveFactors()
        self.acb = AdaptiveCircuitBreaker(cfg, exf=self._factors)
        self.writer = False
        self.standby = 0
        self.published = 0
        self.refused = 0  # verdicts the store's AcbApply turned down
        self.last: AcbDay | None = None
        self._day: str | None = None
        self._v750: list[float] = []
        self._written: tuple[str, tuple[float, ...]] | None = None
        self.ob = ObDays()
        self.malformed = MalformedCounter()
        self._ob_listener: str | None = None

    def on_start(self) -> None:
        """Listen to the OB service's ``latest_macro`` (OB-4's cycles)."""
        self._ob_listener = self.store.map(OB).add_listener(self._on_ob_event,
                                                             key=OB_LATEST_MACRO)

    # ---------------------------------------------------------------- scans in
    def on_scan(self, payload: Mapping[str, Any]) -> None:
        """Keep one published scan's w750 velocity; a new UTC day closes the previous one."""
        date = utc_date(int(payload["timestamp_ns"]))
        if self._day is not None and date != self._day:
            median = day_w750(np.asarray(self._v750, dtype=np.float64))
            if median is not None:
                self.acb.observe_w750(median)
            self._v750 = []
        self._day = date
        v = payload.get("v750_lambda_max_velocity")
        self._v750.append(math.nan if v is None else float(v))

    # ---------------------------------------------------------------- OB cycles in
    def on_ob_macro(self, payload: Mapping[str, Any]) -> bool:
        """Count one OB cycle's ``latest_macro`` payload for OB-4; return whether it counted
        (module docstring). A payload without an integer ``ts_ns`` is malformed."""
        ts = payload.get("ts_ns") if isinstance(payload, Mapping) else None
        if isinstance(ts, bool) or not isinstance(ts, int):
            raise MalformedValueError("OB macro without an integer ts_ns",
                                      source=f"{OB}[{OB_LATEST_MACRO!r}]", field="ts_ns",
                                      value=ts)
        if ts - self.clock.now_ns() > MAX_CLOCK_SKEW_S * 1e9:
            self.ob.ignore()
            return False
        regime = payload.get("regime_signal")
        number = isinstance(regime, int | float) and not isinstance(regime, bool)
        value = float(regime) if number else math.nan
        return self.ob.add(ts, value)

    def _on_ob_event(self, event: EntryEvent) -> None:
        """Store listener: decode the envelope, count the cycle (malformed: counted, skipped)."""
        if event.value is None:
            return
        source = f"{event.map_name}[{event.key!r}]"
        try:
            self.on_ob_macro(decode_value(event.value, source=source).data)
        except MalformedValueError as exc:
            self.malformed.record(event.map_name, event.key, exc)

    # ---------------------------------------------------------------- verdict out
    def tick(self) -> AcbDay | None:
        """Write today's verdict when the day, the factors or the OB-4 stress changed; return
        it (or None)."""
        now = self.clock.now_ns()
        if not self.writer:
            self.writer = self.store.map(FEATURES).try_lock(ACB_BOOST)
            if not self.writer:
                self.standby += 1
                return None
        self._factors.values = {**dict.fromkeys(FACTORS, math.nan),
                                **live_factors(self._read_exf(), now, self.exf_max_age_s)}
        date = utc_date(now)
        stress = self.ob.stress(date)
        key = (date, (*(self._factors.values[k] for k in FACTORS), stress))
        if self._written is not None and _same(self._written, key):
            return None
        day = self.acb.day(date, ob_stress=stress)
        if self.run_step(lambda: self._write(day, now, stress)) is not None:
            return None
        self._written, self.last = key, day
        return day

    def _read_exf(self) -> Mapping[str, Any] | None:
        text = self.store.map(FEATURES).get(EXF_LATEST)
        if text is None:
            return None
        try:
            return decode_value(text, source=f"{FEATURES}[{EXF_LATEST}]").data
        except MalformedValueError:
            return None  # unreadable: every factor absent

    def _write(self, day: AcbDay, now: int, ob_stress: float = 0.0) -> None:
        body = {"date": day.date, "boost": day.boost, "beta": day.beta, "signals": day.signals,
                "absent": list(day.absent),
                "factors": {k: (v if math.isfinite(v) else None) for k, v in day.factors.items()},
                "w750_value": day.w750_value if math.isfinite(day.w750_value) else None,
                "ob_stress": ob_stress}
        features = self.store.map(FEATURES)
        # The sequence continues the stored verdict's, so a processor that took over the lock
        # writes above its predecessor; the store applies it atomically, refusing a verdict out
        # of bounds, for an earlier date or with a sequence not above the stored one.
        current = parse_envelope(features.get(ACB_BOOST))
        seq = 1 if current is None else current.seq + 1
        outcome = features.execute(
            ACB_BOOST, AcbApply(encode_value(body, now, seq=seq), *verdict_bounds(self.cfg)))
        if not outcome.applied:
            self.refused += 1
            raise BadInputError(f"ACB verdict for {day.date} refused by the store: "
                                f"{outcome.reason}", source=f"{FEATURES}[{ACB_BOOST}]")
        self.published += 1

    def on_stop(self) -> None:
        """Stop listening to the OB macro; give the writer lock back."""
        if self._ob_listener is not None:
            self.store.map(OB).remove_listener(self._ob_listener)
            self._ob_listener = None
        if self.writer:
            self.store.map(FEATURES).unlock(ACB_BOOST)
            self.writer = False

    def heartbeat(self) -> dict[str, Any]:
        """The base heartbeat plus the role, the counts and the last verdict."""
        beat = super().heartbeat()
        beat.update(writer=self.writer, standby=self.standby, published=self.published,
                    boost=self.last.boost if self.last else None,
                    beta=self.last.beta if self.last else None,
                    ob_newest_ns=self.ob.newest_ns, ob_ignored=self.ob.ignored,
                    malformed=self.malformed.total)
        return beat


def _same(a: tuple[str, tuple[float, ...]], b: tuple[str, tuple[float, ...]]) -> bool:
    """Equal days and factor values (NaN equal to NaN)."""
    return a[0] == b[0] and all(x == y or (math.isnan(x) and math.isnan(y))
                                for x, y in zip(a[1], b[1], strict=True))
