"""Mutated real Binance messages through the stream decoder and the books: nothing escapes.

Cases are real capture lines (every shared capture) mutated on one to three layers: truncation,
byte flips, deletions and insertions (NUL, non-UTF-8), a field removed, a value of the wrong
type, a number replaced by ``NaN``/``inf``/``1e5``/``-1``/``""``. Case ``i`` comes from
``numpy.random.default_rng([SEED, i])`` alone, so any failure replays by itself.

The oracle: ``Decoder.line`` never raises; every line lands in exactly one counter; an accepted
depth record holds exactly the levels the stdlib ``json`` + ``Decimal`` read from the same text;
the books fed with the accepted records keep their counter invariant.
"""

from __future__ import annotations

import gzip
import itertools
import json
import re
from decimal import Decimal

import numpy as np
import pytest

from dolphin.adapters.binance.book import OrderBook, SyncRule
from dolphin.adapters.binance.wire import Decoder, DepthDiff, DepthSnapshot, Reason
from tests.kit.paths import SHARED_DATA, require

RAW = SHARED_DATA / "raw_ws"
SEED = 20240719
CASES = 3000
_FIELD = re.compile(rb'"[A-Za-z]+":(?:"[^"]*"|-?[0-9]+|true|false|null)')
_STRING_NUMBER = re.compile(rb'"[0-9]+\.[0-9]+"')
_BAD_NUMBERS = [b'"NaN"', b'"inf"', b'"1e5"', b'"-1"', b'""', b'" 1"', b'"0x1"', b"NaN", b"1.5"]


CAPTURES = ("binance_usdm/btcusdt_20230404.dat.gz", "binance_usdm/btcusdt_20230405.dat.gz",
            "binance_usdm/btcusdt_20240718.gz", "binance_usdm/ethusdt_20240719.gz",
            "binance_spot/btcusdt_20240808.gz")
CRYPTOFEED = ("BINANCE_FUTURES.ws.1.0", "BINANCE_FUTURES.http.0.0")


def _real_lines() -> list[bytes]:
    lines: list[bytes] = []
    for name in CAPTURES:
        with gzip.open(require(RAW / name), "rb") as fh:
            lines += list(itertools.islice(fh, 60))
    for name in CRYPTOFEED:
        text = require(RAW / "cryptofeed_binance_futures" / name).read_bytes()
        lines += text.splitlines(keepends=True)[:60]
    return lines


LINES = _real_lines()


def _truncate(line: bytes, rng: np.random.Generator) -> bytes:
    return line[: int(rng.integers(len(line) + 1))]


def _flip(line: bytes, rng: np.random.Generator) -> bytes:
    i = int(rng.integers(len(line) + 1))
    return line[:i] + bytes([int(rng.integers(256))]) + line[i + 1 :]


def _other_digit(line: bytes, rng: np.random.Generator) -> bytes:
    """A digit for another: the line usually stays valid."""
    digits = [m.start() for m in re.finditer(rb"[0-9]", line)] or [0]
    i = digits[int(rng.integers(len(digits)))]
    return line[:i] + str(int(rng.integers(10))).encode() + line[i + 1 :]


def _delete(line: bytes, rng: np.random.Generator) -> bytes:
    i = int(rng.integers(len(line) + 1))
    return line[:i] + line[i + int(rng.integers(1, 40)) :]


def _insert(line: bytes, rng: np.random.Generator) -> bytes:
    i = int(rng.integers(len(line) + 1))
    return line[:i] + rng.choice([b"\x00", b"\xff\xfe", b"{", b"]", b'"', b"\\"]) + line[i:]


def _pick(pattern: re.Pattern[bytes], line: bytes, rng: np.random.Generator) -> re.Match | None:
    found = list(pattern.finditer(line))
    return found[int(rng.integers(len(found)))] if found else None


def _remove_field(line: bytes, rng: np.random.Generator) -> bytes:
    m = _pick(_FIELD, line, rng)
    return line if m is None else line[: m.start()] + line[m.end() :].removeprefix(b",")


