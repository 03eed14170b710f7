"""The end-of-session summary of a mesh run: services, posture changes, trades, capital and the
ledger's verification (what ``dolphin mesh up --foreground --duration S`` prints at the end)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from dolphin.ledger.chain import Ledger, verify
from dolphin.mesh.supervisor import read_state

LEDGER = "ledger.sqlite"


def summary_lines(run_dir: Path) -> tuple[list[str], bool]:
    """Return the summary's lines and whether the ledger verified."""
    run_dir = Path(run_dir)
    lines = []
    state = read_state(run_dir) or {}
    for name, svc in (state.get("services") or {}).items():
        lines.append(f"service {name:9s} {svc.get('state', '?'):10s} "
                     f"restarts={svc.get('restarts', 0)} last_exit={svc.get('last_exit')}")
    path = run_dir / LEDGER
    if not path.exists():
        lines.append(f"ledger {path}: none (the trader never started)")
        return lines, False
    v = verify(path)
    with Ledger(path) as led:
        rows = list(led.rows())
    kinds = Counter(r.kind for r in rows)
    config = next((r.body for r in rows if r.kind == "CONFIG"), {})
    capital = float(config.get("initial_capital", float("nan")))
    for r in rows:
        if r.kind == "POSTURE":
            at = datetime.fromtimestamp(r.ts_event / 1e9, UTC).strftime("%Y-%m-%d %H:%M UTC")
            lines.append(f"posture -> {r.body.get('posture')} (from the bar of {at})")
        elif r.kind == "CAPITAL":
            capital = float(r.body["balance"])
    lines.append(f"scans {kinds['SCAN']:,}  decisions {kinds['DECISION']:,}  orders "
                 f"{kinds['ORDER']:,}  fills {kinds['FILL']:,}  trades {kinds['CAPITAL']:,}  "
                 f"starts {kinds['SESSION']:,}")
    lines.append(f"final capital {capital:,.2f} USDT (initial "
                 f"{float(config.get('initial_capital', float('nan'))):,.2f})")
    lines.append(f"ledger verify {'OK' if v.ok else 'FAILED'}: {len(rows):,} rows"
                 + ("" if v.ok else f", row {v.bad_seq}: {v.reason}"))
    return lines, v.ok


def print_summary(run_dir: Path) -> int:
    """Print the summary; return 0 when the ledger verified, 1 otherwise."""
    lines, ok = summary_lines(run_dir)
    for line in lines:
        print(line)
    return 0 if ok else 1
