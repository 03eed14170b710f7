"""The per-scan logic of the Dolphin strategy (Bible §14), free of Nautilus.

``DolphinCore`` is what the Nautilus ``DolphinStrategy`` delegates to: the ACB pending-flag
handoff (§14.2, on the store's ``PendingSlot``), the UTC date boundary (end_day/begin_day with the
daily ACB exactly as the internal replay computes it), the posture read (§14.6, but TURTLE,
never APEX, when unknown: ``execution.guards``), the HIBERNATE guard, the ``_GateSnap``
stale-state check (§14.3) and the replay/live differences (§14.4: dedup on scan number and a
staleness warning in live mode). It returns order intents; it never decides a trade itself —
``NDAlphaEngine.step_bar`` does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from dolphin.adapters.nautilus.guards import POSTURE_MAX_AGE_S, PostureGuard, validate_acb_update
from dolphin.alpha import layout as lay
from dolphin.alpha.engine import DaySummary, NDAlphaEngine
from dolphin.alpha.session import NS_PER_DAY, DayProtocol, hibernate_skips, utc_date
from dolphin.core.errors import BadInputError
from dolphin.core.records import EXIT_REASONS, TRADE_DTYPE
from dolphin.features.funding import FundingEvents
from dolphin.risk.acb import AdaptiveCircuitBreaker
from dolphin.scanner.schema import scan_arrays
from dolphin.store.events import PendingSlot
from dolphin.store.ports import EntryEvent

log = logging.getLogger(__name__)
#: Field positions of a ``TRADE_DTYPE`` record (``_step`` reads the records as tuples).
_T_ASSET, _T_DIRECTION, _T_NOTIONAL, _T_ENTRY_PRICE, _T_EXIT_REASON, _T_FUNDING = (
    TRADE_DTYPE.names.index(f)
    for f in ("asset", "direction", "notional", "entry_price", "exit_reason", "funding")
)

#: §14.4: a live scan older than this is stale (warned, still used: the engine has its own gates).
STALE_SCAN_S = 10.0


@dataclass(frozen=True, slots=True)
class ScanInput:
    """One scan as the strategy sees it; ``bar_ts_ns`` is the bar's own (open) timestamp."""

    bar_index: int
    bar_ts_ns: int
    scan_number: int
    vel_div: float
    v750_vel: float
    data_gap: bool
    vol_ok: bool
    prices: np.ndarray  # REAL closes: NaN where an asset has no real bar (no trade on it)
    is_last: bool = False
    funding: tuple[np.ndarray, np.ndarray] | None = None  # this bar's (asset, rate) events


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order the engine's decision implies: open ``notional`` on ``asset``, or close it."""

    action: str  # "OPEN" or "CLOSE"
    asset: str
    direction: int
    notional: float
    ref_price: float
    reason: str = ""


class GateSnap(NamedTuple):
    """§14.3: the gates an evaluation depends on, captured before and after ``step_bar``."""

    acb_boost: float
    acb_beta: float
    posture: str
    mc_gate_open: bool


@dataclass
class StepOutcome:
    """What one scan produced: intents to execute and the §14.7 result fields."""

    intents: list[OrderIntent] = field(default_factory=list)
    skipped: str = ""
    stale_state: bool = False
    trades: np.ndarray | None = None
    funding_paid: float = 0.0  # funding the position paid on this bar (drivers book it)
    denials: np.ndarray | None = None  # entries the risk gate refused on this bar (DENIAL_DTYPE)


PostureSource = Callable[[], Any]
"""Returns the posture: a ``DOLPHIN_SAFETY`` cell snapshot/record, a posture string or None
(``execution.guards.judge_posture`` says how each is judged)."""


