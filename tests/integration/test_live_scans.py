"""Acceptance: live scans built from replayed real bars equal ``dolphin scan`` of the same bars.

Real 1 m bars are sent as Binance-style klines (an unclosed partial, then the closed kline, the
symbols of a minute in a shuffled order, the clock at each minute's close) through
``BarBuilder`` -> ``ScanService`` (SimulatedClock, MemoryStore). The scans a store listener
receives must equal the batch ``dolphin scan`` of the bars file to 1e-9 on every scan column,
NaN positions included. The expected values come from the batch path only.

The slices hold the events the live path must reproduce: listings (2023-07-18), delistings
(2023-08-02) and the one-day fill limit expiring after them (2023-08-03), and, in a copy of the
committed sample with bars removed, an exchange-wide outage (emitted by the clock as carried
bars) and single-symbol holes. Real trade captures check the trade path the same way.
"""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dolphin.cli import main
from dolphin.core.clock import SimulatedClock
from dolphin.core.config import ScannerConfig
from dolphin.data import load_bars
from dolphin.scanner.schema import asset_columns, scan_columns, validate_scans
from dolphin.services.bars import BarBuilder, BarSource, Kline
from dolphin.services.scan_service import ScanRecorder, ScanService
from dolphin.store.memory import MemoryStore
from dolphin.store.schema import FEATURES, LATEST_EIGEN_SCAN, decode_value
from tests.kit.paths import SAMPLE, SHARED_DATA, USDM_1M_2023, require
from tests.kit.procs import wait_for

TOL = 1e-9
MIN_NS = 60_000_000_000
CFG = ScannerConfig()
SAMPLE_BARS = SAMPLE / "bars_1m_sample.parquet"
RAW = SHARED_DATA / "raw_ws" / "binance_usdm"
#: Per case: source file, [start, end) of the slice, bars removed as (symbols or None for all,
#: first, last) open times inclusive.
CASES = {
    "usdm_2023_listings": (USDM_1M_2023, "2023-07-17 12:00", "2023-07-19 12:00", ()),
    "usdm_2023_delistings": (USDM_1M_2023, "2023-08-01 12:00", "2023-08-04 06:00", ()),
    "sample_2021": (SAMPLE_BARS, "2021-04-12 00:00", "2021-04-15 00:00", ()),
    "sample_2021_outages": (SAMPLE_BARS, "2021-04-12 00:00", "2021-04-15 00:00", (
        (None, "2021-04-13 10:00", "2021-04-13 10:29"),  # the whole exchange, 30 minutes
        (("BTCUSDT",), "2021-04-13 12:00", "2021-04-13 12:05"),
        (("DOGEUSDT", "XRPUSDT"), "2021-04-14 03:17", "2021-04-14 03:17"),
    )),
}


def cut(case: str) -> pd.DataFrame:
    """The long bars of a case: the slice of the real file, minus the planted holes."""
    path, start, end, holes = CASES[case]
    bars = pd.read_parquet(require(path))
    keep = (bars["timestamp"] >= pd.Timestamp(start, tz="UTC")) & (
        bars["timestamp"] < pd.Timestamp(end, tz="UTC"))
    for symbols, first, last in holes:
        inside = bars["timestamp"].between(pd.Timestamp(first, tz="UTC"),
                                           pd.Timestamp(last, tz="UTC"))
        if symbols is not None:
            inside &= bars["symbol"].isin(symbols)
        keep &= ~inside
    out = bars[keep].copy()
    out["symbol"] = out["symbol"].astype(str)
    return out.sort_values(["symbol", "timestamp"]).reset_index(drop=True)


def batch_scan(bars_path: Path, out: Path, *extra: str) -> pd.DataFrame:
    """``dolphin scan`` of a bars file: the independent expectation."""
    assert main(["scan", "--bars", str(bars_path), "--out", str(out), *extra]) == 0
    return pd.read_parquet(out)


def payload_frame(payloads: list[dict]) -> pd.DataFrame:
    """The published payloads as a scan frame (``timestamp`` + fields + asset closes)."""
    fields = pd.DataFrame([{k: v for k, v in d.items() if k != "asset_prices"}
                           for d in payloads])
    prices = pd.DataFrame([d["asset_prices"] for d in payloads]).astype(float)
    fields.insert(0, "timestamp", pd.to_datetime(fields.pop("timestamp_ns"), utc=True))
    return pd.concat([fields, prices], axis=1)


