"""Characterizations of the store's tables, computed in DuckDB, polars and numpy.

Every function takes the rows first: ``None``/a table name (then ``store=``, ``source=``,
``trace=``, ``where=`` select them), a polars/arrow frame, a DuckDB relation, or a shared
:class:`Input`. Results are polars DataFrames with units in column names.

Examples
--------
>>> import polars as pl
>>> from wattlas import analysis
>>> analysis.interarrival_stats(pl.DataFrame({"arrival_s": [0.0, 2.0, 4.0]}))["gap_mean_s"][0]
2.0
"""

from ._data import Input
from .arrivals import arrival_rate, bursts, dispersion_index, interarrival_gaps, interarrival_stats
from .distributions import FAMILIES, cdf, fit_column, fit_distributions, fit_interarrivals
from .periodicity import autocorrelation, periodicity, profile, spectrum
from .report import build_report
from .requests import (
    failure_rates,
    session_stats,
    sessions,
    token_correlation,
    token_histogram,
    token_joint_histogram,
    token_stats,
)
from .summary import trace_summary
from .workload import (
    block_hash_ids,
    export_workload,
    synthesize_workload,
    synthesize_workload_with_target,
    workload_slice,
    write_workload,
)

__all__ = [
    "FAMILIES", "Input", "arrival_rate", "autocorrelation", "bursts", "cdf", "dispersion_index",
    "failure_rates", "fit_column", "fit_distributions", "fit_interarrivals", "interarrival_gaps",
    "interarrival_stats", "periodicity", "profile", "session_stats", "sessions", "spectrum",
    "token_correlation", "token_histogram", "token_joint_histogram", "token_stats", "trace_summary",
    "block_hash_ids", "export_workload", "synthesize_workload", "synthesize_workload_with_target",
    "workload_slice", "write_workload", "build_report",
]
