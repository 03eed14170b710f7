"""The ledger's fold (``LedgerView``), worked by hand on a small session, and the store views."""

from __future__ import annotations

import pytest

from dolphin.ledger.chain import Ledger
from dolphin.ledger.views import LedgerView

DAY1 = 1_618_185_600_000_000_000  # 2021-04-12T00:00Z
DAY2 = DAY1 + 86_400 * 10**9


@pytest.fixture
def session(tmp_path):
    """CONFIG, two round trips over two days (a loss, then a win), a funding payment, an open
    position at the end."""
    path = tmp_path / "l.db"
    with Ledger(path) as led:
        led.append("CONFIG", {"config_id": "c1", "initial_capital": 1_000.0}, DAY1)
        led.append("SESSION", {"session": "s1"}, DAY1)
        led.append("POSTURE", {"posture": "APEX"}, DAY1)
        led.append("DECISION", {"bar": 0}, DAY1)
        led.append("ORDER", {"action": "OPEN"}, DAY1 + 60)
        # short 10 @ 2.0, fee 0.5; covered 10 @ 2.5, fee 0.5: venue balance 1000 - 5 - 1 = 994
        led.append("FILL", {"asset": "X", "side": -1, "qty": 10.0, "price": 2.0,
                            "commission": 0.5}, DAY1 + 60)
        led.append("FUNDING", {"paid": 0.25}, DAY1 + 90)
        led.append("FILL", {"asset": "X", "side": 1, "qty": 10.0, "price": 2.5,
                            "commission": 0.5}, DAY1 + 120)
        led.append("CAPITAL", {"balance": 994.0}, DAY1 + 120)
        # day 2: short 4 @ 10 in two fills, covered 4 @ 9: +4 - 1 fees -> 997
        led.append("FILL", {"asset": "Y", "side": -1, "qty": 1.0, "price": 10.0,
                            "commission": 0.25}, DAY2)
        led.append("FILL", {"asset": "Y", "side": -1, "qty": 3.0, "price": 10.0,
                            "commission": 0.25}, DAY2)
        led.append("FILL", {"asset": "Y", "side": 1, "qty": 4.0, "price": 9.0,
                            "commission": 0.5}, DAY2 + 60)
        led.append("CAPITAL", {"balance": 997.0}, DAY2 + 60)
        # still open: short 2 @ 5 then 2 @ 7 -> -4 at 6 average; fees 0.1 + 0.1
        led.append("FILL", {"asset": "Z", "side": -1, "qty": 2.0, "price": 5.0,
                            "commission": 0.1}, DAY2 + 120)
        led.append("FILL", {"asset": "Z", "side": -1, "qty": 2.0, "price": 7.0,
                            "commission": 0.1}, DAY2 + 180)
        led.append("DENIAL", {"asset": "W"}, DAY2 + 180)
        rows = list(led.rows())
    return rows


def test_the_fold_gives_capital_positions_days_and_counts(session):
    v = LedgerView.rebuild(session)
    assert v.config_id == "c1"
    assert v.capital == 997.0 and v.peak == 1_000.0
    assert v.drawdown == pytest.approx(0.003)  # 1 - 997 / 1000
    assert v.balance == pytest.approx(997.0 - 0.2)  # the open position's entry fees
    assert v.net_positions() == {"Z": -4.0}
    assert v.positions["Z"].entry_price == pytest.approx(6.0)
    assert v.trades == 2 and v.loss_streak == 0  # a loss (-6) then a win (+3)
    assert (v.orders, v.fills, v.denials, v.decisions, v.sessions) == (1, 7, 1, 1, 1)
    assert v.funding_paid == 0.25 and v.posture == "APEX"
    assert v.day("2021-04-12") == {"date": "2021-04-12", "pnl": -6.0, "funding": 0.25,
                                   "trades": 1, "capital": 994.0}
    assert v.day("2021-04-13") == {"date": "2021-04-13", "pnl": 3.0, "funding": 0.0,
                                   "trades": 1, "capital": 997.0}
    s = v.state()
    assert s["ledger_head_seq"] == len(session) and s["ledger_head_hash"] == session[-1].hash
    assert s["positions"] == {"Z": {"qty": -4.0, "entry_price": pytest.approx(6.0)}}


def test_a_loss_streak_counts_consecutive_losing_closes(tmp_path):
    with Ledger(tmp_path / "l.db") as led:
        led.append("CONFIG", {"config_id": "c", "initial_capital": 100.0}, 1)
        for balance in (99.0, 98.0, 97.5, 99.0, 98.0):
            led.append("CAPITAL", {"balance": balance}, 2)
        v = LedgerView.rebuild(led.rows())
    assert v.loss_streak == 1 and v.trades == 5 and v.peak == 100.0


def test_folding_row_by_row_equals_the_rebuild_in_any_chunking(session):
    v = LedgerView()
    for row in session[:5]:
        v.apply(row)
    w = LedgerView.rebuild(session[5:])  # a view that missed the start differs...
    assert w.state() != LedgerView.rebuild(session).state()
    for row in session[5:]:
        v.apply(row)
    assert v.state() == LedgerView.rebuild(session).state()  # ...one that folded all does not


def test_the_store_views_are_the_fold_written_after_each_row(session):
    from dolphin.adapters.nautilus.paper_session import StoreViews
    from dolphin.store.memory import MemoryStore
    from dolphin.store.schema import PNL_BLUE, STATE_BLUE, decode_value

    store = MemoryStore()
    views = StoreViews(store, LedgerView())
    for row in session:
        views.on_row(row)
    latest = decode_value(store.map(STATE_BLUE).get("latest")).data
    assert latest == LedgerView.rebuild(session).state()
    day2 = decode_value(store.map(PNL_BLUE).get("2021-04-13")).data
    assert day2["pnl"] == 3.0 and day2["capital"] == 997.0
    # decisions change no view: one write per other row
    assert views.writes == sum(1 for r in session if r.kind != "DECISION")
    # a fresh store rebuilt from the ledger on start shows the same thing
    fresh = MemoryStore()
    StoreViews(fresh, LedgerView.rebuild(session)).publish_all()
    assert decode_value(fresh.map(STATE_BLUE).get("latest")).data == latest
    assert sorted(fresh.map(PNL_BLUE).keys()) == ["2021-04-12", "2021-04-13"]


def test_a_long_session_writes_the_green_pnl_and_each_run_keeps_its_state(session):
    from dolphin.adapters.nautilus.paper_session import StoreViews
    from dolphin.store.memory import MemoryStore
    from dolphin.store.schema import PNL_BLUE, PNL_GREEN, STATE_BLUE, decode_value

    store = MemoryStore()
    views = StoreViews(store, LedgerView(), direction="long", session="s-42")
    for row in session:
        views.on_row(row)
    assert sorted(store.map(PNL_GREEN).keys()) == ["2021-04-12", "2021-04-13"]
    assert store.map(PNL_BLUE).keys() == []
    state = store.map(STATE_BLUE)
    assert sorted(state.keys()) == ["latest_green", "run:s-42"]
    assert decode_value(state.get("run:s-42")).data == LedgerView.rebuild(session).state()
