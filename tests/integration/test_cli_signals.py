"""The real `dolphin` command under signals and closed pipes, in subprocesses.

Ctrl-C (SIGINT) ends a command with exit 130 and one line saying what was saved and how to
resume; a closed stdout ends it quietly; a SIGKILLed parent of ``--workers`` leaves no orphan.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.kit.paths import REPO, SAMPLE, SPOT_1M_2021, require
from tests.kit.procs import children, process_alive, wait_for
from tests.kit.scans import random_scans

ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


def _dolphin(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dolphin", *args], env=ENV,
                            stdout=kw.pop("stdout", subprocess.PIPE), stderr=subprocess.PIPE,
                            text=True, **kw)


@pytest.fixture(scope="module")
def long_sweep(tmp_path_factory):
    """Scans and a grid (40,000 combinations at chunk 1) that keep a ``--workers 2`` sweep busy
    far longer than any test waits, on a fast machine too."""
    root = tmp_path_factory.mktemp("long_sweep")
    random_scans(30 * 1440, 12, seed=5).to_parquet(root / "scans.parquet")
    grid = {"fixed_tp_pct": [round(float(x), 5) for x in np.linspace(0.004, 0.015, 20)],
            "max_hold_bars": list(range(30, 630, 30)),
            "fraction": [round(float(x), 4) for x in np.linspace(0.01, 0.5, 100)]}
    (root / "grid.yaml").write_text(yaml.safe_dump(grid))
    return root


def _start_sweep(root: Path, out: Path) -> tuple[subprocess.Popen, list[int]]:
    proc = _dolphin("sweep", "--scans", str(root / "scans.parquet"), "--grid",
                    str(root / "grid.yaml"), "--out", str(out), "--chunk", "1", "--workers", "2",
                    "--no-progress")  # fmt: skip
    work = out.with_name(out.name + ".work")
    saved = wait_for(lambda: len(list(work.glob("part-*.parquet"))) >= 2, 180, 0.05)
    assert saved, "sweep never saved"
    workers = children(proc.pid)
    assert len(workers) >= 2, workers
    return proc, workers


def test_ctrl_c_on_a_worker_sweep_exits_130_with_the_resume_line(long_sweep, tmp_path):
    out = tmp_path / "sweep.parquet"
    proc, workers = _start_sweep(long_sweep, out)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    work = out.with_name(out.name + ".work")
    assert "chunk(s) saved in " + str(work) in lines[0]
    assert "resume with: dolphin sweep --scans" in lines[0]
    assert "Traceback" not in stdout + stderr
    assert wait_for(lambda: not any(process_alive(p) for p in workers), 5.0, 0.05)
    assert list(work.glob("part-*.parquet")) and not out.exists()


def test_sigkill_of_a_worker_sweep_leaves_no_orphan(long_sweep, tmp_path):
    proc, workers = _start_sweep(long_sweep, tmp_path / "sweep.parquet")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    gone = wait_for(lambda: not any(process_alive(p) for p in workers), 5.0, 0.05)
    assert gone, "orphan workers survived"


def test_sigkill_of_a_worker_scan_leaves_no_orphan(tmp_path):
    # The scanner's pool sets no initializer: the command's fork hook covers it.
    bars = require(SPOT_1M_2021)
    proc = _dolphin("scan", "--bars", str(bars), "--workers", "2", "--out",
                    str(tmp_path / "scans.parquet"))  # fmt: skip
    assert wait_for(lambda: len(children(proc.pid)) >= 2 or proc.poll() is not None, 120, 0.05)
    workers = children(proc.pid)
    assert proc.poll() is None and len(workers) >= 2, "scan ended before its workers were seen"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    gone = wait_for(lambda: not any(process_alive(p) for p in workers), 5.0, 0.05)
    assert gone, "orphan workers survived"


def test_ctrl_c_on_dolphin_run_exits_130_with_one_line(tmp_path):
    proc = _dolphin("run", "--bars", str(require(SAMPLE / "bars_1m_sample.parquet")),
                    "--out", str(tmp_path / "run"))  # fmt: skip
    first = proc.stdout.readline()  # "config ..." once the job has started
    assert first.startswith("config"), first + proc.stderr.read()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    lines = [ln for ln in stderr.splitlines() if not ln[:4].isdigit()]  # drop log lines
    assert len(lines) == 1 and lines[0].startswith("dolphin: interrupted: "), stderr
    assert "re-run: dolphin run --bars" in lines[0]
    assert "Traceback" not in stdout + stderr


def test_a_closed_stdout_ends_quietly():
    proc = _dolphin("config", "show")
    proc.stdout.close()  # like `| head` having exited: every write now fails with EPIPE
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 141
    assert stderr == "", stderr


def test_head_on_a_pipe_ends_quietly():
    cmd = f"{sys.executable} -m dolphin config show | head -n 1"
    proc = subprocess.run(cmd, shell=True, env=ENV, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0 and proc.stdout.startswith("alpha:")
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_ctrl_c_on_a_paper_session_exits_130_with_where_the_fills_are(tmp_path):
    proc = _dolphin("paper", "--replay", str(require(SAMPLE / "bars_1m_sample.parquet")),
                    "--speed", "600", "--duration", "120", "--log-dir", str(tmp_path),
                    "--research")  # fmt: skip
    line = proc.stdout.readline()
    while line and "posture=" not in line:  # the first status line: the node is trading
        line = proc.stdout.readline()
    assert line, proc.stderr.read()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert '"stopped_early": true' in stdout
    ours = [ln for ln in stderr.splitlines() if ln.startswith("dolphin: ")]
    assert len(ours) == 1 and "session stopped early; fills so far in " + str(tmp_path) in ours[0]
    assert "start a new session with: dolphin paper --replay" in ours[0]
    assert "Traceback" not in stdout + stderr and "Task was destroyed" not in stderr


_DROPPED_CTRL_C = """
import argparse, os, signal, sys, time, weakref
from dolphin import cli

def busy(args):
    class Thing:
        pass
    thing = Thing()
    def on_collect(_):  # Python drops what a weakref callback raises: "Exception ignored in"
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
    ref = weakref.ref(thing, on_collect)
    del thing
    print("ran on", flush=True)
    time.sleep(5.0)
    print("finished", flush=True)
    return 0

def parser():
    p = argparse.ArgumentParser(prog="dolphin")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_subparsers(dest="command").add_parser("busy").set_defaults(func=busy)
    return p

cli.build_parser = parser
sys.argv = ["dolphin", "busy"]
raise SystemExit(cli.main())
"""


def test_a_ctrl_c_python_drops_in_a_weakref_callback_still_ends_the_command():
    proc = subprocess.run([sys.executable, "-c", _DROPPED_CTRL_C], env=ENV, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert "Exception ignored" in proc.stderr, proc.stderr  # the first KeyboardInterrupt was lost
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert "finished" not in proc.stdout  # stopped within the retry, not after the 5 s sleep
    assert proc.stderr.strip().splitlines()[-1].startswith("dolphin: interrupted: ")
