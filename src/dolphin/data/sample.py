"""Build the committed sample ``data/sample/bars_1m_sample.parquet`` and its PROVENANCE.md.

The cut: the 20 symbols with the largest dollar volume (sum of close x volume) inside the
window, 7 consecutive days of 1-minute bars, 2021-04-12 00:00 to 2021-04-18 23:59 UTC. The week
holds BTC's all-time high of 2021-04-14 and the sharp sell-off of 2021-04-18, and none of the
file's exchange-wide outages (2021-04-20 and 2021-04-25), so it is eventful but gap free.

Run: ``python -m dolphin.data.sample [--source PARQUET] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import pandas as pd

from dolphin.core.io import atomic_write_parquet, atomic_write_text
from dolphin.data.loaders import load_bars

SOURCE_NAME = "binance_spot_1m_2021-04_top50.parquet"
SAMPLE_NAME = "bars_1m_sample.parquet"
START = pd.Timestamp("2021-04-12", tz="UTC")
END = pd.Timestamp("2021-04-19", tz="UTC")  # exclusive: 7 whole days
N_SYMBOLS = 20
ORIGIN = "github.com/selskas/Freqtrade-configs @ bbee0036 (user_data/data/binance)"

_REPO = Path(__file__).resolve().parents[3]
DEFAULT_SOURCE = _REPO.parent / "shared" / "data" / "bars" / SOURCE_NAME
DEFAULT_OUT = _REPO / "data" / "sample"


def cut_sample(bars: pd.DataFrame) -> pd.DataFrame:
    """Return the sample cut of the long frame ``bars`` (window, then top symbols by $ volume)."""
    window = bars[(bars["timestamp"] >= START) & (bars["timestamp"] < END)]
    dollar = (window["close"] * window["volume"]).groupby(window["symbol"], observed=True).sum()
    top = sorted(dollar.nlargest(N_SYMBOLS).index.astype(str))
    out = window[window["symbol"].astype(str).isin(top)].copy()
    out["symbol"] = pd.Categorical(out["symbol"].astype(str), categories=top)
    return out.reset_index(drop=True)


def _provenance(sample: pd.DataFrame, source: Path, digest: str) -> str:
    symbols = ", ".join(sample["symbol"].cat.categories)
    return f"""# data/sample provenance

`{SAMPLE_NAME}`: real Binance spot 1-minute bars in the long layout (`timestamp`
datetime64[ns, UTC] bar open time, `symbol` category, `open, high, low, close, volume`
float64), sorted by symbol then timestamp, zstd-compressed parquet (level 19).

- Source file: `shared/data/bars/{source.name}` (described in `shared/data/README.md`).
- Original source repository: {ORIGIN}.
  freqtrade candles re-encoded to parquet, values unedited.
- Cut: {START:%Y-%m-%d %H:%M} to {END - pd.Timedelta(minutes=1):%Y-%m-%d %H:%M} UTC inclusive
  (7 days); the {N_SYMBOLS} symbols with the largest dollar volume (sum of close x volume) in
  that window. The week holds BTC's all-time high (2021-04-14) and the 2021-04-18 sell-off,
  and avoids the exchange-wide outages of 2021-04-20 and 2021-04-25: no bar is missing.
- Symbols: {symbols}.
- Rows: {len(sample):,}.
- Produced by: `python -m dolphin.data.sample` (`src/dolphin/data/sample.py`, `cut_sample`).
- sha256 of `{SAMPLE_NAME}`:
  `{digest}`
  (the bytes depend on the pyarrow version that wrote them; the rows do not).

Binance terms apply to the underlying numbers.
"""


def build_sample(source: Path = DEFAULT_SOURCE, out_dir: Path = DEFAULT_OUT) -> Path:
    """Cut the sample from ``source``, write it and PROVENANCE.md into ``out_dir``; return it."""
    sample = cut_sample(load_bars(source))
    out_dir.mkdir(parents=True, exist_ok=True)
    # Level-19 zstd and dictionaries for the repetitive columns keep the committed file ~5 MB;
    # volume has few repeats, so it is byte-stream split instead.
    path = atomic_write_parquet(
        sample,
        out_dir / SAMPLE_NAME,
        compression_level=19,
        use_dictionary=["timestamp", "symbol", "open", "high", "low", "close"],
        use_byte_stream_split=["volume"],
    )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    atomic_write_text(out_dir / "PROVENANCE.md", _provenance(sample, Path(source), digest))
    return path


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point of ``python -m dolphin.data.sample``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    path = build_sample(args.source, args.out)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
