"""Binance wire parsers on the API documentation vectors and on real capture lines.

Every expected value is written by hand from the raw JSON text shown in the comment above it:
ticks are the decimal times 10^8, timestamps the milliseconds times 10^6.
"""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dolphin.adapters.binance.wire import (
    AggTrade,
    BookTicker,
    Decoder,
    DepthDiff,
    DepthSnapshot,
    ExchangeInfo,
    Kline,
    Liquidation,
    MarkPrice,
    Reason,
    Trade,
    WireError,
    _parse_levels,
    decode_capture_line,
    decode_message,
    parse_depth_snapshot,
    parse_exchange_info,
    parse_fixed,
    parse_funding_rates,
    parse_klines,
    parse_premium_index,
    read_capture,
    to_float,
    to_float_array,
)
from dolphin.core.errors import DataError
from tests.kit.paths import SHARED_DATA, require

RAW = SHARED_DATA / "raw_ws"
NAUTILUS = RAW / "nautilus_samples"
CRYPTOFEED = RAW / "cryptofeed_binance_futures"


def _doc(folder: str, name: str) -> bytes:
    return require(NAUTILUS / folder / name).read_bytes()


def _line(path: Path, lineno: int) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(require(path), "rb") as fh:
        return next(itertools.islice(fh, lineno - 1, None))


def _levels(record) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    return [tuple(r) for r in record.bids.tolist()], [tuple(r) for r in record.asks.tolist()]


# --------------------------------------------------------------------------- decimals


@pytest.mark.parametrize(("text", "ticks"), [
    ("28145.10", 2_814_510_000_000), ("28145.1", 2_814_510_000_000), ("0.000", 0),
    ("0.00000001", 1), ("100", 10_000_000_000), ("1.000000000000", 100_000_000),
    ("0007.5", 750_000_000), ("92233720368.54775807", 2**63 - 1),
])
def test_parse_fixed_reads_decimals_exactly(text, ticks):
    assert parse_fixed(text) == ticks


@pytest.mark.parametrize("text", [
    "NaN", "nan", "inf", "1e5", "", " 1", "1 ", "+1", "-1", "1.", ".5", "1.2.3", "0x10",
    "1_000", "١", "0.000000001", "92233720368.54775808", "9" * 30,
])
def test_parse_fixed_rejects_anything_but_a_plain_decimal(text):
    with pytest.raises(WireError) as info:
        parse_fixed(text)
    assert info.value.reason is Reason.DECIMAL


def test_parse_fixed_takes_a_sign_only_when_signed():
    assert parse_fixed("-0.03750000", signed=True) == -3_750_000
    with pytest.raises(WireError):
        parse_fixed("-0.03750000")


def test_floats_are_the_nearest_to_the_decimal_text():
    for text in ("28145.10", "0.1", "3424.99", "61837.63000000", "0.00002754"):
        assert to_float(parse_fixed(text)) == float(text)
    big = np.array([parse_fixed("90071992.54740993"), 1], dtype=np.int64)  # 2**53 + 1 ticks
    assert to_float_array(big).tolist() == [float("90071992.54740993"), 1e-8]


def _levels_of(text: str) -> list[list[int]]:
    levels, n_bids = _parse_levels(msgspec.Raw(f'[["{text}","1"]]'.encode()), msgspec.Raw(b"[]"))
    assert n_bids == len(levels)
    return levels.tolist()


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.text(alphabet="0123456789.-+eE nN_", max_size=24),
    st.decimals(min_value=0, max_value=10**11, places=8, allow_nan=False).map(str),
    st.builds(lambda w, f: f"{w}.{f}", st.integers(0, 10**12), st.text("0123456789", min_size=1,
                                                                     max_size=12)),
))
def test_the_level_kernel_agrees_with_parse_fixed(text):
    try:
        want = parse_fixed(text)
    except WireError:
        want = None
    try:
        got = _levels_of(text)
    except WireError as exc:
        assert exc.reason in (Reason.DECIMAL, Reason.SCHEMA)
        got = None
    if want is not None and want == 0:
        assert got is None  # a level's price is never zero
    else:
        assert got == (None if want is None else [[want, 100_000_000]])


