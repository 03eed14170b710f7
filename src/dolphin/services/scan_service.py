"""``ScanService``: bar sets -> live eigenvalue scans -> ``DOLPHIN_FEATURES["latest_eigen_scan"]``.

The live end of DESIGN.md "Planes and data flow" (bar builder -> scan service ->
latest_eigen_scan). Market data goes into the ``BarBuilder``; each bar set it emits is scanned by
the ``IncrementalScanner`` and the scan is published as one versioned JSON value (Bible §15.1).

Carried bars are missing bars (DESIGN.md "No price, no trade"): a filled symbol is left out of
the scanner's update, so the scanner carries its last real close for at most the fill limit and
the scan shows NaN for it, exactly as ``dolphin scan`` treats a bar absent from a bars file. A
live stream and the batch scan of the same bars therefore agree row for row.

Payload (the scan row of ``dolphin.scanner.schema.scan_columns`` with the Bible's names where
they differ): ``timestamp_ns`` (the bar's OPEN time, int ns), ``scan_number``, ``n_assets``,
``data_gap``, the per-window fields, ``vel_div``, ``instability_*`` and ``asset_prices``
({symbol: real close, null when the symbol had no real bar}). Non-finite floats are null
(``dolphin.store.schema``). The envelope's ``ts_ns`` is the publish time, what readers measure
staleness from.

Failures: a store that cannot take a scan counts a publish failure and degrades the service (the
scan is not queued: a later scan supersedes it); the next successful publish recovers it. Bad
market data is dropped through ``Component.run_step`` (DEGRADE), and so recovers the same way.
The service is driven from one thread (the market-data loop); the store's listeners run on the
store's own thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import pandas as pd

from dolphin.core.clock import Clock
from dolphin.core.config import ScannerConfig
from dolphin.core.errors import BadInputError, ConfigError
from dolphin.core.io import atomic_write_parquet, read_parquet
from dolphin.data import DEFAULT_FILL_LIMIT, fill_limit_bars
from dolphin.scanner.scanner import IncrementalScanner
from dolphin.scanner.schema import asset_columns, scan_columns
from dolphin.services.bars import BarBuilder, BarSet, Kline
from dolphin.services.component import Component, ComponentState
from dolphin.store.errors import StoreUnavailableError
from dolphin.store.ports import Store, StoreMap
from dolphin.store.schema import FEATURES, LATEST_EIGEN_SCAN, encode_value

_log = logging.getLogger(__name__)

#: Bar sets per recorded part file: an hour of 5 s bars, half a day of 1 m bars.
DEFAULT_ROWS_PER_PART = 720
BAR_COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "volume")
_PUBLISH, _RECORD = "publish", "record"


def scan_payload(row: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """Return the ``latest_eigen_scan`` payload of a scan row (module docstring).

    ``fields`` are the row's scan fields after ``timestamp`` (``scan_columns(config)[1:]``).
    The row must be in scan column order, ``timestamp``, ``fields``, then the asset closes, as
    ``IncrementalScanner.update`` returns it and ``dolphin scan`` writes it: the assets are
    then one slice of the row (this runs on the hot path, once per scan).
    """
    head = len(fields) + 1
    if tuple(islice(row, head)) != ("timestamp", *fields):
        raise BadInputError("scan row is not in scan column order (timestamp, scan fields, "
                            "assets)", source="scan row", value=list(islice(row, head)))
    payload: dict[str, Any] = {"timestamp_ns": pd.Timestamp(row["timestamp"]).value}
    for f in fields:
        payload[f] = row[f]
    payload["asset_prices"] = dict(islice(row.items(), head, None))
    return payload


def read_scan_parts(directory: str | Path) -> pd.DataFrame:
    """Return the scans recorded as part files under ``directory/scans`` as one scan frame.

    Parts written later may know more symbols: a symbol absent from a part was not yet seen
    there, so its close is NaN. Columns: the scan fields, then the assets sorted by name, as
    ``dolphin scan`` writes them.
    """
    parts = sorted((Path(directory) / "scans").glob("part-*.parquet"))
    if not parts:
        raise ConfigError(f"no recorded scan parts under {directory}/scans")
    frame = pd.concat([read_parquet(p) for p in parts], ignore_index=True)
    assets = asset_columns(frame)
    fields = [c for c in frame.columns if c not in set(assets)]
    return frame[fields + sorted(assets)]


class ScanRecorder:
    """Record bar sets and their scans as numbered parquet parts, for a later replay.

    Every ``rows_per_part`` bar sets it writes ``bars/part-NNNNNN.parquet`` (long bars
    ``timestamp, symbol, open, high, low, close, volume``, REAL bars only: a carried bar is
    absent, as in any bars file, so ``dolphin scan --bars DIR/bars`` rebuilds the same scans)
    and ``scans/part-NNNNNN.parquet``; each file is written atomically (temp + rename). A crash
    loses at most the unwritten rows. ``close`` writes the last part and ``scans.parquet``, all
    scans in one file for ``dolphin backtest --scans``. A failed write keeps its rows for the
    next attempt.
    """

    def __init__(self, directory: str | Path, *,
                 rows_per_part: int = DEFAULT_ROWS_PER_PART) -> None:
        if rows_per_part < 1:
            raise ConfigError(f"recorder rows_per_part must be >= 1, got {rows_per_part}")
        self.directory = Path(directory)
        self.rows_per_part = rows_per_part
        self.parts = 0
        self._bars: list[tuple[object, ...]] = []
        self._scans: list[Mapping[str, Any]] = []

    def open(self) -> None:
        """Create ``bars/`` and ``scans/``; refuse a directory that already holds parts."""
        for sub in ("bars", "scans"):
            folder = self.directory / sub
            if folder.is_dir() and any(folder.glob("part-*.parquet")):
                raise ConfigError(f"recording directory already holds a session: {folder} "
                                  "(record each session into its own directory)")
            folder.mkdir(parents=True, exist_ok=True)

    @property
    def buffered(self) -> int:
        """Return how many bar sets are waiting for the next part file."""
        return len(self._scans)

    def record(self, bar_set: BarSet, row: Mapping[str, Any]) -> bool:
        """Buffer one bar set and its scan row; report whether a part file was written.

        A part is written each time the buffer reaches a multiple of ``rows_per_part``: after a
        failed write the rows stay and the next attempt waits for the next multiple, so a disk
        that stays broken costs one attempt per part, not one per bar.
        """
        ts = row["timestamp"]
        for sym, bar in bar_set.bars.items():
            if not bar.filled:
                self._bars.append((ts, sym, bar.open, bar.high, bar.low, bar.close, bar.volume))
        self._scans.append(row)
        if len(self._scans) % self.rows_per_part:
            return False
        self.flush()
        return True

    def flush(self) -> None:
        """Write the buffered rows as the next numbered part (nothing when empty)."""
        if not self._scans:
            return
        name = f"part-{self.parts:06d}.parquet"
        if self._bars:  # an outage part may hold carried bars only: no bars file for it
            bars = pd.DataFrame(self._bars, columns=list(BAR_COLUMNS))
            atomic_write_parquet(bars, self.directory / "bars" / name)
        atomic_write_parquet(pd.DataFrame(self._scans), self.directory / "scans" / name)
        self.parts += 1
        self._bars, self._scans = [], []

    def close(self) -> Path | None:
        """Write the last part and ``scans.parquet``; return its path (None if nothing ran)."""
        self.flush()
        if not self.parts:
            return None
        return atomic_write_parquet(read_scan_parts(self.directory),
                                    self.directory / "scans.parquet")


@dataclass(slots=True)
class ScanCounters:
    """What the service has done; every field goes into its heartbeat."""

    bar_sets: int = 0
    bars: int = 0
    filled_bars: int = 0
    scans: int = 0
    published: int = 0
    publish_failures: int = 0
    record_failures: int = 0


class ScanService(Component):
    """Scan every bar set the builder emits and publish it (module docstring)."""

    def __init__(
        self,
        store: Store,
        builder: BarBuilder,
        *,
        clock: Clock,
        config: ScannerConfig | None = None,
        fill_limit: str | pd.Timedelta = DEFAULT_FILL_LIMIT,
        recorder: ScanRecorder | None = None,
        name: str = "scan_service",
        max_retries: int = 3,
    ) -> None:
        super().__init__(name, clock=clock, max_retries=max_retries)
        self.store = store
        self.builder = builder
        self.config = config or ScannerConfig()
        self.recorder = recorder
        bar = pd.Timedelta(seconds=builder.interval_s)
        self.scanner = IncrementalScanner(self.config,
                                          fill_limit_bars=fill_limit_bars(fill_limit, bar))
        self.counters = ScanCounters()
        self.last_scan_number: int | None = None
        self.last_scan_ts_ns: int | None = None
        self._fields = tuple(scan_columns(self.config)[1:])
        self._features: StoreMap | None = None
        self._problems: dict[str, str] = {}

    # ------------------------------------------------------------------ market data in
    def on_trade(self, symbol: str, ts_ns: int, price: float, qty: float) -> int:
        """Feed one trade; return how many scans it completed."""
        return self._step(lambda: self.builder.on_trade(symbol, ts_ns, price, qty))

    def on_kline(self, kline: Kline) -> int:
        """Feed one kline; return how many scans it completed."""
        return self._step(lambda: self.builder.on_kline(kline))

    def poll(self) -> int:
        """Emit the intervals the clock has closed (end + grace passed); return the scan count.

        Call it regularly (e.g. every second): it is what turns an exchange outage into
        carried bars on time instead of when data resumes.
        """
        return self._step(lambda: self.builder.flush(self.clock.now_ns()))

    def on_bar_set(self, bar_set: BarSet) -> int:
        """Scan a bar set built elsewhere (a replay); return 1, or 0 if it was dropped."""
        return self._step(lambda: [bar_set])

    # ------------------------------------------------------------------ scan and publish
    def _step(self, produce: Callable[[], Iterable[BarSet]]) -> int:
        """Run ``produce`` and scan what it returns, inside ``run_step`` (errors by type)."""
        done = 0

        def work() -> None:
            nonlocal done
            for bar_set in produce():
                self._scan(bar_set)
                done += 1

        self.run_step(work)
        return done

    def _scan(self, bar_set: BarSet) -> None:
        filled = bar_set.filled
        # A filled bar is a missing bar: left out, the scanner carries it (fill limit included)
        # and shows no price for it, as the batch scan does for a bar absent from the file.
        real = {s: c for s, c in bar_set.closes.items() if not filled[s]}
        row = self.scanner.update(pd.Timestamp(bar_set.open_ts_ns, tz="UTC"), real)
        c = self.counters
        c.bar_sets += 1
        c.bars += len(real)
        c.filled_bars += len(filled) - len(real)
        c.scans += 1
        self.last_scan_number = row["scan_number"]
        self.last_scan_ts_ns = bar_set.open_ts_ns
        self.publish(row)
        if self.recorder is not None:
            self._record(self.recorder, bar_set, row)

    def publish(self, row: Mapping[str, Any]) -> bool:
        """Publish one scan row to ``DOLPHIN_FEATURES[latest_eigen_scan]``; report success.

        A store failure is counted and degrades the service; a success recovers it.
        """
        # shared: an in-process trader (embedded store) reads the record without parsing it again
        text = encode_value(scan_payload(row, self._fields), self.clock.now_ns(), share=True)
        try:
            if self._features is None:
                self._features = self.store.map(FEATURES)
            self._features.put(LATEST_EIGEN_SCAN, text)
        except StoreUnavailableError as exc:
            self.counters.publish_failures += 1
            self._problem(_PUBLISH, f"scan {row['scan_number']} not published: {exc}")
            return False
        self.counters.published += 1
        self._solved(_PUBLISH)
        return True

    def _record(self, recorder: ScanRecorder, bar_set: BarSet, row: Mapping[str, Any]) -> None:
        try:
            wrote = recorder.record(bar_set, row)
        except OSError as exc:  # disk full, folder gone: keep scanning, the rows stay buffered
            self.counters.record_failures += 1
            self._problem(_RECORD, f"recorder: {exc}")
            return
        if wrote:
            self._solved(_RECORD)

    def _problem(self, key: str, reason: str) -> None:
        """Degrade for a new problem (a repeat of a known one only counts)."""
        if key not in self._problems:
            self._problems[key] = reason
            self.degrade(reason)

    def _solved(self, key: str) -> None:
        """Forget a problem; recover once none is left (a dropped bad input included)."""
        self._problems.pop(key, None)
        if not self._problems and self.state is ComponentState.DEGRADED:
            self.recover()

    # ------------------------------------------------------------------ lifecycle
    def on_start(self) -> None:
        """Open the recorder (refusing a directory that already holds a session)."""
        if self.recorder is not None:
            self.recorder.open()

    def on_stop(self) -> None:
        """Write the recorder's last part and its ``scans.parquet``; the open interval is not
        complete, so it is not emitted."""
        if self.recorder is not None:
            path = self.recorder.close()
            _log.info("component=%s event=recorded parts=%d scans=%s", self.name,
                      self.recorder.parts, path)

    def heartbeat(self) -> dict[str, Any]:
        """Return the base heartbeat plus the counters and the last scan's number and bar time."""
        beat = super().heartbeat()
        beat.update(asdict(self.counters))
        beat["late_dropped"] = self.builder.late_dropped
        beat["unknown_dropped"] = self.builder.unknown_dropped
        beat["last_scan_number"] = self.last_scan_number
        beat["last_scan_ts_ns"] = self.last_scan_ts_ns
        return beat
