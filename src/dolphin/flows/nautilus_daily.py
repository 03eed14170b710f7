"""``nautilus_daily_flow`` (Bible §17.2): the daily Nautilus BacktestEngine run, supervised.

Tasks in the Bible's order, each a thin call:

1. ``store_probe`` (retries 3, 30 s): the store answers (``bootstrap.open_store``).
2. ``validate_champion`` (no retry, 10 s): the config's id is ``CHAMPION_BLUE_ID`` (the
   canonical SHA-256 of the frozen params); any drift fails before the engine starts.
3. ``load_bar_data`` (retries 2, 120 s): the scans parquet, validated (``vel_div`` present), cut
   to the run's UTC day when one is given.
4. ``read_posture`` (retries 2, 20 s): ``DOLPHIN_SAFETY["latest"]``. HIBERNATE skips the
   engine: the result (skipped) and the heartbeat are still written.
5. ``restore_capital`` (retries 2, 20 s): from the hash-chained ledger when one is given (its
   fold, ``ledger.views.LedgerView``), else ``DOLPHIN_STATE_BLUE["latest_nautilus"]``, else the
   config's initial capital (25,000 USDT).
6. ``run_backtest`` (no retry, 600 s): ``adapters.nautilus.backtest.run_in_subprocess`` (one
   engine per process) starting from the restored capital.
7. ``write_result`` (retries 3, 30 s): ``DOLPHIN_PNL_BLUE[date]`` and
   ``DOLPHIN_STATE_BLUE["latest_nautilus"]``.
8. ``heartbeat`` (no retry, 15 s): ``DOLPHIN_HEARTBEAT["prefect:dolphin-nautilus-daily"]``,
   phase ``flow_end``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from prefect import task

from dolphin.core.errors import DataError
from dolphin.core.io import read_parquet
from dolphin.flows.hooks import dolphin_flow, flow_beat, store_for, write_beat

FLOW_NAME = "dolphin-nautilus-daily"
STATE_KEY = "latest_nautilus"
HIBERNATE = "HIBERNATE"


@task(retries=3, retry_delay_seconds=1, timeout_seconds=30)
def store_probe(store_url: str | None) -> bool:
    """Verify the store answers (one read of ``DOLPHIN_HEARTBEAT``)."""
    from dolphin.store.schema import HEARTBEAT

    store_for(store_url).map(HEARTBEAT).get(f"prefect:{FLOW_NAME}")
    return True


@task(retries=0, timeout_seconds=10)
def validate_champion(config: str | None) -> str:
    """Return the config's id; raise ``ConfigError`` unless it is the declared champion."""
    from dolphin.core.config import load_config, require_champion

    return require_champion(load_config(config), entry_point="nautilus_daily_flow").id


def day_slice(scans, date: str | None):
    """Return the scans of UTC day ``date`` (all of them when None); none is a ``DataError``."""
    import pandas as pd

    if date is None:
        return scans
    day = pd.Timestamp(date, tz="UTC")
    ts = scans["timestamp"]
    out = scans[(ts >= day) & (ts < day + pd.Timedelta(days=1))].reset_index(drop=True)
    if out.empty:
        raise DataError("no scans on the run's day", field="date", value=date)
    return out


@task(retries=2, retry_delay_seconds=1, timeout_seconds=120)
def load_bar_data(scans: str, date: str | None, work: str) -> dict[str, Any]:
    """Read and validate the scans (cut to ``date``); write the run's copy into ``work``."""
    from dolphin.core.io import atomic_write_parquet
    from dolphin.scanner.schema import read_scans, validate_scans

    frame = day_slice(read_scans(scans), date)
    assets = validate_scans(frame, scans)
    path = Path(work) / "scans.parquet"
    atomic_write_parquet(frame, path)
    return {"path": str(path), "bars": len(frame), "assets": len(assets),
            "first": str(frame["timestamp"].iloc[0]), "last": str(frame["timestamp"].iloc[-1])}


@task(retries=2, retry_delay_seconds=1, timeout_seconds=20)
def read_posture(store_url: str | None) -> str | None:
    """Return the posture in ``DOLPHIN_SAFETY["latest"]`` (None when empty)."""
    from dolphin.store.features import posture_cell

    snap = posture_cell(store_for(store_url)).read()
    return None if snap is None else str(snap.data.get("posture"))


