"""Worker processes die with their parent, through prctl and through the watchdog alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.kit.paths import REPO
from tests.kit.procs import process_alive

# The parent forks a worker that arms die_with_parent, prints the worker's pid and sleeps.
PARENT = textwrap.dedent("""
    import os, sys, time
    from dolphin.core import procs
    if sys.argv[1] == "watchdog-only":
        procs._set_pdeathsig = lambda sig: False
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        procs.worker_init(parent)
        while True:
            time.sleep(0.05)  # Python code: the watchdog thread gets its turn
    print(pid, flush=True)
    time.sleep(600)
""")


@pytest.mark.parametrize("mode", ["prctl", "watchdog-only"])
def test_a_worker_dies_when_its_parent_is_sigkilled(mode):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, mode], stdout=subprocess.PIPE,
                              text=True, env=env)
    worker = int(parent.stdout.readline())
    try:
        time.sleep(0.3)
        assert process_alive(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while process_alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not process_alive(worker)
    finally:
        if process_alive(worker):
            os.kill(worker, signal.SIGKILL)


def test_a_worker_ignores_ctrl_c():
    from dolphin.core.procs import ignore_sigint

    before = signal.getsignal(signal.SIGINT)
    try:
        ignore_sigint()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
