"""Cross-GPU transfer: fit a predictor on some GPUs' rows, score it on another GPU's rows.

This is the question a user with a new GPU asks ("trained on A100 and A40, how wrong is it on
H100?"), and the split the GPU spec features exist for. The held-out GPU contributes nothing to
the fit: not its rows, and no setting was chosen by looking at them (the caller's job; see
``benchmarks/transfer.py`` for the protocol the shipped settings followed).

Examples
--------
>>> from wattlas.predictors.definitions import GEMM_RUNTIME
>>> frame = GEMM_RUNTIME.training_frame(store)                        # doctest: +SKIP
>>> transfer(GEMM_RUNTIME, frame, ["A100-SXM4-80GB", "A40"], "H100-SXM")["mape_pct"]  # doctest: +SKIP
9.8
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import WattlasError
from .definitions import ModelDef
from .evaluation import breakdowns, metrics

if TYPE_CHECKING:
    import polars as pl


def transfer(defn: ModelDef, frame: pl.DataFrame, train_gpus: Sequence[str], test_gpu: str, *,
             estimator=None) -> dict:
    """Fit on the rows of ``train_gpus``, score the ``evaluate`` rows of ``test_gpu``.

    ``frame`` is a ``defn.training_frame`` result (column ``gpu`` holds spec keys). ``estimator``
    defaults to ``defn.make_estimator()`` (the shipped settings). Returns the :func:`metrics`
    keys plus ``model``, ``train_gpus``, ``test_gpu`` and the breakdowns of
    :func:`~wattlas.predictors.evaluation.breakdowns` (by operator, M range, tensor-parallel degree).
    """
    import polars as pl
    from threadpoolctl import threadpool_limits

    if defn.targets:
        raise WattlasError(f"{defn.name}: transfer scores single-target predictors only")
    if test_gpu in train_gpus:
        raise WattlasError(f"{defn.name}: test GPU {test_gpu!r} is also a training GPU")
    have = set(frame["gpu"].unique().to_list())
    missing = [g for g in (*train_gpus, test_gpu) if g not in have]
    if missing:
        raise WattlasError(f"{defn.name}: no training rows for GPU(s) {missing}; the frame has {sorted(have)}")
    train = frame.filter(pl.col("gpu").is_in(list(train_gpus)))
    test = frame.filter(pl.col("gpu") == test_gpu)
    est = estimator if estimator is not None else defn.make_estimator()
    # Two threads: enough for one fit, and polite on a shared machine.
    with threadpool_limits(2):
        est.fit(defn.features(train), defn.y(train))
        pred = np.asarray(est.predict(defn.features(test)), dtype=np.float64)
    y = defn.y(test)
    scored = test["evaluate"].to_numpy().astype(bool)
    out = {"model": defn.name, "train_gpus": list(train_gpus), "test_gpu": test_gpu}
    out.update(metrics(y[scored], pred[scored]))
    out.update(breakdowns(defn, test, y, pred, scored))
    return out
