"""Open an HTML file in headless Chromium over the DevTools protocol: console errors, uncaught
exceptions, what the page's plotly charts drew, and a screenshot.

Chromium is started with ``--remote-debugging-port=0`` (it picks a free port and prints the
browser's WebSocket URL on stderr); the page target is driven over its own WebSocket with the
``websockets`` package. Errors are collected from three sources, so none is missed:
``Runtime.consoleAPICalled`` (``console.error``), ``Runtime.exceptionThrown`` (uncaught errors)
and ``Log.entryAdded`` at level error (network and security errors, e.g. a blocked CDN script).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

#: Per-chart counts of axis tick labels with text, and whether the chart drew an SVG.
CHART_PROBE = """
Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => ({
  id: p.id,
  drawn: p.querySelector('svg.main-svg') !== null,
  xticks: Array.from(p.querySelectorAll('.xtick text')).filter(t => t.textContent.trim()).length,
  yticks: Array.from(p.querySelectorAll('.ytick text')).filter(t => t.textContent.trim()).length,
  xtitle: (p.querySelector('.xtitle') || {}).textContent || '',
  ytitle: (p.querySelector('.ytitle') || {}).textContent || '',
}))
"""


def chromium() -> str:
    """Return the Chromium executable; fail loudly when there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError("no chromium on PATH (apt-get install -y chromium)")


@dataclass
class PageReport:
    """What a page did in the browser."""

    errors: list[str] = field(default_factory=list)
    charts: list[dict[str, Any]] = field(default_factory=list)
    figure_divs: int = 0
    screenshot: bytes = b""


class _Cdp:
    def __init__(self, ws) -> None:
        self.ws, self.n, self.events = ws, 0, []

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.events.append(json.loads(self.ws.recv(timeout=left)))
            except TimeoutError:
                return

    def wait_for(self, method: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {method} within {timeout}s")
            try:
                self.events.append(json.loads(self.ws.recv(timeout=left)))
            except TimeoutError:
                continue


def errors_of(events: list[dict[str, Any]]) -> list[str]:
    """Return the console errors, uncaught exceptions and error log entries among CDP events."""
    out = []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console: " + " ".join(str(a.get("value", a.get("description", "")))
                                              for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append("exception: " + str(d.get("exception", {}).get("description")
                                           or d.get("text")))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append("log: " + p["entry"].get("text", ""))
    return out


def open_page(path: Path, *, width: int = 1280, settle_s: float = 1.5,
              max_height: int = 6000) -> PageReport:
    """Load ``path`` in headless Chromium; return its errors, charts and a full-page PNG."""
    profile = tempfile.mkdtemp(prefix="dolphin-chromium-")
    proc = subprocess.Popen(
        [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", "--remote-debugging-port=0", f"--user-data-dir={profile}",
         f"--window-size={width},900", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        port = _devtools_port(proc)
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(t for t in targets if t.get("type") == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=20) as ws:
            return _inspect(_Cdp(ws), path, width, settle_s, max_height)
    finally:
        proc.kill()
        proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


def _devtools_port(proc: subprocess.Popen) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        m = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line or "")
        if m:
            return int(m.group(1))
        if not line and proc.poll() is not None:
            break
    raise RuntimeError("chromium did not report its DevTools port")


def _inspect(cdp: _Cdp, path: Path, width: int, settle_s: float, max_height: int) -> PageReport:
    for domain in ("Runtime", "Log", "Page"):
        cdp.call(f"{domain}.enable")
    cdp.call("Page.navigate", url=Path(path).resolve().as_uri())
    cdp.wait_for("Page.loadEventFired", 60)
    cdp.drain(settle_s)  # plotly draws after load; late errors arrive here
    probe = cdp.call("Runtime.evaluate", expression=CHART_PROBE, returnByValue=True)
    divs = cdp.call("Runtime.evaluate", returnByValue=True,
                    expression="document.querySelectorAll('div.figure').length")
    height = cdp.call("Runtime.evaluate", returnByValue=True,
                      expression="document.documentElement.scrollHeight")
    h = min(int(height["result"]["value"]), max_height)
    cdp.call("Emulation.setDeviceMetricsOverride", width=width, height=h, deviceScaleFactor=1,
             mobile=False)
    cdp.drain(0.5)  # the responsive charts re-lay out at the new size
    shot = cdp.call("Page.captureScreenshot", format="png", timeout=60)
    return PageReport(errors=errors_of(cdp.events), charts=probe["result"]["value"],
                      figure_divs=int(divs["result"]["value"]),
                      screenshot=base64.b64decode(shot["data"]))
