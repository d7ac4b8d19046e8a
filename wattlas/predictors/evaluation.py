"""Grouped cross-validation with baselines computed in the same run.

Rows are never shuffled into folds: each scheme holds out one group (a model architecture, a
network, a GPU) at a time, fits on the rest and predicts the held-out rows. Every method sees
the same folds: the wattlas model, the pure roofline / physics formula (no parameters), linear
regression on the raw inputs, and gradient boosting on the raw inputs (raw target).

Metrics are over out-of-fold predictions of the rows flagged ``evaluate``: MAPE, median and p90
absolute percentage error (all in percent), R² of log(prediction) vs log(truth) (runtimes span
four orders of magnitude; raw R² is near 1 for any method), mean log ratio (bias) and the worst
held-out group's MAPE.

Examples
--------
>>> import numpy as np
>>> metrics(np.array([1.0, 2.0]), np.array([1.1, 1.8]))["mape_pct"]
10.0
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from .definitions import ModelDef

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger("wattlas.predictors")

METHODS = ("wattlas", "roofline", "linear-raw", "gbm-raw")
METHOD_TITLES = {
    "wattlas": "wattlas model (physics features, residual over physics base)",
    "roofline": "pure physics formula, no fitted parameters",
    "linear-raw": "linear regression on the raw inputs",
    "gbm-raw": "gradient boosting on the raw inputs and raw target",
}
_FLOOR = 1e-12  # a linear baseline can predict <= 0; scored as the smallest positive value


def metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MAPE, median and p90 APE (percent), R² in log space, and bias (mean ln(pred/y))."""
    y = np.asarray(y, dtype=np.float64)
    pred = np.maximum(np.asarray(pred, dtype=np.float64), _FLOOR)
    ape = np.abs(pred - y) / y * 100.0
    ly, lp = np.log(y), np.log(pred)
    ss_tot = float(np.sum((ly - ly.mean()) ** 2))
    r2 = 1.0 - float(np.sum((ly - lp) ** 2)) / ss_tot if ss_tot > 0 else float("nan")
    return {
        "n": int(y.size),
        "mape_pct": round(float(ape.mean()), 3),
        "median_ape_pct": round(float(np.median(ape)), 3),
        "p90_ape_pct": round(float(np.percentile(ape, 90)), 3),
        "r2_log": round(r2, 4),
        "bias_log": round(float(np.mean(lp - ly)), 4),
    }


def _mape_by(keys: np.ndarray, y: np.ndarray, pred: np.ndarray, scored: np.ndarray) -> dict[str, float]:
    out = {}
    for k in sorted(set(keys[scored].tolist())):
        sel = (keys == k) & scored
        out[str(k)] = metrics(y[sel], pred[sel])["mape_pct"]
    return out


def _estimators(defn: ModelDef) -> dict[str, object]:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    gbm = HistGradientBoostingRegressor(max_iter=defn.params.get("max_iter", 200), random_state=0,
                                        early_stopping=False)
    if defn.targets:
        from sklearn.multioutput import MultiOutputRegressor

        gbm = MultiOutputRegressor(gbm)
    return {
        "wattlas": defn.make_estimator(),
        "linear-raw": make_pipeline(StandardScaler(), LinearRegression()),
        "gbm-raw": gbm,
    }


def cross_validate(defn: ModelDef, frame: pl.DataFrame, scheme_names: list[str] | None = None) -> list[dict]:
    """Out-of-fold metrics per (scheme, method) for ``frame`` (a ``training_frame`` result).

    Returns one dict per (scheme, method): the :func:`metrics` keys plus ``scheme``, ``method``,
    ``groups`` (how many were held out) and ``worst_group``/``worst_group_mape_pct``.
    """
    import polars as pl
    from sklearn.base import clone

    X = defn.features(frame)
    R = defn.raw_features(frame)
    Y = defn.y(frame).reshape(frame.height, -1)
    scored = frame["evaluate"].to_numpy().astype(bool)
    out: list[dict] = []
    for scheme in defn.schemes:
        if scheme_names and scheme.name not in scheme_names:
            continue
        groups = frame[scheme.group].to_numpy()
        partner = frame[scheme.partner].to_numpy() if scheme.partner else None
        values = sorted(set(groups.tolist()))
        if len(values) < 2:
            log.warning("%s: scheme %s needs >= 2 groups, found %d; skipped", defn.name, scheme.name, len(values))
            continue
        preds = {m: np.full(Y.shape, np.nan) for m in METHODS}
        preds["roofline"] = np.column_stack([X[b].to_numpy() for b in defn.base_features])
        for g in values:
            test = groups == g
            # Pairwise data: a pair that contains the held-out member must not be trained on.
            train = ~(test | (partner == g)) if partner is not None else ~test
            if not (test & scored).any():
                continue
            for name, est in _estimators(defn).items():
                data = X if name == "wattlas" else R
                target = Y[train] if defn.targets else Y[train, 0]
                fitted = clone(est).fit(data.filter(pl.Series(train)), target)
                pred = np.asarray(fitted.predict(data.filter(pl.Series(test))))
                preds[name][test] = pred.reshape(-1, Y.shape[1])
            log.info("%s %s: held out %s", defn.name, scheme.name, g)
        for j, target in enumerate(defn.target_names):
            y = Y[:, j]
            for method in METHODS:
                p = preds[method][:, j]
                row = {"model": defn.name, "target": target, "scheme": scheme.name, "method": method,
                       "groups": len(values)}
                row.update(metrics(y[scored], p[scored]))
                worst, worst_mape = None, -1.0
                for g in values:
                    sel = (groups == g) & scored
                    if sel.any():
                        mape = metrics(y[sel], p[sel])["mape_pct"]
                        if mape > worst_mape:
                            worst, worst_mape = g, mape
                row["worst_group"] = str(worst)
                row["worst_group_mape_pct"] = worst_mape
                if method == "wattlas":
                    row["group_mape_pct"] = _mape_by(groups, y, p, scored)
                    if defn.breakdown:
                        row[f"{defn.breakdown}_mape_pct"] = _mape_by(frame[defn.breakdown].to_numpy(), y, p, scored)
                out.append(row)
    return out