@pytest.mark.parametrize(("text", "ticks"), [
    ("92233720368.54775807", 2**63 - 1),  # 19 digits: the kernel's exact path
    ("00000000000000000000061837.63000000", 6_183_763_000_000),
    ("61837.630000000000000", 6_183_763_000_000),
    ("92233720368.54775808", None), ("100000000000", None), ("0.000000001", None),
])
def test_the_level_kernel_at_the_int64_and_precision_edges(text, ticks):
    if ticks is None:
        with pytest.raises(WireError) as info:
            _levels_of(text)
        assert info.value.reason is Reason.DECIMAL
    else:
        assert _levels_of(text) == [[ticks, 100_000_000]]


@pytest.mark.parametrize("raw", [
    b'[["1","2","3"]]', b'[["1"]]', b'[[]]', b'["1","2"]', b'[[["1","2"]]]', b'[[1,2]]',
    b'[["1",2]]', b'[[null,"1"]]', b'{"1":"2"}', b'"1"', b'[["1","2"]] []',
])
def test_the_level_kernel_rejects_other_shapes(raw):
    with pytest.raises(WireError) as info:
        _parse_levels(msgspec.Raw(raw), msgspec.Raw(b"[]"))
    assert info.value.reason is Reason.SCHEMA


def test_levels_with_whitespace_and_both_sides():
    levels, n_bids = _parse_levels(msgspec.Raw(b' [ [ "1.5" , "2" ] ,\n["1.4","0"] ] '),
                                   msgspec.Raw(b'[["1.6","0.25"]]'))
    assert n_bids == 2
    assert levels.tolist() == [[150_000_000, 200_000_000], [140_000_000, 0],
                               [160_000_000, 25_000_000]]


# --------------------------------------------------------------------------- documentation vectors


def test_docs_futures_depth_update():
    d = decode_message(_doc("docs_examples_rust_futures_ws", "depth_update_stream.json"))
    assert isinstance(d, DepthDiff)
    # "E": 123456789, "T": 123456788, "s": "BTCUSDT", "U": 157, "u": 160, "pu": 149
    assert (d.symbol, d.first_update_id, d.final_update_id, d.prev_final_update_id) == (
        "BTCUSDT", 157, 160, 149)
    assert (d.ts_event, d.ts_transaction) == (123_456_789_000_000, 123_456_788_000_000)
    # "b": [["0.0024", "10"]], "a": [["0.0026", "100"]]
    assert _levels(d) == ([(240_000, 1_000_000_000)], [(260_000, 10_000_000_000)])


def test_docs_futures_depth_update_five_levels():
    d = decode_message(_doc("docs_examples_ws", "ws_futures_depth_update.json"))
    assert (d.first_update_id, d.final_update_id, d.prev_final_update_id) == (
        390497796, 390497878, 390497794)
    bids, asks = _levels(d)
    # ["7403.89","0.002"], ["7403.90","3.906"], ["7404.00","1.428"], ["7404.85","5.239"],
    # ["7405.43","2.562"]
    assert bids == [(740_389_000_000, 200_000), (740_390_000_000, 390_600_000),
                    (740_400_000_000, 142_800_000), (740_485_000_000, 523_900_000),
                    (740_543_000_000, 256_200_000)]
    # ["7405.96","3.340"], ["7406.63","4.525"], ["7407.08","2.475"], ["7407.15","4.800"],
    # ["7407.20","0.175"]
    assert asks == [(740_596_000_000, 334_000_000), (740_663_000_000, 452_500_000),
                    (740_708_000_000, 247_500_000), (740_715_000_000, 480_000_000),
                    (740_720_000_000, 17_500_000)]


@pytest.mark.parametrize(("folder", "name"), [
    ("docs_examples_rust_futures_ws", "book_ticker_stream.json"),
    ("docs_examples_ws", "ws_futures_book_ticker.json"),
])
def test_docs_futures_book_ticker(folder, name):
    # "u": 400900217, "E": 1568014460893, "T": 1568014460891, "s": "BNBUSDT",
    # "b": "25.35190000", "B": "31.21000000", "a": "25.36520000", "A": "40.66000000"
    assert decode_message(_doc(folder, name)) == BookTicker(
        "BNBUSDT", 400900217, 2_535_190_000, 3_121_000_000, 2_536_520_000, 4_066_000_000,
        1_568_014_460_893_000_000, 1_568_014_460_891_000_000)