def capital_from(ledger: str | None, state: dict[str, Any] | None,
                 initial: float) -> tuple[float, str]:
    """Return the capital to start from and where it came from: the ledger's fold, the stored
    state, else ``initial``."""
    if ledger is not None:
        from dolphin.adapters.nautilus.paper_session import prior_rows
        from dolphin.ledger.views import LedgerView

        capital = LedgerView.rebuild(prior_rows(Path(ledger))).capital
        if math.isfinite(capital) and capital > 0:
            return capital, f"ledger:{ledger}"
    if state is not None:
        capital = state.get("capital")
        if isinstance(capital, int | float) and math.isfinite(capital) and capital > 0:
            return float(capital), "store"
    return float(initial), "initial"


@task(retries=2, retry_delay_seconds=1, timeout_seconds=20)
def restore_capital(store_url: str | None, config: str | None,
                    ledger: str | None) -> dict[str, Any]:
    """Return ``{"capital", "source"}`` (module doc, step 5)."""
    from dolphin.core.config import load_config
    from dolphin.store.schema import STATE_BLUE, decode_value

    raw = store_for(store_url).map(STATE_BLUE).get(STATE_KEY)
    state = decode_value(raw).data if raw is not None else None
    capital, source = capital_from(ledger, state, load_config(config).alpha.initial_capital)
    return {"capital": capital, "source": source}


@task(retries=0, timeout_seconds=600)
def run_backtest(scans_path: str, config: str | None, capital: float, work: str,
                 forewarner: bool) -> dict[str, Any]:
    """Run the engine in a fresh interpreter from ``capital``; return its day summary."""
    from dolphin.adapters.nautilus.backtest import run_in_subprocess
    from dolphin.core.config import dump_yaml, load_config
    from dolphin.core.io import atomic_write_text

    cfg = load_config(config).replace(initial_capital=float(capital))
    run_cfg = Path(work) / "config.yml"
    atomic_write_text(run_cfg, dump_yaml(cfg))
    out = Path(work) / "out"
    stats = run_in_subprocess(Path(scans_path), out, config=run_cfg, forewarner=forewarner,
                              timeout_s=590)
    daily = read_parquet(out / "daily.parquet")
    end = float(daily["capital_end"].iloc[-1]) if len(daily) else float(capital)
    return {"capital_start": float(capital), "capital": end,
            "pnl": float(daily["pnl"].sum()) if len(daily) else 0.0,
            "trades": int(daily["trades"].sum()) if len(daily) else 0,
            "days": len(daily), "orders": int(stats.get("orders", 0)), "out": str(out)}


@task(retries=3, retry_delay_seconds=1, timeout_seconds=30)
def write_result(store_url: str | None, date: str, result: dict[str, Any]) -> None:
    """Write the day's PnL and the flow's capital state into the store."""
    from dolphin.store.schema import PNL_BLUE, STATE_BLUE, encode_value

    store = store_for(store_url)
    now = time.time_ns()
    store.map(PNL_BLUE).put(date, encode_value({"date": date, **result}, now))
    store.map(STATE_BLUE).put(STATE_KEY, encode_value({"date": date, **result}, now))


@task(retries=0, timeout_seconds=15)
def heartbeat(store_url: str | None, reason: str | None = None) -> None:
    """Beat ``prefect:dolphin-nautilus-daily`` (RUNNING, phase flow_end)."""
    write_beat(flow_beat(FLOW_NAME, "RUNNING", reason=reason), store_url)


@dolphin_flow(name=FLOW_NAME)
def nautilus_daily_flow(scans: str, work: str, store_url: str | None = None,
                        config: str | None = None, date: str | None = None,
                        ledger: str | None = None, forewarner: bool = True,
                        dry_run: bool = False) -> dict[str, Any]:
    """Run the day's Nautilus backtest of the champion on ``scans`` (files under ``work``);
    ``dry_run`` checks data and params without the engine. Return the written result."""
    import pandas as pd

    store_probe(store_url)
    config_id = validate_champion(config)
    Path(work).mkdir(parents=True, exist_ok=True)
    data = load_bar_data(scans, date, work)
    day = date or str(pd.Timestamp(data["last"]).date())
    posture = read_posture(store_url)
    restored = restore_capital(store_url, config, ledger)
    base = {"config_id": config_id, "posture": posture, "capital_source": restored["source"],
            "bars": data["bars"]}
    if posture == HIBERNATE or dry_run:
        why = "HIBERNATE" if posture == HIBERNATE else "dry run"
        result = {**base, "skipped": why, "capital": restored["capital"], "pnl": 0.0,
                  "trades": 0}
        if not dry_run:
            write_result(store_url, day, result)
        heartbeat(store_url, reason=f"engine skipped: {why}")
        return result
    run = run_backtest(data["path"], config, restored["capital"], work, forewarner)
    result = {**base, "skipped": None, **run}
    write_result(store_url, day, result)
    heartbeat(store_url)
    return result
