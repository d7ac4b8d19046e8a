"""The in-memory paths of the analyses (wattlas.analysis._arrays) against plain numpy/scipy.

Rows are given in the orders that take the slow paths too: groups interleaved (no contiguous
slices), times out of order (a sort), values too wide for a bincount (a sort-based count),
float token columns, null group keys, and group codes made by a join instead of hash().
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from wattlas import analysis as wa
from wattlas.analysis import _arrays
from wattlas.analysis._arrays import quantiles_from_counts, value_counts


def _frame(seed: int = 0, n: int = 4000, wide: bool = False, shuffle: bool = True) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    trace = rng.choice(["a", "b", "c"], n)
    t = np.round(rng.random(n) * 50_000, 1)
    if not shuffle:
        order = np.lexsort((t, trace))
        trace, t = trace[order], t[order]
    scale = 10**12 if wide else 1
    return pl.DataFrame({
        "source": ["s"] * n, "trace": trace, "arrival_s": t,
        "model": rng.choice(["m1", "m2"], n),
        "input_tokens": rng.integers(1, 5000, n) * scale, "output_tokens": rng.integers(0, 800, n) * scale,
        "failed": rng.random(n) < 0.1,
    })


def _check_against_numpy(df: pl.DataFrame) -> None:
    ia = wa.interarrival_stats(df)
    ts = wa.token_stats(df)
    co = wa.token_correlation(df)
    rate = wa.arrival_rate(df, bin_s=600.0)
    disp = wa.dispersion_index(df, windows_s=[10.0, 3600.0])
    assert ia["trace"].to_list() == ["a", "b", "c"]
    for tr in ("a", "b", "c"):
        sub = df.filter(trace=tr)
        t = np.sort(sub["arrival_s"].to_numpy())
        gaps = np.diff(t)
        s = ia.filter(trace=tr).row(0, named=True)
        assert s["requests"] == t.size
        assert s["gap_mean_s"] == pytest.approx(gaps.mean(), rel=1e-12)
        assert s["gap_std_s"] == pytest.approx(gaps.std(), rel=1e-12)
        assert s["zero_gap_share"] == pytest.approx((gaps == 0).mean())
        for q in (0.5, 0.9, 0.99):
            assert s[f"gap_p{q * 100:g}_s"] == pytest.approx(np.quantile(gaps, q), rel=1e-12, abs=1e-12)
        k = ts.filter(trace=tr).row(0, named=True)
        for col in ("input_tokens", "output_tokens"):
            v = sub[col].to_numpy()
            assert k[f"{col}_mean"] == pytest.approx(v.mean(), rel=1e-12)
            for q in (0.5, 0.9, 0.99):
                assert k[f"{col}_p{q * 100:g}"] == pytest.approx(np.quantile(v, q), rel=1e-12)
            assert k[f"{col}_max"] == v.max() and k[f"{col}_total"] == v.sum()
        assert k["failed_share"] == pytest.approx(sub["failed"].mean())
        c = co.filter(trace=tr).row(0, named=True)
        x, y = sub["input_tokens"].to_numpy(), sub["output_tokens"].to_numpy()
        assert c["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-9)
        assert c["pearson_log"] == pytest.approx(np.corrcoef(np.log1p(x), np.log1p(y))[0, 1], rel=1e-9)
        assert c["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic, rel=1e-9)
        b = np.floor(t / 600.0).astype(int)
        assert rate.filter(trace=tr)["requests"].to_list() == np.bincount(b - b.min()).tolist()
        for w in (10.0, 3600.0):
            b = np.floor(t / w).astype(int)
            counts = np.bincount(b - b.min())
            got = disp.filter(trace=tr, window_s=w).row(0, named=True)
            assert got["windows"] == counts.size
            assert got["dispersion_index"] == pytest.approx(counts.var() / counts.mean(), rel=1e-9)


@pytest.mark.parametrize("shuffle", [True, False])
def test_grouped_and_interleaved_rows_match_numpy(shuffle):
    _check_against_numpy(_frame(shuffle=shuffle))


def test_values_too_wide_for_a_bincount_match_numpy():
    _check_against_numpy(_frame(wide=True))


def test_float_token_columns_match_integer_ones():
    df = _frame(seed=2)
    as_float = df.with_columns(pl.col("input_tokens", "output_tokens").cast(pl.Float64))
    a, b = wa.token_stats(df), wa.token_stats(as_float)
    for c in ("input_tokens_p50", "input_tokens_mean", "output_tokens_p99"):
        assert a[c].to_list() == pytest.approx(b[c].to_list(), rel=1e-12)
    h1 = wa.token_histogram(df, column="output_tokens")
    h2 = wa.token_histogram(as_float, column="output_tokens")
    assert h1["requests"].to_list() == h2["requests"].to_list()
    j1, j2 = wa.token_joint_histogram(df), wa.token_joint_histogram(as_float)
    assert j1["requests"].to_list() == j2["requests"].to_list()


def test_group_codes_by_join_equal_codes_by_hash(monkeypatch):
    df = _frame(seed=3)
    expected = [wa.token_stats(df, by=["trace", "model"]), wa.interarrival_stats(df), wa.failure_rates(df)]
    monkeypatch.setattr(_arrays, "_FORCE_JOIN", True)
    got = [wa.token_stats(df, by=["trace", "model"]), wa.interarrival_stats(df), wa.failure_rates(df)]
    for e, g in zip(expected, got, strict=True):
        assert e.equals(g)


def test_null_group_key_is_its_own_group():
    # SQL joins on the group columns drop a null key (NULL = NULL is not true); every statistic
    # must still count that group's arrivals.
    df = pl.DataFrame({"trace": ["a", None, None, "a", None], "arrival_s": [0.5, 1.5, 1.7, 2.5, 4.2]})
    r = wa.arrival_rate(df, bin_s=1.0)
    assert r.filter(pl.col("trace").is_null())["requests"].to_list() == [2, 0, 0, 1]
    assert r.filter(trace="a")["requests"].to_list() == [1, 0, 1]
    assert r["trace"].to_list()[-1] is None  # ordered like ORDER BY: nulls last
    b = wa.bursts(df, bin_s=1.0, threshold=1.0)
    assert b.filter(pl.col("trace").is_null())["requests"].to_list() == [2, 1]


def test_nulls_in_tokens_flags_and_times():
    df = pl.DataFrame({
        "arrival_s": [0.0, None, 2.0, 3.0, 5.0],
        "input_tokens": [10, 20, None, 40, 0],
        "output_tokens": [1, None, 3, 4, 5],
        "failed": [True, None, False, False, None],
    })
    s = wa.interarrival_stats(df).row(0, named=True)
    assert s["requests"] == 4 and s["gap_mean_s"] == pytest.approx(5 / 3)
    t = wa.token_stats(df).row(0, named=True)
    assert t["requests"] == 5
    assert t["input_tokens_mean"] == pytest.approx(70 / 4) and t["input_tokens_p50"] == pytest.approx(15.0)
    assert t["failed_share"] == pytest.approx(1 / 3)
    c = wa.token_correlation(df).row(0, named=True)
    assert c["requests"] == 3  # complete pairs only
    assert c["pearson"] == pytest.approx(np.corrcoef([10, 40, 0], [1, 4, 5])[0, 1])
    f = wa.failure_rates(df).row(0, named=True)
    assert (f["requests"], f["failed"]) == (3, 1)
    j = wa.token_joint_histogram(df, bins_per_decade=1)
    assert j["requests"].sum() == 5


def test_empty_input_keeps_the_aggregate_shape():
    df = pl.DataFrame({"arrival_s": [], "input_tokens": [], "output_tokens": []},
                      schema={"arrival_s": pl.Float64, "input_tokens": pl.Int64, "output_tokens": pl.Int64})
    assert wa.interarrival_stats(df)["requests"].to_list() == [0]
    assert wa.token_stats(df)["requests"].to_list() == [0]
    assert wa.arrival_rate(df, bin_s=1.0).height == 0
    assert wa.token_correlation(df)["pearson"].to_list() == [None]


def test_quantiles_from_counts_interpolate_like_numpy():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 50, 1001)
    u, c = value_counts(x)
    qs = [0.0, 0.001, 0.25, 0.5, 0.9, 0.99, 1.0]
    assert quantiles_from_counts(u, c, qs) == pytest.approx(np.quantile(x, qs), rel=1e-12)
    u, c = value_counts(x.astype(float))
    assert quantiles_from_counts(u, c, qs) == pytest.approx(np.quantile(x, qs), rel=1e-12)


def test_snapshot_grows_in_one_consistent_read():
    df = _frame(seed=4)
    inp = wa.Input(df)
    a = inp.rows(['"input_tokens"'], [("trace",)])
    assert inp.rows(['"input_tokens"'], [("trace",)]) is a
    b = inp.rows(['"output_tokens"'], [("trace", "model")])
    assert set(b.columns) == {'"input_tokens"', '"output_tokens"'} and ("trace",) in b.groupings
    assert np.array_equal(b.columns['"input_tokens"'].values, df["input_tokens"].to_numpy())
