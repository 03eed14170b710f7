"""MC-Forewarner models: train, validate, save, load and assess (Bible §12).

A model set is a folder: ``models.joblib`` (classifier, envelope regressor, one-class guard, the
feature scaler) and ``meta.json`` (version, training-data SHA-256, scans SHA-256, sample counts,
creation time, held-out validation, library versions). The version is the first 12 hex digits of
the training-data hash, so the same samples always give the same version.

The two files are replaced together: ``save`` writes both into a fresh directory beside the target
and swaps the directories (one atomic exchange on Linux), and ``load`` reads both through one
directory handle, so a reader sees the old pair or the new pair, never a new model with an old
meta.

``day_status_codes`` is the gate of many configs over many days at once (the sweep): the §12
status of every (config, day) cell, exactly what ``ForewarnerGate.assess`` gives for that cell,
with one prediction over the distinct feature rows.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dolphin.core.config import DolphinConfig
from dolphin.core.enums import McStatus
from dolphin.core.errors import BadInputError, ConfigError
from dolphin.risk.forewarner import (
    FEATURES,
    RANGES,
    Assessment,
    ForewarnerMcReport,
    features_of,
    rows_in_ranges,
    status_codes,
    status_of,
    training_hash,
)

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "resources" / "mc"
MODEL_FILE, META_FILE = "models.joblib", "meta.json"
_RETRIES = 5
HOLDOUT = 0.2
SEED = 11
_LEV = FEATURES.index("max_leverage")


@dataclass
class ModelSet:
    """The three fitted models and their metadata."""

    scaler: object
    classifier: object
    envelope: object
    guard: object
    meta: dict

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return catastrophic probability, envelope score and inside-explored for rows ``x``.

        sklearn runs on one OpenMP thread: each row is predicted on its own, so the result does
        not depend on it, and on the shared cores (and in process pools) two spinning threads made
        a one-row call 15x and a 40k-row call 10x slower here.
        """
        with _one_thread():
            z = self.scaler.transform(np.atleast_2d(x))
            p = self.classifier.predict_proba(z)[:, 1]
            e = self.envelope.predict(z)
            inside = (self.guard.predict(z) == 1) & rows_in_ranges(np.atleast_2d(x))
        return p, e, inside


_THREADS: list = []


def _one_thread():
    """Return a context that limits OpenMP to one thread (the controller is built once)."""
    if not _THREADS:
        from threadpoolctl import ThreadpoolController

        _THREADS.append(ThreadpoolController())
    return _THREADS[0].limit(limits=1, user_api="openmp")


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
    pred_red = pred == McStatus.RED.name
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
    """Write ``models.joblib`` and ``meta.json`` into ``out_dir``, both replaced together.

    Both files go into a uniquely named directory beside ``out_dir`` (other files already in
    ``out_dir`` are copied along), which then takes ``out_dir``'s place in one rename (an atomic
    exchange on Linux; elsewhere two renames, between which a reader finds no set and retries).
    On any error ``out_dir`` is left as it was and the temporary directory is removed.
    """
    import joblib

    out = Path(out_dir).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        parts = {k: getattr(models, k) for k in ("scaler", "classifier", "envelope", "guard")}
        joblib.dump(parts, tmp / MODEL_FILE, compress=3)
        (tmp / META_FILE).write_text(json.dumps(models.meta, indent=2, sort_keys=True) + "\n")
        mode = 0o755  # mkdtemp makes 0o700; a model set is read by every user of the checkout
        if out.is_dir():
            _copy_others(out, tmp)
            mode = out.stat().st_mode & 0o7777
        for name in (MODEL_FILE, META_FILE):
            _fsync(tmp / name)
        os.chmod(tmp, mode)
        _swap_into(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # after the swap it holds the previous set
    _fsync(out.parent)
    return out


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can fsync a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _copy_others(src: Path, dst: Path) -> None:
    """Copy every entry of ``src`` except the model files into ``dst`` (nothing is lost)."""
    for entry in src.iterdir():
        if entry.name in (MODEL_FILE, META_FILE):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, dst / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, dst / entry.name, follow_symlinks=False)


def _swap_into(new: Path, target: Path) -> None:
    """Put directory ``new`` at ``target``; afterwards ``new`` holds the old target, if any."""
    if not target.exists():
        with contextlib.suppress(OSError):  # lost a race with another writer: swap instead
            os.rename(new, target)
            return
    if _exchange(new, target):
        return
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex}")
    os.rename(target, old)
    try:
        os.rename(new, target)
    except OSError:
        with contextlib.suppress(OSError):  # put the previous set back unless another is there
            os.rename(old, target)
        shutil.rmtree(old, ignore_errors=True)
        raise
    os.rename(old, new)  # the caller removes it


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths with Linux ``renameat2(RENAME_EXCHANGE)``.

    Return False where that is unavailable (other systems, old C libraries, file systems without
    support); raise OSError for any other failure.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def load(model_dir: str | Path | None = None) -> ModelSet:
    """Load a model set (default: the one shipped in ``dolphin/resources/mc``).

    Both files are read through one handle on the directory, so a concurrent ``save`` (which
    swaps whole directories) gives the old pair or the new pair. A read that loses a race with
    the swap is retried.
    """
    d = Path(model_dir) if model_dir is not None else DEFAULT_DIR
    return _load_retrying(d)[0]


