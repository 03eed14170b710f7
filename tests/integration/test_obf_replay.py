"""`dolphin obf replay` on every shared capture with depth snapshots (docs/obf.md).

Each chain of captures (a continuation file after the file it continues) is replayed once; the
recorded features hold one row per asset of the bank per cycle, on the cycle grid; where valid
they must be in their ranges, and the imbalance must equal a plain computation from the
`dolphin book replay --depth N` frame: for a cycle at time t, the symbol's last book row with
``ts_event <= t``. A cycle before the symbol's first book row (trades seen, no synced book yet)
must give a NaN row.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from dolphin.cli import main
from dolphin.features.obf import OB_FRAME_COLUMNS, OBF_FEATURES, OBF_MACRO, read_ob_features
from tests.kit.paths import REPO, SHARED_DATA, require

RAW = SHARED_DATA / "raw_ws"
CYCLE_NS = 500_000_000
#: chain -> (files in stream order, symbols, fewest valid rows, band (bps) for the reference check:
#: narrow enough that 100 book levels hold the band on that market)
CHAINS = {
    "usdm_btc_2023": (("binance_usdm/btcusdt_20230404.dat.gz",
                       "binance_usdm/btcusdt_20230405.dat.gz"), {"BTCUSDT"}, 1000, 1.0),
    "usdm_btc_2024": (("binance_usdm/btcusdt_20240718.gz", "binance_usdm/btcusdt_20240719.gz"),
                      {"BTCUSDT"}, 900, 1.0),
    "usdm_eth_2024": (("binance_usdm/ethusdt_20240718.gz", "binance_usdm/ethusdt_20240719.gz"),
                      {"ETHUSDT"}, 900, 1.0),
    "spot_btc_2024": (("binance_spot/btcusdt_20240808.gz",), {"BTCUSDT"}, 650, 1.0),
    "cryptofeed_2021": (("cryptofeed_binance_futures/BINANCE_FUTURES.http.0.0",
                         "cryptofeed_binance_futures/BINANCE_FUTURES.ws.1.0"),
                        {"AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT"}, 200, 5.0),
}
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


def _paths(chain: str) -> list[str]:
    return [str(require(RAW / n)) for n in CHAINS[chain][0]]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """chain -> (frame read back, the printed line); each chain replayed once, in-process."""
    cache: dict[str, tuple[pd.DataFrame, str]] = {}

    def get(chain: str, capsys) -> tuple[pd.DataFrame, str]:
        if chain not in cache:
            out = tmp_path_factory.mktemp(chain) / "ob.parquet"
            assert main(["obf", "replay", *_paths(chain), "--out", str(out)]) == 0
            cache[chain] = read_ob_features(out), capsys.readouterr().out
        return cache[chain]

    return get


#: The replay's summary ends "N rows (M valid) -> OUT".
ROWS_LINE = re.compile(r"; ([\d,]+) rows \(([\d,]+) valid\) -> ")


@pytest.mark.parametrize("chain", CHAINS, ids=str)
def test_replayed_features_are_finite_and_in_range_where_valid(chain, replayed, capsys):
    _, symbols, fewest, _ = CHAINS[chain]
    df, printed = replayed(chain, capsys)
    print(f"\n{chain}: {printed.strip()}")
    assert printed.count("\n") == 1 and "0 gaps" in printed
    counts = ROWS_LINE.search(printed)
    assert counts, printed
    assert tuple(df.columns) == OB_FRAME_COLUMNS and set(df["symbol"]) == symbols
    assert (df["ts_ns"] % CYCLE_NS == 0).all()
    # one row per asset of the bank per cycle: the bank only grows in a replay, so each
    # cycle's symbols contain the previous cycle's, and the last cycle has every symbol
    per_cycle = [frozenset(g) for _, g in df.groupby("ts_ns", sort=True)["symbol"]]
    assert all(a <= b for a, b in itertools.pairwise(per_cycle))
    assert per_cycle[-1] == symbols
    # a row's six features are all known or all NaN (not valid that cycle)
    feats = df[list(OBF_FEATURES)]
    valid = feats.notna().all(axis=1)
    assert (valid | feats.isna().all(axis=1)).all()
    assert int(counts[1].replace(",", "")) == len(df)
    assert int(counts[2].replace(",", "")) == int(valid.sum()) >= fewest
    # the macro is on every row, NaN rows too: finite, and one value per cycle
    macro = df[list(OBF_MACRO)]
    assert np.isfinite(macro.to_numpy()).all()
    assert (macro.groupby(df["ts_ns"]).nunique() == 1).all().all()
    v = df[valid]
    assert np.isfinite(v[list(OBF_FEATURES)].to_numpy()).all()
    assert v["imbalance"].between(-1, 1).all() and v["imbalance_ma5"].between(-1, 1).all()
    assert v["imbalance_persistence"].between(0, 1).all()
    assert v["fill_probability"].between(0, 1).all()
    assert (v["depth_quality"] >= 0).all()
    assert set(df["regime_signal"]) <= {-1.0, 0.0, 1.0}
    assert df["market_multiplier"].between(0.85, 1.20).all()
    assert (df["cascade_count"] >= 0).all() and (df["cascade_count"] % 1 == 0).all()
    # the features move: real books are not constant
    assert v["imbalance"].std() > 0 and (v["withdrawal_velocity"] != 0).any()
    assert (v["depth_quality"] != 1.0).any()
    assert (v["fill_probability"] != 0.5).mean() > 0.3  # every chain carries trades


def _reference_imbalance(book: pd.DataFrame, ts: np.ndarray, band_bps: float, depth: int):
    """Imbalance of ``book``'s last row at or before each ``ts`` (NaN: no such row, or band
    past ``depth``) and which ``ts`` have such a row."""
    at = np.searchsorted(book["ts_event"].to_numpy(), ts, side="right") - 1
    has_book = at >= 0
    out = np.full(len(ts), np.nan)
    rows = book.iloc[at[has_book]]
    for i, r in zip(np.flatnonzero(has_book), rows.itertuples(index=False), strict=True):
        d = r._asdict()
        bid_px = np.array([d[f"bid_px_{k}"] for k in range(depth)])
        bid_qty = np.array([d[f"bid_qty_{k}"] for k in range(depth)])
        ask_px = np.array([d[f"ask_px_{k}"] for k in range(depth)])
        ask_qty = np.array([d[f"ask_qty_{k}"] for k in range(depth)])
        mid = (bid_px[0] + ask_px[0]) / 2
        lo, hi = mid * (1 - band_bps / 1e4), mid * (1 + band_bps / 1e4)
        if bid_px[-1] >= lo or ask_px[-1] <= hi:
            continue  # the band may hold levels past the frame's depth: not checkable
        b = sum(p * q for p, q in zip(bid_px, bid_qty, strict=True) if p >= lo)
        a = sum(p * q for p, q in zip(ask_px, ask_qty, strict=True) if p <= hi)
        if b + a > 0:
            out[i] = (b - a) / (b + a)
    return out, has_book


@pytest.mark.parametrize("chain", CHAINS, ids=str)
def test_imbalance_equals_a_plain_computation_from_the_book_replay_frame(chain, tmp_path,
                                                                         capsys):
    band, depth = CHAINS[chain][3], 100
    paths = _paths(chain)[:2 if chain == "cryptofeed_2021" else 1]  # the files with snapshots
    ob, bk = tmp_path / "ob.parquet", tmp_path / "book.parquet"
    assert main(["obf", "replay", *paths, "--out", str(ob), "--band-bps", str(band)]) == 0
    assert main(["book", "replay", *paths, "--out", str(bk), "--depth", str(depth)]) == 0
    capsys.readouterr()
    features, book = read_ob_features(ob), pd.read_parquet(bk)
    checked = 0
    for symbol, got in features.groupby("symbol"):
        rows = book[book["symbol"] == symbol].reset_index(drop=True)
        want, has_book = _reference_imbalance(rows, got["ts_ns"].to_numpy(), band, depth)
        imbalance = got["imbalance"].to_numpy()
        # no book row yet at the cycle time (trades only): the asset is not valid, a NaN row
        assert np.isnan(imbalance[~has_book]).all(), symbol
        # where the reference has an imbalance (a book with depth in the band), the row is
        # valid and equal; a NaN reference (band empty or past the frame's depth) is unchecked
        ok = ~np.isnan(want)
        np.testing.assert_allclose(imbalance[ok], want[ok], rtol=0, atol=1e-12, err_msg=symbol)
        checked += int(ok.sum())
    print(f"\n{chain}: imbalance of {checked} of {len(features)} rows checked "
          f"({int(features['imbalance'].isna().sum())} NaN rows)")
    assert checked >= 25


def test_a_slower_cycle_gives_a_coarser_grid(tmp_path, capsys):
    out = tmp_path / "ob.parquet"
    paths = _paths("spot_btc_2024")
    assert main(["obf", "replay", *paths, "--out", str(out), "--cycle-ms", "2000"]) == 0
    assert "cycles of 2000 ms" in capsys.readouterr().out
    df = read_ob_features(out)
    assert (df["ts_ns"] % 2_000_000_000 == 0).all()
    assert 150 <= len(df) <= 180  # the capture spans 346 s of event time: ~173 cycles


def test_replay_of_one_symbol(tmp_path, capsys):
    out = tmp_path / "sushi.parquet"
    assert main(["obf", "replay", *_paths("cryptofeed_2021"), "--out", str(out),
                 "--symbol", "sushiusdt"]) == 0
    assert set(read_ob_features(out)["symbol"]) == {"SUSHIUSDT"}
    assert "1 symbol(s)" in capsys.readouterr().out


def test_replay_of_a_capture_without_a_snapshot_says_so(tmp_path, capsys):
    out = tmp_path / "none.parquet"
    path = require(RAW / "binance_usdm" / "btcusdt_20230405.dat.gz")
    assert main(["obf", "replay", str(path), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    # its trades make BTCUSDT known, but no book is ever synced: NaN rows only, none valid
    assert captured.out.count("\n") == 1 and "none valid: no rows written" in captured.out
    assert captured.err.count("\n") == 1
    assert "no depth snapshot" in captured.err and "btcusdt_20230405" in captured.err
    assert "Traceback" not in captured.err and not out.exists()


@pytest.mark.parametrize(("args", "needle"), [
    (["--cycle-ms", "0"], "--cycle-ms"), (["--band-bps", "-5"], "--band-bps"),
    (["--band-bps", "nan"], "--band-bps"),
])
def test_replay_rejects_bad_options(tmp_path, capsys, args, needle):
    path = str(require(RAW / "binance_spot" / "btcusdt_20240808.gz"))
    assert main(["obf", "replay", path, "--out", str(tmp_path / "o.parquet"), *args]) == 2
    assert needle in capsys.readouterr().err and not (tmp_path / "o.parquet").exists()


def test_python_m_dolphin_obf_replay(tmp_path):
    out = tmp_path / "ob.parquet"
    proc = subprocess.run([sys.executable, "-m", "dolphin", "obf", "replay",
                           *_paths("cryptofeed_2021"), "--out", str(out)],
                          capture_output=True, text=True, env=ENV, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and "4 symbol(s)" in proc.stdout
    df = read_ob_features(out)
    assert set(df["symbol"]) == CHAINS["cryptofeed_2021"][1]
    assert os.listdir(tmp_path) == ["ob.parquet"]


def test_python_m_dolphin_obf_replay_of_a_bad_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"plain text, not gzip")
    proc = subprocess.run([sys.executable, "-m", "dolphin", "obf", "replay", str(bad),
                           "--out", str(tmp_path / "o.parquet")],
                          capture_output=True, text=True, env=ENV, timeout=300, check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "not a gzip file" in proc.stderr
    assert str(bad) in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["bad.gz"]
