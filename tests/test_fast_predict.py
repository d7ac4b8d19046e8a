"""The numpy trees of `wattlas predict` (issue 16, item 5): scikit-learn's numbers, without scikit-learn.

:mod:`wattlas.predictors.fasttrees` evaluates the shipped models' boosted trees in numpy so that a
one-point prediction does not import scikit-learn, SciPy or skops (about 2 s of its 2.5 s CPU).
These tests check that it gives the same float64 numbers as the scikit-learn estimator skops
builds, on thousands of varied rows per shipped model (NaN, values on every split threshold and
one ulp either side, far outside the training range); that the CLI's predict path imports none
of the three; and that it reads only files that pass the same checks as the skops path.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from threadpoolctl import threadpool_limits

from wattlas.predictors import MODELS_DIR, UntrustedModelError, available, load
from wattlas.predictors.fasttrees import FastEstimator

from .conftest import ROOT

UNWANTED = ("sklearn", "scipy", "skops")
ROWS = 4000


# ------------------------------------------------------------------ same numbers as scikit-learn
def _boosters(estimator) -> list:
    """The scikit-learn boosters of a wattlas estimator (one, or one per target)."""
    return [e.booster_ for e in getattr(estimator, "estimators_", [estimator])]


def _varied_rows(estimator, meta: dict, n: int, seed: int) -> pl.DataFrame:
    """Feature rows that reach every kind of branch: on, just below and just above each split
    threshold of scikit-learn's trees, NaN, inside and far outside the training envelope."""
    rng = np.random.default_rng(seed)
    names = list(estimator.feature_names_in_)
    bases = {e.base_feature for e in getattr(estimator, "estimators_", [estimator])}
    nodes = np.concatenate([t.nodes for b in _boosters(estimator) for it in b._predictors for t in it])
    inner = nodes[nodes["is_leaf"] == 0]
    cols = {}
    for j, name in enumerate(names):
        lo, hi = meta["envelope"].get(name, [None, None])
        lo, hi = (0.0, 1.0) if lo is None else (lo, hi)
        span = (hi - lo) or 1.0
        v = rng.uniform(lo - 0.2 * span, hi + 0.2 * span, n)
        far = rng.random(n) < 0.05
        v[far] = rng.choice([-1e6, 1e6], far.sum()) * span
        thresholds = inner["num_threshold"][inner["feature_idx"] == j]
        thresholds = thresholds[np.isfinite(thresholds)]
        if thresholds.size:
            on = rng.random(n) < 0.4
            t = rng.choice(thresholds, on.sum())
            toward = rng.choice([-np.inf, np.nan, np.inf], on.sum())  # NaN: the threshold itself
            v[on] = np.where(np.isnan(toward), t, np.nextafter(t, toward))
        if name in bases:  # the physics base must be finite and > 0
            v = np.exp(rng.uniform(np.log(max(lo, 1e-12)) - 3, np.log(max(hi, 1e-11)) + 3, n))
        else:
            v[rng.random(n) < 0.15] = np.nan
        cols[name] = v
    return pl.DataFrame(cols)


@pytest.mark.parametrize("name", available())
def test_numpy_trees_equal_scikit_learn_on_every_shipped_model(name: str):
    fast, sk = load(name, fast=True), load(name)
    assert isinstance(fast.estimator, FastEstimator), f"{name} fell back to scikit-learn"
    assert not isinstance(sk.estimator, FastEstimator)
    X = _varied_rows(sk.estimator, sk.meta, ROWS, seed=len(name))
    assert X.null_count().sum_horizontal()[0] == 0 and np.isnan(X.to_numpy()).any()
    with threadpool_limits(1):  # OpenMP threads spin on a busy machine
        expected = sk.estimator.predict(X)
    got = fast.estimator.predict(X)
    assert got.shape == expected.shape and got.dtype == np.float64
    assert np.all(np.isfinite(expected))
    # Bit for bit (the same float sums in the same order): stronger than 1e-12 relative.
    assert np.array_equal(got, expected), np.max(np.abs(got - expected) / np.abs(expected))


def test_numpy_trees_equal_scikit_learn_through_the_predictor():
    """The whole path (inputs, features, out_of_domain) on a batch of real-shaped inputs."""
    rng = np.random.default_rng(1)
    n = 2000
    frame = pl.DataFrame({"gpu": rng.choice(["H100", "A100", "A40"], n), "m": 2 ** rng.integers(0, 16, n),
                          "n": 2 ** rng.integers(4, 16, n), "k": 2 ** rng.integers(4, 16, n),
                          "dtype": rng.choice(["bf16", "fp16", "fp32", "tf32"], n)})
    fast, sk = load("gemm-runtime", fast=True), load("gemm-runtime")
    assert fast.predict_frame(frame).equals(sk.predict_frame(frame))


