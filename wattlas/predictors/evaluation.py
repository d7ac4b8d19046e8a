"""Grouped cross-validation with baselines computed in the same run.

Rows are never shuffled into folds: each scheme holds out one group (a set of operator shapes,
a network, a GPU) at a time, fits on the rest and predicts the held-out rows. Groups that share
a (GPU, feature vector) are held out together (:mod:`wattlas.predictors.groups`), so no
held-out row has a twin in training. Every method sees the same folds: the wattlas model, the
pure roofline / physics formula (no parameters), that formula scaled by the training fold's
median measured/physics ratio (one parameter; and one per operator or workload where the model
has such a column), linear regression on the raw inputs, and gradient boosting on the raw
inputs, on the raw target and on the log target with the wattlas model's own budget.

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .definitions import ModelDef, Scheme

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger("wattlas.predictors")

#: Every method, in table order; ``roofline-cal-by`` is named ``roofline-cal-<column>`` after
#: the model's ``calibrate_by`` column and only runs for models that have one.
METHODS = ("wattlas", "roofline", "roofline-cal", "roofline-cal-by", "linear-raw", "gbm-raw", "gbm-log")
METHOD_TITLES = {
    "wattlas": "wattlas model (physics features, residual over physics base)",
    "roofline": "pure physics formula, no fitted parameters",
    "roofline-cal": "physics formula x the training fold's median measured/physics ratio (one parameter)",
    "linear-raw": "linear regression on the raw inputs",
    "gbm-raw": "gradient boosting on the raw inputs and raw target",
    "gbm-log": "gradient boosting on the raw inputs and log target, with the wattlas model's budget "
               "(iterations, learning rate, leaf settings)",
}
#: Old scheme names still accepted by :func:`cross_validate` (scripts keep working).
SCHEME_ALIASES = {"leave-one-gpu-out": "cross-gpu"}


def methods(defn: ModelDef) -> tuple[str, ...]:
    """The methods scored for ``defn``, in table order."""
    by = f"roofline-cal-{defn.calibrate_by}" if defn.calibrate_by else None
    return tuple(by if m == "roofline-cal-by" else m for m in METHODS if m != "roofline-cal-by" or by)


def method_titles(defn: ModelDef) -> dict[str, str]:
    """:data:`METHOD_TITLES` for the methods of ``defn``."""
    out = dict(METHOD_TITLES)
    if defn.calibrate_by:
        c = defn.calibrate_by
        out[f"roofline-cal-{c}"] = (f"physics formula x the training fold's median measured/physics ratio per {c} "
                                    f"(the global ratio for a {c} with no training rows)")
    return {m: out[m] for m in methods(defn)}
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


#: Ranges of GEMM rows M (tokens) that get their own MAPE: (label, lowest, highest or None).
M_RANGES = (("1-16", 1, 16), ("17-128", 17, 128), ("129-1024", 129, 1024), (">1024", 1025, None))


def mape_by_range(values: np.ndarray, y: np.ndarray, pred: np.ndarray,
                  ranges: tuple[tuple[str, float, float | None], ...] = M_RANGES) -> dict[str, float]:
    """MAPE (percent) of the rows whose ``values`` fall in each inclusive range; empty ranges left out.

    >>> mape_by_range(np.array([4, 40]), np.array([1.0, 1.0]), np.array([1.1, 1.3]))
    {'1-16': 10.0, '17-128': 30.0}
    """
    values = np.asarray(values, dtype=np.float64)
    out = {}
    for label, lo, hi in ranges:
        sel = (values >= lo) & (values <= (np.inf if hi is None else hi))
        if sel.any():
            out[label] = metrics(y[sel], pred[sel])["mape_pct"]
    return out


def breakdowns(defn: ModelDef, frame: pl.DataFrame, y: np.ndarray, pred: np.ndarray,
               scored: np.ndarray) -> dict[str, dict[str, float]]:
    """The model's MAPE by operator (its ``breakdown`` column), by M range and by tensor-parallel degree."""
    out = {}
    if defn.breakdown:
        out[f"{defn.breakdown}_mape_pct"] = _mape_by(frame[defn.breakdown].to_numpy(), y, pred, scored)
    if defn.size_column and defn.size_column in frame.columns:
        m = frame[defn.size_column].to_numpy()
        out["m_range_mape_pct"] = mape_by_range(m[scored], y[scored], pred[scored])
    if "tensor_parallel" in frame.columns:
        # Rows with no degree (our own bench GEMMs) are left out; integers, so the keys read "8", not "8.0".
        tp = frame["tensor_parallel"]
        known = scored & ~tp.is_null().to_numpy()
        out["tensor_parallel_mape_pct"] = _mape_by(tp.fill_null(0).cast(int).to_numpy(), y, pred, known)
    return out


