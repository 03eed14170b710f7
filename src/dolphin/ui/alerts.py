"""The alert hook: hand each alert to a command (JSON on stdin) and/or POST it to a URL.

The watchdog raises alerts (``services.watchdog.alerts_between``: posture drops, invariant
breaks, services newly down or degraded) and calls its ``alert`` callable with each; an
``AlertHook`` is that callable. It never blocks the caller: alerts go to a bounded queue read
by one daemon thread that sends them in order (``command`` run with the alert's JSON on stdin,
killed after ``timeout_s``; ``url`` POSTed ``application/json``, same timeout). A full queue
drops the newest alert and counts it; a failed send is logged and counted, never retried (an
alert is about now: a late one would mislead). ``alert_hook(opts)`` builds one from the mesh
options ``alert_command`` (an argv list), ``alert_url`` and ``alert_timeout_s``, or returns
None when neither is set.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import subprocess
import threading
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

from dolphin.core.errors import ConfigError

_log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0
QUEUE_SIZE = 256


class AlertHook:
    """Send alerts to a command and/or a webhook from a worker thread (module docstring)."""

    def __init__(self, *, command: Sequence[str] | None = None, url: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, queue_size: int = QUEUE_SIZE) -> None:
        if command is not None and (isinstance(command, str) or not command
                                    or not all(isinstance(a, str) for a in command)):
            raise ConfigError(f"alert_command must be a non-empty list of strings (argv), "
                              f"got {command!r}")
        if url is not None and urlparse(url).scheme not in ("http", "https"):
            raise ConfigError(f"alert_url must be an http(s) URL, got {url!r}")
        if command is None and url is None:
            raise ConfigError("an alert hook needs alert_command or alert_url")
        if not (isinstance(timeout_s, int | float) and math.isfinite(timeout_s)
                and timeout_s > 0):
            raise ConfigError(f"alert_timeout_s must be finite and > 0, got {timeout_s!r}")
        self.command = list(command) if command is not None else None
        self.url = url
        self.timeout_s = float(timeout_s)
        self.sent = self.failed = self.dropped = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="alert-hook", daemon=True)
        self._thread.start()

    def __call__(self, alert: Mapping[str, Any]) -> None:
        """Queue ``alert`` for sending; return at once."""
        try:
            self._queue.put_nowait(dict(alert))
        except queue.Full:
            self.dropped += 1
            _log.warning("alert hook: queue full, alert %s dropped", alert.get("kind"))

    def close(self, timeout_s: float | None = None) -> None:
        """Send what is queued, then stop the worker (waits up to ``timeout_s``)."""
        self._queue.put(None)
        self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            body = json.dumps(alert, sort_keys=True, default=str).encode()
            for what, send in (("command", self._command), ("url", self._post)):
                if getattr(self, what) is None:
                    continue
                try:
                    send(body)
                    self.sent += 1
                except Exception as exc:  # any failure: log, count, go on with the next
                    self.failed += 1
                    _log.warning("alert hook: %s %s failed for %s: %s", what,
                                 getattr(self, what), alert.get("kind"), exc)

    def _command(self, body: bytes) -> None:
        done = subprocess.run(self.command, input=body, capture_output=True,
                              timeout=self.timeout_s, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"exit {done.returncode}: {done.stderr.decode()[-200:]}")

    def _post(self, body: bytes) -> None:
        req = urllib.request.Request(self.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
            if not 200 <= r.status < 300:
                raise RuntimeError(f"HTTP {r.status}")


def alert_hook(opts: Mapping[str, Any]) -> AlertHook | None:
    """Return the hook the options ask for (``alert_command``, ``alert_url``,
    ``alert_timeout_s``), or None when there is neither."""
    command, url = opts.get("alert_command"), opts.get("alert_url")
    if not command and not url:
        return None
    return AlertHook(command=command or None, url=url or None,
                     timeout_s=opts.get("alert_timeout_s", DEFAULT_TIMEOUT_S))
