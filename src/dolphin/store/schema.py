"""Map names, shard routing and the value codec (System Bible §15).

Every value is one JSON object, the *envelope*::

    {"schema": 1, "ts_ns": 1714000000000000000, "seq": 0, "data": {...}}

``schema`` is the envelope version (readers reject versions they do not know), ``ts_ns`` the
writer's wall-clock time in int64 nanoseconds UTC (what staleness is measured from), ``seq`` a
version counter used by the compare-and-set cell (0 elsewhere) and ``data`` the payload. Keeping
the payload under its own field means no payload name can collide with the envelope's.
JSON has no NaN: a NaN in the payload is written as ``null``.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

import msgspec

from dolphin.store.errors import MalformedValueError, UnsupportedSchemaError

SCHEMA_VERSION = 1
SUPPORTED_SCHEMAS = frozenset({SCHEMA_VERSION})

# Map names of §15.1 (DESIGN.md "Store").
FEATURES = "DOLPHIN_FEATURES"
SAFETY = "DOLPHIN_SAFETY"
PNL_BLUE = "DOLPHIN_PNL_BLUE"
PNL_GREEN = "DOLPHIN_PNL_GREEN"
STATE_BLUE = "DOLPHIN_STATE_BLUE"
HEARTBEAT = "DOLPHIN_HEARTBEAT"
OB = "DOLPHIN_OB"
SIGNALS = "DOLPHIN_SIGNALS"

# Well-known keys.
LATEST_EIGEN_SCAN = "latest_eigen_scan"
ACB_BOOST = "acb_boost"
EXF_LATEST = "exf_latest"
ESOF_LATEST = "esof_latest"
MC_STATUS = "mc_status"
POSTURE_KEY = "latest"

# §15.2: sum-of-ord routing, stable across processes and Python versions (unlike hash()).
SHARD_COUNT = 10
SHARD_PREFIX = "DOLPHIN_FEATURES_SHARD_"
SHARD_MAPS = tuple(f"{SHARD_PREFIX}{i:02d}" for i in range(SHARD_COUNT))

# Maps read on the hot path: the Hazelcast adapter gives these a near cache.
HOT_MAPS = (FEATURES, SAFETY, *SHARD_MAPS)
ALL_MAPS = (FEATURES, SAFETY, PNL_BLUE, PNL_GREEN, STATE_BLUE, HEARTBEAT, OB, SIGNALS, *SHARD_MAPS)


def shard_index(symbol: str) -> int:
    """Return the shard of ``symbol``: ``sum(ord(c)) % 10`` (§15.2)."""
    if not isinstance(symbol, str) or not symbol:
        raise MalformedValueError("symbol must be a non-empty string", field="symbol", value=symbol)
    return sum(ord(c) for c in symbol) % SHARD_COUNT


def shard_map_name(symbol: str) -> str:
    """Return the name of the map holding the features of ``symbol``."""
    return SHARD_MAPS[shard_index(symbol)]


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """A decoded value: the envelope fields plus the payload."""

    schema: Annotated[int, msgspec.Meta(ge=1)]
    ts_ns: Annotated[int, msgspec.Meta(ge=0)]
    data: Any
    seq: Annotated[int, msgspec.Meta(ge=0)] = 0

    def age_s(self, now_ns: int) -> float:
        """Return how old this value is at ``now_ns``, in seconds (negative if from the future)."""
        return (now_ns - self.ts_ns) / 1e9


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Record)

#: Records published by this process with ``share=True``, by the ``id`` of their text: an
#: in-process reader (the embedded store hands listeners the very string that was put) gets the
#: record without parsing it again, as a Hazelcast near cache in OBJECT format would. The entry
#: holds the text, so its ``id`` cannot be reused while it is here; a hit is checked by identity.
_SHARED_MAX = 16
_shared: dict[int, tuple[str, Record]] = {}
_shared_lock = threading.Lock()  # writers only: a reader's dict.get is atomic


def encode_value(data: Any, ts_ns: int, *, seq: int = 0, share: bool = False) -> str:
    """Return the envelope text of ``data`` written at ``ts_ns``.

    ``share=True`` keeps the record for in-process readers of this very text (``decode_value``);
    the caller then hands ``data`` over: it must not change it afterwards, and readers must not
    change what they decode (a ``Record``'s data is read-only by contract).
    """
    if not isinstance(ts_ns, int) or ts_ns < 0:
        raise MalformedValueError("ts_ns must be a non-negative int", field="ts_ns", value=ts_ns)
    record = Record(schema=SCHEMA_VERSION, ts_ns=ts_ns, data=data, seq=seq)
    try:
        text = _encoder.encode(record).decode()
    except (TypeError, msgspec.EncodeError) as exc:
        raise MalformedValueError(f"payload is not JSON-encodable: {exc}", field="data") from exc
    if share:
        # The parsed form, not ``data`` itself: a reader must see what the text says (a tuple
        # becomes a list, a NaN stays what the encoder wrote), exactly as a remote reader would.
        entry = (text, _decoder.decode(text))
        with _shared_lock:
            _shared[id(text)] = entry
            while len(_shared) > _SHARED_MAX:
                del _shared[next(iter(_shared))]
    return text


def decode_value(text: str | bytes, *, source: str = "store") -> Record:
    """Decode and validate an envelope; raise MalformedValueError naming ``source`` otherwise."""
    hit = _shared.get(id(text))
    if hit is not None and hit[0] is text:
        return hit[1]
    if not isinstance(text, str | bytes):
        raise MalformedValueError(
            f"value is a {type(text).__name__}, not JSON text", source=source, value=text
        )
    try:
        record = _decoder.decode(text)
    except msgspec.ValidationError as exc:
        raise MalformedValueError(f"invalid envelope: {exc}", source=source) from exc
    except msgspec.DecodeError as exc:
        raise MalformedValueError(f"not JSON: {exc}", source=source, value=_clip(text)) from exc
    if record.schema not in SUPPORTED_SCHEMAS:
        raise UnsupportedSchemaError(
            f"schema version not supported (known: {sorted(SUPPORTED_SCHEMAS)})",
            source=source,
            field="schema",
            value=record.schema,
        )
    return record


def _clip(text: str | bytes, limit: int = 80) -> str | bytes:
    """Keep error messages short when a huge value is malformed."""
    if len(text) <= limit:
        return text
    return text[:limit] + (b"..." if isinstance(text, bytes) else "...")
