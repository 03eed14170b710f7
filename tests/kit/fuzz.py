"""Seeded fuzzing of every input DOLPHIN loads: bar files in each format and config YAMLs.

Cases are mutations of REAL files: short slices of the shared bar sets re-encoded in every loader
format (long parquet, Binance kline CSV with and without header in ms and µs, its zip, freqtrade
JSON / JSON.gz / feather / parquet, a directory of files) and the committed config YAMLs. A case
mutates its file on one or more layers: the bars (NaN, inf, negative, huge values, broken OHLC,
shuffled, duplicated or overflowing timestamps), the encoded cells (quoted numbers, booleans,
nulls, junk, dropped or extra fields and columns, repeated header names, wrong column types) and
the bytes (truncation, flips, insertions, deletions, non-UTF-8, NUL).

Case ``i`` of seed ``s`` is generated from ``numpy.random.default_rng([s, i])`` alone, so a
campaign is a fixed list of cases whatever the machine's speed, and any case replays by itself.

The oracle: loading a case either raises a typed project error (a ``DolphinError``) or returns
data that passes :func:`bar_violations` / :func:`config_violations`, reference checks written
here without the loaders' code. Anything else is a failure: another exception (a traceback) or
accepted data that breaks a check (a silent acceptance). Unmutated cases must load unchanged.

Run a campaign: ``.venv/bin/python -m tests.kit.fuzz --seed 7 --cases 10000``;
replay one case and keep its file: ``... --seed 7 --case 1234 --keep /tmp/case``.
"""

from __future__ import annotations

import argparse
import collections
import functools
import gzip
import io
import json
import math
import shutil
import tempfile
import time
import traceback
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import yaml

from tests.kit.builders import binance_rows, real_bars
from tests.kit.paths import CONFIGS, SPOT_1M_2021, SPOT_5M_2024, USDM_1M_2025, USDM_5M_2023

LONG = ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
PRICES = ["open", "high", "low", "close"]
EARLIEST_NS = pd.Timestamp("2009-01-01", tz="UTC").value
LATEST_NS = pd.Timestamp("2100-01-01", tz="UTC").value
_MS = 1_000_000  # ns per ms

# --------------------------------------------------------------------------- reference checks


