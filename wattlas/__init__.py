"""wattlas: public AI-infrastructure traces and real GPU measurements in one queryable store.

Examples
--------
>>> import wattlas
>>> con = wattlas.connect(store=tmp_store)          # doctest: +SKIP
>>> wattlas.sql("select trace, count(*) from llm_requests group by trace")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb
    import polars as pl

try:
    __version__ = version("wattlas")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "connect", "sql"]


def connect(store: str | os.PathLike[str] | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with every table of ``store`` (default store if None) as a view."""
    from .store import Store

    return Store(store).connect()


def sql(query: str, store: str | os.PathLike[str] | None = None) -> pl.DataFrame:
    """Run ``query`` against ``store`` and return a polars DataFrame."""
    from .store import Store

    return Store(store).sql(query)
