"""Bible §18.3 behaviours of the Dolphin strategy, on real ``DolphinStrategy`` instances.

The strategy is a real Nautilus ``Strategy`` built without a kernel (Bible §18.2): its logger
is the real one (``actor.log`` is read-only), and scans are fed through ``core.on_scan``, the
method ``on_data`` delegates to. Order placement against a real venue is covered by the
integration and e2e tests.
"""

from __future__ import annotations

import threading
from unittest.mock import patch

import numpy as np
import pytest
from nautilus_trader.trading.strategy import Strategy

from dolphin.adapters.nautilus.scan_driver import DolphinCore, scan_inputs
from dolphin.adapters.nautilus.strategy import DolphinStrategy, DolphinStrategyConfig
from dolphin.alpha.engine import NDAlphaEngine
from dolphin.commands.paper import check_champion
from dolphin.core.config import CHAMPION_BLUE_ID, DolphinConfig
from dolphin.core.errors import ConfigError
from dolphin.store.memory import MemoryStore
from dolphin.store.ports import EntryEvent, EntryEventKind
from dolphin.store.schema import ACB_BOOST, FEATURES, encode_value
from tests.kit.scans import random_scans

DAY = 1440


def _scans(n_bars: int = 3 * DAY):
    s = random_scans(n_bars, 6, seed=3)
    return s, scan_inputs(s, [c for c in s.columns if c.endswith("USDT")])


def _strategy(posture_source=None, live_mode=False, assets=None):
    assets = assets or [f"A{i:02d}USDT" for i in range(6)]
    core = DolphinCore(NDAlphaEngine(DolphinConfig(), assets), posture_source=posture_source,
                       live_mode=live_mode)
    return DolphinStrategy(DolphinStrategyConfig(strategy_id="T-001"), core)


def _acb_event(boost: float, beta: float) -> EntryEvent:
    text = encode_value({"boost": boost, "beta": beta}, 1)
    return EntryEvent(FEATURES, EntryEventKind.UPDATED, ACB_BOOST, text, None)


class TestChampionParamInvariants:
    def test_strategy_is_a_real_nautilus_strategy_with_read_only_log(self):
        st = _strategy()
        assert isinstance(st, Strategy)
        with pytest.raises(AttributeError):
            st.log = None

    def test_champion_id_is_accepted_and_any_other_refused(self):
        assert DolphinConfig().id == CHAMPION_BLUE_ID
        check_champion(DolphinConfig(), research=False)
        other = DolphinConfig().replace(fixed_tp_pct=0.01)
        with pytest.raises(ConfigError, match="not the declared champion"):
            check_champion(other, research=False)
        check_champion(other, research=True)

    def test_champion_hash_is_stable_and_sensitive(self):
        assert DolphinConfig().id == DolphinConfig().id
        assert DolphinConfig().replace(max_hold_bars=121).id != DolphinConfig().id


