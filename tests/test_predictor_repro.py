"""Reproducible training: ordered training rows, fixed seeds, byte-identical model files."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from wattlas.bench.session import rows_to_table
from wattlas.predictors import save
from wattlas.predictors.definitions import DEFINITIONS, get_definition
from wattlas.predictors.evaluation import _estimators
from wattlas.predictors.train import train
from wattlas.store import Store

from .predictor_fixtures import bench_gemm_rows, operator_rows, vidur_store, zeus_frame

ROOT = Path(__file__).resolve().parents[1]


def _wattlas(*args: str) -> subprocess.CompletedProcess:
    # A fresh process each time: other memory addresses, another hash seed.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONHASHSEED", None)
    return subprocess.run([sys.executable, "-m", "wattlas", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


def test_two_trainings_on_one_store_write_identical_model_files(tmp_path: Path):
    st = vidur_store(tmp_path / "store")
    outs = [tmp_path / "d1", tmp_path / "d2"]
    for out in outs:
        res = _wattlas("predictors", "train", "gemm-runtime", "--store", str(st.root), "-o", str(out))
        assert res.returncode == 0, res.stderr
    a, b = ((d / "gemm-runtime.skops").read_bytes() for d in outs)
    assert a == b  # before: member names were memory addresses, dates the wall clock
    assert (outs[0] / "gemm-runtime.md").read_bytes() == (outs[1] / "gemm-runtime.md").read_bytes()
    meta = [json.loads((d / "gemm-runtime.json").read_text()) for d in outs]
    for m in meta:  # when and how long: the only fields that may differ
        m.pop("trained_at"), m.pop("train_seconds")
    assert meta[0] == meta[1] and meta[0]["metrics"]
    names = zipfile.ZipFile(io.BytesIO(a)).namelist()
    assert names[-1] == "schema.json" and names[:3] == ["1.npy", "2.npy", "3.npy"]


def test_canonical_files_load_to_the_same_predictions(tmp_path: Path):
    from wattlas.predictors.bundle import _build
    from wattlas.predictors.modelfile import check_model_file
    from wattlas.predictors.reproducible import canonical_skops

    frame = zeus_frame()
    predictor = train("training-power", frame=frame, evaluate=False)
    save(predictor, tmp_path)
    data = (tmp_path / "training-power.skops").read_bytes()
    assert canonical_skops(data) == data  # a fixed point: already canonical
    for info in zipfile.ZipFile(io.BytesIO(data)).infolist():
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
    # The static checks and skops' type audit accept it (load() adds a child-process trial load).
    check_model_file(tmp_path / "training-power.skops", data)
    loaded = _build(tmp_path / "training-power.skops", data)
    X = predictor.definition.features(frame)
    assert np.array_equal(loaded.predict(X), predictor.estimator.predict(X))


def test_training_frames_do_not_depend_on_the_order_rows_were_stored(tmp_path: Path):
    a = vidur_store(tmp_path / "a")
    # The same rows, stored in reverse order.
    b = Store(tmp_path / "b")
    with b.transaction("vidur-profiling") as tx:
        tx.put("operator_times", "fixture", operator_rows().reverse())
    runs, res = bench_gemm_rows()
    with b.transaction("wattlas-bench") as tx:
        tx.put("bench_runs", "g1", rows_to_table(runs))
        tx.put("bench_results", "g1.0", rows_to_table(res[::-1]))
    for name in ("gemm-runtime", "operator-runtime"):
        defn = get_definition(name)
        fa, fb = defn.training_frame(a), defn.training_frame(b)
        assert fa.equals(fb), name
        assert fa.equals(fa.sort(fa.columns, nulls_last=True)), name


def test_every_estimator_has_a_fixed_seed():
    for defn in DEFINITIONS.values():
        for name, est in {**_estimators(defn), "shipped": defn.make_estimator()}.items():
            seeds = {k: v for k, v in est.get_params(deep=True).items() if k.endswith("random_state")}
            assert all(isinstance(v, int) for v in seeds.values()), (defn.name, name, seeds)
            assert seeds or name == "linear-raw", (defn.name, name)  # least squares draws nothing


@pytest.fixture
def quick_store(tmp_path: Path) -> Path:
    """A store whose only GEMM rows come from a `bench --quick` run."""
    runs, res = bench_gemm_rows()
    runs[0]["quick"] = True
    runs[0]["started_at_utc"] = datetime(2026, 11, 2, tzinfo=UTC)
    st = Store(tmp_path / "quick")
    with st.transaction("wattlas-bench") as tx:
        tx.put("bench_runs", "g1", rows_to_table(runs))
        tx.put("bench_results", "g1.0", rows_to_table(res))
    return st.root


def test_train_include_quick_sees_the_rows_evaluate_sees(quick_store: Path, tmp_path: Path, capsys):
    from wattlas.cli import main

    args = ["predictors", "train", "gemm-runtime", "--store", str(quick_store), "-o", str(tmp_path / "m"),
            "--no-evaluate"]
    assert main(args) != 0
    assert "no GEMM measurements" in " ".join(capsys.readouterr().err.split())
    assert main([*args, "--include-quick"]) == 0
    meta = json.loads((tmp_path / "m" / "gemm-runtime.json").read_text())
    assert meta["training_data"]["rows"] == 3
    assert pl.DataFrame(meta["training_data"]["gpu"], strict=False).columns == ["H100-SXM"]
