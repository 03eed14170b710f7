"""A live day begun in the idle time after the previous day's last scan (``DolphinCore.after_scan``)
decides exactly what a day begun on its first scan decides."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from dolphin.adapters.nautilus.scan_driver import DolphinCore, scan_inputs
from dolphin.alpha.engine import NDAlphaEngine
from dolphin.core.config import DolphinConfig
from dolphin.risk.acb import AdaptiveCircuitBreaker
from tests.kit.scans import build_scans

N_ASSETS = 6
DAY = 1440  # one-minute bars


def _scans(days: int = 3, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = days * DAY
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, size=(n, N_ASSETS)), axis=0))
    vd = rng.standard_t(3, size=n) * 0.008
    v750 = rng.normal(0.0, 1e-4, size=n)  # a different w750 median every day: the ACB moves
    prices = {f"A{i:02d}USDT": closes[:, i] for i in range(N_ASSETS)}
    return build_scans(prices, vd, v750_velocity=v750)


def _core(assets: list[str]) -> DolphinCore:
    cfg = DolphinConfig()
    return DolphinCore(NDAlphaEngine(cfg, assets), acb=AdaptiveCircuitBreaker(cfg.acb),
                       posture_source=lambda: "APEX", live_mode=True)


def _run(scans: pd.DataFrame, *, preroll: bool) -> tuple[DolphinCore, list, list[bool]]:
    assets = [c for c in scans.columns if c.endswith("USDT")]
    core = _core(assets)
    outcomes, rolled = [], []
    for scan in scan_inputs(scans, assets):
        outcomes.append(core.on_scan(scan))
        rolled.append(core.after_scan(scan) if preroll else False)
    return core, outcomes, rolled


def _same(a, b) -> None:
    core_a, out_a, _ = a
    core_b, out_b, _ = b
    assert len(out_a) == len(out_b)
    for x, y in zip(out_a, out_b, strict=True):
        assert x.intents == y.intents and x.skipped == y.skipped
        assert np.array_equal(x.trades, y.trades) and x.funding_paid == y.funding_paid
    assert core_a.days == core_b.days
    assert core_a.day_acb == core_b.day_acb
    assert np.array_equal(core_a.engine.state, core_b.engine.state, equal_nan=True)
    assert np.array_equal(core_a.engine.trades, core_b.engine.trades)


def test_a_day_begun_after_the_last_scan_of_the_day_before_changes_nothing():
    scans = _scans().iloc[:2 * DAY + 600]  # the third day ends at 10:00
    plain, early = _run(scans, preroll=False), _run(scans, preroll=True)
    assert len(plain[0].engine.trades) > 0  # the comparison covers trading days
    # it rolled exactly after each day's last bar (23:59), twice in three days
    assert [i for i, r in enumerate(early[2]) if r] == [DAY - 1, 2 * DAY - 1]
    _same(plain, early)
    assert len(early[0].days) == 2  # the third day is still open
    assert early[0].close_day() == plain[0].close_day()


def test_a_day_begun_early_that_gets_no_scan_is_not_a_day_of_the_session():
    scans = _scans()
    gap = scans.drop(index=scans.index[DAY:2 * DAY]).reset_index(drop=True)  # day 2 missing
    gap = gap.iloc[:DAY + 600]  # day 3 ends at 10:00
    plain, early = _run(gap, preroll=False), _run(gap, preroll=True)
    assert early[2][DAY - 1]  # day 2 was begun after day 1's last scan, then never scanned
    _same(plain, early)
    assert [d.date for d in early[0].days] == ["2024-01-01"]


def test_a_session_that_stops_after_the_roll_records_no_empty_day():
    scans = _scans(days=1)
    core, _, rolled = _run(scans, preroll=True)
    assert rolled[-1] and core.prerolled and core.current_date == "2024-01-02"
    assert len(core.days) == 1
    assert core.close_day() is None  # the stop's close_day: nothing more recorded
    assert len(core.days) == 1


def test_a_scan_of_a_day_already_ended_is_dropped():
    scans = _scans(days=1)
    assets = [c for c in scans.columns if c.endswith("USDT")]
    inputs = scan_inputs(scans, assets)
    core = _core(assets)
    for scan in inputs:
        core.on_scan(scan)
        core.after_scan(scan)
    state = core.engine.state.copy()
    late = dataclasses.replace(inputs[-2], scan_number=10**6)  # a new number: no duplicate
    assert core.on_scan(late).skipped == "late"
    assert np.array_equal(core.engine.state, state, equal_nan=True)


def test_nothing_is_begun_early_after_a_gap_or_outside_live_mode():
    scans = _scans(days=1)
    assets = [c for c in scans.columns if c.endswith("USDT")]
    inputs = scan_inputs(scans, assets)
    # the scan before the day's last one is missing: the last step is not the bar step
    core = _core(assets)
    for scan in inputs[:-2] + inputs[-1:]:
        core.on_scan(scan)
        rolled = core.after_scan(scan)
    assert not rolled and core.current_date == "2024-01-01"
    research = DolphinCore(NDAlphaEngine(DolphinConfig(), assets))
    for scan in inputs:
        research.on_scan(scan)
        assert not research.after_scan(scan)
