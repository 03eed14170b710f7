"""Flow heartbeats: every DOLPHIN flow reports into ``DOLPHIN_HEARTBEAT["prefect:<flow name>"]``.

A flow decorated with :func:`dolphin_flow` gets three state hooks: a completed run writes
``RUNNING``, a failed run (an exception, a ``TimedOut`` task or flow) and a crashed run (the
flow-run process killed; the serving process runs the hook) write ``FAULTED`` with the state's
message as the reason. :func:`report_late_runs` turns the server's ``Late`` runs (scheduled,
not started: the serving process is down or busy) into ``DEGRADED`` beats. The mesh watchdog
reads these like any component's heartbeat, so a dead or late daily flow becomes a degraded
sensor instead of silence.

The store is the one named by the run's ``store_url`` parameter, else ``DOLPHIN_STORE_URL``,
else the embedded ``memory://``. Stores are opened once per URL and process
(:func:`store_for`): the tasks of one run share one connection, and ``memory://`` names this
process's embedded store. A hook never raises: a store that cannot be reached is logged.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from dolphin.store.ports import Store

STORE_ENV = "DOLPHIN_STORE_URL"
DEFAULT_STORE_URL = "memory://"
#: Heartbeat component names of flows: ``prefect:<flow name>``.
COMPONENT_PREFIX = "prefect:"

_log = logging.getLogger(__name__)
_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()
#: How a URL becomes a store (``bootstrap.open_store``; tests may substitute their own).
opener: Callable[[str], Store] | None = None


def resolve_store_url(url: str | None = None) -> str:
    """Return ``url``, else ``$DOLPHIN_STORE_URL``, else ``memory://``."""
    return url or os.environ.get(STORE_ENV) or DEFAULT_STORE_URL


def store_for(url: str | None = None) -> Store:
    """Return this process's store for ``url`` (resolved as above), opening it once."""
    key = resolve_store_url(url)
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            if opener is not None:
                store = opener(key)
            else:
                from dolphin.bootstrap import open_store

                store = open_store(key)
            _stores[key] = store
        return store


def close_stores() -> None:
    """Close and forget every store opened by :func:`store_for`."""
    with _stores_lock:
        stores = list(_stores.values())
        _stores.clear()
    for store in stores:
        try:
            store.close()
        except Exception:
            _log.warning("closing a flow store failed", exc_info=True)


def component_name(flow_name: str) -> str:
    """Return the heartbeat component of a flow: ``prefect:<flow name>``."""
    return f"{COMPONENT_PREFIX}{flow_name}"


def flow_beat(flow_name: str, state: str, *, reason: str | None = None,
              ts_ns: int | None = None, flow_run: str | None = None,
              phase: str = "flow_end") -> dict[str, Any]:
    """Return a heartbeat of a flow in the ``Component.heartbeat()`` shape plus its run id."""
    return {"component": component_name(flow_name), "state": state,
            "ts_ns": time.time_ns() if ts_ns is None else int(ts_ns), "reason": reason,
            "beats": 1, "flow_run": flow_run, "phase": phase}


def write_beat(beat: Mapping[str, Any], store_url: str | None = None) -> None:
    """Write ``beat`` into ``DOLPHIN_HEARTBEAT`` of the store at ``store_url``."""
    from dolphin.store.features import touch_heartbeat

    touch_heartbeat(store_for(store_url), beat, int(beat["ts_ns"]))


def _run_store_url(flow_run: Any) -> str:
    params = getattr(flow_run, "parameters", None) or {}
    url = params.get("store_url") if isinstance(params, Mapping) else None
    return resolve_store_url(url if isinstance(url, str) else None)


def _reason(state: Any) -> str:
    message = getattr(state, "message", None) or ""
    name = getattr(state, "name", None) or type(state).__name__
    return f"{name}: {message}".strip().rstrip(":")[:500]


def _hook(dolphin_state: str) -> Callable[[Any, Any, Any], None]:
    def hook(flow: Any, flow_run: Any, state: Any) -> None:
        url = _run_store_url(flow_run)
        reason = None if dolphin_state == "RUNNING" else _reason(state)
        beat = flow_beat(flow.name, dolphin_state, reason=reason,
                         flow_run=str(getattr(flow_run, "id", "")) or None)
        try:
            write_beat(beat, url)
        except Exception:
            _log.error("flow %s: heartbeat %s not written to %s", flow.name, dolphin_state, url,
                       exc_info=True)

    hook.__name__ = f"heartbeat_{dolphin_state.lower()}"
    return hook


on_completion_beat = _hook("RUNNING")
on_failure_beat = _hook("FAULTED")
on_crashed_beat = _hook("FAULTED")


def dolphin_flow(name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
    """``prefect.flow`` with the heartbeat hooks (completion: RUNNING; failure, crash:
    FAULTED). The decorated function should take a ``store_url`` parameter."""
    from prefect import flow

    def wrap(fn: Callable[..., Any]) -> Any:
        return flow(name=name, on_completion=[on_completion_beat],
                    on_failure=[on_failure_beat], on_crashed=[on_crashed_beat],
                    **kwargs)(fn)

    return wrap


def late_beats(runs: list[Mapping[str, Any]], *, ts_ns: int | None = None) -> list[dict]:
    """Return one ``DEGRADED`` beat per flow among ``runs`` (``{"flow", "id",
    "expected_start"}`` of runs in state Late), naming the oldest late run."""
    oldest: dict[str, Mapping[str, Any]] = {}
    for run in runs:
        flow = str(run["flow"])
        if flow not in oldest or str(run["expected_start"]) < str(oldest[flow]["expected_start"]):
            oldest[flow] = run
    return [flow_beat(flow, "DEGRADED", ts_ns=ts_ns, flow_run=str(run["id"]), phase="late",
                      reason=f"Late: run {run['id']} scheduled for {run['expected_start']} "
                             "has not started")
            for flow, run in sorted(oldest.items())]


def late_runs() -> list[dict[str, Any]]:
    """Ask the Prefect API (``PREFECT_API_URL``) for the runs in state Late."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateName,
    )

    flt = FlowRunFilter(state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Late"])))
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=flt, limit=200)
        names: dict[Any, str] = {}
        out = []
        for r in runs:
            if r.flow_id not in names:
                names[r.flow_id] = client.read_flow(r.flow_id).name
            out.append({"flow": names[r.flow_id], "id": str(r.id),
                        "expected_start": str(r.expected_start_time)})
    return out


def report_late_runs(store_url: str | None = None) -> list[dict]:
    """Write a DEGRADED beat for every flow with a Late run; return the beats written."""
    beats = late_beats(late_runs())
    for beat in beats:
        write_beat(beat, store_url)
    return beats