def test_bad_input_is_refused_as_scikit_learn_refuses_it():
    fast, sk = load("training-power", fast=True), load("training-power")
    names = list(sk.estimator.feature_names_in_)
    row = {c: [1.0] for c in names}
    for column, value, words in ((names[0], np.inf, "infinity"), ("power_phys_w", 0.0, "must be finite and > 0")):
        X = pl.DataFrame({**row, column: [value]})
        for est in (fast.estimator, sk.estimator):
            with pytest.raises(ValueError, match=words):
                est.predict(X)


def test_record_layout_is_scikit_learns():
    """The static checks compare tree arrays with a written-out copy of scikit-learn's record dtype."""
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    from wattlas.predictors.modelfile import PREDICTOR_RECORD_DTYPE as ours

    assert ours == PREDICTOR_RECORD_DTYPE


def test_unsupported_model_falls_back_to_scikit_learn(monkeypatch: pytest.MonkeyPatch):
    from wattlas.predictors import fasttrees

    def unsupported(*args):
        raise fasttrees.UnsupportedModel("pretend the loss is Poisson")

    monkeypatch.setattr(fasttrees, "read_fast_estimator", unsupported)
    predictor = load("training-time", fast=True)
    assert type(predictor.estimator).__name__ == "ResidualBoostingRegressor"


