"""MC-Forewarner models: train, validate, save, load and assess (Bible §12).

A model set is a folder: ``models.joblib`` (classifier, envelope regressor, one-class guard, the
feature scaler) and ``meta.json`` (version, training-data SHA-256, scans SHA-256, sample counts,
creation time, held-out validation, library versions). The version is the first 12 hex digits of
the training-data hash, so the same samples always give the same version.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dolphin.core.config import DolphinConfig
from dolphin.core.errors import ConfigError
from dolphin.risk.forewarner import (
    FEATURES,
    RANGES,
    Assessment,
    ForewarnerMcReport,
    features_of,
    in_ranges,
    status_of,
    training_hash,
)

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "resources" / "mc"
HOLDOUT = 0.2
SEED = 11


@dataclass
class ModelSet:
    """The three fitted models and their metadata."""

    scaler: object
    classifier: object
    envelope: object
    guard: object
    meta: dict

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return catastrophic probability, envelope score and inside-explored for rows ``x``."""
        z = self.scaler.transform(np.atleast_2d(x))
        p = self.classifier.predict_proba(z)[:, 1]
        e = self.envelope.predict(z)
        inside = (self.guard.predict(z) == 1) & np.array([in_ranges(r) for r in np.atleast_2d(x)])
        return p, e, inside


def _fit(train: pd.DataFrame) -> tuple[object, object, object, object]:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import OneClassSVM

    x = train[list(FEATURES)].to_numpy(dtype=float)
    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    hgb = HistGradientBoostingClassifier(max_iter=150, max_depth=4, random_state=SEED)
    clf = CalibratedClassifierCV(hgb, method="isotonic", cv=3).fit(z, train["catastrophic"])
    # the envelope is clipped at -3 before fitting: wipe-outs (-9) would dominate the squared loss
    env = HistGradientBoostingRegressor(max_iter=150, max_depth=4, random_state=SEED).fit(
        z, np.clip(train["envelope"].to_numpy(), -3.0, None)
    )
    guard = OneClassSVM(nu=0.02, gamma="scale").fit(z[:: max(1, len(z) // 1500)])
    return scaler, clf, env, guard


def split_runs(samples: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out ``HOLDOUT`` of the engine runs (every path of a run on the same side)."""
    runs = np.sort(samples["run_id"].unique())
    rng = np.random.default_rng(SEED)
    test = set(rng.choice(runs, size=max(1, int(len(runs) * HOLDOUT)), replace=False).tolist())
    mask = samples["run_id"].isin(test)
    return samples[~mask], samples[mask]


def validate(models: ModelSet, test: pd.DataFrame) -> dict:
    """Held-out precision/recall of RED per unseen config (truth: §12 rule on its own paths)."""
    g = test.groupby("run_id")
    truth = g.agg(p=("catastrophic", "mean"), e=("envelope", "mean"))
    feats = g[list(FEATURES)].first().to_numpy(dtype=float)
    p, e, inside = models.predict(feats)
    true_red = (truth["p"].to_numpy() > 0.25) | (truth["e"].to_numpy() < -1.0)
    pred = np.array([status_of(a, b, c) for a, b, c in zip(p, e, inside, strict=True)])
    pred_red = pred == "RED"
    tp = int((pred_red & true_red).sum())
    brier = float(np.mean((p - truth["p"].to_numpy()) ** 2))
    return {
        "configs": len(truth),
        "true_red": int(true_red.sum()),
        "pred_red": int(pred_red.sum()),
        "red_precision": tp / max(int(pred_red.sum()), 1),
        "red_recall": tp / max(int(true_red.sum()), 1),
        "brier_vs_empirical": brier,
        "inside_explored_share": float(inside.mean()),
    }


def train(samples: pd.DataFrame, *, scans_sha256: str = "") -> ModelSet:
    """Fit on 80 % of the runs, validate on the rest, then refit on everything for shipping."""
    import sklearn

    train_part, test_part = split_runs(samples)
    held = validate(ModelSet(*_fit(train_part), meta={}), test_part)
    digest = training_hash(samples)
    meta = {
        "version": digest[:12],
        "training_sha256": digest,
        "scans_sha256": scans_sha256 or samples.attrs.get("scans_sha256", ""),
        "samples": len(samples),
        "runs": int(samples["run_id"].nunique()),
        "catastrophic_share": float(samples["catastrophic"].mean()),
        "features": list(FEATURES),
        "ranges": {k: list(v[:2]) for k, v in RANGES.items()},
        "created_ns": time.time_ns(),
        "validation": held,
        "sklearn": sklearn.__version__,
    }
    return ModelSet(*_fit(samples), meta=meta)


def save(models: ModelSet, out_dir: str | Path) -> Path:
    """Write ``models.joblib`` and ``meta.json`` into ``out_dir``."""
    import joblib

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = {k: getattr(models, k) for k in ("scaler", "classifier", "envelope", "guard")}
    joblib.dump(parts, out / "models.joblib.tmp", compress=3)
    (out / "models.joblib.tmp").replace(out / "models.joblib")
    (out / "meta.json").write_text(json.dumps(models.meta, indent=2, sort_keys=True) + "\n")
    return out


def load(model_dir: str | Path | None = None) -> ModelSet:
    """Load a model set (default: the one shipped in ``dolphin/resources/mc``)."""
    import joblib

    d = Path(model_dir) if model_dir is not None else DEFAULT_DIR
    if not (d / "models.joblib").exists() or not (d / "meta.json").exists():
        raise ConfigError(f"{d}: no MC-Forewarner model set (models.joblib + meta.json)")
    parts = joblib.load(d / "models.joblib")
    return ModelSet(meta=json.loads((d / "meta.json").read_text()), **parts)


def assess(models: ModelSet, config: DolphinConfig | dict, now_ns: int | None = None) -> Assessment:
    """Assess one config; the model's age is measured at ``now_ns`` (default: now)."""
    x = features_of(config)
    p, e, inside = models.predict(x)
    now = time.time_ns() if now_ns is None else now_ns
    age_days = (now - int(models.meta["created_ns"])) / 86_400e9
    return Assessment(
        catastrophic_probability=float(p[0]),
        envelope_score=float(e[0]),
        inside_explored=bool(inside[0]),
        status=status_of(float(p[0]), float(e[0]), bool(inside[0])),
        model_version=str(models.meta["version"]),
        model_age_days=age_days,
    )


class ForewarnerGate:
    """The engine's ``McGate``: assesses the base config at the day's max leverage (§12)."""

    def __init__(self, models: ModelSet, base: DolphinConfig) -> None:
        self.models = models
        self.base = {f: float(v) for f, v in zip(FEATURES, features_of(base), strict=True)}

    def assess(self, date: str, max_leverage: float) -> ForewarnerMcReport:
        """Return the day's report; outside the explored region it is never OK."""
        a = assess(self.models, {**self.base, "max_leverage": float(max_leverage)})
        return ForewarnerMcReport(a.catastrophic_probability, a.envelope_score, a.inside_explored)
