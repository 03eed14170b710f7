"""The ExF service: a caching updater per external factor, into ``DOLPHIN_FEATURES["exf_latest"]``.

Each factor has a fetcher (an adapter's client, injected: services import no adapter), a
cadence and a maximum age. ``tick()`` refetches every factor whose cadence has come. It keeps the
last good observation of each factor and publishes all of them in one value, in the Bible §15
schema: per factor ``value``, ``ts_ns`` (the observation's own time), ``available_ns`` (when it
became known, ``features/exf.py``'s as-of rules), ``source``, ``fetched_ns``, ``age_s`` and
``stale``.

Unknown is never healthy. A factor with no observation yet, a failed fetch beyond its
maximum age, an observation not yet available at the clock's time (future-dated), or one older
than ``max_age_s`` is published as ``value: null, stale: true``. Its reason is in ``why``. The
ACB counts such a factor as absent (``risk.acb``: no signal, listed in ``absent``). A fetch
error is counted per factor. A retryable one (network, 429/5xx after the client's own retries)
keeps the last good observation until it ages out. A malformed response drops the observation.
The service degrades while any factor is stale and recovers when all are fresh again. A store
failure is a retry (``Component.run_step``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dolphin.core.clock import Clock
from dolphin.core.errors import BadInputError, RetryableError
from dolphin.services.component import Component, ComponentState
from dolphin.store.ports import Store
from dolphin.store.schema import EXF_LATEST, FEATURES, encode_value


@dataclass(frozen=True)
class Observation:
    """One factor value: its own time, when it became known, where it came from."""

    value: float
    ts_ns: int
    available_ns: int
    source: str


Fetcher = Callable[[int], Observation]
"""Return the latest observation available at the given time (int64 ns UTC)."""


@dataclass(frozen=True)
class FactorSpec:
    """How one factor is kept: its fetcher, how often it is refetched, how old it may get."""

    fetch: Fetcher
    period_s: float
    max_age_s: float


class ExfService(Component):
    """Refetch each factor on its cadence; publish the set with ages and staleness."""

    def __init__(self, store: Store, factors: Mapping[str, FactorSpec], *, clock: Clock,
                 name: str = "exf", max_retries: int = 3) -> None:
        super().__init__(name, clock=clock, max_retries=max_retries)
        if not factors:
            raise ValueError("the ExF service needs at least one factor")
        self.store = store
        self.factors = dict(factors)
        self.last: dict[str, Observation] = {}
        self.errors: dict[str, Counter[str]] = {k: Counter() for k in self.factors}
        self.published = 0
        self.latest: dict[str, Any] | None = None
        self._due: dict[str, int] = dict.fromkeys(self.factors, 0)
        self._why: dict[str, str] = {}

    def tick(self) -> bool:
        """Refetch the factors that are due and publish; return whether anything was fetched."""
        now = self.clock.now_ns()
        due = [k for k, t in self._due.items() if now >= t]
        for k in due:
            self._fetch(k, now)
            self._due[k] = now + int(self.factors[k].period_s * 1e9)
        if not due:
            return False
        if self.run_step(lambda: self._publish(now)) is None:
            self._health()
        return True

    def _fetch(self, k: str, now: int) -> None:
        try:
            obs = self.factors[k].fetch(now)
        except RetryableError as exc:
            self.errors[k]["retryable"] += 1
            self._why[k] = f"fetch failed: {exc}"
            return
        except BadInputError as exc:
            self.errors[k]["malformed"] += 1
            self.last.pop(k, None)
            self._why[k] = f"malformed: {exc}"
            return
        if not math.isfinite(obs.value):
            self.errors[k]["malformed"] += 1
            self.last.pop(k, None)
            self._why[k] = f"not a finite value: {obs.value!r}"
            return
        self.last[k] = obs
        self._why.pop(k, None)

    def factor_view(self, k: str, now: int) -> dict[str, Any]:
        """Return factor ``k`` as published at ``now`` (stale: null ``value``, reason ``why``)."""
        obs, spec = self.last.get(k), self.factors[k]
        if obs is None:
            return {"value": None, "stale": True, "why": self._why.get(k, "no observation yet")}
        age_s = (now - obs.available_ns) / 1e9
        view = {"ts_ns": obs.ts_ns, "available_ns": obs.available_ns, "source": obs.source,
                "age_s": age_s}
        if obs.available_ns > now:
            return {**view, "value": None, "stale": True, "why": "from the future"}
        if age_s > spec.max_age_s:
            return {**view, "value": None, "stale": True,
                    "why": f"older than {spec.max_age_s:g}s" + (
                        f"; {self._why[k]}" if k in self._why else "")}
        return {**view, "value": obs.value, "stale": False}

    def _publish(self, now: int) -> None:
        self.latest = {"factors": {k: self.factor_view(k, now) for k in self.factors},
                       "ts_ns": now}
        self.store.map(FEATURES).put(EXF_LATEST, encode_value(self.latest, now))
        self.published += 1

    def _health(self) -> None:
        stale = sorted(k for k, v in self.latest["factors"].items() if v["stale"])
        if stale and self.state is ComponentState.RUNNING:
            self.degrade(f"stale factors: {', '.join(stale)}")
        elif not stale and self.state is ComponentState.DEGRADED:
            self.recover()

    def heartbeat(self) -> dict[str, Any]:
        """The base heartbeat plus per-factor error counts and staleness."""
        beat = super().heartbeat()
        beat["errors"] = {k: dict(v) for k, v in self.errors.items()}
        beat["stale"] = sorted(k for k, v in (self.latest or {}).get("factors", {}).items()
                               if v["stale"])
        beat["published"] = self.published
        return beat


def live_factors(payload: Mapping[str, Any] | None, now_ns: int,
                 max_age_s: float | None = None) -> dict[str, float]:
    """Return ``{factor: value}`` from an ``exf_latest`` payload for the ACB: a stale, missing
    or (with ``max_age_s``) too old factor is NaN, i.e. absent."""
    out: dict[str, float] = {}
    for k, v in ((payload or {}).get("factors") or {}).items():
        value = v.get("value")
        fresh = not v.get("stale", True) and value is not None
        if fresh and max_age_s is not None:
            fresh = (now_ns - int(v.get("available_ns", now_ns))) / 1e9 <= max_age_s
        out[k] = float(value) if fresh else math.nan
    return out


def exf_age_h(payload: Mapping[str, Any] | None, now_ns: int) -> float:
    """Return the survival controller's ``exf_age_h`` reading (Cat2) from an ``exf_latest``
    payload: the age in hours of its oldest factor, ``inf`` (maximally stale) when the payload
    is missing or any factor is stale, and ``inf`` for an age from the future."""
    factors = (payload or {}).get("factors")
    if not factors:
        return math.inf
    worst = 0.0
    for v in factors.values():
        if v.get("stale", True) or "available_ns" not in v:
            return math.inf
        age_h = (now_ns - int(v["available_ns"])) / 3.6e12
        if age_h < 0:
            return math.inf
        worst = max(worst, age_h)
    return worst