def bar_violations(df: pd.DataFrame) -> list[str]:
    """Return what is wrong with an accepted bar frame (empty when it is sound).

    A plain reference check, independent of the loaders: the long layout and dtypes, sorted
    unique timestamps per symbol inside 2009..2100, finite positive prices with low <= open,
    close <= high, finite non-negative volume, non-empty text symbols.
    """
    if list(df.columns) != LONG:
        return [f"columns are {list(df.columns)}"]
    bad = [c for c in [*PRICES, "volume"] if df[c].dtype != np.float64]
    if str(df["timestamp"].dtype) != "datetime64[ns, UTC]" or bad:
        return [f"dtypes {df.dtypes.astype(str).to_dict()}"]
    ts = df["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    o, h, lo, c, v = (df[k].to_numpy() for k in [*PRICES, "volume"])
    checks = {
        "timestamp outside 2009..2100": (ts < EARLIEST_NS) | (ts >= LATEST_NS),
        "price not finite and positive": ~(np.isfinite(df[PRICES].to_numpy()) & (df[PRICES] > 0))
        .to_numpy()
        .all(axis=1),
        "high < low": h < lo,
        "open outside [low, high]": (o < lo) | (o > h),
        "close outside [low, high]": (c < lo) | (c > h),
        "volume not finite and >= 0": ~(np.isfinite(v) & (v >= 0)),
    }
    problems = [f"{name} at rows {np.flatnonzero(m)[:5]}" for name, m in checks.items() if m.any()]
    symbols = df["symbol"].astype(object).to_numpy()
    for sym in pd.unique(symbols):
        if not isinstance(sym, str) or not sym.strip():
            problems.append(f"symbol {sym!r}")
            continue
        steps = np.diff(ts[symbols == sym])
        if (steps <= 0).any():
            problems.append(f"{sym}: timestamps not strictly increasing")
    return problems


def _duplicate_keys(text: str) -> list[str]:
    """Return keys that appear twice in one YAML mapping (merge keys aside)."""
    stack, found = [yaml.compose(text, Loader=yaml.SafeLoader)], []
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            keys = [k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)]
            keys = [k for k in keys if k != "<<"]
            found += [k for k, n in collections.Counter(keys).items() if n > 1]
            stack += [v for _, v in node.value]
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value
    return found


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, (list, tuple)):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def config_violations(config: Any, raw: bytes) -> list[str]:
    """Return what is wrong with an accepted config loaded from the bytes ``raw``."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return ["accepted a file that is not UTF-8"]
    problems = [f"duplicate key {k!r}" for k in _duplicate_keys(text)]
    tree = config.to_dict()
    data = yaml.safe_load(text) or {}
    for section, fields in tree.items():
        nested = data.get(section) if isinstance(data.get(section), dict) else {}
        problems += [
            f"{k!r} given flat and in {section}" for k in fields if k in data and k in nested
        ]
    for leaf in _leaves(tree):
        if isinstance(leaf, float) and not math.isfinite(leaf):
            problems.append(f"non-finite value {leaf!r}")
        if isinstance(leaf, int) and not isinstance(leaf, bool) and not 0 <= leaf <= 2**32:
            problems.append(f"integer {leaf} out of range")
    try:
        if msgspec.convert(tree, type(config)) != config:
            problems.append("config does not round-trip")
    except msgspec.ValidationError as exc:
        problems.append(f"config does not re-validate: {exc}")
    return problems


# --------------------------------------------------------------------------- the real corpus

_SOURCES = (
    (SPOT_1M_2021, ("BTCUSDT", "ETHUSDT"), "1m"),
    (USDM_5M_2023, ("BTCUSDT", "XRPUSDT"), "5m"),
    (USDM_1M_2025, ("SOLUSDT", "ETHUSDT"), "1m"),
    (SPOT_5M_2024, ("BTCUSDT", "1000SATSUSDT"), "5m"),
)
_CORPUS_BARS = 80


@functools.lru_cache(maxsize=1)
def corpus() -> tuple[tuple[pd.DataFrame, pd.DataFrame, str], ...]:
    """Return ``(bars of symbol 1, bars of symbol 2, bar)`` per shared bar set (real, cached)."""
    return tuple(
        (real_bars(a, _CORPUS_BARS, path), real_bars(b, _CORPUS_BARS, path), bar)
        for path, (a, b), bar in _SOURCES
    )


@functools.lru_cache(maxsize=1)
def config_corpus() -> tuple[tuple[str, bytes], ...]:
    """Return the committed config YAMLs: ``(name, bytes)``."""
    files = sorted(CONFIGS.glob("*.yml")) + sorted((CONFIGS / "grids").glob("*.yaml"))
    return tuple((p.name, p.read_bytes()) for p in files)


# --------------------------------------------------------------------------- bar mutations

Rng = np.random.Generator


def _cell(rng: Rng, df: pd.DataFrame, columns: list[str]) -> tuple[int, str]:
    return int(rng.integers(len(df))), str(rng.choice(columns))


def _put(value: Any) -> Callable[[Rng, pd.DataFrame], None]:
    def put(rng: Rng, df: pd.DataFrame) -> None:
        row, col = _cell(rng, df, [*PRICES, "volume"])
        df.loc[row, col] = value

    return put


def _scale(factor: float) -> Callable[[Rng, pd.DataFrame], None]:
    def scale(rng: Rng, df: pd.DataFrame) -> None:
        row, col = _cell(rng, df, [*PRICES, "volume"])
        df.loc[row, col] = df.loc[row, col] * factor

    return scale


def _swap_high_low(rng: Rng, df: pd.DataFrame) -> None:
    row = int(rng.integers(len(df)))
    df.loc[row, ["high", "low"]] = df.loc[row, ["low", "high"]].to_numpy()


def _outside(name: str) -> Callable[[Rng, pd.DataFrame], None]:
    def outside(rng: Rng, df: pd.DataFrame) -> None:
        row = int(rng.integers(len(df)))
        up = rng.random() < 0.5
        df.loc[row, name] = df.loc[row, "high"] * 1.001 if up else df.loc[row, "low"] * 0.999

    return outside


def _shift_time(delta: pd.Timedelta) -> Callable[[Rng, pd.DataFrame], None]:
    def shift(rng: Rng, df: pd.DataFrame) -> None:
        df.loc[int(rng.integers(len(df))), "timestamp"] += delta

    return shift


def _copy_time(rng: Rng, df: pd.DataFrame) -> None:
    row = int(rng.integers(1, len(df))) if len(df) > 1 else 0
    df.loc[row, "timestamp"] = df.loc[max(row - 1, 0), "timestamp"]


def _far_time(rng: Rng, df: pd.DataFrame) -> None:
    year = int(rng.choice([1999, 2008, 2100, 2150, 2261]))
    df.loc[int(rng.integers(len(df))), "timestamp"] = pd.Timestamp(f"{year}-06-01", tz="UTC")


def _shuffle(rng: Rng, df: pd.DataFrame) -> pd.DataFrame:
    return df.iloc[rng.permutation(len(df))].reset_index(drop=True)


def _swap_rows(rng: Rng, df: pd.DataFrame) -> pd.DataFrame:
    order = np.arange(len(df))
    i = int(rng.integers(len(df) - 1)) if len(df) > 1 else 0
    order[[i, min(i + 1, len(df) - 1)]] = order[[min(i + 1, len(df) - 1), i]]
    return df.iloc[order].reset_index(drop=True)


def _dup_rows(rng: Rng, df: pd.DataFrame) -> pd.DataFrame:
    rows = np.sort(np.append(np.arange(len(df)), rng.integers(len(df), size=rng.integers(1, 4))))
    return df.iloc[rows].reset_index(drop=True)


def _drop_rows(rng: Rng, df: pd.DataFrame) -> pd.DataFrame:
    keep = rng.random(len(df)) > 0.3
    keep[0] = True
    return df[keep].reset_index(drop=True)


_IN_PLACE: dict[str, Callable[[Rng, pd.DataFrame], None]] = {
    "nan": _put(np.nan),
    "inf": _put(np.inf),
    "-inf": _put(-np.inf),
    "negative": _scale(-1.0),
    "zero": _put(0.0),
    "huge": _put(1e300),
    "tiny": _put(5e-324),
    "x1e6": _scale(1e6),
    "swap_high_low": _swap_high_low,
    "open_outside": _outside("open"),
    "close_outside": _outside("close"),
    "ts_off_grid": _shift_time(pd.Timedelta(seconds=30)),
    "ts_one_bar_back": _shift_time(pd.Timedelta(minutes=-1)),
    "ts_duplicate": _copy_time,
    "ts_far": _far_time,
}
_REORDER: dict[str, Callable[[Rng, pd.DataFrame], pd.DataFrame]] = {
    "shuffle": _shuffle,
    "swap_rows": _swap_rows,
    "duplicate_rows": _dup_rows,
    "drop_rows": _drop_rows,
}
FRAME_MUTATIONS = (*_IN_PLACE, *_REORDER)


def mutate_frame(rng: Rng, df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Apply one bar-level mutation to a copy of ``df``; return it and the mutation's name."""
    name = str(rng.choice(FRAME_MUTATIONS))
    df = df.copy()
    if name in _REORDER:
        return _REORDER[name](rng, df), name
    _IN_PLACE[name](rng, df)
    return df, name


