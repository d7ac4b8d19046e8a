"""The store: one directory of Parquet tables, a JSON catalog, and a write lock.

Layout::

    STORE/
      catalog.json                       which Parquet files make up each table (the truth)
      tables/<table>/source=<id>/*.parquet   zstd Parquet, hive-partitioned by source
      cache/                             downloaded raw files (pooch)
      .staging/<source>/                 finished per-file work of an interrupted ingest
      .tmp/<transaction>/                files being written (never read by queries)
      .lock                              held by the one process writing

Every table's rows are grouped by (source, input key): the input key is the raw file a row
came from (or a bench run id). Committing a transaction replaces all rows of the keys it
touched and nothing else, so re-running an ingest never duplicates rows. The commit swaps
``catalog.json`` with one atomic rename: readers see the old tables or the new ones, never
a mixture, and a crash before the rename leaves the store as it was.

Examples
--------
>>> import pyarrow as pa, tempfile
>>> store = Store(tempfile.mkdtemp())
>>> rows = pa.table({"input_name": ["a.csv"], "size_bytes": [3], "rows": [1],
...                  "ingested_at": pa.array([0], pa.timestamp("us", tz="UTC")),
...                  "wattlas_version": ["0"]})
>>> with store.transaction("demo") as tx:
...     n = tx.put("ingest_manifest", "a.csv", rows)
>>> store.sql("select source, input_name from ingest_manifest").rows()
[('demo', 'a.csv')]
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import StoreError, StoreLockedError
from .schemas import TABLES, get_table

if TYPE_CHECKING:
    import duckdb
    import polars as pl
    import pyarrow as pa

log = logging.getLogger("wattlas.store")

CATALOG_FORMAT = 1
ENV_STORE = "WATTLAS_STORE"


def default_store_root() -> Path:
    """``$WATTLAS_STORE`` if set, else the platform's user data directory for wattlas."""
    env = os.environ.get(ENV_STORE)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("wattlas", appauthor=False))


def _now_utc() -> datetime:
    return datetime.now(UTC)


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


@dataclass(frozen=True)
class TableInfo:
    """A table as the catalog holds it."""

    name: str
    rows: int
    files: int
    sources: tuple[str, ...]