def _wrong_type(line: bytes, rng: np.random.Generator) -> bytes:
    m = _pick(_FIELD, line, rng)
    if m is None:
        return line
    key, _, value = m.group().partition(b":")
    wrong = {b'"': b"7", b"t": b'"x"', b"f": b"0", b"n": b"[]"}.get(value[:1], b'"7"')
    return line[: m.start()] + key + b":" + wrong + line[m.end() :]


def _bad_number(line: bytes, rng: np.random.Generator) -> bytes:
    m = _pick(_STRING_NUMBER, line, rng)
    if m is None:
        return line
    return line[: m.start()] + rng.choice(_BAD_NUMBERS) + line[m.end() :]


def _empty(line: bytes, rng: np.random.Generator) -> bytes:
    return b""


MUTATIONS = (_truncate, _flip, _other_digit, _delete, _insert, _remove_field, _wrong_type,
             _bad_number, _empty)


def case(i: int) -> tuple[bytes, int]:
    """The ``i``-th line of the campaign and how many mutations it went through (0 to 3)."""
    rng = np.random.default_rng([SEED, i])
    line = LINES[int(rng.integers(len(LINES)))]
    mutations = int(rng.choice(4, p=[0.15, 0.45, 0.25, 0.15]))
    for _ in range(mutations):
        line = MUTATIONS[int(rng.integers(len(MUTATIONS)))](line, rng)
    return line, mutations


def _ticks(text: str) -> int:
    return int(Decimal(text) * 10**8)


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


def reference_levels(line: bytes) -> list[list[int]] | None:
    """The levels of a capture line read by the stdlib json and Decimal (None: not comparable)."""
    body = line.split(b" ", 1)[-1].split(b": ", 1)[-1]
    try:
        obj = json.loads(body, object_pairs_hook=_no_duplicates)
        obj = obj.get("data", obj)
        sides = (obj["b"], obj["a"]) if "b" in obj else (obj["bids"], obj["asks"])
        return [[_ticks(p), _ticks(q)] for side in sides for p, q in side]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def test_reference_levels_reads_a_hand_written_line():
    line = b'1 {"stream":"x@depth","data":{"b":[["28145.10","3.818"]],"a":[["1.5","0"]]}}\n'
    assert reference_levels(line) == [[2_814_510_000_000, 381_800_000], [150_000_000, 0]]
    assert reference_levels(b'1 {"b":[["1","2"]],"b":[]}') is None


def _check_depth(record, line: bytes) -> None:
    levels = record.levels
    assert levels.dtype == np.int64 and levels.ndim == 2 and levels.shape[1] == 2
    assert (levels[:, 0] > 0).all() and (levels[:, 1] >= 0).all()
    want = reference_levels(line)
    if want is not None:
        assert levels.tolist() == want, line


def _feed(books: dict, record) -> None:
    if isinstance(record, DepthDiff):
        book = books.get(record.symbol)
        if book is None:
            rule = SyncRule.FUTURES if record.prev_final_update_id >= 0 else SyncRule.SPOT
            book = books[record.symbol] = OrderBook(record.symbol, rule)
        book.on_diff(record)
    elif isinstance(record, DepthSnapshot):
        for book in books.values():
            book.on_snapshot(record)


@pytest.mark.parametrize("block", range(3))
def test_mutated_real_messages_never_escape_and_counters_add_up(block):
    decoder = Decoder("fuzz")
    books: dict[str, OrderBook] = {}
    per_block = CASES // 3
    for i in range(block * per_block, (block + 1) * per_block):
        line, mutations = case(i)
        bad = decoder.total_malformed
        got = decoder.line(line, i)
        assert mutations or decoder.total_malformed == bad, line  # a real line always decodes
        if got is not None and isinstance(got[1], DepthDiff | DepthSnapshot):
            _check_depth(got[1], line)
            _feed(books, got[1])
        if got is not None:
            assert 0 <= got[0] < 2**63
    assert decoder.seen == per_block == (decoder.records.total() + decoder.total_malformed
                                         + decoder.unsupported.total() + decoder.skipped)
    assert decoder.records.total() > per_block // 5  # the campaign is not all garbage
    assert decoder.total_malformed > per_block // 3
    assert set(decoder.malformed) <= set(Reason)
    for book in books.values():
        c = book.counters
        assert c.received == (c.applied + c.dropped_stale + c.malformed + c.crossed + c.overflow
                              + book.pending)