# --------------------------------------------------------------------------- cell mutations


class Quoted(str):
    """A number written with quotes around it (``"61000.5"`` in a CSV, a string in JSON)."""


def _epoch_values(unit: str) -> list[Any]:
    per = {"ms": 1, "us": 1_000}[unit]
    return [
        21_900_000_000_000 * per,  # year 2664: wraps to 2070 in int64 ns
        2**63 - 1,
        2**64 + 5,
        10**30,
        -1,
        0,
        1_617_321_600 * per,  # seconds-sized in this unit
        1_617_321_600_000.5 * per,
    ]


_JUNK = ["", " ", "abc", "1.2.3", "0x1A", "NaN", "inf", "-0", "1e400", "１２３", "None", "1,5"]


def _text_value(rng: Rng, value: Any, unit: str, time: bool) -> tuple[Any, str]:
    kind = str(rng.choice(["quoted", "bool", "null", "junk", "huge_int", "nested", "epoch"]))
    if kind == "quoted":
        return Quoted(value), kind
    if kind == "bool":
        return bool(rng.random() < 0.5), kind
    if kind == "null":
        return None, kind
    if kind == "junk":
        return str(rng.choice(_JUNK)), kind
    if kind == "huge_int":
        return 10**30 if rng.random() < 0.5 else 2**63, kind
    if kind == "nested":
        return [value], kind
    values = _epoch_values(unit)
    return (values[int(rng.integers(len(values)))] if time else -abs(value)), kind


def mutate_cells(rng: Rng, header: list[str] | None, rows: list[list[Any]], unit: str) -> str:
    """Mutate the cells of a text table in place (a value, a field, a column); return a name."""
    kinds = ["value"] * 6 + ["drop_field", "extra_field", "drop_column"] * 2 + ["no_rows", "scalar"]
    kind = str(rng.choice(kinds))
    r, c = int(rng.integers(len(rows))), int(rng.integers(6))
    if kind == "value":
        rows[r][c], name = _text_value(rng, rows[r][c], unit, time=c == 0)
        return f"cell_{name}"
    if kind == "no_rows":
        rows.clear()
    elif kind == "scalar":  # a row that is a bare value, not a list of fields
        rows[r] = rows[r][0]
    elif kind == "drop_field":
        del rows[r][c]
    elif kind == "extra_field":
        rows[r].insert(c, rows[r][c])
    else:
        for row in rows:
            del row[c]
        if header is not None:
            del header[c]
    return kind


def _render_csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Quoted):
        return f'"{value}"'
    if isinstance(value, list):
        return f'"{value}"'
    return str(value)


def _render_json_cell(value: Any) -> Any:
    return str(value) if isinstance(value, Quoted) else value


def _as_list(row: Any) -> list[Any]:
    return row if isinstance(row, list) else [row]


# --------------------------------------------------------------------------- typed mutations


def _replace(table: pa.Table, name: str, array: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, array)


