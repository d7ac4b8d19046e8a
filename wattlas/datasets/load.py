"""Load a release into a store (``wattlas ingest release --from DIR``).

Rows go back under their original sources and input keys, which every release file records
in its Parquet footer: one store transaction per source, so a round trip store -> release ->
new store gives the same tables. A release replaces exactly the rows it carries, table by
table: a key's rows in a table the release lacks stay as they are, so loading a release of
some tables into a store that holds more is safe and never duplicates rows.

The checksums are verified first; a damaged release loads nothing. Checksums prove a release
intact, not who made it, so rows an ingest wrote (raw files, bench runs) are replaced only with
``replace=True`` (``--replace``); rows an earlier release load wrote are replaced without it.
Every file a load commits records the release it came from in its Parquet footer
(:data:`LOADED_FROM_KEY`): that is how a later load tells the two apart.

Examples
--------
>>> report = load_release("out/azure-llm-2023", store="S2")      # doctest: +SKIP
>>> report.rows                                                   # doctest: +SKIP
{'llm_requests': 28185}
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .._parquet import ParquetSink
from ..errors import ReleaseError
from ..schemas import TABLES, get_table
from ..store import Store
from .build import CROISSANT_FILE, SUMS_FILE, Segment
from .croissant import table_files
from .verify import read_segments, read_sums, unlisted_reason, verify_release

log = logging.getLogger("wattlas.datasets")

#: Parquet footer key of every store file a release load writes: ``{"release", "version", "croissant_sha256"}``.
LOADED_FROM_KEY = "wattlas.loaded_from"
_LISTED_CONFLICTS = 20  # a refusal names this many keys, then counts the rest


@dataclass(frozen=True)
class Replacement:
    """Committed rows of one (table, source, key) that a release load replaces.

    ``written_by`` is the release ("name version") whose load wrote them, or None when an
    ingest did (or a wattlas too old to record it): those need ``replace=True``.
    """

    table: str
    source: str
    key: str
    store_rows: int
    release_rows: int
    written_by: str | None

    def describe(self) -> str:
        return (f"{self.table} {self.source}/{self.key}: {self.store_rows:,} rows in the store, "
                f"{self.release_rows:,} in the release")


@dataclass
class LoadReport:
    """What :func:`load_release` wrote."""

    path: Path
    rows: dict[str, int] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    keys: int = 0
    seconds: float = 0.0
    replaced: list[Replacement] = field(default_factory=list)


@dataclass
class _TableFile:
    table: str
    path: Path
    rel: str
    segments: list[tuple[int, Segment]]  # (first row, segment)


def load_release(
    path: str | os.PathLike[str],
    store: Store | str | os.PathLike[str] | None = None,
    *,
    replace: bool = False,
) -> LoadReport:
    """Verify the release in ``path`` (checksums, structure) and load its tables into ``store``.

    Each (table, source, input key) the release carries replaces that key's rows in that table
    only. Raises :class:`~wattlas.errors.ReleaseVerificationError` if the release is damaged or
    references a file outside itself, and :class:`~wattlas.errors.ReleaseError` if it holds a
    table this wattlas does not declare or, unless ``replace``, would replace rows an ingest
    wrote (naming each key with its row counts). A refused load writes nothing.
    """
    started = time.perf_counter()
    root = Path(path).expanduser()
    verify_release(root, croissant=False)  # loading needs intact files, not the validator
    store = store if isinstance(store, Store) else Store(store)
    doc = json.loads((root / CROISSANT_FILE).read_text(encoding="utf-8"))
    files = _table_files(root, doc)
    marker = _marker(root, doc)
    rows = _release_rows(files)
    _check_replacements(root, _replacements(store, rows), replace, loaded=[])
    report = LoadReport(root)
    sources = sorted({source for _, source, _ in rows})
    for source in sources:
        with store.transaction(source) as tx:
            # Under the lock: an ingest between the check above and this commit is caught here.
            mine = {k: n for k, n in rows.items() if k[1] == source}
            found = _replacements(store, mine)
            _check_replacements(root, found, replace, loaded=report.sources)
            report.replaced += found
            for f in files:
                reader = _RowGroupReader(f.path)
                for first, seg in f.segments:
                    if seg.source != source:
                        continue
                    part = tx.new_path(f.table)
                    _copy_rows(reader, first, seg, part, f, marker)
                    # scope="table": a release carrying some tables leaves the key's others alone.
                    tx.put(f.table, seg.key, part, scope="table")
                    report.rows[f.table] = report.rows.get(f.table, 0) + seg.rows
                    report.keys += 1
        report.sources.append(source)
        log.debug("loaded source %s from %s", source, root)
    report.seconds = time.perf_counter() - started
    return report


def _table_files(root: Path, doc: dict) -> list[_TableFile]:
    sums = read_sums(root / SUMS_FILE, [])
    files = []
    for table, (rel, _) in table_files(doc).items():
        if table not in TABLES:
            raise ReleaseError(
                f"{root}: table {table!r} is not declared by this wattlas version (known: "
                f"{', '.join(sorted(TABLES))}); upgrade wattlas to load this release"
            )
        reason = unlisted_reason(root, rel, sums)  # verified above; checked again as it is opened
        if reason is not None:
            raise ReleaseError(f"{root / CROISSANT_FILE}: recordSet {table!r} {reason}; nothing was loaded")
        _, segments, _ = read_segments(root / rel)
        first, placed = 0, []
        for s in segments:
            placed.append((first, s))
            first += s.rows
        files.append(_TableFile(table, root / rel, rel, placed))
    return files


def _marker(root: Path, doc: dict) -> str:
    """The footer value recording which release a loaded file came from."""
    from .build import sha256_file

    return json.dumps({
        "release": str(doc.get("name", root.name)), "version": str(doc.get("version", "")),
        "croissant_sha256": sha256_file(root / CROISSANT_FILE),
    }, separators=(",", ":"))


def _release_rows(files: list[_TableFile]) -> dict[tuple[str, str, str], int]:
    """Rows the release carries per (table, source, key)."""
    rows: dict[tuple[str, str, str], int] = {}
    for f in files:
        for _, seg in f.segments:
            k = (f.table, seg.source, seg.key)
            rows[k] = rows.get(k, 0) + seg.rows
    return rows


def _replacements(store: Store, rows: dict[tuple[str, str, str], int]) -> list[Replacement]:
    """The committed rows that loading ``rows`` would replace, with who wrote them."""
    tables = store.catalog()["tables"]
    out = []
    for (table, source, key), n in sorted(rows.items()):
        entry = tables.get(table, {}).get(source, {}).get(key)
        if entry is None:
            continue
        paths = [store.tables_dir / table / f for f in entry["files"]]
        out.append(Replacement(table, source, key, int(entry["rows"]), n, _written_by(paths)))
    return out


def _written_by(paths: list[Path]) -> str | None:
    """"name version" of the release whose load wrote every one of ``paths``; None if any was not."""
    import pyarrow.parquet as pq

    labels = set()
    for p in paths:
        try:
            raw = (pq.read_metadata(p).metadata or {}).get(LOADED_FROM_KEY.encode())
            info = json.loads(raw) if raw is not None else None
        except (OSError, ValueError):  # unreadable or gone: treat as an ingest's, the safe side
            return None
        if not isinstance(info, dict):
            return None
        labels.add(f"{info.get('release')} {info.get('version')}".strip())
    return " + ".join(sorted(labels)) if labels else None


def _check_replacements(root: Path, found: list[Replacement], replace: bool, loaded: list[str]) -> None:
    """Refuse, unless ``replace``, to replace rows that an ingest (not a release load) wrote."""
    ingested = [r for r in found if r.written_by is None]
    if not ingested or replace:
        return
    lines = "\n".join(f"  - {r.describe()}" for r in ingested[:_LISTED_CONFLICTS])
    if len(ingested) > _LISTED_CONFLICTS:
        rest = ingested[_LISTED_CONFLICTS:]
        lines += f"\n  - and {len(rest):,} more key(s), {sum(r.store_rows for r in rest):,} rows in the store"
    done = (f" Sources {', '.join(loaded)} were loaded before an ingest of these keys committed meanwhile."
            if loaded else " Nothing was loaded.")
    raise ReleaseError(
        f"release {root} would replace rows written by an ingest (not by an earlier release load):\n"
        f"{lines}\n"
        "A release's checksums prove its files intact, not who made them or that they hold the same "
        f"rows.{done} Pass --replace (replace=True) to replace these rows with the release's; "
        "re-ingesting the raw files brings them back."
    )


class _RowGroupReader:
    """Reads row ranges of a Parquet file one row group at a time (keeping the last one)."""

    def __init__(self, path: Path):
        import pyarrow.parquet as pq

        self.file = pq.ParquetFile(path)
        meta = self.file.metadata
        self.starts = []
        start = 0
        for i in range(meta.num_row_groups):
            self.starts.append(start)
            start += meta.row_group(i).num_rows
        self.ends = self.starts[1:] + [start]
        self._cached: tuple[int, object] | None = None

    def _group(self, i: int):
        if self._cached is None or self._cached[0] != i:
            self._cached = (i, self.file.read_row_group(i))
        return self._cached[1]

    def ranges(self, first: int, rows: int):
        """Yield Arrow tables covering rows ``[first, first + rows)`` in order."""
        stop = first + rows
        for i, (s, e) in enumerate(zip(self.starts, self.ends, strict=True)):
            if e <= first or s >= stop:
                continue
            lo, hi = max(first, s), min(stop, e)
            yield self._group(i).slice(lo - s, hi - lo)


def _with_later_columns(part, schema, rel: str):
    """``part`` with the nullable columns declared since its release was built, as nulls.

    A release is immutable; the schema grows (e.g. ``bench_runs.cluster_run_id``). A required
    column that is missing is an error, not a null.
    """
    import pyarrow as pa

    for col in schema:
        if col.name in part.column_names:
            continue
        if not col.nullable:
            raise ReleaseError(f"{rel}: has no column {col.name!r}, which the table requires")
        part = part.append_column(col, pa.nulls(part.num_rows, col.type))
    return part


def _copy_rows(
    reader: _RowGroupReader, first: int, seg: Segment, out: Path, f: _TableFile, marker: str
) -> None:
    import pyarrow.compute as pc

    schema = get_table(f.table).arrow_schema()
    row = first
    with ParquetSink(out, schema) as writer:
        for part in reader.ranges(first, seg.rows):
            src = part.column("source")
            if not pc.all(pc.equal(src, seg.source)).as_py():
                bad = pc.index(pc.not_equal(src, seg.source), True).as_py()
                raise ReleaseError(
                    f"{f.rel}: its footer says rows {first}-{first + seg.rows - 1} are from source "
                    f"{seg.source!r}, but row {row + bad} has source {src[bad].as_py()!r}; the release is "
                    "inconsistent"
                )
            writer.write(_with_later_columns(part, schema, f.rel).select(schema.names).cast(schema))
            row += part.num_rows
        # Provenance in the file itself: committed with the rows, removed with them.
        writer.add_metadata({LOADED_FROM_KEY: marker})
