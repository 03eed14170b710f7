"""The trader's posture read never defaults to APEX, and mid-day ACB updates are validated.

DESIGN.md "Failure behaviour" overrules the Bible's §14.6: a missing, unreadable, unknown,
future-dated or stale posture trades as TURTLE (no new entries, open positions managed), logged
once per outage. ACB boost/beta outside what the ACB can produce are refused and logged.
"""

from __future__ import annotations

import math

import pytest

from dolphin.adapters.nautilus.guards import (
    POSTURE_MAX_AGE_S,
    WATCHDOG_PERIOD_S,
    acb_bounds,
    judge_posture,
)
from dolphin.adapters.nautilus.scan_driver import DolphinCore, scan_inputs
from dolphin.alpha import layout as lay
from dolphin.alpha.engine import NDAlphaEngine
from dolphin.core.config import DolphinConfig
from dolphin.core.errors import ConfigError
from dolphin.store.features import posture_cell
from dolphin.store.memory import MemoryStore
from dolphin.store.ports import EntryEvent, EntryEventKind
from dolphin.store.schema import ACB_BOOST, FEATURES, encode_value
from tests.kit.scans import random_scans

ASSETS = [f"A{i:02d}USDT" for i in range(6)]
NOW = 1_700_000_000_000_000_000
S = 1_000_000_000


def _core(source, *, now=None, **kw) -> DolphinCore:
    clock = (lambda: now[0]) if now is not None else (lambda: NOW)
    return DolphinCore(NDAlphaEngine(DolphinConfig(), ASSETS), posture_source=source,
                       clock=clock, **kw)


def _rows(n: int = 3):
    s = random_scans(n, len(ASSETS), seed=3)
    return scan_inputs(s, ASSETS)


def _snapshot(store: MemoryStore, posture: str, ts_ns: int):
    cell = posture_cell(store, clock=lambda: ts_ns)
    cell.overwrite({"posture": posture, "rm": 0.9})
    return cell


# ------------------------------------------------------------------ posture
def test_the_default_max_age_is_three_watchdog_periods() -> None:
    assert WATCHDOG_PERIOD_S == 10.0 and POSTURE_MAX_AGE_S == 30.0
    assert _core(lambda: None).posture_guard.max_age_s == 30.0
    assert _core(lambda: None, posture_max_age_s=5.0).posture_guard.max_age_s == 5.0


def test_missing_posture_is_turtle_never_apex() -> None:
    core = _core(lambda: None)
    core.on_scan(_rows(1)[0])
    assert core.posture == "TURTLE" and core.engine.posture == "TURTLE"


def test_unreadable_posture_is_turtle_logged_once_per_outage(caplog) -> None:
    state = {"down": True}

    def source():
        if state["down"]:
            raise ConnectionError("store unreachable")
        return "STALKER"

    core = _core(source)
    with caplog.at_level("INFO"):
        assert [core.read_posture() for _ in range(5)] == ["TURTLE"] * 5
        state["down"] = False
        assert core.read_posture() == "STALKER"
        state["down"] = True
        assert core.read_posture() == "TURTLE"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2  # one per outage, not one per read
    assert "unreadable (ConnectionError: store unreachable)" in warnings[0]
    assert sum("readable again: STALKER" in m for m in caplog.messages) == 1


def test_unknown_posture_value_is_turtle() -> None:
    assert _core(lambda: "PANIC").read_posture() == "TURTLE"
    assert _core(lambda: 42).read_posture() == "TURTLE"


def test_stale_posture_record_is_turtle_and_a_fresh_one_is_used() -> None:
    now = [NOW]
    with MemoryStore() as store:
        cell = _snapshot(store, "STALKER", NOW)
        core = _core(cell.read, now=now)
        assert core.read_posture() == "STALKER"
        now[0] = NOW + 29 * S
        assert core.read_posture() == "STALKER"
        now[0] = NOW + 31 * S  # older than 3 watchdog periods
        assert core.read_posture() == "TURTLE"
        assert "stale" in core.posture_guard.last.reason


def test_future_dated_posture_is_turtle() -> None:
    with MemoryStore() as store:
        _snapshot(store, "APEX", NOW + 2 * S)  # within the skew: readable, but never fresh
        cell = posture_cell(store, clock=lambda: NOW)
        assert _core(cell.read).read_posture() == "TURTLE"
        _snapshot(store, "APEX", NOW + 60 * S)  # beyond the skew: malformed -> unreadable
        cell = posture_cell(store, clock=lambda: NOW)
        core = _core(cell.read)
        assert core.read_posture() == "TURTLE"
        assert "FutureValueError" in core.posture_guard.last.reason


def test_judge_accepts_a_bare_posture_payload_and_rejects_a_record_without_time() -> None:
    from dolphin.store.schema import decode_value

    rec = decode_value(encode_value("HIBERNATE", NOW))
    assert judge_posture(rec, NOW, 30.0).posture == "HIBERNATE"
    assert judge_posture(object(), NOW, 30.0).posture == "TURTLE"