def _one_null(table: pa.Table, name: str, rng: Rng) -> pa.Table:
    values = table.column(name).to_pylist()
    values[int(rng.integers(len(values)))] = None
    return _replace(table, name, pa.array(values, type=table.column(name).type))


def _year_2700(table: pa.Table, name: str, rng: Rng) -> pa.Table:
    us = table.column(name).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist()
    us[int(rng.integers(len(us)))] = 23_036_000_000 * 1_000_000  # year 2700 in µs
    return _replace(table, name, pa.array(us, type=pa.timestamp("us", tz="UTC")))


def _epoch_column(unit: str, dtype: pa.DataType) -> Callable[[pa.Table, str, Rng], pa.Table]:
    def convert(table: pa.Table, name: str, rng: Rng) -> pa.Table:
        ints = table.column(name).cast(pa.timestamp(unit, tz="UTC")).cast(pa.int64())
        return _replace(table, name, ints.cast(dtype))

    return convert


def _time_type(dtype: pa.DataType) -> Callable[[pa.Table, str, Rng], pa.Table]:
    def convert(table: pa.Table, name: str, rng: Rng) -> pa.Table:
        naive = table.column(name).cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
        stamps = naive.cast(pa.timestamp("ns", tz=getattr(dtype, "tz", None)))
        return _replace(table, name, stamps.cast(dtype, safe=False))

    return convert


def _iso_strings(table: pa.Table, name: str, rng: Rng) -> pa.Table:
    text = [str(t) for t in table.column(name).to_pandas()]
    return _replace(table, name, pa.array(text))


def _ms_2655(table: pa.Table, name: str, rng: Rng) -> pa.Table:
    ms = table.column(name).cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_pylist()
    ms[int(rng.integers(len(ms)))] = 21_900_000_000_000
    return _replace(table, name, pa.array(ms, type=pa.int64()))


_TIME_MUTATIONS: dict[str, Callable[[pa.Table, str, Rng], pa.Table]] = {
    "ts_int_ms": _epoch_column("ms", pa.int64()),
    "ts_int_us": _epoch_column("us", pa.int64()),
    "ts_int_ns": _epoch_column("ns", pa.int64()),
    "ts_float_ms": _epoch_column("ms", pa.float64()),
    "ts_uint_ms": _epoch_column("ms", pa.uint64()),
    "ts_naive": _time_type(pa.timestamp("ns")),
    "ts_seconds": _time_type(pa.timestamp("s", tz="UTC")),
    "ts_tokyo": _time_type(pa.timestamp("us", tz="Asia/Tokyo")),
    "ts_date32": _time_type(pa.date32()),
    "ts_iso_text": _iso_strings,
    "ts_year_2700_us": _year_2700,
    "ts_ms_2655": _ms_2655,
    "ts_null": _one_null,
}


def _cast(dtype: pa.DataType) -> Callable[[pa.Table, str, Rng], pa.Table]:
    def cast(table: pa.Table, name: str, rng: Rng) -> pa.Table:
        column = table.column(name)
        if pa.types.is_duration(dtype) or pa.types.is_float16(dtype):
            values = column.to_numpy()
            array = (
                pa.array(values.astype(np.float16))
                if pa.types.is_float16(dtype)
                else pa.array(np.nan_to_num(values).astype(np.int64)).cast(dtype)
            )
            return _replace(table, name, array)
        return _replace(table, name, column.cast(dtype, safe=False))

    return cast


def _as_bool(table: pa.Table, name: str, rng: Rng) -> pa.Table:
    values = table.column(name).to_numpy()
    return _replace(table, name, pa.array(values > np.median(values)))


def _as_dictionary(table: pa.Table, name: str, rng: Rng) -> pa.Table:
    return _replace(table, name, table.column(name).combine_chunks().dictionary_encode())


def _as_decimal(table: pa.Table, name: str, rng: Rng) -> pa.Table:
    return _replace(table, name, table.column(name).cast(pa.decimal128(38, 10), safe=False))


_VALUE_MUTATIONS: dict[str, Callable[[pa.Table, str, Rng], pa.Table]] = {
    "cast_string": _cast(pa.string()),
    "cast_int": _cast(pa.int64()),
    "cast_float32": _cast(pa.float32()),
    "cast_float16": _cast(pa.float16()),
    "cast_duration": _cast(pa.duration("s")),
    "cast_bool": _as_bool,
    "dictionary": _as_dictionary,
    "decimal": _as_decimal,
    "one_null": _one_null,
}


def _symbol_column(kind: str, n: int) -> pa.Array:
    arrays = {
        "symbol_struct": lambda: pa.array([{"a": 1}] * n),
        "symbol_int": lambda: pa.array(list(range(n))),
        "symbol_null": lambda: pa.array(["BTCUSDT"] * (n - 1) + [None]),
        "symbol_space": lambda: pa.array(["BTC USDT "] * n),
        "symbol_empty": lambda: pa.array([""] * n),
        "symbol_control": lambda: pa.array(["BTC\x00USDT"] * n),
        "symbol_float": lambda: pa.array([1.5] * n),
    }
    return arrays[kind]()


