"""`dolphin paper --ob FILE`: recorded OB features on the paper trader, as on the backtests.

Two days of the committed real sample (20 assets, 1 m bars) are replayed unpaced and
unsupervised, without the forewarner, once without OB and once with a planted table:

- OB-3: market multiplier 1.2 on every cycle (leverage × 1.2 below the 6x cap, §6.5);
- OB-1: LINKUSDT's depth quality 0.10 on every cycle, below the 0.20 depth gate;
- OB-4: three extra cycles with regime +1 one to three seconds before each day-1 bar's own
  cycle; a bar reads its own (later, neutral) cycle, so no bar sees the stress (no OB-5), but
  day 1's cycle count does, and day 2's beta is raised (§9.4).

The session's trades follow each sub-system in the predicted direction, and equal the
internal `dolphin backtest --parity` on the same bars scanned by `dolphin scan` with the same
table: the same entry and exit bars, assets, directions and exit reasons, notionals within the
fill difference (the sandbox fills one tick wide, the parity driver at the close). The
baseline holds without OB too. A resume with another OB file, or without one, is refused with a
ConfigError naming ``ob_sha256``; a resume with the same file reproduces the ledger.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dolphin.adapters.nautilus.paper import load_closes
from dolphin.cli import main
from dolphin.ledger.chain import Ledger
from tests.kit.ob import MACRO_COLUMNS, neutral, per_bar_frame, write_frame
from tests.kit.paths import SAMPLE, require

TIMEOUT_S = 240
S = 1_000_000_000
BAR_S = 60.0
GATED = "LINKUSDT"
MULT = 1.2
#: paper vs parity notionals: the sandbox's half-tick fills move capital by ~1e-5 in two days
REL = 5e-5


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("paper_ob")


@pytest.fixture(scope="module")
def bars(root) -> Path:
    """The first two days of the committed real sample."""
    sample = pd.read_parquet(require(SAMPLE / "bars_1m_sample.parquet"))
    first = sample["timestamp"].min()
    out = root / "bars_2d.parquet"
    sample[sample["timestamp"] < first + pd.Timedelta(days=2)].to_parquet(out)
    return out


@pytest.fixture(scope="module")
def scans(root, bars) -> Path:
    out = root / "scans.parquet"
    assert main(["scan", "--bars", str(bars), "--out", str(out)]) == 0
    return out


def _stress_rows(ts: np.ndarray, symbol: str) -> pd.DataFrame:
    """Three cycles at regime +1 at 57, 58 and 59 s after each day-1 bar's open."""
    day1 = ts[ts // (86_400 * S) == ts[0] // (86_400 * S)]
    frames = []
    for k in (3, 2, 1):
        e = pd.DataFrame({"ts_ns": day1 + int(BAR_S) * S - k * S, "symbol": symbol})
        for col, v in (("imbalance", 0.0), ("imbalance_ma5", 0.0),
                       ("imbalance_persistence", 0.0), ("withdrawal_velocity", 0.0),
                       ("depth_quality", 1.0), ("fill_probability", 0.5)):
            e[col] = v
        for col, v in zip(MACRO_COLUMNS, (0.0, 1.0, MULT), strict=True):
            e[col] = v
        frames.append(e)
    return pd.concat(frames)


@pytest.fixture(scope="module")
def tables(root, bars) -> tuple[Path, Path]:
    """``(with_stress, without_stress)``: OB-1 and OB-3 planted in both, OB-4 in the first."""
    closes = load_closes(bars)
    ts, assets = closes.index.as_unit("ns").asi8, list(closes.columns)
    per_asset, macro = neutral(len(ts), len(assets))
    macro[:, 2] = MULT
    per_asset[:, assets.index(GATED), 3] = 0.10
    base = per_bar_frame(ts, BAR_S, assets, per_asset, macro)
    stressed = pd.concat([base, _stress_rows(ts, sorted(assets)[0])])
    stressed = stressed.sort_values(["ts_ns", "symbol"], kind="stable").reset_index(drop=True)
    return (write_frame(root / "ob_stress.parquet", stressed),
            write_frame(root / "ob_calm.parquet", base))


def _paper(bars: Path, db: Path, logs: Path, ob: Path | None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "dolphin", "paper", "--replay", str(bars), "--speed", "1e6",
           "--warmup", "100000", "--duration", "600", "--log-dir", str(logs), "--ledger",
           str(db), "--unsupervised", "--no-forewarner",
           *([] if ob is None else ["--ob", str(ob)])]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


def _summary(stdout: str) -> dict:
    return json.loads(next(ln for ln in stdout.splitlines() if ln.startswith("session "))[8:])


def _session(root: Path, bars: Path, name: str, ob: Path | None):
    d = root / name
    d.mkdir()
    proc = _paper(bars, d / "ledger.db", d, ob)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = _summary(proc.stdout)
    assert summary["open_positions"] == 0 and summary["halted"] is None
    return d / "ledger.db", summary, proc.stdout


@pytest.fixture(scope="module")
def plain(root, bars):
    return _session(root, bars, "plain", None)


@pytest.fixture(scope="module")
def with_ob(root, bars, tables):
    return _session(root, bars, "with_ob", tables[0])


def _ledger_trades(db: Path) -> pd.DataFrame:
    """Round trips from the ledger's ORDER rows (one position at a time): times in ns."""
    with Ledger(db) as led:
        orders = [r for r in led.rows() if r.kind == "ORDER"]
    out, open_ = [], {}
    for r in orders:
        b = r.body
        if b["action"] == "OPEN":
            open_[b["asset"]] = (r.ts_event, b)
        else:
            t0, entry = open_.pop(b["asset"])
            out.append({"entry_ns": t0, "exit_ns": r.ts_event, "asset": b["asset"],
                        "direction": entry["direction"], "exit_reason": b["reason"],
                        "notional": entry["notional"]})
    assert not open_
    return pd.DataFrame(out)


def _backtest(scans: Path, out: Path, ob: Path | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    argv = ["backtest", "--scans", str(scans), "--out", str(out), "--parity", "--no-forewarner"]
    assert main(argv + ([] if ob is None else ["--ob", str(ob)])) == 0
    t = pd.read_parquet(out / "trades.parquet")
    trades = pd.DataFrame({
        "entry_ns": pd.DatetimeIndex(t["entry_time"]).as_unit("ns").asi8,
        "exit_ns": pd.DatetimeIndex(t["exit_time"]).as_unit("ns").asi8,
        "asset": t["asset"].astype(str), "direction": t["direction"].map({"SHORT": -1, "LONG": 1}),
        "exit_reason": t["exit_reason"].astype(str), "notional": t["notional"],
        "leverage": t["leverage"]})
    return trades, pd.read_parquet(out / "daily.parquet")


@pytest.fixture(scope="module")
def backtests(root, scans, tables):
    """Parity backtests: no OB, the stressed table, the calm one."""
    return {name: _backtest(scans, root / f"bt_{name}", ob)
            for name, ob in (("plain", None), ("stress", tables[0]), ("calm", tables[1]))}


KEY = ["entry_ns", "exit_ns", "asset", "direction", "exit_reason"]


def _same_trades(paper: pd.DataFrame, replay: pd.DataFrame) -> None:
    assert len(paper) == len(replay) >= 5
    pd.testing.assert_frame_equal(paper[KEY].reset_index(drop=True),
                                  replay[KEY].reset_index(drop=True), check_dtype=False)
    np.testing.assert_allclose(paper["notional"], replay["notional"], rtol=REL)


def test_the_session_says_whether_ob_is_on(plain, with_ob, tables):
    _, s_plain, out_plain = plain
    _, s_ob, out_ob = with_ob
    assert s_plain["ob"] == "off" and "ob: off" in out_plain.splitlines()
    assert s_ob["ob"] == str(tables[0]) and f"ob: {tables[0]}" in out_ob.splitlines()
    with open(s_ob["settings_file"]) as fh:
        assert json.load(fh)["ob"] == str(tables[0])


def test_without_ob_the_paper_trades_are_the_parity_backtests(plain, backtests):
    _same_trades(_ledger_trades(plain[0]), backtests["plain"][0])


def test_the_ob_table_moves_the_paper_trades_as_each_sub_system_predicts(plain, with_ob,
                                                                         backtests):
    base, got = _ledger_trades(plain[0]), _ledger_trades(with_ob[0])
    # OB-3: the first entry is the same bar and asset (nothing else differs before it: same
    # capital), its leverage × 1.2 (below the 6x cap), so its notional × 1.2 exactly
    lev0 = backtests["plain"][0]["leverage"].iloc[0]
    assert MULT * lev0 < 6.0
    assert got.loc[0, ["entry_ns", "asset"]].tolist() == base.loc[0, ["entry_ns", "asset"]].tolist()
    assert got.loc[0, "notional"] == pytest.approx(MULT * base.loc[0, "notional"], rel=1e-12)
    # OB-1: the gated asset is never chosen; the ranking walk goes on past it (§5.5), so each
    # bar the baseline entered it on still enters, on another asset
    gated = base[base["asset"] == GATED]
    assert len(gated) >= 1 and not (got["asset"] == GATED).any()
    for t in gated["entry_ns"]:
        row = got[got["entry_ns"] == t]
        assert len(row) == 1 and row["asset"].iloc[0] != GATED


def test_the_paper_trades_with_ob_are_the_parity_backtests_with_the_same_table(with_ob, bars,
                                                                               backtests):
    got = _ledger_trades(with_ob[0])
    stress, daily = backtests["stress"]
    calm, calm_daily = backtests["calm"]
    _same_trades(got, stress)
    # OB-4 on the backtest: beta_low (7-day warm-up) on day 1; day 2 × (1 + 0.25 × day 1's
    # share of stressed cycles: 3 × 1440 planted, 1439 bar cycles, the last bar's at 00:00)
    share = 3 * 1440 / (3 * 1440 + 1439)
    np.testing.assert_allclose(daily["beta"], [0.2, 0.2 * (1 + 0.25 * share)], rtol=1e-12)
    assert calm_daily["beta"].tolist() == [0.2, 0.2]
    # ... and on the paper session: its day-2 sizes are the stressed backtest's (to REL), which
    # are well apart from the calm table's. Day 1 is the same with both tables (no bar reads
    # the extra cycles), so the first day-2 entry has the same capital, and the raised beta
    # enlarges its §10.4 multiplier 1 + beta × r³: a larger notional
    pd.testing.assert_frame_equal(stress[KEY], calm[KEY])
    first_day = load_closes(bars).index[0].value // (86_400 * S)
    day2 = (stress["entry_ns"] // (86_400 * S) > first_day).to_numpy()
    assert day2.sum() >= 3 and not day2[0]
    assert (stress["notional"] == calm["notional"])[~day2].all()
    first2 = int(np.flatnonzero(day2)[0])
    assert stress["notional"].iloc[first2] > calm["notional"].iloc[first2]
    apart = (stress["notional"] / calm["notional"] - 1).abs()[day2]
    assert apart.max() > 20 * REL


def _copy(src: Path, dst: Path) -> Path:
    with Ledger(src):  # checkpoint: the WAL's rows into the main file
        pass
    shutil.copy(src, dst)
    return dst


def _n_rows(db: Path) -> int:
    with Ledger(db) as led:
        return sum(1 for _ in led.rows())


def test_a_resume_with_another_ob_file_is_refused(with_ob, plain, bars, tables, tmp_path, capsys):
    db = _copy(with_ob[0], tmp_path / "ledger.db")
    for ob in (tables[1], None):  # another file; no file at all
        argv = ["paper", "--replay", str(bars), "--speed", "1e6", "--log-dir", str(tmp_path),
                "--ledger", str(db), "--unsupervised", "--no-forewarner",
                *([] if ob is None else ["--ob", str(ob)])]
        assert main(argv) == 3
        err = capsys.readouterr().err
        assert "belongs to another session: its ob_sha256 is" in err, err
    plain_db = _copy(plain[0], tmp_path / "plain.db")
    assert main(["paper", "--replay", str(bars), "--log-dir", str(tmp_path), "--ledger",
                 str(plain_db), "--unsupervised", "--no-forewarner", "--ob",
                 str(tables[0])]) == 3
    assert "its ob_sha256 is None" in capsys.readouterr().err
    # a refused start appends nothing
    assert _n_rows(db) == _n_rows(with_ob[0]) and _n_rows(plain_db) == _n_rows(plain[0])


def test_a_resume_with_the_same_ob_file_reproduces_the_ledger(with_ob, bars, tables, tmp_path):
    db = _copy(with_ob[0], tmp_path / "ledger.db")
    proc = _paper(bars, db, tmp_path, tables[0])
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = _summary(proc.stdout)
    assert summary["rerun_mismatch"] is None and summary["halted"] is None
    assert summary["rerun_matched"] > 0 and summary["resumed_rows"] > 0
    with Ledger(db) as a, Ledger(with_ob[0]) as b:
        rows = [(r.kind, r.ts_event, r.body) for r in a.rows() if r.kind != "SESSION"]
        ref = [(r.kind, r.ts_event, r.body) for r in b.rows() if r.kind != "SESSION"]
    assert rows == ref


@pytest.mark.parametrize("extra, code, needle", [
    (["--ob", "{tmp}/nope.parquet"], 2, "OB features file does not exist"),
    (["--ob", "{ob}", "--venue", "binance", "--testnet"], 3, "sandbox venue only"),
], ids=["missing-file", "live-venue"])
def test_bad_ob_arguments_are_one_line(extra, code, needle, bars, tables, tmp_path, capsys):
    argv = ["paper", "--replay", str(bars), "--log-dir", str(tmp_path), "--unsupervised",
            *[a.format(tmp=tmp_path, ob=tables[0]) for a in extra]]
    assert main(argv) == code
    assert needle in capsys.readouterr().err


def test_replay_session_reruns_an_ob_session_with_its_recorded_table(with_ob, tmp_path):
    db = _copy(with_ob[0], tmp_path / "ledger.db")
    cmd = [sys.executable, "-m", "dolphin", "replay-session", str(db), "--log-dir", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "bit for bit" in proc.stdout  # the CONFIG row's OB file, checked by its SHA-256
    proc = subprocess.run([*cmd, "--ob", str(tmp_path / "absent.parquet")], capture_output=True,
                          text=True, timeout=TIMEOUT_S, check=False)
    assert proc.returncode == 2 and "OB features file is missing" in proc.stderr, proc.stderr
