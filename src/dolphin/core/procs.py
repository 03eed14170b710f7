"""Worker-process hygiene: a worker dies with its parent and leaves Ctrl-C to the parent.

A pool worker whose parent is SIGKILLed would otherwise live on as an orphan (re-parented to
init) and keep burning a shared core until its task ends. :func:`die_with_parent` asks the Linux
kernel to SIGKILL the worker when its parent dies (``prctl(PR_SET_PDEATHSIG)``) and, as a
fallback for other platforms and for the window before the call, starts a watchdog thread that
exits the worker as soon as its parent pid changes. The watchdog can only run between bytecodes,
so a long native call finishes first; the prctl path needs no cooperation at all.

:func:`guard_forked_children` applies the same to every child the process forks (an
``os.register_at_fork`` hook), so pools created by code that sets no initializer of its own
(the scanner backfill, the MC sampler) are covered too. The ``dolphin`` command installs it.
Caveat of ``PR_SET_PDEATHSIG``: it fires when the *thread* that forked exits; DOLPHIN forks its
pools from the main thread only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
#: How often the fallback watchdog checks the parent pid.
WATCHDOG_PERIOD_S = 0.5
#: Exit status of a worker stopped because its parent died.
ORPHAN_EXIT = 70

_state = {"armed": False, "hooked": False, "fork_parent": 0}


def _set_pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int, period_s: float) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(ORPHAN_EXIT)
        time.sleep(period_s)


def die_with_parent(parent_pid: int, *, period_s: float = WATCHDOG_PERIOD_S) -> bool:
    """Make the calling (worker) process exit when ``parent_pid`` dies; report prctl success.

    Call it first thing in a pool initializer, with the parent's pid captured before the fork.
    Idempotent within one process.
    """
    if _state["armed"]:
        return True
    _state["armed"] = True
    armed = _set_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the prctl took effect
        os._exit(ORPHAN_EXIT)
    threading.Thread(
        target=_watch_parent, args=(parent_pid, period_s), name="parent-watchdog", daemon=True
    ).start()
    return armed


def ignore_sigint() -> None:
    """Leave Ctrl-C to the parent: a terminal sends SIGINT to the whole process group, and a
    worker raising KeyboardInterrupt would print its own traceback."""
    with contextlib.suppress(ValueError):  # not the main thread: nothing to do
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def worker_init(parent_pid: int) -> None:
    """The standard worker initializer: die with the parent, ignore Ctrl-C."""
    ignore_sigint()
    die_with_parent(parent_pid)


def _before_fork() -> None:
    _state["fork_parent"] = os.getpid()


def _after_fork_in_child() -> None:
    _state["armed"] = False  # a fresh process: its own parent to watch
    worker_init(_state["fork_parent"])


def guard_forked_children() -> None:
    """Make every child this process forks from now on ignore Ctrl-C and die with it.

    A forked child that execs another program keeps the ignored SIGINT and the death signal,
    which is what a helper tied to this process wants; ``subprocess`` runs these hooks only
    with a ``preexec_fn``, so ordinary subprocesses are not affected. Idempotent.
    """
    if _state["hooked"] or not hasattr(os, "register_at_fork"):
        return
    _state["hooked"] = True
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
