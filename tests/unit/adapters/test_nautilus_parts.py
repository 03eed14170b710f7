"""Instruments from exchangeInfo, the trade logger, round trips, parity report, Binance config."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest

from dolphin.adapters.binance.config import binance_client_configs
from dolphin.adapters.nautilus.instruments import (
    decimals_needed,
    load_exchange_info,
    make_instrument,
)
from dolphin.adapters.nautilus.parity import parity_report
from dolphin.core.errors import ConfigError
from dolphin.ledger.tradelog import RoundTrips, TradeLogger
from tests.kit.paths import SHARED_DATA, require

EXCHANGE_INFO = SHARED_DATA / "raw_ws/cryptofeed_binance_futures/BINANCE_FUTURES.0"


def test_instrument_takes_tick_and_lot_from_real_exchange_info():
    specs = load_exchange_info(require(EXCHANGE_INFO))
    btc = make_instrument("BTCUSDT", specs["BTCUSDT"])
    assert str(btc.price_increment) == "0.01" and str(btc.size_increment) == "0.001"
    assert btc.id.value == "BTCUSDT-PERP.BINANCE" and float(btc.taker_fee) == 0.0005


def test_price_precision_is_raised_to_cover_the_data_and_parity_refines_lots():
    specs = load_exchange_info(require(EXCHANGE_INFO))
    doge = make_instrument("DOGEUSDT", specs["DOGEUSDT"], data_price_precision=7, parity=True)
    assert doge.price_precision == 7 and doge.size_precision == 8
    assert decimals_needed(np.array([0.0612345, 1.5])) == 7


def test_zero_padded_steps_keep_precision_and_increment_consistent():
    # exchangeInfo writes steps like "0.00010": the precision is 4, not 5.
    spec = {"baseAsset": "XYZ", "filters": [
        {"filterType": "PRICE_FILTER", "tickSize": "0.00010"},
        {"filterType": "LOT_SIZE", "stepSize": "0.10", "minQty": "0.10"},
    ]}
    inst = make_instrument("XYZUSDT", spec, data_price_precision=4)
    assert inst.price_precision == inst.price_increment.precision == 4
    assert inst.size_precision == inst.size_increment.precision == 1


def test_symbol_missing_from_exchange_info_gets_a_stand_in():
    inst = make_instrument("NEWUSDT", None, data_price_precision=4)
    assert inst.price_precision == 4 and str(inst.size_increment) == "1"


def test_round_trips_pair_fills_and_net_commissions():
    rt = RoundTrips()
    assert rt.on_fill("X", -1, 2.0, 100.0, 0.1, 1) is None
    assert rt.unrealized("X", 90.0) == pytest.approx(20.0)
    done = rt.on_fill("X", 1, 2.0, 90.0, 0.09, 2, bar=7, reason="FIXED_TP")
    assert done.pnl == pytest.approx(20.0 - 0.19) and done.exit_bar == 7
    assert rt.open == {} and len(rt.records()) == 1


def test_trade_logger_writes_settings_and_whole_csv_lines(tmp_path):
    log = TradeLogger(tmp_path, {"config_id": "abc"}, session="s1")
    log.log(ts_ns=1, event="FILL", asset="BTCUSDT", side="SELL", qty=0.5, price=1.0)
    log.log(ts_ns=2, event="FILL", asset="BTCUSDT", side="BUY", qty=0.5, price=0.9)
    log.close()
    assert json.loads((tmp_path / "settings_s1.json").read_text())["config_id"] == "abc"
    rows = list(csv.DictReader((tmp_path / "trades_s1.csv").open()))
    assert [r["side"] for r in rows] == ["SELL", "BUY"]
    with pytest.raises(ValueError, match="unknown trade log fields"):
        TradeLogger(tmp_path, {}, session="s2").log(bogus=1)


def _trades(pnls, fees=0.0, edge=0.0):
    n = len(pnls)
    return pd.DataFrame({
        "entry_bar": np.arange(n) * 10, "exit_bar": np.arange(n) * 10 + 5,
        "asset": ["A"] * n, "direction": ["SHORT"] * n, "entry_price": 100.0,
        "exit_price": 99.0, "notional": 1000.0, "entry_fee": fees, "exit_fee": fees,
        "ob_edge_pct": edge, "pnl": pnls,
    })


def test_parity_report_identical_and_explained():
    a = _trades([10.0, -5.0])
    assert parity_report(a, a.copy(), "a", "b")["identical"]
    b = _trades([9.0, -6.0], fees=0.5)
    rep = parity_report(a, b, "a", "b")
    assert not rep["identical"] and rep["explained"]["fees"] == pytest.approx(-2.0)
    c = _trades([10.0])
    rep = parity_report(a, c, "a", "c")
    assert rep["matched"] == 1 and len(rep["only_a"]) == 1


def test_binance_configs_take_keys_from_environment_only():
    env = {"BINANCE_FUTURES_TESTNET_API_KEY": "k1", "BINANCE_FUTURES_TESTNET_API_SECRET": "s1"}
    data_cfg, exec_cfg = binance_client_configs(testnet=True, env=env)
    assert data_cfg.testnet and exec_cfg.testnet and exec_cfg.api_key == "k1"
    assert data_cfg.account_type.value == "USDT_FUTURES"
    with pytest.raises(ConfigError, match="BINANCE_FUTURES_TESTNET_API_KEY"):
        binance_client_configs(testnet=True, env={})


def test_paper_command_never_prints_the_keys(monkeypatch, capsys):
    from dolphin.cli import main

    monkeypatch.setenv("BINANCE_FUTURES_TESTNET_API_KEY", "KEY-SENTINEL")
    monkeypatch.setenv("BINANCE_FUTURES_TESTNET_API_SECRET", "SECRET-SENTINEL")
    assert main(["paper", "--venue", "binance", "--testnet", "--research"]) == 0
    out = capsys.readouterr()
    assert "testnet" in out.out
    assert "SENTINEL" not in out.out + out.err


def test_an_asset_without_a_real_close_in_the_span_gets_no_quotes_and_no_error():
    # the last days of a set where one symbol's data has ended: its column is all NaN
    from dolphin.adapters.nautilus.instruments import make_instrument
    from dolphin.adapters.nautilus.scan_feed import scan_quotes
    from tests.kit.scans import build_scans

    n = 30
    scans = build_scans({"AAAUSDT": np.linspace(100.0, 101.0, n), "ENDEDUSDT": np.full(n, np.nan)})
    instruments = {s: make_instrument(s, None) for s in ("AAAUSDT", "ENDEDUSDT")}
    quotes = scan_quotes(scans, instruments)
    assert quotes["ENDEDUSDT"] == []
    assert len(quotes["AAAUSDT"]) == n
