"""Domain states, defined once (STYLE.md §17): posture, exit reason, MC status, direction, bucket.

Each state has three spellings that ``tests/unit/core/test_enums.py`` keeps in agreement:

- an ``IntEnum`` for Python code (``Posture.TURTLE``; ``Posture.TURTLE.name`` where the public
  interface carries names, as postures and MC statuses do between modules);
- plain module-level ints (``POSTURE_TURTLE``, ``EXIT_DATA_END``, ``MC_RED``, ``DIR_SHORT``) for
  the ``@njit`` kernels: numba freezes a plain int global into the compiled code as a constant,
  which it does not do for an IntEnum member in every context;
- label tuples indexed by code (``POSTURES``, ``EXIT_REASONS``, ``MC_STATUSES``, ``BUCKETS``):
  trade records hold codes, reports hold these names.

The integers are the ones the kernels write into ``TRADE_DTYPE`` records and the MC day codes,
so they must never be renumbered. This module mentions njit on purpose: the numba cache
directory is named by the hash of every module whose text holds that word
(``dolphin._kernel_source_hash``), and the kernels compile these values in.
"""

from __future__ import annotations

from enum import IntEnum


class Posture(IntEnum):
    """Survival posture (Bible §11.5, §11.7); TURTLE and above halt entries."""

    APEX = 0
    STALKER = 1
    TURTLE = 2
    HIBERNATE = 3


class ExitReason(IntEnum):
    """Why a position closed (Bible §7.1, §7.3, §11.7; DATA_END: DESIGN.md "No price, no trade")."""

    FIXED_TP = 0
    STOP_LOSS = 1
    MAX_HOLD = 2
    HIBERNATE_HALT = 3
    SUBDAY_ACB_NORMALIZATION = 4
    END_OF_DATA = 5
    #: the held asset had no real close for ``data_end_bars`` bars
    DATA_END = 6


class McStatus(IntEnum):
    """MC-Forewarner day status (Bible §12): ORANGE halves the size, RED halts entries."""

    OK = 0
    ORANGE = 1
    RED = 2


class Direction(IntEnum):
    """Trade direction as the kernels' sign: SHORT (the champion) is -1, LONG +1."""

    SHORT = -1
    LONG = 1


class SignalBucket(IntEnum):
    """Signal-strength bucket (Bible §6.3); labels are the lower-case names."""

    EXTREME = 0
    STRONG = 1
    MODERATE = 2
    WEAK = 3


# ---------------------------------------------------------------- numba mirrors (plain ints)
POSTURE_APEX = int(Posture.APEX)
POSTURE_STALKER = int(Posture.STALKER)
POSTURE_TURTLE = int(Posture.TURTLE)
POSTURE_HIBERNATE = int(Posture.HIBERNATE)

EXIT_FIXED_TP = int(ExitReason.FIXED_TP)
EXIT_STOP_LOSS = int(ExitReason.STOP_LOSS)
EXIT_MAX_HOLD = int(ExitReason.MAX_HOLD)
EXIT_HIBERNATE_HALT = int(ExitReason.HIBERNATE_HALT)
EXIT_SUBDAY_ACB = int(ExitReason.SUBDAY_ACB_NORMALIZATION)
EXIT_END_OF_DATA = int(ExitReason.END_OF_DATA)
EXIT_DATA_END = int(ExitReason.DATA_END)

MC_OK = int(McStatus.OK)
MC_ORANGE = int(McStatus.ORANGE)
MC_RED = int(McStatus.RED)

DIR_SHORT = int(Direction.SHORT)
DIR_LONG = int(Direction.LONG)

BUCKET_EXTREME = int(SignalBucket.EXTREME)
BUCKET_STRONG = int(SignalBucket.STRONG)
BUCKET_MODERATE = int(SignalBucket.MODERATE)
BUCKET_WEAK = int(SignalBucket.WEAK)

# ---------------------------------------------------------------- labels by code
POSTURES: tuple[str, ...] = tuple(p.name for p in Posture)
EXIT_REASONS: tuple[str, ...] = tuple(r.name for r in ExitReason)
MC_STATUSES: tuple[str, ...] = tuple(s.name for s in McStatus)
BUCKETS: tuple[str, ...] = tuple(b.name.lower() for b in SignalBucket)
