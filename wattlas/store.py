"""The store: one directory of Parquet tables, a JSON catalog, and a write lock.

Layout::

    STORE/
      catalog.json                       which Parquet files make up each table (the truth)
      tables/<table>/source=<id>/*.parquet   zstd Parquet, hive-partitioned by source
      cache/                             downloaded raw files (pooch)
      .staging/<source>/                 finished per-file work of an interrupted ingest
      .tmp/<transaction>/                files being written (never read by queries)
      .pending/<transaction>.json        the files a commit in progress adds and retires
      .snapshots/<reader>/               hard links that keep an open reader's files readable
      .lock                              held by the one process writing

Every table's rows are grouped by (source, input key): the input key is the raw file a row
came from (or a bench run id). Committing a transaction replaces all rows of the keys it
touched and nothing else, so re-running an ingest never duplicates rows. The commit swaps
``catalog.json`` with one atomic rename: readers see the old tables or the new ones, never
a mixture. A commit first records the files it will add and retire in ``.pending/``, so a
crash at any instruction leaves files that the next opening of the store (a reader or a
writer) deletes: exactly those the catalog does not list. Readers read a snapshot: hard links
to the files of one catalog generation, so a commit that retires a file cannot pull it from
under a query that is running.

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
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import StoreError, StoreLockedError, store_disk_error
from .schemas import TABLES, get_table

if TYPE_CHECKING:
    import duckdb
    import polars as pl
    import pyarrow as pa

log = logging.getLogger("wattlas.store")

CATALOG_FORMAT = 1
#: How often opening a snapshot starts again because a commit retired a file meanwhile.
SNAPSHOT_TRIES = 50
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

    @property
    def snapshots_dir(self) -> Path:
        return self.root / ".snapshots"

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
        base = self.tables_dir / table
        return [(source, key, base / f) for _, source, key, f in _catalog_files(self.catalog(), table)]

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
        written against the schema run on any store. The connection reads a snapshot (see
        :meth:`snapshot`) that it releases when it is garbage-collected; :meth:`reader` releases
        it at the end of a ``with`` block.
        """
        return self._open()[0]

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection as :meth:`connect` gives, closed with its snapshot when the block ends."""
        con, release = self._open()
        try:
            yield con
        finally:
            con.close()
            release()

    def _open(self) -> tuple[duckdb.DuckDBPyConnection, weakref.finalize]:
        import duckdb

        snap = self.snapshot()
        con = duckdb.connect()
        # The snapshot's links live as long as the connection (and until exit at the latest).
        release = weakref.finalize(con, snap.close)
        # Zoned timestamps read back in UTC on every host, not in the machine's local zone.
        con.execute("SET TimeZone = 'UTC'")
        for name in sorted(set(TABLES) | set(snap.catalog["tables"])):
            con.execute(self._view_sql(con, name, snap.files(name)))
        return con, release

    def snapshot(self) -> Snapshot:
        """The committed files of the current catalog, readable until :meth:`Snapshot.close`.

        Each file is hard-linked under ``.snapshots/``: a commit that replaces rows unlinks the
        old files from ``tables/`` at once (so a plain glob never reads them twice), and the
        links keep them readable for the queries that started before. Where links cannot be
        made (a read-only store, a file system without them) files are read in place.
        """
        self.recover()
        for _ in range(SNAPSHOT_TRIES):
            cat = self.catalog()
            rels = [f"{t}/{f}" for t, _, _, f in _catalog_files(cat)]
            snap_dir = self._new_snapshot_dir() if rels else None
            if snap_dir is None:
                return Snapshot(cat, self.tables_dir, None)
            try:
                for rel in rels:
                    dest = snap_dir / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    os.link(self.tables_dir / rel, dest)
            except FileNotFoundError:
                # A commit retired a file between our reading the catalog and linking it.
                shutil.rmtree(snap_dir, ignore_errors=True)
                continue
            except OSError as e:
                log.debug("cannot hard-link store files (%s); reading them in place", e)
                shutil.rmtree(snap_dir, ignore_errors=True)
                return Snapshot(cat, self.tables_dir, None)
            return Snapshot(cat, snap_dir, snap_dir)
        raise StoreError(
            f"store {self.root} changed {SNAPSHOT_TRIES} times while it was being opened for reading; "
            "try again when the running ingests have finished"
        )

    def _new_snapshot_dir(self) -> Path | None:
        path = self.snapshots_dir / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        try:
            path.mkdir(parents=True)
        except OSError:
            return None
        return path

    def recover(self) -> None:
        """Finish what a crashed commit left, if no writer is busy: delete the files it recorded
        in ``.pending/`` that the catalog does not list (its new files if it died before the
        catalog swap, the files it retired if it died after)."""
        pending = self.root / ".pending"
        try:
            if not any(pending.iterdir()):
                return
        except OSError:
            return
        with self._try_lock() as locked:
            if locked:
                self._recover_pending()

    def _recover_pending(self) -> None:
        """Under the lock: apply every journal in ``.pending/`` (see :meth:`recover`)."""
        pending = self.root / ".pending"
        journals = sorted(pending.glob("*.json")) if pending.exists() else []
        if not journals:
            return
        listed = self._referenced()
        for journal in journals:
            try:
                rels = json.loads(journal.read_text())["files"]
            except (OSError, ValueError, KeyError):
                rels = []  # torn before its fsync: it added nothing yet
            for rel in rels:
                path = self.tables_dir / rel
                if path.resolve() not in listed:
                    log.info("removing %s, left by an interrupted commit", path)
                    path.unlink(missing_ok=True)
            journal.unlink(missing_ok=True)

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
        with self.reader() as con:
            return con.sql(query).pl()

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
    def _try_lock(self) -> Iterator[bool]:
        """Hold the write lock if it is free now; yields whether it was taken (never waits)."""
        import filelock

        lk = filelock.FileLock(str(self.root / ".lock"))
        try:
            lk.acquire(timeout=0)
        except (filelock.Timeout, OSError):
            yield False
            return
        try:
            yield True
        finally:
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
            try:
                tx._commit()
            except BaseException as e:
                # Disk full, a signal: undo through the journal, whichever side of the swap we are.
                self._recover_pending()
                tx._abort()
                disk = store_disk_error(e, self.root, f"committing {source}")
                if disk is not None:
                    raise disk from e
                raise
            # Still under the lock: clean-up of what this commit made obsolete (an ingest's staging
            # area) must not race a waiting writer that would claim the same area once we release.
            for fn in tx._after_commit:
                try:
                    fn()
                except OSError as e:  # the rows are committed; a leftover is only disk space
                    log.warning("after committing %s: %s", source, e)

    def _referenced(self) -> set[Path]:
        return {(self.tables_dir / t / f).resolve() for t, _, _, f in _catalog_files(self.catalog())}

    def _collect_garbage(self) -> None:
        """Remove what crashed writers and readers left: temp dirs, catalogs never swapped in,
        journals, Parquet files no catalog lists, snapshots of processes that are gone."""
        shutil.rmtree(self.root / ".tmp", ignore_errors=True)
        for tmp in self.root.glob(".catalog-*.json"):
            tmp.unlink(missing_ok=True)
        self._recover_pending()
        _remove_dead_snapshots(self.snapshots_dir)
        if not self.tables_dir.exists():
            return
        referenced = self._referenced()
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
        self._after_commit: list[Callable[[], object]] = []

    def new_path(self, table: str) -> Path:
        """A fresh temporary Parquet path for a converter that writes ``table`` itself."""
        self._n += 1
        return self.tmp_dir / f"{table}-{self._n:06d}.parquet"

    def after_commit(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` once the commit has succeeded, before the write lock is released."""
        self._after_commit.append(fn)

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
            try:
                rows = _check_parquet(path, schema)
            except StoreError:
                if not _lacks_only_later_columns(path, schema):
                    raise
                import pyarrow.parquet as pq

                # A file written before nullable columns were declared (a committed measurement
                # set): the columns are added as nulls through the Arrow path.
                return self.put(table, key, pq.read_table(path), scope=scope)
            if not path.resolve().is_relative_to(self.store.root.resolve()):
                copy = self.new_path(table)
                shutil.copyfile(path, copy)
                path = copy
        else:
            arrow = _conform(_to_arrow(data), schema)
            path = self.new_path(table)
            from ._parquet import write_table

            write_table(arrow, path)
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
        """Journal, place, swap, retire; a crash between any two steps is undone by
        :meth:`Store.recover` (see the module docstring)."""
        store = self.store
        cat = store.catalog()
        tables = cat["tables"]
        retired: list[str] = []
        for table, entry in tables.items():
            src = entry.get(self.source, {})
            dropped = self._dropped_keys | {k for t, k in self._dropped_table_keys if t == table}
            for key in dropped & set(src):
                retired += [f"{table}/{f}" for f in src.pop(key)["files"]]
            if not src:
                entry.pop(self.source, None)
        placed: list[tuple[Path, str]] = []
        for (table, key), parts in sorted(self._parts.items()):
            files = []
            for i, (path, _) in enumerate(parts):
                name = f"source={self.source}/{self.id}-{_safe_file_part(key)}-{i:04d}.parquet"
                placed.append((path, f"{table}/{name}"))
                files.append(name)
            slot = tables.setdefault(table, {}).setdefault(self.source, {})
            slot[key] = {"files": files, "rows": sum(r for _, r in parts)}
        for table in [t for t, e in tables.items() if not e]:
            tables.pop(table)
        cat["generation"] = cat.get("generation", 0) + 1
        cat["committed_at"] = _now_utc().isoformat(timespec="seconds")
        journal = store.root / ".pending" / f"{self.id}.json"
        journal.parent.mkdir(exist_ok=True)
        _fsync_write(journal, json.dumps({"files": [r for _, r in placed] + retired}).encode())
        for path, rel in placed:
            _place(path, store.tables_dir / rel)
        tmp = store.root / f".catalog-{self.id}.json"
        _fsync_write(tmp, json.dumps(cat, indent=1, sort_keys=True).encode())
        os.replace(tmp, store.catalog_path)
        _fsync_dir(store.root)
        for rel in retired:
            (store.tables_dir / rel).unlink(missing_ok=True)
        journal.unlink()
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


