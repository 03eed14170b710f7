"""Acceptance, end to end: real 1 m bars played by the local exchange as ``kline_1m`` streams,
read by the market-data client over WebSocket, built into bars and scanned live, equal
``dolphin scan`` on the same bars to 1e-9.

Expected values come from the batch scanner. The live scans are the ones a store listener
received from ``DOLPHIN_FEATURES["latest_eigen_scan"]``. The 2023 slice holds symbols that list
mid-slice, which the live universe must pick up as the batch does.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from dolphin.adapters.binance.client import MarketDataClient
from dolphin.adapters.binance.live_scans import LiveScans, scan_streams
from dolphin.adapters.binance.local_exchange import LocalExchange
from dolphin.core.clock import SimulatedClock
from dolphin.services.bars import BarBuilder, BarSource
from dolphin.services.scan_service import ScanService
from dolphin.store.memory import MemoryStore
from tests.integration.test_live_scans import (
    batch_scan,
    collect_scans,
    compare_scans,
    payload_frame,
)
from tests.kit.paths import SAMPLE, USDM_1M_2023, require

SLICES = {
    "sample_2021_day": (SAMPLE / "bars_1m_sample.parquet", "2021-04-12 00:00", "2021-04-13 00:00"),
    "usdm_2023_listings": (USDM_1M_2023, "2023-07-17 20:00", "2023-07-18 20:00"),
}
SPEED = 20_000.0  # x real time: a 1 m bar every 3 ms


async def _live(bars_path, symbols, store):
    ex = LocalExchange(bars=bars_path, bar="1m", speed=SPEED, slow_client="wait")
    await ex.start()
    first = int(pd.read_parquet(bars_path, columns=["timestamp"])["timestamp"].min().value)
    clock = SimulatedClock(first)  # the feed's clock: the close time of the newest kline
    svc = ScanService(store, BarBuilder(symbols, source=BarSource.KLINES), clock=clock)
    svc.start()
    feed = LiveScans(svc)

    def on_record(record):
        close = getattr(record, "ts_close", 0) + 1_000_000
        if close > clock.now_ns():
            clock.set(close)
        feed.on_record(record)

    client = MarketDataClient(ex.urls["http"], ex.urls["ws"], symbols,
                              streams=scan_streams(symbols, BarSource.KLINES),
                              on_record=on_record, seed=3)
    task = asyncio.get_running_loop().create_task(client.run())
    await asyncio.wait_for(ex.finished.wait(), timeout=180)
    n = sum(1 for m in ex.messages if "@kline_" in m.stream)
    for _ in range(400):  # the last klines in flight
        if feed.klines >= n:
            break
        await asyncio.sleep(0.025)
    clock.advance(svc.builder.grace_ns)
    svc.poll()  # the last minute: nothing after it completes it
    svc.stop()
    client.stop()
    await task
    await ex.stop()
    return ex, client, feed, svc, n


@pytest.mark.parametrize("name", sorted(SLICES))
def test_scans_built_live_from_the_exchange_equal_the_batch_scan(name, tmp_path):
    path, start, end = SLICES[name]
    bars = pd.read_parquet(require(path))
    bars = bars[(bars["timestamp"] >= pd.Timestamp(start, tz="UTC"))
                & (bars["timestamp"] < pd.Timestamp(end, tz="UTC"))].copy()
    bars["symbol"] = bars["symbol"].astype(str)
    bars_path = tmp_path / "bars.parquet"
    bars.to_parquet(bars_path, index=False)
    symbols = sorted(bars["symbol"].unique())
    batch = batch_scan(bars_path, tmp_path / "batch.parquet")

    store = MemoryStore()
    payloads = collect_scans(store)
    _, client, feed, _, n = asyncio.run(_live(bars_path, symbols, store))
    store.close()
    assert feed.klines == n == len(bars)  # every kline crossed the wire once
    assert client.counters.reconnects == 0 and client.decoder.total_malformed == 0
    diffs = compare_scans(payload_frame(payloads), batch)
    assert max(diffs.values()) <= 1e-9
    starts = bars.groupby("symbol")["timestamp"].min()
    if name == "usdm_2023_listings":  # the slice does list symbols mid-way
        assert (starts > starts.min()).sum() >= 5
    assert np.isfinite(batch["vel_div"]).sum() >= 500  # past the w750 warm-up: real values
