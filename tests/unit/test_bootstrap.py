"""bootstrap(): the one place that wires store, clock, posture source, forewarner and venue."""

from __future__ import annotations

import pytest

from dolphin.bootstrap import bootstrap
from dolphin.core.clock import LiveClock, SimulatedClock
from dolphin.core.config import DolphinConfig
from dolphin.core.errors import ConfigError
from dolphin.store.memory import MemoryStore

KEYS = {"BINANCE_FUTURES_TESTNET_API_KEY": "k-123", "BINANCE_FUTURES_TESTNET_API_SECRET": "s-456"}


def test_the_embedded_runtime_reads_turtle_until_asked_otherwise(capsys):
    rt = bootstrap(DolphinConfig(), clock="sim", forewarner=False)
    try:
        assert isinstance(rt.store, MemoryStore) and isinstance(rt.clock, SimulatedClock)
        assert rt.posture is not None and rt.posture() is None  # nothing published: TURTLE
        assert rt.mc_gate is None and rt.venue == "paper" and rt.venue_configs is None
        assert "reads TURTLE" in capsys.readouterr().out
    finally:
        rt.close()
    rt = bootstrap(DolphinConfig(), unsupervised=True, forewarner=False)
    assert rt.posture is None and isinstance(rt.clock, LiveClock)
    rt.close()


def test_the_forewarner_gate_is_wired_by_default():
    rt = bootstrap(DolphinConfig())
    try:
        assert rt.mc_gate.model_id == rt.mc_gate.models.meta["version"]
    finally:
        rt.close()


@pytest.mark.parametrize("kw", [{"clock": "wall"}, {"venue": "ftx"}, {"store": "redis://x"}])
def test_a_wrong_choice_is_a_config_error(kw):
    with pytest.raises(ConfigError):
        bootstrap(DolphinConfig(), forewarner=False, **kw)


def test_a_binance_venue_needs_its_keys_and_builds_masked_configs(monkeypatch):
    for k in KEYS:
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(ConfigError, match="BINANCE_FUTURES_TESTNET_API_KEY"):
        bootstrap(DolphinConfig(), forewarner=False, venue="binance-testnet")
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)
    rt = bootstrap(DolphinConfig(), forewarner=False, venue="binance-testnet")
    try:
        data_cfg, exec_cfg = rt.venue_configs
        assert "k-123" not in repr(data_cfg) and "s-456" not in repr(exec_cfg)
    finally:
        rt.close()
