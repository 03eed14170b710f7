"""Does an esoteric factor separate the strategy's daily returns? (the EsoF meta-brake question)

The sample is one row per replay day: the daily return of end-of-day equity (``metrics.
daily_returns``, the series Sharpe is computed from) joined with ``esof_daily`` at 12:00 UTC.
Three features, one family:

- ``weekday``: 7 groups, Mon … Sun;
- ``moon_quarter``: 4 groups, the quarter of the synodic month centred on each principal phase
  (new, first_quarter, full, last_quarter; ``floor(4 phase + 1/2) mod 4``). Quarters rather than
  the 8 names: a few weeks hold about one and a half lunar months, so the 8 names would leave
  groups of three or four days; the full-moon hypothesis is still the ``full`` quarter;
- ``mercury_retrograde``: 2 groups.

Each is a permutation test of the Kruskal–Wallis H (``group_stats``). A feature with one group
in the sample (e.g. no retrograde day) cannot be tested and is left out of the family. Holm
adjusts for family-wise error, BH for the false discovery rate; the verdict "supports the EsoF
meta-brake" needs a Holm-adjusted p below ``ALPHA``, since the brake would size real money.

The seed's wipeout claim (``seeds/001``: "100% of extreme wipeouts in your 55-day test occurred
on Mondays, Thursdays, or Sundays") is a separate, pre-stated hypothesis, tested on the worst
``CLAIM_N`` days: how many fall on Mon/Thu/Sun, the hypergeometric chance of at least that many
given the day counts, the chance that all of them do, and, because those three weekdays were
picked after looking, the chance that the worst days span as few distinct weekdays as observed.
A sample of at most ``CLAIM_N`` days cannot test it (``wipeout_claim`` is then None).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from dolphin.backtest.group_stats import (
    benjamini_hochberg,
    distinct_groups_cdf,
    holm,
    hypergeom_tail,
    permutation_h,
)
from dolphin.backtest.metrics import daily_returns
from dolphin.features.esof import esof_daily

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
QUARTERS = ("new", "first_quarter", "full", "last_quarter")
FEATURES = ("weekday", "moon_quarter", "mercury_retrograde")
ALPHA = 0.05
CLAIM_N = 6
CLAIM_WEEKDAYS = (0, 3, 6)  # Monday, Thursday, Sunday


def moon_quarter(phase: float) -> str:
    """Return the quarter of the synodic month centred on the principal phase nearest ``phase``."""
    return QUARTERS[math.floor(phase * 4 + 0.5) % 4]


def study_days(daily: pd.DataFrame, initial_capital: float) -> pd.DataFrame:
    """Return the per-day sample: ``date, pnl, return, trades`` of a replay's daily table joined
    with the EsoF features of each day, plus ``moon_quarter`` and the weekday name."""
    if not len(daily):
        raise ValueError("the replay produced no days to study")
    days = pd.DataFrame({
        "date": pd.to_datetime(daily["date"].astype(str)),
        "pnl": daily["pnl"].to_numpy(dtype=float),
        "return": daily_returns(daily, initial_capital),
        "trades": daily["trades"].to_numpy(dtype=np.int64),
    })  # fmt: skip
    esof = esof_daily(days["date"].iloc[0], days["date"].iloc[-1])
    out = days.merge(esof, on="date", how="left", validate="one_to_one")
    out["moon_quarter"] = [moon_quarter(p) for p in out["moon_phase"]]
    out["weekday_name"] = [WEEKDAYS[w] for w in out["weekday"]]
    return out


@dataclass(frozen=True)
class FeatureTest:
    """One feature's test: its groups, H, the permutation p and the family's adjustments."""

    feature: str
    groups: list[dict[str, Any]]
    statistic: float
    p_value: float
    exact: bool
    n_permutations: int
    p_holm: float = math.nan
    q_bh: float = math.nan

    @property
    def testable(self) -> bool:
        """Whether the feature had at least two groups (and so a p-value)."""
        return math.isfinite(self.p_value)


def _labels(days: pd.DataFrame, feature: str) -> list[str]:
    if feature == "weekday":
        return list(days["weekday_name"])
    if feature == "mercury_retrograde":
        return ["retrograde" if r else "direct" for r in days["mercury_retrograde"]]
    return list(days[feature])


def _order(feature: str) -> tuple[str, ...]:
    return {"weekday": WEEKDAYS, "moon_quarter": QUARTERS,
            "mercury_retrograde": ("direct", "retrograde")}[feature]  # fmt: skip


def _groups(days: pd.DataFrame, labels: list[str], feature: str) -> list[dict[str, Any]]:
    by = days.assign(label=labels).groupby("label")
    stats = by.agg(n=("return", "size"), mean_return=("return", "mean"), mean_pnl=("pnl", "mean"))
    stats = stats.reindex([g for g in _order(feature) if g in stats.index])
    return [{"label": r.Index, "n": int(r.n), "mean_return": float(r.mean_return),
             "mean_pnl": float(r.mean_pnl)} for r in stats.itertuples()]  # fmt: skip


def feature_tests(days: pd.DataFrame, *, n_permutations: int, seed: int) -> list[FeatureTest]:
    """Test every feature of ``FEATURES`` on the daily returns; adjust the testable ones."""
    streams = np.random.SeedSequence(seed).spawn(len(FEATURES))  # one stream per feature
    tests = []
    for feature, stream in zip(FEATURES, streams, strict=True):
        labels = _labels(days, feature)
        res = permutation_h(days["return"], labels, n_permutations=n_permutations, seed=stream)
        tests.append(FeatureTest(feature, _groups(days, labels, feature), res.statistic,
                                 res.p_value, res.exact, res.n_permutations))  # fmt: skip
    p = [t.p_value for t in tests]
    return [replace(t, p_holm=float(h), q_bh=float(q))
            for t, h, q in zip(tests, holm(p), benjamini_hochberg(p), strict=True)]  # fmt: skip


def wipeout_claim(
    days: pd.DataFrame, n: int = CLAIM_N, weekdays: tuple[int, ...] = CLAIM_WEEKDAYS
) -> dict[str, Any]:
    """Test "the worst ``n`` days fall on ``weekdays``" on the sample (module docstring)."""
    if not 0 < n <= len(days):
        raise ValueError(f"need 0 < n <= {len(days)} days, got n={n}")
    worst = days.sort_values(["return", "date"], kind="stable").head(n)
    counts = days["weekday"].value_counts().reindex(range(7), fill_value=0).to_numpy()
    marked = int(counts[list(weekdays)].sum())
    hits = int(worst["weekday"].isin(weekdays).sum())
    distinct = int(worst["weekday"].nunique())
    return {
        "n": n,
        "weekdays": [WEEKDAYS[w] for w in weekdays],
        "worst_days": [{"date": str(d.date()), "weekday": WEEKDAYS[w], "return": float(r)}
                       for d, w, r in worst[["date", "weekday", "return"]].itertuples(index=False)],
        "n_days": len(days),
        "days_on_weekdays": marked,
        "hits": hits,
        "p_value": hypergeom_tail(len(days), marked, n, hits),
        "p_all_by_chance": hypergeom_tail(len(days), marked, n, n),
        "distinct_weekdays": distinct,
        "p_distinct_post_hoc": distinct_groups_cdf(counts.tolist(), n, distinct),
    }  # fmt: skip


def verdict(tests: list[FeatureTest]) -> tuple[bool, str]:
    """Return whether the family supports the EsoF meta-brake, and the sentence saying so."""
    family = [t for t in tests if t.testable]
    hits = [t.feature for t in family if t.p_holm < ALPHA]
    if hits:
        return True, (f"supports the EsoF meta-brake: Holm-adjusted p < {ALPHA} for "
                      f"{', '.join(hits)}")  # fmt: skip
    plural = "" if len(family) == 1 else "s"
    return False, (f"does not support the EsoF meta-brake: no Holm-adjusted p < {ALPHA} "
                   f"among {len(family)} tested feature{plural}")  # fmt: skip


def run_study(days: pd.DataFrame, *, n_permutations: int = 10_000, seed: int = 42) -> dict:
    """Return the whole study as a JSON-ready dict (NaN becomes None)."""
    tests = feature_tests(days, n_permutations=n_permutations, seed=seed)
    supports, sentence = verdict(tests)
    study = {
        "n_days": len(days),
        "first_day": str(days["date"].iloc[0].date()),
        "last_day": str(days["date"].iloc[-1].date()),
        "days_with_trades": int((days["trades"] > 0).sum()),
        "value": "daily return of end-of-day equity",
        "statistic": "Kruskal-Wallis H on midranks, permutation p-value",
        "n_permutations": n_permutations,
        "seed": seed,
        "features": [{**asdict(t), "testable": t.testable} for t in tests],
        "family": [t.feature for t in tests if t.testable],
        "supports_meta_brake": supports,
        "verdict": sentence,
        "wipeout_claim": wipeout_claim(days) if len(days) > CLAIM_N else None,
    }
    return _json_ready(study)


def _json_ready(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _json_ready(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_ready(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _num(x: float | None, fmt: str = ".4f") -> str:
    return "n/a" if x is None else format(x, fmt)


def report_lines(study: dict) -> list[str]:
    """Return the printed report: the sample, one line per feature, the verdict, the claim."""
    lines = [f"esof study: {study['n_days']} days {study['first_day']} .. {study['last_day']} "
             f"({study['days_with_trades']} with trades); {study['statistic']}, "
             f"{study['n_permutations']:,} permutations, seed {study['seed']}"]  # fmt: skip
    for t in study["features"]:
        groups = " | ".join(f"{g['label']} {g['n']} {g['mean_return']:+.2%}" for g in t["groups"])
        if not t["testable"]:
            lines.append(f"{t['feature']:<19} {len(t['groups'])} group ({groups}): "
                         "untestable, left out of the family")  # fmt: skip
            continue
        how = "exact" if t["exact"] else "sampled"
        lines.append(f"{t['feature']:<19} {len(t['groups'])} groups  H {t['statistic']:.3f}  "
                     f"p {_num(t['p_value'])} ({how})  Holm {_num(t['p_holm'])}  "
                     f"BH q {_num(t['q_bh'])}  [{groups}]")  # fmt: skip
    lines.append(f"verdict: {study['verdict']}")
    c = study["wipeout_claim"]
    if c is None:
        return [*lines, f"wipeout claim (seed 001): not tested, {study['n_days']} days are not "
                        f"more than the worst {CLAIM_N}"]  # fmt: skip
    worst = ", ".join(f"{d['date']} {d['weekday']} {d['return']:+.2%}" for d in c["worst_days"])
    lines += [
        f"wipeout claim (seed 001): worst {c['n']} days on {'/'.join(c['weekdays'])}? {worst}",
        f"  {c['hits']} of {c['n']} on {'/'.join(c['weekdays'])} ({c['days_on_weekdays']} of "
        f"{c['n_days']} days are): p = P(>= {c['hits']}) = {_num(c['p_value'])}; "
        f"P(all {c['n']} by chance) = {_num(c['p_all_by_chance'], '.5f')}; "
        f"{c['distinct_weekdays']} distinct weekdays, P(<= {c['distinct_weekdays']}) = "
        f"{_num(c['p_distinct_post_hoc'])} (weekdays picked after looking)",
    ]
    return lines
