"""Build a release directory from a store: Parquet tables, croissant.json, dataset card, SHA256SUMS.

Layout of a release::

    DIR/
      README.md                  dataset card; its YAML front matter makes DIR a Hugging Face dataset
      croissant.json             MLCommons Croissant 1.1 metadata (sha256 and size of every data file)
      SHA256SUMS                 `sha256sum -c` format, every other file
      data/<table>.parquet       one zstd Parquet file per table, `source` as its first column

Rows keep the store's order (source, input key, row) and every Parquet footer records which
input key each run of rows came from, so ``wattlas ingest release`` rebuilds the same store.
The directory appears only when complete: it is written beside the target and renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._files import sha256_file
from .._parquet import ParquetSink
from ..errors import ReleaseError
from ..schemas import get_table
from ..store import Store, _quote_ident
from .definitions import ReleaseDefinition
from .upstream import Upstream, resolve_upstream

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

log = logging.getLogger("wattlas.datasets")

#: Parquet footer key holding ``{"format", "table", "segments": [{source, key, rows}]}``.
FOOTER_KEY = "wattlas.release"
FOOTER_FORMAT = 1
SUMS_FILE = "SHA256SUMS"
CROISSANT_FILE = "croissant.json"
CARD_FILE = "README.md"
DATA_DIR = "data"

# Remote readers (DuckDB httpfs, pyarrow over HTTP, the Hugging Face viewer) fetch column chunks
# of whole row groups with HTTP range requests. A selective query reads one chunk per needed
# column of each row group its statistics cannot rule out, so chunks of ~1 MB compressed keep
# such reads small while a full scan still needs few requests: ~16 MiB of in-memory data per
# group (far below the Hub viewer's ~300 MB limit). benchmarks/release.py measures the effect.
ROW_GROUP_TARGET_BYTES = 16 * 1024 * 1024
ROW_GROUP_MAX_ROWS = 1 << 20
ROW_GROUP_MIN_ROWS = 1 << 14
_BATCH_ROWS = 1 << 17
_FILE_COL = "__wattlas_file"


@dataclass(frozen=True)
class Segment:
    """A run of consecutive rows in a release file that came from one (source, input key)."""

    source: str
    key: str
    rows: int


@dataclass
class ReleaseTable:
    """One table of a release: its file, rows, sources and checksum."""

    name: str
    file: str  # path relative to the release directory
    rows: int = 0
    size_bytes: int = 0
    sha256: str = ""
    row_groups: int = 0
    rows_per_group: int = 0
    condition: str | None = None
    segments: list[Segment] = field(default_factory=list)

    @property
    def sources(self) -> list[str]:
        return sorted({s.source for s in self.segments})


@dataclass
class ReleaseReport:
    """What :func:`build_release` wrote."""

    definition: ReleaseDefinition
    path: Path
    tables: list[ReleaseTable]
    upstream: list[Upstream]
    files: dict[str, tuple[int, str]]  # relative path -> (bytes, sha256)
    date_published: str
    seconds: float = 0.0


def build_date() -> str:
    """Publication date (UTC, ISO): ``$SOURCE_DATE_EPOCH`` if set (reproducible builds), else today."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    return when.date().isoformat()


