"""Local books replayed from every shared Binance capture agree with Binance's own bookTicker.

THE acceptance check: on every capture with a depth snapshot (and each continuation file chained
after the file it continues), every bookTicker whose ``u`` equals an applied diff's ``u`` must
equal the book's best bid/ask, price and quantity, exactly. The bookTickers are read with the
stdlib ``json`` and ``Decimal`` here, not with the wire module.
"""

from __future__ import annotations

import gzip
import json
import os
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dolphin.adapters.binance.book import replay
from dolphin.cli import main
from tests.kit.paths import SHARED_DATA, require

RAW = SHARED_DATA / "raw_ws"
#: (files in stream order, the fewest bookTicker matches that count as a real check)
CHAINS = {
    "usdm_btc_2023": (("binance_usdm/btcusdt_20230404.dat.gz",
                       "binance_usdm/btcusdt_20230405.dat.gz"), 1000),
    "usdm_btc_2024": (("binance_usdm/btcusdt_20240718.gz", "binance_usdm/btcusdt_20240719.gz"),
                      500),
    "usdm_eth_2024": (("binance_usdm/ethusdt_20240718.gz", "binance_usdm/ethusdt_20240719.gz"),
                      500),
    "spot_btc_2024": (("binance_spot/btcusdt_20240808.gz",), 400),
    "cryptofeed_2021": (("cryptofeed_binance_futures/BINANCE_FUTURES.http.0.0",
                         "cryptofeed_binance_futures/BINANCE_FUTURES.ws.1.0"), 40),
}


def _paths(names) -> list[Path]:
    return [require(RAW / n) for n in names]


def _ticks(text: str) -> int:
    return int(Decimal(text) * 10**8)


def book_tickers(paths: list[Path]) -> dict[tuple[str, int], tuple[int, int, int, int]]:
    """Every bookTicker of the captures by (symbol, u): ticks of b, B, a, A (stdlib parsing)."""
    out = {}
    for path in paths:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")) as fh:
            for line in fh:
                if b'@bookTicker"' not in line:  # the stream name, not the header listing it
                    continue
                data = json.loads(line[line.index(b"{"):])["data"]
                out[data["s"], data["u"]] = tuple(_ticks(data[k]) for k in "bBaA")
    return out


def test_ticks_helper_reads_a_hand_value():
    assert _ticks("28145.10") == 2_814_510_000_000 and _ticks("0.000") == 0


@pytest.mark.parametrize("chain", CHAINS, ids=str)
def test_every_matching_book_ticker_equals_the_replayed_top_exactly(chain):
    names, fewest = CHAINS[chain]
    paths = _paths(names)
    result = replay(paths)
    tickers = book_tickers(paths)
    matches = mismatches = 0
    for symbol, u, top in zip(result.symbol, result.update_id, result.top, strict=True):
        want = tickers.get((symbol, u))
        if want is not None:
            matches += 1
            mismatches += want != top
    totals = result.totals()
    print(f"\n{chain}: {matches:,} bookTicker matches, {mismatches} mismatches, "
          f"{result.rows:,} rows, {totals}")
    assert mismatches == 0
    assert matches >= fewest
    assert totals["gaps"] == totals["resyncs"] == totals["crossed"] == totals["malformed"] == 0
    assert result.decoder.total_malformed == 0


@pytest.mark.parametrize("chain", ["usdm_btc_2023", "usdm_btc_2024", "usdm_eth_2024"])
def test_a_continuation_file_goes_on_from_its_predecessor(chain):
    first, second = _paths(CHAINS[chain][0])
    alone = replay([first])
    chained = replay([first, second])
    assert chained.rows > 2 * alone.rows  # the second file's diffs were applied too
    assert chained.update_id[: alone.rows] == alone.update_id
    assert replay([second]).rows == 0  # on its own it has no snapshot


