"""The ``Component`` base: a long-running service as a tiny state machine (STYLE.md §7, §11).

A simplified NautilusTrader component FSM::

    INITIALIZED -start-> STARTING -(on_start ok)-> RUNNING -stop-> STOPPING -(on_stop ok)-> STOPPED
                                                   RUNNING <-recover- DEGRADED (-degrade-> itself)
    fault: INITIALIZED, STARTING, RUNNING, DEGRADED, STOPPING -> FAULTED

STOPPED and FAULTED are final: a restart builds a new component and goes through the normal
cold-start path (STYLE.md §13), so there is no resume/reset branch to keep correct.
Every public method is one row of ``TRANSITIONS``; anything else raises ``ComponentStateError``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum
from typing import Any

from dolphin.core.clock import Clock
from dolphin.core.errors import ConfigError, DolphinError, ErrorAction, action_for

_log = logging.getLogger(__name__)


class ComponentState(Enum):
    """Where a component is in its life; heartbeats carry the name."""

    INITIALIZED = "initialized"
    STARTING = "starting"
    RUNNING = "running"
    DEGRADED = "degraded"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAULTED = "faulted"


class Trigger(Enum):
    """What drives a transition: a public method, or the end of ``on_start``/``on_stop``."""

    START = "start"
    START_COMPLETED = "start_completed"
    STOP = "stop"
    STOP_COMPLETED = "stop_completed"
    DEGRADE = "degrade"
    RECOVER = "recover"
    FAULT = "fault"


_S, _T = ComponentState, Trigger
#: (state, trigger) -> next state. A pair that is not here is refused.
TRANSITIONS: dict[tuple[ComponentState, Trigger], ComponentState] = {
    (_S.INITIALIZED, _T.START): _S.STARTING,
    (_S.STARTING, _T.START_COMPLETED): _S.RUNNING,
    (_S.RUNNING, _T.STOP): _S.STOPPING,
    (_S.DEGRADED, _T.STOP): _S.STOPPING,
    (_S.STOPPING, _T.STOP_COMPLETED): _S.STOPPED,
    (_S.RUNNING, _T.DEGRADE): _S.DEGRADED,
    # A second problem while degraded replaces the reason, so the heartbeat shows the latest one.
    (_S.DEGRADED, _T.DEGRADE): _S.DEGRADED,
    (_S.DEGRADED, _T.RECOVER): _S.RUNNING,
    (_S.INITIALIZED, _T.FAULT): _S.FAULTED,
    (_S.STARTING, _T.FAULT): _S.FAULTED,
    (_S.RUNNING, _T.FAULT): _S.FAULTED,
    (_S.DEGRADED, _T.FAULT): _S.FAULTED,
    (_S.STOPPING, _T.FAULT): _S.FAULTED,
}

#: States in which ``run_step`` does work.
ACTIVE = frozenset({ComponentState.RUNNING, ComponentState.DEGRADED})


class ComponentStateError(DolphinError, RuntimeError):
    """An action was asked of a component in a state that does not allow it (maps to HALT)."""

    def __init__(self, component: str, state: ComponentState, action: str) -> None:
        self.component = component
        self.state = state
        self.action = action
        super().__init__(f"component {component!r}: cannot {action} while {state.name}")


class Component:
    """Base for services: subclass, override ``on_start``/``on_stop``, drive work by ``run_step``.

    A hook that raises faults the component, keeps the error and re-raises it to the caller of the
    public method (the launcher needs it for its exit code). ``run_step`` does not re-raise: it
    maps the error to an action (``core.errors.action_for``) and the state shows the outcome.
    """

    def __init__(self, name: str, *, clock: Clock, max_retries: int = 3) -> None:
        if not name:
            raise ConfigError("component name must not be empty")
        if max_retries < 1:
            raise ConfigError(f"component {name!r}: max_retries must be >= 1, got {max_retries}")
        self.name = name
        self.clock = clock
        self.max_retries = max_retries
        self._state = ComponentState.INITIALIZED
        self._reason: str | None = None
        self._error: BaseException | None = None
        self._retries = 0
        self._beats = 0

    @property
    def state(self) -> ComponentState:
        """Return the current state."""
        return self._state

    @property
    def reason(self) -> str | None:
        """Return why the component is DEGRADED or FAULTED, else None."""
        return self._reason

    @property
    def error(self) -> BaseException | None:
        """Return the error that faulted the component, if any."""
        return self._error

    @property
    def retries(self) -> int:
        """Return the number of consecutive retryable failures of ``run_step``."""
        return self._retries

    def on_start(self) -> None:
        """Acquire resources and read persisted state; raise to refuse to start."""

    def on_stop(self) -> None:
        """Release resources."""

    def on_degrade(self, reason: str) -> None:
        """React to entering (or staying in) DEGRADED, e.g. lower risk."""

    def on_recover(self) -> None:
        """React to leaving DEGRADED."""

    def start(self) -> None:
        """Start: STARTING, call ``on_start``, then RUNNING (FAULTED if it raises)."""
        self._fire(Trigger.START, "start")
        self._call_hook(self.on_start)
        # An ``on_start`` that faulted the component itself has ended the start there.
        if self._state is ComponentState.STARTING:
            self._fire(Trigger.START_COMPLETED, "start")

    def stop(self) -> None:
        """Stop: STOPPING, call ``on_stop``, then STOPPED (FAULTED if it raises)."""
        self._fire(Trigger.STOP, "stop")
        self._call_hook(self.on_stop)
        if self._state is ComponentState.STOPPING:
            self._fire(Trigger.STOP_COMPLETED, "stop")

    def degrade(self, reason: str) -> None:
        """Keep running with a known problem; ``reason`` goes into every heartbeat."""
        self._fire(Trigger.DEGRADE, "degrade")
        self._reason = reason
        _log.warning("component=%s event=degraded reason=%r", self.name, reason)
        self._call_hook(self.on_degrade, reason)

    def recover(self) -> None:
        """Leave DEGRADED for RUNNING, clearing the reason and the retry count."""
        self._fire(Trigger.RECOVER, "recover")
        self._reason = None
        self._retries = 0
        self._call_hook(self.on_recover)

    def fault(self, error: BaseException) -> None:
        """Halt for good: FAULTED, keeping ``error``; the first error is the one kept."""
        self._fire(Trigger.FAULT, "fault")
        self._error = error
        self._reason = f"{type(error).__name__}: {error}"
        _log.error("component=%s event=faulted reason=%r", self.name, self._reason, exc_info=error)

    def heartbeat(self) -> dict[str, Any]:
        """Count a beat and return ``{component, state, ts_ns, reason, beats}`` for the watchdog."""
        self._beats += 1
        return {
            "component": self.name,
            "state": self._state.name,
            "ts_ns": self.clock.now_ns(),
            "reason": self._reason,
            "beats": self._beats,
        }

    def run_step(self, fn: Callable[[], object]) -> ErrorAction | None:
        """Call ``fn()`` and handle its failure by type; return the action taken, None on success.

        RETRY stays in the current state and counts; the ``max_retries``-th consecutive one
        degrades. DEGRADE drops the input and goes on. HALT faults. Only ``Exception`` is caught:
        KeyboardInterrupt and SystemExit must still end the process.
        """
        if self._state not in ACTIVE:
            raise ComponentStateError(self.name, self._state, "run a step")
        try:
            fn()
        except Exception as exc:
            return self._handle(exc)
        self._retries = 0
        return None

    def _handle(self, exc: Exception) -> ErrorAction:
        action = action_for(exc)
        if action is ErrorAction.RETRY:
            self._retries += 1
            _log.info("component=%s event=retry n=%d error=%r", self.name, self._retries, exc)
            if self._retries >= self.max_retries:
                self.degrade(f"{self._retries} consecutive retries; last: {exc}")
            return action
        # Any other outcome breaks the streak: "consecutive" means nothing else came between.
        self._retries = 0
        if action is ErrorAction.DEGRADE:
            self.degrade(f"bad input dropped: {exc}")
        else:
            self.fault(exc)
        return action

    def _fire(self, trigger: Trigger, action: str) -> None:
        nxt = TRANSITIONS.get((self._state, trigger))
        if nxt is None:
            raise ComponentStateError(self.name, self._state, action)
        _log.info(
            "component=%s event=transition from=%s to=%s", self.name, self._state.name, nxt.name
        )
        self._state = nxt

    def _call_hook(self, hook: Callable[..., None], *args: object) -> None:
        try:
            hook(*args)
        # BaseException too: a start cut short by Ctrl-C must not be left looking STARTING.
        except BaseException as exc:
            # The hook may have moved the state itself (faulted, stopped); keep what it did.
            if (self._state, Trigger.FAULT) in TRANSITIONS:
                self.fault(exc)
            raise
