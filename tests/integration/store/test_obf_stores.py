"""The OBF service's pushes on both stores (embedded and a real Hazelcast member), read back by
an ``ObProvider`` on another handle; the store down for a minute with nothing lost from the
JSON file; a real Hazelcast outage and recovery.

The books are real: local books replayed from the shared USDT-M captures, copied at evenly
spaced diffs and handed to the service as synced local books (``on_order_book``, read through
``band_row``), a different copy per asset and cycle. Hazelcast reads are near-cached and
eventually consistent, so reads on the second handle poll.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dolphin.adapters.binance import wire
from dolphin.adapters.binance.book import BookState, OrderBook, SyncRule
from dolphin.adapters.hazelcast.control import LocalCluster
from dolphin.core.clock import SimulatedClock
from dolphin.features.obf import OBF_FEATURES, OBF_MACRO
from dolphin.services.ob_provider import ObProvider, read_ob_file
from dolphin.services.obf_service import BreakerState, ObfService, ObfServiceConfig
from dolphin.store.errors import StoreUnavailableError
from dolphin.store.ports import ClusterView
from dolphin.store.schema import decode_value
from tests.integration.store.hzkit import fast_store, make_spec, wait_for
from tests.kit.ob import ENGINE_COLUMNS, MACRO_COLUMNS
from tests.kit.paths import SHARED_DATA, require

S = 1_000_000_000
HALF = S // 2
T0 = 1_721_347_200 * S  # 2024-07-19 00:00 UTC
USDM = SHARED_DATA / "raw_ws" / "binance_usdm"
CAPTURES = (USDM / "btcusdt_20240718.gz", USDM / "ethusdt_20240718.gz")
ASSETS = ("ADAUSDT", "BNBUSDT", "BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")
COPIES = 4  # books per asset, rotated cycle by cycle


@pytest.fixture(scope="module")
def books() -> dict[str, list]:
    """``COPIES`` real synced books per asset (renamed copies of replayed BTC and ETH books)."""
    pool = []
    per_capture = -(-len(ASSETS) * COPIES // len(CAPTURES))
    for path in CAPTURES:
        records = [r for _, r in wire.read_capture(require(path))
                   if isinstance(r, wire.DepthDiff | wire.DepthSnapshot)]
        n_diffs = sum(isinstance(r, wire.DepthDiff) for r in records)
        marks = set(np.linspace(0.1 * n_diffs, n_diffs, per_capture).astype(int).tolist())
        book, seen = OrderBook(records[-1].symbol, SyncRule.FUTURES), 0
        for record in records:
            if isinstance(record, wire.DepthSnapshot):
                book.on_snapshot(record)
                continue
            book.on_diff(record)
            seen += 1
            if seen in marks and book.state is BookState.LIVE:
                pool.append(copy.deepcopy(book))
    assert len(pool) >= len(ASSETS) * COPIES
    out: dict[str, list] = {}
    for j, sym in enumerate(ASSETS):
        out[sym] = []
        for k in range(COPIES):
            book = copy.deepcopy(pool[(j * COPIES + k) % len(pool)])
            book.symbol = sym
            out[sym].append(book)
    return out


def _feed(svc: ObfService, books: dict[str, list], k: int) -> None:
    """Cycle ``k``'s inputs: each asset's k-th book copy and two trades."""
    now = svc.clock.now_ns()
    for j, (sym, copies) in enumerate(books.items()):
        svc.on_order_book(copies[(k + j) % COPIES])
        svc.on_trade(sym, now - HALF // 2, 100.0, 0.1 * (1 + j), bool(k % 2))
        svc.on_trade(sym, now, 100.0, 0.05 * (1 + k % 3), not k % 2)


def _step(svc: ObfService, books: dict[str, list], k: int):
    """Half a second on, cycle ``k``'s inputs, one cycle, the pusher's work done."""
    svc.clock.advance(HALF)
    _feed(svc, books, k)
    cyc = svc.cycle()
    assert cyc is not None and cyc.valid.all()
    svc.pusher.drain()
    return cyc


def _service(store, clock, **cfg) -> ObfService:
    cfg.setdefault("warmup_s", 0.0)  # these tests are about publishing: no first flush delay
    svc = ObfService(store, clock=clock, config=ObfServiceConfig(**cfg), background=False)
    svc.start()
    return svc


def _shard_map(symbol: str) -> str:
    return f"DOLPHIN_FEATURES_SHARD_{sum(ord(c) for c in symbol) % 10:02d}"


def _records(cyc) -> dict[str, list]:
    """The cycle's per-asset features as the records carry them (NaN is null)."""
    return {s: [None if math.isnan(v) else v for v in cyc.per_asset[i].tolist()]
            for i, s in enumerate(cyc.symbols)}


def _engine(cyc, symbols) -> tuple[list, list]:
    rows = [[cyc.per_asset[cyc.symbols.index(s), OBF_FEATURES.index(c)] for c in ENGINE_COLUMNS]
            for s in symbols]
    return rows, [cyc.macro[OBF_MACRO.index(c)] for c in MACRO_COLUMNS]


