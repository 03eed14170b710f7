"""`dolphin replay-session DB`: rerun a paper session offline from its ledger; reproduce every
logged decision, order, fill and capital change bit for bit, or print the first difference.

The ledger's CONFIG row holds what a rerun needs: the full config, the bars file (and its
SHA-256), the warm-up, the forewarner's id and whether a posture source supervised the session
(its postures are replayed from the POSTURE rows). Exit 0 when every row is reproduced, 1 at
the first difference.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``replay-session`` subcommand."""
    p = sub.add_parser("replay-session", help="rerun a session from its ledger and compare")
    p.add_argument("db", type=Path, help="the session's ledger (SQLite)")
    p.add_argument("--replay", type=Path, default=None,
                   help="the bars file, when it moved (its SHA-256 must match the ledger's)")
    p.add_argument("--ob", type=Path, default=None,
                   help="the recorded OB features file, when it moved (its SHA-256 must match)")
    p.add_argument("--log-dir", type=Path, default=Path("runs/replay-session"))
    p.set_defaults(func=run)


def _config_row(db: Path) -> dict:
    from dolphin.adapters.nautilus.paper_session import prior_rows
    from dolphin.core.errors import DataError

    rows = prior_rows(db)
    row = next((r for r in rows if r.kind == "CONFIG"), None)
    if row is None or "config" not in row.body or "replay" not in row.body:
        raise DataError("no CONFIG row with the session's config and bars: cannot rerun it",
                        source=str(db))
    return row.body


def run(args: argparse.Namespace) -> int:
    """Rerun the session in check-only mode; print the verdict."""
    from dolphin.adapters.nautilus.paper_session import PaperSettings, run_paper_session
    from dolphin.bootstrap import bootstrap
    from dolphin.core.config import resolve_overrides
    from dolphin.core.errors import BadInputError, ConfigError

    if not args.db.exists():
        raise BadInputError("no such ledger", source=str(args.db))
    body = _config_row(args.db)
    config = resolve_overrides(body["config"], source=f"{args.db} CONFIG row")
    if config.id != body["config_id"]:
        raise ConfigError(f"{args.db}: the CONFIG row's config resolves to id {config.id}, "
                          f"not the recorded {body['config_id']} (a different code version?)")
    replay = args.replay or Path(body["replay"])
    if not replay.is_file():
        raise BadInputError("the session's bars file is missing (give --replay PATH)",
                            source=str(replay))
    recorded_ob = body.get("ob")
    ob = args.ob or (Path(recorded_ob) if recorded_ob else None)
    if ob is not None and not ob.is_file():
        raise BadInputError("the session's OB features file is missing (give --ob PATH)",
                            source=str(ob))
    runtime = bootstrap(config, store="memory://", forewarner=body.get("forewarner") != "off",
                        unsupervised=True)
    settings = PaperSettings(replay=replay, speed=1e9, duration_s=1e9,
                             warmup=int(body.get("warmup", 0)), log_dir=args.log_dir,
                             ledger=args.db, ob=ob, extra={"replay_session": str(args.db)})
    supervised = bool(body.get("supervised"))
    try:
        summary = run_paper_session(config, settings, store=None,
                                    posture_source=(lambda: None) if supervised else None,
                                    echo=lambda line: None, mc_gate=runtime.mc_gate,
                                    check_only=True)
    finally:
        runtime.close()
    matched, mismatch = summary["rerun_matched"], summary["rerun_mismatch"]
    print("replay " + json.dumps({k: summary[k] for k in ("rerun_matched", "rerun_mismatch",
                                                           "trades", "capital")}, sort_keys=True))
    if mismatch:
        print(f"first difference: {mismatch} ({matched:,} rows reproduced before it)")
        return 1
    print(f"reproduced all {matched:,} rows bit for bit (SESSION rows are not rerun)")
    return 0
