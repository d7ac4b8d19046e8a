"""Load a release into a store (``wattlas ingest release --from DIR``).

Rows go back under their original sources and input keys, which every release file records
in its Parquet footer: one store transaction per source, so a round trip store -> release ->
new store gives the same tables, and loading into a store that already holds some of those
keys replaces their rows (as re-ingesting the raw files would) instead of duplicating them.
The checksums are verified first; a damaged release loads nothing.

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

from ..errors import ReleaseError
from ..schemas import TABLES, get_table
from ..store import Store
from .build import CROISSANT_FILE, Segment
from .croissant import table_files
from .verify import read_segments, verify_release

log = logging.getLogger("wattlas.datasets")


@dataclass
class LoadReport:
    """What :func:`load_release` wrote."""

    path: Path
    rows: dict[str, int] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    keys: int = 0
    seconds: float = 0.0


@dataclass
class _TableFile:
    table: str
    path: Path
    rel: str
    segments: list[tuple[int, Segment]]  # (first row, segment)


def load_release(
    path: str | os.PathLike[str], store: Store | str | os.PathLike[str] | None = None
) -> LoadReport:
    """Verify the release in ``path`` (checksums, structure) and load its tables into ``store``.

    Raises :class:`~wattlas.errors.ReleaseVerificationError` if the release is damaged, and
    :class:`~wattlas.errors.ReleaseError` if it holds a table this wattlas does not declare.
    """
    started = time.perf_counter()
    root = Path(path).expanduser()
    verify_release(root, croissant=False)  # loading needs intact files, not the validator
    store = store if isinstance(store, Store) else Store(store)
    doc = json.loads((root / CROISSANT_FILE).read_text(encoding="utf-8"))
    files = []
    for table, (rel, _) in table_files(doc).items():
        if table not in TABLES:
            raise ReleaseError(
                f"{root}: table {table!r} is not declared by this wattlas version (known: "
                f"{', '.join(sorted(TABLES))}); upgrade wattlas to load this release"
            )
        _, segments, _ = read_segments(root / rel)
        first, placed = 0, []
        for s in segments:
            placed.append((first, s))
            first += s.rows
        files.append(_TableFile(table, root / rel, rel, placed))
    report = LoadReport(root)
    sources = sorted({s.source for f in files for _, s in f.segments})
    for source in sources:
        # All tables of a source in one transaction: a commit replaces each key in every table.
        with store.transaction(source) as tx:
            for f in files:
                reader = _RowGroupReader(f.path)
                for first, seg in f.segments:
                    if seg.source != source:
                        continue
                    part = tx.new_path(f.table)
                    _copy_rows(reader, first, seg, part, f)
                    tx.put(f.table, seg.key, part)
                    report.rows[f.table] = report.rows.get(f.table, 0) + seg.rows
                    report.keys += 1
        log.debug("loaded source %s from %s", source, root)
    report.sources = sources
    report.seconds = time.perf_counter() - started
    return report


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


def _copy_rows(reader: _RowGroupReader, first: int, seg: Segment, out: Path, f: _TableFile) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    schema = get_table(f.table).arrow_schema()
    row = first
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for part in reader.ranges(first, seg.rows):
            src = part.column("source")
            if not pc.all(pc.equal(src, seg.source)).as_py():
                bad = pc.index(pc.not_equal(src, seg.source), True).as_py()
                raise ReleaseError(
                    f"{f.rel}: its footer says rows {first}-{first + seg.rows - 1} are from source "
                    f"{seg.source!r}, but row {row + bad} has source {src[bad].as_py()!r}; the release is "
                    "inconsistent"
                )
            writer.write_table(part.select(schema.names).cast(schema))
            row += part.num_rows