def _store_has(handle, cyc) -> bool:
    """Whether every asset's shard record and the latest macro are ``cyc``'s (read now)."""
    want = _records(cyc)
    for sym, vals in want.items():
        text = handle.map(_shard_map(sym)).get(f"ob_{sym}")
        if text is None:
            return False
        rec = decode_value(text)
        if rec.ts_ns != cyc.ts_ns or [rec.data[f] for f in OBF_FEATURES] != vals:
            return False
    text = handle.map("DOLPHIN_OB").get("latest_macro")
    if text is None:
        return False
    macro = decode_value(text)
    return macro.ts_ns == cyc.ts_ns and [macro.data[m] for m in OBF_MACRO] == cyc.macro.tolist()


def _provider_at(provider: ObProvider, cyc) -> bool:
    return provider.macro_age_s(cyc.ts_ns) == 0 and all(
        age == 0 for age in provider.asset_ages(cyc.ts_ns, cyc.symbols).values())


def _assert_provider_features(provider: ObProvider, cyc) -> None:
    per, macro = provider.features(cyc.ts_ns - 5 * S, ASSETS)  # bar known at the cycle
    rows, mac = _engine(cyc, ASSETS)
    assert per.tolist() == rows
    assert macro.tolist() == mac


# ---------------------------------------------------------------------- pushes, read back
def test_the_pushes_are_read_back_by_a_provider_on_a_second_handle(store, second_handle,
                                                                  books):
    clock = SimulatedClock(T0)
    svc = _service(store, clock)
    provider = ObProvider(second_handle, clock=clock, bar_s=5.0)
    assert provider.connect()
    for k in range(12):
        cyc = _step(svc, books, k)
        # every asset's record under ob_<SYMBOL> in its shard, and the macro, on the other handle
        assert wait_for(lambda cyc=cyc: _store_has(second_handle, cyc), 10.0), k
        assert wait_for(lambda cyc=cyc: _provider_at(provider, cyc), 10.0), k
        _assert_provider_features(provider, cyc)
    index = decode_value(second_handle.map("DOLPHIN_OB").get("index")).data
    assert index == {"ts_ns": cyc.ts_ns, "cycle": 12, "symbols": list(ASSETS), "stale": {},
                     "removed": []}
    assert svc.pusher.counters.pushes_ok == 12 and svc.pusher.counters.pushes_failed == 0

    # a removed asset leaves the store, and the provider forgets it
    svc.remove("XRPUSDT")
    svc.clock.advance(HALF)
    _feed(svc, {s: b for s, b in books.items() if s != "XRPUSDT"}, 12)
    svc.cycle()
    svc.pusher.drain()
    assert wait_for(lambda: second_handle.map(_shard_map("XRPUSDT")).get("ob_XRPUSDT") is None,
                    10.0)
    assert wait_for(lambda: "XRPUSDT" not in provider.symbols, 10.0)
    provider.close()
    svc.stop()


# ---------------------------------------------------------------------- the store down
class _DownMap:
    """A map of ``DownStore``: every call raises ``StoreUnavailableError`` while it is down."""

    def __init__(self, owner: DownStore, inner) -> None:
        self._owner, self._inner = owner, inner

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr
        owner = self._owner

        def call(*args, **kwargs):
            owner.calls += 1
            if owner.down:
                owner.refused += 1
                raise StoreUnavailableError("cluster unreachable (test outage)")
            return attr(*args, **kwargs)

        return call


class DownStore:
    """A store handle that is unreachable while ``down``, as a store whose cluster is gone."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.down = False
        self.calls = 0
        self.refused = 0

    def map(self, name: str) -> _DownMap:
        return _DownMap(self, self.inner.map(name))

    def cluster_view(self) -> ClusterView:
        return ClusterView(False, 0) if self.down else self.inner.cluster_view()

    def close(self) -> None:
        pass  # the fixture closes the real handle


def _assert_file_is(path: Path, cyc) -> None:
    """The JSON file holds ``cyc``: every asset's latest features, the macro, atomically."""
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left
    rec = read_ob_file(path)
    assert rec.ts_ns == cyc.ts_ns
    data = rec.data
    want = _records(cyc)
    assert sorted(data["assets"]) == sorted(want)
    for sym, vals in want.items():
        got = data["assets"][sym]
        assert got["ts_ns"] == cyc.ts_ns and got["status"] == "ok"
        assert [got[f] for f in OBF_FEATURES] == vals
    assert data["macro"] == {"ts_ns": cyc.ts_ns,
                             **dict(zip(OBF_MACRO, cyc.macro.tolist(), strict=True))}
    assert str(cyc.ts_ns) in data["macro_by_ts"]


