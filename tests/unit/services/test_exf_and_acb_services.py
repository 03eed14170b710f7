"""The ExF service (per-factor cadence, ages, staleness, errors) and the ACB processor (the
day's verdict from live factors and the scans' w750, single writer), on injected clocks."""

from __future__ import annotations

import math
import threading

import pandas as pd
import pytest

from dolphin.core.clock import SimulatedClock
from dolphin.core.config import AcbConfig
from dolphin.core.errors import BadInputError, RetryableError
from dolphin.risk.acb import base_boost
from dolphin.services.acb_processor import AcbProcessor
from dolphin.services.component import ComponentState
from dolphin.services.exf_service import ExfService, FactorSpec, Observation, live_factors
from dolphin.store.memory import MemoryStore
from dolphin.store.schema import ACB_BOOST, EXF_LATEST, FEATURES, decode_value

D0 = int(pd.Timestamp("2024-03-01", tz="UTC").value)
S, H = 10**9, 3600 * 10**9


class Feed:
    """A fetcher returning queued outcomes (an Observation or an exception to raise)."""

    def __init__(self, *outcomes) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self, now_ns: int) -> Observation:
        self.calls += 1
        out = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(out, Exception):
            raise out
        return out


def obs(value, ts, available=None, source="test"):
    return Observation(value, ts, ts if available is None else available, source)


def test_each_factor_is_fetched_on_its_cadence_and_published_with_its_age():
    clock, store = SimulatedClock(D0), MemoryStore()
    fng, dvol = Feed(obs(20.0, D0 - H)), Feed(obs(60.0, D0 - 2 * H))
    svc = ExfService(store, {"fng": FactorSpec(fng, 3600, 2 * 86400),
                             "dvol_btc": FactorSpec(dvol, 60, 2 * 86400)}, clock=clock)
    svc.start()
    assert svc.tick()
    clock.advance(60 * S)
    assert svc.tick() and (fng.calls, dvol.calls) == (1, 2)  # dvol every minute, fng hourly
    rec = decode_value(store.map(FEATURES).get(EXF_LATEST))
    f = rec.data["factors"]
    assert f["fng"] == {"value": 20.0, "ts_ns": D0 - H, "available_ns": D0 - H, "source": "test",
                        "age_s": 3660.0, "stale": False}
    assert f["dvol_btc"]["age_s"] == 2 * 3600 + 60 and rec.ts_ns == D0 + 60 * S
    assert live_factors(rec.data, clock.now_ns()) == {"fng": 20.0, "dvol_btc": 60.0}


def test_unknown_is_never_a_value():
    clock, store = SimulatedClock(D0), MemoryStore()
    specs = {
        "never": FactorSpec(Feed(RetryableError("down")), 60, 3600),
        "future": FactorSpec(Feed(obs(1.0, D0 + H)), 60, 3600),
        "old": FactorSpec(Feed(obs(1.0, D0 - 2 * H)), 60, 3600),
        "bad": FactorSpec(Feed(BadInputError("value out of range", field="fng", value=250)),
                          60, 3600),
        "nan": FactorSpec(Feed(obs(math.nan, D0)), 60, 3600),
    }
    svc = ExfService(store, specs, clock=clock)
    svc.start()
    svc.tick()
    f = decode_value(store.map(FEATURES).get(EXF_LATEST)).data["factors"]
    assert all(v["value"] is None and v["stale"] for v in f.values())
    assert f["never"]["why"].startswith("fetch failed") and f["future"]["why"] == "from the future"
    assert f["old"]["why"] == "older than 3600s" and f["bad"]["why"].startswith("malformed")
    assert svc.state is ComponentState.DEGRADED
    assert all(math.isnan(v) for v in live_factors({"factors": f}, clock.now_ns()).values())
    assert svc.heartbeat()["errors"]["bad"] == {"malformed": 1}


def test_a_failed_fetch_keeps_the_last_value_until_it_ages_out_then_recovers():
    clock, store = SimulatedClock(D0), MemoryStore()
    feed = Feed(obs(30.0, D0), RetryableError("429"), RetryableError("429"), obs(31.0, D0 + 2 * H))
    svc = ExfService(store, {"fng": FactorSpec(feed, 3600, 1.5 * 3600)}, clock=clock)
    svc.start()
    svc.tick()
    clock.advance(H)
    svc.tick()  # the fetch fails: the value of an hour ago still holds
    f = decode_value(store.map(FEATURES).get(EXF_LATEST)).data["factors"]["fng"]
    assert f["value"] == 30.0 and not f["stale"] and svc.state is ComponentState.RUNNING
    clock.advance(H)
    svc.tick()  # fails again, now two hours old: stale
    f = decode_value(store.map(FEATURES).get(EXF_LATEST)).data["factors"]["fng"]
    assert f["value"] is None and f["why"].startswith("older than 5400s; fetch failed")
    assert svc.state is ComponentState.DEGRADED
    clock.advance(H)
    svc.tick()
    assert svc.state is ComponentState.RUNNING and svc.latest["factors"]["fng"]["value"] == 31.0


