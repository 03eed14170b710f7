"""The Component state machine (STYLE.md §7) and its error-to-action mapping (STYLE.md §11)."""

from __future__ import annotations

import pytest

from dolphin.core.clock import SimulatedClock
from dolphin.core.errors import (
    BadInputError,
    ConfigError,
    DataError,
    DolphinError,
    ErrorAction,
    HaltTradingError,
    MissingColumnError,
    RetryableError,
    action_for,
)
from dolphin.services import Component, ComponentState, ComponentStateError
from dolphin.services.component import TRANSITIONS, Trigger

S = ComponentState
T0 = 1_700_000_000_000_000_000
ACTIONS = ("start", "stop", "degrade", "recover", "fault")


class Probe(Component):
    """Records every hook call; ``inside_start``/``inside_stop`` run during the hook."""

    def __init__(self, clock=None, **kwargs):
        super().__init__("probe", clock=clock or SimulatedClock(T0), **kwargs)
        self.calls = []
        self.inside_start = None
        self.inside_stop = None

    def on_start(self):
        self.calls.append("on_start")
        if self.inside_start:
            self.inside_start()

    def on_stop(self):
        self.calls.append("on_stop")
        if self.inside_stop:
            self.inside_stop()

    def on_degrade(self, reason):
        self.calls.append(("on_degrade", reason))

    def on_recover(self):
        self.calls.append("on_recover")


def act(comp, action):
    """Call one public action with a fixed argument where it needs one."""
    args = {"degrade": ("why",), "fault": (RuntimeError("boom"),)}.get(action, ())
    getattr(comp, action)(*args)


def in_state(state):
    """Return a fresh Probe in ``state`` (not for the transient STARTING/STOPPING)."""
    comp = Probe()
    if state is S.FAULTED:
        comp.fault(RuntimeError("earlier"))
    if state in (S.RUNNING, S.DEGRADED, S.STOPPED):
        comp.start()
    if state is S.DEGRADED:
        comp.degrade("earlier")
    if state is S.STOPPED:
        comp.stop()
    assert comp.state is state
    return comp


# -- the transition table ---------------------------------------------------------------------

#: By hand: (state, public action) -> the state it ends in; every pair not listed is refused.
ALLOWED = {
    (S.INITIALIZED, "start"): S.RUNNING,
    (S.INITIALIZED, "fault"): S.FAULTED,
    (S.RUNNING, "stop"): S.STOPPED,
    (S.RUNNING, "degrade"): S.DEGRADED,
    (S.RUNNING, "fault"): S.FAULTED,
    (S.DEGRADED, "stop"): S.STOPPED,
    (S.DEGRADED, "degrade"): S.DEGRADED,
    (S.DEGRADED, "recover"): S.RUNNING,
    (S.DEGRADED, "fault"): S.FAULTED,
}
STEADY = (S.INITIALIZED, S.RUNNING, S.DEGRADED, S.STOPPED, S.FAULTED)


def test_the_table_holds_exactly_the_hand_written_transitions():
    expected = {
        (S.INITIALIZED, Trigger.START): S.STARTING,
        (S.STARTING, Trigger.START_COMPLETED): S.RUNNING,
        (S.RUNNING, Trigger.STOP): S.STOPPING,
        (S.DEGRADED, Trigger.STOP): S.STOPPING,
        (S.STOPPING, Trigger.STOP_COMPLETED): S.STOPPED,
        (S.RUNNING, Trigger.DEGRADE): S.DEGRADED,
        (S.DEGRADED, Trigger.DEGRADE): S.DEGRADED,
        (S.DEGRADED, Trigger.RECOVER): S.RUNNING,
        (S.INITIALIZED, Trigger.FAULT): S.FAULTED,
        (S.STARTING, Trigger.FAULT): S.FAULTED,
        (S.RUNNING, Trigger.FAULT): S.FAULTED,
        (S.DEGRADED, Trigger.FAULT): S.FAULTED,
        (S.STOPPING, Trigger.FAULT): S.FAULTED,
    }
    assert expected == TRANSITIONS


