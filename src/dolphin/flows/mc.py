"""``mc_forewarner_flow`` (Bible §16.5): the daily MC-Forewarner assessment into the store.

``load_models`` reads the model set (default: the one shipped in ``dolphin/resources/mc``),
``assess`` gives the config's §12 status (OK / ORANGE / RED; outside the explored region never
OK, ``risk.mc_models.assess``) and ``write_status`` publishes it as
``DOLPHIN_FEATURES["mc_status"]``: ``{config_id, status, catastrophic_probability,
envelope_score, inside_explored, model_version, model_age_days}``.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import task

from dolphin.flows.hooks import dolphin_flow, store_for


@task(retries=2, retry_delay_seconds=1)
def load_models(models: str | None):
    """Load the model set (retried: a set being swapped in atomically)."""
    from dolphin.risk.mc_models import load

    return load(models)


@task
def assess(model_set, config: str | None) -> dict[str, Any]:
    """Return the assessment of ``config`` (None: the champion) as a JSON-ready dict."""
    from dolphin.core.config import load_config
    from dolphin.risk.mc_models import assess as assess_config

    cfg = load_config(config)
    return {"config_id": cfg.id, **assess_config(model_set, cfg).as_dict()}


@task(retries=3, retry_delay_seconds=1)
def write_status(store_url: str | None, status: dict[str, Any]) -> None:
    """Write ``DOLPHIN_FEATURES["mc_status"]``."""
    from dolphin.store.schema import FEATURES, MC_STATUS, encode_value

    store_for(store_url).map(FEATURES).put(MC_STATUS, encode_value(status, time.time_ns()))


@dolphin_flow(name="dolphin-mc-forewarner")
def mc_forewarner_flow(store_url: str | None = None, config: str | None = None,
                       models: str | None = None) -> dict[str, Any]:
    """Assess ``config`` on ``models`` and publish the status; return it."""
    status = assess(load_models(models), config)
    write_status(store_url, status)
    return status