def test_docs_spot_book_ticker_in_an_envelope():
    # {"stream":"ethusdt@bookTicker","data":{"u":12711621188,"s":"ETHUSDT","b":"4507.24000000",
    #  "B":"2.35950000","a":"4507.25000000","A":"2.84570000","T":1646199228121,"E":1646199228123}}
    assert decode_message(_doc("docs_examples_ws", "ws_spot_ticker_book.json")) == BookTicker(
        "ETHUSDT", 12711621188, 450_724_000_000, 235_950_000, 450_725_000_000, 284_570_000,
        1_646_199_228_123_000_000, 1_646_199_228_121_000_000)


def test_docs_trades():
    # "E": 123456789, "s": "BTCUSDT", "t": 5933014, "p": "0.001", "q": "100", "T": 123456785,
    # "m": true
    assert decode_message(_doc("docs_examples_rust_futures_ws", "trade_stream.json")) == Trade(
        "BTCUSDT", 5933014, 100_000, 10_000_000_000, True, 123_456_789_000_000,
        123_456_785_000_000)
    # spot, enveloped: "E":1639351062244, "t":705291099, "p":"4149.74000000",
    # "q":"0.43870000", "T":1639351062243, "m":true
    assert decode_message(_doc("docs_examples_ws", "ws_spot_trade.json")) == Trade(
        "ETHUSDT", 705291099, 414_974_000_000, 43_870_000, True, 1_639_351_062_244_000_000,
        1_639_351_062_243_000_000)


def test_docs_agg_trades():
    # "E": 123456789, "a": 5933014, "s": "BTCUSDT", "p": "0.001", "q": "100", "f": 100,
    # "l": 105, "T": 123456785, "m": true
    assert decode_message(_doc("docs_examples_rust_futures_ws", "agg_trade_stream.json")) == (
        AggTrade("BTCUSDT", 5933014, 100_000, 10_000_000_000, 100, 105, True,
                 123_456_789_000_000, 123_456_785_000_000))
    # "E":1675759520848, "a":226532, "p":"1632.46000000", "q":"0.34305000", "f":228423,
    # "l":228423, "T":1675759520847, "m":false
    assert decode_message(_doc("docs_examples_ws", "ws_spot_agg_trade.json")) == AggTrade(
        "ETHUSDT", 226532, 163_246_000_000, 34_305_000, 228423, 228423, False,
        1_675_759_520_848_000_000, 1_675_759_520_847_000_000)


def test_docs_mark_price():
    # "E": 1562305380000, "s": "BTCUSDT", "p": "11794.15000000", "i": "11784.62659091",
    # "P": "11784.25641265", "r": "0.00038167", "T": 1562306400000
    assert decode_message(_doc("docs_examples_rust_futures_ws", "mark_price_stream.json")) == (
        MarkPrice("BTCUSDT", 1_179_415_000_000, 1_178_462_659_091, 1_178_425_641_265, 38_167,
                  1_562_305_380_000_000_000, 1_562_306_400_000_000_000))


@pytest.mark.parametrize(("name", "low", "closed"), [
    ("kline_stream_closed.json", 100_000, True), ("kline_stream_open.json", 150_000, False),
])
def test_docs_klines(name, low, closed):
    # "t": 1638747660000, "T": 1638747719999, "i": "1m", "o": "0.0010", "c": "0.0020",
    # "h": "0.0025", "l": "0.0010" / "0.0015", "v": "1000", "n": 100, "x": true / false,
    # "q": "1.0000", "V": "500", "Q": "0.500"
    assert decode_message(_doc("docs_examples_rust_futures_ws", name)) == Kline(
        "BTCUSDT", "1m", 1_638_747_660_000_000_000, 1_638_747_719_999_000_000, 100_000,
        250_000, low, 200_000, 100_000_000_000, 100_000_000, 100, 50_000_000_000, 50_000_000,
        closed, 1_638_747_660_000_000_000)


def test_docs_liquidation():
    # "E": 1568014460893, "o": {"s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC",
    # "q": "0.014", "p": "9910.00000000", "ap": "9910.12345678", "X": "FILLED", "l": "0.014",
    # "z": "0.014", "T": 1568014460893}
    assert decode_message(_doc("docs_examples_rust_futures_ws", "liquidation_stream.json")) == (
        Liquidation("BTCUSDT", "SELL", "LIMIT", "IOC", "FILLED", 1_400_000, 991_000_000_000,
                    991_012_345_678, 1_400_000, 1_400_000, 1_568_014_460_893_000_000,
                    1_568_014_460_893_000_000))


