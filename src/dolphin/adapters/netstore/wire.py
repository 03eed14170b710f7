"""The netstore wire format: length-prefixed msgspec JSON frames, shared by server and client.

A frame is a 4-byte big-endian body length followed by the body, one JSON array:

- request, client -> server: ``[id, op, thread, map, args]``; ``thread`` is the calling
  thread's id on the client (it selects the server-side lane that owns its key locks).
- response, server -> client: ``[0, id, result]`` or ``[1, id, error_type, message]``.
- event, server -> client: ``[2, registration_id, map, kind, key, value, old_value]``.

Arrays rather than objects keep frames small and decoding cheap; the shapes are checked on
receipt, and a frame that breaks them ends the connection (``MalformedFrameError``).
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any, BinaryIO

import msgspec

from dolphin.core.errors import BadInputError
from dolphin.store.errors import LockNotHeldError, StoreUnavailableError
from dolphin.store.processors import Processor

#: Bodies above this are refused: no store value comes near it, a garbage length does.
MAX_FRAME = 64 * 1024 * 1024

RESPONSE_OK = 0
RESPONSE_ERROR = 1
EVENT = 2

#: Operations that never wait for a key lock: the server answers them on the connection thread.
INLINE_OPS = frozenset({"ping", "cluster_view", "get", "get_all", "keys", "clear", "is_locked",
                        "add_listener", "remove_listener"})
#: Operations that may wait for, take or release a key lock: run on the caller's server lane.
LANE_OPS = frozenset({"put", "put_all", "delete", "put_if_absent", "replace_if_same", "execute",
                      "lock", "try_lock", "unlock"})

_HEADER = struct.Struct(">I")
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class MalformedFrameError(BadInputError):
    """A frame that is not a length-prefixed JSON array of the expected shape."""


def pack(message: list[Any]) -> bytes:
    """Return the frame (header and body) of ``message``."""
    body = _encoder.encode(message)
    return _HEADER.pack(len(body)) + body


def read_frame(stream: BinaryIO, source: str) -> list[Any] | None:
    """Read one frame from ``stream``; None at a clean end of stream before a header.

    Raises ``MalformedFrameError`` (naming ``source``) for an oversized, truncated or
    undecodable frame, or one whose body is not a JSON array.
    """
    header = stream.read(_HEADER.size)
    if not header:
        return None
    if len(header) < _HEADER.size:
        raise MalformedFrameError("truncated frame header", source=source, value=len(header))
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise MalformedFrameError(f"frame longer than {MAX_FRAME} bytes", source=source,
                                  value=size)
    body = stream.read(size)
    if len(body) < size:
        raise MalformedFrameError("truncated frame body", source=source, value=len(body))
    try:
        message = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedFrameError(f"frame body is not JSON: {exc}", source=source,
                                  value=bytes(body[:40])) from exc
    if not isinstance(message, list) or not message:
        raise MalformedFrameError("frame body is not a non-empty JSON array", source=source,
                                  value=type(message).__name__)
    return message


# -- errors -------------------------------------------------------------------------------------

_ERROR_TYPES: tuple[tuple[str, type[Exception]], ...] = (
    ("LockNotHeldError", LockNotHeldError),
    ("StoreUnavailableError", StoreUnavailableError),
    ("BadInputError", BadInputError),
)


def error_type(exc: BaseException) -> str:
    """Return the wire name of ``exc``: the first store-port error class it is an instance of."""
    for name, cls in _ERROR_TYPES:
        if isinstance(exc, cls):
            return name
    return "ServerError"


def error_from_wire(name: str, message: str, address: str) -> Exception:
    """Rebuild the error the server reported (an unknown kind becomes StoreUnavailableError)."""
    if name == "LockNotHeldError":
        return LockNotHeldError(message)
    if name == "BadInputError":
        return BadInputError(message)
    return StoreUnavailableError(f"netstore {address}: {message}")


# -- entry processors ---------------------------------------------------------------------------


def processor_to_wire(processor: Processor) -> list[Any]:
    """Return ``[class_id, [[kind, value], ...]]`` for ``processor`` (its Java fields)."""
    if not processor.CLASS_ID:
        raise BadInputError("entry processor has no CLASS_ID", field="processor",
                            value=type(processor).__name__)
    return [processor.CLASS_ID, [[kind, value] for kind, value in processor.fields()]]


def _processor_classes() -> dict[int, type[Processor]]:
    found: dict[int, type[Processor]] = {}
    todo = list(Processor.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.CLASS_ID:
            found.setdefault(cls.CLASS_ID, cls)
    return found


_KINDS: dict[str, tuple[type, ...]] = {"string": (str,), "double": (float, int)}


def processor_from_wire(raw: object) -> Processor:
    """Rebuild the processor sent as ``[class_id, fields]``; BadInputError if it is not one."""
    if not (isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], int)
            and isinstance(raw[1], list)):
        raise BadInputError("entry processor must be [class_id, fields]", field="processor",
                            value=str(raw)[:80])
    class_id, fields = raw
    cls = _processor_classes().get(class_id)
    if cls is None:
        raise BadInputError("unknown entry processor class id", field="class_id",
                            value=class_id)
    values: list[Any] = []
    for item in fields:
        if not (isinstance(item, list) and len(item) == 2 and item[0] in _KINDS
                and isinstance(item[1], _KINDS[item[0]]) and not isinstance(item[1], bool)):
            raise BadInputError("entry processor field must be [kind, value]",
                                field=cls.__name__, value=str(item)[:80])
        values.append(float(item[1]) if item[0] == "double" else item[1])
    if len(values) != len(dataclasses.fields(cls)):
        raise BadInputError("entry processor has the wrong number of fields",
                            field=cls.__name__, value=len(values))
    return cls(*values)