def _load_retrying(d: Path) -> tuple[ModelSet, tuple]:
    for attempt in range(_RETRIES):
        try:
            return _load_pair(d)
        except (FileNotFoundError, NotADirectoryError):
            time.sleep(0.005 * attempt)  # a swap in progress takes microseconds
    raise ConfigError(f"{d}: no MC-Forewarner model set ({MODEL_FILE} + {META_FILE})")


def _load_pair(d: Path) -> tuple[ModelSet, tuple]:
    """Read both files of one directory; return the set and the directory's identity key."""
    import joblib

    if os.open not in os.supports_dir_fd:  # no directory handles (Windows): plain paths
        key = _dir_key(d)
        parts = joblib.load(d / MODEL_FILE)
        return ModelSet(meta=json.loads((d / META_FILE).read_text()), **parts), key
    fd = os.open(d, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:

        def opener(name: str, flags: int) -> int:
            return os.open(name, flags, dir_fd=fd)

        with (
            open(MODEL_FILE, "rb", opener=opener) as fm,
            open(META_FILE, "rb", opener=opener) as fj,
        ):
            key = _stat_key(os.fstat(fd), os.fstat(fm.fileno()), os.fstat(fj.fileno()))
            parts = joblib.load(fm)
            meta = json.loads(fj.read().decode())
    finally:
        os.close(fd)
    return ModelSet(meta=meta, **parts), key


_CACHE: dict[Path, tuple[tuple, ModelSet]] = {}


def load_cached(model_dir: str | Path | None = None) -> ModelSet:
    """Return ``load(model_dir)``, reusing the last set loaded from that directory while unchanged.

    Loading takes seconds (sklearn import and decompression) and every runner asks for the same
    set; a ``save`` replaces the directory and so invalidates the entry.
    """
    d = (Path(model_dir) if model_dir is not None else DEFAULT_DIR).resolve()
    hit = _CACHE.get(d)
    if hit is not None:
        with contextlib.suppress(OSError):
            if _dir_key(d) == hit[0]:
                return hit[1]
    models, key = _load_retrying(d)
    _CACHE[d] = (key, models)
    return models


def _dir_key(d: Path) -> tuple:
    return _stat_key(os.stat(d), os.stat(d / MODEL_FILE), os.stat(d / META_FILE))


def _stat_key(*stats: os.stat_result) -> tuple:
    """Identity of a directory and its two files: a swap or a rewrite changes it."""
    return tuple((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) for st in stats)


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

    @property
    def model_id(self) -> str:
        """The model set's version: the first 12 hex digits of its training-data SHA-256."""
        return str(self.models.meta["version"])

    def assess(self, date: str, max_leverage: float) -> ForewarnerMcReport:
        """Return the day's report; outside the explored region it is never OK."""
        a = assess(self.models, {**self.base, "max_leverage": float(max_leverage)})
        return ForewarnerMcReport(a.catastrophic_probability, a.envelope_score, a.inside_explored)


def default_gate(config: DolphinConfig) -> ForewarnerGate:
    """Return the gate of ``config`` on the shipped model set (``dolphin/resources/mc``)."""
    return ForewarnerGate(load_cached(DEFAULT_DIR), config)


def day_status_codes(
    models: ModelSet, configs: Sequence[DolphinConfig], max_leverage: np.ndarray
) -> np.ndarray:
    """Return the §12 status code (0 OK, 1 ORANGE, 2 RED) of every (config, day) cell.

    ``max_leverage`` is n_configs x n_days: the day's leverage that ``ForewarnerGate.assess``
    would be given for that config. Cell (i, d) equals ``ForewarnerGate(models,
    configs[i]).assess(date, max_leverage[i, d]).status`` (outside the explored region never
    OK). Every distinct feature row is predicted once, in one call.
    """
    lev = np.asarray(max_leverage, dtype=np.float64)
    if lev.ndim != 2 or lev.shape[0] != len(configs):
        raise BadInputError(
            f"need an array of {len(configs)} configs x days", field="max_leverage", value=lev.shape
        )
    bad = np.flatnonzero(~np.isfinite(lev.ravel()))
    if bad.size:
        i, d = divmod(int(bad[0]), lev.shape[1])
        raise BadInputError(
            f"max_leverage of config {i}, day {d} is not finite",
            field="max_leverage",
            value=float(lev[i, d]),
        )
    if lev.size == 0:
        return np.zeros(lev.shape, dtype=np.int8)
    base = np.array([features_of(c) for c in configs], dtype=np.float64)
    # a distinct row is a distinct (features other than leverage, leverage) pair: sort the cells
    # by (base id, leverage) and predict the first cell of each run of equal pairs
    _, base_id = np.unique(np.delete(base, _LEV, axis=1), axis=0, return_inverse=True)
    n_days = lev.shape[1]
    bid, flat = np.repeat(base_id.ravel(), n_days), lev.ravel()
    order = np.lexsort((flat, bid))
    starts = np.r_[True, (np.diff(bid[order]) != 0) | (np.diff(flat[order]) != 0)]
    first = order[starts]
    rows = base[first // n_days]
    rows[:, _LEV] = flat[first]
    inverse = np.empty(flat.size, dtype=np.int64)
    inverse[order] = np.cumsum(starts) - 1
    codes = status_codes(*models.predict(rows))
    return codes[inverse].reshape(lev.shape)