class Store:
    """A wattlas store rooted at a directory (created on first write).

    Parameters
    ----------
    root
        Store directory; ``None`` means :func:`default_store_root`.
    lock_timeout_s
        How long a writer waits for another writer's lock before failing.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, *, lock_timeout_s: float = 600.0):
        self.root = Path(root).expanduser() if root is not None else default_store_root()
        self.lock_timeout_s = lock_timeout_s

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # ----------------------------------------------------------------- paths
    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.json"

    @property
    def tables_dir(self) -> Path:
        return self.root / "tables"

    @property
    def cache_dir(self) -> Path:
        env = os.environ.get("WATTLAS_CACHE")
        return Path(env).expanduser() if env else self.root / "cache"

    def staging_dir(self, source: str) -> Path:
        """Where an ingest of ``source`` keeps finished per-file work until it commits."""
        return self.root / ".staging" / source

    # ---------------------------------------------------------------- catalog
    def catalog(self) -> dict[str, Any]:
        """The committed catalog: ``{"tables": {table: {source: {key: {"files", "rows"}}}}}``."""
        try:
            raw = self.catalog_path.read_bytes()
        except FileNotFoundError:
            return {"format": CATALOG_FORMAT, "generation": 0, "tables": {}}
        try:
            cat = json.loads(raw)
        except json.JSONDecodeError as e:
            raise StoreError(
                f"{self.catalog_path} is not valid JSON ({e}); the store was modified by hand or "
                "by another tool. Restore it from a backup or ingest into a fresh store."
            ) from e
        if cat.get("format") != CATALOG_FORMAT:
            raise StoreError(
                f"{self.catalog_path} has catalog format {cat.get('format')!r}; this wattlas "
                f"reads format {CATALOG_FORMAT}. Upgrade wattlas or use a new store."
            )
        return cat

    def committed_files(self, table: str) -> list[tuple[str, str, Path]]:
        """(source, input key, absolute path) of every Parquet file of ``table``, in view order."""
        entry = self.catalog()["tables"].get(table, {})
        base = self.tables_dir / table
        return [
            (source, key, base / f)
            for source in sorted(entry) for key in sorted(entry[source]) for f in entry[source][key]["files"]
        ]

    def table_files(self, table: str) -> list[Path]:
        """Absolute paths of the Parquet files that make up ``table`` now."""
        return [f for _, _, f in self.committed_files(table)]

    def input_keys(self, source: str, table: str | None = None) -> set[str]:
        """Input keys (raw file names, run ids) of ``source`` committed to ``table`` (any table)."""
        tables = self.catalog()["tables"]
        names = [table] if table else list(tables)
        return {k for t in names for k in tables.get(t, {}).get(source, {})}

    def tables(self) -> list[TableInfo]:
        """Every declared or committed table with its row count, files and sources."""
        tables = self.catalog()["tables"]
        out = []
        for name in sorted(set(TABLES) | set(tables)):
            entry = tables.get(name, {})
            rows = sum(v["rows"] for s in entry.values() for v in s.values())
            files = sum(len(v["files"]) for s in entry.values() for v in s.values())
            out.append(TableInfo(name, rows, files, tuple(sorted(entry))))
        return out

    # ---------------------------------------------------------------- queries
    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with every table of the store as a view.

        Tables with no rows yet exist as empty views with their declared columns, so queries
        written against the schema run on any store.
        """
        import duckdb

        con = duckdb.connect()
        # Zoned timestamps read back in UTC on every host, not in the machine's local zone.
        con.execute("SET TimeZone = 'UTC'")
        tables = self.catalog()["tables"]
        for name in sorted(set(TABLES) | set(tables)):
            con.execute(self._view_sql(con, name, self.table_files(name)))
        return con

    def _view_sql(self, con: duckdb.DuckDBPyConnection, name: str, files: list[Path]) -> str:
        schema = TABLES.get(name)
        ident = _quote_ident(name)
        if not files:
            if schema is None:
                return f"CREATE VIEW {ident} AS SELECT NULL::VARCHAR AS source WHERE false"
            cols = ", ".join(f"NULL::{t} AS {_quote_ident(c)}" for c, t in schema.duckdb_columns())
            return f"CREATE VIEW {ident} AS SELECT NULL::VARCHAR AS source, {cols} WHERE false"
        return f"CREATE VIEW {ident} AS {self.scan_sql(con, name, files)}"

    def scan_sql(
        self, con: duckdb.DuckDBPyConnection, table: str, files: list[Path], *, filename_as: str | None = None
    ) -> str:
        """A SELECT of ``files`` as ``table``: ``source``, then the declared columns in order and type.

        Files written before a column was added lack it: ``union_by_name`` gives it as null when
        some file has it; when none does, the select supplies the null itself. ``filename_as``
        adds each row's file path under that name.
        """
        file_list = "[" + ", ".join(_quote_str(str(f)) for f in files) + "]"
        fname = ", filename = true" if filename_as else ""
        scan = (
            f"read_parquet({file_list}, hive_partitioning = true, "
            f"hive_types = {{'source': VARCHAR}}, union_by_name = true{fname})"
        )
        schema = TABLES.get(table)
        if schema is None:
            return f"SELECT * FROM {scan}"
        present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
        select = "source, " + ", ".join(
            (f"CAST({_quote_ident(c)} AS {t})" if c in present else f"NULL::{t}") + f" AS {_quote_ident(c)}"
            for c, t in schema.duckdb_columns()
        )
        if filename_as:
            select += f", filename AS {_quote_ident(filename_as)}"
        return f"SELECT {select} FROM {scan}"

    def sql(self, query: str) -> pl.DataFrame:
        """Run ``query`` against the store's views and return a polars DataFrame."""
        con = self.connect()
        try:
            return con.sql(query).pl()
        finally:
            con.close()

    # ----------------------------------------------------------------- writes
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store's write lock (waits up to ``lock_timeout_s``)."""
        import filelock

        self.root.mkdir(parents=True, exist_ok=True)
        lock_path = self.root / ".lock"
        info_path = self.root / ".lock.info"
        lk = filelock.FileLock(str(lock_path))
        try:
            lk.acquire(timeout=0)
        except filelock.Timeout:
            holder = _read_text(info_path) or "another process"
            log.warning(
                "store %s is being written by %s; waiting up to %.0f s for it to finish",
                self.root, holder, self.lock_timeout_s,
            )
            try:
                lk.acquire(timeout=self.lock_timeout_s)
            except filelock.Timeout:
                raise StoreLockedError(
                    f"store {self.root} is locked by {holder} and stayed locked for "
                    f"{self.lock_timeout_s:.0f} s. Wait for that ingest to finish, or use another "
                    "store (--store DIR). If no wattlas process is running, the lock is stale: "
                    f"delete {lock_path}."
                ) from None
        try:
            info_path.write_text(
                f"pid {os.getpid()} on {socket.gethostname()} since "
                f"{_now_utc().isoformat(timespec='seconds')}"
            )
            yield
        finally:
            with contextlib.suppress(OSError):
                info_path.unlink()
            lk.release()

    @contextlib.contextmanager
    def transaction(self, source: str) -> Iterator[Transaction]:
        """Write rows of ``source`` atomically.

        Holds the write lock for the whole block. On a clean exit the rows put into the
        transaction replace the committed rows of the same input keys; on an exception
        nothing is committed and the store is left exactly as it was.
        """
        _check_name(source, "source id")
        with self.lock():
            self._collect_garbage()
            tx = Transaction(self, source)
            try:
                yield tx
            except BaseException:
                tx._abort()
                raise
            tx._commit()

    def _collect_garbage(self) -> None:
        """Remove what crashed writers left: temp dirs and Parquet files no catalog lists."""
        shutil.rmtree(self.root / ".tmp", ignore_errors=True)
        if not self.tables_dir.exists():
            return
        referenced = {
            (self.tables_dir / t / f).resolve()
            for t, e in self.catalog()["tables"].items()
            for s in e.values() for v in s.values() for f in v["files"]
        }
        for path in self.tables_dir.glob("*/source=*/*.parquet"):
            if path.resolve() not in referenced:
                log.info("removing orphaned file %s", path)
                path.unlink(missing_ok=True)


