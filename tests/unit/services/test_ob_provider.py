"""``ObProvider``: discovery, listener refresh, as-of reads, ages, Cat3 readings, file fallback."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from dolphin.alpha import layout as lay
from dolphin.core.clock import SimulatedClock
from dolphin.core.config import SurvivalConfig
from dolphin.core.errors import ConfigError
from dolphin.features.obf import NEUTRAL_ASSET_ROW, NEUTRAL_MACRO, OBF_FEATURES
from dolphin.risk.sensors import Category
from dolphin.risk.survival import SurvivalController, default_registry
from dolphin.services.ob_provider import ObProvider, survival_registry
from dolphin.services.obf_service import (
    LATEST_MACRO,
    MACRO_BY_TS,
    STATUS_DARK,
    STATUS_NO_BOOK,
    STATUS_OK,
    ObfService,
    ObfServiceConfig,
)
from dolphin.store.errors import StoreUnavailableError
from dolphin.store.features import ShardedFeatureStore
from dolphin.store.memory import MemoryStore
from dolphin.store.ports import ClusterView
from dolphin.store.schema import OB, SHARD_MAPS, encode_value, shard_index

S = 1_000_000_000
HALF = S // 2
T0 = 1_721_347_000 * S
BAR_S = 5.0
A, B, C = "AAAUSDT", "BBBUSDT", "CCCUSDT"
HEALTHY = {"heartbeat_age_s": 1.0, "store_nodes": 1.0, "ledger_ok": 1.0, "mc_status": 0.0,
           "mc_age_h": 0.0, "exf_age_h": 0.0, "dvol": 50.0, "drawdown": 0.0}


def record(ts, status=STATUS_OK, ma5=0.1, pers=0.6, wv=-0.05, dq=1.2, fp=0.4, imb=0.2):
    """An asset record in the service's schema."""
    values = dict(zip(OBF_FEATURES, (imb, ma5, pers, wv, dq, fp), strict=True))
    return {"symbol": "", "ts_ns": ts, "status": status, **values}


def put(store, symbol, rec):
    ShardedFeatureStore(store).put_many(symbol, {"ob": rec}, ts_ns=rec["ts_ns"])


def put_macro(store, ts, cascade=0.0, regime=0.0, mult=1.0):
    store.map(OB).put(LATEST_MACRO, encode_value(
        {"ts_ns": ts, "cascade_count": cascade, "regime_signal": regime,
         "market_multiplier": mult}, ts))


def engine_row(ma5=0.1, pers=0.6, wv=-0.05, dq=1.2, fp=0.4):
    row = np.empty(lay.N_OB_ASSET)
    row[lay.OB_IMBALANCE], row[lay.OB_PERSISTENCE], row[lay.OB_WITHDRAWAL] = ma5, pers, wv
    row[lay.OB_DEPTH_QUALITY], row[lay.OB_FILL_PROB] = dq, fp
    return row


def settle(store):
    """Wait until the store's listener worker has delivered every event written so far
    (one worker delivers all events in write order: a sentinel's event comes after them)."""
    done = threading.Event()
    m = store.map("TEST_SENTINEL")
    reg = m.add_listener(lambda ev: done.set())
    m.put("k", "{}")
    assert done.wait(30)
    m.remove_listener(reg)


def provider(store=None, clock=None, **kw):
    return ObProvider(store, clock=clock or SimulatedClock(T0 + S), bar_s=BAR_S, **kw)


class DownStore:
    """A MemoryStore that is unreachable (every ``map`` raises) while ``down``."""

    def __init__(self) -> None:
        self.inner = MemoryStore("down")
        self.down = True

    def map(self, name):
        if self.down:
            raise StoreUnavailableError("cluster unreachable")
        return self.inner.map(name)

    def cluster_view(self):
        return ClusterView(False, 0) if self.down else self.inner.cluster_view()

    def close(self):
        self.inner.close()


