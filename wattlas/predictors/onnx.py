"""Optional ONNX export of a predictor's trees, written only when it reproduces scikit-learn.

The ONNX graph holds the gradient-boosted trees only. Features are computed outside it (the
``features`` list of the model's ``.json`` is the contract, float32 inputs in that order) and the
prediction is ``base * exp(onnx_output)`` with ``base`` the column named ``base_feature``. The
exported file is checked against scikit-learn on the rows of the training envelope grid and on
caller-given rows; if any prediction differs by more than 1e-4 relative, nothing is written.

Needs the ``onnx`` extra (``pip install 'wattlas[onnx]'``: skl2onnx, onnxruntime, and onnx<1.18
with protobuf<5, the last combination whose protobuf accepts skl2onnx's tree attributes; see the
predictors spec, section 5.3).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import WattlasError

if TYPE_CHECKING:
    import polars as pl

    from .bundle import Predictor

RTOL = 1e-4


class OnnxExportError(WattlasError):
    """The model cannot be exported exactly (or the ONNX extra is not installed)."""


def _import():
    try:
        import onnxruntime
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError as e:
        raise OnnxExportError(
            f"ONNX export needs the optional extra: pip install 'wattlas[onnx]' ({e})"
        ) from e
    return convert_sklearn, FloatTensorType, onnxruntime


def check_rows(predictor: Predictor, n: int = 2000, seed: int = 0) -> pl.DataFrame:
    """Feature rows spread over the training envelope (uniform per feature) for the parity check."""
    import polars as pl

    rng = np.random.default_rng(seed)
    cols = {}
    for name, (lo, hi) in predictor.meta["envelope"].items():
        cols[name] = np.full(n, np.nan) if lo is None else rng.uniform(lo, hi, n)
    return pl.DataFrame(cols).select(list(predictor.estimator.feature_names_in_))


def export_onnx(predictor: Predictor, path: str | os.PathLike[str], rows: pl.DataFrame | None = None) -> dict:
    """Write ``path`` if the ONNX trees match scikit-learn to :data:`RTOL`; else raise, writing nothing.

    ``rows`` are extra feature rows to check (for example ``predictor.features(your_inputs)``).
    Returns ``{"rows": checked rows, "max_rel_diff": worst relative difference}``.
    """
    import polars as pl

    from .estimators import ResidualBoostingRegressor

    convert_sklearn, FloatTensorType, ort = _import()
    est = predictor.estimator
    if not isinstance(est, ResidualBoostingRegressor):
        raise OnnxExportError(f"{predictor.name}: only single-target predictors export to ONNX")
    names = list(est.feature_names_in_)
    if est.unused_features_.size:
        raise OnnxExportError(f"{predictor.name}: features never seen in training would need masking in the graph")
    try:
        onx = convert_sklearn(est.booster_, initial_types=[("features", FloatTensorType([None, len(names)]))],
                              target_opset=17)
    except Exception as e:  # skl2onnx/protobuf raise many types; all mean "no exact export"
        raise OnnxExportError(
            f"{predictor.name}: skl2onnx could not convert the trees ({type(e).__name__}: {e})"
        ) from e
    X = check_rows(predictor)
    if rows is not None:
        X = pl.concat([X, rows.select(names)])
    Xn = X.to_numpy().astype(np.float64)
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"features": Xn.astype(np.float32)})[0].reshape(-1)
    base = Xn[:, names.index(est.base_feature)] if est.base_feature else np.ones(len(Xn))
    onnx_pred = base * np.exp(out.astype(np.float64))
    ref = est.predict(X)
    rel = np.abs(onnx_pred - ref) / np.abs(ref)
    worst = float(np.nanmax(rel))
    if not worst <= RTOL:
        bad = int(np.sum(rel > RTOL))
        raise OnnxExportError(
            f"{predictor.name}: the ONNX trees differ from scikit-learn by up to {worst:.2e} relative on {bad} of "
            f"{len(rel)} rows (limit {RTOL:g}); float32 thresholds route some rows differently. Not written."
        )
    Path(path).write_bytes(onx.SerializeToString())
    return {"rows": len(rel), "max_rel_diff": worst}