class Transaction:
    """Rows of one source being written; see :meth:`Store.transaction`."""

    def __init__(self, store: Store, source: str):
        self.store = store
        self.source = source
        self.id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        self.tmp_dir = store.root / ".tmp" / self.id
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        # (table, key) -> list of (temp parquet path, rows)
        self._parts: dict[tuple[str, str], list[tuple[Path, int]]] = {}
        self._dropped_keys: set[str] = set()
        self._dropped_table_keys: set[tuple[str, str]] = set()
        self._n = 0

    def new_path(self, table: str) -> Path:
        """A fresh temporary Parquet path for a converter that writes ``table`` itself."""
        self._n += 1
        return self.tmp_dir / f"{table}-{self._n:06d}.parquet"

    def put(
        self, table: str, key: str, data: pa.Table | pl.DataFrame | Path | str, *, scope: str = "key"
    ) -> int:
        """Add rows to ``table`` under input ``key``; returns the number of rows.

        ``scope="key"`` (an ingest of raw files) replaces the key's committed rows in every
        table at commit; ``scope="table"`` (a release load, which may carry only some tables)
        replaces them in ``table`` alone and leaves the key's other tables as they are.

        ``data`` is an Arrow table, a polars DataFrame, or the path of a Parquet file. A file
        inside the store (a converter's temporary or staged output) is moved in on commit; any
        other file (e.g. a committed dataset in a repository) is copied, never consumed. It must
        have the table's declared columns (missing nullable ones are filled with nulls) and no
        others.
        """
        schema = get_table(table)
        _check_name(key, "input key", allow_dots=True)
        if isinstance(data, str | os.PathLike):
            path = Path(data)
            rows = _check_parquet(path, schema)
            if not path.resolve().is_relative_to(self.store.root.resolve()):
                copy = self.new_path(table)
                shutil.copyfile(path, copy)
                path = copy
        else:
            arrow = _conform(_to_arrow(data), schema)
            path = self.new_path(table)
            import pyarrow.parquet as pq

            pq.write_table(arrow, path, compression="zstd")
            rows = arrow.num_rows
        self._parts.setdefault((table, key), []).append((path, rows))
        if scope == "key":
            self._dropped_keys.add(key)
        elif scope == "table":
            self._dropped_table_keys.add((table, key))
        else:
            raise ValueError(f"scope must be 'key' or 'table', not {scope!r}")
        return rows

    def drop(self, key: str) -> None:
        """Remove every committed row of input ``key`` (in all tables) at commit."""
        self._dropped_keys.add(key)

    def _abort(self) -> None:
        shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def _commit(self) -> None:
        store = self.store
        cat = store.catalog()
        tables = cat["tables"]
        replaced: list[Path] = []
        for table, entry in tables.items():
            src = entry.get(self.source, {})
            dropped = self._dropped_keys | {k for t, k in self._dropped_table_keys if t == table}
            for key in dropped & set(src):
                replaced += [store.tables_dir / table / f for f in src.pop(key)["files"]]
            if not src:
                entry.pop(self.source, None)
        for (table, key), parts in sorted(self._parts.items()):
            dest_dir = store.tables_dir / table / f"source={self.source}"
            dest_dir.mkdir(parents=True, exist_ok=True)
            files = []
            for i, (path, _) in enumerate(parts):
                name = f"{self.id}-{_safe_file_part(key)}-{i:04d}.parquet"
                os.replace(path, dest_dir / name)
                files.append(f"source={self.source}/{name}")
            slot = tables.setdefault(table, {}).setdefault(self.source, {})
            slot[key] = {"files": files, "rows": sum(r for _, r in parts)}
        for table in [t for t, e in tables.items() if not e]:
            tables.pop(table)
        cat["generation"] = cat.get("generation", 0) + 1
        cat["committed_at"] = _now_utc().isoformat(timespec="seconds")
        tmp = store.root / f".catalog-{self.id}.json"
        _fsync_write(tmp, json.dumps(cat, indent=1, sort_keys=True).encode())
        os.replace(tmp, store.catalog_path)
        for path in replaced:
            path.unlink(missing_ok=True)
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