def _estimators(defn: ModelDef) -> dict[str, object]:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from .estimators import ResidualBoostingRegressor

    gbm = HistGradientBoostingRegressor(max_iter=defn.params.get("max_iter", 200), random_state=0,
                                        early_stopping=False)
    # No base column: trees on log(y), same iterations, learning rate and leaves as ours.
    gbm_log = ResidualBoostingRegressor(None, **{"random_state": 0, **defn.params})
    if defn.targets:
        from sklearn.multioutput import MultiOutputRegressor

        gbm, gbm_log = MultiOutputRegressor(gbm), MultiOutputRegressor(gbm_log)
    return {
        "wattlas": defn.make_estimator(),
        "linear-raw": make_pipeline(StandardScaler(), LinearRegression()),
        "gbm-raw": gbm,
        "gbm-log": gbm_log,
    }


#: The methods with an estimator fitted per fold; the rooflines are computed, not fitted.
FITTED = ("wattlas", "linear-raw", "gbm-raw", "gbm-log")


@dataclass(frozen=True)
class Fold:
    """One held-out group of one scheme: boolean row masks for training and testing."""

    scheme: str
    group: object
    train: np.ndarray
    test: np.ndarray


def _scheme_layout(defn: ModelDef, frame: pl.DataFrame, scheme: Scheme,
                   keys: np.ndarray | None = None) -> tuple[np.ndarray, list, list[Fold]]:
    """The group column (groups sharing a GPU and feature vector merged), its sorted values and
    the folds that score at least one row."""
    from .groups import disjoint_groups, feature_keys

    raw = frame[scheme.group].to_numpy()
    keys = feature_keys(defn, frame) if keys is None else keys
    groups = disjoint_groups(raw, keys)
    partner = None
    if scheme.partner:  # a partner is held out with its merged group too
        merged = {str(a): b for a, b in zip(raw.tolist(), groups.tolist(), strict=True)}
        partner = np.array([merged.get(str(p), p) for p in frame[scheme.partner].to_list()], dtype=object)
    scored = frame["evaluate"].to_numpy().astype(bool)
    values = sorted(set(groups.tolist()))
    folds = []
    for g in values:
        test = groups == g
        # Pairwise data: a pair that contains the held-out member must not be trained on.
        train = ~(test | (partner == g)) if partner is not None else ~test
        if (test & scored).any():
            folds.append(Fold(scheme.name, g, train, test))
    return groups, values, folds


def scheme_folds(defn: ModelDef, frame: pl.DataFrame, scheme: Scheme) -> list[Fold]:
    """The folds :func:`cross_validate` fits for ``scheme`` (each with train and test masks)."""
    return _scheme_layout(defn, frame, scheme)[2]


def _schemes(defn: ModelDef, frame: pl.DataFrame, scheme_names: list[str] | None) -> list[Scheme]:
    """The schemes to run: those asked for that have at least two groups in ``frame``."""
    out = []
    wanted = {SCHEME_ALIASES.get(n, n) for n in scheme_names or ()}
    for scheme in defn.schemes:
        if wanted and scheme.name not in wanted:
            continue
        n_groups = frame[scheme.group].n_unique()
        if n_groups < 2:
            log.warning("%s: scheme %s needs >= 2 groups, found %d; skipped", defn.name, scheme.name, n_groups)
            continue
        out.append(scheme)
    return out