def _publish_exf(store, now, **values):
    svc = ExfService(store, {k: FactorSpec(Feed(obs(v, now - H)), 60, 86400)
                             for k, v in values.items()}, clock=SimulatedClock(now))
    svc.start()
    svc.tick()


def test_the_processor_writes_the_days_verdict_from_live_factors():
    cfg = AcbConfig()
    clock, store = SimulatedClock(D0 + 60 * S), MemoryStore()
    # funding below very-bearish (1.0), DVOL elevated (0.5), F&G extreme fear (1.0: confirmed)
    _publish_exf(store, clock.now_ns(), funding_btc=cfg.funding_very_bearish * 2,
                 dvol_btc=(cfg.dvol_elevated + cfg.dvol_extreme) / 2, fng=cfg.fng_extreme_fear - 5)
    acb = AcbProcessor(store, cfg, clock=clock)
    acb.start()
    day = acb.tick()
    assert day.signals == 2.5 and day.boost == pytest.approx(1 + 0.5 * math.log1p(2.5))
    assert day.boost == base_boost(2.5) and day.absent == ("taker",)
    assert day.beta == cfg.beta_low  # no w750 history yet: the calm value
    rec = decode_value(store.map(FEATURES).get(ACB_BOOST)).data
    assert rec["date"] == "2024-03-01" and rec["boost"] == day.boost and rec["absent"] == ["taker"]
    assert rec["factors"]["taker"] is None
    clock.advance(60 * S)
    assert acb.tick() is None and acb.published == 1  # same day, same factors: not rewritten
    _publish_exf(store, clock.now_ns(), funding_btc=0.0001)  # factors changed mid-day
    assert acb.tick().boost == 1.0 and acb.published == 2


def test_the_processor_takes_w750_from_finished_days_of_scans():
    cfg = AcbConfig(w750_warmup_days=2)
    clock, store = SimulatedClock(D0), MemoryStore()
    acb = AcbProcessor(store, cfg, clock=clock)
    acb.start()
    for day, values in enumerate([[0.1, 0.3, 0.2], [0.5, None, 0.7], [0.0]]):
        for i, v in enumerate(values):
            acb.on_scan({"timestamp_ns": D0 + day * 86400 * S + i * 60 * S,
                         "v750_lambda_max_velocity": v})
    clock.set(D0 + 2 * 86400 * S + 120 * S)
    day = acb.tick()
    assert day.w750_value == 0.6  # the median of the last finished day (None dropped)
    # the 60th percentile of [0.2, 0.6] is 0.44: 0.6 is above it
    assert day.w750_threshold == pytest.approx(0.44) and day.beta == cfg.beta_high


def test_one_writer_at_a_time():
    clock, store = SimulatedClock(D0), MemoryStore()
    first = AcbProcessor(store, AcbConfig(), clock=clock)
    first.start()
    assert first.tick() is not None and first.writer
    second = AcbProcessor(store, AcbConfig(), clock=clock)
    second.start()
    seen = []
    t = threading.Thread(target=lambda: seen.append(second.tick()))  # another owner
    t.start()
    t.join()
    assert seen == [None] and second.standby == 1 and not second.writer
    first.stop()  # gives the lock back
    t = threading.Thread(target=lambda: seen.append(second.tick()))
    t.start()
    t.join()
    assert seen[-1] is not None and second.writer


def test_the_survival_reading_is_the_oldest_factors_age_and_unknown_is_maximally_stale():
    from dolphin.core.config import SurvivalConfig
    from dolphin.risk.sensors import structural_sensors
    from dolphin.services.exf_service import exf_age_h

    now = D0 + 10 * H
    fresh = {"factors": {"fng": {"value": 1.0, "stale": False, "available_ns": D0},
                         "dvol_btc": {"value": 2.0, "stale": False, "available_ns": D0 + 4 * H}}}
    assert exf_age_h(fresh, now) == 10.0  # the older one
    stale = {"factors": {**fresh["factors"], "taker": {"value": None, "stale": True}}}
    assert exf_age_h(stale, now) == math.inf
    assert exf_age_h(None, now) == math.inf and exf_age_h({"factors": {}}, now) == math.inf
    future = {"factors": {"fng": {"value": 1.0, "stale": False, "available_ns": now + H}}}
    assert exf_age_h(future, now) == math.inf
    sensor = next(s for s in structural_sensors(SurvivalConfig()) if s.name == "exf_age_h")
    assert sensor.profile(exf_age_h(stale, now)) == 0.0  # maximally stale: no health
    recent = {"factors": {"fng": {"value": 1.0, "stale": False, "available_ns": D0}}}
    assert sensor.profile(exf_age_h(recent, D0 + 10 * 60 * S)) == 1.0  # 10 min: in the deadband
