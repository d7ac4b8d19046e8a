"""Serverless and HPC/GPU analyses on frames shaped like the issue-4 tables, checked against
pandas/numpy computations of the same definitions, and their reports rendered in Chromium."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from wattlas import analysis as wa
from wattlas.analysis import hpc, serverless
from wattlas.analysis.report import build_report

from . import _browser

RNG = np.random.default_rng(2024)


@pytest.fixture(scope="module")
def invocations() -> pl.DataFrame:
    """14 days of per-minute non-zero bins for 300 functions with heavy-tailed daily rates."""
    n_fn, days = 300, 14
    per_day = np.exp(RNG.normal(3, 2.5, n_fn))                     # mean invocations/day per function
    rows = []
    for f in range(n_fn):
        counts = RNG.poisson(per_day[f] / 1440, size=days * 1440)
        idx = np.nonzero(counts)[0]
        rows.append(pd.DataFrame({"function_id": f"f{f}", "app_id": f"a{f % 40}", "owner_id": f"o{f % 7}",
                                  "day_index": idx // 1440 + 1, "time_s": idx * 60, "invocations": counts[idx]}))
    df = pd.concat(rows, ignore_index=True).assign(source="azure-functions-2019", trace="2019", bin_s=60)
    return pl.from_pandas(df)


def test_invocation_rates_and_shares_match_pandas(invocations):
    pdf = invocations.to_pandas()
    per_fn = pdf.groupby(["owner_id", "app_id", "function_id"])["invocations"].sum()
    days = pdf["day_index"].nunique()
    rate = per_fn / days
    r = serverless.function_invocation_rates(invocations)
    assert r.height == per_fn.size
    got = dict(zip(r["function_id"], r["invocations_per_day"], strict=True))
    for (_, _, f), v in rate.items():
        assert got[f] == pytest.approx(v)
    s = serverless.invocation_shares(invocations).row(0, named=True)
    assert s["functions"] == per_fn.size
    assert s["share_at_most_1_per_hour"] == pytest.approx((rate <= 24).mean())
    assert s["share_at_most_1_per_minute"] == pytest.approx((rate <= 1440).mean())
    top = per_fn.sort_values(ascending=False).head(int(np.ceil(per_fn.size * 0.01)))
    assert s["top_1pct_invocation_share"] == pytest.approx(top.sum() / per_fn.sum())
    assert s["rate_p50_per_day"] == pytest.approx(np.quantile(rate, 0.5))
    # Weighted rate series: invocations per 10-minute bin, empty bins included.
    ser = wa.arrival_rate(invocations, bin_s=600, time_col="time_s", weight_col="invocations")
    expected = pdf.groupby(pdf["time_s"] // 600)["invocations"].sum()
    assert ser.height == expected.index.max() - expected.index.min() + 1
    assert ser["requests"].sum() == pytest.approx(pdf["invocations"].sum())


def test_durations_and_memory_percentiles():
    d = pl.DataFrame({"function_id": [f"f{i}" for i in range(500)],
                      "avg_duration_s": RNG.lognormal(-1, 1.5, 500), "executions": RNG.integers(1, 1000, 500)})
    s = serverless.duration_stats(d).row(0, named=True)
    v = d["avg_duration_s"].to_numpy()
    assert s["p50_s"] == pytest.approx(np.quantile(v, 0.5)) and s["p99_s"] == pytest.approx(np.quantile(v, 0.99))
    order = np.argsort(v)
    cw = np.cumsum(d["executions"].to_numpy()[order])
    assert s["p50_s_weighted"] == pytest.approx(v[order][np.searchsorted(cw, 0.5 * cw[-1])])
    ev = pl.DataFrame({"duration_s": RNG.exponential(0.3, 10_000)})
    assert serverless.duration_stats(ev)["p75_s"][0] == pytest.approx(np.quantile(ev["duration_s"].to_numpy(), 0.75))
    m = pl.DataFrame({"app_id": [f"a{i}" for i in range(200)], "avg_allocated_mb": RNG.normal(170, 40, 200),
                      "p99_allocated_mb": RNG.normal(250, 40, 200)})
    ms = serverless.memory_stats(m).row(0, named=True)
    assert ms["apps"] == 200 and ms["p25_mb"] == pytest.approx(np.quantile(m["avg_allocated_mb"].to_numpy(), 0.25))
    assert ms["app_p99_median_mb"] == pytest.approx(np.median(m["p99_allocated_mb"].to_numpy()))


@pytest.fixture(scope="module")
def cold_starts() -> pl.DataFrame:
    """Huawei-2025-shaped cold starts: Weibull(0.7) gaps, lognormal times split into 4 parts."""
    n = 20_000
    t = np.cumsum(5.0 * RNG.weibull(0.7, n))
    total = RNG.lognormal(np.log(0.8), 1.0, n)
    w = RNG.dirichlet([1, 4, 2, 1], n)
    parts = total[:, None] * w
    return pl.DataFrame({
        "source": "huawei-2025", "trace": "R2", "function_id": RNG.choice([f"f{i}" for i in range(50)], n),
        "day_index": (t // 86400).astype(np.int32), "time_s": t, "cold_start_s": total,
        "pod_allocation_s": parts[:, 0], "deploy_code_s": parts[:, 1], "deploy_dependency_s": parts[:, 2],
        "scheduling_s": parts[:, 3],
    })


def test_cold_start_statistics_breakdown_and_fits(cold_starts):
    s = serverless.cold_start_stats(cold_starts).row(0, named=True)
    v = cold_starts["cold_start_s"].to_numpy()
    assert s["cold_starts"] == v.size and s["functions"] == 50
    assert s["cold_start_p99_s"] == pytest.approx(np.quantile(v, 0.99))
    b = serverless.cold_start_breakdown(cold_starts)
    shares = dict(zip(b["component"], b["share"], strict=True))
    assert sum(shares[c] for c in serverless.COLD_START_PARTS) == pytest.approx(1.0)
    assert shares["deploy_code_s"] == pytest.approx(cold_starts["deploy_code_s"].mean() / v.mean())
    f = serverless.cold_start_fits(cold_starts)
    best = {r["quantity"]: r for r in f.filter(rank_aic=1).iter_rows(named=True)}
    assert best["cold_start_s"]["family"] == "lognormal"
    assert best["cold_start_s"]["shape"] == pytest.approx(1.0, rel=0.05)
    assert best["interarrival_s"]["family"] == "weibull"
    assert best["interarrival_s"]["shape"] == pytest.approx(0.7, rel=0.05)


def test_cold_start_rate_joins_on_function_and_day(cold_starts):
    inv = (cold_starts.group_by("source", "function_id", "day_index").len()
           .with_columns(invocations=pl.col("len") * 40).drop("len"))
    extra_day = inv.head(1).with_columns(day_index=pl.lit(9999, pl.Int32))   # no cold starts recorded that day
    r = serverless.cold_start_rate(cold_starts, pl.concat([inv, extra_day]))
    assert r["cold_start_rate"][0] == pytest.approx(1 / 40)
    per = serverless.cold_start_rate(cold_starts, inv, per_function=True)
    assert per.height == 50 and np.allclose(per["cold_start_rate"].to_numpy(), 1 / 40)


@pytest.fixture(scope="module")
def gpu_samples() -> pl.DataFrame:
    frames = []
    for job in range(30):
        for gpu in range(2):
            n = 600
            busy = job % 5 != 0 or gpu == 0          # every 5th job leaves its second GPU idle
            util = np.clip(RNG.normal(70, 15, n), 0, 100) if busy else np.zeros(n)
            frames.append(pl.DataFrame({
                "source": "supercloud", "job_id": job, "node": f"r1-n{job % 4}", "gpu_index": gpu,
                "time_s": 1.6e9 + np.arange(n) * 0.1, "utilization_gpu_pct": util,
                "memory_used_mib": np.full(n, 8000.0 if busy else 300.0),
                "power_w": 50 + 2.5 * util + RNG.normal(0, 3, n),
            }).with_columns(pl.col("gpu_index").cast(pl.Int32)))
    return pl.concat(frames)


def test_gpu_usage_and_idle_share(gpu_samples):
    pdf = gpu_samples.to_pandas()
    g = pdf.groupby(["job_id", "node", "gpu_index"]).agg(u=("utilization_gpu_pct", "mean"), p=("power_w", "mean"))
    per = hpc.gpu_usage(gpu_samples)
    assert per.height == len(g)
    assert np.allclose(np.sort(per["util_mean_pct"].to_numpy()), np.sort(g["u"].to_numpy()))
    s = hpc.gpu_stats(gpu_samples).row(0, named=True)
    assert s["gpus"] == 60 and s["jobs"] == 30
    assert s["idle_gpu_share"] == pytest.approx((g["u"] < 1).mean()) == pytest.approx(6 / 60)
    assert s["util_p90_pct"] == pytest.approx(np.quantile(pdf["utilization_gpu_pct"], 0.9))
    assert s["power_mean_w"] == pytest.approx(pdf["power_w"].mean())
    jobs = hpc.gpu_usage(gpu_samples, level="job")
    assert jobs.filter(job_id=5)["idle_gpu_share"][0] == 0.5 and jobs.filter(job_id=6)["idle_gpu_share"][0] == 0.0


def test_job_statistics():
    n = 5000
    df = pl.DataFrame({"source": "supercloud", "job_id": np.arange(n), "wait_s": RNG.exponential(300, n).astype(int),
                       "run_s": RNG.lognormal(7, 2, n).astype(int), "gpus": RNG.choice([0, 0, 1, 2], n),
                       "cpus": RNG.choice([1, 4, 20, 40], n), "state": RNG.choice(["COMPLETED", "FAILED"], n)})
    s = hpc.job_stats(df).row(0, named=True)
    pdf = df.to_pandas()
    assert s["gpu_jobs"] == (pdf["gpus"] > 0).sum()
    assert s["run_s_p90"] == pytest.approx(np.quantile(pdf["run_s"], 0.9))
    assert s["gpu_hours"] == pytest.approx((pdf["gpus"] * pdf["run_s"]).sum() / 3600)
    h = hpc.job_histogram(df, column="wait_s", bins_per_decade=5)
    assert h["requests"].sum() == n


def test_cluster_reports_render(tmp_path, cold_starts, gpu_samples, invocations):
    out = build_report("cold_starts", tmp_path / "cold.html", data=cold_starts)
    res = _browser.render(out, tmp_path / "cold.png")
    assert res["errors"] == [] and res["console_errors"] == [] and res["drawn"] == res["figures"] >= 3
    for table, data in (("gpu_samples", gpu_samples), ("function_invocations", invocations)):
        page = build_report(table, tmp_path / f"{table}.html", data=data).read_text()
        assert page.count('class="plotly-graph-div"') >= 1
    jobs = pl.DataFrame({"job_id": [1, 2, 3], "wait_s": [0, 10, 100], "run_s": [5, 50, 5000], "gpus": [0, 1, 2],
                         "cpus": [1, 2, 4], "state": ["COMPLETED", "FAILED", "COMPLETED"]})
    assert "Jobs by state" in build_report("hpc_jobs", tmp_path / "jobs.html", data=jobs).read_text()
