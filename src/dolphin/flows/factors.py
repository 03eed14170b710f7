"""``exf_refresh_flow`` and ``esof_refresh_flow``: one tick of the ExF / EsoF service.

The mesh runs both services continuously; these flows are the scheduled refresh of §16.4 for a
deployment without them (or a catch-up after a gap): start the service on the live clock, tick
once, publish into ``DOLPHIN_FEATURES["exf_latest"]`` / ``["esof_latest"]`` and write the
refresh's own heartbeat (``exf-refresh`` / ``esof-refresh``: never the mesh services'). A
factor that cannot be fetched is published stale (the service's rules), which the ACB and the
survival controller read as absent; the flow still completes.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from dolphin.flows.hooks import dolphin_flow, store_for

#: The refresh's own component names: a mesh's continuously running ``exf``/``esof`` services
#: keep their heartbeats (a refresh is not the service).
FLOW_EXF = "exf-refresh"
FLOW_ESOF = "esof-refresh"


def _finish(svc, store_url: str | None) -> dict[str, Any]:
    from dolphin.store.features import touch_heartbeat

    beat = svc.heartbeat()
    touch_heartbeat(store_for(store_url), beat, int(beat["ts_ns"]))
    return {"latest": svc.latest, "heartbeat": beat}


@task(retries=2, retry_delay_seconds=1, timeout_seconds=120)
def exf_tick(store_url: str | None, binance_url: str | None, deribit_url: str | None,
             fng_url: str | None) -> dict[str, Any]:
    """Fetch the four ACB factors once and publish them; return the payload and heartbeat."""
    from dolphin.adapters.exf.clients import BinanceExfClient, DeribitDvolClient, FearGreedClient
    from dolphin.adapters.exf.fetchers import factor_specs
    from dolphin.core.clock import LiveClock
    from dolphin.services.exf_service import ExfService

    clients = (BinanceExfClient(binance_url), DeribitDvolClient(deribit_url),
               FearGreedClient(fng_url))
    try:
        svc = ExfService(store_for(store_url), factor_specs(*clients), clock=LiveClock(),
                         name=FLOW_EXF)
        svc.start()
        svc.tick()
        return _finish(svc, store_url)
    finally:
        for c in clients:
            c.close()


@task(retries=2, retry_delay_seconds=1, timeout_seconds=60)
def esof_tick(store_url: str | None) -> dict[str, Any]:
    """Compute the EsoF features at the live clock's time and publish them."""
    from dolphin.core.clock import LiveClock
    from dolphin.services.esof_service import EsofService

    svc = EsofService(store_for(store_url), clock=LiveClock(), name=FLOW_ESOF)
    svc.start()
    svc.tick()
    return _finish(svc, store_url)


@dolphin_flow(name="dolphin-exf-refresh")
def exf_refresh_flow(store_url: str | None = None, binance_url: str | None = None,
                     deribit_url: str | None = None, fng_url: str | None = None
                     ) -> dict[str, Any]:
    """Refresh ``exf_latest`` once (the clients' default URLs unless given)."""
    return exf_tick(store_url, binance_url, deribit_url, fng_url)


@dolphin_flow(name="dolphin-esof-refresh")
def esof_refresh_flow(store_url: str | None = None) -> dict[str, Any]:
    """Refresh ``esof_latest`` once."""
    return esof_tick(store_url)