@pytest.mark.parametrize(("folder", "name"), [
    ("docs_examples_rust_futures_ws", "ticker_stream.json"),
    ("docs_examples_ws", "ws_futures_ticker_24hr.json"),
])
def test_docs_24h_tickers_are_unsupported_not_malformed(folder, name):
    with pytest.raises(WireError) as info:
        decode_message(_doc(folder, name))
    assert info.value.reason is Reason.UNSUPPORTED


def test_docs_rest_depth_snapshot():
    raw = _doc("docs_examples_futures_http", "http_futures_market_depth.json")
    snap = parse_depth_snapshot(raw, "BTCUSDT")
    # "lastUpdateId": 1027024, "E": 1589436922972, "T": 1589436922959,
    # "bids": [["4.00000000", "431.00000000"]], "asks": [["4.00000200", "12.00000000"]]
    assert (snap.symbol, snap.last_update_id) == ("BTCUSDT", 1027024)
    assert (snap.ts_event, snap.ts_transaction) == (1_589_436_922_972_000_000,
                                                    1_589_436_922_959_000_000)
    assert _levels(snap) == ([(400_000_000, 43_100_000_000)], [(400_000_200, 1_200_000_000)])


def test_docs_rest_klines():
    rows = parse_klines(_doc("docs_examples_futures_http", "http_futures_market_klines.json"),
                        "BTCUSDT", "1m")
    # [1499040000000, "0.01634790", "0.80000000", "0.01575800", "0.01577100",
    #  "148976.11427815", 1499644799999, "2434.19055334", 308, "1756.87402397", "28.46694368", ..]
    assert rows == [Kline("BTCUSDT", "1m", 1_499_040_000_000_000_000, 1_499_644_799_999_000_000,
                          1_634_790, 80_000_000, 1_575_800, 1_577_100, 14_897_611_427_815,
                          243_419_055_334, 308, 175_687_402_397, 2_846_694_368, True, 0)]


def test_docs_rest_funding_rates():
    rates = parse_funding_rates(_doc("docs_examples_futures_http",
                                     "http_futures_market_funding_rate.json"))
    # "fundingRate": "-0.03750000", "fundingTime": 1570608000000; "0.00010000", 1570636800000
    assert [(r.symbol, r.funding_rate, r.ts_funding) for r in rates] == [
        ("BTCUSDT", -3_750_000, 1_570_608_000_000_000_000),
        ("BTCUSDT", 10_000, 1_570_636_800_000_000_000)]


def test_docs_rest_premium_index():
    p = parse_premium_index(_doc("docs_examples_futures_http",
                                 "http_futures_market_premium_index.json"))
    # "markPrice": "11793.63104562", "indexPrice": "11781.80495970",
    # "estimatedSettlePrice": "11781.16138815", "lastFundingRate": "0.00038246",
    # "nextFundingTime": 1597392000000, "interestRate": "0.00010000", "time": 1597370495002
    assert (p.symbol, p.mark_price, p.index_price, p.est_settle_price) == (
        "BTCUSDT", 1_179_363_104_562, 1_178_180_495_970, 1_178_116_138_815)
    assert (p.last_funding_rate, p.interest_rate) == (38_246, 10_000)
    assert (p.ts_next_funding, p.ts_event) == (1_597_392_000_000_000_000,
                                               1_597_370_495_002_000_000)