def test_turtle_still_steps_the_engine_but_halts_entries() -> None:
    core = _core(lambda: None)
    for row in _rows(5):
        assert core.on_scan(row).skipped == ""  # open positions stay managed
    assert core.total_bars == 5
    assert core.engine.posture == "TURTLE"
    # entries are refused by the engine's risk gate (reductions only), and recorded
    from dolphin.risk.gate import EntryRequest

    req = EntryRequest(0, 5, 0, core.engine.assets[0], -1, 1_000.0, 25_000.0, {})
    verdict = core.engine.gate.judge(req, core.engine.posture, core.engine.rm)
    assert verdict.denial is not None and verdict.denial.value == "reduce_only"


def test_without_a_posture_source_the_unsupervised_engine_runs_at_apex() -> None:
    core = _core(None)
    core.on_scan(_rows(1)[0])
    assert core.posture == "APEX"


# ------------------------------------------------------------------ ACB updates
def _acb_event(data) -> EntryEvent:
    return EntryEvent(FEATURES, EntryEventKind.UPDATED, ACB_BOOST, encode_value(data, 1), None)


def test_acb_bounds_follow_the_acb_formulas() -> None:
    cfg = DolphinConfig().acb
    (b_lo, b_hi), (c_lo, c_hi) = acb_bounds(cfg)
    assert b_lo == 1.0 and b_hi == pytest.approx(1 + 0.5 * math.log(5))  # 4 factors at most
    assert c_lo == 0.0 and c_hi == pytest.approx(max(cfg.beta_high, cfg.beta_low) * 1.25)


@pytest.mark.parametrize(
    "data",
    [
        {"boost": None, "beta": 0.2},
        {"boost": float("nan"), "beta": 0.2},
        {"boost": float("inf"), "beta": 0.2},
        {"boost": 0.5, "beta": 0.2},
        {"boost": 1.9, "beta": 0.2},
        {"boost": "1.2", "beta": 0.2},
        {"boost": True, "beta": 0.2},
        {"boost": 1.2, "beta": -0.1},
        {"boost": 1.2, "beta": 5.0},
        {"boost": 1.2},
        [1.2, 0.2],
    ],
    ids=lambda d: repr(d),
)
def test_an_invalid_acb_update_is_refused_and_the_values_kept(data, caplog) -> None:
    core = _core(None)
    core.on_scan(_rows(1)[0])
    before = (float(core.engine.state[lay.S_DAY_BOOST]), float(core.engine.state[lay.S_DAY_BETA]))
    core.on_acb_event(_acb_event(data))
    with caplog.at_level("WARNING"):
        assert core.drain_acb() is None
    after = (float(core.engine.state[lay.S_DAY_BOOST]), float(core.engine.state[lay.S_DAY_BETA]))
    assert after == before
    assert sum("ACB update refused" in m for m in caplog.messages) == 1


def test_a_valid_acb_update_at_the_bounds_is_applied() -> None:
    core = _core(None)
    (_, b_hi), (_, c_hi) = acb_bounds(core.engine.config.acb)
    core.on_acb_event(_acb_event({"boost": b_hi, "beta": c_hi}))
    assert core.drain_acb() == {"boost": b_hi, "beta": c_hi}
    assert core.engine.state[lay.S_DAY_BOOST] == b_hi


def test_the_paper_command_reads_the_posture_cell_of_a_shared_store(capsys) -> None:
    from dolphin.bootstrap import posture_source

    with MemoryStore() as store:
        # the embedded store: nothing publishes a posture, so it reads TURTLE unless the
        # operator asks for an unsupervised session explicitly
        embedded = posture_source("memory://", store)
        assert "reads TURTLE" in capsys.readouterr().out
        assert _core(embedded).read_posture() == "TURTLE"
        assert posture_source("memory://", store, unsupervised=True) is None
        assert "unsupervised by request" in capsys.readouterr().out
        with pytest.raises(ConfigError):
            posture_source("hazelcast://127.0.0.1:5701", store, unsupervised=True)
        source = posture_source("hazelcast://127.0.0.1:5701", store)  # any shared store
        assert source() is None  # nothing published yet -> the trader trades as TURTLE
        _snapshot(store, "STALKER", NOW)
        assert _core(source).read_posture() == "STALKER"


def test_a_verdict_written_before_the_days_first_scan_holds_for_that_day() -> None:
    from dolphin.alpha.session import utc_date

    core = _core(None)
    first = _rows(1)[0]
    day = utc_date(first.bar_ts_ns)
    # the processor writes the day's verdict at its open, before the trader's first scan of it
    core.on_acb_event(_acb_event({"date": day, "boost": 1.35, "beta": 0.8}))
    core.on_scan(first)  # the day begins, then the pending verdict is applied over it
    assert core.engine.state[lay.S_DAY_BOOST] == 1.35 and core.engine.state[lay.S_DAY_BETA] == 0.8


def test_a_verdict_for_another_day_is_refused(caplog) -> None:
    core = _core(None)
    core.on_scan(_rows(1)[0])
    before = float(core.engine.state[lay.S_DAY_BOOST])
    core.on_acb_event(_acb_event({"date": "1999-01-01", "boost": 1.35, "beta": 0.8}))
    with caplog.at_level("WARNING"):
        assert core.drain_acb() is None
    assert float(core.engine.state[lay.S_DAY_BOOST]) == before
    assert any("a verdict holds for its own day" in m for m in caplog.messages)
