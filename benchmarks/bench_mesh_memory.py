"""Memory of the live mesh per service; prints ONE JSON line.

``dolphin mesh up`` on the embedded store (no Prefect) replays a bar file (default the shared
43-day 50-asset 1m set, ``binance_spot_1m_2021-04_top50.parquet``, 61,725 bars; ``--bars`` the
372-asset spot 5m 2024-07 set with ``--from-live 300`` for its full universe) at ``--speed``
with the champion config,
lets it trade for ``--trade-s`` seconds after every service is ready, then reads ``VmRSS`` and
``VmHWM`` (peak) of every service process and of the supervisor from ``/proc/PID/status`` (the
pids ``RUN_DIR/mesh.json`` records), and ``Pss`` from ``/proc/PID/smaps_rollup`` (shared pages
split between the processes that map them: the PSS total is what the mesh costs the machine;
the RSS total counts the interpreter's shared pages once per process). Then ``mesh down``.

The baseline in the same run is a bare ``python -c "import dolphin"`` process (its own
``VmRSS`` after the import); ``ratio`` is a service's RSS over it. ``total_without_nautilus`` is
every service but the trader (the NautilusTrader node), against DESIGN.md's budget for the
400-asset live stack: "a few hundred MB per service, <= 1 GB without Nautilus" (this run has
50 assets). The machine is shared: the RSS of a Python process barely depends on the load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from dolphin.ledger.chain import Ledger

REPO = Path(__file__).resolve().parents[1]
BARS = REPO.parent / "shared" / "data" / "bars" / "binance_spot_1m_2021-04_top50.parquet"
MB = 1024.0  # /proc reports kB
TRADER = "trader"


def _dolphin(*args: str, timeout: float = 400.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dolphin", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=timeout)


def _status_kb(pid: int) -> dict[str, float]:
    """``VmRSS`` and ``VmHWM`` (kB) of ``pid``."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = float(value.split()[0])
    return out


def _pss_kb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return float(line.split()[1])
    return float("nan")


def _baseline_kb() -> float:
    """VmRSS (kB) of a bare interpreter after ``import dolphin``."""
    code = ("import dolphin, pathlib; print([l for l in pathlib.Path('/proc/self/status')"
            ".read_text().splitlines() if l.startswith('VmRSS')][0])")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, text=True,
                          capture_output=True, check=True)
    return float(proc.stdout.split()[1])


def _from_live(bars: Path, n_live: int, warmup: int, out: Path) -> Path:
    """A copy of ``bars`` from ``warmup`` bars before the first bar with ``n_live`` assets."""
    import pandas as pd

    from dolphin.core.io import read_parquet
    from dolphin.scanner.inputs import load_scan_input

    wide, _ = load_scan_input(bars)
    live = wide.drop(columns="timestamp").notna().sum(axis=1).to_numpy()
    if not (live >= n_live).any():
        raise SystemExit(f"{bars}: no bar has {n_live} live assets (at most {live.max()})")
    start = wide["timestamp"].iloc[max(0, int((live >= n_live).argmax()) - warmup)]
    frame = read_parquet(bars)
    frame[pd.to_datetime(frame["timestamp"], utc=True) >= start].to_parquet(out)
    return out


def _assets(bars: Path) -> int:
    """Symbols in the bar file (a long file's ``symbol`` column, or a wide file's columns)."""
    import pyarrow.parquet as pq

    names = pq.read_schema(bars).names
    if "symbol" in names:
        return len(set(pq.read_table(bars, columns=["symbol"]).column(0).to_pylist()))
    return len([n for n in names if n != "timestamp"])


def _fills(run_dir: Path) -> Counter:
    with Ledger(run_dir / "ledger.sqlite") as led:
        return Counter(r.kind for r in led.rows())