def compare_scans(live: pd.DataFrame, batch: pd.DataFrame, config: ScannerConfig = CFG,
                  tol: float = TOL) -> dict[str, float]:
    """Assert ``live`` equals ``batch`` on every scan and asset column; return max |diff|.

    Integer and boolean columns must be equal, float columns equal in NaN position and within
    ``tol`` elsewhere. An asset the live stream never saw must be all-NaN in the batch.
    """
    assert len(live) == len(batch), (len(live), len(batch))
    np.testing.assert_array_equal(live["timestamp"].to_numpy(), batch["timestamp"].to_numpy())
    diffs: dict[str, float] = {}
    for col in [*scan_columns(config)[1:], *asset_columns(batch)]:
        want = batch[col].to_numpy()
        got = (live[col].to_numpy() if col in live else np.full(len(live), np.nan))
        if want.dtype.kind in "biu":
            assert np.array_equal(got.astype(want.dtype), want), col
            diffs[col] = 0.0
            continue
        got, want = got.astype(float), want.astype(float)
        assert np.array_equal(np.isnan(got), np.isnan(want)), f"{col}: NaN positions differ"
        ok = ~np.isnan(want)
        diffs[col] = float(np.max(np.abs(got[ok] - want[ok]), initial=0.0))
        assert diffs[col] <= tol, f"{col}: max abs difference {diffs[col]:.3g} > {tol:g}"
    return diffs


def collect_scans(store: MemoryStore) -> list[dict]:
    """Return the list a listener fills with every published scan payload, in order."""
    payloads: list[dict] = []
    lock = threading.Lock()

    def collect(event) -> None:
        with lock:
            payloads.append(decode_value(event.value).data)

    store.map(FEATURES).add_listener(collect, key=LATEST_EIGEN_SCAN)
    return payloads