def test_docs_rest_exchange_info():
    info = parse_exchange_info(_doc("docs_examples_futures_http",
                                    "http_futures_market_exchange_info.json"))
    assert info.ts_server == 1_645_233_611_962_000_000  # "serverTime": 1645233611962
    assert [s.symbol for s in info.symbols] == ["BTCUSDT", "ETHUSDT", "BTCUSDT_220325"]
    btc = info.symbols[0]
    # "pricePrecision": 2, "quantityPrecision": 3, PRICE_FILTER "tickSize": "0.10",
    # "minPrice": "402", "maxPrice": "1246396.60"; LOT_SIZE "stepSize": "0.001",
    # "minQty": "0.001", "maxQty": "1000"; MIN_NOTIONAL "notional": "10"
    assert (btc.contract_type, btc.status, btc.base_asset, btc.quote_asset, btc.margin_asset) == (
        "PERPETUAL", "TRADING", "BTC", "USDT", "USDT")
    assert (btc.price_precision, btc.quantity_precision) == (2, 3)
    assert (btc.tick_size, btc.min_price, btc.max_price) == (10_000_000, 40_200_000_000,
                                                             124_639_660_000_000)
    assert (btc.step_size, btc.min_qty, btc.max_qty, btc.min_notional) == (
        100_000, 100_000, 100_000_000_000, 1_000_000_000)
    # "onboardDate": 1569398400000, "deliveryDate": 4133404802000
    assert (btc.ts_onboard, btc.ts_delivery) == (1_569_398_400_000_000_000,
                                                 4_133_404_802_000_000_000)
    assert info.symbols[1].tick_size == 1_000_000  # ETHUSDT "tickSize": "0.01"


# --------------------------------------------------------------------------- real capture lines

USDM_2023 = RAW / "binance_usdm" / "btcusdt_20230404.dat.gz"
USDM_2024 = RAW / "binance_usdm" / "btcusdt_20240718.gz"
SPOT = RAW / "binance_spot" / "btcusdt_20240808.gz"


def test_real_usdm_2023_book_ticker_line_with_a_microsecond_stamp():
    # 1680652700423575 {"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":2710246762461,
    # "s":"BTCUSDT","b":"28145.10","B":"3.868","a":"28145.20","A":"6.887","T":1680652700430,
    # "E":1680652700435}}
    ts, rec = decode_capture_line(_line(USDM_2023, 1))
    assert ts == 1_680_652_700_423_575_000
    assert rec == BookTicker("BTCUSDT", 2710246762461, 2_814_510_000_000, 386_800_000,
                             2_814_520_000_000, 688_700_000, 1_680_652_700_435_000_000,
                             1_680_652_700_430_000_000)


def test_real_usdm_2023_trade_and_mark_price_lines():
    # {"e":"trade","E":1680652700455,"T":1680652700452,"s":"BTCUSDT","t":3535186032,
    #  "p":"28145.10","q":"0.002","X":"MARKET","m":true}
    assert decode_capture_line(_line(USDM_2023, 2))[1] == Trade(
        "BTCUSDT", 3535186032, 2_814_510_000_000, 200_000, True, 1_680_652_700_455_000_000,
        1_680_652_700_452_000_000)
    # {"e":"markPriceUpdate","E":1680652701000,"s":"BTCUSDT","p":"28147.27373413",
    #  "P":"28142.15563565","i":"28159.75642857","r":"0.00002754","T":1680652800000}
    assert decode_capture_line(_line(USDM_2023, 51))[1] == MarkPrice(
        "BTCUSDT", 2_814_727_373_413, 2_815_975_642_857, 2_814_215_563_565, 2_754,
        1_680_652_701_000_000_000, 1_680_652_800_000_000_000)


def test_real_usdm_2023_snapshot_line_has_no_stream_and_no_symbol():
    # 1680652700599351 {"lastUpdateId": 2710246765483, "E": 1680652700590, "T": 1680652700580,
    #  "bids": [["28145.10", "3.818"], ["28145.00", "0.413"], ...], "asks": [..., ["28255.50",
    #  "0.131"]]}   (1000 levels a side)
    ts, snap = decode_capture_line(_line(USDM_2023, 17))
    assert isinstance(snap, DepthSnapshot) and snap.symbol == ""
    assert (ts, snap.last_update_id, snap.ts_event) == (
        1_680_652_700_599_351_000, 2710246765483, 1_680_652_700_590_000_000)
    assert (len(snap.bids), len(snap.asks)) == (1000, 1000)
    assert snap.bids[:2].tolist() == [[2_814_510_000_000, 381_800_000],
                                      [2_814_500_000_000, 41_300_000]]
    assert snap.asks[-1].tolist() == [2_825_550_000_000, 13_100_000]


