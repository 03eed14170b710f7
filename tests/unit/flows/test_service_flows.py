"""The MC-Forewarner, ExF and EsoF flows publish what the pure code computes, and beat."""

from __future__ import annotations

from dolphin.core.config import DolphinConfig
from dolphin.flows.hooks import store_for
from dolphin.risk.mc_models import assess, load
from dolphin.store.schema import (
    ESOF_LATEST,
    EXF_LATEST,
    FEATURES,
    HEARTBEAT,
    MC_STATUS,
    decode_value,
)
from tests.kit.exf_servers import BinanceReplayServer, DeribitReplayServer, FearGreedReplayServer


def feature(url: str, key: str):
    raw = store_for(url).map(FEATURES).get(key)
    return None if raw is None else decode_value(raw).data


def beat(url: str, name: str) -> dict:
    return decode_value(store_for(url).map(HEARTBEAT).get(name)).data


def test_mc_flow_writes_the_champions_assessment(harness, store_url):
    from dolphin.flows.mc import mc_forewarner_flow

    out = mc_forewarner_flow(store_url=store_url)
    want = assess(load(None), DolphinConfig()).as_dict()
    stored = feature(store_url, MC_STATUS)
    assert stored == out
    assert stored["config_id"] == DolphinConfig().id
    assert stored["status"] == want["status"] in ("OK", "ORANGE", "RED")
    assert stored["catastrophic_probability"] == want["catastrophic_probability"]
    assert beat(store_url, "prefect:dolphin-mc-forewarner")["state"] == "RUNNING"


def test_esof_flow_publishes_the_features_and_the_services_heartbeat(harness, store_url):
    from dolphin.flows.factors import esof_refresh_flow

    out = esof_refresh_flow(store_url=store_url)
    assert feature(store_url, ESOF_LATEST) == out["latest"]
    assert out["latest"]["source"] == "ephem"
    assert beat(store_url, "esof-refresh")["state"] == "RUNNING"
    assert beat(store_url, "prefect:dolphin-esof-refresh")["state"] == "RUNNING"


def test_exf_flow_fetches_once_and_publishes(harness, store_url):
    from dolphin.flows.factors import exf_refresh_flow

    with BinanceReplayServer() as b, DeribitReplayServer() as d, FearGreedReplayServer() as f:
        out = exf_refresh_flow(store_url=store_url, binance_url=b.url, deribit_url=d.url,
                               fng_url=f.url)
        assert b.hits and d.hits and f.hits
    published = feature(store_url, EXF_LATEST)
    assert published == out["latest"]
    assert set(published["factors"]) == {"funding_btc", "dvol_btc", "fng", "taker"}
    assert beat(store_url, "exf-refresh")["component"] == "exf-refresh"
    assert beat(store_url, "prefect:dolphin-exf-refresh")["state"] == "RUNNING"