# ------------------------------------------------------------------ what `wattlas predict` imports
def _run_cli(args: list[str]) -> tuple[int, str, str, set[str]]:
    """``wattlas ARGS`` by main() in a fresh interpreter: exit code, stdout, stderr, modules left imported."""
    code = textwrap.dedent(f"""
        import json, sys
        from wattlas.cli import main
        try:
            rc = main({args!r})
        except SystemExit as e:
            rc = e.code
        print("MODULES " + json.dumps([rc, sorted(sys.modules)]), file=sys.stderr)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               COLUMNS="200")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    *err, last = r.stderr.strip().splitlines()
    assert last.startswith("MODULES "), r.stderr
    rc, modules = json.loads(last.removeprefix("MODULES "))
    return rc, r.stdout, "\n".join(err), set(modules)


def _imported(modules: set[str]) -> list[str]:
    return sorted({m.partition(".")[0] for m in modules} & set(UNWANTED))


def test_single_point_predict_imports_no_scikit_learn_scipy_or_skops():
    rc, out, err, modules = _run_cli(["--quiet", "predict", "gemm-runtime", "--gpu", "H100", "--m", "4096", "--n",
                                      "4096", "--k", "4096", "--dtype", "bf16", "--format", "json"])
    assert rc in (0, None), err
    assert not _imported(modules), f"wattlas predict imported {_imported(modules)}"
    (row,) = json.loads(out)
    expected = load("gemm-runtime").predict({"gpu": ["H100"], "m": [4096], "n": [4096], "k": [4096],
                                             "dtype": ["bf16"]})
    assert row["time_s"] == float(expected[0])  # JSON keeps a float64's shortest repr: exact


def test_batch_predict_imports_no_scikit_learn_and_writes_its_numbers(tmp_path: Path):
    rng = np.random.default_rng(2)
    n = 500
    frame = pl.DataFrame({"gpu": rng.choice(["H100", "A40"], n), "model": ["llama-3-8b"] * n,
                          "phase": rng.choice(["prefill", "e2e"], n), "batch_size": rng.integers(1, 33, n),
                          "input_tokens": rng.integers(16, 4096, n), "output_tokens": rng.integers(1, 512, n),
                          "dtype": ["bf16"] * n, "power_limit_w": rng.choice([300.0, 700.0], n)})
    src, dst = tmp_path / "in.parquet", tmp_path / "out.parquet"
    frame.write_parquet(src)
    rc, _, err, modules = _run_cli(["--quiet", "predict", "llm-energy", "--input", str(src), "-o", str(dst)])
    assert rc in (0, None), err
    assert not _imported(modules), f"wattlas predict --input imported {_imported(modules)}"
    # The CLI applies the shared guards (memory fit, power-cap curve) to either evaluator.
    from wattlas.predictors.guards import predict_checked

    assert pl.read_parquet(dst).equals(predict_checked(load("llm-energy"), frame)[0])


# ------------------------------------------------------------------ the same checks before reading
def _copy(name: str, d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for ext in ("skops", "json", "md"):
        shutil.copy(MODELS_DIR / f"{name}.{ext}", d / f"{name}.{ext}")
    return d / f"{name}.skops"


def _rewrite_first_tree(path: Path, change) -> None:
    """Change the first tree's node records, and record the new file's hash as an attacker would."""
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    schema = members["schema.json"].decode()
    member = schema[schema.index('"TreePredictor"'):].split('"file": "', 1)[1].split('"', 1)[0]
    nodes = np.load(io.BytesIO(members[member])).copy()
    change(nodes)
    buf = io.BytesIO()
    np.save(buf, nodes)
    members[member] = buf.getvalue()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    meta_path.write_text(json.dumps(meta))


def test_altered_model_file_is_refused_on_the_fast_path(tmp_path: Path):
    path = _copy("training-power", tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UntrustedModelError, match="SHA-256 .* differs from the recorded"):
        load("training-power", tmp_path, fast=True)


def test_rehashed_tree_with_bad_child_is_refused_on_the_fast_path(tmp_path: Path):
    """A directory's .json is no guarantee: the static checks still run before the numpy trees read it."""
    path = _copy("training-power", tmp_path)

    def bad_child(nodes: np.ndarray) -> None:
        nodes["left"][0] = 10**9

    _rewrite_first_tree(path, bad_child)
    with pytest.raises(UntrustedModelError, match="left child 1000000000"):
        load("training-power", tmp_path, fast=True)
    rc, _, err, modules = _run_cli(["predict", "training-power", "--models", str(tmp_path), "--gpu", "A40",
                                    "--power-limit", "300", "--batch-size", "128", "--ref-power", "250",
                                    "--ref-time", "100"])
    assert rc == 1 and "left child 1000000000" in " ".join(err.split()), err
    assert not _imported(modules)  # refused before anything would load scikit-learn


def test_node_type_outside_the_allow_list_is_refused_on_the_fast_path(tmp_path: Path):
    path = _copy("training-time", tmp_path)
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    schema = members["schema.json"].decode().replace('"__module__": "sklearn._loss.link"', '"__module__": "os"', 1)
    members["schema.json"] = schema.encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(UntrustedModelError, match="wattlas does not trust that node type"):
        load("training-time", tmp_path, fast=True)


def test_numpy_trees_check_their_own_bounds():
    """Beyond the file checks: a tree whose child leaves it is refused by the evaluator itself."""
    from wattlas.predictors import fasttrees
    from wattlas.predictors.modelfile import PREDICTOR_RECORD_DTYPE

    nodes = np.zeros(3, dtype=PREDICTOR_RECORD_DTYPE)
    nodes["is_leaf"] = [0, 1, 1]
    nodes["left"], nodes["right"] = [1, 0, 0], [2, 0, 0]
    forest = fasttrees._flatten([nodes.copy()], 0.5, n_features=1)
    assert forest.steps == 1
    for field, value in (("right", 3), ("left", 0), ("feature_idx", 1)):
        bad = nodes.copy()
        bad[field][0] = value
        with pytest.raises(fasttrees.UnsupportedModel):
            fasttrees._flatten([bad], 0.5, n_features=1)


def test_large_batches_use_scikit_learn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Past FAST_MAX_ROWS rows the compiled trees (about twice as fast per row) repay their import."""
    import wattlas.predictors
    from wattlas.cli import main
    from wattlas.cli import predictors as cli_predictors

    calls: list[bool] = []

    def spy(name, directory=None, *, fast=False):
        calls.append(fast)
        return load(name, directory, fast=fast)

    monkeypatch.setattr(wattlas.predictors, "load", spy)
    monkeypatch.setattr(cli_predictors, "FAST_MAX_ROWS", 3)
    for rows in (3, 4):
        src = tmp_path / f"in{rows}.parquet"
        pl.DataFrame({"gpu": ["H100"] * rows, "m": [4096] * rows, "n": [4096] * rows, "k": [4096] * rows,
                      "dtype": ["bf16"] * rows}).write_parquet(src)
        assert main(["--quiet", "predict", "gemm-runtime", "--input", str(src), "-o", str(tmp_path / "o.parquet")]) == 0
    assert calls == [True, False]
