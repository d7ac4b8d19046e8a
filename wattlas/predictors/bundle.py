"""Model files: save with skops, load only what is on an explicit allow-list.

A predictor is three files side by side: ``<name>.skops`` (the fitted estimator, never pickle),
``<name>.json`` (feature contract, training data, grouped-CV metrics, training envelope, library
versions and the SHA-256 of the ``.skops`` file) and ``<name>.md`` (the model card, written with
``skops.card.Card``). Loading reads the file once and checks its hash, then checks its zip
directory, node tree (only node types wattlas models hold), array headers and tree arrays
statically (:mod:`wattlas.predictors.modelfile`) before skops reads it. A file from a user's
directory is then loaded once in a child process with memory and time limits. skops audits the
types against :data:`TRUSTED_TYPES` before it constructs anything.

Examples
--------
>>> import polars as pl
>>> from wattlas.predictors import load
>>> model = load("gemm-runtime")                                           # doctest: +SKIP
>>> model.predict(pl.DataFrame({"gpu": ["H100"], "m": [4096], "n": [4096], "k": [4096]}))  # doctest: +SKIP
array([0.000168...])
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import WattlasError
from .definitions import ModelDef, get_definition
from .features import SPEC_COLUMNS
from .modelfile import UntrustedModelError, check_model_file, inspect_model_file, read_model_bytes, start_trial_load

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger("wattlas.predictors")

#: Up to this many rows are predicted on one thread; larger batches in chunks on a thread pool.
SMALL_BATCH = 20_000
CHUNK_ROWS = 65_536


@functools.cache
def _threadpools():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def predict_chunked(fn, frame: pl.DataFrame, *, limit_openmp: bool = True) -> np.ndarray:
    """``fn(frame)`` with one OpenMP thread per call; big batches in chunks on all cores.

    OpenMP's own threading spins at barriers when cores are busy (a 1-row prediction took
    360 ms p90 on a loaded 2-core machine); chunks on a thread pool (numpy, polars and the
    trees release the GIL) keep every core busy without that, and single points pay no thread
    start-up. ``limit_openmp=False``: ``fn`` runs no OpenMP code (the numpy trees), so the
    thread-pool controller is not needed.
    """
    import contextlib

    workers = os.cpu_count() or 1
    limit = _threadpools().limit(limits=1, user_api="openmp") if limit_openmp else contextlib.nullcontext()
    with limit:
        if frame.height <= SMALL_BATCH or workers == 1:
            return fn(frame)
        from concurrent.futures import ThreadPoolExecutor

        chunks = [frame.slice(i, CHUNK_ROWS) for i in range(0, frame.height, CHUNK_ROWS)]
        with ThreadPoolExecutor(workers) as pool:
            return np.concatenate(list(pool.map(fn, chunks)))


MODELS_DIR = Path(__file__).resolve().parent / "models"

#: Every type a wattlas model file may contain. Review changes to this list like code: it is
#: what skops is allowed to construct. (Regenerate with ``skops.io.get_untrusted_types`` when
#: scikit-learn changes its internals, and check each new entry.)
TRUSTED_TYPES = (
    "wattlas.predictors.estimators.MultiTargetResidualRegressor",
    "wattlas.predictors.estimators.ResidualBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Predictor:
    """A fitted predictor: its definition, the estimator, and the recorded metadata.

    ``predict(frame)`` takes a polars DataFrame (or a dict of columns) with the definition's
    input columns and returns a numpy array in ``target_unit``; ``predict_frame`` returns the
    input with the prediction and an ``out_of_domain`` flag added.
    """

    definition: ModelDef
    estimator: Any
    meta: dict

    @property
    def _openmp(self) -> bool:
        """Whether the estimator's predict runs scikit-learn's OpenMP code (not the numpy trees)."""
        from .fasttrees import FastEstimator

        return not isinstance(self.estimator, FastEstimator)

    @property
    def name(self) -> str:
        return self.definition.name

    def features(self, frame) -> pl.DataFrame:
        import polars as pl

        if not isinstance(frame, pl.DataFrame):
            frame = pl.DataFrame(frame)
        return self.definition.features(self.definition.check_inputs(frame))

    def predict(self, frame) -> np.ndarray:
        """Predictions (in ``self.definition.target_unit``) for each row of ``frame``."""
        import polars as pl

        if not isinstance(frame, pl.DataFrame):
            frame = pl.DataFrame(frame)
        frame = self.definition.check_inputs(frame)
        return predict_chunked(lambda f: self.estimator.predict(self.definition.features(f)), frame,
                               limit_openmp=self._openmp)

    def predict_frame(self, frame) -> pl.DataFrame:
        """``frame`` with the prediction column and ``out_of_domain`` (outside the training envelope)."""
        import polars as pl

        if not isinstance(frame, pl.DataFrame):
            frame = pl.DataFrame(frame)
        X = self.features(frame)
        pred = np.asarray(predict_chunked(self.estimator.predict, X, limit_openmp=self._openmp)).reshape(X.height, -1)
        cols = [pl.Series(name, pred[:, j]) for j, name in enumerate(self.definition.target_names)]
        return frame.with_columns(*cols, pl.Series("out_of_domain", self.out_of_domain(X)))

    def out_of_domain(self, X: pl.DataFrame) -> np.ndarray:
        """Per row of the feature frame ``X``: is any feature outside the training envelope?"""
        flags = np.zeros(X.height, dtype=bool)
        for f in self.out_of_domain_by_feature(X).values():
            flags |= f
        return flags

    def out_of_domain_by_feature(self, X: pl.DataFrame) -> dict[str, np.ndarray]:
        """Per feature with at least one row outside its training range, the rows' flags.

        The range is the ``envelope`` recorded in ``<name>.json`` at training time (min and max of
        each feature over the training rows).
        """
        out = {}
        for col, (lo, hi) in self.meta.get("envelope", {}).items():
            if col in X.columns and lo is not None:
                v = X[col].cast(float).to_numpy()
                flags = ~np.isnan(v) & ((v < lo - 1e-9) | (v > hi + 1e-9))
                if col in _SPEC_FEATURES:  # a spec value missing at predict time but known in training
                    flags |= np.isnan(v)
                if flags.any():
                    out[col] = flags
        return out

    def domain_summary(self, frame) -> DomainSummary:
        """How many rows of the input ``frame`` fall outside the training envelope, and on which features."""
        by_feature = self.out_of_domain_by_feature(self.features(frame))
        return DomainSummary.from_flags(self.name, len(frame), by_feature, self.meta.get("envelope", {}))


@dataclass(frozen=True)
class DomainSummary:
    """Rows outside a predictor's training envelope: the count, and per feature its rows and range."""

    model: str
    rows: int
    outside: int
    features: dict[str, int]
    ranges: dict[str, tuple[float, float]]

    @classmethod
    def from_flags(cls, model: str, rows: int, by_feature: dict[str, np.ndarray],
                   envelope: dict) -> DomainSummary:
        any_flag = np.zeros(rows, dtype=bool)
        for f in by_feature.values():
            any_flag |= f
        return cls(model, rows, int(any_flag.sum()), {k: int(v.sum()) for k, v in by_feature.items()},
                   {k: tuple(envelope[k]) for k in by_feature})

    @property
    def share(self) -> float:
        return self.outside / self.rows if self.rows else 0.0

    def line(self) -> str:
        """``N of M rows outside the training envelope of MODEL (feature: rows outside [lo, hi]; ...)``."""
        text = f"{self.outside:,} of {self.rows:,} rows outside the training envelope of {self.model}"
        if not self.features:
            return text
        parts = [f"{k}: {n:,} outside [{_g(self.ranges[k][0])}, {_g(self.ranges[k][1])}]"
                 for k, n in sorted(self.features.items(), key=lambda kv: -kv[1])]
        return f"{text} ({'; '.join(parts)}): those predictions are extrapolations"