class DolphinCore:
    """Drive one ``NDAlphaEngine`` scan by scan; thread-safe ACB intake, everything else on the
    caller's (the Nautilus event loop's) thread."""

    def __init__(
        self,
        engine: NDAlphaEngine,
        *,
        posture_source: PostureSource | None = None,
        acb: AdaptiveCircuitBreaker | None = None,
        live_mode: bool = False,
        stale_after_s: float = STALE_SCAN_S,
        posture_max_age_s: float = POSTURE_MAX_AGE_S,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        # posture_max_age_s: a posture older than this is stale -> TURTLE (default three
        # watchdog periods, 3 x 10 s; adapters/nautilus/guards.py); clock: wall time in int64
        # ns UTC.
        self.engine = engine
        self.posture_source = posture_source
        self.posture_guard = PostureGuard(max_age_s=posture_max_age_s, clock=clock)
        self.acb = acb
        self.live_mode = live_mode
        self.stale_after_s = stale_after_s
        self.acb_slot = PendingSlot()
        self.current_date: str | None = None
        self._day_no: int | None = None  # current_date as a UTC day number (the cheap check)
        # after_scan: the bar step seen, the last bar, and whether the current day was begun
        # ahead of its first scan (idle time after the previous day's last scan)
        self._bar_ns: int | None = None
        self._last_bar_ns: int | None = None
        self.prerolled = False
        self.posture = "UNKNOWN"  # until the first day reads one: never APEX by default
        self.processed_dates: set[str] = set()
        self.bar_idx_today = 0
        self.total_bars = 0
        self.last_scan_number: int | None = None
        self.stale_state_events = 0
        self.stale_scans = 0
        self.day = DayProtocol(engine, acb)  # the one day protocol (alpha.session)

    # ------------------------------------------------------------ §14.2 ACB handoff
    def on_acb_event(self, event: EntryEvent) -> None:
        """Store listener thread: decode outside the lock, park inside it; never touch engine."""
        self.acb_slot.on_event(event)

    def drain_acb(self) -> dict[str, Any] | None:
        """Event-loop thread: take the newest pending ACB value and apply it to the engine.

        An update that is not finite or outside what the ACB can produce (``guards.acb_bounds``)
        is refused with a log line; the boost and beta in force are kept. So is a verdict dated
        for another day than the current one (the ACB processor dates its verdicts).
        """
        record = self.acb_slot.take()
        if record is None:
            return None
        date = record.data.get("date") if isinstance(record.data, dict) else None
        if date is not None and self.current_date is not None and date != self.current_date:
            log.warning("ACB update for %s refused on %s: a verdict holds for its own day",
                        date, self.current_date)
            return None
        try:
            boost, beta = validate_acb_update(record.data, self.engine.config.acb)
        except BadInputError as exc:
            s = self.engine.state
            log.warning("ACB update refused (%s); keeping boost %.4f, beta %.4f", exc,
                        float(s[lay.S_DAY_BOOST]), float(s[lay.S_DAY_BETA]))
            return None
        self.engine.update_acb_boost(boost, beta)
        return {"boost": boost, "beta": beta}

    # ------------------------------------------------------------ §14.6 posture
    def read_posture(self) -> str:
        """Return the posture to trade under.

        With a posture source (the live trader reading ``DOLPHIN_SAFETY``): its posture, or
        TURTLE when it is missing, unreadable, unknown, future-dated or older than
        ``posture_max_age_s`` (reason logged once per outage). Never APEX by default: DESIGN.md
        overrules the Bible's §14.6. Without a source (replay, Nautilus backtest) nothing is
        supervised and the engine runs at APEX, as ``dolphin backtest`` does.
        """
        if self.posture_source is None:
            return "APEX"
        return self.posture_guard.read(self.posture_source)

    def apply_posture(self, posture: str) -> bool:
        """Apply a posture that changed since the last scan (the watchdog's per-bar posture,
        §11.7: a downgrade takes effect on the next bar, not the next day); report a change."""
        if posture == self.posture:
            return False
        self.posture = posture
        self.engine.set_posture(posture)
        return True

    # ------------------------------------------------------------ §14.1 date boundary
    @property
    def days(self) -> list[DaySummary]:
        """The summaries of the days ended so far."""
        return self.day.days

    @property
    def day_acb(self) -> list[Any]:
        """The ACB verdict of each day ended so far (None without an ACB)."""
        return self.day.day_acb

    def roll_date(self, bar_ts_ns: int) -> bool:
        """Begin a new engine day when the scan's UTC date changes; report whether it did."""
        day = bar_ts_ns // NS_PER_DAY
        if day == self._day_no:
            if self.prerolled:  # the day begun ahead of time has its first scan
                self.prerolled = False
                self.processed_dates.add(self.current_date)
            return False
        self._day_no = day
        date = utc_date(bar_ts_ns)
        if date == self.current_date:
            return False
        if self.current_date is not None:
            self.close_day()
        self.current_date = date
        self.processed_dates.add(date)
        self.posture = self.read_posture()
        self.bar_idx_today = 0
        self.day.begin(date, posture=self.posture)
        return True

    def close_day(self) -> DaySummary | None:
        """End the engine day; its w750 median goes to the ACB (``DayProtocol``, as the replay).

        A day begun ahead of time that never saw a scan (``after_scan``; the stream stopped or
        skipped it) is not a day of the session: nothing is recorded and None is returned; the
        next ``begin`` overwrites everything its own begin set.
        """
        if self.prerolled:
            self.prerolled = False
            return None
        return self.day.end()

    def after_scan(self, scan: ScanInput) -> bool:
        """Idle-time work once a live scan's orders are out: when the next bar opens on a new
        UTC day, end this day and begin the next one now; report whether it did.

        The scan of a day's last bar is published when that bar closes, at the day's end, so
        the day is over when this runs, and the next scan's hot path does not pay the day
        boundary (the ACB verdict, the MC status, the median of the day's w750). The next bar is
        this bar plus the bar step, the smallest step seen between scans; nothing is done just
        after a gap (the step since the previous scan is not the bar step) nor outside live
        mode. Beginning early changes nothing the engine decides: the first scan of the day
        still reads the posture and takes any pending ACB verdict for its day (``on_scan``), and
        a day that then gets no scan is dropped (``close_day``).
        """
        ts = scan.bar_ts_ns
        last, self._last_bar_ns = self._last_bar_ns, ts
        step = ts - last if last is not None else 0
        if step > 0 and (self._bar_ns is None or step < self._bar_ns):
            self._bar_ns = step
        if not self.live_mode or self.current_date is None or step != self._bar_ns:
            return False
        nxt = ts + step
        if nxt // NS_PER_DAY == ts // NS_PER_DAY or ts // NS_PER_DAY != self._day_no:
            return False
        self.roll_date(nxt)
        self.prerolled = True
        return True

    # ------------------------------------------------------------ §14.3 gate snapshot
    def gate_snap(self, posture: str) -> GateSnap:
        """Return the gates in force now with ``posture`` as the posture."""
        s = self.engine.state
        return GateSnap(
            float(s[lay.S_DAY_BOOST]),
            float(s[lay.S_DAY_BETA]),
            posture,
            self.engine._mc_status != "RED",
        )

    # ------------------------------------------------------------ the scan
    def _live_skip(self, scan: ScanInput, age_s: float) -> str:
        """§14.4 live checks: dedup on scan number; a stale scan is warned about and counted.

        ``age_s`` is the time since the scan was published (a replayed scan's own timestamp is
        years old by design, so age is measured from its arrival, not from its bar).
        """
        if scan.scan_number == self.last_scan_number:
            return "duplicate"
        if self._day_no is not None and scan.bar_ts_ns // NS_PER_DAY < self._day_no:
            # a day already ended (its ACB median is in): never reopened, nothing traded on it
            log.warning("scan %d is from a day already ended (%s): dropped", scan.scan_number,
                        utc_date(scan.bar_ts_ns))
            return "late"
        self.last_scan_number = scan.scan_number
        if age_s > self.stale_after_s:
            self.stale_scans += 1
            log.warning("scan %d is %.1fs old (> %.0fs)", scan.scan_number, age_s,
                        self.stale_after_s)
        return ""

    def on_scan(self, scan: ScanInput, age_s: float = 0.0) -> StepOutcome:
        """Process one scan (§14.1 ①–⑧) and return the orders it implies."""
        if self.live_mode:
            skip = self._live_skip(scan, age_s)
            if skip:
                return StepOutcome(skipped=skip)
        # The day begins first: a verdict the processor wrote for this day at its open must not
        # be overwritten by the day's own start (it arrives before the day's first scan).
        # the day's first scan has just read the posture; any later one reads it again
        if not self.roll_date(scan.bar_ts_ns) and self.live_mode and self.posture_source:
            self.apply_posture(self.read_posture())
        self.drain_acb()
        if hibernate_skips(self.engine):
            return StepOutcome(skipped="hibernate")  # hard skip: the engine is not stepped
        self.day.observe_v750(scan.v750_vel)
        before = self.gate_snap(self.posture)
        outcome = self._step(scan)
        after = self.gate_snap(self.read_posture() if self.live_mode else self.posture)
        if before != after:
            self.stale_state_events += 1
            outcome.stale_state = True
            changed = [f for f in GateSnap._fields if getattr(before, f) != getattr(after, f)]
            log.warning("[STALE_STATE] gate changed mid-eval: %s", changed)
        return outcome

    def _step(self, scan: ScanInput) -> StepOutcome:
        eng = self.engine
        bar = scan.bar_index if not self.live_mode else self.total_bars
        was_open = eng.in_position
        accrued = eng.funding_accrued
        denied = eng.gate.n_denials
        closed = eng.step_bar(
            bar, scan.bar_ts_ns, scan.vel_div, scan.prices,
            data_gap=scan.data_gap, vol_ok=scan.vol_ok, funding=scan.funding,
        )
        self.bar_idx_today += 1
        self.total_bars += 1
        if scan.is_last and eng.in_position:
            closed = np.concatenate([closed, eng.close_open_position(bar, scan.bar_ts_ns)])
        rows = closed.tolist() if len(closed) else []  # one conversion of the records
        # numpy's sum of one value is that value, and x + 0.0 == x: the same number every way
        if len(rows) > 1:
            closed_funding = float(closed["funding"].sum())
        else:
            closed_funding = float(rows[0][_T_FUNDING]) if rows else 0.0
        paid = eng.funding_accrued + closed_funding - accrued
        intents = [self._close_intent(t) for t in rows]
        if eng.in_position and (not was_open or len(closed)):
            intents.append(self._open_intent())
        return StepOutcome(intents=intents, trades=closed, funding_paid=paid,
                           denials=eng.gate.take_denials(denied))

    def _close_intent(self, t: tuple) -> OrderIntent:
        """The close order of one closed trade (a ``TRADE_DTYPE`` record as a tuple)."""
        return OrderIntent(
            "CLOSE",
            self.engine.assets[int(t[_T_ASSET])],
            int(t[_T_DIRECTION]),
            float(t[_T_NOTIONAL]),
            float(t[_T_ENTRY_PRICE]),
            EXIT_REASONS[int(t[_T_EXIT_REASON])],
        )

    def _open_intent(self) -> OrderIntent:
        s = self.engine.state
        return OrderIntent(
            "OPEN",
            self.engine.assets[int(s[lay.S_POS_ASSET])],
            int(s[lay.S_POS_DIR]),
            float(s[lay.S_POS_NOTIONAL]),
            float(s[lay.S_POS_ENTRY_PRICE]),
        )

    def sync_capital(self, capital: float) -> None:
        """Feed the venue's account balance back as the engine's capital (fills are the truth)."""
        self.engine.state[lay.S_CAPITAL] = capital


def payload_scan_input(data: dict[str, Any], assets: list[str], bar_index: int) -> ScanInput:
    """Return the ``ScanInput`` of a published ``latest_eigen_scan`` payload
    (``services.scan_service.scan_payload``): real closes in ``assets`` order, a null or
    absent price and a null signal read as NaN (no price, no trade)."""
    closes = data["asset_prices"]
    if len(closes) == len(assets) and list(closes) == assets:  # the usual case: same universe
        prices = np.fromiter(closes.values(), dtype=np.float64, count=len(closes))  # None: NaN
    else:
        prices = np.array(list(map(closes.get, assets)), dtype=np.float64)
    vd, v750 = data["vel_div"], data.get("v750_lambda_max_velocity")
    return ScanInput(bar_index, int(data["timestamp_ns"]), int(data["scan_number"]),
                     np.nan if vd is None else float(vd), np.nan if v750 is None else float(v750),
                     bool(data["data_gap"]), True, prices)


def bar_ns(scans: pd.DataFrame) -> int:
    """Return the bar length of a scan frame in ns (``backtest.replay.scan_bar_ns``)."""
    from dolphin.backtest.replay import scan_bar_ns

    return scan_bar_ns(scans["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64))


def scan_inputs(
    scans: pd.DataFrame, assets: list[str], funding: FundingEvents | None = None
) -> list[ScanInput]:
    """Return the scans as ``ScanInput`` rows (the last one flagged ``is_last``), each with its
    bar's funding events."""
    a = scan_arrays(scans, assets)  # the one scan frame -> arrays (scanner.schema)
    n = len(scans)
    fund = funding if funding is not None else FundingEvents.none(n)
    return [
        ScanInput(i, int(a.ts[i]), int(a.scan_number[i]), float(a.vel_div[i]),
                  float(a.v750[i]), bool(a.data_gap[i]), bool(a.vol_ok[i]), a.prices[i],
                  i == n - 1, fund.bar(i))
        for i in range(n)
    ]
