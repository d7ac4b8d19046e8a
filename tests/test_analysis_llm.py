"""LLM request-trace analyses against independent computations.

Real data: ../shared/data/azure_llm_2023 (skipped when absent), read here with the csv module
and numpy only, and the figures published in the Splitwise paper. Synthetic data: frames built
in the test with known answers.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from wattlas import analysis as wa
from wattlas.store import Store

SHARED_AZURE = Path(__file__).resolve().parents[2] / "shared" / "data" / "azure_llm_2023"


def _raw(trace: str) -> dict[str, np.ndarray]:
    path = SHARED_AZURE / f"AzureLLMInferenceTrace_{trace}.csv"
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    # 7 fractional digits: drop the last (always 0) so datetime parses microseconds.
    t = np.array([datetime.fromisoformat(r[0][:26]).timestamp() for r in rows])
    return {
        "t": t - t[0],
        "input": np.array([int(r[1]) for r in rows]),
        "output": np.array([int(r[2]) for r in rows]),
    }


@pytest.fixture(scope="module")
def azure_store(tmp_path_factory) -> Store:
    if not SHARED_AZURE.is_dir():
        pytest.skip(f"{SHARED_AZURE} is absent")
    from wattlas.ingest import ingest

    store = Store(tmp_path_factory.mktemp("azure") / "store")
    ingest("azure-llm-2023", [SHARED_AZURE], store=store, workers=1)
    return store


@pytest.mark.shared
@pytest.mark.parametrize("trace", ["code", "conv"])
def test_interarrival_stats_match_numpy_on_raw_csv(azure_store, trace):
    raw = _raw(trace)
    gaps = np.diff(np.sort(raw["t"]))
    s = wa.interarrival_stats(store=azure_store, source="azure-llm-2023", trace=trace).row(0, named=True)
    assert s["requests"] == raw["t"].size
    assert s["span_s"] == pytest.approx(raw["t"].max() - raw["t"].min(), abs=1e-5)
    assert s["gap_mean_s"] == pytest.approx(gaps.mean(), rel=1e-9)
    assert s["gap_cv"] == pytest.approx(gaps.std() / gaps.mean(), rel=1e-6)
    for q, col in ((0.5, "gap_p50_s"), (0.9, "gap_p90_s"), (0.99, "gap_p99_s")):
        assert s[col] == pytest.approx(np.quantile(gaps, q), rel=1e-6, abs=1e-6)
    assert s["gap_max_s"] == pytest.approx(gaps.max(), abs=1e-5)


@pytest.mark.shared
def test_code_trace_longest_gap_and_empty_minutes(azure_store):
    # traces.md: the code trace's longest gap is 217.17 s and 13 floor-minutes are empty.
    s = wa.interarrival_stats(store=azure_store, trace="code")
    assert s["gap_max_s"][0] == pytest.approx(217.17, abs=0.01)
    raw = _raw("code")
    minutes = np.floor(raw["t"] / 60).astype(int)
    expected = np.bincount(minutes - minutes.min())
    rate = wa.arrival_rate(store=azure_store, trace="code", bin_s=60)
    assert rate["requests"].to_list() == expected.tolist()
    assert (rate["requests"] == 0).sum() == (expected == 0).sum() > 0


@pytest.mark.shared
@pytest.mark.parametrize("trace", ["code", "conv"])
def test_token_stats_match_numpy(azure_store, trace):
    raw = _raw(trace)
    s = wa.token_stats(store=azure_store, trace=trace).row(0, named=True)
    for col, key in (("input_tokens", "input"), ("output_tokens", "output")):
        for q in (0.5, 0.9, 0.99):
            assert s[f"{col}_p{q * 100:g}"] == pytest.approx(np.quantile(raw[key], q))
        assert s[f"{col}_mean"] == pytest.approx(raw[key].mean())
        assert s[f"{col}_max"] == raw[key].max()
    assert s["failed_share"] is None  # Azure records no failures
    c = wa.token_correlation(store=azure_store, trace=trace).row(0, named=True)
    assert c["pearson"] == pytest.approx(np.corrcoef(raw["input"], raw["output"])[0, 1], rel=1e-9)
    from scipy.stats import spearmanr

    assert c["spearman"] == pytest.approx(spearmanr(raw["input"], raw["output"]).statistic, rel=1e-9)


@pytest.mark.shared
def test_splitwise_published_medians(azure_store):
    # Splitwise (ISCA'24): code median prompt ~1,500 tokens and output 13; conversation ~1,020 and 129.
    s = {r["trace"]: r for r in wa.token_stats(store=azure_store).iter_rows(named=True)}
    assert s["code"]["input_tokens_p50"] == pytest.approx(1500, rel=0.05)
    assert s["code"]["output_tokens_p50"] == 13
    assert s["conv"]["input_tokens_p50"] == pytest.approx(1020, rel=0.02)
    assert s["conv"]["output_tokens_p50"] == 129


@pytest.mark.shared
def test_dispersion_and_histograms_match_numpy(azure_store):
    raw = _raw("conv")
    d = wa.dispersion_index(store=azure_store, trace="conv", windows_s=[10.0, 60.0])
    for w in (10.0, 60.0):
        b = np.floor(raw["t"] / w).astype(int)
        counts = np.bincount(b - b.min())
        got = d.filter(window_s=w).row(0, named=True)
        assert got["windows"] == counts.size
        assert got["dispersion_index"] == pytest.approx(counts.var() / counts.mean(), rel=1e-9)
    h = wa.token_histogram(store=azure_store, trace="conv", column="output_tokens", bins_per_decade=5)
    edges = 10 ** (np.arange(0, 6 * 5 + 1) / 5)
    expected, _ = np.histogram(raw["output"], bins=edges)
    got = dict(zip(np.round(h["bin_lo"].to_numpy(), 6), h["requests"].to_list(), strict=True))
    for lo, n in zip(np.round(edges[:-1], 6), expected, strict=False):
        assert got.get(lo, 0) == n
    j = wa.token_joint_histogram(store=azure_store, trace="conv", bins_per_decade=2)
    assert j["requests"].sum() == raw["t"].size
    assert j["share"].sum() == pytest.approx(1.0)


def test_rate_series_includes_empty_bins_per_group():
    df = pl.DataFrame({
        "source": ["s"] * 5, "trace": ["a", "a", "a", "b", "b"],
        "arrival_s": [0.1, 0.2, 5.5, 2.0, 2.9],
    })
    r = wa.arrival_rate(df, bin_s=1.0)
    a = r.filter(trace="a")
    assert a["bin_start_s"].to_list() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert a["requests"].to_list() == [2, 0, 0, 0, 0, 1]
    assert r.filter(trace="b")["requests"].to_list() == [2]
    assert a["rate_per_s"].sum() == pytest.approx(3.0)


def test_poisson_process_has_cv_and_dispersion_near_one():
    rng = np.random.default_rng(7)
    t = np.cumsum(rng.exponential(0.1, 200_000))
    s = wa.interarrival_stats(pl.DataFrame({"arrival_s": t})).row(0, named=True)
    assert s["gap_cv"] == pytest.approx(1.0, abs=0.01)
    d = wa.dispersion_index(pl.DataFrame({"arrival_s": t}), windows_s=[1.0, 10.0])
    assert d["dispersion_index"].to_numpy() == pytest.approx([1.0, 1.0], abs=0.06)
    # A bursty (gamma, CV 3) process is over-dispersed.
    g = np.cumsum(rng.gamma(1 / 9, 0.9, 200_000))
    s2 = wa.interarrival_stats(pl.DataFrame({"arrival_s": g})).row(0, named=True)
    assert s2["gap_cv"] == pytest.approx(3.0, rel=0.05)
    assert wa.dispersion_index(pl.DataFrame({"arrival_s": g}), windows_s=[10.0])["dispersion_index"][0] > 3


def test_bursts_found_where_injected():
    rng = np.random.default_rng(3)
    base = np.sort(rng.uniform(0, 3600, 3600))              # ~1/s
    burst = rng.uniform(1200, 1260, 600)                     # +10/s for one minute
    df = pl.DataFrame({"arrival_s": np.sort(np.concatenate([base, burst]))})
    b = wa.bursts(df, bin_s=60, threshold=3.0)
    assert b.height == 1
    row = b.row(0, named=True)
    assert (row["start_s"], row["end_s"]) == (1200.0, 1260.0)
    assert row["requests"] == int(((df["arrival_s"] >= 1200) & (df["arrival_s"] < 1260)).sum())


def test_periodicity_finds_a_daily_cycle():
    rng = np.random.default_rng(5)
    # 14 days of a rate that doubles in the afternoon (thinning of a 4/s Poisson process).
    t = np.cumsum(rng.exponential(0.25, int(14 * 86400 * 4.2)))
    t = t[t < 14 * 86400]
    keep = rng.uniform(size=t.size) < np.where((t % 86400) >= 43200, 1.0, 0.5)
    df = pl.DataFrame({"arrival_s": t[keep]})
    p = wa.periodicity(df, bin_s=3600).row(0, named=True)
    assert p["dominant_period_s"] == pytest.approx(86400)
    # The (biased) ACF estimator shrinks lag h by (n - h) / n: 13/14 at a day, 1/2 at a week.
    assert p["acf_1d"] == pytest.approx(13 / 14, abs=0.03)
    assert p["acf_1w"] == pytest.approx(0.5, abs=0.03)
    assert p["peak_to_mean"] == pytest.approx(4 / 3, rel=0.05)
    prof = wa.profile(df, bin_s=3600)
    assert prof.height == 24 and (prof["observed"] == 14).all()
    assert prof["relative_rate"].head(12).mean() == pytest.approx(2 / 3, rel=0.03)
    assert prof["relative_rate"].tail(12).mean() == pytest.approx(4 / 3, rel=0.03)
    assert set(prof["clock"]) == {"relative"}


def test_weekly_profile_uses_the_wall_clock_monday_first():
    # 2024-01-01 was a Monday: two weeks of one request per hour, with Sundays empty.
    start = datetime(2024, 1, 1)
    times = pl.datetime_range(start, datetime(2024, 1, 14, 23), interval="1h", eager=True)
    df = pl.DataFrame({"arrival_time": times}).with_columns(
        arrival_s=(pl.col("arrival_time") - start).dt.total_seconds().cast(pl.Float64)
    ).filter(pl.col("arrival_time").dt.weekday() != 7)
    prof = wa.profile(df, period_s=7 * 86400, bin_s=86400)
    assert set(prof["clock"]) == {"wall"}
    assert prof["requests"].to_list() == [48] * 6 + [0]


def test_failures_and_sessions():
    df = pl.DataFrame({
        "source": "burstgpt", "trace": "BurstGPT_3",
        "model": ["ChatGPT", "ChatGPT", "GPT-4", "GPT-4", "GPT-4"],
        "log_type": "Conversation log",
        "session_id": ["s1", "s1", "s2", None, "s1"],
        "arrival_s": [0.0, 10.0, 20.0, 30.0, 40.0],
        "input_tokens": [10, 20, 30, 40, 50], "output_tokens": [0, 5, 5, 0, 5],
        "failed": [True, False, False, True, False],
    })
    f = wa.failure_rates(df)
    assert f.select("model", "requests", "failed").rows() == [("ChatGPT", 2, 1), ("GPT-4", 3, 1)]
    s = wa.sessions(df)
    assert s.select("session_id", "turns", "duration_s", "gap_mean_s").rows() == [
        ("s1", 3, 40.0, 20.0), ("s2", 1, 0.0, None)]
    st = wa.session_stats(df).row(0, named=True)
    assert (st["sessions"], st["turns_max"], st["single_turn_share"]) == (2, 3, 0.5)
    assert st["gap_p50_s"] == pytest.approx(20.0)   # s1 gaps 10 and 30


def test_analyses_accept_duckdb_relations_and_filters():
    import duckdb

    con = duckdb.connect()
    rel = con.sql("SELECT 'x' AS source, 'a' AS trace, range::DOUBLE AS arrival_s, 5 AS input_tokens, "
                  "7 AS output_tokens FROM range(10)")
    assert wa.interarrival_stats(rel)["requests"][0] == 10
    assert wa.token_stats(rel, where="arrival_s < 5")["requests"][0] == 5
    from wattlas.errors import AnalysisError

    with pytest.raises(AnalysisError, match="needs column"):
        wa.token_stats(pl.DataFrame({"arrival_s": [1.0]}))