class TestACBPendingFlagThreadSafety:
    def test_listener_parks_value_without_touching_engine(self):
        st = _strategy()
        with patch.object(st.engine, "update_acb_boost") as upd:
            st._on_acb_event(_acb_event(1.35, 0.8))
            upd.assert_not_called()
        assert st.core.acb_slot.take().data["boost"] == 1.35

    def test_drain_applies_newest_value_once(self):
        st = _strategy()
        st._on_acb_event(_acb_event(1.2, 0.2))
        st._on_acb_event(_acb_event(1.4, 0.8))
        with patch.object(st.engine, "update_acb_boost") as upd:
            assert st.core.drain_acb() == {"boost": 1.4, "beta": 0.8}
            assert st.core.drain_acb() is None
        upd.assert_called_once_with(1.4, 0.8)

    def test_concurrent_listeners_lose_no_update_and_never_tear(self):
        st = _strategy()
        events = [_acb_event(1.0 + i / 1000, 0.5) for i in range(400)]

        def fire(chunk):
            for e in chunk:
                st._on_acb_event(e)

        threads = [threading.Thread(target=fire, args=(events[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        slot = st.core.acb_slot
        assert slot.received == 400 and slot.superseded == 399
        assert slot.take().data["beta"] == 0.5

    def test_store_listener_delivers_into_the_slot(self):
        store = MemoryStore()
        st = _strategy()
        reg = store.map(FEATURES).add_listener(st._on_acb_event, key=ACB_BOOST)
        store.map(FEATURES).put(ACB_BOOST, encode_value({"boost": 1.3, "beta": 0.2}, 5))
        for _ in range(200):
            if st.core.acb_slot.received:
                break
            threading.Event().wait(0.01)
        assert st.core.drain_acb() == {"boost": 1.3, "beta": 0.2}
        store.map(FEATURES).remove_listener(reg)
        store.close()


class TestHibernatePostureGuard:
    def test_hibernate_skips_the_engine_entirely(self):
        st = _strategy(posture_source=lambda: "HIBERNATE")
        _, rows = _scans(10)
        with patch.object(st.engine, "step_bar") as step:
            outs = [st.core.on_scan(r) for r in rows]
        step.assert_not_called()
        assert {o.skipped for o in outs} == {"hibernate"}

    @pytest.mark.parametrize("posture", ["APEX", "STALKER", "TURTLE"])
    def test_other_postures_step_the_engine(self, posture):
        st = _strategy(posture_source=lambda: posture)
        _, rows = _scans(5)
        for r in rows:
            assert st.core.on_scan(r).skipped == ""
        assert st.core.total_bars == 5 and st.engine.posture == posture


class TestDateChangeHandling:
    def test_rollover_ends_and_begins_days_once_per_date(self):
        st = _strategy()
        _, rows = _scans(DAY + 3)
        with patch.object(st.engine, "begin_day", wraps=st.engine.begin_day) as begin, \
                patch.object(st.engine, "end_day", wraps=st.engine.end_day) as end:
            for r in rows[:3]:
                st.core.on_scan(r)
            assert begin.call_count == 1 and end.call_count == 0
            for r in rows[3:DAY]:
                st.core.on_scan(r)
            assert begin.call_count == 1
            st.core.on_scan(rows[DAY])
            assert begin.call_count == 2 and end.call_count == 1
        assert st.core.bar_idx_today == 1
        assert sorted(st.core.processed_dates) == ["2024-01-01", "2024-01-02"]


class TestStoreUnavailableDegradation:
    # DESIGN.md overrules §14.6: an unknown posture is TURTLE, never APEX.
    def test_unreadable_posture_is_turtle_and_trading_continues(self, caplog):
        def down():
            raise ConnectionError("store unreachable")

        st = _strategy(posture_source=down)
        _, rows = _scans(DAY + 2)
        with caplog.at_level("WARNING"):
            for r in rows:
                st.core.on_scan(r)
        assert st.posture == "TURTLE" and st.core.total_bars == DAY + 2
        assert sum("trading as TURTLE" in m for m in caplog.messages) == 1

    def test_unknown_posture_value_is_turtle(self):
        st = _strategy(posture_source=lambda: "PANIC")
        st.core.on_scan(_scans(1)[1][0])
        assert st.posture == "TURTLE"


class TestReplayModeBarTracking:
    def test_bar_counters_follow_every_step(self):
        st = _strategy()
        _, rows = _scans(50)
        for r in rows:
            st.core.on_scan(r)
        assert st.core.total_bars == 50 and st.core.bar_idx_today == 50
        assert st.core.live_mode is False

    def test_live_mode_dedups_on_scan_number_and_counts_stale_scans(self):
        st = _strategy(live_mode=True)
        _, rows = _scans(3)
        assert st.core.on_scan(rows[0], age_s=0.1).skipped == ""
        assert st.core.on_scan(rows[0], age_s=0.1).skipped == "duplicate"
        st.core.on_scan(rows[1], age_s=30.0)
        assert st.core.total_bars == 2 and st.core.stale_scans == 1


class TestOnStopCleanup:
    def test_on_stop_closes_the_day_and_clears_dates(self):
        st = _strategy()
        for r in _scans(20)[1]:
            st.core.on_scan(r)
        st.on_stop()
        assert [d.date for d in st.core.days] == ["2024-01-01"]
        assert st.core.processed_dates == set()

    def test_store_down_on_stop_is_not_fatal(self):
        st = _strategy()

        class DeadMap:
            def remove_listener(self, reg):
                raise ConnectionError("gone")

        st._acb_map, st._acb_reg = DeadMap(), "r1"
        st.on_stop()  # must not raise


class TestStaleStateGuard:
    def test_posture_change_mid_eval_is_flagged_in_live_mode(self):
        answers = iter(["APEX", "TURTLE"])
        st = _strategy(posture_source=lambda: next(answers, "TURTLE"), live_mode=True)
        out = st.core.on_scan(_scans(1)[1][0], age_s=0.0)
        assert out.stale_state and st.core.stale_state_events == 1

    def test_acb_change_inside_step_is_flagged(self):
        st = _strategy()
        rows = _scans(3)[1]
        real = st.engine.step_bar

        def step_and_boost(*a, **k):
            st.engine.update_acb_boost(1.5, 0.8)
            return real(*a, **k)

        with patch.object(st.engine, "step_bar", side_effect=step_and_boost):
            assert st.core.on_scan(rows[0]).stale_state
        assert not st.core.on_scan(rows[1]).stale_state  # re-evaluated cleanly on the next bar

    def test_stable_gates_are_not_flagged(self):
        st = _strategy()
        outs = [st.core.on_scan(r) for r in _scans(30)[1]]
        assert not any(o.stale_state for o in outs) and st.core.stale_state_events == 0

    def test_gate_snapshot_fields(self):
        st = _strategy()
        st.core.on_scan(_scans(1)[1][0])
        snap = st.core.gate_snap("APEX")
        assert snap._fields == ("acb_boost", "acb_beta", "posture", "mc_gate_open")
        assert np.isfinite(snap.acb_boost)


class TestLivePosturePerBar:
    def test_a_posture_change_mid_day_applies_on_the_next_scan(self):
        # reads: scan 0's day start and its end-of-step check, then scan 1's read before its
        # step: the watchdog's HIBERNATE arrives between scan 0 and scan 1, same UTC day
        answers = iter(["APEX", "APEX", "HIBERNATE"])
        st = _strategy(posture_source=lambda: next(answers, "HIBERNATE"), live_mode=True)
        scans = _scans(3)[1]
        st.core.on_scan(scans[0], age_s=0.0)
        assert st.core.posture == "APEX" and st.core.engine.posture == "APEX"
        st.core.on_scan(scans[1], age_s=0.0)
        assert st.core.posture == "HIBERNATE" and st.core.engine.posture == "HIBERNATE"

    def test_replay_mode_keeps_the_days_posture(self):
        answers = iter(["APEX", "HIBERNATE"])
        st = _strategy(posture_source=lambda: next(answers, "HIBERNATE"), live_mode=False)
        scans = _scans(3)[1]
        st.core.on_scan(scans[0])
        st.core.on_scan(scans[1])
        assert st.core.engine.posture == "APEX"  # read once, at the day's start
