"""The scheduled deployments of Bible §17.1 and the process that serves them.

| deployment               | flow                   | schedule (UTC)                 |
|--------------------------|------------------------|--------------------------------|
| dolphin-mc-forewarner    | mc_forewarner_flow     | 00:00 daily (before the actors) |
| dolphin-paper-blue       | paper_trade_flow blue  | 00:05 daily                    |
| dolphin-paper-green      | paper_trade_flow green | 00:05 daily                    |
| dolphin-nautilus-blue    | nautilus_daily_flow    | 00:10 daily (with ``scans``)   |
| dolphin-exf-refresh      | exf_refresh_flow       | every hour (with ExF URLs only)|
| dolphin-esof-refresh     | esof_refresh_flow      | every 15 minutes               |
| dolphin-prefect-watch    | prefect_watch_flow     | every minute (Late runs)       |

:func:`serve_deployments` registers them with the server in ``PREFECT_API_URL`` (a real
``prefect server start``, ``adapters.prefect.server``: the temporary server fires no schedule)
and runs their flow runs, each in its own process (Prefect's runner), until SIGTERM/SIGINT.
Every deployment passes ``store_url``, so the flows and their heartbeat hooks (``flows.hooks``)
write into the mesh's store. ``python -m dolphin.flows.deployments --store URL`` does the same
from a shell.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dolphin.core.errors import ConfigError
from dolphin.flows.hooks import STORE_ENV


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment: its name, flow, schedule (a UTC cron or an interval) and parameters."""

    name: str
    flow: Any
    cron: str | None = None
    interval_s: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval_s is None):
            raise ConfigError(f"deployment {self.name}: give exactly one of cron and interval_s")
        if self.interval_s is not None and not self.interval_s > 0:
            raise ConfigError(f"deployment {self.name}: interval_s must be positive, "
                              f"got {self.interval_s!r}")

    def schedule(self):
        """Return the Prefect schedule (cron in UTC, or an interval)."""
        from prefect.schedules import Cron, Interval

        if self.cron is not None:
            return Cron(self.cron, timezone="UTC")
        return Interval(float(self.interval_s), timezone="UTC")

    def with_interval(self, seconds: float) -> DeploymentSpec:
        """Return this deployment on an interval of ``seconds`` instead (tests, drills)."""
        return DeploymentSpec(self.name, self.flow, None, float(seconds), dict(self.parameters))


def deployments(store_url: str, *, work_dir: str | Path = "runs/flows",
                replay: str | None = None, scans: str | None = None,
                paper: Mapping[str, Any] | None = None,
                interval_overrides: Mapping[str, float] | None = None,
                exf_urls: Mapping[str, str] | None = None) -> list[DeploymentSpec]:
    """Return the §17 deployments against ``store_url``.

    ``replay`` is the paper sessions' bars (default: the repository's sample), ``paper`` extra
    ``paper_trade_flow`` parameters (e.g. ``duration_s``), ``scans`` the Nautilus flow's scans
    (that deployment is left out without it), ``exf_urls`` the ExF vendors' base URLs
    (``binance``, ``deribit``, ``fng``; the ExF refresh is left out without them: nothing is
    fetched from a vendor nobody configured). ``interval_overrides`` maps deployment names to
    an interval in seconds that replaces their schedule; an unknown name is a ``ConfigError``.
    """
    from dolphin.flows.factors import esof_refresh_flow, exf_refresh_flow
    from dolphin.flows.mc import mc_forewarner_flow
    from dolphin.flows.nautilus_daily import nautilus_daily_flow
    from dolphin.flows.paper import paper_trade_flow
    from dolphin.flows.watch import prefect_watch_flow

    work = Path(work_dir)
    base = {"store_url": store_url}
    paper_params = {**base, "log_dir": str(work / "paper"), **(paper or {})}
    if replay is not None:
        paper_params["replay"] = str(replay)
    specs = [
        DeploymentSpec("dolphin-mc-forewarner", mc_forewarner_flow, cron="0 0 * * *",
                       parameters=dict(base)),
        DeploymentSpec("dolphin-paper-blue", paper_trade_flow, cron="5 0 * * *",
                       parameters={**paper_params, "config": "blue"}),
        DeploymentSpec("dolphin-paper-green", paper_trade_flow, cron="5 0 * * *",
                       parameters={**paper_params, "config": "green"}),
        DeploymentSpec("dolphin-esof-refresh", esof_refresh_flow, interval_s=900.0,
                       parameters=dict(base)),
        DeploymentSpec("dolphin-prefect-watch", prefect_watch_flow, interval_s=60.0,
                       parameters=dict(base)),
    ]
    if exf_urls is not None:
        urls = {f"{k}_url": exf_urls[k] for k in ("binance", "deribit", "fng")}
        specs.insert(3, DeploymentSpec("dolphin-exf-refresh", exf_refresh_flow,
                                       interval_s=3600.0, parameters={**base, **urls}))
    if scans is not None:
        specs.insert(3, DeploymentSpec(
            "dolphin-nautilus-blue", nautilus_daily_flow, cron="10 0 * * *",
            parameters={**base, "scans": str(scans), "work": str(work / "nautilus")}))
    overrides = dict(interval_overrides or {})
    unknown = sorted(set(overrides) - {s.name for s in specs})
    if unknown:
        raise ConfigError(f"interval_overrides: unknown deployment(s) {', '.join(unknown)} "
                          f"(known: {', '.join(s.name for s in specs)})")
    return [s.with_interval(overrides[s.name]) if s.name in overrides else s for s in specs]