def _measure(run_dir: Path) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    state = json.loads((run_dir / "mesh.json").read_text())
    services = {}
    for name, svc in state["services"].items():
        pid = int(svc["pid"])
        kb = _status_kb(pid)
        services[name] = {"pid": pid, "rss_mb": round(kb["VmRSS"] / MB, 1),
                          "hwm_mb": round(kb["VmHWM"] / MB, 1),
                          "pss_mb": round(_pss_kb(pid) / MB, 1)}
    sup = int(state["supervisor_pid"])
    kb = _status_kb(sup)
    supervisor = {"pid": sup, "rss_mb": round(kb["VmRSS"] / MB, 1),
                  "hwm_mb": round(kb["VmHWM"] / MB, 1), "pss_mb": round(_pss_kb(sup) / MB, 1)}
    return services, supervisor


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bars", type=Path, default=BARS)
    p.add_argument("--speed", type=float, default=600.0, help="replay speed (600: 10 bars/s)")
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--trade-s", type=float, default=60.0)
    p.add_argument("--from-live", type=int, default=None, metavar="N",
                   help="replay from --warmup bars before the first bar with N live assets "
                        "(e.g. 300 on the 372-asset spot 5m 2024-07 set: its full universe)")
    args = p.parse_args()
    if not args.bars.is_file():
        raise SystemExit(f"bar file missing: {args.bars}")
    load_before = os.getloadavg()[0]
    baseline = _baseline_kb() / MB
    with tempfile.TemporaryDirectory(prefix="bench-mesh-") as tmp:
        bars = args.bars
        if args.from_live is not None:
            bars = _from_live(args.bars, args.from_live, args.warmup, Path(tmp) / args.bars.name)
        run_dir = Path(tmp) / "mesh"
        t0 = time.monotonic()
        up = _dolphin("mesh", "up", "--run-dir", str(run_dir), "--replay", str(bars),
                      "--speed", repr(args.speed), "--warmup", str(args.warmup))
        up_s = time.monotonic() - t0
        try:
            if up.returncode != 0:
                raise SystemExit(f"mesh up failed:\n{up.stdout}\n{up.stderr}")
            time.sleep(args.trade_s)
            services, supervisor = _measure(run_dir)
            kinds = _fills(run_dir)
        finally:
            _dolphin("mesh", "down", "--run-dir", str(run_dir))

    def total(key: str, skip: tuple[str, ...] = ()) -> float:
        return round(sum(s[key] for n, s in services.items() if n not in skip), 1)

    line = {
        "bench": "mesh_memory",
        "bars": args.bars.name, "from_live": args.from_live, "assets": _assets(args.bars),
        "speed": args.speed, "warmup": args.warmup,
        "trade_s": args.trade_s, "up_s": round(up_s, 1),
        "scans": kinds["SCAN"], "orders": kinds["ORDER"], "fills": kinds["FILL"],
        "services_rss_mb": {n: s["rss_mb"] for n, s in services.items()},
        "services_hwm_mb": {n: s["hwm_mb"] for n, s in services.items()},
        "total_rss_mb": total("rss_mb"), "total_hwm_mb": total("hwm_mb"),
        "total_pss_mb": total("pss_mb"),
        "total_without_nautilus_rss_mb": total("rss_mb", (TRADER,)),
        "total_without_nautilus_pss_mb": total("pss_mb", (TRADER,)),
        "supervisor_rss_mb": supervisor["rss_mb"], "supervisor_hwm_mb": supervisor["hwm_mb"],
        "baseline": "python -c 'import dolphin'", "baseline_rss_mb": round(baseline, 1),
        "ratio_to_baseline": {n: round(s["rss_mb"] / baseline, 2) for n, s in services.items()},
        "supervisor_ratio": round(supervisor["rss_mb"] / baseline, 2),
        "total_without_nautilus_ratio": round(total("rss_mb", (TRADER,)) / baseline, 2),
        "budget": "DESIGN.md: 400-asset live stack, a few hundred MB per service, <= 1 GB "
                  "without Nautilus",
        "load_before": round(load_before, 2),
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