def test_real_usdm_2024_depth_line_with_a_nanosecond_stamp():
    # 1721347020984480942 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate",
    # "E":1721347022504,"T":1721347022504,"s":"BTCUSDT","U":4984028367545,"u":4984028370730,
    # "pu":4984028367494,"b":[["1000.00","569.567"],["5000.00","2.024"],...
    ts, d = decode_capture_line(_line(USDM_2024, 1))
    assert ts == 1_721_347_020_984_480_942
    assert (d.first_update_id, d.final_update_id, d.prev_final_update_id) == (
        4984028367545, 4984028370730, 4984028367494)
    assert d.ts_event == d.ts_transaction == 1_721_347_022_504_000_000
    assert d.bids[:2].tolist() == [[100_000_000_000, 56_956_700_000], [500_000_000_000,
                                                                       202_400_000]]


def test_real_spot_lines_have_no_pu_and_no_event_time_on_book_ticker():
    # {"e":"depthUpdate","E":1723161255208,"s":"BTCUSDT","U":50093239189,"u":50093239202,
    #  "b":[["61737.63000000","0.00000000"],["61730.17000000","0.00000000"],
    #  ["56854.58000000","0.00000000"]],"a":[["61837.64000000","1.54698000"], ... 9 levels]}
    _, d = decode_capture_line(_line(SPOT, 1))
    assert (d.first_update_id, d.final_update_id, d.prev_final_update_id) == (
        50093239189, 50093239202, -1)
    assert (d.ts_event, d.ts_transaction) == (1_723_161_255_208_000_000, 0)
    bids, asks = _levels(d)
    assert bids == [(6_173_763_000_000, 0), (6_173_017_000_000, 0), (5_685_458_000_000, 0)]
    assert len(asks) == 9 and asks[0] == (6_183_764_000_000, 154_698_000)
    # {"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000",
    #  "a":"61837.64000000","A":"1.54698000"}
    assert decode_capture_line(_line(SPOT, 3))[1] == BookTicker(
        "BTCUSDT", 50093239212, 6_183_763_000_000, 378_826_000, 6_183_764_000_000, 154_698_000,
        0, 0)
    # {"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000",
    #  "q":"0.02000000","T":1723161255342,"m":true,"M":true}
    assert decode_capture_line(_line(SPOT, 4))[1] == Trade(
        "BTCUSDT", 3735683259, 6_183_763_000_000, 2_000_000, True, 1_723_161_255_343_000_000,
        1_723_161_255_342_000_000)


def test_real_cryptofeed_websocket_lines():
    ws = CRYPTOFEED / "BINANCE_FUTURES.ws.1.0"
    assert decode_capture_line(_line(ws, 1)) is None  # "wss://fstream... <-> 1626992740.17"
    # 1626992741.081672: {"stream":"sushiusdt@depth@100ms","data":{"e":"depthUpdate",
    # "E":1626992741037,"T":1626992741024,"s":"SUSHIUSDT","U":600859599090,"u":600859600917,
    # "pu":600859598061,"b":[["7.5040","813"],["7.6090","0"],["7.6110","2"]],
    # "a":[["7.6150","1563"],["7.6220","3284"]]}}
    ts, d = decode_capture_line(_line(ws, 3))
    assert ts == 1_626_992_741_081_672_000
    assert (d.symbol, d.first_update_id, d.final_update_id, d.prev_final_update_id) == (
        "SUSHIUSDT", 600859599090, 600859600917, 600859598061)
    assert _levels(d) == ([(750_400_000, 81_300_000_000), (760_900_000, 0),
                           (761_100_000, 200_000_000)],
                          [(761_500_000, 156_300_000_000), (762_200_000, 328_400_000_000)])
    # 1626992742.2895691: {"stream":"ctkusdt@kline_1m","data":{"e":"kline","E":1626992741424,
    # "s":"CTKUSDT","k":{"t":1626992700000,"T":1626992759999,"s":"CTKUSDT","i":"1m",...,
    # "o":"1.01000","c":"1.01100","h":"1.01100","l":"1.01000","v":"3917","n":48,"x":false,
    # "q":"3957.89900","V":"1729","Q":"1748.01900","B":"0"}}}
    ts, k = decode_capture_line(_line(ws, 16))
    assert ts == 1_626_992_742_289_569_100
    assert k == Kline("CTKUSDT", "1m", 1_626_992_700_000_000_000, 1_626_992_759_999_000_000,
                      101_000_000, 101_100_000, 101_000_000, 101_100_000, 391_700_000_000,
                      395_789_900_000, 48, 172_900_000_000, 174_801_900_000, False,
                      1_626_992_741_424_000_000)
    # {"e":"aggTrade","E":1626992741575,"a":16599292,"s":"CTKUSDT","p":"1.01100","q":"10",
    #  "f":23961322,"l":23961322,"T":1626992741421,"m":false}
    assert decode_capture_line(_line(ws, 22))[1] == AggTrade(
        "CTKUSDT", 16599292, 101_100_000, 1_000_000_000, 23961322, 23961322, False,
        1_626_992_741_575_000_000, 1_626_992_741_421_000_000)


