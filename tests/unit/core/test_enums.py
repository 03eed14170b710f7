"""Domain enums, their numba mirrors, their label tuples and the kernels agree (STYLE.md §17)."""

from __future__ import annotations

import numpy as np
import pytest

from dolphin.alpha import layout as lay
from dolphin.alpha import nb, step_nb
from dolphin.backtest import sweep_nb
from dolphin.core import enums, records
from dolphin.core.enums import Direction, ExitReason, McStatus, Posture, SignalBucket
from dolphin.risk import forewarner, sensors

#: (enum, mirror-name prefix, label tuple or None): the mirror of member M is ``prefix + M.name``.
FAMILIES = [
    (Posture, "POSTURE_", enums.POSTURES),
    (ExitReason, "EXIT_", enums.EXIT_REASONS),
    (McStatus, "MC_", enums.MC_STATUSES),
    (Direction, "DIR_", None),
    (SignalBucket, "BUCKET_", enums.BUCKETS),
]
#: Mirror names that are not ``prefix + name`` (kept from ``core.records``).
SHORT_NAMES = {ExitReason.SUBDAY_ACB_NORMALIZATION: "EXIT_SUBDAY_ACB"}


def _mirror_name(member, prefix: str) -> str:
    return SHORT_NAMES.get(member, prefix + member.name)


@pytest.mark.parametrize(("enum", "prefix", "labels"), FAMILIES)
def test_every_member_has_a_plain_int_mirror_of_equal_value(enum, prefix, labels):
    for member in enum:
        mirror = getattr(enums, _mirror_name(member, prefix))
        assert type(mirror) is int  # a plain int: numba freezes it as a compile-time constant
        assert mirror == member.value


@pytest.mark.parametrize(("enum", "prefix", "labels"), [f for f in FAMILIES if f[2] is not None])
def test_label_tuples_are_indexed_by_code(enum, prefix, labels):
    assert [m.value for m in enum] == list(range(len(enum)))  # codes 0..n-1, no gaps
    assert len(labels) == len(enum)
    for member in enum:
        assert labels[member].upper() == member.name


def test_label_tuples_keep_their_historic_spelling():
    assert enums.POSTURES == ("APEX", "STALKER", "TURTLE", "HIBERNATE")
    assert enums.MC_STATUSES == ("OK", "ORANGE", "RED")
    assert enums.BUCKETS == ("extreme", "strong", "moderate", "weak")
    assert enums.EXIT_REASONS[ExitReason.SUBDAY_ACB_NORMALIZATION] == "SUBDAY_ACB_NORMALIZATION"
    assert (Direction.SHORT, Direction.LONG) == (-1, 1)


def test_records_re_exports_the_enums_tables():
    for name in ("POSTURES", "EXIT_REASONS", "BUCKETS", "EXIT_DATA_END", "POSTURE_HIBERNATE"):
        assert getattr(records, name) is getattr(enums, name)
    for member in ExitReason:
        assert getattr(records, _mirror_name(member, "EXIT_")) == member
    for member in Posture:
        assert getattr(records, f"POSTURE_{member.name}") == member


def test_kernel_modules_use_the_mirrors():
    assert step_nb.POSTURE_STALKER == Posture.STALKER
    assert step_nb.POSTURE_HIBERNATE == Posture.HIBERNATE
    assert step_nb.EXIT_STOP_LOSS == ExitReason.STOP_LOSS
    assert step_nb.EXIT_DATA_END == ExitReason.DATA_END
    assert step_nb.MC_ORANGE == McStatus.ORANGE and step_nb.MC_RED == McStatus.RED  # begin_day_nb
    assert sweep_nb.EXIT_END_OF_DATA == ExitReason.END_OF_DATA
    assert forewarner.MC_STATUSES is enums.MC_STATUSES
    codes = (forewarner.MC_CODE_OK, forewarner.MC_CODE_ORANGE, forewarner.MC_CODE_RED)
    assert codes == tuple(McStatus)
    floats = {m.name: float(m) for m in McStatus}
    assert floats == sensors.MC_STATUS_CODE
    assert tuple(floats.values()) == (sensors.MC_OK, sensors.MC_ORANGE, sensors.MC_RED)


@pytest.mark.parametrize(
    ("pnl", "held", "hibernate", "subday", "reason"),
    [
        (0.0095, 3, False, False, ExitReason.FIXED_TP),
        (-1.0, 3, False, False, ExitReason.STOP_LOSS),
        (0.0, 120, False, False, ExitReason.MAX_HOLD),
        (0.0, 5, True, False, ExitReason.HIBERNATE_HALT),
        (0.0, 5, False, True, ExitReason.SUBDAY_ACB_NORMALIZATION),
    ],
)
def test_exit_reason_kernel_returns_the_enum_code(pnl, held, hibernate, subday, reason):
    got = nb.exit_reason_nb(pnl, held, 0.0095, 1.0, 120, hibernate, subday)
    assert got == reason
    assert enums.EXIT_REASONS[got] == reason.name


def test_exit_slippage_kernel_reads_the_stop_loss_code():
    assert nb.exit_slippage_nb(int(ExitReason.STOP_LOSS)) == nb.SLIP_STOP
    others = [r for r in ExitReason if r != ExitReason.STOP_LOSS]
    assert all(nb.exit_slippage_nb(int(r)) == nb.SLIP_OTHER for r in others)


@pytest.mark.parametrize(
    ("x", "bucket"),
    [
        (-0.08, SignalBucket.EXTREME),
        (-0.06, SignalBucket.STRONG),
        (-0.04, SignalBucket.MODERATE),
        (-0.03, SignalBucket.WEAK),
    ],
)
def test_signal_bucket_kernel_returns_the_enum_code(x, bucket):
    assert nb.signal_bucket_nb(x, -0.02, -0.05) == bucket


@pytest.mark.parametrize(
    ("mc", "scale", "halt"),
    [(McStatus.OK, 1.0, 0.0), (McStatus.ORANGE, 0.5, 0.0), (McStatus.RED, 1.0, 1.0)],
)
def test_sweep_day_kernel_reads_the_mc_codes(mc, scale, halt):
    state = lay.new_state(1.0)
    state[lay.S_POSTURE] = float(Posture.HIBERNATE)
    sweep_nb.begin_day_nb(state, np.zeros(lay.N_PARAMS), 1.0, 0.0, int(mc), 1.0)
    assert state[lay.S_DAY_MC_SCALE] == scale
    assert state[lay.S_HALT] == halt
    assert state[lay.S_POSTURE] == Posture.APEX
