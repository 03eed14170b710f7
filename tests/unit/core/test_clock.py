"""Clocks (STYLE.md §7, §12): the live one reads the system, the simulated one moves on request."""

from __future__ import annotations

import time

import pytest

from dolphin.core.clock import Clock, ClockError, LiveClock, SimulatedClock
from dolphin.core.errors import ErrorAction, action_for

T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z in ns


def test_both_clocks_satisfy_the_protocol():
    assert isinstance(LiveClock(), Clock)
    assert isinstance(SimulatedClock(), Clock)


def test_live_clock_reads_the_system_clocks_in_integer_ns():
    clock = LiveClock()
    before = time.time_ns()
    now = clock.now_ns()
    after = time.time_ns()
    assert isinstance(now, int)
    assert before <= now <= after
    m1 = clock.monotonic_ns()
    clock.sleep(0.001)
    m2 = clock.monotonic_ns()
    assert isinstance(m1, int)
    assert m2 - m1 >= 1_000_000


def test_simulated_clock_starts_at_the_given_ns_and_monotonic_at_zero():
    clock = SimulatedClock(T0)
    assert clock.now_ns() == T0
    assert clock.monotonic_ns() == 0
    assert SimulatedClock().now_ns() == 0


def test_advance_moves_wall_and_monotonic_time_together():
    clock = SimulatedClock(T0)
    clock.advance(1_500)
    clock.advance(0)
    assert clock.now_ns() == T0 + 1_500
    assert clock.monotonic_ns() == 1_500


def test_sleep_advances_instead_of_waiting():
    clock = SimulatedClock(T0)
    wall_before = time.monotonic()
    clock.sleep(3600)  # an hour
    assert time.monotonic() - wall_before < 1.0
    assert clock.now_ns() == T0 + 3_600_000_000_000
    clock.sleep(0.25)
    assert clock.now_ns() == T0 + 3_600_250_000_000
    clock.sleep(1e-9)  # one nanosecond, rounded not truncated
    assert clock.now_ns() == T0 + 3_600_250_000_001


@pytest.mark.parametrize("seconds", [-0.001, float("nan"), float("inf")])
def test_sleep_refuses_negative_or_non_finite_seconds(seconds):
    clock = SimulatedClock(T0)
    with pytest.raises(ClockError, match="sleep"):
        clock.sleep(seconds)
    assert clock.now_ns() == T0


def test_advance_refuses_negative_ns():
    clock = SimulatedClock(T0)
    with pytest.raises(ClockError, match="-1"):
        clock.advance(-1)
    assert clock.now_ns() == T0


@pytest.mark.parametrize("bad", [1.5, "10", None])
def test_ns_arguments_must_be_integers(bad):
    with pytest.raises(ClockError, match="integer"):
        SimulatedClock(bad)
    clock = SimulatedClock(T0)
    for call in (clock.advance, clock.set, lambda v: clock.call_at(v, lambda: None)):
        with pytest.raises(ClockError, match="integer"):
            call(bad)


def test_set_forward_moves_both_clocks_by_the_jump():
    clock = SimulatedClock(T0)
    clock.set(T0 + 10)
    clock.set(T0 + 10)  # same time is not backwards
    assert (clock.now_ns(), clock.monotonic_ns()) == (T0 + 10, 10)


def test_set_backwards_is_refused_by_default():
    clock = SimulatedClock(T0)
    clock.advance(100)
    with pytest.raises(ClockError, match=f"from {T0 + 100} to {T0 + 99}"):
        clock.set(T0 + 99)
    assert (clock.now_ns(), clock.monotonic_ns()) == (T0 + 100, 100)


def test_set_backwards_when_allowed_moves_wall_time_only():
    clock = SimulatedClock(T0)
    clock.advance(100)
    clock.set(T0 - 5_000, allow_backwards=True)
    assert clock.now_ns() == T0 - 5_000
    assert clock.monotonic_ns() == 100  # a wall-clock step never bends monotonic time
    clock.advance(7)
    assert (clock.now_ns(), clock.monotonic_ns()) == (T0 - 4_993, 107)