# ------------------------------------------------------------------ helpers
def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _check_name(name: str, what: str, allow_dots: bool = False) -> None:
    bad = {"/", "\\", "\0"} | (set() if allow_dots else {"="})
    if not name or name in {".", ".."} or any(ch in name for ch in bad):
        raise StoreError(f"invalid {what} {name!r}: it must be non-empty and contain no '/'")


def _safe_file_part(key: str) -> str:
    keep = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key)
    return keep[:60]


def _to_arrow(data: Any) -> pa.Table:
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if hasattr(data, "to_arrow"):
        return data.to_arrow()
    raise TypeError(f"expected a pyarrow Table, polars DataFrame or Parquet path, got {type(data)}")


def _conform(table: pa.Table, schema) -> pa.Table:
    """Cast ``table`` to the declared schema; refuse unknown columns and nulls where required."""
    import pyarrow as pa
    import pyarrow.compute as pc

    extra = set(table.column_names) - set(schema.column_names)
    if extra:
        raise StoreError(
            f"table {schema.name!r} has no column(s) {sorted(extra)}; "
            f"declared: {schema.column_names}"
        )
    target = schema.arrow_schema()
    columns = []
    for field in target:
        if field.name in table.column_names:
            col = table[field.name]
            try:
                col = col.cast(field.type) if col.type != field.type else col
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise StoreError(
                    f"table {schema.name!r}, column {field.name!r}: cannot store {col.type} as "
                    f"{field.type}: {e}"
                ) from e
        else:
            col = pa.nulls(table.num_rows, field.type)
        if not field.nullable and col.null_count:
            first = pc.index(pc.is_null(col), True).as_py()
            raise StoreError(
                f"table {schema.name!r}, column {field.name!r} may not be null "
                f"(row {first} is null)"
            )
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=target)


def _logical(t: pa.DataType) -> str:
    import pyarrow as pa

    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return str(pa.string())
    return str(t)


def _check_parquet(path: Path, schema) -> int:
    """Validate a converter's Parquet file against ``schema``; return its row count."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
        file_schema = pq.read_schema(path)
    except (OSError, ValueError) as e:
        raise StoreError(f"{path} is not a readable Parquet file: {e}") from e
    want = schema.arrow_schema()
    got = {f.name: _logical(f.type) for f in file_schema}
    expected = {f.name: _logical(f.type) for f in want}
    if got != expected:
        diff = {k: (got.get(k), expected.get(k)) for k in set(got) | set(expected)
                if got.get(k) != expected.get(k)}
        raise StoreError(f"{path}: columns do not match table {schema.name!r}: {diff} (got, declared)")
    for field in want:
        if field.nullable:
            continue
        idx = file_schema.get_field_index(field.name)
        for rg in range(meta.num_row_groups):
            stats = meta.row_group(rg).column(idx).statistics
            if stats is not None and stats.has_null_count and stats.null_count:
                raise StoreError(f"{path}: column {field.name!r} of {schema.name!r} has nulls")
    return meta.num_rows