def build_release(
    definition: ReleaseDefinition,
    out_dir: str | os.PathLike[str],
    store: Store | str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
) -> ReleaseReport:
    """Write the release ``definition`` selects from ``store`` into ``out_dir``.

    Refuses (:class:`~wattlas.errors.ReleaseError`) when a selected table has no rows, when an
    upstream licence forbids redistribution, or when a source is neither in the registry nor
    described by the definition. ``out_dir`` must not exist (or be empty) unless ``force`` is
    set and it holds an earlier release, which is then replaced in one rename.

    Examples
    --------
    >>> from wattlas.datasets import ReleaseDefinition, build_release
    >>> d = ReleaseDefinition(name="azure-llm-2023", tables=("llm_requests",),
    ...                       where="source = 'azure-llm-2023'")
    >>> report = build_release(d, "out/azure-llm-2023", store="S")          # doctest: +SKIP
    >>> [(t.name, t.rows) for t in report.tables]                            # doctest: +SKIP
    [('llm_requests', 28185)]
    """
    started = time.perf_counter()
    definition = definition.validate()
    store = store if isinstance(store, Store) else Store(store)
    out = Path(out_dir).expanduser()
    _check_target(out, force)
    if not store.catalog_path.is_file():
        raise ReleaseError(
            f"store {store.root} holds no tables yet; ingest the sources first (`wattlas ingest SOURCE_ID`)"
        )
    spill = tempfile.TemporaryDirectory(prefix="wattlas-release-")
    con = _connect(store, Path(spill.name))
    # The write lock keeps ingests from replacing the files being read: one consistent snapshot.
    with spill, store.lock(), contextlib.closing(con):
        conditions = {t: definition.filter_for(t) for t in definition.tables}
        # Licences first: a refused release writes nothing.
        sources = set()
        for table in definition.tables:
            found = _selected_sources(con, store, table, conditions[table])
            if not found:
                where = f" matching {conditions[table]}" if conditions[table] else ""
                raise ReleaseError(
                    f"table {table!r} has no rows{where} in store {store.root}; ingest its sources "
                    "first (`wattlas tables` shows what the store holds) or drop it from --tables"
                )
            sources |= found
        upstream = resolve_upstream(sources, definition)
        if not definition.url:
            log.warning(
                "release %s has no url: Croissant lists the dataset's web page as required; set "
                "url in its release.toml before publishing", definition.name,
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.building-{uuid.uuid4().hex[:8]}"
        (tmp / DATA_DIR).mkdir(parents=True)
        try:
            tables = []
            for table in definition.tables:
                rel = f"{DATA_DIR}/{table}.parquet"
                tables.append(_write_table(con, store, table, conditions[table], tmp / rel, rel))
            report = _write_metadata(tmp, definition, tables, upstream)
            _swap_into_place(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    report.path = out
    report.seconds = time.perf_counter() - started
    return report


def _check_target(out: Path, force: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise ReleaseError(f"-o {out}: exists and is not a directory")
    if not any(out.iterdir()):
        return
    if not force:
        raise ReleaseError(
            f"-o {out}: directory exists and is not empty; choose another, or pass --force to replace it"
        )
    if not (out / SUMS_FILE).is_file():
        raise ReleaseError(f"-o {out}: --force replaces only an earlier release (a directory with {SUMS_FILE})")


def _swap_into_place(tmp: Path, out: Path) -> None:
    if out.exists():
        trash = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(out, trash)
        os.replace(tmp, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, out)


def _connect(store: Store, spill_dir: Path) -> duckdb.DuckDBPyConnection:
    """A connection that reads the store's tables and nothing else: the filters are user SQL."""
    import duckdb

    from ..sqlguard import guard_connection

    con = duckdb.connect()
    # TIMESTAMPTZ values reach Arrow in the session zone; pin it so nothing depends on the host.
    con.execute("SET TimeZone = 'UTC'")
    guard_connection(con, store.root, temp_dir=spill_dir)
    return con


def _scan_sql(con: duckdb.DuckDBPyConnection, store: Store, table: str, files: list[Path],
              condition: str | None) -> str:
    if "filename" in get_table(table).column_names:  # DuckDB's filename column would shadow it
        raise ReleaseError(f"table {table!r} has a column named 'filename', which releases cannot select yet")
    scan = store.scan_sql(con, table, files, filename_as=_FILE_COL)
    where = f" WHERE {condition}" if condition else ""
    return f"SELECT * FROM ({scan}) AS {_quote_ident(table)}{where}"


def _run(con: duckdb.DuckDBPyConnection, sql: str, table: str, condition: str | None):
    import duckdb

    try:
        return con.sql(sql)
    except duckdb.Error as e:
        what = f"the filter {condition!r}" if condition else "the selection"
        raise ReleaseError(f"{what} does not apply to table {table!r}: {e}") from e


def _selected_sources(con, store: Store, table: str, condition: str | None) -> set[str]:
    files = store.table_files(table)
    if not files:
        return set()
    rel = _run(con, f"SELECT DISTINCT source FROM ({_scan_sql(con, store, table, files, condition)})", table,
               condition)
    return {r[0] for r in rel.fetchall()}


def _arrow_reader(rel: Any, batch_rows: int) -> pa.RecordBatchReader:
    # DuckDB >= 1.4 names it to_arrow_reader; older releases fetch_record_batch.
    if hasattr(rel, "to_arrow_reader"):
        return rel.to_arrow_reader(batch_rows)
    return rel.fetch_record_batch(batch_rows)


def release_schema(table: str) -> pa.Schema:
    """Arrow schema of a table's release file: ``source`` then the declared columns."""
    import pyarrow as pa

    declared = get_table(table).arrow_schema()
    return pa.schema([pa.field("source", pa.string(), nullable=False), *declared])


def _rows_per_group(batch: pa.RecordBatch) -> int:
    per_row = max(1.0, batch.nbytes / max(1, batch.num_rows))
    return int(min(ROW_GROUP_MAX_ROWS, max(ROW_GROUP_MIN_ROWS, ROW_GROUP_TARGET_BYTES // per_row)))


def _write_table(
    con: duckdb.DuckDBPyConnection, store: Store, table: str, condition: str | None, path: Path, rel_path: str
) -> ReleaseTable:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    placed = store.committed_files(table)
    key_of = {}
    for source, key, f in placed:
        key_of[str(f)] = (source, key)
        key_of[str(f.resolve())] = (source, key)
    sql = _scan_sql(con, store, table, [f for _, _, f in placed], condition)
    reader = _arrow_reader(_run(con, sql, table, condition), _BATCH_ROWS)
    target = release_schema(table)
    info = ReleaseTable(name=table, file=rel_path, condition=condition)
    segments: list[list[Any]] = []
    sink: ParquetSink | None = None
    try:
        for batch in reader:
            if batch.num_rows == 0:
                continue
            runs = pc.run_end_encode(batch.column(_FILE_COL))
            start = 0
            for end, fname in zip(runs.run_ends.to_pylist(), runs.values.to_pylist(), strict=True):
                source, key = key_of.get(fname) or key_of[str(Path(fname).resolve())]
                if segments and segments[-1][0] == source and segments[-1][1] == key:
                    segments[-1][2] += end - start
                else:
                    segments.append([source, key, end - start])
                start = end
            data = _conform_batch(batch.drop_columns([_FILE_COL]), target, table)
            if sink is None:
                info.rows_per_group = _rows_per_group(data)
                # The store's layout (wattlas._parquet), with row groups sized for remote
                # range reads and a page index for readers that prune pages.
                sink = ParquetSink(path, target, row_group_rows=info.rows_per_group, page_index=True)
            sink.write(data)
        if sink is None:
            raise ReleaseError(f"table {table!r} has no rows matching {condition}")
        info.segments = [Segment(*s) for s in segments]
        info.rows = sum(s.rows for s in info.segments)
        footer = {
            "format": FOOTER_FORMAT, "table": table,
            "segments": [{"source": s.source, "key": s.key, "rows": s.rows} for s in info.segments],
        }
        sink.add_metadata({FOOTER_KEY: json.dumps(footer, separators=(",", ":"))})
        sink.close()
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    meta = pq.ParquetFile(path).metadata
    if meta.num_rows != info.rows:  # a cheap guard on the segment bookkeeping
        raise ReleaseError(f"{rel_path}: wrote {meta.num_rows} rows but counted {info.rows}; this is a bug")
    info.row_groups = meta.num_row_groups
    info.size_bytes = path.stat().st_size
    info.sha256 = sha256_file(path)
    return info


def _conform_batch(batch: pa.RecordBatch, target: pa.Schema, table: str) -> pa.RecordBatch:
    import pyarrow as pa
    import pyarrow.compute as pc

    for f in target:
        if not f.nullable and batch.column(f.name).null_count:
            first = pc.index(pc.is_null(batch.column(f.name)), True).as_py()
            raise ReleaseError(
                f"table {table!r}, column {f.name!r} is declared never null but a selected row has "
                f"null there (row {first} of a batch); re-ingest that source with this wattlas version"
            )
    try:
        return batch.select(target.names).cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        raise ReleaseError(f"table {table!r}: cannot write the selected rows as the declared schema: {e}") from e


def _write_metadata(
    root: Path, definition: ReleaseDefinition, tables: list[ReleaseTable], upstream: list[Upstream]
) -> ReleaseReport:
    from .. import __version__
    from .card import dataset_card, default_description
    from .croissant import croissant_metadata

    date = build_date()
    description = definition.description or default_description(definition, tables, upstream)
    doc = croissant_metadata(definition, tables, upstream, date_published=date, description=description)
    (root / CROISSANT_FILE).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    card = dataset_card(
        definition, tables, upstream, date_published=date, description=description, wattlas_version=__version__
    )
    (root / CARD_FILE).write_text(card, encoding="utf-8")
    files: dict[str, tuple[int, str]] = {}
    for rel in [CARD_FILE, CROISSANT_FILE, *(t.file for t in tables)]:
        p = root / rel
        files[rel] = (p.stat().st_size, sha256_file(p))
    lines = "".join(f"{sha}  {rel}\n" for rel, (_, sha) in sorted(files.items()))
    (root / SUMS_FILE).write_text(lines, encoding="utf-8")
    return ReleaseReport(definition, root, tables, upstream, files, date)
