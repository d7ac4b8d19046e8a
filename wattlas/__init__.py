"""wattlas: public AI-infrastructure traces and real GPU measurements in one queryable store.

Examples
--------
>>> import wattlas
>>> con = wattlas.connect(store=tmp_store)          # doctest: +SKIP
>>> wattlas.sql("select trace, count(*) from llm_requests group by trace")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    import duckdb
    import polars as pl

#: The installed package's version; read on first use (importlib.metadata costs every command
#: 25-30 ms of start-up, and only --version and the files that record it need it).
__version__: str

__all__ = ["__version__", "connect", "sql"]


def __getattr__(name: str) -> str:
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("wattlas")
    except PackageNotFoundError:  # running from a source tree without installing
        found = "0.0.0+unknown"
    globals()["__version__"] = found
    return found


def connect(store: str | os.PathLike[str] | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with every table of ``store`` (default store if None) as a view."""
    from .store import Store

    return Store(store).connect()


def sql(
    query: str,
    store: str | os.PathLike[str] | None = None,
    *,
    allow_writes: bool = False,
    allow_read: Sequence[str | os.PathLike[str]] = (),
) -> pl.DataFrame:
    """Run a read-only ``query`` against ``store`` and return a polars DataFrame.

    Like ``wattlas sql``: reading statements only, no file outside the store's tables unless named
    in ``allow_read``, and ``COPY ... TO`` only with ``allow_writes`` and never into the store
    (:class:`~wattlas.errors.QueryRefusedError` otherwise). :func:`connect` gives an unrestricted
    connection for code you trust.
    """
    from .sqlguard import run_query
    from .store import Store

    return run_query(query, Store(store), allow_writes=allow_writes, allow_read=allow_read)