def mutate_table(rng: Rng, table: pa.Table, time_name: str) -> tuple[pa.Table, str]:
    """Apply one column-type mutation to an arrow table; return it and the mutation's name."""
    families = ["time", "value", "value", "drop", "rename", "duplicate"]
    if "symbol" in table.column_names:
        families.append("symbol")
    family = str(rng.choice(families))
    value_col = str(rng.choice([*PRICES, "volume"]))
    if family == "time":
        name = str(rng.choice(list(_TIME_MUTATIONS)))
        return _TIME_MUTATIONS[name](table, time_name, rng), name
    if family == "value":
        name = str(rng.choice(list(_VALUE_MUTATIONS)))
        return _VALUE_MUTATIONS[name](table, value_col, rng), f"{name}_{value_col}"
    if family == "symbol":
        name = str(rng.choice(["symbol_struct", "symbol_int", "symbol_null", "symbol_space",
                               "symbol_empty", "symbol_control", "symbol_float"]))  # fmt: skip
        return _replace(table, "symbol", _symbol_column(name, table.num_rows)), name
    victim = str(rng.choice(table.column_names))
    if family == "drop":
        return table.drop_columns([victim]), f"drop_{victim}"
    names = list(table.column_names)
    other = names[(names.index(victim) + 1) % len(names)]
    if family == "rename":
        names[names.index(victim)] = victim.upper()
        return table.rename_columns(names), f"rename_{victim}"
    return table.rename_columns([victim if n == other else n for n in names]), "duplicate_name"


# --------------------------------------------------------------------------- byte mutations


def _span(rng: Rng, n: int) -> tuple[int, int]:
    start = int(rng.integers(n + 1))
    return start, min(n, start + int(rng.integers(1, 17)))


def mutate_bytes(rng: Rng, data: bytes) -> tuple[bytes, str]:
    """Apply one byte-level mutation; return the new bytes and the mutation's name."""
    name = str(
        rng.choice(
            ["truncate", "truncate", "flip", "flip", "overwrite", "insert", "delete",
             "duplicate_chunk", "non_utf8", "nul", "append", "empty"]
        )
    )  # fmt: skip
    n = len(data)
    buf = bytearray(data)
    start, stop = _span(rng, n)
    junk = bytes(rng.integers(0, 256, size=stop - start + 1, dtype=np.uint8))
    if name == "truncate":
        return data[: int(rng.integers(n)) if n else 0], name
    if name == "flip":
        for pos in rng.integers(max(n, 1), size=int(rng.integers(1, 9))):
            if n:
                buf[int(pos)] ^= int(rng.integers(1, 256))
        return bytes(buf), name
    edits = {
        "overwrite": lambda: data[:start] + junk + data[stop:],
        "insert": lambda: data[:start] + junk + data[start:],
        "delete": lambda: data[:start] + data[stop:],
        "duplicate_chunk": lambda: data[:stop] + data[start:stop] + data[stop:],
        "non_utf8": lambda: data[:start] + b"\xff\xc3\x28" + data[start:],
        "nul": lambda: data[:start] + b"\x00" + data[start:],
        "append": lambda: data + junk,
        "empty": lambda: b"",
    }
    return edits[name](), name


# --------------------------------------------------------------------------- encoders

BAR_FORMATS = (
    "long_parquet",
    "csv_ms",
    "csv_us",
    "csv_header_ms",
    "csv_header_us",
    "zip",
    "json",
    "json_gz",
    "feather",
    "freqtrade_parquet",
    "directory",
)
FORMATS = (*BAR_FORMATS, "config")
_KLINE_HEADER = [
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
    "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore",
]  # fmt: skip


@dataclass
class Case:
    """One fuzz case: what was built and how it was mutated."""

    seed: int
    index: int
    fmt: str
    steps: list[str] = field(default_factory=list)
    path: Path | None = None
    raw: bytes = b""
    symbol: str | None = None  # the ``symbol=`` argument of ``load_bars``
    expected: pd.DataFrame | None = None  # set only when nothing was mutated


def _ft_name(symbol: str, suffix: str, bar: str) -> str:
    base = symbol[:-4] + "_USDT" if symbol.endswith("USDT") else symbol
    return f"{base}-{bar}{suffix}"


