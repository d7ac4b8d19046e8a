"""Evaluation that cannot flatter: disjoint groups on every scheme, fair baselines, cross-GPU rows."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from wattlas.cli import main
from wattlas.predictors.definitions import DEFINITIONS, Scheme, get_definition
from wattlas.predictors.evaluation import Fold, _calibrated, _estimators, cross_validate, methods, scheme_folds
from wattlas.predictors.groups import assert_disjoint, check_folds, disjoint_groups, feature_keys, twin_share
from wattlas.store import Store

from .predictor_fixtures import vidur_store, zeus_frame

TRAIN_STORE = Path("/work/data/train-store")


@pytest.fixture(autouse=True)
def _one_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    return vidur_store(tmp_path_factory.mktemp("groups") / "store")


def _colocation() -> pl.DataFrame:
    from wattlas.predictors.interference import from_bench

    rng = np.random.default_rng(3)
    loads = {"gemm": 0.010, "stream": 0.004, "decode": 0.002}
    rows = [dict(kind="colocation", workload=w, partner_workload=None, colocation_mode="solo", device_type="cpu",
                 gpu_name=None, time_per_iter_s_median=t, solo_time_per_iter_s=t, slowdown=1.0)
            for w, t in loads.items()]
    for w, t in loads.items():
        for p, tp in loads.items():
            if p != w:
                s = 1.0 + 0.8 * tp / (t + tp) + rng.normal(0, 0.02)
                rows.append(dict(kind="colocation", workload=w, partner_workload=p, colocation_mode="processes",
                                 device_type="cpu", gpu_name=None, time_per_iter_s_median=t * s,
                                 solo_time_per_iter_s=t, slowdown=s))
    return from_bench(pl.DataFrame(rows))


def _llm() -> pl.DataFrame:
    from wattlas.predictors.llm import from_bench

    rows = []
    for gpu in ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB"):
        for model in ("meta-llama/Meta-Llama-3-8B", "meta-llama/Llama-2-7b-hf"):
            for phase in ("prefill", "decode"):
                for b in (1, 8):
                    rows.append(dict(kind=phase, gpu_name=gpu, model=model, batch_size=b, input_tokens=512,
                                     output_tokens=1, dtype="bf16", power_limit_w=None,
                                     time_per_iter_s_median=0.01 * b, energy_per_iter_j=4.0 * b))
    return from_bench(pl.DataFrame(rows))


def _serving(store: Store) -> pl.DataFrame:
    from wattlas.ingest import ingest

    ingest("mlenergy-v3", [Path(__file__).parent / "fixtures" / "mlenergy"], store=store)
    return get_definition("serving-energy").training_frame(store)


def _fixture_frames(store: Store) -> dict[str, pl.DataFrame]:
    zeus = zeus_frame()
    return {
        "gemm-runtime": get_definition("gemm-runtime").training_frame(store),
        "operator-runtime": get_definition("operator-runtime").training_frame(store),
        "training-power": zeus,
        "training-time": zeus.with_columns(y=pl.col("time_per_epoch_s")),
        "interference": _colocation(),
        "llm-energy": _llm(),
        "serving-energy": _serving(store),
    }


def _check_every_scheme(frames: dict[str, pl.DataFrame]) -> dict[tuple[str, str], int]:
    checked = {}
    for name, frame in frames.items():
        defn = get_definition(name)
        for scheme in defn.schemes:
            if frame[scheme.group].n_unique() >= 2:
                checked[(name, scheme.name)] = assert_disjoint(defn, frame, scheme)
    return checked


# ----------------------------------------------------------------------------- 1. disjoint groups
def test_every_scheme_of_every_predictor_is_disjoint_on_fixture_data(store: Store):
    frames = _fixture_frames(store)
    assert set(frames) == set(DEFINITIONS)
    checked = _check_every_scheme(frames)
    # The ML.ENERGY fixture holds one text task, so leave-one-task-out has a single group there.
    assert set(checked) == {(d.name, s.name) for d in DEFINITIONS.values() for s in d.schemes} - {
        ("serving-energy", "leave-one-task-out")}
    # The shape groups are real folds, not everything merged into one: 4 models give 7 groups.
    assert checked[("operator-runtime", "leave-one-shape-out")] >= 6
    assert checked[("gemm-runtime", "leave-one-shape-out")] >= 5
    assert checked[("gemm-runtime", "cross-gpu")] == 2


def test_the_checker_catches_model_groups_that_share_shapes(store: Store):
    defn = get_definition("operator-runtime")
    frame = defn.training_frame(store)
    keys = feature_keys(defn, frame)
    arch = frame["arch"].to_numpy()
    # The old groups (whole architectures): layer norms of h = 4096, RoPE of Qwen at TP 2 = Llama-2-7B
    # at TP 1, ... stay in training when their model is held out.
    assert twin_share(keys, arch) > 0.2
    assert twin_share(keys, frame["shape_group"].to_numpy()) == 0.0
    old = [Fold("old", g, arch != g, arch == g) for g in sorted(set(arch))]
    with pytest.raises(AssertionError, match="same GPU and feature vector as a training row"):
        check_folds(defn, frame, "leave-one-model-out (old)", old)


def test_groups_that_share_a_feature_vector_are_merged_on_any_scheme(store: Store):
    defn = get_definition("gemm-runtime")
    frame = defn.training_frame(store)
    # A scheme on the model column: the bench shapes Vidur also has and the h = 4096 projections tie
    # Llama-2-7B, Llama-3-8B and the bench run together; Qwen and phi-2 share nothing.
    folds = scheme_folds(defn, frame, Scheme("by-model", "model", "test"))
    names = sorted(str(f.group) for f in folds)
    assert names == ["Qwen/Qwen-72B", "bench+meta-llama/Llama-2-7b-hf+meta-llama/Meta-Llama-3-8B", "microsoft/phi-2"]
    assert check_folds(defn, frame, "by-model", folds) == 3
    # Values that share nothing keep their own value and type.
    assert disjoint_groups(np.array([1, 2, 3]), np.array([0, 1, 2])).tolist() == [1, 2, 3]


def test_interference_partner_follows_its_merged_group():
    defn = get_definition("interference")
    frame = _colocation()
    folds = scheme_folds(defn, frame, defn.schemes[0])
    for fold in folds:  # a pair that contains the held-out workload is never trained on
        held = frame.filter(fold.test)["workload"].unique().to_list()
        train = frame.filter(fold.train)
        assert not train["partner_workload"].is_in(held).any()


@pytest.mark.skipif(not TRAIN_STORE.is_dir(), reason=f"{TRAIN_STORE} is absent")
def test_every_scheme_is_disjoint_on_the_training_store():
    st = Store(TRAIN_STORE)
    frames = {n: get_definition(n).training_frame(st)
              for n in ("gemm-runtime", "operator-runtime", "training-power", "training-time")}
    checked = _check_every_scheme(frames)
    assert checked[("gemm-runtime", "leave-one-shape-out")] == 14
    assert checked[("operator-runtime", "leave-one-shape-out")] == 15
    assert checked[("gemm-runtime", "cross-gpu")] == 3
    assert checked[("training-power", "leave-one-network-out")] == 5
    # What the audit measured for the old groups (issue 15): 26.6% and 45.6% of held-out rows had a twin.
    for name, share in (("gemm-runtime", 26.6), ("operator-runtime", 45.6)):
        defn, frame = get_definition(name), frames[name]
        keys = feature_keys(defn, frame)
        assert round(100 * twin_share(keys, frame["arch"].to_numpy()), 1) == share
        assert twin_share(keys, frame["shape_group"].to_numpy()) == 0.0


# ----------------------------------------------------------------------------- 2. baselines
def test_calibrated_roofline_uses_the_training_fold_median_ratio():
    base = np.array([[1.0], [2.0], [3.0], [4.0], [5.0], [6.0]])
    op = np.array(["a", "a", "b", "b", "a", "c"])
    y = base * np.where(op == "a", 2.0, 3.0)[:, None]
    train = np.array([True, True, True, True, False, False])
    fold = Fold("s", "g", train, ~train)
    # Global: median of (2, 2, 3, 3) = 2.5. Per operator: a -> 2; c has no training rows -> 2.5.
    assert _calibrated(base, y, fold, None).ravel().tolist() == [12.5, 15.0]
    assert _calibrated(base, y, fold, op).ravel().tolist() == [10.0, 15.0]


def test_every_table_has_the_calibrated_rooflines_and_the_log_gbm(store: Store):
    for name in DEFINITIONS:
        ms = methods(get_definition(name))
        assert {"wattlas", "roofline", "roofline-cal", "linear-raw", "gbm-raw", "gbm-log"} <= set(ms), name
    assert "roofline-cal-op" in methods(get_definition("operator-runtime"))
    assert "roofline-cal-network" in methods(get_definition("training-power"))
    # The log-target GBM has our budget: iterations, learning rate, leaves.
    for name in ("gemm-runtime", "operator-runtime", "training-power"):
        defn = get_definition(name)
        params = _estimators(defn)["gbm-log"].get_params()
        assert params["base_feature"] is None
        assert {k: params[k] for k in defn.params} == defn.params
    defn = get_definition("gemm-runtime")
    rows = cross_validate(defn, defn.training_frame(store))
    by = {(r["scheme"], r["method"]): r for r in rows}
    for scheme in ("leave-one-shape-out", "cross-gpu"):
        for method in methods(defn):
            assert by[(scheme, method)]["n"] == by[(scheme, "wattlas")]["n"] > 0
        # Physics x a fitted ratio beats bare physics (the fixture is roofline / efficiency).
        assert by[(scheme, "roofline-cal")]["mape_pct"] < by[(scheme, "roofline")]["mape_pct"]


# ----------------------------------------------------------------------------- 3. cross-GPU rows
def test_cross_gpu_has_one_row_per_held_out_gpu(store: Store):
    defn = get_definition("operator-runtime")
    defn = dataclasses.replace(defn, params={**defn.params, "max_iter": 20})  # speed; the split is the point
    frame = defn.training_frame(store)
    rows = cross_validate(defn, frame, ["leave-one-gpu-out"])  # the old name still works
    schemes = sorted({r["scheme"] for r in rows})
    assert schemes == ["cross-gpu", "cross-gpu A100-SXM4-80GB -> H100-SXM", "cross-gpu H100-SXM -> A100-SXM4-80GB"]
    h100 = [r for r in rows if r["scheme"] == "cross-gpu A100-SXM4-80GB -> H100-SXM"]
    assert [r["method"] for r in h100] == list(methods(defn))
    assert {r["n"] for r in h100} == {int((frame["gpu"] == "H100-SXM").sum())}
    ours = next(r for r in h100 if r["method"] == "wattlas")
    assert ours["worst_group"] == "H100-SXM" and set(ours["op_mape_pct"]) == set(frame["op"].unique())


def test_cli_evaluate_takes_several_predictors(store: Store, capsys, monkeypatch):
    fast = dataclasses.replace(DEFINITIONS["operator-runtime"], params={**DEFINITIONS["operator-runtime"].params,
                                                                        "max_iter": 10})
    monkeypatch.setitem(DEFINITIONS, "operator-runtime", fast)
    args = ["predictors", "evaluate", "gemm-runtime", "operator-runtime", "--store", str(store.root),
            "--format", "csv", "--jobs", "1"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    df = pl.read_csv(out.encode())
    assert set(df["model"]) == {"gemm-runtime", "operator-runtime"}
    assert {"leave-one-shape-out", "cross-gpu", "cross-gpu A100-SXM4-80GB -> H100-SXM"} <= set(df["scheme"])
    assert {"roofline-cal", "roofline-cal-op", "gbm-log"} <= set(df["method"])
    assert "evaluating 2 predictors" in " ".join(err.split())
