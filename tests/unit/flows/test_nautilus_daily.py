"""The Nautilus daily flow: §17.2's task order, the champion check, HIBERNATE, capital restore."""

from __future__ import annotations

import pytest
import yaml

from dolphin.core.config import DolphinConfig
from dolphin.core.errors import ConfigError, DataError
from dolphin.flows.hooks import store_for
from dolphin.flows.nautilus_daily import STATE_KEY, capital_from, day_slice, nautilus_daily_flow
from dolphin.store.features import set_posture
from dolphin.store.schema import HEARTBEAT, PNL_BLUE, STATE_BLUE, decode_value, encode_value
from tests.kit.scans import random_scans

INITIAL = DolphinConfig().alpha.initial_capital


@pytest.fixture(scope="module")
def scans_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("nd") / "scans.parquet"
    random_scans(2 * 1440, 4, seed=3).to_parquet(path)
    return path


def read(url: str, name: str, key: str):
    raw = store_for(url).map(name).get(key)
    return None if raw is None else decode_value(raw).data


def test_capital_comes_from_the_ledger_then_the_state_then_the_config():
    assert capital_from(None, None, INITIAL) == (INITIAL, "initial")
    assert capital_from(None, {"capital": 26_000.0}, INITIAL) == (26_000.0, "store")
    assert capital_from(None, {"capital": None}, INITIAL) == (INITIAL, "initial")
    assert capital_from(None, {"capital": -1.0}, INITIAL) == (INITIAL, "initial")


def test_capital_from_a_ledger_is_its_fold(tmp_path):
    from dolphin.ledger.chain import Ledger

    path = tmp_path / "ledger.db"
    with Ledger(path) as led:
        led.append("CONFIG", {"config_id": "x", "initial_capital": 25_000.0}, 1)
        led.append("CAPITAL", {"balance": 25_400.0, "reason": "fill"}, 2)
    capital, source = capital_from(str(path), {"capital": 1.0}, INITIAL)
    assert capital == 25_400.0 and source.startswith("ledger:")


def test_day_slice_keeps_one_utc_day(scans_file):
    import pandas as pd

    scans = pd.read_parquet(scans_file)
    day = day_slice(scans, "2024-01-02")
    assert len(day) == 1440 and str(day["timestamp"].iloc[0].date()) == "2024-01-02"
    assert day_slice(scans, None) is scans
    with pytest.raises(DataError, match="date"):
        day_slice(scans, "2030-01-01")


def test_dry_run_checks_everything_but_runs_no_engine(harness, store_url, scans_file, tmp_path):
    store_for(store_url).map(STATE_BLUE).put(STATE_KEY, encode_value({"capital": 26_500.0}, 1))
    out = nautilus_daily_flow(str(scans_file), str(tmp_path), store_url=store_url,
                              date="2024-01-01", dry_run=True)
    assert out["skipped"] == "dry run" and out["capital"] == 26_500.0
    assert out["capital_source"] == "store" and out["bars"] == 1440
    assert read(store_url, PNL_BLUE, "2024-01-01") is None  # a dry run writes no result
    assert read(store_url, HEARTBEAT, "prefect:dolphin-nautilus-daily")["state"] == "RUNNING"


def test_hibernate_skips_the_engine_but_writes_the_result(harness, store_url, scans_file,
                                                         tmp_path):
    set_posture(store_for(store_url), {"posture": "HIBERNATE", "rm": 0.1, "sensors": {}}, 1)
    out = nautilus_daily_flow(str(scans_file), str(tmp_path), store_url=store_url,
                              date="2024-01-02")
    assert out["skipped"] == "HIBERNATE" and out["posture"] == "HIBERNATE"
    assert read(store_url, PNL_BLUE, "2024-01-02")["skipped"] == "HIBERNATE"
    assert read(store_url, STATE_BLUE, STATE_KEY)["capital"] == INITIAL
    assert not (tmp_path / "out").exists()


def test_a_drifted_config_fails_before_the_engine_and_faults(harness, store_url, scans_file,
                                                            tmp_path):
    cfg = tmp_path / "drift.yml"
    cfg.write_text(yaml.safe_dump({"alpha": {"max_hold_bars": 121}}))
    with pytest.raises(ConfigError, match="not the declared champion"):
        nautilus_daily_flow(str(scans_file), str(tmp_path), store_url=store_url,
                            config=str(cfg))
    beat = read(store_url, HEARTBEAT, "prefect:dolphin-nautilus-daily")
    assert beat["state"] == "FAULTED" and "not the declared champion" in beat["reason"]
    assert not (tmp_path / "scans.parquet").exists()


def test_a_day_runs_through_the_engine_from_the_restored_capital(harness, store_url,
                                                                 scans_file, tmp_path):
    store_for(store_url).map(STATE_BLUE).put(STATE_KEY, encode_value({"capital": 30_000.0}, 1))
    out = nautilus_daily_flow(str(scans_file), str(tmp_path), store_url=store_url,
                              date="2024-01-01", forewarner=False)
    assert out["skipped"] is None and out["capital_start"] == 30_000.0
    assert out["capital"] == pytest.approx(30_000.0 + out["pnl"])
    assert (tmp_path / "out" / "trades.parquet").exists()
    assert read(store_url, PNL_BLUE, "2024-01-01")["pnl"] == out["pnl"]
    assert read(store_url, STATE_BLUE, STATE_KEY)["capital"] == out["capital"]
