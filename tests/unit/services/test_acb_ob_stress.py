"""The ACB processor's OB-4 on live OB cycles is the backtest's OB-4 on the recorded ones.

The same cycles (three UTC days, regimes −1/0/+1 and NaN, a cycle at 00:00:00 exactly and one at
the last nanosecond of a day) go to the processor as the OB service's ``latest_macro`` payloads,
in time order and each twice (a re-delivery), and to ``ObTable`` as a recorded-features
parquet. Each day's stress and published beta must agree; the expected shares come from a
plain count over the frame, not from either implementation.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

from dolphin.backtest.ob_table import ObTable
from dolphin.core.clock import SimulatedClock
from dolphin.core.config import AcbConfig
from dolphin.risk.acb import AdaptiveCircuitBreaker
from dolphin.services.acb_processor import AcbProcessor
from dolphin.services.obf_service import LATEST_MACRO, macro_record
from dolphin.store.memory import MemoryStore
from dolphin.store.schema import ACB_BOOST, FEATURES, OB, decode_value, encode_value
from tests.kit.ob import neutral, per_bar_frame, write_frame

DAY = 86_400 * 10**9
S = 10**9
D0 = int(pd.Timestamp("2024-03-01", tz="UTC").value)
ASSETS = ["BTCUSDT", "ETHUSDT"]


def _cycles(days: list[int], seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Cycle times (sorted, distinct) on the given day offsets, and their macro rows."""
    rng = np.random.default_rng(seed)
    ts = []
    for d in days:
        start = D0 + d * DAY
        inner = np.sort(rng.choice(DAY // S - 2, size=150, replace=False) + 1) * S
        ts.extend([start, *(start + inner), start + DAY - 1])  # 00:00:00 and 23:59:59.999999999
    ts = np.asarray(ts, dtype=np.int64)
    macro = np.empty((len(ts), 3))
    macro[:, 0] = rng.integers(0, 3, len(ts)).astype(float)
    macro[:, 1] = rng.choice([-1.0, 0.0, 1.0, np.nan], len(ts), p=[0.3, 0.3, 0.3, 0.1])
    macro[:, 2] = rng.uniform(0.85, 1.2, len(ts))
    return ts, macro


def _table(tmp_path, ts, macro) -> tuple[ObTable, pd.DataFrame]:
    per_asset, _ = neutral(len(ts), len(ASSETS))
    frame = per_bar_frame(ts, 0.0, ASSETS, per_asset, macro)  # each cycle at its own ts
    return ObTable.read(write_frame(tmp_path / "ob.parquet", frame)), frame


def _share(frame: pd.DataFrame, date: str) -> float:
    """Reference: the previous UTC day's share of distinct cycles with regime exactly +1."""
    cycles = frame.drop_duplicates("ts_ns")
    prev = pd.Timestamp(date, tz="UTC").value // DAY - 1
    regimes = cycles["regime_signal"][cycles["ts_ns"] // DAY == prev]
    return float((regimes == 1.0).sum() / len(regimes)) if len(regimes) else 0.0


def _payload(ts: int, row: np.ndarray, cycle: int) -> dict:
    rec = macro_record(ts, row)  # the OB service's own payload builder
    rec["cycle"] = cycle
    if math.isnan(rec["regime_signal"]):
        rec["regime_signal"] = None  # JSON has no NaN: the envelope writes null
    return rec


def _date(day: int) -> str:
    return str(np.datetime64(D0 // DAY + day, "D"))


def _published(store) -> dict:
    return decode_value(store.map(FEATURES).get(ACB_BOOST)).data


def test_live_and_recorded_cycles_give_the_same_stress_and_beta(tmp_path):
    cfg = AcbConfig()
    ts, macro = _cycles([0, 1, 2])
    table, frame = _table(tmp_path, ts, macro)
    assert all(0.2 < _share(frame, _date(d)) < 0.5 for d in (1, 2, 3))  # stress on each day
    clock, store = SimulatedClock(D0), MemoryStore()
    proc = AcbProcessor(store, cfg, clock=clock)
    proc.start()
    day_of = ts // DAY - D0 // DAY
    seen = []
    for d in range(4):
        clock.set(D0 + d * DAY + S)  # one second into day d: its verdict
        verdict = proc.tick()
        date = _date(d)
        want = _share(frame, date)
        assert proc.ob.stress(date) == table.daily_ob_stress(date) == pytest.approx(want,
                                                                                   abs=1e-15)
        # the table's stress through a backtest's ACB gives the same beta as the live one
        ref = AdaptiveCircuitBreaker(cfg).day(date, ob_stress=table.daily_ob_stress(date))
        assert verdict.beta == ref.beta == pytest.approx(cfg.beta_low * (1 + 0.25 * want),
                                                         rel=1e-15)
        body = _published(store)
        assert body["date"] == date and body["beta"] == verdict.beta
        assert body["ob_stress"] == table.daily_ob_stress(date)
        seen.append(verdict.beta)
        clock.set(D0 + (d + 1) * DAY - 1)  # day d's cycles, as they become known
        for i in np.flatnonzero(day_of == d):
            payload = _payload(int(ts[i]), macro[i], int(i))
            assert proc.on_ob_macro(payload) is True
            assert proc.on_ob_macro(payload) is False  # a re-delivery counts once
    assert seen[0] == cfg.beta_low and len(set(seen[1:])) == 3
    assert proc.ob.ignored == len(ts)
    proc.stop()


W750 = (0.1, 0.2, 0.9)


def _three_days_of_scans(proc: AcbProcessor) -> None:
    """Three finished days of scans before D0 (one scan each, w750 ``W750``), so the w750
    beta is past a 2-day warm-up; the scan at D0 closes the third day."""
    for d, v in enumerate(W750):
        proc.on_scan({"timestamp_ns": D0 - (3 - d) * DAY, "v750_lambda_max_velocity": v})
    proc.on_scan({"timestamp_ns": D0, "v750_lambda_max_velocity": 0.5})


def test_a_day_without_ob_cycles_gives_the_no_ob_beta_exactly(tmp_path):
    cfg = AcbConfig(w750_warmup_days=2)
    ts, macro = _cycles([0])
    macro[:, 1] = 1.0  # day 0 fully stressed; day 1 has no cycle at all
    table, _ = _table(tmp_path, ts, macro)
    clock, store = SimulatedClock(D0 + DAY - 1), MemoryStore()
    proc = AcbProcessor(store, cfg, clock=clock)
    proc.start()
    for i, t in enumerate(ts):
        proc.on_ob_macro(_payload(int(t), macro[i], i))
    _three_days_of_scans(proc)
    plain = AdaptiveCircuitBreaker(cfg)  # the same w750 history, no OB
    for v in W750:
        plain.observe_w750(v)
    clock.set(D0 + DAY + S)  # day 1: its previous day (0) is all stress
    stressed = proc.tick()
    assert stressed.beta == plain.day(_date(1), ob_stress=1.0).beta
    assert stressed.beta == cfg.beta_high * 1.25  # 0.9 is above the 60th pct of [.1, .2, .9]
    clock.set(D0 + 2 * DAY + S)  # day 2: day 1 had no cycle
    calm = proc.tick()
    assert table.daily_ob_stress(_date(2)) == 0.0 and proc.ob.stress(_date(2)) == 0.0
    no_ob = plain.day(_date(2))  # the ACB without any OB engine
    assert calm.beta == no_ob.beta and calm.boost == no_ob.boost
    assert _published(store)["ob_stress"] == 0.0
    # and a processor that never saw an OB cycle publishes the same verdict
    other = AcbProcessor(MemoryStore(), cfg, clock=clock)
    other.start()
    _three_days_of_scans(other)
    assert other.tick().beta == calm.beta
    other.stop()
    proc.stop()


def _wait(cond, timeout_s: float = 5.0) -> None:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout_s, "listener did not deliver"
        time.sleep(0.005)


def test_the_store_listener_on_latest_macro_feeds_the_counts():
    clock, store = SimulatedClock(D0 + DAY + 10 * S), MemoryStore()
    proc = AcbProcessor(store, AcbConfig(), clock=clock)
    proc.start()
    ob = store.map(OB)
    cycles = [(D0 + 10 * S, 1.0), (D0 + 20 * S, 0.0), (D0 + 30 * S, 1.0), (D0 + 40 * S, -1.0)]
    for k, (t, regime) in enumerate(cycles):
        ob.put(LATEST_MACRO, encode_value(macro_record(t, (0.0, regime, 1.0)), t))
        if k == 1:
            ob.put(LATEST_MACRO, encode_value(macro_record(t, (0.0, regime, 1.0)), t))  # again
    ob.put(LATEST_MACRO, "not json")  # malformed: counted, skipped
    future = D0 + DAY + 60 * S  # beyond the allowed clock skew: it would hide later cycles
    ob.put(LATEST_MACRO, encode_value(macro_record(future, (0.0, 1.0, 1.0)), future))
    ob.put("macro_by_ts", encode_value({}, D0))  # another key of the map: not listened to
    _wait(lambda: proc.malformed.total == 1 and proc.ob.ignored == 2)
    assert proc.ob.counts(D0 // DAY) == (4, 2) and proc.ob.newest_ns == D0 + 40 * S
    assert proc.ob.stress(_date(1)) == 0.5
    assert proc.tick().beta == AcbConfig().beta_low * 1.125
    proc.stop()
    ob.put(LATEST_MACRO, encode_value(macro_record(D0 + 50 * S, (0.0, 1.0, 1.0)), D0 + 50 * S))
    time.sleep(0.05)
    assert proc.ob.newest_ns == D0 + 40 * S  # stopped: no longer listening
