"""Resolving what an analysis runs on: a store table, or a frame/relation the caller passes in.

Every public analysis takes ``data`` first. It may be

- ``None`` or a table name: that table of ``store`` (a :class:`~wattlas.store.Store`, a path, or
  ``None`` for the default store), or of an open DuckDB connection ``con`` with the store's views;
- a polars ``DataFrame``/``LazyFrame``, a pyarrow ``Table`` or a DuckDB relation with the
  table's columns (only the columns an analysis uses need to exist);
- an :class:`Input` made once and shared by several analyses (the report does this so that
  derived tables such as inter-arrival gaps are computed once).

Inside, the rows are always a DuckDB view named ``_input``, filtered by ``source``/``trace`` and
any extra ``where`` SQL predicate, and every statistic is one SQL statement over it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import AnalysisError

if TYPE_CHECKING:
    import duckdb
    import polars as pl

    from ..store import Store
    from ._arrays import Rows

Data = Any  # None | str | pl.DataFrame | pl.LazyFrame | pa.Table | duckdb relation | Input


def qi(name: str) -> str:
    """Quote a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def qs(value: str) -> str:
    """Quote a SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


class Input:
    """Rows an analysis reads, as the DuckDB view ``_input`` on a private connection.

    Parameters
    ----------
    data
        See the module docstring.
    table
        The store table used when ``data`` is ``None``.
    store, con
        Where a table name is looked up (``con`` wins; default: the default store).
    source, trace
        Keep only rows of this source / trace (ignored when the column is absent).
    where
        An extra SQL predicate over the input's columns.
    engine
        ``"stream"`` (default): statistics in bounded memory whatever the row count, from
        DuckDB aggregates and streamed passes (see :mod:`wattlas.analysis._stream`);
        ``"numpy"``: the columns read into memory once (about 8 bytes per row and column; see
        :mod:`wattlas.analysis._arrays`). Both give the same statistics.

    Examples
    --------
    >>> import polars as pl
    >>> inp = Input(pl.DataFrame({"arrival_s": [0.0, 1.0, 3.0]}))
    >>> inp.sql("select count(*) as n from _input").item()
    3
    """

    def __init__(
        self,
        data: Data = None,
        *,
        table: str = "llm_requests",
        store: Store | str | os.PathLike[str] | None = None,
        con: duckdb.DuckDBPyConnection | None = None,
        source: str | None = None,
        trace: str | None = None,
        where: str | None = None,
        engine: str = "stream",
    ) -> None:
        import duckdb

        if engine not in ("stream", "numpy"):
            raise AnalysisError(f"engine must be 'stream' or 'numpy', not {engine!r}")
        self.engine = engine
        self.tmp_dir: str | None = None
        self.table = table
        self.source = source
        self.trace = trace
        self._cache: dict[Any, Any] = {}
        self._rows: Rows | None = None
        self._n_tmp = 0
        if isinstance(data, str) or data is None:
            self.table = data or table
            if con is not None:
                self.con = con.cursor()  # own cursor: temp views stay private to this Input
            else:
                from ..store import Store

                st = store if isinstance(store, Store) else Store(store)
                self.con = st.connect()
                self._configure()
            try:
                self.con.execute(f"CREATE OR REPLACE TEMP VIEW _raw AS SELECT * FROM {qi(self.table)}")
            except duckdb.CatalogException:
                raise AnalysisError(
                    f"table {self.table!r} does not exist in this store (this wattlas declares no such "
                    "table); pass the rows as a frame instead"
                ) from None
        else:
            self.con = duckdb.connect()
            self._configure()
            self.con.register("_raw_frame", _as_registrable(data))
            self.con.execute("CREATE OR REPLACE TEMP VIEW _raw AS SELECT * FROM _raw_frame")
        self.con.execute("SET preserve_insertion_order = false")
        self.all_columns = [r[0] for r in self.con.execute("DESCRIBE _raw").fetchall()]
        preds = []
        if source is not None and "source" in self.all_columns:
            preds.append(f"source = {qs(source)}")
        if trace is not None and "trace" in self.all_columns:
            preds.append(f"trace = {qs(trace)}")
        if where:
            preds.append(f"({where})")
        cond = (" WHERE " + " AND ".join(preds)) if preds else ""
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW _input AS SELECT * FROM _raw{cond}")
        self.columns = self.all_columns

    def _configure(self) -> None:
        """A memory limit and a temporary directory to spill to, on connections made here (a
        caller's connection keeps its own settings)."""
        import weakref

        from ._stream import cleanup, configure

        self.tmp_dir = configure(self.con)
        weakref.finalize(self, cleanup, self.tmp_dir)

    def scratch(self) -> str:
        """A private temporary directory, removed by :meth:`close` (or when the Input is freed)."""
        if self.tmp_dir is None:
            import tempfile
            import weakref

            from ._stream import cleanup

            self.tmp_dir = tempfile.mkdtemp(prefix="wattlas-analysis-")
            weakref.finalize(self, cleanup, self.tmp_dir)
        return self.tmp_dir

    # ------------------------------------------------------------------ queries
    def sql(self, query: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        """Run ``query`` (which reads ``_input`` or temp tables made here) and return polars."""
        rel = self.con.sql(query, params=params or None)
        return rel.pl()

    def temp_table(self, key: str, query: str) -> str:
        """Materialize ``query`` once as a temp table; later calls with ``key`` reuse it."""
        if key not in self._cache:
            self._n_tmp += 1
            name = f"_t{self._n_tmp}"
            self.con.execute(f"CREATE TEMP TABLE {name} AS {query}")
            self._cache[key] = name
        return self._cache[key]

    def rows(self, exprs: Sequence[str], groupings: Sequence[Sequence[str]] = ((),)) -> Rows:
        """The values of SQL expressions ``exprs`` and the groups of ``groupings``, as numpy arrays.

        Read in one scan and kept: later calls asking for a subset reuse the snapshot; asking
        for more re-reads everything asked so far in one query, so that every array of a
        snapshot always comes from the same rows in the same order. A report asks for all it
        needs first. See :mod:`wattlas.analysis._arrays`.
        """
        from ._arrays import load_rows

        bys = [tuple(b) for b in groupings]
        if self._rows is not None and self._rows.covers(exprs, bys):
            return self._rows
        if self._rows is not None:
            exprs = list(dict.fromkeys([*self._rows.columns, *exprs]))
            bys = list(dict.fromkeys([*self._rows.groupings, *bys]))
            self._rows = None  # free the old arrays before reading the new ones
            self._cache = {k: v for k, v in self._cache.items() if not (isinstance(k, tuple) and k[0] == "times")}
        self._rows = load_rows(self, list(dict.fromkeys(exprs)), list(dict.fromkeys(bys)))
        return self._rows

    def has(self, column: str) -> bool:
        return column in self.columns

    def require(self, *columns: str, what: str = "this analysis") -> None:
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise AnalysisError(
                f"{what} needs column(s) {', '.join(missing)}; the input has: "
                f"{', '.join(self.columns) or 'no columns'}"
            )

    def group_by(self, by: Sequence[str] | str | None, default: Sequence[str]) -> list[str]:
        """The grouping columns: ``by`` as given (checked), or the defaults present in the input."""
        if by is None:
            return [c for c in default if c in self.columns]
        cols = [by] if isinstance(by, str) else list(by)
        self.require(*cols, what="grouping")
        return cols

    def count(self) -> int:
        return self.con.execute("SELECT count(*) FROM _input").fetchall()[0][0]

    def non_null(self, column: str) -> bool:
        """Whether ``column`` exists and has at least one non-null value."""
        if column not in self.columns:
            return False
        q = f"SELECT count({qi(column)}) FROM (SELECT {qi(column)} FROM _input WHERE {qi(column)} IS NOT NULL LIMIT 1)"
        return self.con.execute(q).fetchall()[0][0] > 0

    def close(self) -> None:
        from ._stream import cleanup

        self._rows = None
        self._cache.clear()
        self.con.close()
        cleanup(self.tmp_dir)
        self.tmp_dir = None


def as_input(data: Data, **kwargs: Any) -> Input:
    """``data`` itself when it is an :class:`Input` (filters must then be set on it), else a new one."""
    if isinstance(data, Input):
        extra = {k: v for k, v in kwargs.items() if k in ("source", "trace", "where") and v is not None}
        if extra:
            raise AnalysisError(
                f"pass {', '.join(extra)} when making the Input, not to each analysis on it"
            )
        return data
    return Input(data, **kwargs)


def _as_registrable(data: Any) -> Any:
    """Something DuckDB's ``register`` accepts: polars/arrow as they are, relations via Arrow."""
    try:
        import polars as pl

        if isinstance(data, pl.LazyFrame):
            return data.collect().to_arrow()
        if isinstance(data, pl.DataFrame):
            return data.to_arrow()
    except ImportError:  # pragma: no cover - polars is a dependency
        pass
    mod = type(data).__module__
    if mod.startswith(("duckdb", "_duckdb")):
        return data.to_arrow_table() if hasattr(data, "to_arrow_table") else data.arrow()
    if mod.startswith("pyarrow") or mod.startswith("pandas"):
        return data
    raise AnalysisError(
        f"cannot analyse a {type(data).__name__}; pass a table name, a polars DataFrame/LazyFrame, "
        "a pyarrow Table or a DuckDB relation"
    )


def select_list(cols: Sequence[str]) -> str:
    """``"a", "b", `` (with a trailing comma and space) or the empty string."""
    return "".join(f"{qi(c)}, " for c in cols)


def by_clause(cols: Sequence[str]) -> str:
    """``GROUP BY "a", "b"`` or nothing."""
    return ("GROUP BY " + ", ".join(qi(c) for c in cols)) if cols else ""


def partition_clause(cols: Sequence[str]) -> str:
    return ("PARTITION BY " + ", ".join(qi(c) for c in cols)) if cols else ""


def order_clause(cols: Sequence[str], *more: str) -> str:
    items = [qi(c) for c in cols] + list(more)
    return ("ORDER BY " + ", ".join(items)) if items else ""


def groups(df: pl.DataFrame, by: Sequence[str]) -> list[tuple[dict[str, Any], pl.DataFrame]]:
    """Split a frame by ``by`` into (key dict, sub-frame) pairs, in sorted key order."""
    if not by:
        return [({}, df)]
    out = []
    for key, sub in df.group_by(list(by), maintain_order=False):
        out.append((dict(zip(by, key, strict=True)), sub))
    out.sort(key=lambda kv: tuple(str(kv[0][c]) for c in by))
    return out
