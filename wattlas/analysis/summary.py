"""Per-trace headline statistics of ``llm_requests`` (the quickstart prints these).

Definitions (from :func:`~wattlas.analysis.interarrival_stats` and
:func:`~wattlas.analysis.token_stats`, the same code the report's overview uses):

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

COLUMNS = ("source", "trace", "requests", "span_s", "mean_rate_per_s", "interarrival_cv",
           "input_tokens_p50", "input_tokens_p99", "output_tokens_p50", "output_tokens_p99")


def trace_summary(con: duckdb.DuckDBPyConnection, source: str | None = None) -> pl.DataFrame:
    """One row per (source, trace): requests, span, mean rate, inter-arrival CV, token p50/p99.

    Examples
    --------
    >>> import wattlas                                             # doctest: +SKIP
    >>> trace_summary(wattlas.connect(), "azure-llm-2023")        # doctest: +SKIP
    """
    from ._data import Input
    from .arrivals import interarrival_stats
    from .requests import token_stats

    by = ["source", "trace"]
    inp = Input(con=con, table="llm_requests", source=source)
    gaps = interarrival_stats(inp, by=by)
    tokens = token_stats(inp, by=by, quantiles=(0.5, 0.99)).drop("requests")
    return gaps.join(tokens, on=by, how="left").select(COLUMNS).sort(by)