def replay_klines(bars: pd.DataFrame, store: MemoryStore, record_dir: Path, seed: int = 0):
    """Send ``bars`` as live klines through BarBuilder -> ScanService; return the service."""
    symbols = sorted(bars["symbol"].unique())
    ts = bars["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    clock = SimulatedClock(int(ts.min()))
    svc = ScanService(store, BarBuilder(symbols, source=BarSource.KLINES), clock=clock,
                      recorder=ScanRecorder(record_dir, rows_per_part=500))
    svc.start()
    rng = np.random.default_rng(seed)
    cols = bars[["symbol", "open", "high", "low", "close", "volume"]].to_numpy(dtype=object)
    by_minute = pd.Series(np.arange(len(bars))).groupby(ts).indices
    for open_ns in range(int(ts.min()), int(ts.max()) + MIN_NS, MIN_NS):
        clock.set(open_ns + MIN_NS)  # a closed kline arrives at its minute's close
        rows = by_minute.get(open_ns, np.array([], dtype=np.int64))
        for i in rng.permutation(rows):
            sym, o, h, lo, c, v = cols[i]
            svc.on_kline(Kline(sym, open_ns, o, max(o, c), min(o, c), o, v / 2, False))
            svc.on_kline(Kline(sym, open_ns, o, h, lo, c, v, True))
        svc.poll()  # what turns an outage into carried bars while no kline comes
    clock.advance(svc.builder.grace_ns)
    svc.poll()  # the last minute: nothing after it will complete it
    svc.stop()
    return svc


@pytest.fixture(scope="module", params=list(CASES))
def case(request, tmp_path_factory):
    """Run one case once: the bars, the batch scans, the published scans, the service."""
    work = tmp_path_factory.mktemp(request.param)
    bars = cut(request.param)
    bars_path = work / "bars.parquet"
    bars.to_parquet(bars_path, index=False)
    batch = batch_scan(bars_path, work / "batch.parquet")
    store = MemoryStore()
    payloads = collect_scans(store)
    svc = replay_klines(bars, store, work / "session")
    assert wait_for(lambda: len(payloads) == svc.counters.published, timeout_s=30)
    store.close()
    return {"name": request.param, "bars": bars, "batch": batch, "svc": svc, "work": work,
            "live": payload_frame(payloads)}


def test_published_live_scans_equal_the_batch_scan(case):
    svc = case["svc"]
    assert svc.counters.publish_failures == 0 and svc.builder.late_dropped == 0
    assert svc.counters.published == len(case["batch"]) > 2000
    diffs = compare_scans(case["live"], case["batch"])
    assert max(diffs.values()) <= TOL


def test_recorded_session_replays_to_the_same_bars_and_scans(case, tmp_path):
    root = case["work"] / "session"
    recorded = load_bars(root / "bars")
    pd.testing.assert_frame_equal(recorded.assign(symbol=recorded["symbol"].astype(str)),
                                  case["bars"])
    # `dolphin scan` reads the recorded part files as they are: the batch scans come back.
    replay = batch_scan(root / "bars", tmp_path / "replay.parquet")
    pd.testing.assert_frame_equal(replay, case["batch"])
    scans = pd.read_parquet(root / "scans.parquet")
    validate_scans(scans, source="recorded scans")
    compare_scans(scans, case["batch"])


def test_slices_hold_listings_delistings_and_missing_bars(case):
    bars, batch, name = case["bars"], case["batch"], case["name"]
    span = bars.groupby("symbol")["timestamp"].agg(["min", "max"])
    t0, t1 = bars["timestamp"].min(), bars["timestamp"].max()
    listed = set(span.index[span["min"] > t0 + pd.Timedelta("1h")])
    ended = set(span.index[span["max"] < t1 - pd.Timedelta("1h")])
    carried = int(case["svc"].counters.filled_bars)
    if name == "usdm_2023_listings":
        assert listed == {"BNBUSDT", "BTCUSDT", "DOGEUSDT", "DOTUSDT", "MATICUSDT", "SOLUSDT",
                          "XRPUSDT"}
        assert batch["n_assets"].iloc[0] == 10 and batch["n_assets"].iloc[-1] == 17
    elif name == "usdm_2023_delistings":
        assert ended == {"DASHUSDT", "EOSUSDT", "ETCUSDT", "XLMUSDT", "XMRUSDT", "ZECUSDT"}
        # Carried for the one-day fill limit after their last bar, then out of the universe.
        assert batch["n_assets"].iloc[0] == 17 and batch["n_assets"].iloc[-1] == 11
        assert carried > 6 * 1440
    elif name == "sample_2021_outages":
        outage = batch["timestamp"].between(pd.Timestamp("2021-04-13 10:00", tz="UTC"),
                                            pd.Timestamp("2021-04-13 10:29", tz="UTC"))
        assert batch.loc[outage, "data_gap"].all() and batch["data_gap"].sum() == 30
        assert carried == 30 * 20 + 6 + 2
        assert batch["BTCUSDT"].isna().sum() == 30 + 6
    else:
        assert not listed and not ended and carried == 0


def test_compare_scans_rejects_a_small_difference_and_a_moved_nan(case):
    batch = case["batch"]
    off = batch.copy()
    off.loc[len(off) - 1, "vel_div"] += 1e-8
    with pytest.raises(AssertionError, match="vel_div"):
        compare_scans(off, batch)
    moved = batch.copy()
    moved.loc[0, "vel_div"] = 0.0  # NaN during the warm-up in the batch
    with pytest.raises(AssertionError, match="NaN positions"):
        compare_scans(moved, batch)
    assert max(compare_scans(batch, batch).values()) == 0.0


# ------------------------------------------------------------------ trades (real captures)


def real_trades() -> pd.DataFrame:
    """BTC and ETH perp trades of the 2024-07-18/19 captures, in arrival order."""
    rows = []
    for name in ("btcusdt_20240718", "btcusdt_20240719", "ethusdt_20240718", "ethusdt_20240719"):
        with gzip.open(require(RAW / f"{name}.gz"), "rt") as fh:
            for line in fh:
                local, _, text = line.partition(" ")
                if "@trade" not in text:
                    continue
                d = json.loads(text)["data"]
                if d["X"] == "MARKET":
                    rows.append((int(local), d["s"], d["T"] * 1_000_000, float(d["p"]),
                                 float(d["q"])))
    frame = pd.DataFrame(rows, columns=["arrival", "symbol", "ts", "price", "qty"])
    return frame.sort_values("arrival", kind="stable").reset_index(drop=True)


def reference_bars(trades: pd.DataFrame, step_ns: int) -> pd.DataFrame:
    """Real 5 s bars of time-sorted trades by pandas (long layout, intervals with trades)."""
    t = trades.sort_values("ts", kind="stable")
    g = t.assign(timestamp=t["ts"] - t["ts"] % step_ns).groupby(["symbol", "timestamp"])
    out = pd.DataFrame({"open": g["price"].first(), "high": g["price"].max(),
                        "low": g["price"].min(), "close": g["price"].last(),
                        "volume": g["qty"].sum()}).reset_index()
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True)
    return out[["timestamp", "symbol", "open", "high", "low", "close", "volume"]]