def test_real_cryptofeed_rest_lines_take_the_symbol_from_the_url():
    # https://fapi.binance.com/fapi/v1/depth?symbol=SUSHIUSDT&limit=1000 -> 1626992741.301402:
    # {"lastUpdateId":600859605926,"E":1626992741264,"T":1626992741261,
    #  "bids":[["7.6110","6"],["7.6080","161"],...
    ts, snap = decode_capture_line(_line(CRYPTOFEED / "BINANCE_FUTURES.http.0.0", 1))
    assert (ts, snap.symbol, snap.last_update_id) == (1_626_992_741_301_402_000, "SUSHIUSDT",
                                                      600859605926)
    assert snap.bids[:2].tolist() == [[761_100_000, 600_000_000], [760_800_000, 16_100_000_000]]


def test_real_exchange_info_of_july_2021():
    # https://fapi.binance.com/fapi/v1/exchangeInfo -> 1626992740.175661: {"timezone":"UTC",
    # "serverTime":1626858243909, ... "symbols":[{"symbol":"BTCUSDT", ... "deliveryDate":
    # 4133404800000, ... "filters":[{"minPrice":"556.72","maxPrice":"1000000",
    # "filterType":"PRICE_FILTER","tickSize":"0.01"}, ... {"notional":"5", ...
    decoder = Decoder()
    got = list(read_capture(require(CRYPTOFEED / "BINANCE_FUTURES.0"), decoder))
    assert decoder.skipped == 1  # the "configuration: {...}" line
    (ts, info), = got
    assert isinstance(info, ExchangeInfo) and ts == 1_626_992_740_175_661_000
    assert info.ts_server == 1_626_858_243_909_000_000 and len(info.symbols) == 122
    btc = next(s for s in info.symbols if s.symbol == "BTCUSDT")
    assert (btc.tick_size, btc.min_price, btc.max_price, btc.min_notional) == (
        1_000_000, 55_672_000_000, 100_000_000_000_000, 500_000_000)
    assert btc.ts_delivery == 4_133_404_800_000_000_000


def test_equal_prices_in_other_spellings_give_the_same_ticks():
    a = decode_message(b'{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"pu":0,'
                       b'"b":[["28145.10","3.8180"]],"a":[]}')
    b = decode_message(b'{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"pu":0,'
                       b'"b":[["28145.1","3.818"]],"a":[]}')
    assert a.levels.tolist() == b.levels.tolist() == [[2_814_510_000_000, 381_800_000]]


# --------------------------------------------------------------------------- the decoder


@pytest.mark.parametrize(("raw", "reason"), [
    (b'{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate"', Reason.JSON),
    (b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1,"s":"X","t":1,"p":"1",'
     b'"q":"NaN","m":true}}', Reason.DECIMAL),
    (b'{"stream":"btcusdt@trade","data":{"e":"trade","E":"1","T":1,"s":"X","t":1,"p":"1",'
     b'"q":"1","m":true}}', Reason.SCHEMA),
    (b'{"e":"depthUpdate","E":1,"s":"X","U":5,"u":4,"b":[],"a":[]}', Reason.SCHEMA),
    (b'{"e":"depthUpdate","E":1,"s":"X","U":1,"u":4,"b":[["0","1"]],"a":[]}', Reason.DECIMAL),
    (b'{"e":"depthUpdate","E":-1,"s":"X","U":1,"u":4,"b":[],"a":[]}', Reason.SCHEMA),
    (b'{"e":"depthUpdate","E":9999999999999,"s":"X","U":1,"u":4,"b":[],"a":[]}', Reason.SCHEMA),
    (b'{"hello":1}', Reason.SCHEMA),
])
def test_malformed_messages_raise_typed_errors_with_a_reason(raw, reason):
    with pytest.raises(WireError) as info:
        decode_message(raw)
    assert info.value.reason is reason
    assert isinstance(info.value, DataError)