@dataclass
class Snapshot:
    """The files of one catalog generation (see :meth:`Store.snapshot`)."""

    catalog: dict[str, Any]
    base: Path
    owned: Path | None

    def files(self, table: str) -> list[Path]:
        """The Parquet files of ``table`` in this generation, in view order."""
        return [self.base / table / f for _, _, _, f in _catalog_files(self.catalog, table)]

    def close(self) -> None:
        if self.owned is not None:
            shutil.rmtree(self.owned, ignore_errors=True)
            self.owned = None


# ------------------------------------------------------------------ helpers
def _catalog_files(catalog: dict[str, Any], table: str | None = None) -> Iterator[tuple[str, str, str, str]]:
    """(table, source, input key, file path relative to the table's folder) of every committed
    file of ``table`` (all tables if None), in view order: by source, then key."""
    tables = catalog["tables"]
    for t in [table] if table is not None else sorted(tables):
        entry = tables.get(t, {})
        for source in sorted(entry):
            for key in sorted(entry[source]):
                for f in entry[source][key]["files"]:
                    yield t, source, key, f


def _place(src: Path, dest: Path) -> None:
    """Put a finished part at its committed path without consuming ``src``: a staged part stays
    reusable until the commit is complete. A hard link costs nothing; copy where none can be made."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)  # a link left by an attempt that crashed before its swap
    try:
        os.link(src, dest)
    except FileNotFoundError:
        raise
    except OSError:
        shutil.copyfile(src, dest)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_dead_snapshots(base: Path) -> None:
    """Snapshots of processes on this host that no longer run (they died without closing)."""
    if not base.exists():
        return
    host = socket.gethostname()
    for d in base.iterdir():
        h, _, rest = d.name.rpartition("-")[0].rpartition("-")
        if h == host and rest.isdigit() and not _pid_alive(int(rest)):
            shutil.rmtree(d, ignore_errors=True)


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
            import pyarrow.compute as pc

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


def _lacks_only_later_columns(path: Path, schema) -> bool:
    """Whether ``path`` has exactly the declared columns but some nullable ones (added since)."""
    import pyarrow.parquet as pq

    try:
        got = {f.name: _logical(f.type) for f in pq.read_schema(path)}
    except (OSError, ValueError):
        return False  # _check_parquet says what is wrong with it
    want = schema.arrow_schema()
    missing = [f for f in want if f.name not in got]
    same = all(_logical(f.type) == got[f.name] for f in want if f.name in got)
    return bool(missing) and same and set(got) <= set(want.names) and all(f.nullable for f in missing)


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
