"""Predict with a wattlas model file's trees in numpy, without importing scikit-learn or skops.

Importing scikit-learn and skops (whose trusted-type list imports every scikit-learn package)
costs a one-point ``wattlas predict`` about 2 s of its 2.5 s. The fitted model itself is small: a
:class:`~wattlas.predictors.estimators.ResidualBoostingRegressor` (or one per target) whose
booster is a list of trees, each a record array of nodes. :func:`read_fast_estimator` reads those
arrays from a model file that :func:`~wattlas.predictors.modelfile.inspect_model_file` has already
checked (node types on the allow-list, array sizes, child and feature indices in bounds), and
:class:`FastEstimator` evaluates them exactly as scikit-learn's ``_predict_from_raw_data`` does:

* at an inner node, NaN goes to the side ``missing_go_to_left`` names, else ``x <= num_threshold``
  goes left;
* the booster's output is ``baseline + tree_1 + tree_2 + ...``, added in that order (so the sum
  is the same float64 number), through the identity link of the squared-error loss;
* the regressor returns ``base * exp(output)``, with the columns in ``unused_features_`` set to 0.

Nothing here builds an object from the file: only numbers and strings are read. A file whose
model has anything else (categorical splits, another loss, several trees per iteration, another
estimator) is refused with :class:`UnsupportedModel`, and the caller loads it with skops instead.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .modelfile import PREDICTOR_RECORD_DTYPE, CheckedModelFile, _attrs, _items, _json_int, _load_array, _resolve

_ESTIMATORS = "wattlas.predictors.estimators"
_RESIDUAL = f"{_ESTIMATORS}.ResidualBoostingRegressor"
_MULTI = f"{_ESTIMATORS}.MultiTargetResidualRegressor"
_HGB = "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor"

#: Rows times trees walked at once: a few arrays of this many numbers stay in cache (2**16 to
#: 2**18 were fastest, 2**21 took 1.7 times as long).
_CELLS_PER_CHUNK = 1 << 17


class UnsupportedModel(Exception):
    """The model holds something the numpy evaluator does not implement: load it with skops."""


@dataclass(frozen=True)
class _Forest:
    """All trees of one booster in flat arrays, laid out so that one step of every walk is a few gathers.

    NaN handling without a branch: the walk reads column ``f`` of ``[X with NaN as -inf, X with NaN
    as +inf]`` when missing values go left, column ``F + f`` when they go right, and compares it with
    the threshold (a threshold of +inf, which scikit-learn uses for "non-missing left, missing right",
    is stored as the largest float: the same side for every finite value, and +inf goes right).
    The children of node ``i`` are ``kids[2 i]`` (left) and ``kids[2 i + 1]`` (right); a leaf's
    are itself, so walks that reached their leaf stay there.
    """

    column: np.ndarray  # intp, per node: the column of the doubled X it reads (0 at leaves)
    threshold: np.ndarray  # float64
    kids: np.ndarray  # intp, 2 per node
    is_leaf: np.ndarray  # bool
    value: np.ndarray  # float64 (scikit-learn returns node.value at a leaf)
    roots: np.ndarray  # intp, one per tree, in boosting order
    steps: int  # the deepest leaf's depth: steps that bring every walk to its leaf
    baseline: float

    def raw_predict(self, X: np.ndarray) -> np.ndarray:
        """``baseline + sum of the trees`` for each row of ``X`` (float64, C order)."""
        n_rows = X.shape[0]
        out = np.zeros(n_rows) + self.baseline  # scikit-learn: zeros, then += the baseline
        rows_per_chunk = max(1, _CELLS_PER_CHUNK // max(1, self.roots.size))
        for start in range(0, n_rows, rows_per_chunk):
            chunk = out[start:start + rows_per_chunk]
            values = self.value[self._leaves(X[start:start + rows_per_chunk])]  # (trees, rows)
            for tree_values in values:  # one tree at a time, in order: the same float sums
                chunk += tree_values
        return out

    def _leaves(self, X: np.ndarray) -> np.ndarray:
        """The leaf each (tree, row) walk ends at, shape (trees, rows)."""
        n_rows, n_features = X.shape
        missing = np.isnan(X)
        doubled = np.concatenate([np.where(missing, -np.inf, X), np.where(missing, np.inf, X)], axis=1).ravel()
        n_walks = self.roots.size * n_rows
        # 32-bit indices where they fit: the steps are memory-bound gathers.
        index = np.int32 if max(doubled.size, n_walks, self.is_leaf.size * 2) < 2**31 else np.intp
        column, kids = self.column.astype(index), self.kids.astype(index)
        # Walks still going: their node, where their row starts in ``doubled``, their output slot.
        node = np.repeat(self.roots.astype(index), n_rows)
        row_start = np.tile(np.arange(n_rows, dtype=index) * (2 * n_features), self.roots.size)
        slot = np.arange(n_walks, dtype=index)
        leaves = np.empty(n_walks, dtype=index)
        for _ in range(self.steps):
            at = np.take(column, node)
            at += row_start
            go_right = np.take(doubled, at) > np.take(self.threshold, node)
            node *= 2
            node += go_right
            node = np.take(kids, node)
            done = np.take(self.is_leaf, node)
            if np.count_nonzero(done) * 4 > node.size:  # drop finished walks once a quarter are done
                leaves[slot[done]] = node[done]
                going = ~done
                node, row_start, slot = node[going], row_start[going], slot[going]
        leaves[slot] = node
        return leaves.reshape(self.roots.size, n_rows)


@dataclass(frozen=True)
class _Residual:
    """One :class:`ResidualBoostingRegressor`: ``(base + offset) * exp(forest(X with unused columns zeroed))``."""

    base_index: int | None
    base_feature: str | None
    unused: np.ndarray
    forest: _Forest
    base_offset: float = 0.0  # the estimator's kernel floor (s), added to the physics base

    def predict(self, X: np.ndarray) -> np.ndarray:
        base = np.ones(X.shape[0]) if self.base_index is None else X[:, self.base_index]
        if self.base_index is not None and not np.all(np.isfinite(base) & (base > 0)):
            # The same check and message as ResidualBoostingRegressor._base.
            raise ValueError(f"column {self.base_feature!r} must be finite and > 0 (it is the physics base)")
        if self.base_index is not None:
            base = base + self.base_offset
        if self.unused.size:
            X = X.copy()
            X[:, self.unused] = 0.0
        return base * np.exp(self.forest.raw_predict(X))


@dataclass(frozen=True)
class FastEstimator:
    """The fitted trees of a wattlas model file, evaluated in numpy (no scikit-learn).

    ``predict(X)`` takes the feature frame (polars, with the columns ``feature_names_in_``) or a
    float array in that column order, and returns what the scikit-learn estimator's ``predict``
    returns: the same float64 numbers, one column per target for a multi-target model.
    """

    feature_names_in_: tuple[str, ...]
    parts: tuple[_Residual, ...]
    multi_target: bool

    @property
    def n_features_in_(self) -> int:
        return len(self.feature_names_in_)

    def predict(self, X) -> np.ndarray:
        X = self._matrix(X)
        if self.multi_target:
            return np.column_stack([p.predict(X) for p in self.parts])
        return self.parts[0].predict(X)

    def _matrix(self, X) -> np.ndarray:
        if hasattr(X, "columns") and hasattr(X, "select"):  # a polars DataFrame
            missing = [c for c in self.feature_names_in_ if c not in X.columns]
            if missing:
                raise ValueError(f"the feature frame lacks the model's features {missing}")
            X = X.select(list(self.feature_names_in_)).to_numpy()
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has shape {X.shape}, the model takes {self.n_features_in_} features")
        if np.isinf(X).any():  # scikit-learn's validation refuses infinity (NaN is a missing value)
            raise ValueError("Input X contains infinity or a value too large for dtype('float64').")
        return X


def read_fast_estimator(path: Path, data: bytes, checked: CheckedModelFile) -> FastEstimator:
    """The trees of ``data`` (the bytes of ``path``, already checked into ``checked``) as a :class:`FastEstimator`.

    Raises :class:`UnsupportedModel` when the model holds anything the evaluator does not implement
    (or a shape that scikit-learn does not write, which the skops path then judges).
    """
    try:
        return _read(data, checked)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise UnsupportedModel(f"an unexpected shape ({type(e).__name__}: {e})") from e


def _read(data: bytes, checked: CheckedModelFile) -> FastEstimator:
    walk = checked.walk
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        def array(state: dict) -> np.ndarray:
            if state.get("__loader__") != "NdArrayNode" or state.get("type") != "numpy":
                raise UnsupportedModel(f"expected a stored array, found {state.get('__loader__')}")
            member = state["file"]
            loaded = checked.tree_nodes.get(member)
            return loaded if loaded is not None else _load_array(zf, member, checked.headers[member])

        root = walk.root
        kind = _kind(root)
        attrs = _attrs(walk, root)
        names = _names(walk, attrs.get("feature_names_in_"))
        if kind == _RESIDUAL:
            parts = (_residual(walk, root, names, array),)
        elif kind == _MULTI:
            parts = tuple(_residual(walk, e, names, array) for e in _items(walk, attrs.get("estimators_")))
            if not parts:
                raise UnsupportedModel("a multi-target model without estimators")
        else:
            raise UnsupportedModel(f"the model is a {kind}")
    return FastEstimator(names, parts, multi_target=kind == _MULTI)


def _kind(state: dict) -> str:
    return f"{state.get('__module__')}.{state.get('__class__')}"


def _json(state: dict | None) -> object:
    if not state or state.get("__loader__") != "JsonNode" or not isinstance(state.get("content"), str):
        raise UnsupportedModel("expected a JSON value")
    return json.loads(state["content"])


def _names(walk, state: dict | None) -> tuple[str, ...]:
    """``feature_names_in_``: an object array of strings, stored as a list of JSON nodes."""
    if not state or state.get("__loader__") != "NdArrayNode" or state.get("type") != "json":
        raise UnsupportedModel("the model has no feature names")
    names = tuple(_json(_resolve(walk, s)) for s in state.get("content") or [])
    if not names or not all(isinstance(n, str) for n in names):
        raise UnsupportedModel("the model's feature names are not strings")
    return names


def _residual(walk, state: dict, names: tuple[str, ...], array: Callable[[dict], np.ndarray]) -> _Residual:
    if _kind(state) != _RESIDUAL:
        raise UnsupportedModel(f"a part of the model is a {_kind(state)}")
    attrs = _attrs(walk, state)
    if _names(walk, attrs.get("feature_names_in_")) != names:
        raise UnsupportedModel("a part of the model has other feature names")
    base = _json(attrs.get("base_feature"))
    if base is not None and (not isinstance(base, str) or base not in names):
        raise UnsupportedModel(f"base_feature {base!r} is not a feature")
    unused = array(attrs.get("unused_features_") or {}).astype(np.int64)
    if unused.ndim != 1 or (unused.size and (unused.min() < 0 or unused.max() >= len(names))):
        raise UnsupportedModel("unused_features_ is not a list of feature indices")
    booster = attrs.get("booster_") or {}
    if _kind(booster) != _HGB:
        raise UnsupportedModel(f"the booster is a {_kind(booster)}")
    forest = _forest(walk, booster, len(names), array)
    # Files saved before the parameter existed have no base_offset: 0, as the estimator reads them.
    offset = 0.0 if attrs.get("base_offset") is None else _json(attrs.get("base_offset"))
    if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not 0 <= offset < float("inf"):
        raise UnsupportedModel(f"base_offset {offset!r} is not a finite number >= 0")
    return _Residual(None if base is None else names.index(base), base, unused, forest, float(offset))


def _forest(walk, booster: dict, n_features: int, array: Callable[[dict], np.ndarray]) -> _Forest:
    attrs = _attrs(walk, booster)
    if _json(attrs.get("loss")) != "squared_error" or _kind(attrs.get("_loss") or {}) != "sklearn._loss.loss." \
            "HalfSquaredError":
        raise UnsupportedModel("the booster's loss is not squared error (identity link)")
    link = _attrs(walk, attrs["_loss"]).get("link") or {}
    if _kind(link) != "sklearn._loss.link.IdentityLink":
        raise UnsupportedModel(f"the booster's link is {_kind(link)}")
    if _json_int(walk, attrs.get("n_trees_per_iteration_")) != 1:
        raise UnsupportedModel("the booster has several trees per iteration")
    if _json_int(walk, attrs.get("n_features_in_")) != n_features:
        raise UnsupportedModel("the booster's feature count differs from the model's")
    if _json(attrs.get("_preprocessor")) is not None or _json(attrs.get("is_categorical_")) is not None:
        raise UnsupportedModel("the booster has categorical features")
    baseline = array(attrs.get("_baseline_prediction") or {})
    if baseline.dtype != np.float64 or baseline.size != 1:
        raise UnsupportedModel(f"the baseline prediction is {baseline.dtype} of shape {baseline.shape}")
    trees = []
    for iteration in _items(walk, attrs.get("_predictors")):
        tree = _items(walk, iteration)
        if len(tree) != 1:
            raise UnsupportedModel(f"an iteration of the booster has {len(tree)} trees")
        trees.append(array(_attrs(walk, tree[0]).get("nodes") or {}))
    if not trees:
        raise UnsupportedModel("the booster has no trees")
    return _flatten(trees, float(baseline.reshape(-1)[0]), n_features)


def _flatten(trees: list[np.ndarray], baseline: float, n_features: int) -> _Forest:
    """One set of node arrays for all trees, with each tree's child indices shifted by its offset."""
    if any(t.dtype != PREDICTOR_RECORD_DTYPE or t.ndim != 1 or t.size == 0 for t in trees):
        raise UnsupportedModel("a tree's nodes are not scikit-learn's node records")
    nodes = np.concatenate(trees)
    leaf = nodes["is_leaf"] != 0
    if np.any(nodes["is_categorical"][~leaf]):
        raise UnsupportedModel("a tree has categorical splits")
    sizes = [len(t) for t in trees]
    _check_bounds(trees, n_features)
    offsets = np.cumsum([0, *sizes[:-1]]).astype(np.intp)
    shift = np.repeat(offsets, sizes)
    own = np.arange(len(nodes), dtype=np.intp)
    left = np.where(leaf, own, nodes["left"].astype(np.intp) + shift)
    right = np.where(leaf, own, nodes["right"].astype(np.intp) + shift)
    column = nodes["feature_idx"].astype(np.intp) + np.where(nodes["missing_go_to_left"] != 0, 0, n_features)
    threshold = nodes["num_threshold"].astype(np.float64)
    return _Forest(
        column=np.where(leaf, 0, column),
        threshold=np.where(threshold == np.inf, np.finfo(np.float64).max, threshold),
        kids=np.column_stack([left, right]).ravel(), is_leaf=leaf,
        value=nodes["value"].astype(np.float64), roots=offsets,
        steps=_depth(left, right, leaf, offsets), baseline=baseline,
    )


def _check_bounds(trees: list[np.ndarray], n_features: int) -> None:
    """Children inside their tree and after their parent, features inside the row: the walk's
    preconditions (the static checks of :mod:`.modelfile` refuse such files first; this keeps the
    evaluator safe on its own)."""
    for t in trees:
        inner = np.flatnonzero(t["is_leaf"] == 0)
        for side in ("left", "right"):
            child = t[side][inner].astype(np.int64)
            if np.any((child <= inner) | (child >= len(t))):
                raise UnsupportedModel(f"a tree's {side} child leaves the tree")
        if np.any(t["feature_idx"][inner] >= n_features) or np.any(t["feature_idx"][inner] < 0):
            raise UnsupportedModel("a tree splits on a feature the model does not have")


def _depth(left: np.ndarray, right: np.ndarray, leaf: np.ndarray, roots: np.ndarray) -> int:
    """Depth of the deepest leaf, walking down level by level (children always follow their parent)."""
    level, depth = roots, 0
    while True:
        inner = level[~leaf[level]]
        if inner.size == 0:
            return depth
        # unique: a node two parents share (which scikit-learn never writes) is walked once per level
        level = np.unique(np.concatenate([left[inner], right[inner]]))
        depth += 1