@pytest.mark.parametrize(("state", "action"), [k for k in ALLOWED])
def test_allowed_action_reaches_its_state(state, action):
    comp = in_state(state)
    act(comp, action)
    assert comp.state is ALLOWED[(state, action)]


@pytest.mark.parametrize(
    ("state", "action"),
    [(s, a) for s in STEADY for a in ACTIONS if (s, a) not in ALLOWED],
)
def test_refused_action_raises_naming_state_and_action_and_changes_nothing(state, action):
    comp = in_state(state)
    calls_before = list(comp.calls)
    with pytest.raises(ComponentStateError, match=f"cannot {action} while {state.name}") as info:
        act(comp, action)
    assert (info.value.component, info.value.state, info.value.action) == ("probe", state, action)
    assert comp.state is state
    assert comp.calls == calls_before


@pytest.mark.parametrize("transient", ["start", "stop"])
def test_while_starting_or_stopping_only_fault_is_allowed(transient):
    comp = in_state(S.RUNNING) if transient == "stop" else Probe()
    name = "STARTING" if transient == "start" else "STOPPING"
    refused = []

    def try_each():
        for action in ("start", "stop", "degrade", "recover"):
            with pytest.raises(ComponentStateError, match=f"cannot {action} while {name}"):
                act(comp, action)
            refused.append(action)

    setattr(comp, f"inside_{transient}", try_each)
    getattr(comp, transient)()
    assert refused == ["start", "stop", "degrade", "recover"]
    assert comp.state is (S.RUNNING if transient == "start" else S.STOPPED)


@pytest.mark.parametrize("transient", ["start", "stop"])
def test_a_hook_may_fault_its_own_component_and_the_start_or_stop_ends_there(transient):
    comp = in_state(S.RUNNING) if transient == "stop" else Probe()
    err = HaltTradingError("ledger mismatch")
    setattr(comp, f"inside_{transient}", lambda: comp.fault(err))
    getattr(comp, transient)()
    assert comp.state is S.FAULTED
    assert comp.error is err


# -- hooks ------------------------------------------------------------------------------------


def test_start_then_stop_call_each_hook_once_in_order():
    comp = Probe()
    comp.start()
    assert comp.state is S.RUNNING
    comp.stop()
    assert comp.state is S.STOPPED
    assert comp.calls == ["on_start", "on_stop"]


def test_a_failing_on_start_leaves_faulted_with_the_error_kept_and_reraised():
    comp = Probe()
    err = ConfigError("no venue keys")

    def fail():
        raise err

    comp.inside_start = fail
    with pytest.raises(ConfigError, match="no venue keys") as info:
        comp.start()
    assert info.value is err
    assert comp.state is S.FAULTED
    assert comp.error is err
    assert comp.reason == "ConfigError: no venue keys"
    with pytest.raises(ComponentStateError):
        comp.stop()
    assert comp.calls == ["on_start"]


def test_a_failing_on_stop_leaves_faulted():
    comp = in_state(S.RUNNING)
    comp.inside_stop = lambda: 1 / 0
    with pytest.raises(ZeroDivisionError):
        comp.stop()
    assert comp.state is S.FAULTED
    assert isinstance(comp.error, ZeroDivisionError)


def test_an_interrupted_start_is_faulted_not_left_starting():
    comp = Probe()

    def interrupt():
        raise KeyboardInterrupt

    comp.inside_start = interrupt
    with pytest.raises(KeyboardInterrupt):
        comp.start()
    assert comp.state is S.FAULTED