def runner_deployments(specs: Sequence[DeploymentSpec]) -> list[Any]:
    """Return Prefect ``RunnerDeployment`` objects of ``specs`` (module-path entry points, so a
    flow run loads ``dolphin.flows.<module>.<flow>`` whatever the working directory)."""
    from prefect.deployments.runner import EntrypointType

    return [s.flow.to_deployment(s.name, schedules=[s.schedule()], parameters=s.parameters,
                                 entrypoint_type=EntrypointType.MODULE_PATH,
                                 tags=["dolphin"])
            for s in specs]


def serve_deployments(store_url: str, *, interval_overrides: Mapping[str, float] | None = None,
                      only: Sequence[str] | None = None, exclude: Sequence[str] = (),
                      serve: Callable[..., None] | None = None, **kwargs: Any) -> None:
    """Serve the deployments against ``PREFECT_API_URL`` until SIGTERM/SIGINT.

    ``only`` keeps the named deployments, ``exclude`` leaves the named ones out (their
    ``interval_overrides`` are dropped with them); other keywords go to :func:`deployments`.
    ``DOLPHIN_STORE_URL`` is set to ``store_url`` for the flow-run processes.
    """
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise ConfigError("serve_deployments needs PREFECT_API_URL (a `prefect server start`, "
                          "adapters.prefect.server): the temporary server fires no schedule")
    if interval_overrides is not None and not (
            isinstance(interval_overrides, Mapping)
            and all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0
                    for v in interval_overrides.values())):
        raise ConfigError(f"interval overrides must map deployment names to seconds > 0, got "
                          f"{interval_overrides!r}")
    overrides = {k: v for k, v in (interval_overrides or {}).items() if k not in exclude}
    specs = [s for s in deployments(store_url, interval_overrides=overrides, **kwargs)
             if s.name not in exclude]
    if only is not None:
        missing = sorted(set(only) - {s.name for s in specs})
        if missing:
            raise ConfigError(f"only: unknown deployment(s) {', '.join(missing)}")
        specs = [s for s in specs if s.name in set(only)]
    os.environ[STORE_ENV] = store_url
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if serve is None:
        from prefect import serve
    serve(*runner_deployments(specs), print_starting_message=False)


def main(argv: list[str] | None = None) -> int:
    """``python -m dolphin.flows.deployments --store URL [--only NAME ...] [--every NAME=S]``."""
    p = argparse.ArgumentParser(prog="dolphin.flows.deployments")
    p.add_argument("--store", required=True, help="store URL the flows write into")
    p.add_argument("--only", nargs="*", default=None, help="serve only these deployments")
    p.add_argument("--every", action="append", default=[], metavar="NAME=SECONDS",
                   help="replace a deployment's schedule by an interval")
    p.add_argument("--work-dir", default="runs/flows")
    p.add_argument("--replay", default=None, help="paper sessions' bars")
    p.add_argument("--scans", default=None, help="the Nautilus flow's scans")
    args = p.parse_args(argv)
    overrides = {}
    for item in args.every:
        name, sep, secs = item.partition("=")
        try:
            overrides[name] = float(secs)
        except ValueError:
            raise ConfigError(f"--every {item!r}: expected NAME=SECONDS") from None
        if not sep:
            raise ConfigError(f"--every {item!r}: expected NAME=SECONDS")
    serve_deployments(args.store, interval_overrides=overrides, only=args.only,
                      work_dir=args.work_dir, replay=args.replay, scans=args.scans)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