def test_live_scans_from_real_trades_equal_the_batch_scan_of_their_5s_bars(tmp_path):
    trades = real_trades().sort_values("ts", kind="stable")
    ref = reference_bars(trades, 5_000_000_000)
    ref.to_parquet(tmp_path / "bars5s.parquet", index=False)
    batch = batch_scan(tmp_path / "bars5s.parquet", tmp_path / "batch.parquet",
                       "--windows", "5,20")
    config = ScannerConfig(windows=(5, 20), instability_windows=())  # what --windows gives
    store = MemoryStore()
    clock = SimulatedClock(int(trades["ts"].iloc[0]))
    svc = ScanService(store, BarBuilder(["BTCUSDT", "ETHUSDT"]), clock=clock, config=config,
                      recorder=ScanRecorder(tmp_path / "session"))
    svc.start()
    for sym, ts, p, q in trades[["symbol", "ts", "price", "qty"]].itertuples(index=False):
        clock.set(max(clock.now_ns(), int(ts)))
        svc.on_trade(sym, int(ts), p, q)
    clock.advance(5_000_000_000 + svc.builder.grace_ns)
    svc.poll()
    svc.stop()
    recorded = load_bars(tmp_path / "session" / "bars")
    np.testing.assert_allclose(recorded[["open", "high", "low", "close", "volume"]].to_numpy(),
                               ref[["open", "high", "low", "close", "volume"]].to_numpy(),
                               rtol=1e-12)
    live = pd.read_parquet(tmp_path / "session" / "scans.parquet")
    assert len(live) == len(batch) > 90
    compare_scans(live, batch, config)


def test_trades_arriving_out_of_time_order_are_counted_dropped_and_kept_out_of_the_bars():
    trades = real_trades()
    rng = np.random.default_rng(11)
    # ETH's socket lags by 0-3 s, re-drawn per trade but delivered in stream order: across the
    # two streams arrival order is no longer time order, within each it still is.
    lag = np.where(trades["symbol"] == "ETHUSDT", rng.uniform(0, 3e9, len(trades)), 0.0)
    arrival = (trades["ts"] + lag).groupby(trades["symbol"]).cummax()
    trades = trades.assign(arrival=arrival).sort_values("arrival", kind="stable")
    step = 5_000_000_000
    start = (trades["ts"].to_numpy() // step) * step
    late = np.r_[False, start[1:] < np.maximum.accumulate(start)[:-1]]
    builder = BarBuilder(["BTCUSDT", "ETHUSDT"])
    sets = []
    for sym, ts, p, q in trades[["symbol", "ts", "price", "qty"]].itertuples(index=False):
        sets += builder.on_trade(sym, int(ts), p, q)
    assert builder.late_dropped == int(late.sum()) > 100
    assert [s.open_ts_ns for s in sets] == list(range(int(start.min()), int(start.max()), step))
    got = pd.DataFrame([(s.open_ts_ns, sym, *b[:5]) for s in sets
                        for sym, b in sorted(s.bars.items()) if not b.filled],
                       columns=["ts", "symbol", "open", "high", "low", "close", "volume"])
    want = reference_bars(trades[~late], step)
    want = want[want["timestamp"] < pd.Timestamp(int(start.max()), tz="UTC")]
    want = want.sort_values(["timestamp", "symbol"]).reset_index(drop=True)
    np.testing.assert_array_equal(got["ts"].to_numpy(), want["timestamp"].astype("int64"))
    cols = ["open", "high", "low", "close", "volume"]
    np.testing.assert_allclose(got[cols].to_numpy(), want[cols].to_numpy(), rtol=1e-12)
