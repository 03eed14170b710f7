"""``paper_trade_flow`` (Bible §16.6, §17.3): one paper session per day, blue (SHORT) or green.

The tasks of §17.3: ``load_config`` (the colour's YAML; blue must be the champion),
``load_day_scans`` (the replayed bars exist), ``run_engine_day`` (``dolphin paper`` on the
sandbox venue), ``log_pnl`` (one JSON line per session under ``log_dir/<colour>/``). The
session writes ``DOLPHIN_STATE_BLUE`` and ``DOLPHIN_PNL_<COLOUR>`` into the store itself, from
its ledger's fold (``adapters.nautilus.paper_session.StoreViews``): §17.3's ``write_hz_state``.

Nautilus allows one trading node per process, so the session runs in a fresh interpreter
(``python -m dolphin paper``) and its summary line is read back; Prefect never wraps the bar
loop. The defaults are a short replay (a few seconds of wall time).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from prefect import task

from dolphin.core.errors import BadInputError, ConfigError, HaltTradingError
from dolphin.flows.hooks import dolphin_flow, resolve_store_url

#: The repository's configs and sample bars (the defaults of a checkout).
REPO = Path(__file__).resolve().parents[3]
CONFIGS = REPO / "configs"
SAMPLE_REPLAY = REPO / "data" / "sample" / "bars_1m_sample.parquet"
COLOURS = ("blue", "green")
#: ``dolphin paper`` exit statuses: an invariant break (HIBERNATE), an interrupted session.
EXIT_HALTED, EXIT_INTERRUPTED = 4, 130


class PaperSessionError(HaltTradingError):
    """The paper session ended abnormally (the message carries its exit status and stderr)."""


def config_path(config: str) -> Path:
    """Return the YAML of a colour (``configs/<colour>.yml``) or of an explicit path."""
    path = CONFIGS / f"{config}.yml" if config in COLOURS else Path(config)
    if not path.is_file():
        raise ConfigError(f"paper_trade_flow: config {config!r}: no file {path}")
    return path


def paper_command(config: Path, replay: Path, *, store_url: str, research: bool,
                  speed: float, duration_s: float, warmup: int, log_dir: Path,
                  ledger: Path | None = None, forewarner: bool = True,
                  unsupervised: bool = False) -> list[str]:
    """Return the ``dolphin paper`` command line of one session."""
    cmd = [sys.executable, "-m", "dolphin", "paper", "--replay", str(replay),
           "--config", str(config), "--speed", repr(float(speed)),
           "--duration", repr(float(duration_s)), "--warmup", str(int(warmup)),
           "--log-dir", str(log_dir), "--store", store_url]
    if research:
        cmd.append("--research")
    if not forewarner:
        cmd.append("--no-forewarner")
    if unsupervised:
        cmd.append("--unsupervised")
    if ledger is not None:
        cmd += ["--ledger", str(ledger)]
    return cmd


def parse_summary(stdout: str) -> dict[str, Any]:
    """Return the session summary: the JSON of the last ``session {...}`` line of the output."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("session {"):
            return json.loads(line.removeprefix("session "))
    raise BadInputError("no session summary line in the paper session's output",
                        source="dolphin paper", value=stdout[-500:] or None)


@task(retries=0)
def load_config(config: str) -> dict[str, Any]:
    """Resolve the colour's YAML; blue must be the champion (green runs as research)."""
    from dolphin.core.config import load_config as load
    from dolphin.core.config import require_champion

    path = config_path(config)
    cfg = load(path)
    if config == "blue":
        require_champion(cfg, entry_point="paper_trade_flow (blue)")
    return {"path": str(path), "id": cfg.id, "direction": cfg.alpha.direction,
            "research": config != "blue"}


@task(retries=2, retry_delay_seconds=1)
def load_day_scans(replay: str) -> str:
    """Check that the replayed bars exist (retried: a file replaced atomically)."""
    path = Path(replay)
    if not path.is_file():
        raise BadInputError("replay file does not exist", source=str(path))
    return str(path)


@task(retries=0)
def run_engine_day(cmd: list[str], timeout_s: float) -> dict[str, Any]:
    """Run the session in a fresh interpreter; return its summary (raise on a halt)."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode not in (0, EXIT_INTERRUPTED):
        what = "invariant break (HIBERNATE)" if proc.returncode == EXIT_HALTED else "failed"
        raise PaperSessionError(f"paper session {what}, exit {proc.returncode}: "
                                f"{proc.stderr.strip()[-1500:]}")
    summary = parse_summary(proc.stdout)
    summary["exit"] = proc.returncode
    return summary


@task(retries=0)
def log_pnl(summary: dict[str, Any], log_dir: str, colour: str) -> str:
    """Append the session's PnL line to ``log_dir/<colour>/pnl.jsonl``; return its path."""
    out = Path(log_dir) / colour / "pnl.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    keep = ("session", "config_id", "pnl", "capital", "trades", "orders", "denials", "posture",
            "mc_status", "stopped_early", "bars")
    line = {"ts_ns": time.time_ns(), **{k: summary.get(k) for k in keep}}
    with open(out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, sort_keys=True) + "\n")
    return str(out)


@dolphin_flow(name="dolphin-paper")
def paper_trade_flow(config: str = "blue", replay: str | None = None,
                     store_url: str | None = None, speed: float = 100000.0,
                     duration_s: float = 5.0, warmup: int = 100,
                     log_dir: str = "runs/paper", ledger: str | None = None,
                     forewarner: bool = True, unsupervised: bool = False,
                     timeout_s: float = 900.0) -> dict[str, Any]:
    """Run one paper session of ``config`` (``blue``, ``green`` or a YAML path) on ``replay``
    (default: the repository's sample bars); return the session summary."""
    cfg = load_config(config)
    bars = load_day_scans(str(replay or SAMPLE_REPLAY))
    colour = config if config in COLOURS else "custom"
    cmd = paper_command(Path(cfg["path"]), Path(bars), store_url=resolve_store_url(store_url),
                        research=cfg["research"], speed=speed, duration_s=duration_s,
                        warmup=warmup, log_dir=Path(log_dir) / colour,
                        ledger=Path(ledger) if ledger else None, forewarner=forewarner,
                        unsupervised=unsupervised)
    summary = run_engine_day(cmd, timeout_s)
    summary["pnl_log"] = log_pnl(summary, log_dir, colour)
    return summary
