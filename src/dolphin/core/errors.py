"""The error hierarchy. Every error maps to one action for its caller.

- ``BadInputError``: the input (a file, a message, a value) is wrong; reject it, keep running.
- ``ConfigError``: fatal configuration problem; refuse to start.
- ``RetryableError``: a transient fault (network, a store that went away); retry with backoff.
- ``HaltTradingError``: an invariant broke; stop opening risk now.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class DolphinError(Exception):
    """Base of every error raised on purpose by DOLPHIN."""

    exit_code = 1


class BadInputError(DolphinError, ValueError):
    """Input data is malformed. Names the source, the place and the offending value."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        row: int | None = None,
        field: str | None = None,
        value: Any = None,
    ) -> None:
        self.source = source
        self.row = row
        self.field = field
        self.value = value
        parts = []
        if source is not None:
            parts.append(str(source))
        if row is not None:
            parts.append(f"row {row}")
        if field is not None:
            parts.append(f"field {field!r}")
        where = ", ".join(parts)
        tail = f" (value: {value!r})" if value is not None else ""
        super().__init__(f"{where}: {message}{tail}" if where else f"{message}{tail}")


class DataError(BadInputError):
    """Market data file or frame is malformed."""


class MissingColumnError(DataError):
    """A required column is absent."""


class TimestampError(DataError):
    """A timestamp cannot be parsed."""


class DuplicateTimestampError(DataError):
    """The same timestamp appears twice within one symbol."""


class UnsortedTimestampError(DataError):
    """Timestamps go backwards within one symbol."""


class BadPriceError(DataError):
    """A price is NaN, infinite, zero or negative."""


class InconsistentPriceError(BadPriceError):
    """A bar's prices contradict each other: high below low, or open/close outside [low, high]."""


class BadVolumeError(DataError):
    """A volume is NaN, infinite or negative."""


class MixedBarSizeError(DataError):
    """The bar spacing differs between or within symbols."""


class UnsupportedFormatError(DataError):
    """The file is not in any format the loaders know."""


class MalformedRowError(DataError):
    """A row of a text file has more or fewer fields than the file's other rows."""


class ConfigError(DolphinError, ValueError):
    """Configuration is invalid. Fatal: refuse to start."""

    exit_code = 3


class RetryableError(DolphinError):
    """A transient fault; the caller may retry with backoff."""


class HaltTradingError(DolphinError):
    """An invariant broke; open no new risk."""

    exit_code = 4


class InvariantBreakError(HaltTradingError):
    """A Cat1 invariant broke (a ledger that fails verification, a venue that disagrees with
    the ledger): the trader refuses to trade, the survival controller goes to HIBERNATE."""


class ErrorAction(Enum):
    """What a caller does about an error (STYLE.md §11)."""

    RETRY = "retry"
    DEGRADE = "degrade"
    HALT = "halt"


def action_for(exc: BaseException) -> ErrorAction:
    """Return the action for ``exc``: retry a transient fault, degrade on bad input, else halt.

    Halting errors are tested first so that a class deriving from two branches errs on the safe
    side; anything not known to be transient or a bad input halts, because an unknown failure is
    never healthy (DESIGN.md "Failure behaviour").
    """
    if isinstance(exc, HaltTradingError | ConfigError):
        return ErrorAction.HALT
    if isinstance(exc, RetryableError):
        return ErrorAction.RETRY
    if isinstance(exc, BadInputError):
        return ErrorAction.DEGRADE
    return ErrorAction.HALT
