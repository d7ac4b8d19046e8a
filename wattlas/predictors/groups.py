"""Evaluation groups that really hold out: no held-out feature vector is ever trained on.

A grouped cross-validation flatters a model when a held-out row has a twin in training: the
same GPU and the same feature vector (what the fitted estimator sees). A Vidur "model" is a bad
group for that reason: Llama-2-7B and Llama-3-8B share their layer norms, adds and attention
output projection; RoPE of Qwen-72B at TP 2 is RoPE of Llama-2-7B at TP 1. Holding out one of
them left 27% (gemm-runtime) and 46% (operator-runtime) of the held-out rows in training.

Two rules make the groups disjoint:

* :func:`shape_groups` (runtime models): a row's *shape* is what its operator costs per token,
  independent of the GPU and of M (GEMM: the weight shape K x N; elementwise operators: the
  elements written and read per token). A shape is held out whole: on every GPU, at every M.
  Shapes are batched by the set of models that have them (``Llama-2-7b-hf`` holds the shapes
  only that model has; ``Llama-2-7b-hf+Meta-Llama-3-8B`` those both have), so there are a dozen
  folds, not a hundred, and each is named after real models. Grouping whole models cannot work:
  shared shapes chain all eight Vidur models into one group.
* :func:`disjoint_groups` (every scheme of every predictor): values of a scheme's group column
  that share a (GPU, feature vector) are merged, the union-find closure of the scheme's groups
  under "has the same feature vector on the same GPU". The evaluation always uses it, so the
  property holds for any scheme, and :func:`assert_disjoint` checks it independently.

Examples
--------
>>> import numpy as np
>>> disjoint_groups(np.array(["a", "b", "c"]), np.array([0, 1, 1]))
array(['a', 'b+c', 'b+c'], dtype=object)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from ..errors import WattlasError

if TYPE_CHECKING:
    import polars as pl

    from .definitions import ModelDef, Scheme

log = logging.getLogger("wattlas.predictors")


def feature_keys(defn: ModelDef, frame: pl.DataFrame) -> np.ndarray:
    """One integer per row: equal exactly when two rows have the same GPU and feature vector.

    The feature vector is ``defn.features(frame)``, what the fitted model sees. NaN (a
    structural "no K" of an elementwise operator) equals NaN here, and -0.0 equals 0.0.
    """
    X = defn.features(frame).to_numpy().astype(np.float64)
    X = np.where(np.isnan(X), np.nan, X) + 0.0  # one NaN bit pattern, no negative zero
    parts = [np.ascontiguousarray(X).view(np.uint8).reshape(len(X), -1)]
    if "gpu" in frame.columns:
        gpu = frame["gpu"].cast(str).fill_null("").to_numpy().astype(object)
        _, code = np.unique(gpu.astype(str), return_inverse=True)
        parts.insert(0, code.astype(np.int64).reshape(-1, 1).view(np.uint8))
    rows = np.ascontiguousarray(np.hstack(parts))
    _, inverse = np.unique(rows.view(np.dtype((np.void, rows.shape[1]))).ravel(), return_inverse=True)
    return inverse.ravel()


def disjoint_groups(groups: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``groups`` with every two values that share a key merged (named ``a+b``, sorted).

    Values that need no merging keep their value (and type); merged ones become strings.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    values, g_idx = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    g_idx = g_idx.ravel()
    _, k_idx = np.unique(keys, return_inverse=True)
    n = len(values) + int(k_idx.max(initial=-1)) + 1
    # Bipartite graph group -- key: two groups are connected when some key has rows in both.
    graph = coo_matrix((np.ones(len(g_idx)), (g_idx, len(values) + k_idx.ravel())), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    members: dict[int, list[str]] = {}
    for i, v in enumerate(values):
        members.setdefault(int(comp[i]), []).append(str(v))
    merged = [m for m in members.values() if len(m) > 1]
    if not merged:
        return np.asarray(groups)
    for m in merged:
        log.info("groups %s share feature vectors on one GPU: held out together", " and ".join(m))
    label = np.array(["+".join(members[int(comp[i])]) for i in range(len(values))], dtype=object)
    return label[g_idx]


def shape_groups(frame: pl.DataFrame, shape: pl.DataFrame) -> pl.Series:
    """A ``shape_group`` per row: the models (short names) that have the row's shape.

    ``shape`` holds, per row of ``frame``, the columns that define the shape (what the row
    costs per token, without GPU or M); ``frame`` needs a ``model`` column.
    """
    import polars as pl

    if shape.height != frame.height:
        raise WattlasError(f"shape_groups: {shape.height} shape rows for {frame.height} rows")
    key = shape.select(pl.concat_str([pl.col(c).cast(pl.String).fill_null("-") for c in shape.columns],
                                     separator="|")).to_series()
    short = frame["model"].cast(pl.String).str.split("/").list.last()
    df = pl.DataFrame({"_key": key, "_model": short})
    sets = df.group_by("_key").agg(shape_group=pl.col("_model").unique().sort().str.join("+"))
    return df.join(sets, on="_key", how="left", maintain_order="left")["shape_group"]


def twin_share(keys: np.ndarray, groups: np.ndarray, scored: np.ndarray | None = None) -> float:
    """Share of rows that, held out with their value of ``groups`` (no merging), have a twin
    (same key: GPU and feature vector) in the training rows, the other groups."""
    import polars as pl

    df = pl.DataFrame({"key": keys, "group": np.asarray(groups, dtype=object).astype(str)})
    per_key = df.group_by("key").agg(n_groups=pl.col("group").n_unique())
    twin = df.join(per_key, on="key", how="left", maintain_order="left")["n_groups"].to_numpy() > 1
    scored = np.ones(len(keys), dtype=bool) if scored is None else scored
    return float(twin[scored].mean()) if scored.any() else 0.0


def assert_disjoint(defn: ModelDef, frame: pl.DataFrame, scheme: Scheme) -> int:
    """Check that no fold of ``scheme`` trains on a (GPU, feature vector) it holds out.

    Uses the folds :func:`wattlas.predictors.evaluation.cross_validate` fits. Returns the
    number of folds checked; raises ``AssertionError`` naming the scheme, the fold and a row.
    """
    from .evaluation import scheme_folds

    return check_folds(defn, frame, scheme.name, scheme_folds(defn, frame, scheme))


def check_folds(defn: ModelDef, frame: pl.DataFrame, scheme_name: str, folds: list) -> int:
    """:func:`assert_disjoint` for any folds (objects with ``group``, ``train``, ``test`` masks)."""
    keys = feature_keys(defn, frame)
    for fold in folds:
        shared = np.isin(keys[fold.test], np.unique(keys[fold.train]))
        if shared.any():
            row = frame.filter(fold.test).row(int(np.flatnonzero(shared)[0]), named=True)
            raise AssertionError(
                f"{defn.name} {scheme_name}: {int(shared.sum()):,} of {int(fold.test.sum()):,} rows held out "
                f"with group {fold.group!r} have the same GPU and feature vector as a training row, e.g. {row}"
            )
    return len(folds)