def plan(defn: ModelDef, frame: pl.DataFrame, scheme_names: list[str] | None = None) -> dict[str, int]:
    """How much work :func:`cross_validate` will do: schemes, folds and estimator fits.

    Baselines count as fits too (``linear-raw``, ``gbm-raw``, ``gbm-log``); the rooflines fit nothing.
    """
    from .groups import feature_keys

    schemes = _schemes(defn, frame, scheme_names)
    keys = feature_keys(defn, frame) if schemes else None
    folds = sum(len(_scheme_layout(defn, frame, s, keys)[2]) for s in schemes)
    return {"schemes": len(schemes), "folds": folds, "fits": folds * len(FITTED)}


def _calibrated(base: np.ndarray, Y: np.ndarray, fold: Fold, by: np.ndarray | None) -> np.ndarray:
    """Held-out rows' physics base x the training fold's median measured/physics ratio (per target;
    per value of ``by`` where that value has training rows, else the global ratio)."""
    ratio = Y[fold.train] / base[fold.train]
    scale = np.tile(np.median(ratio, axis=0), (int(fold.test.sum()), 1))
    if by is not None:
        train_by, test_by = by[fold.train], by[fold.test]
        for v in np.unique(test_by):
            sel = train_by == v
            if sel.any():
                scale[test_by == v] = np.median(ratio[sel], axis=0)
    return base[fold.test] * scale