def _csv_bytes(header: list[str] | None, rows: list[list[Any]]) -> bytes:
    lines = [",".join(header)] if header is not None else []
    lines += [",".join(_render_csv_cell(v) for v in _as_list(row)) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def _text_table(rng: Rng, case: Case, bars: pd.DataFrame, unit: str, csv: bool) -> bytes:
    if csv:
        rows = binance_rows(bars, unit).astype(object).to_numpy().tolist()
        header = list(_KLINE_HEADER) if "header" in case.fmt else None
    else:
        ms = bars["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64) // _MS
        cols = [bars[c].tolist() for c in [*PRICES, "volume"]]
        rows = [[int(t), *vals] for t, *vals in zip(ms, *cols, strict=True)]
        header = None
    if rng.random() < 0.35:
        case.steps.append(mutate_cells(rng, header, rows, unit))
    if csv:
        if header is not None and rng.random() < 0.05:
            header[int(rng.integers(1, 6))] = header[int(rng.integers(1, 6))]
            case.steps.append("header_repeat")
        return _csv_bytes(header, rows)
    rendered = [
        [_render_json_cell(v) for v in row] if isinstance(row, list) else row for row in rows
    ]
    return json.dumps(rendered).encode()


def _maybe_bytes(rng: Rng, case: Case, data: bytes, p: float) -> bytes:
    if rng.random() < p:
        data, name = mutate_bytes(rng, data)
        case.steps.append(name)
    return data


def _zip_bytes(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo(name, date_time=(2021, 4, 2, 0, 0, 0)), data)
    return buf.getvalue()


def _table_bytes(rng: Rng, case: Case, bars: pd.DataFrame, long: bool) -> bytes:
    frame = bars if long else bars.drop(columns="symbol").rename(columns={"timestamp": "date"})
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    if rng.random() < 0.35:
        table, name = mutate_table(rng, table, "timestamp" if long else "date")
        case.steps.append(name)
    buf = io.BytesIO()
    if case.fmt == "feather":
        feather.write_feather(table, buf)
    else:
        pq.write_table(table, buf)
    data = buf.getvalue()
    if rng.random() < 0.05:  # pandas metadata that is no longer JSON (every copy of it)
        data = data.replace(b'{"index_columns"', b'["index_columns"')
        case.steps.append("corrupt_pandas_metadata")
    return data


def encode_bars(rng: Rng, case: Case, bars: pd.DataFrame, bar: str) -> tuple[str, bytes]:
    """Encode ``bars`` (one symbol, or two for the long parquet) as ``case.fmt``; return
    ``(file name, bytes)``, applying cell and byte mutations on the way."""
    fmt, symbol = case.fmt, str(bars["symbol"].iloc[0])
    p_bytes = 0.3
    if fmt.startswith("csv") or fmt == "zip":
        data = _text_table(rng, case, bars, "us" if fmt.endswith("us") else "ms", csv=True)
        name = f"{symbol}-{bar}-2021-04.csv"
        if fmt == "zip":
            data = _zip_bytes(name, _maybe_bytes(rng, case, data, 0.15))
            name = name[:-4] + ".zip"
    elif fmt.startswith("json"):
        data = _text_table(rng, case, bars, "ms", csv=False)
        name = _ft_name(symbol, ".json", bar)
        if fmt == "json_gz":
            data = gzip.compress(_maybe_bytes(rng, case, data, 0.15), mtime=0)
            name += ".gz"
    else:
        long = fmt == "long_parquet"
        data = _table_bytes(rng, case, bars, long)
        suffix = ".feather" if fmt == "feather" else ".parquet"
        name = "bars.parquet" if long else _ft_name(symbol, suffix, bar)
    return name, _maybe_bytes(rng, case, data, p_bytes)


# --------------------------------------------------------------------------- cases


def _slice(rng: Rng, bars: pd.DataFrame) -> pd.DataFrame:
    start = int(rng.integers(0, _CORPUS_BARS // 2))
    n = int(rng.integers(2, _CORPUS_BARS // 2))
    return bars.iloc[start : start + n].reset_index(drop=True)


def _expected(bars: pd.DataFrame) -> pd.DataFrame:
    out = bars.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)
    out["symbol"] = pd.Categorical(out["symbol"], categories=sorted(out["symbol"].unique()))
    return out[LONG]


def _bar_case(rng: Rng, case: Case, work: Path) -> None:
    first, second, bar = corpus()[int(rng.integers(len(corpus())))]
    bars = _slice(rng, first)
    if case.fmt in ("long_parquet", "directory"):
        bars = pd.concat([bars, _slice(rng, second)], ignore_index=True)
    if rng.random() < 0.35:
        bars, name = mutate_frame(rng, bars)
        case.steps.append(name)
    if case.fmt == "directory":
        _directory_case(rng, case, bars, bar, work)
        return
    name, data = encode_bars(rng, case, bars, bar)
    case.path, case.raw = work / name, data
    case.path.write_bytes(data)
    if case.fmt == "long_parquet" and rng.random() < 0.25:
        case.symbol = str(bars["symbol"].iloc[-1])
        bars = bars[bars["symbol"] == case.symbol]
    if not case.steps:
        case.expected = _expected(bars)


def _directory_case(rng: Rng, case: Case, bars: pd.DataFrame, bar: str, work: Path) -> None:
    # Each symbol's bars split in two files of random single-symbol formats, merged on load.
    folder = work / "bars"
    folder.mkdir()
    for _, part in bars.groupby("symbol", sort=False):
        cut = len(part) // 2
        for k, half in enumerate((part.iloc[:cut], part.iloc[cut:])):
            if not len(half):
                continue
            sub = Case(case.seed, case.index, str(rng.choice(BAR_FORMATS[1:10])))
            name, data = encode_bars(rng, sub, half.reset_index(drop=True), bar)
            case.steps += [f"{sub.fmt}:{s}" for s in sub.steps]
            folder.joinpath(name.replace(f"-{bar}", f"-{bar}-{k}", 1)).write_bytes(data)
    case.path = folder


_CONFIG_VALUES = [
    ".nan", ".NaN", ".inf", "-.inf", "nan", "1e999", "-1", "0", "-0.0", "99999999999999999999999",
    "1000001", "4294967296", "true", "'0.5'", "null", "[]", "{}", "2021-02-30", "!!binary AAAA",
    "0x1F", "1_000", "[1, .nan]", "[50, 1e400]", "~", "2.5e-324", "*nope", "!!python/none ''",
]  # fmt: skip


def _typo(lines: list[str], i: int, key: str, rng: Rng) -> None:
    word = key.strip()
    if word:
        k = int(rng.integers(len(word)))
        lines[i] = lines[i].replace(word, word[:k] + word[k + 1 :], 1)


def _deep(lines: list[str], i: int, key: str, rng: Rng) -> None:
    depth = int(rng.choice([5, 25, 200, 3000]))
    lines.append("alpha: " + "[" * depth + "]" * depth)


def _indent(key: str) -> str:
    return key[: len(key) - len(key.lstrip())]


def _set(i: int, *new: str) -> Callable[[list[str]], None]:
    def edit(lines: list[str]) -> None:
        lines[i : i + 1] = list(new)

    return edit


# Each edit changes the lines of a YAML file in place at line ``i`` (whose key is ``key``).
_YAML_EDITS: dict[str, Callable[[list[str], int, str, Rng], None]] = {
    "value": lambda ls, i, key, rng: _set(i, f"{key}: {rng.choice(_CONFIG_VALUES)}")(ls),
    "duplicate_line": lambda ls, i, key, rng: _set(i, ls[i], ls[i])(ls),
    "typo": _typo,
    "drop_line": lambda ls, i, key, rng: _set(i)(ls),
    "unknown": lambda ls, i, key, rng: _set(i, f"{_indent(key)}max_levrage: 3", ls[i])(ls),
    "flat_and_section": lambda ls, i, key, rng: ls.append(f"{key.strip()}: 1"),
    "misplaced": lambda ls, i, key, rng: ls.extend(["scanner:", "  beta_high: 0.5"]),
    "deep": _deep,
    "bom": lambda ls, i, key, rng: _set(0, "\ufeff" + ls[0])(ls),
    "tab": lambda ls, i, key, rng: _set(i, "\t" + ls[i])(ls),
    "alias": lambda ls, i, key, rng: ls.extend(["base: &b {seed: 1}", "alpha: *b"]),
}


def _config_lines(rng: Rng, text: str) -> tuple[str, str]:
    lines = text.splitlines() or [""]
    keyed = [i for i, ln in enumerate(lines) if ":" in ln and not ln.lstrip().startswith("#")]
    i = int(rng.choice(keyed)) if keyed else 0
    kind = str(rng.choice(["value", *_YAML_EDITS]))
    _YAML_EDITS[kind](lines, i, lines[i].partition(":")[0], rng)
    return "\n".join(lines) + "\n", kind


def _config_case(rng: Rng, case: Case, work: Path) -> None:
    files = config_corpus()
    # The run configs (blue, green) load as they are; the grids are YAML a config refuses.
    weights = np.array([4.0 if name.endswith(".yml") else 1.0 for name, _ in files])
    name, raw = files[int(rng.choice(len(files), p=weights / weights.sum()))]
    data = raw
    if rng.random() < 0.75:
        text, kind = _config_lines(rng, raw.decode())
        data = text.encode()
        case.steps.append(f"yaml_{kind}")
    data = _maybe_bytes(rng, case, data, 0.3)
    case.path, case.raw = work / name, data
    case.path.write_bytes(data)


_FORMAT_P = np.array([1.0] * len(BAR_FORMATS) + [2.0])  # configs: twice a bar format's share
_FORMAT_P = _FORMAT_P / _FORMAT_P.sum()


def make_case(seed: int, index: int, work: Path) -> Case:
    """Build case ``index`` of campaign ``seed`` inside the empty folder ``work``."""
    rng = np.random.default_rng([seed, index])
    fmt = str(rng.choice(FORMATS, p=_FORMAT_P))
    case = Case(seed, index, fmt)
    if fmt == "config":
        _config_case(rng, case, work)
    else:
        _bar_case(rng, case, work)
    return case


# --------------------------------------------------------------------------- the oracle


@dataclass
class Outcome:
    """What loading one case did: ``accepted``, ``refused`` (typed error) or a failure."""

    case: Case
    kind: str  # accepted | refused | traceback | violation
    detail: str = ""


def _judge_bars(case: Case, result: pd.DataFrame) -> Outcome:
    problems = bar_violations(result)
    if not problems and case.expected is not None:
        want = case.expected
        same = len(want) == len(result) and all(
            np.array_equal(result[c].to_numpy(), want[c].to_numpy()) for c in LONG
        )
        problems = [] if same else ["unmutated file did not load unchanged"]
    return (
        Outcome(case, "violation", "; ".join(problems)) if problems else Outcome(case, "accepted")
    )


def run_case(case: Case) -> Outcome:
    """Load ``case`` and judge the result."""
    from dolphin.core.config import load_config
    from dolphin.core.errors import DolphinError
    from dolphin.data import load_bars

    try:
        if case.fmt == "config":
            result = load_config(case.path)
        else:
            result = load_bars(case.path, symbol=case.symbol)
    except DolphinError as exc:
        return Outcome(case, "refused", type(exc).__name__)
    except Exception:  # any other exception is exactly what the fuzz hunts
        return Outcome(case, "traceback", traceback.format_exc(limit=-6))
    if case.fmt == "config":
        problems = config_violations(result, case.raw)
        return (
            Outcome(case, "violation", "; ".join(problems))
            if problems
            else Outcome(case, "accepted")
        )
    return _judge_bars(case, result)


@dataclass
class Report:
    """A campaign's numbers."""

    seed: int
    cases: int
    seconds: float
    kinds: collections.Counter = field(default_factory=collections.Counter)
    errors: collections.Counter = field(default_factory=collections.Counter)
    formats: collections.Counter = field(default_factory=collections.Counter)
    mutations: collections.Counter = field(default_factory=collections.Counter)
    failures: list[Outcome] = field(default_factory=list)

    def summary(self) -> str:
        """Return a human-readable summary with a replay command per failure."""
        lines = [
            f"fuzz seed {self.seed}: {self.cases} cases in {self.seconds:.1f} s "
            f"({self.cases / max(self.seconds, 1e-9):.0f}/s)",
            "outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.kinds.items())),
            "typed errors: " + ", ".join(f"{k} {v}" for k, v in self.errors.most_common()),
            "formats: " + ", ".join(f"{k} {v}" for k, v in sorted(self.formats.items())),
            f"distinct mutations: {len(self.mutations)}",
        ]
        for out in self.failures[:20]:
            lines.append(
                f"FAIL {out.kind} case {out.case.index} ({out.case.fmt}, {out.case.steps}): "
                f"{out.detail.strip()[-600:]}\n  replay: .venv/bin/python -m tests.kit.fuzz "
                f"--seed {self.seed} --case {out.case.index} --keep /tmp/fuzz-case"
            )
        return "\n".join(lines)


def campaign(seed: int, cases: int, *, start: int = 0) -> Report:
    """Run cases ``start .. start + cases - 1`` of campaign ``seed``; return the report."""
    report = Report(seed, cases, 0.0)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dolphin-fuzz-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        corpus()
        for index in range(start, start + cases):
            work = Path(tmp) / str(index)
            work.mkdir()
            out = run_case(make_case(seed, index, work))
            shutil.rmtree(work)
            _tally(report, out)
    report.seconds = time.perf_counter() - began
    return report


def _tally(report: Report, out: Outcome) -> None:
    report.kinds[out.kind] += 1
    report.formats[out.case.fmt] += 1
    report.mutations.update(s.split(":")[-1] for s in out.case.steps)
    if out.kind == "refused":
        report.errors[out.detail] += 1
    elif out.kind != "accepted":
        report.failures.append(out)


def replay(seed: int, index: int, keep: Path) -> Outcome:
    """Rebuild one case into ``keep`` (emptied first), load it, print and return the outcome."""
    shutil.rmtree(keep, ignore_errors=True)
    keep.mkdir(parents=True)
    out = run_case(make_case(seed, index, keep))
    print(f"case {index} ({out.case.fmt}, {out.case.steps}) at {out.case.path}: {out.kind}")
    print(out.detail)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: run a campaign (exit 1 on any failure) or replay one case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--start", type=int, default=0, help="first case number")
    parser.add_argument("--case", type=int, default=None, help="replay this one case")
    parser.add_argument("--keep", type=Path, default=Path("/tmp/fuzz-case"))
    args = parser.parse_args(argv)
    if args.case is not None:
        return 0 if replay(args.seed, args.case, args.keep).kind in ("accepted", "refused") else 1
    report = campaign(args.seed, args.cases, start=args.start)
    print(report.summary())
    return 1 if report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
