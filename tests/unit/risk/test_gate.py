"""The one risk gate: every entry the kernel decides is judged before it becomes a position.

Hand-built paths (tests/unit/alpha/test_real_closes.py): a SHORT signal at bar ENTRY can only
pick asset 0. The gate must refuse that entry in TURTLE (reductions only) and when the order's
notional exceeds the pre-trade limit, undo it (the bar runs as if blocked), record the denial
with its reason, and give the same answer on the fast replay loop, bar by bar, and in the sweep.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dolphin.alpha.engine import NDAlphaEngine
from dolphin.backtest import sweep as sw
from dolphin.backtest.metrics import records_sha256
from dolphin.backtest.replay import run_replay
from dolphin.core.config import PreTradeConfig, resolve_overrides
from dolphin.core.records import DENIAL_REASONS
from dolphin.risk.gate import EntryRequest, RiskGate
from tests.kit.scans import build_scans, random_scans
from tests.unit.alpha.test_real_closes import ASSETS, ENTRY, N, paths, signal

MIN = 60_000_000_000


def engine(overrides=None, posture="APEX"):
    eng = NDAlphaEngine(resolve_overrides({"use_ob_edge": False, **(overrides or {})}), ASSETS)
    eng.begin_day("2024-01-01", posture=posture)
    return eng


@pytest.mark.parametrize("step", [False, True])
def test_turtle_refuses_the_entry_and_records_it(step):
    eng = engine(posture="TURTLE")
    p, vd = paths(), signal()
    ts = np.arange(N, dtype=np.int64) * MIN
    if step:
        for i in range(N):
            eng.step_bar(i, int(ts[i]), vd[i], p[i])
    else:
        eng.run_bars(0, ts, vd, p, np.zeros(N, bool), np.ones(N, bool))
    assert len(eng.trades) == 0 and not eng.in_position
    d = eng.gate.denials()
    assert len(d) == 1
    assert (d["bar"][0], d["asset"][0], d["direction"][0]) == (ENTRY, 0, -1)
    assert DENIAL_REASONS[d["reason"][0]] == "reduce_only"
    assert d["equity"][0] == 25_000.0


def test_a_refused_bar_equals_a_blocked_bar():
    # the same run with the notional limit below the entry is exactly the flat run
    p, vd = paths(), signal()
    ts = np.arange(N, dtype=np.int64) * MIN
    limited = engine({"max_order_notional": 100.0})
    eq, _ = limited.run_bars(0, ts, vd, p, np.zeros(N, bool), np.ones(N, bool))
    assert len(limited.trades) == 0
    assert DENIAL_REASONS[limited.gate.denials()["reason"][0]] == "max_order_notional"
    assert np.all(eq == 25_000.0)
    flat = engine()
    flat.run_bars(0, ts, np.zeros(N), p, np.zeros(N, bool), np.ones(N, bool))
    # every slot equal (the vel_div ring has long forgotten the signal): capital, counters, RNG
    assert np.array_equal(limited.state, flat.state)


def test_unknown_rm_denies_and_a_known_one_passes():
    gate = RiskGate(PreTradeConfig())
    req = EntryRequest(0, 5, 0, "BTCUSDT", -1, 1_000.0, 25_000.0, {})
    assert not gate.judge(req, "APEX", float("nan")).allowed
    assert gate.judge(req, "APEX", 0.95).allowed
    assert not gate.judge(req, "NOT_A_POSTURE", None).allowed
    assert [DENIAL_REASONS[r] for r in gate.denials()["reason"]] == ["unknown_input"] * 2


def test_order_rate_counts_entries_and_exits_in_the_trailing_minute():
    gate = RiskGate(PreTradeConfig(max_orders_per_min=2))
    req = EntryRequest(50 * 1_000_000_000, 5, 0, "BTCUSDT", -1, 1_000.0, 25_000.0, {})
    gate.note_order(0)
    gate.note_order(40 * 1_000_000_000)
    assert not gate.judge(req, "APEX", None).allowed  # two orders in the last minute
    later = EntryRequest(61 * 1_000_000_000, 6, 0, "BTCUSDT", -1, 1_000.0, 25_000.0, {})
    assert gate.judge(later, "APEX", None).allowed  # the first one left the window


def test_replay_writes_denials_and_sweep_falls_back_to_the_gated_replay(tmp_path):
    from dolphin.backtest.output import write_outputs

    scans = random_scans(3_000, 5, seed=3)
    cfg = resolve_overrides({"max_order_notional": 1_500.0})  # refuses the larger entries
    replay = run_replay(scans, cfg)
    assert replay.metrics["denials"] > 0 and replay.metrics["trades"] > 0
    paths_ = write_outputs(replay, tmp_path)
    denials = pd.read_parquet(paths_["denials.parquet"])
    assert len(denials) == replay.metrics["denials"]
    assert set(denials["reason"]) == {"max_order_notional"}
    assert (denials["notional"] > 1_500.0).all()
    assert (replay.trades["notional"] <= 1_500.0).all()
    data = sw.prepare(scans)
    row = sw.evaluate(data, [cfg])[0]
    assert row["trades_sha256"] == replay.metrics["trades_sha256"]
    assert row["denials"] == replay.metrics["denials"]
    plain = resolve_overrides({})
    assert sw.evaluate(data, [plain])[0]["denials"] == 0
    assert records_sha256(sw.trade_records(data, plain), data.assets) == run_replay(
        scans, plain).metrics["trades_sha256"]


def test_build_scans_kit_path_still_trades():
    scans = build_scans(dict(zip(ASSETS, paths().T, strict=True)), signal())
    assert run_replay(scans, resolve_overrides({"use_ob_edge": False})).metrics["trades"] == 1


@pytest.mark.parametrize("seed", range(6))
def test_the_vectorised_flat_audit_equals_the_gate(seed):
    from dolphin.risk.gate import audit, flat_entries_pass

    rng = np.random.default_rng(seed)
    for _ in range(40):
        n = int(rng.integers(0, 12))
        gaps = rng.integers(1, 90, size=2 * n) * 1_000_000_000  # seconds between orders
        times = np.cumsum(gaps)
        entry_ts, exit_ts = times[0::2], times[1::2]
        notional = rng.uniform(100, 4_000, n)
        equity = rng.uniform(500, 2_000, n)
        limits = PreTradeConfig(max_order_notional=float(rng.uniform(1_000, 5_000)),
                                max_position_notional=float(rng.uniform(1_000, 5_000)),
                                max_gross_leverage=float(rng.uniform(1, 8)),
                                max_orders_per_min=int(rng.integers(1, 4)))
        entries = [EntryRequest(int(entry_ts[k]), 2 * k, 0, "A", -1, float(notional[k]),
                                float(equity[k]), {}) for k in range(n)]
        exits = [(2 * k + 1, int(exit_ts[k])) for k in range(n)]
        expected = audit(RiskGate(limits), entries, exits, "APEX", None)
        assert flat_entries_pass(notional, equity, entry_ts, exit_ts, limits) == expected