def _fit_fold(defn: ModelDef, X: pl.DataFrame, R: pl.DataFrame, Y: np.ndarray, fold: Fold,
              by: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Fit every method on one fold; the raw inputs are split once and shared by the baselines."""
    import polars as pl
    from sklearn.base import clone
    from threadpoolctl import threadpool_limits

    target = Y[fold.train] if defn.targets else Y[fold.train, 0]
    train_mask, test_mask = pl.Series(fold.train), pl.Series(fold.test)
    splits = {"X": (X.filter(train_mask), X.filter(test_mask)), "R": (R.filter(train_mask), R.filter(test_mask))}
    out = {}
    # One thread per fit: the folds are the parallel unit. OpenMP threads inside small tree fits
    # cost more than they save, and on a busy machine their spin-waits stall every fit.
    with threadpool_limits(1):
        for name, est in _estimators(defn).items():
            fit_on, predict_on = splits["X" if name == "wattlas" else "R"]
            pred = np.asarray(clone(est).fit(fit_on, target).predict(predict_on))
            out[name] = pred.reshape(-1, Y.shape[1])
    base = np.column_stack([X[b].to_numpy() for b in defn.base_features])
    out["roofline-cal"] = _calibrated(base, Y, fold, None)
    if by is not None:
        out[f"roofline-cal-{defn.calibrate_by}"] = _calibrated(base, Y, fold, by)
    return out


def cross_validate(defn: ModelDef, frame: pl.DataFrame, scheme_names: list[str] | None = None, *,
                   n_jobs: int | None = 1, on_fold: Callable[[Fold, int], None] | None = None) -> list[dict]:
    """Out-of-fold metrics per (scheme, method) for ``frame`` (a ``training_frame`` result).

    Returns one dict per (scheme, method): the :func:`metrics` keys plus ``scheme``, ``method``,
    ``groups`` (how many were held out) and ``worst_group``/``worst_group_mape_pct``. A scheme
    with ``split_rows`` also gets one row per held-out group and method, named
    ``<scheme> <trained groups> -> <held-out group>`` (``cross-gpu A100-SXM4-80GB+A40 -> H100-SXM``).

    ``n_jobs`` folds are fitted at once (joblib, ``-1``: every core); every estimator has a fixed
    seed and each fold's predictions land in its own rows, so the result does not depend on
    ``n_jobs``. ``on_fold(fold, fits)`` is called as each fold finishes (a progress display).
    """
    from joblib import Parallel, delayed

    from .groups import feature_keys

    X = defn.features(frame)
    R = defn.raw_features(frame)
    Y = defn.y(frame).reshape(frame.height, -1)
    by = frame[defn.calibrate_by].cast(str).to_numpy() if defn.calibrate_by else None
    scored = frame["evaluate"].to_numpy().astype(bool)
    schemes = _schemes(defn, frame, scheme_names)
    keys = feature_keys(defn, frame) if schemes else None
    layout = {s.name: _scheme_layout(defn, frame, s, keys) for s in schemes}
    folds = [f for s in schemes for f in layout[s.name][2]]
    preds = {s.name: {m: np.full(Y.shape, np.nan) for m in methods(defn) if m != "roofline"} for s in schemes}
    # Ordered results: each lands in its fold's rows whatever the worker that computed it.
    results = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(_fit_fold)(defn, X, R, Y, f, by) for f in folds)
    for fold, fitted in zip(folds, results, strict=True):
        for name, pred in fitted.items():
            preds[fold.scheme][name][fold.test] = pred
        log.debug("%s %s: held out %s", defn.name, fold.scheme, fold.group)
        if on_fold is not None:
            on_fold(fold, len(FITTED))
    roofline = np.column_stack([X[b].to_numpy() for b in defn.base_features])
    out: list[dict] = []
    for scheme in schemes:
        groups, values, scheme_folds_ = layout[scheme.name]
        by_method = {**preds[scheme.name], "roofline": roofline}
        out += _score(defn, frame, scheme, Y, scored, groups, values, by_method)
        if scheme.split_rows:
            out += _split_rows(defn, frame, scheme, Y, scored, groups, scheme_folds_, by_method)
    return out


def _worst(y: np.ndarray, p: np.ndarray, groups: np.ndarray, values: list, scored: np.ndarray) -> tuple[str, float]:
    worst, worst_mape = None, -1.0
    for g in values:
        sel = (groups == g) & scored
        if sel.any():
            mape = metrics(y[sel], p[sel])["mape_pct"]
            if mape > worst_mape:
                worst, worst_mape = g, mape
    return str(worst), worst_mape


def _score(defn: ModelDef, frame: pl.DataFrame, scheme: Scheme, Y: np.ndarray, scored: np.ndarray,
           groups: np.ndarray, values: list, preds: dict[str, np.ndarray]) -> list[dict]:
    out = []
    for j, target in enumerate(defn.target_names):
        y = Y[:, j]
        for method in methods(defn):
            p = preds[method][:, j]
            row = {"model": defn.name, "target": target, "scheme": scheme.name, "method": method,
                   "groups": len(values)}
            row.update(metrics(y[scored], p[scored]))
            row["worst_group"], row["worst_group_mape_pct"] = _worst(y, p, groups, values, scored)
            if method == "wattlas":
                row["group_mape_pct"] = _mape_by(groups, y, p, scored)
                row.update(breakdowns(defn, frame, y, p, scored))
            out.append(row)
    return out


def _split_rows(defn: ModelDef, frame: pl.DataFrame, scheme: Scheme, Y: np.ndarray, scored: np.ndarray,
                groups: np.ndarray, folds: list[Fold], preds: dict[str, np.ndarray]) -> list[dict]:
    """One row per fold and method: trained on the other groups, scored on the held-out one."""
    out = []
    for fold in folds:
        trained = "+".join(str(g) for g in sorted(set(groups[fold.train].tolist())))
        sel = fold.test & scored
        for j, target in enumerate(defn.target_names):
            y = Y[:, j]
            for method in methods(defn):
                p = preds[method][:, j]
                row = {"model": defn.name, "target": target, "scheme": f"{scheme.name} {trained} -> {fold.group}",
                       "method": method, "groups": 1}
                row.update(metrics(y[sel], p[sel]))
                row["worst_group"], row["worst_group_mape_pct"] = str(fold.group), row["mape_pct"]
                if method == "wattlas" and defn.breakdown:
                    row[f"{defn.breakdown}_mape_pct"] = _mape_by(frame[defn.breakdown].to_numpy(), y, p, sel)
                out.append(row)
    return out
