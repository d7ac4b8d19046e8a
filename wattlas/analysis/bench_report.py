"""Registers the bench figures as the report of ``bench_results`` (and its sibling tables).

``wattlas.analysis.report`` collects ``REPORTS`` from every module of this package; the figures
themselves live in :mod:`wattlas.bench.report` and read the store through the report's DuckDB
connection.
"""

from ..bench.report import report_sections

REPORTS = {"bench_results": report_sections, "bench_runs": report_sections, "power_samples": report_sections}