def test_the_store_down_for_a_minute_loses_nothing_from_the_file(store, second_handle, books,
                                                                  tmp_path):
    path = tmp_path / "ob_cache" / "latest_ob_features.json"
    path.parent.mkdir()
    down = DownStore(store)
    down.down = True
    clock = SimulatedClock(T0)
    svc = _service(down, clock, file_path=path)
    p = svc.pusher
    cycles = []
    for k in range(120):  # 60 s of clock time at 2 cycles a second, every push failing
        cyc = _step(svc, books, k)
        cycles.append(cyc)
        if k < 4:  # failures 1..4: still CLOSED
            assert p.state is BreakerState.CLOSED and p.failures == k + 1
        elif k == 4:  # the 5th consecutive failure opens it
            assert p.state is BreakerState.OPEN and p.counters.opens == 1
            opened_s = (clock.now_ns() - T0) / S
        _assert_file_is(path, cyc)
    assert opened_s == 2.5
    assert p.state is BreakerState.OPEN and p.counters.pushes_ok == 0
    # probes at the end of each OPEN period (1 s, doubled after each failed probe): 2.5 s after
    # the start + 1, then + 2, + 4, + 8, + 16 s; the next one is due 32 s after the last
    probes_s = [2.5 + 1, 3.5 + 2, 5.5 + 4, 9.5 + 8, 17.5 + 16]
    assert p.counters.probes == p.counters.probe_failures == len(probes_s)
    assert p.counters.pushes_failed == 5 + len(probes_s) and p.counters.file_writes == 120
    assert down.refused >= p.counters.pushes_failed
    assert svc.heartbeat()["breaker"] == "OPEN" and svc.state.name == "DEGRADED"
    # nothing reached the store, and a reader of the file alone has every asset
    assert all(second_handle.map(_shard_map(s)).get(f"ob_{s}") is None for s in ASSETS)
    reader = ObProvider(None, clock=clock, bar_s=5.0, file_path=path)
    assert reader.load_file()
    _assert_provider_features(reader, cycles[-1])

    # the store comes back; the next push is the HALF-OPEN probe, due at 33.5 + 32 s
    down.down = False
    k = 120
    while p.state is not BreakerState.CLOSED:
        assert (clock.now_ns() - T0) / S < 65.5
        cyc = _step(svc, books, k)
        k += 1
        if p.state is not BreakerState.CLOSED:
            _assert_file_is(path, cyc)  # still file-only until the probe
    assert (clock.now_ns() - T0) / S == 65.5 and p.counters.closes == 1
    assert read_ob_file(path).ts_ns == cyc.ts_ns - HALF  # the last file-only cycle's
    assert p.counters.pushes_ok == 1  # the probe: the latest state, in one push
    last = cyc
    assert wait_for(lambda: _store_has(second_handle, last), 10.0)
    provider = ObProvider(second_handle, clock=clock, bar_s=5.0)
    assert provider.connect()
    assert _provider_at(provider, last)
    _assert_provider_features(provider, last)
    cyc = _step(svc, books, k)  # the cycle after sees the breaker closed
    assert svc.state.name == "RUNNING"
    assert wait_for(lambda: _store_has(second_handle, cyc), 10.0)
    provider.close()
    svc.stop()


# ---------------------------------------------------------------------- a real outage
@pytest.fixture
def lone_member(tmp_path: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(make_spec(tmp_path / "hz", 1))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.hazelcast
def test_a_real_hazelcast_outage_opens_the_breaker_and_the_restarted_member_gets_the_state(
        lone_member, books, tmp_path):
    path = tmp_path / "ob_cache" / "latest_ob_features.json"
    path.parent.mkdir()
    clock = SimulatedClock(T0)
    with fast_store(lone_member.addresses, cluster_connect_timeout_s=-1) as hz:
        svc = _service(hz, clock, file_path=path, backoff_s=1.0, backoff_max_s=2.0)
        p = svc.pusher
        cyc = _step(svc, books, 0)
        assert p.counters.pushes_ok == 1 and wait_for(lambda: _store_has(hz, cyc), 10.0)

        lone_member.stop()  # the only member: the store is gone
        assert wait_for(lambda: not hz.cluster_view().connected, 15.0)
        for k in range(1, 11):  # 5 s: the breaker opens after 5 failures, the file takes over
            cyc = _step(svc, books, k)
            _assert_file_is(path, cyc)
        assert p.state is BreakerState.OPEN and p.counters.opens == 1
        assert p.counters.pushes_ok == 1 and p.counters.pushes_failed >= 5
        assert "StoreUnavailableError" in p.last_error

        LocalCluster(lone_member.spec).start()  # the same port, an empty member
        assert wait_for(lambda: hz.cluster_view().connected, 60.0)
        k = 11
        while p.state is not BreakerState.CLOSED:  # a probe every backoff_max_s (2 s) at most
            assert k < 11 + 40, "the breaker did not close within 20 s of clock time"
            cyc = _step(svc, books, k)
            k += 1
        assert p.counters.closes == 1
        last = cyc
        with fast_store(lone_member.addresses) as other:
            assert wait_for(lambda: _store_has(other, last), 10.0)
            provider = ObProvider(other, clock=clock, bar_s=5.0)
            assert provider.connect()
            assert _provider_at(provider, last)
            _assert_provider_features(provider, last)
            provider.close()
        svc.stop()