# ------------------------------------------------------------------ discovery and listeners
def test_connect_discovers_the_assets_from_the_ob_keys_of_the_shard_maps():
    store = MemoryStore()
    put(store, A, record(T0))
    put(store, B, record(T0))
    ShardedFeatureStore(store).put(C, "vel_div", -0.03, ts_ns=T0)  # another feature: not OB
    wrong = SHARD_MAPS[(shard_index(C) + 1) % len(SHARD_MAPS)]
    store.map(wrong).put(f"ob_{C}", encode_value(record(T0), T0))  # not where C routes
    p = provider(store)
    assert p.connect() is True
    assert p.symbols == (A, B)


def test_listeners_keep_the_cache_current_and_forget_removed_assets():
    store = MemoryStore()
    put(store, A, record(T0))
    p = provider(store)
    p.connect()
    put(store, B, record(T0 + HALF, dq=0.7))
    put(store, A, record(T0 + HALF, dq=0.9))
    put_macro(store, T0 + HALF, mult=1.1)
    settle(store)
    assert p.symbols == (A, B)
    per, macro = p.features(T0 + HALF - round(BAR_S * S), [A, B])
    np.testing.assert_array_equal(per, [engine_row(dq=0.9), engine_row(dq=0.7)])
    np.testing.assert_array_equal(macro, [0.0, 0.0, 1.1])
    ShardedFeatureStore(store).delete(B, "ob")
    settle(store)
    assert p.symbols == (A,)


def test_the_hot_path_reads_only_local_memory():
    store = MemoryStore()
    put(store, A, record(T0))
    put_macro(store, T0, mult=1.05)
    p = provider(store)
    p.connect()
    store.close()  # any store call now raises
    per, macro = p.features(T0 - round(BAR_S * S), [A, C])
    np.testing.assert_array_equal(per, [engine_row(), NEUTRAL_ASSET_ROW])
    np.testing.assert_array_equal(macro, [0.0, 0.0, 1.05])


