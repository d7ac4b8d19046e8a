"""Train a predictor from a store: grouped CV with baselines, then one fit on all rows.

Examples
--------
>>> from wattlas.predictors.train import train
>>> predictor = train("training-power", store="~/wattlas-store")   # doctest: +SKIP
>>> predictor.meta["metrics"][0]["mape_pct"]                       # doctest: +SKIP
3.4
"""

from __future__ import annotations

import logging
import os
import platform
import time
from datetime import UTC, datetime

import numpy as np

from .bundle import Predictor, envelope
from .definitions import get_definition
from .evaluation import cross_validate, method_titles

log = logging.getLogger("wattlas.predictors")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("wattlas", "scikit-learn", "skops", "numpy", "polars"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def training_summary(frame) -> dict:
    """What the training rows cover: counts per GPU and per group column."""
    out: dict = {"rows": frame.height, "scored_rows": int(frame["evaluate"].sum())}
    for col in ("gpu", "arch", "network", "model", "dtype"):
        if col in frame.columns:
            counts = frame.group_by(col).len().sort(col)
            out[col] = {str(k): int(v) for k, v in counts.iter_rows()}
    return out


def train(name: str, store=None, *, evaluate: bool = True, schemes: list[str] | None = None,
          frame=None, include_quick: bool = False) -> Predictor:
    """Fit predictor ``name`` on every row of its training data in ``store``.

    With ``evaluate=True`` the grouped cross-validation (all schemes, or ``schemes``) runs
    first and its table is recorded in the model's metadata and card. ``include_quick`` keeps
    bench rows from `--quick` runs, as ``predictors evaluate --include-quick`` does.
    """
    from ..store import Store

    defn = get_definition(name)
    st = store if isinstance(store, Store) or store is None and frame is not None else Store(store)
    frame = frame if frame is not None else defn.training_frame(st, include_quick=include_quick)
    started = time.perf_counter()
    metrics = cross_validate(defn, frame, schemes) if evaluate else []
    X = defn.features(frame)
    y = defn.y(frame)
    est = defn.make_estimator().fit(X, y)
    meta = {
        "name": defn.name,
        "title": defn.title,
        "target": defn.target,
        "targets": list(defn.target_names),
        "target_unit": defn.target_unit,
        "target_doc": defn.targets_doc,
        "inputs": [{"name": i.name, "kind": i.kind, "unit": i.unit, "description": i.description,
                    "default": i.default} for i in defn.inputs],
        "features": [{"name": c, "description": dict(defn.feature_doc).get(c, "")} for c in X.columns],
        "base_feature": defn.base_feature,
        "params": defn.params,
        "sources": list(defn.sources),
        "licence": defn.licence,
        "limits": list(defn.limits),
        "training_data": training_summary(frame),
        "metrics": metrics,
        "methods": method_titles(defn),
        "schemes": [{"name": s.name, "group": s.group, "description": s.description} for s in defn.schemes],
        "envelope": envelope(X),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "train_seconds": round(time.perf_counter() - started, 1),
        "versions": _versions(),
        "store": str(getattr(st, "root", "")) if st is not None and os.environ.get("WATTLAS_RECORD_STORE") else None,
    }
    in_sample = est.predict(X)
    meta["in_sample_mape_pct"] = round(float(np.mean(np.abs(in_sample - y) / y) * 100), 3)
    return Predictor(defn, est, meta)
