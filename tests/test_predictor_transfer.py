"""Cross-GPU transfer: the GPU features it relies on, the error breakdowns, and the transfer split."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from wattlas.errors import WattlasError
from wattlas.predictors import features as F
from wattlas.predictors.definitions import GEMM_RUNTIME, OPERATOR_RUNTIME
from wattlas.predictors.estimators import ResidualBoostingRegressor
from wattlas.predictors.evaluation import M_RANGES, breakdowns, mape_by_range
from wattlas.predictors.gpus import SPECS
from wattlas.predictors.transfer import transfer

NEW_COLUMNS = ("achieved_mem_bw_gbs", "kernel_launch_us", "l2_mb")


@pytest.mark.parametrize("key", sorted(SPECS))
def test_new_gpu_columns_are_finite_or_null_with_a_reason(key):
    spec = SPECS[key]
    for col in NEW_COLUMNS:
        value, source = getattr(spec, col), spec.sources[col]
        if value is None:
            assert "null" in source, (key, col, source)
        else:
            assert math.isfinite(value) and value > 0, (key, col, value)
            assert source and "null" not in source, (key, col, source)
    if spec.achieved_mem_bw_gbs is not None:
        # A measured copy cannot beat the datasheet's peak.
        assert spec.achieved_mem_bw_gbs < spec.mem_bw_gbs


def test_h100_achieved_bandwidth_is_the_cited_bench_copy():
    spec = SPECS["H100-SXM"]
    # 1 GiB read + 1 GiB written in 0.7183 ms (the run named in the source).
    assert spec.achieved_mem_bw_gbs == pytest.approx(2**31 / 0.7183e-3 / 1e9, rel=2e-3)
    assert "20261123T094234Z-a2821b" in spec.sources["achieved_mem_bw_gbs"]


def test_tile_features_exist_and_are_finite_for_every_gpu_with_an_sm_count():
    keys = sorted(SPECS)
    frame = pl.DataFrame({"gpu": keys, "m": [17] * len(keys), "n": [4096] * len(keys), "k": [4096] * len(keys),
                          "dtype": ["fp16"] * len(keys)})
    X = GEMM_RUNTIME.features(frame)
    tile_cols = [name for name, _ in F.TILE_FEATURES]
    assert {"wave_eff_128x256", "tiles_per_sm_64x64"} <= set(tile_cols) <= set(X.columns)
    assert X.columns[-1] == GEMM_RUNTIME.base_feature  # the base stays last
    documented = {name for name, _ in GEMM_RUNTIME.feature_doc}
    assert set(X.columns) <= documented
    for i, key in enumerate(keys):
        values = X.select(tile_cols).row(i)
        if SPECS[key].sm_count is None:  # B200: NVIDIA publishes no SM count (source says so)
            assert all(math.isnan(v) for v in values), key
            assert "null" in SPECS[key].sources["sm_count"]
        else:
            assert all(math.isfinite(v) and v > 0 for v in values), key
    # M = 17 rows on H100 (132 SMs), 64x64 tiles: ceil(17/64) * ceil(4096/64) = 64 tiles -> 64/132 per SM.
    h100 = keys.index("H100-SXM")
    assert X["tiles_per_sm_64x64"][h100] == pytest.approx(64 / 132)
    assert X["wave_eff_64x64"][h100] == pytest.approx(64 / 132)


def test_mape_by_range_on_a_hand_made_frame():
    m = np.array([1, 16, 17, 128, 129, 1024, 1025, 40000])
    y = np.ones(8)
    pred = np.array([1.1, 1.3, 0.9, 0.7, 1.0, 1.2, 1.05, 1.15])
    got = mape_by_range(m, y, pred)
    assert got == {"1-16": 20.0, "17-128": 20.0, "129-1024": 10.0, ">1024": 10.0}
    assert [label for label, *_ in M_RANGES] == list(got)
    assert mape_by_range(np.array([5]), np.array([2.0]), np.array([3.0])) == {"1-16": 50.0}


def test_breakdowns_by_operator_m_range_and_tensor_parallel():
    frame = pl.DataFrame({
        "op": ["add", "add", "mlp_up_proj", "mlp_up_proj"],
        "num_tokens": [8, 2048, 8, 2048],
        "tensor_parallel": [1, 8, None, 1],  # a row with no degree (a bench GEMM) has no TP bucket
    })
    y = np.ones(4)
    pred = np.array([1.1, 1.3, 1.5, 1.0])
    scored = np.array([True, True, True, False])  # the last row is not scored
    got = breakdowns(OPERATOR_RUNTIME, frame, y, pred, scored)
    assert got["op_mape_pct"] == {"add": 20.0, "mlp_up_proj": 50.0}
    assert got["m_range_mape_pct"] == {"1-16": 30.0, ">1024": 30.0}
    assert got["tensor_parallel_mape_pct"] == {"1": 10.0, "8": 30.0}


def _synthetic_gemm_rows() -> pl.DataFrame:
    """GEMM rows on three GPUs that follow one law: a 6 us floor plus the roofline over an efficiency
    that depends on how the 128x128 tiles fill the GPU (so it transfers through the features)."""
    rows = []
    for gpu in ("A100-SXM4-80GB", "A40", "H100-SXM"):
        for m in (1, 8, 16, 32, 100, 128, 256, 512, 1000, 2048, 4096, 8192):
            for n in (1024, 3072, 4096, 8192, 14336):
                for k in (1024, 4096, 8192):
                    rows.append({"gpu": gpu, "dtype": "fp16", "m": m, "n": n, "k": k, "tensor_parallel": 1 + m % 2})
    frame = pl.DataFrame(rows)
    X = GEMM_RUNTIME.features(frame)
    eff = 0.4 + 0.5 * X["wave_eff"].to_numpy()
    y = X["t_roof_s"].to_numpy() / eff + 6e-6
    return frame.with_columns(y=pl.Series(y), evaluate=pl.lit(True), model=pl.lit("synthetic"), arch=pl.lit("s"))


def test_transfer_on_synthetic_rows_scores_the_held_out_gpu_only():
    frame = _synthetic_gemm_rows()
    est = ResidualBoostingRegressor("t_roof_s", max_iter=60, learning_rate=0.2, max_leaf_nodes=31,
                                    min_samples_leaf=5, base_offset=6e-6)
    got = transfer(GEMM_RUNTIME, frame, ["A100-SXM4-80GB", "A40"], "H100-SXM", estimator=est)
    assert got["test_gpu"] == "H100-SXM" and got["n"] == frame.filter(pl.col("gpu") == "H100-SXM").height
    assert got["mape_pct"] < 10.0, got
    assert set(got["m_range_mape_pct"]) == {"1-16", "17-128", "129-1024", ">1024"}
    assert set(got["tensor_parallel_mape_pct"]) == {"1", "2"}
    with pytest.raises(WattlasError, match="also a training GPU"):
        transfer(GEMM_RUNTIME, frame, ["A40", "H100-SXM"], "H100-SXM")
    with pytest.raises(WattlasError, match="no training rows"):
        transfer(GEMM_RUNTIME, frame, ["A40"], "L4")


def test_base_offset_is_added_to_the_base():
    rng = np.random.default_rng(0)
    base = rng.uniform(1e-7, 1e-4, 400)
    X = pl.DataFrame({"b": base, "x": rng.uniform(0, 1, 400)})
    y = base + 6e-6  # exactly the base plus the floor: the trees have nothing left to learn
    est = ResidualBoostingRegressor("b", max_iter=5, base_offset=6e-6).fit(X, y)
    assert np.allclose(est.predict(X), y, rtol=1e-6)
    assert est.get_params()["base_offset"] == 6e-6
    # Without the floor the ratio spans 60x across rows and 5 trees cannot follow it.
    plain = ResidualBoostingRegressor("b", max_iter=5).fit(X, y)
    assert np.mean(np.abs(plain.predict(X) / y - 1)) > 0.05