#: Features whose NaN means "unknown" (a GPU spec NVIDIA does not publish). Elsewhere NaN is
#: structural (``log2_k`` of an elementwise operator) and the training rows had it too.
_SPEC_FEATURES = frozenset((*SPEC_COLUMNS, "dtype_bytes"))


def _g(x: float) -> str:
    return f"{x:.4g}"


def envelope(X: pl.DataFrame) -> dict[str, list[float | None]]:
    out = {}
    for c in X.columns:
        v = X[c].to_numpy()
        v = v[~np.isnan(v)]
        out[c] = [float(v.min()), float(v.max())] if v.size else [None, None]
    return out


def save(predictor: Predictor, directory: str | os.PathLike[str], *, card: bool = True) -> Path:
    """Write ``<name>.skops``, ``<name>.json`` and (``card=True``) ``<name>.md`` into ``directory``."""
    import skops.io as sio

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{predictor.name}.skops"
    tmp = d / f".{predictor.name}.skops.tmp"
    import zipfile

    from .reproducible import canonical_skops

    # Same estimator, same bytes: skops' member names (memory addresses) and dates are rewritten.
    data = sio.dumps(predictor.estimator, compression=zipfile.ZIP_DEFLATED, compresslevel=9)
    tmp.write_bytes(canonical_skops(data))
    untrusted = set(sio.get_untrusted_types(file=tmp))
    extra = untrusted - set(TRUSTED_TYPES)
    if extra:
        tmp.unlink()
        raise UntrustedModelError(f"refusing to save: the model holds types outside TRUSTED_TYPES: {sorted(extra)}")
    try:  # never write a file that load() would refuse
        check_model_file(path, tmp.read_bytes())
    except UntrustedModelError as e:
        tmp.unlink()
        raise UntrustedModelError(f"refusing to save: {e}") from e
    os.replace(tmp, path)
    meta = dict(predictor.meta)
    meta["sha256"] = sha256_file(path)
    meta["trusted_types"] = sorted(untrusted)
    (d / f"{predictor.name}.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    if card:
        from .cards import write_card

        write_card(predictor, meta, d / f"{predictor.name}.md")
    return path


def available(directory: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the predictors with files in ``directory`` (default: the shipped ones)."""
    d = Path(directory) if directory is not None else MODELS_DIR
    return sorted(p.stem for p in d.glob("*.skops"))


#: Largest ``<name>.json`` read (the shipped ones are at most 13 KB).
MAX_META_BYTES = 4 * 2**20


def read_meta(name: str, directory: str | os.PathLike[str] | None = None) -> dict:
    d = Path(directory) if directory is not None else MODELS_DIR
    path = d / f"{name}.json"
    try:
        if path.stat().st_size > MAX_META_BYTES:
            raise UntrustedModelError(f"{path} is {path.stat().st_size:,} bytes, over the {MAX_META_BYTES:,}-byte "
                                      "limit for a model's metadata; the model files are damaged")
        return json.loads(path.read_text())
    except FileNotFoundError:
        known = ", ".join(available(d)) or "none"
        raise WattlasError(
            f"no model {name!r} in {d} (available: {known}); train one with "
            f"`wattlas predictors train {name} --store DIR`"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise UntrustedModelError(f"{path} is not valid JSON ({type(e).__name__}: {e}); the model files are "
                                  "damaged") from e


def load(name: str, directory: str | os.PathLike[str] | None = None, *, fast: bool = False) -> Predictor:
    """Load predictor ``name`` (shipped, or from ``directory``), refusing untrusted files.

    Raises :class:`UntrustedModelError` when the ``.skops`` file's SHA-256 differs from the one
    recorded beside it, when it fails the static checks of :mod:`wattlas.predictors.modelfile`
    (size, node tree, arrays, tree indices), when it would construct any type outside
    :data:`TRUSTED_TYPES`, or (for a ``directory`` other than the shipped models) when loading
    it in a limited child process crashes, runs out of memory or time.

    By default ``estimator`` is the scikit-learn object skops builds (what ``export-onnx``,
    refitting or inspection need). ``fast=True`` (what ``wattlas predict`` uses) reads the same
    verified bytes, after the same hash and static checks, into a
    :class:`~wattlas.predictors.fasttrees.FastEstimator`: the trees evaluated in numpy, equal to
    scikit-learn's predictions, without importing scikit-learn or skops (about 2 s of a one-point
    prediction). It builds no object from the file, so neither skops's type audit nor the child
    process (which guard skops's loader and scikit-learn's native tree code) has anything to
    guard; the node types are still limited to the allow-list of the static checks. A model with
    parts the numpy evaluator does not implement is loaded with skops as without ``fast``.
    """
    definition = get_definition(name)
    d = Path(directory) if directory is not None else MODELS_DIR
    meta = read_meta(name, d)
    path = d / f"{name}.skops"
    if not path.is_file():
        raise WattlasError(f"{path} is missing (its {name}.json is there)")
    # One read: the bytes hashed, checked and loaded are the same even if the file changes.
    data = read_model_bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    if digest != meta.get("sha256"):
        raise UntrustedModelError(
            f"{path}: SHA-256 {digest} differs from the recorded {meta.get('sha256')}; the file was altered "
            "after it was written. Refusing to load it; reinstall wattlas or retrain the model."
        )
    checked = inspect_model_file(path, data)
    est = _read_fast(path, data, checked) if fast else None
    if est is None:
        est = _load_with_skops(d, path, data, digest, checked.expanded_bytes)
    expected = [f for f, _ in definition.feature_doc] if definition.feature_doc else None
    names = list(getattr(est, "feature_names_in_", []))
    if expected and sorted(names) != sorted(expected):
        raise WattlasError(
            f"{path} was fitted on features {names}, this wattlas computes {expected}: retrain the model"
        )
    return Predictor(definition, est, meta)


def _read_fast(path: Path, data: bytes, checked) -> Any:
    """The numpy evaluator of ``data``'s trees, or None (logged) when the model has parts it does not implement."""
    from .fasttrees import UnsupportedModel, read_fast_estimator

    try:
        return read_fast_estimator(path, data, checked)
    except UnsupportedModel as e:
        log.info("%s: predicting with scikit-learn (the numpy trees do not cover it: %s)", path, e)
        return None


def _load_with_skops(d: Path, path: Path, data: bytes, digest: str, expanded_bytes: int) -> Any:
    # A user's directory is untrusted as a whole (its .json hash included): the shipped models
    # come with the package and skip the child process, which costs a second scikit-learn import.
    trial = None if d.resolve() == MODELS_DIR else start_trial_load(path, digest, expanded_bytes)
    if trial is not None:
        try:
            _skops_io()  # this process's import overlaps the child's

            trial.wait()
        finally:
            trial.cancel()
    est = _build(path, data)
    from .estimators import MultiTargetResidualRegressor, ResidualBoostingRegressor

    if not isinstance(est, ResidualBoostingRegressor | MultiTargetResidualRegressor):
        raise UntrustedModelError(f"{path} holds a {type(est).__name__}, not a wattlas predictor")
    return est


def _build(path: Path, data: bytes) -> Any:
    """The estimator in ``data``; skops audits its types against :data:`TRUSTED_TYPES` before building any."""
    sio = _skops_io()
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        return sio.loads(data, trusted=list(TRUSTED_TYPES))
    except UntrustedTypesFoundException as e:
        raise UntrustedModelError(
            f"{path} would construct types that wattlas does not trust ({str(e).splitlines()[0]}). "
            "Refusing to load it."
        ) from e
    except Exception as e:
        raise UntrustedModelError(f"{path} could not be loaded safely ({type(e).__name__}: {e})") from e


def _skops_io() -> Any:
    """``skops.io``, imported without the array-API backends its trusted-type scan would load (PyTorch: seconds)."""
    from .._imports import ARRAY_API_BACKENDS, hidden_imports

    with hidden_imports(ARRAY_API_BACKENDS):
        import skops.io

    return skops.io
