"""Serverless workloads: invocation rates per function, durations, memory, cold starts.

Tables (issue-4 schemas): ``function_invocations`` (non-zero per-minute or per-second bins per
function), ``function_durations`` and ``app_memory`` (Azure 2019 daily per-function/app
percentiles), ``function_events`` (one row per invocation), ``cold_starts`` (Huawei 2025).

Definitions:

- A function is identified by ``(owner_id, app_id, function_id)`` within its source and trace
  (columns absent from the input are left out of the key).
- **daily invocation rate** of a function: its invocations divided by the number of days of
  the trace (distinct ``day_index`` over the whole trace, or the span in days rounded up when
  there is no ``day_index``), as in *Serverless in the Wild* (ATC'20) Fig. 5. The shares
  "invoked at most once per hour / per minute on average" compare it with 24 and 1,440.
- **cold-start components**: mean of each component over the mean total, per group.
- **cold-start rate**: cold starts / invocations of the same function over the same days.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import AnalysisError
from ._data import Data, as_input, by_clause, order_clause, qi, select_list
from .distributions import fit_column, fit_interarrivals

if TYPE_CHECKING:
    import polars as pl

DEFAULT_BY = ("source", "trace")
FUNCTION_KEY = ("owner_id", "app_id", "function_id")
COLD_START_PARTS = ("pod_allocation_s", "deploy_code_s", "deploy_dependency_s", "scheduling_s")

__all__ = [
    "cold_start_breakdown", "cold_start_fits", "cold_start_rate", "cold_start_stats", "duration_stats",
    "function_invocation_rates", "invocation_shares", "memory_stats",
]


def _key(inp) -> list[str]:
    key = [c for c in FUNCTION_KEY if inp.has(c)]
    if not key:
        raise AnalysisError(f"need a function key column ({', '.join(FUNCTION_KEY)}); input has {inp.columns}")
    return key


def function_invocation_rates(
    data: Data = None, *, by: Sequence[str] | None = None, **select
) -> pl.DataFrame:
    """Invocations per function and its mean daily / per-minute rate.

    Columns: ``by...``, the function key, ``invocations``, ``active_bins``, ``trace_days``,
    ``invocations_per_day``, ``invocations_per_minute``.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"function_id": ["f", "f", "g"], "day_index": [1, 2, 1],
    ...                    "time_s": [0, 60, 0], "invocations": [10, 14, 1]})
    >>> function_invocation_rates(df).select(
    ...     "function_id", "invocations", "invocations_per_day").rows()
    [('f', 24, 12.0), ('g', 1, 0.5)]
    """
    inp = as_input(data, **{"table": "function_invocations", **select})
    cols = inp.group_by(by, DEFAULT_BY)
    inp.require("invocations", what="function_invocation_rates")
    key = _key(inp)
    if inp.has("day_index"):
        days = "count(DISTINCT day_index)"
    else:
        inp.require("time_s", what="function_invocation_rates (without day_index)")
        days = "ceil((max(time_s) - min(time_s) + 1) / 86400.0)"
    sel = select_list(cols)
    join = f"JOIN d USING ({', '.join(qi(c) for c in cols)})" if cols else "CROSS JOIN d"
    return inp.sql(
        f"""
        WITH d AS (SELECT {sel}{days}::DOUBLE AS trace_days FROM _input {by_clause(cols)}),
        f AS (SELECT {sel}{select_list(key)}sum(invocations)::BIGINT AS invocations, count(*) AS active_bins
              FROM _input GROUP BY {', '.join(qi(c) for c in cols + key)})
        SELECT f.*, trace_days, invocations / trace_days AS invocations_per_day,
               invocations / trace_days / 1440 AS invocations_per_minute
        FROM f {join} {order_clause(cols, 'invocations DESC', *[qi(k) for k in key])}
        """
    )


def invocation_shares(data: Data = None, *, by: Sequence[str] | None = None, **select) -> pl.DataFrame:
    """Per group: how concentrated invocations are across functions.

    Columns: ``functions``, ``invocations``, ``share_at_most_1_per_hour`` (functions whose mean
    rate is <= 24/day), ``share_at_most_1_per_minute`` (<= 1,440/day),
    ``share_more_than_1_per_minute``, ``top_1pct_invocation_share`` (share of invocations from
    the busiest 1 % of functions), ``rate_p50_per_day``, ``rate_p90_per_day``, ``rate_p99_per_day``.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"function_id": ["a", "b"], "day_index": [1, 1], "time_s": [0, 0],
    ...                    "invocations": [10, 5000]})
    >>> invocation_shares(df).select(
    ...     "functions", "share_at_most_1_per_hour", "share_more_than_1_per_minute").row(0)
    (2, 0.5, 0.5)
    """
    rates = function_invocation_rates(data, by=by, **select)
    inp = as_input(rates)
    cols = [c for c in (by if by is not None else DEFAULT_BY) if c in rates.columns]
    sel = select_list(cols)
    part = ("PARTITION BY " + ", ".join(qi(c) for c in cols)) if cols else ""
    return inp.sql(
        f"""
        WITH r AS (
            SELECT *, row_number() OVER ({part} ORDER BY invocations DESC) AS rk,
                   count(*) OVER ({part}) AS nf
            FROM _input
        )
        SELECT {sel}count(*) AS functions, sum(invocations)::BIGINT AS invocations,
               avg(CASE WHEN invocations_per_day <= 24 THEN 1.0 ELSE 0.0 END) AS share_at_most_1_per_hour,
               avg(CASE WHEN invocations_per_day <= 1440 THEN 1.0 ELSE 0.0 END) AS share_at_most_1_per_minute,
               avg(CASE WHEN invocations_per_day > 1440 THEN 1.0 ELSE 0.0 END) AS share_more_than_1_per_minute,
               sum(invocations) FILTER (WHERE rk <= greatest(1, ceil(nf * 0.01)))::DOUBLE / sum(invocations)
                   AS top_1pct_invocation_share,
               quantile_cont(invocations_per_day, 0.5) AS rate_p50_per_day,
               quantile_cont(invocations_per_day, 0.9) AS rate_p90_per_day,
               quantile_cont(invocations_per_day, 0.99) AS rate_p99_per_day
        FROM r {by_clause(cols)} {order_clause(cols)}
        """
    )


def duration_stats(data: Data = None, *, by: Sequence[str] | None = None, table: str = "function_events",
                   **select) -> pl.DataFrame:
    """Execution-time percentiles per group.

    On ``function_events`` (one row per invocation): quantiles of ``duration_s`` over
    invocations. On ``function_durations`` (Azure 2019 daily aggregates): quantiles over
    functions of their daily ``avg_duration_s``, plain and weighted by ``executions``
    (``*_weighted``: the duration of a typical invocation rather than a typical function).

    Columns: ``rows``, ``mean_s``, ``p1_s``, ``p25_s``, ``p50_s``, ``p75_s``, ``p99_s``,
    ``max_s`` (+ ``p50_s_weighted``, ``p99_s_weighted`` for daily aggregates).

    Examples
    --------
    >>> import polars as pl
    >>> duration_stats(pl.DataFrame({"duration_s": [1.0, 2.0, 3.0]}))["p50_s"][0]
    2.0
    """
    inp = as_input(data, **{"table": table, **select})
    cols = inp.group_by(by, DEFAULT_BY)
    col = "duration_s" if inp.has("duration_s") else "avg_duration_s"
    inp.require(col, what="duration_stats")
    sel = select_list(cols)
    qs = ", ".join(f"quantile_cont({col}, {q / 100}) AS p{q}_s" for q in (1, 25, 50, 75, 99))
    weighted = ""
    if col == "avg_duration_s" and inp.has("executions"):
        # Weighted quantile: the duration at which the cumulative execution count crosses q.
        weighted = ", " + ", ".join(
            f"(SELECT min({col}) FROM (SELECT {col}, sum(executions) OVER (ORDER BY {col}) AS cw, "
            f"sum(executions) OVER () AS tw FROM _input i2 WHERE {col} IS NOT NULL AND executions > 0"
            + "".join(f" AND i2.{qi(c)} IS NOT DISTINCT FROM o.{qi(c)}" for c in cols)
            + f") WHERE cw >= {q / 100} * tw) AS p{q}_s_weighted"
            for q in (50, 99)
        )
    return inp.sql(
        f"SELECT {sel}count({col}) AS rows, avg({col}) AS mean_s, {qs}, max({col}) AS max_s{weighted} "
        f"FROM _input o WHERE {col} IS NOT NULL {by_clause(cols)} {order_clause(cols)}"
    )


def memory_stats(data: Data = None, *, by: Sequence[str] | None = None, **select) -> pl.DataFrame:
    """Allocated memory per application (``app_memory``): quantiles over apps of their daily
    average, and the median of their own p99.

    Columns: ``apps``, ``mean_mb``, ``p1_mb``, ``p25_mb``, ``p50_mb``, ``p75_mb``, ``p99_mb``,
    ``max_mb``, ``app_p99_median_mb``.

    Examples
    --------
    >>> import polars as pl
    >>> memory_stats(pl.DataFrame({"app_id": ["a", "b", "c"], "avg_allocated_mb": [100.0, 150.0, 400.0]}))["p50_mb"][0]
    150.0
    """
    inp = as_input(data, **{"table": "app_memory", **select})
    cols = inp.group_by(by, DEFAULT_BY)
    inp.require("avg_allocated_mb", what="memory_stats")
    c = "avg_allocated_mb"
    qs = ", ".join(f"quantile_cont({c}, {q / 100}) AS p{q}_mb" for q in (1, 25, 50, 75, 99))
    p99 = "median(p99_allocated_mb)" if inp.has("p99_allocated_mb") else "NULL::DOUBLE"
    apps = "count(DISTINCT app_id)" if inp.has("app_id") else "count(*)"
    return inp.sql(
        f"SELECT {select_list(cols)}{apps} AS apps, avg({c}) AS mean_mb, {qs}, max({c}) AS max_mb, "
        f"{p99} AS app_p99_median_mb FROM _input WHERE {c} IS NOT NULL {by_clause(cols)} {order_clause(cols)}"
    )


def cold_start_stats(data: Data = None, *, by: Sequence[str] | None = None, **select) -> pl.DataFrame:
    """Cold starts per group: count, functions affected, and cold-start time quantiles.

    Columns: ``cold_starts``, ``functions``, ``cold_start_mean_s``, ``cold_start_p50_s``,
    ``cold_start_p90_s``, ``cold_start_p99_s``, ``cold_start_max_s``, ``per_day``.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"function_id": ["f", "g"], "time_s": [0.0, 86399.0], "cold_start_s": [0.5, 1.5]})
    >>> cold_start_stats(df).select("cold_starts", "cold_start_p50_s", "per_day").row(0)
    (2, 1.0, 2.0)
    """
    inp = as_input(data, **{"table": "cold_starts", **select})
    cols = inp.group_by(by, DEFAULT_BY)
    inp.require("cold_start_s", "time_s", what="cold_start_stats")
    fn = "count(DISTINCT function_id)" if inp.has("function_id") else "NULL::BIGINT"
    q = ", ".join(f"quantile_cont(cold_start_s, {p / 100}) AS cold_start_p{p}_s" for p in (50, 90, 99))
    return inp.sql(
        f"SELECT {select_list(cols)}count(*) AS cold_starts, {fn} AS functions, "
        f"avg(cold_start_s) AS cold_start_mean_s, {q}, max(cold_start_s) AS cold_start_max_s, "
        f"count(*) / greatest(1, ceil((max(time_s) - min(time_s)) / 86400.0)) AS per_day "
        f"FROM _input {by_clause(cols)} {order_clause(cols)}"
    )


def cold_start_breakdown(data: Data = None, *, by: Sequence[str] | None = None, **select) -> pl.DataFrame:
    """Cold-start time by component (pod allocation, code and dependency deployment, scheduling).

    Long form: ``by...``, ``component``, ``mean_s``, ``p50_s``, ``p99_s``, ``share`` (mean of
    the component / mean total cold-start time), and a ``total`` row.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"cold_start_s": [1.0, 3.0], "pod_allocation_s": [0.5, 0.5],
    ...                    "deploy_code_s": [0.5, 1.5], "deploy_dependency_s": [0.0, 1.0],
    ...                    "scheduling_s": [0.0, 0.0]})
    >>> cold_start_breakdown(df).filter(component="deploy_code_s")["share"][0]
    0.5
    """
    import polars as pl

    inp = as_input(data, **{"table": "cold_starts", **select})
    cols = inp.group_by(by, DEFAULT_BY)
    parts = [c for c in COLD_START_PARTS if inp.has(c)]
    inp.require("cold_start_s", what="cold_start_breakdown")
    frames = []
    for comp in [*parts, "cold_start_s"]:
        df = inp.sql(
            f"SELECT {select_list(cols)}'{comp}' AS component, avg({qi(comp)}) AS mean_s, "
            f"quantile_cont({qi(comp)}, 0.5) AS p50_s, quantile_cont({qi(comp)}, 0.99) AS p99_s, "
            f"avg({qi(comp)}) / nullif(avg(cold_start_s), 0) AS share FROM _input {by_clause(cols)}"
        )
        frames.append(df)
    out = pl.concat(frames, how="vertical_relaxed").with_columns(
        component=pl.when(pl.col("component") == "cold_start_s").then(pl.lit("total")).otherwise("component"))
    return out.sort(cols) if cols else out


def cold_start_fits(data: Data = None, *, by: Sequence[str] | None = None, max_samples: int = 200_000,
                    **select) -> pl.DataFrame:
    """Fits of cold-start times and of the gaps between cold starts (the Huawei study reports
    lognormal and Weibull respectively). Column ``quantity``: ``cold_start_s`` or ``interarrival_s``.

    Examples
    --------
    >>> import numpy as np, polars as pl
    >>> rng = np.random.default_rng(0)
    >>> df = pl.DataFrame({"time_s": np.cumsum(rng.weibull(0.6, 3000)), "cold_start_s": rng.lognormal(0, 1, 3000)})
    >>> f = cold_start_fits(df).filter(rank_aic=1)
    >>> dict(zip(f["quantity"], f["family"]))
    {'cold_start_s': 'lognormal', 'interarrival_s': 'weibull'}
    """
    import polars as pl

    inp = as_input(data, **{"table": "cold_starts", **select})
    cols = inp.group_by(by, DEFAULT_BY)
    a = fit_column(inp, column="cold_start_s", by=cols, max_samples=max_samples)
    b = fit_interarrivals(inp, by=cols, time_col="time_s", max_samples=max_samples)
    frames = [f.select(pl.lit(q).alias("quantity"), *f.columns) for q, f in
              (("cold_start_s", a), ("interarrival_s", b)) if f.height]
    return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()


def cold_start_rate(
    cold: Data = None, invocations: Data = None, *, per_function: bool = False, store=None, source: str | None = None,
) -> pl.DataFrame:
    """Cold starts per invocation, over the days both tables cover.

    ``cold`` is ``cold_starts`` rows; ``invocations`` has per-bin ``invocations`` of the same
    functions (``function_invocations``). Joined on ``function_id`` (and ``source`` when
    present) and on ``day_index``. Returns one row per source (or per function with
    ``per_function``): ``cold_starts``, ``invocations``, ``cold_start_rate``.

    Examples
    --------
    >>> import polars as pl
    >>> cold = pl.DataFrame({"function_id": ["f", "f"], "day_index": [0, 0], "time_s": [1.0, 2.0]})
    >>> inv = pl.DataFrame({"function_id": ["f"], "day_index": [0], "invocations": [200]})
    >>> cold_start_rate(cold, inv)["cold_start_rate"][0]
    0.01
    """
    import duckdb

    c_inp = as_input(cold, table="cold_starts", store=store, source=source)
    i_inp = as_input(invocations, table="function_invocations", store=store, source=source)
    c_inp.require("function_id", "day_index", what="cold_start_rate")
    i_inp.require("function_id", "day_index", "invocations", what="cold_start_rate")
    con = duckdb.connect()
    con.register("c", c_inp.sql("SELECT * FROM _input").to_arrow())
    con.register("i", i_inp.sql("SELECT * FROM _input").to_arrow())
    src = ["source"] if "source" in c_inp.columns and "source" in i_inp.columns else []
    grp = src + (["function_id"] if per_function else [])
    return _rate(con, src, grp)


def _rate(con, src, grp):
    dk = ", ".join(src + ["day_index"])
    k = ", ".join(src + ["function_id", "day_index"])
    g = ", ".join(grp)
    return con.sql(
        f"""
        WITH days AS (SELECT DISTINCT {dk} FROM c INTERSECT SELECT DISTINCT {dk} FROM i),
             cc AS (SELECT {k}, count(*) AS n FROM c JOIN days USING ({dk}) GROUP BY {k}),
             ii AS (SELECT {k}, sum(invocations) AS n FROM i JOIN days USING ({dk}) GROUP BY {k}),
             j AS (SELECT {k}, coalesce(cc.n, 0) AS cold_starts, coalesce(ii.n, 0) AS invocations
                   FROM ii FULL JOIN cc USING ({k}))
        SELECT {g + ', ' if g else ''}sum(cold_starts)::BIGINT AS cold_starts,
               sum(invocations)::BIGINT AS invocations,
               sum(cold_starts) / nullif(sum(invocations), 0) AS cold_start_rate
        FROM j {('GROUP BY ' + g) if g else ''} {('ORDER BY ' + g) if g else ''}
        """
    ).pl()
