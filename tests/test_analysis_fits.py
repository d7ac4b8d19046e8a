"""Distribution fits recover the parameters of samples drawn from known laws."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from wattlas import analysis as wa
from wattlas.errors import AnalysisError

N = 50_000


@pytest.mark.parametrize(
    ("family", "draw", "shape", "scale"),
    [
        ("exponential", lambda r: r.exponential(2.5, N), None, 2.5),
        ("gamma", lambda r: r.gamma(0.4, 3.0, N), 0.4, 3.0),          # bursty arrivals (CV 1.6)
        ("weibull", lambda r: 8.0 * r.weibull(0.6, N), 0.6, 8.0),     # Huawei-style inter-arrivals
        ("lognormal", lambda r: r.lognormal(np.log(0.8), 1.2, N), 1.2, 0.8),  # cold-start times
    ],
)
def test_continuous_fit_recovers_parameters_and_ranks_the_true_family_first(family, draw, shape, scale):
    x = draw(np.random.default_rng(11))
    f = wa.fit_distributions(x)
    assert f["family"][0] == family                      # best AIC
    assert f.filter(rank_ks=1)["family"][0] == family    # best KS
    row = f.filter(family=family).row(0, named=True)
    if shape is not None:
        assert row["shape"] == pytest.approx(shape, rel=0.03)
    assert row["scale"] == pytest.approx(scale, rel=0.04)
    assert row["ks_pvalue"] > 0.001
    assert row["n"] == N and row["dropped"] == 0
    # Log-likelihood and AIC are what scipy computes for those parameters.
    dist = {"exponential": stats.expon(scale=row["scale"]), "gamma": stats.gamma(row["shape"], scale=row["scale"]),
            "weibull": stats.weibull_min(row["shape"], scale=row["scale"]),
            "lognormal": stats.lognorm(row["shape"], scale=row["scale"])}[family]
    ll = dist.logpdf(x).sum()
    assert row["log_likelihood"] == pytest.approx(ll, rel=1e-9)
    k = 1 if family == "exponential" else 2
    assert row["aic"] == pytest.approx(2 * k - 2 * ll, rel=1e-9)
    assert row["ks_statistic"] == pytest.approx(stats.kstest(x, dist.cdf).statistic, rel=1e-9)


def test_mle_matches_scipy_generic_fit():
    x = np.random.default_rng(2).gamma(1.7, 0.3, 20_000)
    f = wa.fit_distributions(x, families=["gamma", "weibull"])
    a, _, s = stats.gamma.fit(x, floc=0)
    c, _, s2 = stats.weibull_min.fit(x, floc=0)
    assert f.filter(family="gamma")["shape"][0] == pytest.approx(a, rel=1e-4)
    assert f.filter(family="weibull")["shape"][0] == pytest.approx(c, rel=1e-3)
    assert f.filter(family="weibull")["scale"][0] == pytest.approx(s2, rel=1e-3)


def test_zipf_token_counts_recovered_and_ranked_first():
    x = np.random.default_rng(4).zipf(1.9, N)
    f = wa.fit_distributions(x, discrete=True)
    assert f["family"][0] == "zipf" and f.filter(rank_ks=1)["family"][0] == "zipf"
    z = f.filter(family="zipf").row(0, named=True)
    assert z["shape"] == pytest.approx(1.9, abs=0.02)
    assert z["xmin"] == 1.0 and z["ks_pvalue"] is None
    # Log-likelihood equals scipy's Zipf pmf at the fitted alpha.
    assert z["log_likelihood"] == pytest.approx(stats.zipf(z["shape"]).logpmf(x).sum(), rel=1e-9)


def test_discrete_lognormal_tokens_beat_zipf():
    x = np.maximum(1, np.round(np.random.default_rng(6).lognormal(np.log(1000), 0.9, N)))
    f = wa.fit_distributions(x, discrete=True)
    assert f["family"][0] == "lognormal"
    ln = f.filter(family="lognormal").row(0, named=True)
    assert ln["scale"] == pytest.approx(1000, rel=0.03) and ln["shape"] == pytest.approx(0.9, rel=0.03)
    assert f.filter(family="zipf")["rank_aic"][0] == 5


def test_zeros_are_dropped_and_counted_and_subsampling_is_seeded():
    x = np.concatenate([np.zeros(100), np.random.default_rng(0).exponential(1.0, 30_000)])
    f1 = wa.fit_distributions(x, families=["exponential"], max_samples=10_000, seed=3)
    f2 = wa.fit_distributions(x, families=["exponential"], max_samples=10_000, seed=3)
    assert f1["dropped"][0] == 100 and f1["n"][0] == 10_000
    assert f1["scale"][0] == f2["scale"][0]


def test_cdf_overlay_helper():
    assert wa.cdf("weibull", 8.0, 0.6, 8.0) == pytest.approx(1 - np.exp(-1))
    z = wa.cdf("zipf", np.array([1, 2, 3]), 2.0, None, xmin=1)
    assert z == pytest.approx(np.cumsum(stats.zipf(2.0).pmf([1, 2, 3])))


def test_fit_interarrivals_per_group_and_errors():
    rng = np.random.default_rng(9)
    df = pl.concat([
        pl.DataFrame({"trace": "a", "arrival_s": np.cumsum(rng.gamma(0.5, 2.0, 20_000))}),
        pl.DataFrame({"trace": "b", "arrival_s": np.cumsum(rng.exponential(1.0, 20_000))}),
    ])
    f = wa.fit_interarrivals(df)
    best = {r["trace"]: r["family"] for r in f.filter(rank_aic=1).iter_rows(named=True)}
    assert best["a"] == "gamma"
    assert f.filter(trace="a", family="gamma")["shape"][0] == pytest.approx(0.5, rel=0.05)
    with pytest.raises(AnalysisError, match="discrete"):
        wa.fit_distributions([1.0, 2.0], families=["zipf"])
    with pytest.raises(AnalysisError, match="at least 10"):
        wa.fit_distributions([1.0, 2.0])
