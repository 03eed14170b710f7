"""The EsoF service: esoteric factors at the clock's time, into ``DOLPHIN_FEATURES["esof_latest"]``.

A caching updater (STYLE.md §7, injected clock). ``tick()`` recomputes the features
(``features.esof.esof_at``) once ``period_s`` has passed since the last computation and writes
them with ``ts_ns`` and ``source`` in the store's envelope. A store failure is a retry
(``Component.run_step``): after ``max_retries`` in a row the service degrades, and the next
successful write recovers it. The value is never written with an older time than the last one.
"""

from __future__ import annotations

from typing import Any

from dolphin.core.clock import Clock
from dolphin.features.esof import esof_at
from dolphin.services.component import Component, ComponentState
from dolphin.store.ports import Store
from dolphin.store.schema import ESOF_LATEST, FEATURES, encode_value

#: The moon and Mercury move slowly: once a minute keeps the hour and the weekday exact.
DEFAULT_PERIOD_S = 60.0
SOURCE = "ephem"


class EsofService(Component):
    """Compute and publish the EsoF features on a cadence."""

    def __init__(self, store: Store, *, clock: Clock, period_s: float = DEFAULT_PERIOD_S,
                 name: str = "esof", max_retries: int = 3) -> None:
        super().__init__(name, clock=clock, max_retries=max_retries)
        if not period_s > 0:
            raise ValueError(f"EsoF period must be positive, got {period_s}")
        self.store = store
        self.period_ns = int(period_s * 1e9)
        self.latest: dict[str, Any] | None = None
        self.computed = 0
        self.published = 0
        self._last_ns: int | None = None

    def tick(self) -> bool:
        """Recompute and publish when the period has passed; return whether it published."""
        now = self.clock.now_ns()
        if self._last_ns is not None and now - self._last_ns < self.period_ns:
            return False
        before = self.published
        if self.run_step(lambda: self._publish(now)) is None and self.state is \
                ComponentState.DEGRADED:
            self.recover()
        return self.published > before

    def _publish(self, now: int) -> None:
        if self.latest is None or self.latest["ts_ns"] != now:
            self.latest = {**esof_at(now), "source": SOURCE}
            self.computed += 1
        self.store.map(FEATURES).put(ESOF_LATEST, encode_value(self.latest, now))
        self._last_ns = now
        self.published += 1

    def heartbeat(self) -> dict[str, Any]:
        """The base heartbeat plus the counts and the last value's time."""
        beat = super().heartbeat()
        beat.update(computed=self.computed, published=self.published,
                    last_ts_ns=self._last_ns)
        return beat