def test_degrade_and_recover_call_their_hooks_and_set_then_clear_the_reason():
    comp = in_state(S.RUNNING)
    comp.degrade("scan 40 s stale")
    assert (comp.state, comp.reason) == (S.DEGRADED, "scan 40 s stale")
    comp.degrade("scan 90 s stale")
    assert comp.reason == "scan 90 s stale"
    comp.recover()
    assert (comp.state, comp.reason) == (S.RUNNING, None)
    assert comp.calls == [
        "on_start",
        ("on_degrade", "scan 40 s stale"),
        ("on_degrade", "scan 90 s stale"),
        "on_recover",
    ]


def test_a_failing_on_degrade_faults_and_reraises():
    class Fragile(Probe):
        def on_degrade(self, reason):
            raise RuntimeError("cannot lower risk")

    comp = Fragile()
    comp.start()
    with pytest.raises(RuntimeError, match="cannot lower risk"):
        comp.degrade("x")
    assert comp.state is S.FAULTED


def test_fault_keeps_the_first_error():
    comp = in_state(S.RUNNING)
    first, second = HaltTradingError("first"), HaltTradingError("second")
    comp.fault(first)
    with pytest.raises(ComponentStateError, match="cannot fault while FAULTED"):
        comp.fault(second)
    assert comp.error is first
    assert comp.reason == "HaltTradingError: first"


def test_bad_construction_is_a_config_error():
    with pytest.raises(ConfigError, match="max_retries must be >= 1, got 0"):
        Probe(max_retries=0)
    with pytest.raises(ConfigError, match="name must not be empty"):
        Component("", clock=SimulatedClock())


# -- heartbeat --------------------------------------------------------------------------------


def test_heartbeat_reports_name_state_clock_time_reason_and_counts_beats():
    clock = SimulatedClock(T0)
    comp = Probe(clock)
    assert comp.heartbeat() == {
        "component": "probe",
        "state": "INITIALIZED",
        "ts_ns": T0,
        "reason": None,
        "beats": 1,
    }
    comp.start()
    clock.advance(5_000_000_000)
    assert comp.heartbeat() == {
        "component": "probe",
        "state": "RUNNING",
        "ts_ns": T0 + 5_000_000_000,
        "reason": None,
        "beats": 2,
    }
    comp.degrade("OB feed silent")
    clock.sleep(0.5)
    assert comp.heartbeat() == {
        "component": "probe",
        "state": "DEGRADED",
        "ts_ns": T0 + 5_500_000_000,
        "reason": "OB feed silent",
        "beats": 3,
    }
    comp.fault(HaltTradingError("ledger hash mismatch"))
    assert comp.heartbeat() == {
        "component": "probe",
        "state": "FAULTED",
        "ts_ns": T0 + 5_500_000_000,
        "reason": "HaltTradingError: ledger hash mismatch",
        "beats": 4,
    }
    assert comp.state is S.FAULTED  # a heartbeat never changes the state


# -- errors to actions ------------------------------------------------------------------------

ERROR_CASES = [
    (RetryableError("store went away"), ErrorAction.RETRY, S.RUNNING),
    (BadInputError("bad", field="price", value=-1.0), ErrorAction.DEGRADE, S.DEGRADED),
    (DataError("malformed"), ErrorAction.DEGRADE, S.DEGRADED),
    (MissingColumnError("no close"), ErrorAction.DEGRADE, S.DEGRADED),
    (ConfigError("bad config"), ErrorAction.HALT, S.FAULTED),
    (HaltTradingError("invariant"), ErrorAction.HALT, S.FAULTED),
    (DolphinError("plain"), ErrorAction.HALT, S.FAULTED),
    (ValueError("not ours"), ErrorAction.HALT, S.FAULTED),
    (KeyError("k"), ErrorAction.HALT, S.FAULTED),
    (ComponentStateError("other", S.STOPPED, "stop"), ErrorAction.HALT, S.FAULTED),
]


@pytest.mark.parametrize(("exc", "action", "_state"), ERROR_CASES)
def test_action_for_maps_each_error_type(exc, action, _state):
    assert action_for(exc) is action


