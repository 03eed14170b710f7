"""The local Prefect server (Bible §17): ``prefect server start`` on loopback, SQLite in its home.

Schedules and automations need a real server: a flow called without ``PREFECT_API_URL`` gets a
temporary one that never fires a schedule (FACTS.md). :class:`PrefectServer` starts the venv's
``prefect`` executable as a child process with its home, database and log under ``home``,
waits until ``GET /api/health`` answers, and stops it with SIGTERM, then SIGKILL. The child is
tied to its parent: the kernel SIGKILLs it when the parent dies (``prctl(PR_SET_PDEATHSIG)``,
Linux), so a killed supervisor leaves no server behind; it ignores Ctrl-C, which the parent
handles by stopping it.

:func:`serve_forever` is the foreground form for a supervisor: start, write a ready file with
the API URL, wait; exit 0 on SIGTERM/SIGINT, the server's status if it dies (a restart reuses
the same home and database: restart = cold start).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

from dolphin.core.errors import ConfigError, RetryableError

#: Longest wait for ``/api/health`` after the start (healthy after ~11 s on this machine).
START_TIMEOUT_S = 60.0
#: Grace between SIGTERM and SIGKILL on stop.
STOP_GRACE_S = 10.0
LOG_NAME = "server.log"
DB_NAME = "prefect.db"


class PrefectServerError(RetryableError):
    """The Prefect server did not come up (or died); the message names its log file."""


def prefect_executable() -> Path:
    """Return the ``prefect`` executable of this interpreter's environment (beside Python)."""
    exe = Path(sys.executable).parent / "prefect"
    if not exe.is_file():
        raise ConfigError(f"no prefect executable at {exe} (install prefect in this environment)")
    return exe


def server_env(home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """Return the server's environment: its home and SQLite database in ``home``, analytics
    and the UI off (FACTS.md: analytics on gives "database is locked" and outside traffic)."""
    env = dict(os.environ if base is None else base)
    env.pop("PREFECT_API_URL", None)  # the server's own clients must not point elsewhere
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / DB_NAME}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
    })
    return env


def _tie_to_parent() -> None:  # runs in the child between fork and exec
    from dolphin.core import procs

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    procs._set_pdeathsig(signal.SIGKILL)


def health(url: str, timeout_s: float = 1.0) -> bool:
    """True when ``url`` (``.../api/health``) answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class PrefectServer:
    """One ``prefect server start`` child on ``host:port`` with its state in ``home``."""

    def __init__(self, home: Path, port: int, host: str = "127.0.0.1", *,
                 start_timeout_s: float = START_TIMEOUT_S,
                 settings: Mapping[str, str] | None = None) -> None:
        if not 0 < int(port) < 65536:
            raise ConfigError(f"Prefect server port must be in 1..65535, got {port!r}")
        self.home = Path(home)
        self.port = int(port)
        self.host = host
        self.start_timeout_s = start_timeout_s
        #: Extra ``PREFECT_*`` settings of the server (e.g. a faster scheduler loop).
        self.settings = dict(settings or {})
        self.proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    @property
    def api_url(self) -> str:
        """The API base URL clients use as ``PREFECT_API_URL``."""
        return f"http://{self.host}:{self.port}/api"

    @property
    def log_path(self) -> Path:
        """Where the server's stdout and stderr go."""
        return self.home / LOG_NAME

    @property
    def pid(self) -> int | None:
        """The child's pid while started."""
        return self.proc.pid if self.proc is not None else None

    def healthy(self) -> bool:
        """True when the server answers ``/api/health``."""
        return health(f"{self.api_url}/health")

    def start(self) -> PrefectServer:
        """Start the child and wait until it is healthy; raise ``PrefectServerError`` naming the
        log when it exits or does not answer within ``start_timeout_s`` (then it is stopped)."""
        if self.proc is not None:
            return self
        self.home.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed by stop()
        cmd = [str(prefect_executable()), "server", "start", "--host", self.host,
               "--port", str(self.port), "--no-ui", "--analytics-off"]
        env = {**server_env(self.home), **self.settings}
        self.proc = subprocess.Popen(cmd, env=env, cwd=self.home,
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=False,
                                     preexec_fn=_tie_to_parent)
        deadline = time.monotonic() + self.start_timeout_s
        while not self.healthy():
            code = self.proc.poll()
            if code is not None or time.monotonic() > deadline:
                self.stop()
                why = (f"exited with status {code}" if code is not None
                       else f"did not answer {self.api_url}/health within "
                            f"{self.start_timeout_s:g} s")
                raise PrefectServerError(f"Prefect server on {self.host}:{self.port} {why}; "
                                         f"see {self.log_path}")
            time.sleep(0.2)
        return self

    def wait(self) -> int:
        """Block until the child exits; return its status."""
        if self.proc is None:
            raise PrefectServerError("the Prefect server was not started")
        return self.proc.wait()

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """Stop the child (SIGTERM, SIGKILL after ``grace_s``); return its status. Idempotent."""
        proc, self.proc = self.proc, None
        code = None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(grace_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            code = proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> PrefectServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def serve_forever(home: Path, port: int, ready_file: Path | None = None, *,
                  host: str = "127.0.0.1") -> int:
    """Run the server in the foreground for a supervisor; return the exit status.

    When healthy, ``ready_file`` (if given) is written atomically with ``{"api_url", "pid",
    "port", "home"}``. SIGTERM or SIGINT stops the server and returns 0; a server that dies on
    its own returns its status (non-zero: the supervisor restarts it on the same home). The
    ready file is removed on the way out.
    """
    from dolphin.core.io import atomic_write_text

    server = PrefectServer(Path(home), port, host)
    stopping = {"flag": False}

    def on_signal(signum: int, frame: object) -> None:
        # only signal here: stop() waits on the child, which the main loop may be doing
        stopping["flag"] = True
        proc = server.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        if ready_file is not None:
            info = {"api_url": server.api_url, "pid": server.pid, "port": port,
                    "home": str(server.home)}
            atomic_write_text(Path(ready_file), json.dumps(info) + "\n")
        code = None
        while code is None and not stopping["flag"]:
            proc = server.proc
            code = proc.poll() if proc is not None else 0
            time.sleep(0.2)
        return 0 if stopping["flag"] else (code or 1)
    finally:
        server.stop()
        for s, handler in old.items():
            signal.signal(s, handler)
        if ready_file is not None:
            Path(ready_file).unlink(missing_ok=True)
