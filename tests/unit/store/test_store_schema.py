"""Value codec, shard routing and the typed reader, without any cluster."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dolphin.store.errors import MalformedValueError, UnsupportedSchemaError
from dolphin.store.memory import MemoryStore
from dolphin.store.schema import (
    SCHEMA_VERSION,
    SHARD_MAPS,
    Record,
    decode_value,
    encode_value,
    shard_index,
    shard_map_name,
)
from dolphin.store.values import RecordMap

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=20,
)


@given(data=json_values, ts_ns=st.integers(0, 2**63 - 1), seq=st.integers(0, 2**31))
def test_encode_then_decode_round_trips_any_json_payload(data, ts_ns, seq) -> None:
    record = decode_value(encode_value(data, ts_ns, seq=seq))
    assert record == Record(schema=SCHEMA_VERSION, ts_ns=ts_ns, data=data, seq=seq)


def test_the_envelope_carries_schema_and_ts_ns_beside_the_payload() -> None:
    text = encode_value({"boost": 1.35}, 7)
    assert text == '{"schema":1,"ts_ns":7,"data":{"boost":1.35},"seq":0}'


def test_nan_in_a_payload_is_written_as_null() -> None:
    assert decode_value(encode_value({"x": math.nan}, 1)).data == {"x": None}


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "",
        "[]",
        '"just a string"',
        '{"schema":1,"data":{}}',  # no ts_ns
        '{"schema":1,"ts_ns":-5,"data":{}}',
        '{"schema":1,"ts_ns":"soon","data":{}}',
        '{"schema":0,"ts_ns":1,"data":{}}',
        '{"ts_ns":1,"data":{}}',
        '{"schema":1,"ts_ns":1}',  # no data
    ],
)
def test_malformed_values_raise_a_typed_error_naming_the_source(text: str) -> None:
    with pytest.raises(MalformedValueError, match="FEATURES"):
        decode_value(text, source="FEATURES['k']")


def test_a_non_text_value_is_malformed() -> None:
    with pytest.raises(MalformedValueError):
        decode_value(12)  # type: ignore[arg-type]


def test_an_unknown_schema_version_is_rejected_as_unsupported() -> None:
    with pytest.raises(UnsupportedSchemaError):
        decode_value('{"schema":99,"ts_ns":1,"data":{}}')


def test_encoding_rejects_a_bad_timestamp_and_unencodable_payloads() -> None:
    with pytest.raises(MalformedValueError):
        encode_value({}, -1)
    with pytest.raises(MalformedValueError):
        encode_value({"x": object()}, 1)


def test_shard_routing_is_sum_of_ord_mod_10() -> None:
    assert shard_index("BTCUSDT") == sum(map(ord, "BTCUSDT")) % 10 == 7  # 537
    assert shard_map_name("BTCUSDT") == "DOLPHIN_FEATURES_SHARD_07"
    assert SHARD_MAPS[0] == "DOLPHIN_FEATURES_SHARD_00" and len(SHARD_MAPS) == 10
    with pytest.raises(MalformedValueError):
        shard_index("")


def test_400_symbols_spread_over_every_shard() -> None:
    symbols = [f"{a}{b}{c}USDT" for a in "ABCDEFGH" for b in "KLMNO" for c in "PQRSTUVWXY"]
    counts = [0] * 10
    for s in symbols:
        counts[shard_index(s)] += 1
    assert sum(counts) == 400 and min(counts) >= 20


def test_record_age_uses_the_given_clock() -> None:
    record = decode_value(encode_value({}, 1_000_000_000))
    assert record.age_s(3_500_000_000) == pytest.approx(2.5)


def test_record_map_fresh_reads_follow_the_injected_clock() -> None:
    now = [10_000_000_000]
    with MemoryStore() as store:
        records = RecordMap(store.map("M"), clock=lambda: now[0])
        records.write("k", {"v": 1})
        assert records.read_fresh("k", 1.0) is not None
        now[0] += 2_000_000_000
        assert records.read_fresh("k", 1.0) is None
        assert records.staleness_s("k") == pytest.approx(2.0)
        assert records.read_fresh("absent", 1.0) is None


def test_a_shared_record_is_what_the_text_says_and_is_read_without_parsing() -> None:
    data = {"prices": (1.5, None), "n": 2}
    text = encode_value(data, 7, share=True)
    data["n"] = 99  # the publisher's object changes later: the shared record must not follow
    first = decode_value(text)
    assert first is decode_value(text)  # the very same text: the kept record, not a new parse
    assert first.data == {"prices": [1.5, None], "n": 2}  # as a remote reader would see it
    copy = "".join(list(text))  # an equal text that is another object (arrived over a wire)
    assert copy == text and copy is not text
    parsed = decode_value(copy)
    assert parsed is not first and parsed == first


def test_shared_records_are_bounded_and_unshared_texts_always_parse() -> None:
    from dolphin.store import schema

    texts = [encode_value({"i": i}, i, share=True) for i in range(schema._SHARED_MAX + 5)]
    assert len(schema._shared) <= schema._SHARED_MAX
    assert decode_value(texts[0]).data == {"i": 0}  # evicted: parsed again, same content
    plain = encode_value({"i": -1}, 1)
    assert id(plain) not in schema._shared
