"""The mesh plan: options checked and resolved, services in the Bible's order, what is not
monitored said out loud."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dolphin.core.errors import ConfigError
from dolphin.mesh.plan import SERVICES, build_plan, read_options, write_options

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "data" / "sample" / "bars_1m_sample.parquet"


def _opts(**kw):
    return {"store": "memory", "replay": str(SAMPLE), "speed": None, **kw}


def test_embedded_store_gets_a_loopback_url_and_the_file_is_written(tmp_path: Path):
    opts = write_options(tmp_path, _opts())
    assert opts["embedded"] is True
    assert opts["store_url"] == f"tcp://127.0.0.1:{opts['store_port']}"
    assert opts["speed"] == 60.0 and Path(opts["replay"]).is_absolute()
    assert read_options(tmp_path) == json.loads((tmp_path / "options.json").read_text())


def test_plan_order_is_the_bibles_with_the_trader_last(tmp_path: Path):
    names = [s.name for s in build_plan(_opts(), tmp_path)]
    assert names == ["store", "acb", "obf", "exf", "esof", "scan", "watchdog", "mc", "trader"]
    assert names == [s for s in SERVICES if s in names]
    with_prefect = [s.name for s in build_plan(_opts(prefect=True), tmp_path / "p")]
    assert with_prefect[:3] == ["store", "prefect", "flows"] and with_prefect[-1] == "trader"
    hz = [s.name for s in build_plan(_opts(store="hazelcast://127.0.0.1:5801"), tmp_path / "h")]
    assert "store" not in hz and hz[0] == "acb"


def test_every_service_runs_the_mesh_service_command(tmp_path: Path):
    for spec in build_plan(_opts(), tmp_path):
        assert spec.argv[1:5] == ["-m", "dolphin", "mesh", "service"]
        assert spec.argv[5] == spec.name and spec.argv[-1] == str(tmp_path)


def test_without_sources_exf_is_not_watched_and_the_notes_say_why(tmp_path: Path):
    opts = write_options(tmp_path, _opts())
    assert "exf" not in opts["watched"] and "obf" in opts["watched"]
    assert any(n.startswith("ExF: no source") for n in opts["notes"])
    assert any(n.startswith("OBF: no order-book captures") for n in opts["notes"])
    with_exf = write_options(tmp_path / "x", _opts(exf_base={"binance": "http://127.0.0.1:1"}))
    assert "exf" in with_exf["watched"]


@pytest.mark.parametrize(("kw", "match"), [
    ({"replay": "/nonexistent/bars.parquet"}, "bars.parquet: bar file not found"),
    ({"speed": -1}, "--speed must be positive"),
    ({"store": "redis://x"}, "redis://x"),
    ({"config": "/nonexistent/c.yml"}, "--config /nonexistent/c.yml: file not found"),
    ({"captures": ["/nonexistent/cap.gz"]}, "cap.gz"),
])
def test_bad_options_are_refused_naming_the_value(tmp_path: Path, kw, match):
    with pytest.raises(ConfigError, match=match):
        write_options(tmp_path, _opts(**kw))
    assert not (tmp_path / "options.json").exists()


def test_binance_testnet_is_validated_then_refused_as_unreachable(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("BINANCE_FUTURES_TESTNET_API_KEY", raising=False)
    monkeypatch.delenv("BINANCE_FUTURES_TESTNET_API_SECRET", raising=False)
    with pytest.raises(ConfigError, match="BINANCE_FUTURES_TESTNET_API_KEY"):
        write_options(tmp_path, _opts(exchange="binance-testnet"))
    monkeypatch.setenv("BINANCE_FUTURES_TESTNET_API_KEY", "k" * 64)
    monkeypatch.setenv("BINANCE_FUTURES_TESTNET_API_SECRET", "s" * 64)
    with pytest.raises(ConfigError, match="cannot be reached from this machine") as err:
        write_options(tmp_path, _opts(exchange="binance-testnet"))
    assert "s" * 64 not in str(err.value)  # the secret never reaches a message


def test_missing_options_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="no mesh options here"):
        read_options(tmp_path)


def test_a_duration_setting_must_be_a_positive_number():
    from dolphin.commands.mesh import _settings

    assert _settings(["watchdog_period_s=2", "metrics=false"]) == {"watchdog_period_s": 2,
                                                                   "metrics": False}
    for bad in ("watchdog_period_s=0", 'heartbeat_s="1"', "restart_backoff_s=true"):
        with pytest.raises(ConfigError, match="must be a number > 0"):
            _settings([bad])
    with pytest.raises(ConfigError, match="KEY one of"):
        _settings(["nope=1"])