def test_action_for_prefers_halt_when_a_class_is_both_halting_and_retryable():
    class AmbiguousError(RetryableError, HaltTradingError):
        pass

    class AmbiguousInputError(BadInputError, ConfigError):
        pass

    assert action_for(AmbiguousError()) is ErrorAction.HALT
    assert action_for(AmbiguousInputError("x")) is ErrorAction.HALT


@pytest.mark.parametrize(("exc", "action", "state"), ERROR_CASES)
def test_run_step_maps_each_error_type_to_its_state(exc, action, state):
    comp = in_state(S.RUNNING)

    def step():
        raise exc

    assert comp.run_step(step) is action
    assert comp.state is state
    assert comp.error is (exc if state is S.FAULTED else None)
    assert comp.retries == (1 if action is ErrorAction.RETRY else 0)


def test_run_step_calls_fn_once_and_returns_none_on_success():
    comp = in_state(S.RUNNING)
    calls = []
    assert comp.run_step(lambda: calls.append(1)) is None
    assert calls == [1]
    assert comp.state is S.RUNNING


def test_bad_input_is_dropped_and_the_service_goes_on_degraded():
    comp = in_state(S.RUNNING)

    def bad():
        raise BadInputError("NaN price", source="BTCUSDT", value=float("nan"))

    comp.run_step(bad)
    assert comp.state is S.DEGRADED
    assert comp.reason == "bad input dropped: BTCUSDT: NaN price (value: nan)"
    assert comp.run_step(lambda: None) is None  # still runs steps while degraded
    assert comp.state is S.DEGRADED  # recovery is explicit


def test_retries_degrade_on_the_max_retries_th_consecutive_one():
    comp = Probe(max_retries=3)
    comp.start()

    def flaky():
        raise RetryableError("timeout")

    comp.run_step(flaky)
    comp.run_step(flaky)
    assert (comp.state, comp.retries) == (S.RUNNING, 2)
    assert comp.run_step(flaky) is ErrorAction.RETRY
    assert (comp.state, comp.retries) == (S.DEGRADED, 3)
    assert comp.reason == "3 consecutive retries; last: timeout"
    comp.run_step(flaky)  # still retrying while degraded, reason updated
    assert (comp.state, comp.retries) == (S.DEGRADED, 4)
    assert comp.reason == "4 consecutive retries; last: timeout"


def test_a_success_between_retries_resets_the_streak():
    comp = Probe(max_retries=3)
    comp.start()

    def flaky():
        raise RetryableError("timeout")

    for step in (flaky, flaky, lambda: None, flaky, flaky):
        comp.run_step(step)
    assert (comp.state, comp.retries) == (S.RUNNING, 2)


def test_recover_returns_to_running_and_clears_retries():
    comp = Probe(max_retries=1)
    comp.start()

    def flaky():
        raise RetryableError("timeout")

    comp.run_step(flaky)
    assert comp.state is S.DEGRADED
    comp.recover()
    assert (comp.state, comp.reason, comp.retries) == (S.RUNNING, None, 0)
    assert comp.heartbeat()["state"] == "RUNNING"


def test_a_fault_in_a_degraded_step_halts():
    comp = in_state(S.DEGRADED)

    def broken():
        raise HaltTradingError("drawdown breach")

    assert comp.run_step(broken) is ErrorAction.HALT
    assert comp.state is S.FAULTED


@pytest.mark.parametrize("state", [S.INITIALIZED, S.STOPPED, S.FAULTED])
def test_run_step_is_refused_unless_running_or_degraded(state):
    comp = in_state(state)
    calls = []
    with pytest.raises(ComponentStateError, match=f"cannot run a step while {state.name}"):
        comp.run_step(lambda: calls.append(1))
    assert calls == []


def test_run_step_lets_keyboard_interrupt_through_unchanged():
    comp = in_state(S.RUNNING)

    def interrupt():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        comp.run_step(interrupt)
    assert comp.state is S.RUNNING
