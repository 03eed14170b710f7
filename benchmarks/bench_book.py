"""Order-book speed: parse + apply the real Binance depth diffs; prints ONE JSON line.

The measured path is the one ``dolphin book replay`` runs per depth line: ``wire.Decoder.line``
(capture line -> typed record, levels to exact ticks) then ``OrderBook.on_diff`` /
``on_snapshot`` (sync checks, levels applied, best bid/ask kept). It runs over every depth line
(diffs and snapshots) of the shared hftbacktest captures, continuation files chained after their
predecessor, held in memory so gzip is not timed. The baseline in the same run is plain
``json.loads`` + a dict-of-float-keyed book update in pure Python on the same lines (no sync
checks, no best price). Each figure is the best of ``--repeats`` runs; the target is >= 100,000
diffs/s on one core. ``replay_s`` is the end-to-end ``book.replay`` of the same files (gzip and
every other message included) for scale.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path

from dolphin.adapters.binance.book import OrderBook, SyncRule, replay
from dolphin.adapters.binance.wire import Decoder, DepthDiff

RAW = Path(os.environ.get("DOLPHIN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared"
                          / "data")) / "raw_ws"
CHAINS = (
    ("BTCUSDT", SyncRule.FUTURES, ("binance_usdm/btcusdt_20230404.dat.gz",
                                   "binance_usdm/btcusdt_20230405.dat.gz")),
    ("BTCUSDT", SyncRule.FUTURES, ("binance_usdm/btcusdt_20240718.gz",
                                   "binance_usdm/btcusdt_20240719.gz")),
    ("ETHUSDT", SyncRule.FUTURES, ("binance_usdm/ethusdt_20240718.gz",
                                   "binance_usdm/ethusdt_20240719.gz")),
    ("BTCUSDT", SyncRule.SPOT, ("binance_spot/btcusdt_20240808.gz",)),
)
TARGET = 100_000


def _depth_lines(files: tuple[str, ...]) -> list[bytes]:
    lines = []
    for name in files:
        if not (RAW / name).is_file():
            raise SystemExit(f"capture missing: {RAW / name} (set DOLPHIN_SHARED_DATA)")
        with gzip.open(RAW / name, "rb") as fh:
            lines += [ln for ln in fh if b'"depthUpdate"' in ln or b'"lastUpdateId"' in ln]
    return lines


def _books(data: list[tuple[str, SyncRule, list[bytes]]]) -> tuple[float, int]:
    t = time.perf_counter()
    applied = 0
    for symbol, rule, lines in data:
        decoder, book = Decoder(), OrderBook(symbol, rule)
        for line in lines:
            record = decoder.line(line)[1]
            if type(record) is DepthDiff:
                book.on_diff(record)
            else:
                book.on_snapshot(record)
        applied += book.counters.applied
    return time.perf_counter() - t, applied


def _baseline(data: list[tuple[str, SyncRule, list[bytes]]]) -> float:
    t = time.perf_counter()
    for _, _, lines in data:
        bids: dict[float, float] = {}
        asks: dict[float, float] = {}
        for line in lines:
            msg = json.loads(line.split(b" ", 1)[1])
            data_ = msg.get("data")
            if data_ is None:  # the REST snapshot
                bids = {float(p): float(q) for p, q in msg["bids"]}
                asks = {float(p): float(q) for p, q in msg["asks"]}
                continue
            for side, levels in ((bids, data_["b"]), (asks, data_["a"])):
                for p, q in levels:
                    qty = float(q)
                    if qty:
                        side[float(p)] = qty
                    else:
                        side.pop(float(p), None)
    return time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data = [(s, r, _depth_lines(files)) for s, r, files in CHAINS]
    diffs = sum(sum(b'"depthUpdate"' in ln for ln in lines) for _, _, lines in data)
    levels = sum(len(json.loads(ln.split(b" ", 1)[1])["data"]["b"])
                 + len(json.loads(ln.split(b" ", 1)[1])["data"]["a"])
                 for _, _, lines in data for ln in lines if b'"depthUpdate"' in ln)
    load = os.getloadavg()[0]
    _books(data)  # warm-up: loads the compiled kernels
    runs = [_books(data) for _ in range(args.repeats)]
    best, applied = min(runs)
    base = min(_baseline(data) for _ in range(args.repeats))
    t = time.perf_counter()
    for _, _, files in CHAINS:
        replay([RAW / f for f in files])
    replay_s = time.perf_counter() - t
    rate = diffs / best
    print(json.dumps({
        "bench": "book", "diffs": diffs, "levels": levels, "applied": applied,
        "msgs_per_s": round(rate), "levels_per_s": round(levels / best),
        "baseline": "json.loads + dict-of-float book, pure Python",
        "baseline_msgs_per_s": round(diffs / base), "speedup": round(base / best, 2),
        "target_msgs_per_s": TARGET, "meets_target": rate >= TARGET,
        "replay_s": round(replay_s, 2), "repeats": args.repeats,
        "load_1m_before": round(load, 2), "python": sys.version.split()[0],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
