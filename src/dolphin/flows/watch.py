"""``prefect_watch_flow``: the server's Late runs as DEGRADED flow heartbeats (``flows.hooks``).

A run the server marked Late never starts, so no hook of its own can report it; this flow,
scheduled every minute, asks the API and writes the beats. It is served by the same process
as the others: when that process is down, its own missing heartbeat is the signal.
"""

from __future__ import annotations

from dolphin.flows.hooks import dolphin_flow, report_late_runs


@dolphin_flow(name="dolphin-prefect-watch")
def prefect_watch_flow(store_url: str | None = None) -> list[dict]:
    """Write a DEGRADED beat for every flow with a Late run; return the beats."""
    return report_late_runs(store_url)