@pytest.mark.parametrize("raw", [
    b'{"stream":"btcusdt@depth20@100ms","data":{"e":"depthUpdate"}}',
    b'{"stream":"!markPrice@arr","data":[]}', b'{"e":"24hrTicker","E":1}',
])
def test_unsupported_streams(raw):
    d = Decoder()
    assert d.message(raw) is None
    assert d.total_malformed == 0 and d.unsupported.total() == 1


@pytest.mark.parametrize(("line", "reason"), [
    (b"hello world\n", Reason.LINE), (b"{}\n", Reason.LINE),
    (b"12345 {\"e\":\"trade\"}\n", Reason.TIMESTAMP),
    (b"16806527004235750000000 {\"e\":\"trade\"}\n", Reason.TIMESTAMP),
    (b"1626992741.0a: {\"e\":\"trade\"}\n", Reason.TIMESTAMP),
    (b"https://fapi.binance.com/fapi/v1/depth?symbol=X no arrow\n", Reason.LINE),
])
def test_malformed_capture_lines(line, reason):
    with pytest.raises(WireError) as info:
        decode_capture_line(line)
    assert info.value.reason is reason


def test_decoder_counts_every_input_once_and_never_raises(caplog):
    d = Decoder("test")
    good = _line(USDM_2023, 1)
    lines = [good, b"\n", b"garbage\n", good[:40] + b"\n", b"wss://x <-> 1\n", good]
    got = [d.line(line, i) for i, line in enumerate(lines, 1)]
    assert [g is not None for g in got] == [True, False, False, False, False, True]
    assert (d.records["BookTicker"], d.skipped, d.total_malformed) == (2, 2, 2)
    assert d.seen == d.records.total() + d.total_malformed + d.unsupported.total() + d.skipped
    assert "test:3" in caplog.text and "reason=line" in caplog.text


def _write_gz(path: Path, lines: list[bytes]) -> Path:
    with gzip.open(path, "wb") as fh:
        fh.writelines(lines)
    return path


@pytest.mark.parametrize("snapshot_first", [True, False])
def test_a_symbol_less_snapshot_takes_the_symbol_of_its_capture(tmp_path, snapshot_first):
    snap = b'1680652700599351 {"lastUpdateId":5,"bids":[["1","1"]],"asks":[["2","1"]]}\n'
    ticker = _line(USDM_2023, 1)  # BTCUSDT
    lines = [snap, ticker] if snapshot_first else [ticker, snap]
    got = [r for _, r in read_capture(_write_gz(tmp_path / "c.gz", lines))]
    kinds = ["DepthSnapshot", "BookTicker"] if snapshot_first else ["BookTicker", "DepthSnapshot"]
    assert [type(r).__name__ for r in got] == kinds
    assert [r.symbol for r in got] == ["BTCUSDT", "BTCUSDT"]


def test_a_symbol_less_snapshot_in_a_capture_of_two_symbols_is_rejected(tmp_path):
    eth = _line(RAW / "binance_usdm" / "ethusdt_20240718.gz", 2)
    snap = b'1680652700599351 {"lastUpdateId":5,"bids":[],"asks":[]}\n'
    decoder = Decoder()
    got = list(read_capture(_write_gz(tmp_path / "c.gz", [_line(USDM_2023, 1), eth, snap]),
                            decoder))
    assert len(got) == 2 and decoder.malformed == {Reason.SYMBOL: 1}
    assert decoder.records.total() == 2


@pytest.mark.parametrize(("content", "needle"), [
    (None, "no such capture file"), (b"not gzip at all", "not a gzip file"),
    (gzip.compress(b"junk\nmore junk\n"), "no Binance capture line"),
    (gzip.compress(b"1680652700423575 {}\n" * 2000)[:-30], "cannot read the capture"),
])
def test_bad_capture_files_raise_data_errors_naming_the_file(tmp_path, content, needle):
    path = tmp_path / "bad.gz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as info:
        list(read_capture(path))
    assert needle in str(info.value) and str(path) in str(info.value)


def test_a_plain_text_capture_is_read_too(tmp_path):
    path = tmp_path / "capture.txt"
    path.write_bytes(_line(USDM_2023, 1) + _line(USDM_2023, 2))
    assert [type(r).__name__ for _, r in read_capture(path)] == ["BookTicker", "Trade"]

