"""``ScanService``: payload contract, carried bars, store failures, heartbeat and the recorder."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from dolphin.core.clock import SimulatedClock
from dolphin.core.config import ScannerConfig
from dolphin.core.errors import BadInputError, ConfigError
from dolphin.data import load_bars
from dolphin.scanner.schema import scan_columns
from dolphin.services import ComponentState, ComponentStateError
from dolphin.services.bars import BarBuilder, BarSet, BarSource, Kline
from dolphin.services.scan_service import ScanRecorder, ScanService, read_scan_parts
from dolphin.store.errors import StoreUnavailableError
from dolphin.store.memory import MemoryStore
from dolphin.store.schema import FEATURES, LATEST_EIGEN_SCAN, decode_value

S = 1_000_000_000
MIN = 60 * S
T0 = 1_699_999_980 * S
CFG = ScannerConfig(windows=(3, 5), instability_windows=(3,), recompute_every=50)
SYMS = ("AAAUSDT", "BBBUSDT", "CCCUSDT")


class FlakyMap:
    """A store map that refuses writes while its store is down."""

    def __init__(self, store: FlakyStore, inner) -> None:
        self._store, self._inner = store, inner

    def put(self, key: str, value: str) -> None:
        if self._store.down:
            raise StoreUnavailableError("cluster unreachable")
        self._inner.put(key, value)


class FlakyStore:
    """A MemoryStore that can be switched down (writes and ``map`` raise) and up again."""

    def __init__(self) -> None:
        self.inner = MemoryStore("flaky")
        self.down = False

    def map(self, name: str) -> FlakyMap:
        if self.down:
            raise StoreUnavailableError("cluster unreachable")
        return FlakyMap(self, self.inner.map(name))


def closes_table(n: int, seed: int = 3) -> list[dict[str, float]]:
    """n minutes of random-walk closes for SYMS."""
    rng = np.random.default_rng(seed)
    paths = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, len(SYMS))), axis=0))
    return [dict(zip(SYMS, row, strict=True)) for row in paths]


def service(store=None, *, recorder=None, fill_limit="1d") -> ScanService:
    """A started kline-mode service on SYMS with a simulated clock at T0."""
    builder = BarBuilder(SYMS, source=BarSource.KLINES)
    svc = ScanService(store or MemoryStore(), builder, clock=SimulatedClock(T0), config=CFG,
                      fill_limit=fill_limit, recorder=recorder)
    svc.start()
    return svc


def send_minute(svc: ScanService, minute: int, closes: dict[str, float]) -> int:
    """Send the closed klines of one minute at its close time; return the scans completed."""
    open_ns = T0 + minute * MIN
    svc.clock.set(open_ns + MIN)
    return sum(svc.on_kline(Kline(sym, open_ns, c, c * 1.001, c * 0.999, c, 2.0, True))
               for sym, c in closes.items())


def latest(store: MemoryStore) -> str:
    return store.map(FEATURES).get(LATEST_EIGEN_SCAN)


def strict(text: str) -> dict:
    """Parse JSON refusing NaN / Infinity (what a non-Python reader would refuse)."""
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def test_each_scan_is_published_as_strict_json_stamped_with_the_bar_open_time():
    store = MemoryStore()
    svc = service(store)
    texts = []
    for m, row in enumerate(closes_table(8)):
        assert send_minute(svc, m, row) == 1  # every symbol reported: complete at once
        texts.append(latest(store))
    envelopes = [strict(t) for t in texts]
    assert [e["schema"] for e in envelopes] == [1] * 8
    assert [e["ts_ns"] for e in envelopes] == [T0 + (m + 1) * MIN for m in range(8)]
    data = [e["data"] for e in envelopes]
    assert [d["timestamp_ns"] for d in data] == [T0 + m * MIN for m in range(8)]
    assert [d["scan_number"] for d in data] == list(range(8))
    assert set(data[0]) == {*scan_columns(CFG)[1:], "timestamp_ns", "asset_prices"}
    assert data[0]["v3_lambda_max_velocity"] is None  # NaN during warm-up -> null
    assert data[0]["vel_div"] is None and math.isfinite(data[7]["vel_div"])
    assert data[7]["asset_prices"] == pytest.approx(closes_table(8)[7])
    assert decode_value(texts[-1]).data == data[7]


def test_the_scan_of_a_filled_bar_shows_null_for_it_and_keeps_it_in_n_assets():
    store = MemoryStore()
    seen = []
    store.map(FEATURES).add_listener(lambda e: seen.append(e.value), key=LATEST_EIGEN_SCAN)
    svc = service(store)
    rows = closes_table(5)
    for m in range(4):
        send_minute(svc, m, rows[m])
    send_minute(svc, 4, {"AAAUSDT": rows[4]["AAAUSDT"]})
    svc.clock.advance(svc.builder.grace_ns)
    assert svc.poll() == 1
    store.close()  # drains the listener thread
    minute4 = decode_value(seen[-1]).data
    assert minute4["timestamp_ns"] == T0 + 4 * MIN
    assert minute4["asset_prices"] == {"AAAUSDT": pytest.approx(rows[4]["AAAUSDT"]),
                                       "BBBUSDT": None, "CCCUSDT": None}
    assert minute4["n_assets"] == 3
    assert minute4["data_gap"] is True  # two of three live assets carried
    assert svc.counters.filled_bars == 2


def test_the_fill_limit_drops_a_silent_asset_after_the_limit():
    store = MemoryStore()
    svc = service(store, fill_limit="2min")
    rows = closes_table(8)
    counts = []
    for m, row in enumerate(rows):
        if m >= 3:
            row = {s: row[s] for s in ("AAAUSDT", "BBBUSDT")}  # CCC's data ends after minute 2
        send_minute(svc, m, row)
        counts.append(decode_value(latest(store)).data["n_assets"])
    svc.clock.advance(svc.builder.grace_ns)
    svc.poll()
    counts.append(decode_value(latest(store)).data["n_assets"])
    # Each minute 3.. is completed by the next minute's first kline: counts lag by one.
    assert counts == [3, 3, 3, 3, 3, 3, 2, 2, 2]


def test_a_store_failure_degrades_the_service_and_the_next_publish_recovers_it():
    store = FlakyStore()
    svc = service(store)
    rows = closes_table(6)
    send_minute(svc, 0, rows[0])
    store.down = True
    send_minute(svc, 1, rows[1])
    send_minute(svc, 2, rows[2])
    assert svc.state is ComponentState.DEGRADED
    assert "scan 1 not published" in svc.reason  # the first failure's reason is kept
    assert svc.counters.publish_failures == 2 and svc.counters.scans == 3
    store.down = False
    send_minute(svc, 3, rows[3])
    assert svc.state is ComponentState.RUNNING and svc.reason is None
    assert decode_value(store.inner.map(FEATURES).get(LATEST_EIGEN_SCAN)).data["scan_number"] == 3
    assert svc.counters.published == 2


def test_a_store_unreachable_at_the_first_publish_degrades_without_crashing():
    store = FlakyStore()
    store.down = True
    svc = service(store)
    rows = closes_table(2)
    send_minute(svc, 0, rows[0])
    assert svc.state is ComponentState.DEGRADED and svc.counters.publish_failures == 1
    store.down = False
    send_minute(svc, 1, rows[1])
    assert svc.state is ComponentState.RUNNING and svc.counters.published == 1


def test_bad_market_data_is_dropped_and_the_next_scan_recovers():
    svc = service()
    rows = closes_table(2)
    send_minute(svc, 0, rows[0])
    assert svc.on_kline(Kline("AAAUSDT", T0 + MIN, -1.0, 1.0, 1.0, 1.0, 1.0, True)) == 0
    assert svc.state is ComponentState.DEGRADED and "bad input dropped" in svc.reason
    send_minute(svc, 1, rows[1])
    assert svc.state is ComponentState.RUNNING


def test_heartbeat_carries_the_counters_and_the_last_scan():
    svc = service()
    for m, row in enumerate(closes_table(3)):
        send_minute(svc, m, row)
    svc.builder.on_kline(Kline("AAAUSDT", T0, 1.0, 1.0, 1.0, 1.0, 1.0, True))  # late
    beat = svc.heartbeat()
    assert beat["state"] == "RUNNING" and beat["component"] == "scan_service"
    assert beat["scans"] == beat["bar_sets"] == beat["published"] == 3
    assert beat["bars"] == 9 and beat["filled_bars"] == 0 and beat["publish_failures"] == 0
    assert beat["late_dropped"] == 1 and beat["unknown_dropped"] == 0
    assert beat["last_scan_number"] == 2 and beat["last_scan_ts_ns"] == T0 + 2 * MIN
    assert beat["ts_ns"] == svc.clock.now_ns()


def test_poll_emits_on_the_clock_and_stop_does_not_emit_the_open_interval():
    store = MemoryStore()
    svc = service(store)
    rows = closes_table(2)
    send_minute(svc, 0, rows[0])
    send_minute(svc, 1, {"AAAUSDT": rows[1]["AAAUSDT"]})  # minute 1 still open
    assert svc.poll() == 0  # its end has just passed, the grace has not
    svc.stop()
    assert svc.state is ComponentState.STOPPED and svc.counters.scans == 1
    with pytest.raises(ComponentStateError):
        svc.poll()


def test_trades_go_through_the_same_path():
    store = MemoryStore()
    clock = SimulatedClock(T0)
    svc = ScanService(store, BarBuilder(SYMS, interval_s=5), clock=clock, config=CFG)
    svc.start()
    for k in range(6):
        for j, sym in enumerate(SYMS):
            svc.on_trade(sym, T0 + k * 5 * S + j, 100.0 + k + j, 1.0)
    assert svc.counters.scans == 5  # the sixth interval is still open
    data = decode_value(latest(store)).data
    assert data["timestamp_ns"] == T0 + 4 * 5 * S and data["asset_prices"]["CCCUSDT"] == 106.0


def test_on_bar_set_scans_a_replayed_set():
    svc = service()
    assert svc.on_bar_set(BarSet(T0, {"AAAUSDT": 1.0}, {"AAAUSDT": False}, {})) == 1
    assert svc.last_scan_ts_ns == T0


def test_recorder_writes_numbered_parts_and_one_scans_file_at_stop(tmp_path):
    rec = ScanRecorder(tmp_path / "session", rows_per_part=4)
    svc = service(recorder=rec)
    rows = closes_table(11)
    for m, row in enumerate(rows):
        if m == 6:
            row = {s: row[s] for s in ("AAAUSDT", "CCCUSDT")}
        send_minute(svc, m, row)
    assert rec.parts == 2 and rec.buffered == 3
    svc.stop()
    root = tmp_path / "session"
    names = sorted(p.name for p in (root / "scans").iterdir())
    assert names == ["part-000000.parquet", "part-000001.parquet", "part-000002.parquet"]
    assert sorted(p.name for p in (root / "bars").iterdir()) == names  # no temp file left
    bars = load_bars(root / "bars")
    assert len(bars) == 11 * 3 - 1  # the carried BBB bar of minute 6 is not a real bar
    assert not ((bars["symbol"] == "BBBUSDT") & (bars["timestamp"] == pd.Timestamp(
        T0 + 6 * MIN, tz="UTC"))).any()
    scans = pd.read_parquet(root / "scans.parquet")
    pd.testing.assert_frame_equal(scans, read_scan_parts(root))
    assert scans["scan_number"].tolist() == list(range(11))
    assert list(scans.columns) == [*scan_columns(CFG), *SYMS]
    assert np.isnan(scans.loc[6, "BBBUSDT"]) and scans.loc[7, "BBBUSDT"] > 0


def test_recorder_refuses_a_directory_that_already_holds_a_session(tmp_path):
    first = service(recorder=ScanRecorder(tmp_path, rows_per_part=1))
    send_minute(first, 0, closes_table(1)[0])
    first.stop()
    with pytest.raises(ConfigError, match="already holds a session"):
        service(recorder=ScanRecorder(tmp_path))


def test_a_recorder_failure_degrades_keeps_the_rows_and_recovers(tmp_path):
    rec = ScanRecorder(tmp_path, rows_per_part=2)
    svc = service(recorder=rec)
    rows = closes_table(4)
    (tmp_path / "bars").rmdir()  # the disk goes away under the recorder
    send_minute(svc, 0, rows[0])
    send_minute(svc, 1, rows[1])
    assert svc.state is ComponentState.DEGRADED and svc.counters.record_failures == 1
    assert svc.counters.published == 2  # scanning and publishing went on
    (tmp_path / "bars").mkdir()
    send_minute(svc, 2, rows[2])
    # The retry waits for the next part boundary: nothing written yet, still degraded.
    assert svc.state is ComponentState.DEGRADED and rec.parts == 0 and rec.buffered == 3
    send_minute(svc, 3, rows[3])
    assert svc.state is ComponentState.RUNNING and svc.counters.record_failures == 1
    assert rec.parts == 1 and rec.buffered == 0
    assert len(pd.read_parquet(tmp_path / "scans" / "part-000000.parquet")) == 4


def test_read_scan_parts_without_parts_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no recorded scan parts"):
        read_scan_parts(tmp_path)


def test_recorder_rejects_a_part_size_below_one(tmp_path):
    with pytest.raises(ConfigError):
        ScanRecorder(tmp_path, rows_per_part=0)


def test_publish_refuses_a_row_out_of_scan_column_order():
    svc = service()
    row = {"scan_number": 0, "timestamp": pd.Timestamp(T0, tz="UTC")}
    with pytest.raises(BadInputError, match="scan column order"):
        svc.publish(row)
