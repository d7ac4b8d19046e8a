"""Out-of-core analysis (wattlas.analysis._stream): the same statistics as the in-memory numpy
path, and a DuckDB memory limit that makes it spill rather than fail."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from wattlas import analysis
from wattlas.analysis import Input
from wattlas.analysis._stream import StreamTimes
from wattlas.analysis.report_llm import _PROBS
from wattlas.errors import AnalysisError

REL = 1e-12


def _frame(n: int = 30_000, *, whole: bool, in_order: bool, seed: int = 3) -> pl.DataFrame:
    """Three traces, rows interleaved; tokens with nulls, failures with unknown flags."""
    rng = np.random.default_rng(seed)
    trace = rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])
    t = np.empty(n)
    for tr in ("a", "b", "c"):
        m = trace == tr
        gaps = rng.gamma(0.3, 20.0, m.sum())
        t[m] = np.cumsum(gaps) + (5000.0 if tr == "c" else 0.0)
    if whole:
        t = np.floor(t)
    if not in_order:
        t = rng.permutation(t)  # still one trace's rows interleaved with the others'
    inp_tok = np.round(rng.lognormal(5, 1.2, n)).astype(np.int64)
    out_tok = np.round(rng.lognormal(4, 1.0, n)).astype(np.int64)
    failed = out_tok == 0
    df = pl.DataFrame({
        "source": ["s"] * n, "trace": trace, "arrival_s": t,
        "model": rng.choice(["m1", "m2"], size=n), "log_type": rng.choice(["x", "y"], size=n),
        "input_tokens": inp_tok, "output_tokens": out_tok, "failed": failed,
    })
    nulls = rng.uniform(size=n) < 0.01
    return df.with_columns(
        pl.when(pl.Series(nulls)).then(None).otherwise(pl.col("output_tokens")).alias("output_tokens"),
        pl.when(pl.Series(rng.uniform(size=n) < 0.02)).then(None).otherwise(pl.col("failed")).alias("failed"),
        pl.when(pl.Series(rng.uniform(size=n) < 0.005)).then(None).otherwise(pl.col("arrival_s")).alias("arrival_s"),
    )


def _statistics(inp: Input) -> dict[str, pl.DataFrame]:
    by = ["source", "trace"]
    fine = [*by, "model", "log_type"]
    from wattlas.analysis.arrivals import _gap_quantiles

    return {
        "interarrival_stats": analysis.interarrival_stats(inp, by=by),
        "gap_cdf": _gap_quantiles(inp, by, [float(p) for p in _PROBS]).explode("q"),
        "rate_60": analysis.arrival_rate(inp, bin_s=60.0, by=by),
        "rate_7": analysis.arrival_rate(inp, bin_s=7.0, by=by),  # a size no pass computed before
        "dispersion": analysis.dispersion_index(inp, windows_s=[1.0, 10.0, 60.0, 600.0], by=by),
        "bursts": analysis.bursts(inp, bin_s=60.0, by=by),
        "periodicity": analysis.periodicity(inp, bin_s=60.0, by=by),
        "profile": analysis.profile(inp, period_s=3600.0, bin_s=600.0, by=by),
        "token_stats": analysis.token_stats(inp, by=by),
        "token_stats_fine": analysis.token_stats(inp, by=fine),
        "failure_rates": analysis.failure_rates(inp, by=fine),
        "correlation": analysis.token_correlation(inp, by=by),
        "histogram": analysis.token_histogram(inp, column="input_tokens", by=by),
        "joint": analysis.token_joint_histogram(inp, bins_per_decade=8, by=by),
        "fit_gaps": analysis.fit_interarrivals(inp, by=by, max_samples=2_000, families=["exponential", "gamma"]),
        "fit_tokens": analysis.fit_column(inp, column="output_tokens", by=by, discrete=True, max_samples=2_000,
                                          families=["lognormal", "zipf"]),
        "totals": analysis.token_stats(inp, by=[]),
    }


def _max_rel_diff(a: pl.DataFrame, b: pl.DataFrame, name: str) -> float:
    assert a.schema == b.schema, name
    assert a.height == b.height, name
    worst = 0.0
    for col in a.columns:
        x, y = a[col], b[col]
        if x.dtype.is_numeric():
            xs, ys = x.to_list(), y.to_list()
            for u, v in zip(xs, ys, strict=True):
                if u is None or v is None or (isinstance(u, float) and math.isnan(u)):
                    assert (u is None) == (v is None), (name, col)
                    continue
                d = abs(u - v) / max(abs(u), abs(v), 1e-300) if u != v else 0.0
                worst = max(worst, d)
        else:
            assert x.to_list() == y.to_list(), (name, col)
    return worst


@pytest.mark.parametrize(("whole", "in_order"), [(True, True), (False, True), (True, False), (False, False)])
def test_streamed_statistics_equal_the_numpy_path(whole: bool, in_order: bool) -> None:
    """Whole-second times (gap bincount) and fractional ones (gaps sorted out of core), stored in
    arrival order (streamed as they are) or not (DuckDB sorts them)."""
    df = _frame(whole=whole, in_order=in_order)
    old = _statistics(Input(df, engine="numpy"))
    inp = Input(df)
    new = _statistics(inp)
    tm = inp._cache[("stream-times", ("source", "trace"), "arrival_s")]
    assert isinstance(tm, StreamTimes)
    assert tm.whole is whole
    assert tm.sorted_in_place is in_order
    worst = {name: _max_rel_diff(old[name], new[name], name) for name in old}
    assert max(worst.values()) <= REL, worst
    inp.close()


def test_fractional_gaps_come_from_the_sorted_spill() -> None:
    """Quantiles of gaps that are not whole seconds are order statistics read back from the
    out-of-core sort, including the share of zero gaps that the positive-gap CDF skips."""
    t = np.array([0.0, 0.5, 0.5, 0.5, 2.0, 2.25, 7.0])
    inp = Input(pl.DataFrame({"arrival_s": t}))
    s = analysis.interarrival_stats(inp)
    gaps = np.diff(t)
    assert s["gap_p50_s"][0] == np.quantile(gaps, 0.5)
    assert s["gap_p90_s"][0] == np.quantile(gaps, 0.9)
    assert s["zero_gap_share"][0] == 2 / 6
    tm = inp._cache[("stream-times", (), "arrival_s")]
    assert tm.sorted_gaps is not None and tm.sorted_gaps.path is not None
    g = tm.groups[0]
    assert g.gap_quantiles([0.0, 0.5, 1.0], positive=True) == list(np.quantile(gaps[gaps > 0], [0.0, 0.5, 1.0]))


def test_tiny_memory_limit_spills_instead_of_failing(tmp_path, monkeypatch) -> None:
    """With DuckDB limited to 24 MB, out-of-order times (an ORDER BY of 1M rows that does not
    fit: without a directory to spill to, the same query fails) and fractional gaps (an
    out-of-core sort) go through the analysis's temporary directory, and the statistics still
    equal the numpy path's."""
    import duckdb

    n = 1_000_000
    rng = np.random.default_rng(0)
    t = rng.permutation(np.cumsum(rng.exponential(0.01, n)))
    df = pl.DataFrame({"trace": rng.choice(["a", "b"], n), "arrival_s": t})
    old = analysis.interarrival_stats(Input(df, engine="numpy"), by=["trace"])
    monkeypatch.setenv("WATTLAS_ANALYSIS_MEMORY", "24MB")
    monkeypatch.setenv("WATTLAS_ANALYSIS_TMP", str(tmp_path))
    inp = Input(df)
    limit = inp.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert limit.startswith(("22.", "24")), limit
    sql = "SELECT trace, arrival_s FROM _input ORDER BY trace, arrival_s"
    con = duckdb.connect()
    con.execute("SET memory_limit = '24MB'; SET temp_directory = ''")
    con.register("_input", df.to_arrow())
    with pytest.raises(duckdb.OutOfMemoryException):
        con.execute(sql).fetch_df_chunk(1)
    new = analysis.interarrival_stats(inp, by=["trace"])
    tm = inp._cache[("stream-times", ("trace",), "arrival_s")]
    assert tm.sorted_in_place is False  # the times were sorted by DuckDB under the limit
    assert _max_rel_diff(old, new, "interarrival_stats") <= REL
    assert tm.sorted_gaps is not None and str(tm.sorted_gaps.path).startswith(str(tmp_path))
    inp.close()
    assert not any(tmp_path.iterdir()), "close() leaves no temporary files"


def test_unknown_engine_is_an_error() -> None:
    with pytest.raises(AnalysisError, match="engine must be"):
        Input(pl.DataFrame({"arrival_s": [0.0]}), engine="pandas")
