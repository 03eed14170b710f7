"""The mesh as the end-to-end tests drive it: `dolphin mesh` in a subprocess with fast
settings, its state, its processes and the watchdog's posture, and the check that `down` leaves
nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from dolphin.ledger.chain import Ledger, verify
from dolphin.mesh.plan import HeartbeatProbe, read_options
from dolphin.store.features import posture_cell
from tests.kit.procs import wait_for as _wait_for

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample" / "bars_1m_sample.parquet"
#: the watchdog ticks every 2 s (production: 10 s)
PERIOD_S = 2.0
#: the supervisor waits 12 s before restarting a killed service, so the watchdog sees it gone
BACKOFF_S = 12.0
MAX_AGE_S = 5.0  # the watchdog's heartbeat_max_age_s default

#: the survival controller recovers at once (the Bible's recovery takes hours by design)
FAST_RECOVERY = """\
survival:
  recovery_alpha_per_min: 60.0
  recovery_rate_per_min: 60.0
  hysteresis_up: 1
"""


def wait_for(predicate, timeout_s: float) -> bool:
    """Poll every 0.25 s; a predicate that raises (a file mid-replace, a store hiccup) is
    false for that poll."""
    def safe() -> bool:
        try:
            return bool(predicate())
        except Exception:
            return False
    return _wait_for(safe, timeout_s, 0.25)


def dolphin(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run ``python -m dolphin ARGS`` from the repository root."""
    return subprocess.run([sys.executable, "-m", "dolphin", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=timeout)


def mesh_up(tmp_path: Path, *extra: str) -> tuple[Path, subprocess.CompletedProcess]:
    """``dolphin mesh up`` on the sample with the fast settings (and ``extra`` arguments)."""
    run_dir = tmp_path / "mesh"
    config = tmp_path / "fast-recovery.yml"
    config.write_text(FAST_RECOVERY)
    up = dolphin("mesh", "up", "--run-dir", str(run_dir), "--replay", str(SAMPLE),
                 "--speed", "600", "--warmup", "1000", "--config", str(config), "--research",
                 "--set", f"watchdog_period_s={PERIOD_S}",
                 "--set", f"restart_backoff_s={BACKOFF_S}",
                 "--set", f"restart_backoff_max_s={BACKOFF_S}", *extra)
    return run_dir, up


def state(run_dir: Path) -> dict:
    """The supervisor's ``mesh.json``."""
    return json.loads((run_dir / "mesh.json").read_text())


def pid(run_dir: Path, name: str) -> int:
    """The pid of service ``name`` now."""
    return int(state(run_dir)["services"][name]["pid"])


def alive(p: int) -> bool:
    """True while process ``p`` exists and is not a zombie."""
    try:
        os.kill(p, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{p}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


def procs_naming(text: str) -> list[int]:
    """Pids of live processes whose command line holds ``text`` (orphans of this mesh)."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd and alive(int(p.name)):
            out.append(int(p.name))
    return out


def ledger_kinds(run_dir: Path) -> Counter:
    """How many rows of each kind the trader's ledger holds."""
    with Ledger(run_dir / "ledger.sqlite") as led:
        return Counter(r.kind for r in led.rows())


class Safety:
    """The watchdog's published posture, read as the trader reads it."""

    def __init__(self, run_dir: Path) -> None:
        self.probe = HeartbeatProbe(read_options(run_dir)["store_url"])

    def read(self) -> dict:
        snap = posture_cell(self.probe.store()).read()
        return dict(snap.data) if snap is not None else {}

    def beat(self, name: str) -> dict:
        return self.probe.beat(name) or {}


def down_leaves_nothing(run_dir: Path) -> None:
    """``dolphin mesh down``: every recorded process gone, nothing naming the run directory
    left, the ledger still verifying, and ``status`` no longer reporting a mesh."""
    pids = [int(s["pid"]) for s in state(run_dir)["services"].values() if s.get("pid")]
    pids.append(int(state(run_dir)["supervisor_pid"]))
    down = dolphin("mesh", "down", "--run-dir", str(run_dir))
    assert down.returncode == 0, down.stdout + down.stderr
    assert wait_for(lambda: not any(alive(p) for p in pids), 30)
    assert wait_for(lambda: procs_naming(str(run_dir)) == [], 15), procs_naming(str(run_dir))
    assert verify(run_dir / "ledger.sqlite").ok
    assert dolphin("mesh", "status", "--run-dir", str(run_dir)).returncode != 0