# ------------------------------------------------------------------ as-of reads, neutral rows
def test_a_bar_reads_the_newest_record_known_at_its_close_and_no_later_one():
    p = provider()
    p.apply_record(A, record(T0, dq=1.1), T0)
    p.apply_record(A, record(T0 + HALF, dq=1.3), T0 + HALF)
    p.apply_macro([(T0, (1.0, 0.0, 1.0)), (T0 + HALF, (2.0, 1.0, 0.9))])
    bar = round(BAR_S * S)
    per, macro = p.features(T0 + HALF - bar, [A])  # known at T0 + 0.5 s
    np.testing.assert_array_equal(per[0], engine_row(dq=1.3))
    np.testing.assert_array_equal(macro, [2.0, 1.0, 0.9])
    per, macro = p.features(T0 + HALF // 2 - bar, [A])  # known at T0 + 0.25 s: the older one
    np.testing.assert_array_equal(per[0], engine_row(dq=1.1))
    np.testing.assert_array_equal(macro, [1.0, 0.0, 1.0])
    per, macro = p.features(T0 - 1 - bar, [A])  # before anything was known
    np.testing.assert_array_equal(per[0], NEUTRAL_ASSET_ROW)
    np.testing.assert_array_equal(macro, NEUTRAL_MACRO)


def test_a_record_older_than_max_age_is_neutral():
    p = provider(max_age_s=10.0)
    p.apply_record(A, record(T0), T0)
    p.apply_macro([(T0, (0.0, -1.0, 1.1))])
    bar = round(BAR_S * S)
    per, macro = p.features(T0 + 10 * S - bar, [A])  # exactly 10 s old: still fresh
    np.testing.assert_array_equal(per[0], engine_row())
    np.testing.assert_array_equal(macro, [0.0, -1.0, 1.1])
    per, macro = p.features(T0 + 10 * S + 1 - bar, [A])
    np.testing.assert_array_equal(per[0], NEUTRAL_ASSET_ROW)
    np.testing.assert_array_equal(macro, NEUTRAL_MACRO)


@pytest.mark.parametrize("rec", [record(T0, status=STATUS_DARK), record(T0, status=STATUS_NO_BOOK),
                                 record(T0, dq=None)])
def test_a_dark_bookless_or_incomplete_record_is_neutral_and_hides_older_ones(rec):
    p = provider()
    p.apply_record(A, record(T0 - S), T0 - S)
    p.apply_record(A, rec, T0)
    per, _ = p.features(T0 - round(BAR_S * S), [A, C])
    np.testing.assert_array_equal(per, [NEUTRAL_ASSET_ROW, NEUTRAL_ASSET_ROW])


def test_an_older_record_never_replaces_a_newer_one():
    p = provider()
    assert p.apply_record(A, record(T0, dq=1.5), T0) is True
    assert p.apply_record(A, record(T0 - S, dq=0.5), T0 - S) is False
    assert p.features(T0 - round(BAR_S * S), [A])[0][0][lay.OB_DEPTH_QUALITY] == 1.5


def test_service_to_provider_gives_the_cycles_own_engine_rows():
    store = MemoryStore()
    clock = SimulatedClock(T0)
    p = ObProvider(store, clock=clock, bar_s=BAR_S)
    p.connect()
    svc = ObfService(store, clock=clock, background=False,
                     config=ObfServiceConfig(warmup_s=0.0, dark_streak_cycles=0))
    svc.start()
    cycles = []
    for k in range(4):
        clock.advance(HALF)
        now = clock.now_ns()
        for sym, qty in ((A, 1.0 + k), (B, 3.0)):  # A's imbalance moves every cycle
            svc.on_book(sym, now, np.array([[99.9, qty], [99.8, 1.0]]),
                        np.array([[100.0, 2.0], [100.1, 1.0]]))
        cycles.append(svc.cycle())
        svc.pusher.drain()
    settle(store)
    assets = [B, C, A]
    bar = round(BAR_S * S)
    for cyc in cycles:  # a fast replay reads each bar's own cycle, not the latest one
        per, macro = p.features(cyc.ts_ns - bar, assets)
        want_per, want_macro = cyc.engine_rows(assets)
        np.testing.assert_array_equal(per, want_per)
        np.testing.assert_array_equal(macro, want_macro)
    assert len({c.macro[2] for c in cycles}) == 4  # the macro differed from cycle to cycle


# ------------------------------------------------------------------ ages and Cat3 readings
def test_the_age_is_the_oldest_asked_asset_or_the_macro_and_infinite_before_anything():
    p = provider()
    now = T0 + S
    assert p.sensor_readings(now)["ob_age_s"] == math.inf
    assert p.asset_ages(now, [A]) == {A: math.inf} and p.macro_age_s(now) == math.inf
    p.apply_record(A, record(T0), T0)
    p.apply_record(B, record(T0 - 10 * S), T0 - 10 * S)
    assert p.sensor_readings(now, [A])["ob_age_s"] == math.inf  # no macro ever received
    p.apply_macro([(T0, (0.0, 0.0, 1.0))])
    assert p.asset_ages(now) == {A: 1.0, B: 11.0} and p.macro_age_s(now) == 1.0
    assert p.sensor_readings(now, [A])["ob_age_s"] == 1.0
    assert p.sensor_readings(now, [A, B, C])["ob_age_s"] == 11.0  # C is not an OB asset
    p.features(T0, [A])  # the engine asks for A only
    assert p.sensor_readings(now)["ob_age_s"] == 1.0


def test_a_dark_asset_ages_from_its_record_a_bookless_one_from_its_last_book():
    p = provider()
    p.apply_record(A, record(T0 - 5 * S), T0 - 5 * S)
    p.apply_record(A, record(T0, status=STATUS_DARK), T0)
    p.apply_record(B, record(T0 - 5 * S), T0 - 5 * S)
    p.apply_record(B, record(T0, status=STATUS_NO_BOOK), T0)
    assert p.asset_ages(T0) == {A: 0.0, B: 5.0}


def test_depth_and_fill_are_the_traded_assets_else_the_median_of_the_fresh_ones():
    p = provider()
    p.apply_record(A, record(T0, dq=1.2, fp=0.4), T0)
    p.apply_record(B, record(T0, dq=0.8, fp=0.6), T0)
    p.apply_record(C, record(T0, status=STATUS_DARK, dq=0.1, fp=0.1), T0)
    r = p.sensor_readings(T0 + S, [A, B, C])
    assert (r["ob_depth_quality"], r["ob_fill_probability"]) == pytest.approx((1.0, 0.5))
    r = p.sensor_readings(T0 + S, [A, B, C], traded=A)
    assert (r["ob_depth_quality"], r["ob_fill_probability"]) == (1.2, 0.4)
    r = p.sensor_readings(T0 + S, [A, B, C], traded=C)
    assert math.isnan(r["ob_depth_quality"]) and math.isnan(r["ob_fill_probability"])


def test_the_jitter_is_the_mean_deviation_of_the_cycle_intervals_from_their_median():
    p = provider()
    assert p.jitter_ms() == math.inf
    p.apply_macro([(T0, (0.0, 0.0, 1.0))])
    assert p.jitter_ms() == 0.0
    p.apply_macro([(T0 + HALF, (0.0, 0.0, 1.0)), (T0 + 2 * HALF, (0.0, 0.0, 1.0)),
                   (T0 + 2 * HALF + 700_000_000, (0.0, 0.0, 1.0))])
    # intervals 500, 500, 700 ms: median 500, deviations 0, 0, 200
    assert p.jitter_ms() == pytest.approx(200.0 / 3)


def test_a_stale_provider_lowers_rm_and_without_a_provider_cat3_is_absent():
    cfg = SurvivalConfig()
    p = provider()
    p.apply_record(A, record(T0, dq=1.1, fp=0.9), T0)
    p.apply_macro([(T0, (0.0, 0.0, 1.0))])
    ctrl = SurvivalController(cfg, survival_registry(cfg, p))
    fresh = ctrl.update({**HEALTHY, **p.sensor_readings(T0 + HALF, [A])}, T0 + HALF)
    # depth 1.1 clamps to 1; fill 0.9 gives 0.3 + 0.7 * 0.9; age and jitter within deadband
    assert fresh.categories[Category.MICROSTRUCTURE] == pytest.approx(0.93)
    assert fresh.rm == pytest.approx(0.93)
    later = T0 + 300 * S  # nothing new for 5 minutes
    stale = ctrl.update({**HEALTHY, **p.sensor_readings(later, [A])}, later)
    # the record is beyond max_age (120 s): depth and fill unknown -> their floor 0.3; the age
    # alone would give 0.5 + 0.5 exp(-(300 - 2) / 60)
    assert stale.categories[Category.MICROSTRUCTURE] == pytest.approx(0.3)
    assert stale.rm == pytest.approx(0.3) and stale.rm < fresh.rm
    age_only = ctrl.update({**HEALTHY, **p.sensor_readings(later, [A]),
                            "ob_depth_quality": 1.0, "ob_fill_probability": 1.0}, later)
    assert age_only.categories[Category.MICROSTRUCTURE] == pytest.approx(
        0.5 + 0.5 * math.exp(-(300 - 2) / 60))

    no_ob = survival_registry(cfg, None)
    assert no_ob.names(Category.MICROSTRUCTURE) == ()
    assert len(no_ob) == len(default_registry(cfg)) - 4
    reading = SurvivalController(cfg, no_ob).update(HEALTHY, later)
    assert reading.categories[Category.MICROSTRUCTURE] == 1.0 and reading.rm == 1.0
    # registered but fed nothing, Cat3 would read its floor: the rule is what keeps it out
    assert SurvivalController(cfg).update(HEALTHY, later).categories[
        Category.MICROSTRUCTURE] == pytest.approx(0.3)


# ------------------------------------------------------------------ the file fallback (§15.6)
def _service_with_file(tmp_path, store, clock, symbols=(A, B, C), cycles=6):
    svc = ObfService(store, clock=clock, background=False, config=ObfServiceConfig(
        warmup_s=0.0, dark_streak_cycles=0, file_path=tmp_path / "latest_ob_features.json"))
    svc.start()
    last = None
    for _ in range(cycles):
        clock.advance(HALF)
        now = clock.now_ns()
        for sym in symbols:
            svc.on_book(sym, now, np.array([[99.9, 2.0]]), np.array([[100.0, 1.0]]))
        last = svc.cycle()
        svc.pusher.drain()
    return svc, last


def test_with_the_store_down_the_provider_reads_every_asset_from_the_file(tmp_path):
    store = DownStore()
    clock = SimulatedClock(T0)
    svc, last = _service_with_file(tmp_path, store, clock)
    assert svc.pusher.state.name == "OPEN"
    p = ObProvider(store, clock=clock, bar_s=BAR_S, file_path=tmp_path / "latest_ob_features.json")
    assert p.connect() is False
    assert p.refresh() == "file" and p.file_loads == 1
    assert p.symbols == (A, B, C)
    per, macro = p.features(last.ts_ns - round(BAR_S * S), [A, B, C])
    want_per, want_macro = last.engine_rows([A, B, C])
    np.testing.assert_array_equal(per, want_per)
    np.testing.assert_array_equal(macro, want_macro)
    assert p.sensor_readings(clock.now_ns(), [A, B, C])["ob_age_s"] == 0.0
    assert p.refresh() == "file" and p.file_loads == 1  # unchanged file: not read again


def test_a_newer_file_wins_over_a_store_that_stopped_updating(tmp_path):
    clock = SimulatedClock(T0)
    store = MemoryStore()
    put(store, A, record(T0 - S, dq=0.5))
    p = ObProvider(store, clock=clock, bar_s=BAR_S, file_path=tmp_path / "latest_ob_features.json")
    p.connect()
    down = DownStore()
    _, last = _service_with_file(tmp_path, down, clock, symbols=(A,))
    assert p.refresh() == "file"
    per, _ = p.features(last.ts_ns - round(BAR_S * S), [A])
    np.testing.assert_array_equal(per, last.engine_rows([A])[0])
    put(store, A, record(last.ts_ns + HALF, dq=0.7))  # the store is back and newer
    settle(store)
    assert p.source == "store"
    assert p.features(last.ts_ns + HALF - round(BAR_S * S), [A])[0][0][
        lay.OB_DEPTH_QUALITY] == 0.7


def test_refresh_connects_once_the_store_is_reachable():
    store = DownStore()
    put(store.inner, A, record(T0))
    p = provider(store)
    assert p.refresh() is None and not p.connected
    store.down = False
    p.refresh()
    assert p.connected and p.symbols == (A,)


# ------------------------------------------------------------------ malformed values, config
def test_malformed_values_are_counted_and_left_out():
    store = MemoryStore()
    store.map(SHARD_MAPS[shard_index(A)]).put(f"ob_{A}", "not json")
    put(store, B, record(T0, dq="deep"))
    put(store, C, record(T0))
    store.map(OB).put(MACRO_BY_TS, encode_value({"x": [1, 2, 3]}, T0))
    p = provider(store)
    p.connect()
    assert p.symbols == (C,) and p.counter.total == 3


def test_the_file_reader_counts_a_corrupt_file(tmp_path):
    path = tmp_path / "ob.json"
    path.write_text('{"schema": 1, "ts_ns": 5, "data": {"assets": 3}}')
    p = provider(file_path=path)
    assert p.load_file() is False and p.counter.total == 1


def test_ob4_stress_is_the_share_of_the_previous_days_stressed_cycles():
    p = provider()
    day = 86_400 * S
    d0 = (T0 // day) * day
    p.apply_macro([(d0 - day + k * S, (0.0, r, 1.0)) for k, r in enumerate((1.0, 0.0, 1.0, -1.0))])
    import datetime as dt

    today = dt.datetime.fromtimestamp(d0 / S, dt.UTC).date().isoformat()
    assert p.daily_ob_stress(today) == 0.5
    tomorrow = (dt.date.fromisoformat(today) + dt.timedelta(days=2)).isoformat()
    assert p.daily_ob_stress(tomorrow) == 0.0


@pytest.mark.parametrize("kw", [{"bar_s": -1.0}, {"bar_s": math.nan}, {"max_age_s": -1.0},
                                {"bar_s": 5.0, "history": 0}])
def test_a_bad_setting_is_a_config_error(kw):
    kw = {"bar_s": 5.0, **kw}
    with pytest.raises(ConfigError):
        ObProvider(None, clock=SimulatedClock(T0), **kw)
