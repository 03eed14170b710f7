"""Exchange keys never appear in repr/str/log output of what holds them (fake keys only)."""

from __future__ import annotations

import logging

import pytest

from dolphin.adapters.binance.config import binance_client_configs

KEY, SECRET = "FAKEKEY-0f9e8d7c6b5a", "FAKESECRET-1a2b3c4d5e6f"


@pytest.mark.parametrize("testnet", [True, False])
def test_binance_configs_mask_the_keys_everywhere_they_print(testnet, caplog):
    names = (("BINANCE_FUTURES_TESTNET_API_KEY", "BINANCE_FUTURES_TESTNET_API_SECRET") if testnet
             else ("BINANCE_FUTURES_API_KEY", "BINANCE_FUTURES_API_SECRET"))
    pair = binance_client_configs(testnet=testnet, env=dict(zip(names, (KEY, SECRET),
                                                                 strict=True)))
    log = logging.getLogger("test.secrets")
    with caplog.at_level(logging.INFO):
        for cfg in pair:
            log.info("config %s %r", cfg, cfg)
            log.info(f"config {cfg} {cfg!r}")
    texts = [repr(pair), str(pair), *(repr(c) for c in pair), *(str(c) for c in pair),
             *(f"{c}" for c in pair), caplog.text]
    for text in texts:
        assert KEY not in text and SECRET not in text
    assert "api_key='***'" in repr(pair[0]) and "api_secret='***'" in str(pair[1])
    data, exe = pair
    assert data.api_key == KEY and exe.api_secret == SECRET  # the clients can still sign


def test_masked_configs_are_still_the_nautilus_config_types():
    from nautilus_trader.adapters.binance.config import (
        BinanceDataClientConfig,
        BinanceExecClientConfig,
    )

    env = {"BINANCE_FUTURES_TESTNET_API_KEY": KEY, "BINANCE_FUTURES_TESTNET_API_SECRET": SECRET}
    data, exe = binance_client_configs(testnet=True, env=env)
    assert isinstance(data, BinanceDataClientConfig) and isinstance(exe, BinanceExecClientConfig)
    assert data.id  # Nautilus derives ids from the JSON, which still works


def test_the_paper_command_never_prints_the_keys(monkeypatch, capsys, caplog):
    from dolphin.cli import main

    monkeypatch.setenv("BINANCE_FUTURES_TESTNET_API_KEY", KEY)
    monkeypatch.setenv("BINANCE_FUTURES_TESTNET_API_SECRET", SECRET)
    with caplog.at_level(logging.DEBUG):
        assert main(["paper", "--venue", "binance", "--testnet", "--research"]) == 0
    out = capsys.readouterr()
    for text in (out.out, out.err, caplog.text):
        assert KEY not in text and SECRET not in text
