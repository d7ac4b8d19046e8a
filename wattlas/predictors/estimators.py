"""The scikit-learn estimator every wattlas predictor is built on.

:class:`ResidualBoostingRegressor` learns a multiplicative correction of a physics prediction:
it fits gradient-boosted trees to ``log(y / base)``, where ``base`` is one input column (the
roofline time, the capped power, ...), and predicts ``base * exp(trees(X))``. Without a base
column it is a log-target booster. Trees alone predict a constant outside the training range;
anchored on the physics base they extrapolate along it (predictors spec, section 3).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data


class ResidualBoostingRegressor(RegressorMixin, BaseEstimator):
    """Gradient-boosted trees on ``log(y / X[base_feature])`` (a physics-anchored regressor).

    Parameters
    ----------
    base_feature : str or None, default=None
        Name of the input column holding the physics prediction, in the target's unit and
        strictly positive. ``None``: no base (the trees model ``log(y)``). A name needs ``X``
        with column names (a polars or pandas DataFrame).
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization, random_state
        Passed to :class:`~sklearn.ensemble.HistGradientBoostingRegressor`.
    base_offset : float, default=0.0
        Added to the base column (same unit) before the log ratio: a fixed cost the physics
        formula lacks, such as the few microseconds no GPU kernel finishes under. It makes the
        learned ratio depend less on the GPU where the base is tiny (fast GPUs, small shapes).

    Attributes
    ----------
    booster_ : HistGradientBoostingRegressor
        The fitted trees (on the log ratio).
    n_iter_ : int
        Boosting iterations run.
    unused_features_ : ndarray of int
        Columns that were entirely missing in training; the trees see zeros there.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Set when fitted on a DataFrame; the column contract checked at predict time.

    Examples
    --------
    >>> import numpy as np, polars as pl
    >>> rng = np.random.default_rng(0)
    >>> base = rng.uniform(1, 10, 200)
    >>> X = pl.DataFrame({"base": base, "x": rng.uniform(0, 1, 200)})
    >>> y = base * np.exp(0.3 * X["x"].to_numpy())
    >>> est = ResidualBoostingRegressor(base_feature="base", max_iter=50).fit(X, y)
    >>> bool(np.allclose(est.predict(X), y, rtol=0.05))
    True
    """

    _parameter_constraints: dict = {
        "base_feature": [str, None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_leaf_nodes": [Interval(Integral, 2, None, closed="left"), None],
        "min_samples_leaf": [Interval(Integral, 1, None, closed="left")],
        "l2_regularization": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "base_offset": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, base_feature=None, *, max_iter=300, learning_rate=0.1, max_leaf_nodes=31,
                 min_samples_leaf=20, l2_regularization=0.0, random_state=0, base_offset=0.0):
        self.base_feature = base_feature
        self.base_offset = base_offset
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state

    def _base(self, X: np.ndarray) -> np.ndarray:
        if self.base_feature is None:
            return np.ones(X.shape[0])
        names = getattr(self, "feature_names_in_", None)
        if names is None or self.base_feature not in names:
            raise ValueError(
                f"base_feature={self.base_feature!r} is not a column of X; fit on a DataFrame that has it"
            )
        base = X[:, list(names).index(self.base_feature)]
        if not np.all(np.isfinite(base) & (base > 0)):
            raise ValueError(f"column {self.base_feature!r} must be finite and > 0 (it is the physics base)")
        # getattr: files saved before the parameter existed load without it.
        return base + getattr(self, "base_offset", 0.0)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit the trees to ``log(y / base)``; ``y`` must be strictly positive."""
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan", dtype=np.float64, y_numeric=True)
        if np.any(y <= 0):
            raise ValueError("y must be strictly positive (the model works on log(y / base))")
        z = np.log(y) - np.log(self._base(X))
        # A column with no value at all (e.g. power never measured) cannot be binned: the trees
        # see zeros there, at fit and at predict time alike.
        self.unused_features_ = np.flatnonzero(np.isnan(X).all(axis=0))
        X = self._mask(X)
        self.booster_ = HistGradientBoostingRegressor(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
            early_stopping=False, random_state=self.random_state,
        ).fit(X, z)
        self.n_iter_ = self.booster_.n_iter_
        return self

    def predict(self, X):
        """``base * exp(trees(X))``, in the target's unit."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        return self._base(X) * np.exp(self.booster_.predict(self._mask(X)))

    def _mask(self, X: np.ndarray) -> np.ndarray:
        if self.unused_features_.size:
            X = X.copy()
            X[:, self.unused_features_] = 0.0
        return X

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.target_tags.positive_only = True
        return tags


class MultiTargetResidualRegressor(RegressorMixin, BaseEstimator):
    """One :class:`ResidualBoostingRegressor` per target column, each with its own physics base.

    Parameters
    ----------
    base_features : tuple of str
        The base column of each target, in the order of ``y``'s columns.
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization, random_state
        Shared by the per-target boosters.

    Examples
    --------
    >>> import numpy as np, polars as pl
    >>> X = pl.DataFrame({"t": [1.0, 2.0, 3.0, 4.0], "e": [10.0, 20.0, 30.0, 40.0]})
    >>> Y = np.column_stack([X["t"].to_numpy(), X["e"].to_numpy()])
    >>> est = MultiTargetResidualRegressor(("t", "e"), max_iter=5, min_samples_leaf=1).fit(X, Y)
    >>> est.predict(X).shape
    (4, 2)
    """

    _parameter_constraints: dict = {
        "base_features": [tuple, list],
        **{k: v for k, v in ResidualBoostingRegressor._parameter_constraints.items()
           if k not in ("base_feature", "base_offset")},
    }

    def __init__(self, base_features=(), *, max_iter=300, learning_rate=0.1, max_leaf_nodes=31,
                 min_samples_leaf=20, l2_regularization=0.0, random_state=0):
        self.base_features = base_features
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit one residual booster per column of ``y`` (shape n_samples x len(base_features))."""
        _, Y = validate_data(self, X, y, ensure_all_finite="allow-nan", dtype=np.float64, multi_output=True)
        Y = Y.reshape(len(Y), -1)
        if Y.shape[1] != len(self.base_features):
            raise ValueError(f"y has {Y.shape[1]} columns but base_features names {len(self.base_features)}")
        params = {k: getattr(self, k) for k in ("max_iter", "learning_rate", "max_leaf_nodes", "min_samples_leaf",
                                                "l2_regularization", "random_state")}
        self.estimators_ = [ResidualBoostingRegressor(b, **params).fit(X, Y[:, j])
                            for j, b in enumerate(self.base_features)]
        return self

    def predict(self, X):
        """Predictions, one column per target."""
        check_is_fitted(self)
        validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        return np.column_stack([e.predict(X) for e in self.estimators_])
