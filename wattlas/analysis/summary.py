"""Per-trace headline statistics of ``llm_requests``, computed in DuckDB.

Definitions (the quickstart prints these):

- ``span_s``: last arrival minus first arrival of the trace.
- ``mean_rate_per_s``: ``(requests - 1) / span_s``, i.e. 1 / mean inter-arrival time.
- ``interarrival_cv``: population standard deviation / mean of the gaps between consecutive
  arrivals (sorted by ``arrival_s``; equal timestamps give zero gaps).
- token quantiles: linear interpolation between order statistics (numpy's default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb
    import polars as pl

SUMMARY_SQL = """
WITH r AS (
    SELECT source, trace, arrival_s, input_tokens, output_tokens,
           arrival_s - lag(arrival_s) OVER (PARTITION BY source, trace ORDER BY arrival_s, request_id)
               AS gap_s
    FROM llm_requests {where}
)
SELECT source, trace,
       count(*) AS requests,
       max(arrival_s) - min(arrival_s) AS span_s,
       (count(*) - 1) / nullif(max(arrival_s) - min(arrival_s), 0) AS mean_rate_per_s,
       stddev_pop(gap_s) / nullif(avg(gap_s), 0) AS interarrival_cv,
       quantile_cont(input_tokens, 0.5) AS input_tokens_p50,
       quantile_cont(input_tokens, 0.99) AS input_tokens_p99,
       quantile_cont(output_tokens, 0.5) AS output_tokens_p50,
       quantile_cont(output_tokens, 0.99) AS output_tokens_p99
FROM r
GROUP BY source, trace
ORDER BY source, trace
"""


def trace_summary(con: duckdb.DuckDBPyConnection, source: str | None = None) -> pl.DataFrame:
    """One row per (source, trace): requests, span, mean rate, inter-arrival CV, token p50/p99.

    Examples
    --------
    >>> import wattlas                                             # doctest: +SKIP
    >>> trace_summary(wattlas.connect(), "azure-llm-2023")        # doctest: +SKIP
    """
    where = "WHERE source = $source" if source else ""
    params = {"source": source} if source else {}
    return con.sql(SUMMARY_SQL.format(where=where), params=params).pl()