def test_clock_error_is_not_bad_input_and_maps_to_halt():
    assert action_for(ClockError("x")) is ErrorAction.HALT


def test_call_at_fires_in_time_order_each_at_its_own_time():
    clock = SimulatedClock(T0)
    seen = []

    def note(tag):
        return lambda: seen.append((tag, clock.now_ns(), clock.monotonic_ns()))

    clock.call_at(T0 + 70, note("c"))
    clock.call_at(T0 + 30, note("a"))
    clock.call_at(T0 + 50, note("b"))
    clock.call_at(T0 + 200, note("late"))
    clock.advance(100)
    assert seen == [("a", T0 + 30, 30), ("b", T0 + 50, 50), ("c", T0 + 70, 70)]
    assert clock.now_ns() == T0 + 100
    assert clock.pending == 1


def test_call_at_ties_fire_in_scheduling_order():
    clock = SimulatedClock(T0)
    seen = []
    for tag in ("first", "second", "third"):
        clock.call_at(T0 + 10, lambda tag=tag: seen.append(tag))
    clock.sleep(1)
    assert seen == ["first", "second", "third"]


def test_call_at_fires_when_time_reaches_it_exactly_and_not_before():
    clock = SimulatedClock(T0)
    seen = []
    clock.call_at(T0 + 10, lambda: seen.append(clock.now_ns()))
    clock.advance(9)
    assert seen == []
    clock.set(T0 + 10)
    assert seen == [T0 + 10]
    assert clock.pending == 0


def test_call_at_now_fires_on_the_next_move_even_a_zero_one():
    clock = SimulatedClock(T0)
    seen = []
    clock.call_at(T0, lambda: seen.append(clock.now_ns()))
    assert seen == []
    clock.advance(0)
    assert seen == [T0]


def test_call_at_in_the_past_is_refused():
    clock = SimulatedClock(T0)
    with pytest.raises(ClockError, match="past"):
        clock.call_at(T0 - 1, lambda: None)


def test_a_callback_may_schedule_another_inside_the_same_advance():
    clock = SimulatedClock(T0)
    seen = []

    def tick():
        seen.append(clock.now_ns() - T0)
        clock.call_at(clock.now_ns() + 30, tick)

    clock.call_at(T0 + 30, tick)
    clock.advance(100)
    assert seen == [30, 60, 90]
    assert clock.pending == 1


def test_a_callback_may_not_move_the_clock():
    clock = SimulatedClock(T0)
    clock.call_at(T0 + 10, lambda: clock.advance(5))
    with pytest.raises(ClockError, match="inside a call_at callback"):
        clock.advance(20)
    # The clock stopped at the failing callback's time and can be moved again afterwards.
    assert clock.now_ns() == T0 + 10
    clock.advance(10)
    assert clock.now_ns() == T0 + 20


def test_a_raising_callback_stops_the_advance_at_its_time():
    clock = SimulatedClock(T0)
    seen = []

    def boom():
        raise RuntimeError("callback failed")

    clock.call_at(T0 + 10, boom)
    clock.call_at(T0 + 20, lambda: seen.append("later"))
    with pytest.raises(RuntimeError, match="callback failed"):
        clock.advance(100)
    assert (clock.now_ns(), seen, clock.pending) == (T0 + 10, [], 1)
    clock.advance(90)
    assert (clock.now_ns(), seen) == (T0 + 100, ["later"])


def test_after_a_backwards_jump_pending_callbacks_wait_for_wall_time_to_return():
    clock = SimulatedClock(T0)
    seen = []
    clock.call_at(T0 + 10, lambda: seen.append(clock.monotonic_ns()))
    clock.set(T0 - 100, allow_backwards=True)
    clock.advance(109)
    assert seen == []
    clock.advance(1)
    assert seen == [110]
