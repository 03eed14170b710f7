"""Store errors, placed in the DOLPHIN hierarchy so each maps to one action.

- ``StoreUnavailableError`` (retryable): the cluster cannot be reached or an operation timed out;
  a reader treats the value as missing (information decay), a writer retries with backoff.
- ``MalformedValueError`` (bad input): a stored value is not valid versioned JSON; the reader
  counts it and skips it, the service keeps running.
- ``LockNotHeldError``: ``unlock`` of a key the calling thread does not hold (a programming error).
"""

from __future__ import annotations

from dolphin.core.errors import BadInputError, DolphinError, RetryableError


class StoreUnavailableError(RetryableError):
    """The store cannot serve the request now (cluster down, timeout, client shut down)."""


class MalformedValueError(BadInputError):
    """A stored value does not decode into a valid versioned record."""


class UnsupportedSchemaError(MalformedValueError):
    """A stored value carries a schema version this reader does not understand."""


class LockNotHeldError(DolphinError, RuntimeError):
    """The calling thread tried to release a key lock it does not hold."""


def require_str(what: str, value: object) -> str:
    """Return ``value`` if it is a str, else raise BadInputError naming ``what``.

    The store port speaks strings; checking at the edge keeps both adapters alike (Hazelcast
    would otherwise store a non-string in a form other clients cannot read).
    """
    if not isinstance(value, str):
        raise BadInputError(f"{what} must be a str", field=what, value=type(value).__name__)
    return value