def test_cli_replay_writes_float_rows_that_equal_the_book_tickers(tmp_path, capsys):
    names = CHAINS["usdm_btc_2024"][0]
    out = tmp_path / "book.parquet"
    assert main(["book", "replay", *map(str, _paths(names)), "--out", str(out),
                 "--depth", "5"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("\n") == 1 and "0 gaps" in printed and str(out) in printed
    df = pd.read_parquet(out)
    assert os.listdir(tmp_path) == ["book.parquet"]
    assert list(df.columns[:7]) == ["symbol", "update_id", "ts_event", "best_bid",
                                    "best_bid_qty", "best_ask", "best_ask_qty"]
    assert len(df.columns) == 7 + 4 * 5 and df["ts_event"].dtype == np.int64
    assert (df["bid_px_0"] == df["best_bid"]).all()
    assert (df["ask_qty_0"] == df["best_ask_qty"]).all()
    assert (df["bid_px_0"] > df["bid_px_4"]).all() and (df["ask_px_0"] < df["ask_px_4"]).all()
    texts = {}
    for path in _paths(names):
        with gzip.open(path, "rb") as fh:
            for line in fh:
                if b'@bookTicker"' in line:
                    data = json.loads(line[line.index(b"{"):])["data"]
                    texts[data["u"]] = [float(data[k]) for k in "bBaA"]
    rows = df[df["update_id"].isin(texts)]
    assert len(rows) > 500
    for row in rows.itertuples():
        assert [row.best_bid, row.best_bid_qty, row.best_ask, row.best_ask_qty] == texts[
            row.update_id]


def test_cli_replay_of_one_symbol(tmp_path, capsys):
    out = tmp_path / "sushi.parquet"
    names = CHAINS["cryptofeed_2021"][0]
    assert main(["book", "replay", *map(str, _paths(names)), "--out", str(out),
                 "--symbol", "sushiusdt"]) == 0
    df = pd.read_parquet(out)
    assert set(df["symbol"]) == {"SUSHIUSDT"} and len(df) > 100
    assert "1 symbol(s)" in capsys.readouterr().out


def test_cli_replay_of_a_capture_without_a_snapshot_says_so(tmp_path, capsys):
    out = tmp_path / "none.parquet"
    assert main(["book", "replay", str(require(RAW / "binance_usdm" / "btcusdt_20230405.dat.gz")),
                 "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "0 applied" in captured.out and "no rows written" in captured.out
    assert "no depth snapshot" in captured.err and "btcusdt_20230405" in captured.err
    assert "Traceback" not in captured.err and not out.exists()


def test_cli_replay_counts_garbage_lines_and_goes_on(tmp_path, capsys):
    src = require(RAW / "binance_usdm" / "btcusdt_20240718.gz")
    with gzip.open(src, "rb") as fh:
        lines = fh.readlines()
    mixed = tmp_path / "mixed.gz"
    with gzip.open(mixed, "wb") as fh:
        fh.writelines([*lines[:100], b"garbage\n", b"1721347021080832061 {not json\n",
                       *lines[100:]])
    assert main(["book", "replay", str(mixed), "--out", str(tmp_path / "o.parquet")]) == 0
    assert "2 malformed lines" in capsys.readouterr().out


@pytest.mark.parametrize(("content", "needle"), [
    (None, "no such capture file"), (b"plain text", "not a gzip file"),
    (gzip.compress(b"junk\n"), "no Binance capture line"),
])
def test_cli_replay_of_a_bad_file_names_it(tmp_path, capsys, content, needle):
    bad = tmp_path / "bad.gz"
    if content is not None:
        bad.write_bytes(content)
    assert main(["book", "replay", str(bad), "--out", str(tmp_path / "o.parquet")]) == 2
    err = capsys.readouterr().err
    assert needle in err and str(bad) in err and "Traceback" not in err


def test_cli_replay_rejects_a_negative_depth(tmp_path, capsys):
    path = require(RAW / "binance_spot" / "btcusdt_20240808.gz")
    assert main(["book", "replay", str(path), "--out", str(tmp_path / "o.parquet"),
                 "--depth", "-1"]) == 2
    assert "--depth" in capsys.readouterr().err
