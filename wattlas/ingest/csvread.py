"""Streaming CSV conversion shared by the trace modules.

A source module declares a :class:`CsvLayout` per header variant: the exact header, the raw
type of each column, and the mapping of normalized columns to raw ones. :func:`convert_csv`
checks the header, streams the file through polars into one zstd Parquet file (never holding
the file in Python objects) and, only when something is wrong, re-reads the file to name the
exact line and column of the first bad value.
"""

from __future__ import annotations

import csv
import gzip
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import polars as pl

from .._parquet import sink_options
from ..errors import InputFormatError, StoreDiskError, quote_input, store_disk_error
from .parts import first_out_of_bounds, select_table


@dataclass(frozen=True)
class RawType:
    """How a raw CSV column is read: polars dtype as scanned, optional parse, and its name."""

    read_as: pl.DataType
    describe: str
    parse: Callable[[pl.Expr, bool], pl.Expr] | None = None


def _ts(fmt: str, tz: str | None = None) -> Callable[[pl.Expr, bool], pl.Expr]:
    def parse(e: pl.Expr, strict: bool = True) -> pl.Expr:
        out = e.str.to_datetime(fmt, time_unit="us", strict=strict)
        # Wall clock as written, zone kept separately (see llm_requests.arrival_tz).
        return out.dt.convert_time_zone("UTC").dt.replace_time_zone(None) if tz else out

    return parse


def matching(regex: str, describe: str) -> RawType:
    """A text column whose non-empty values must match ``regex`` (e.g. ``1=8,2=10010,4=1``).

    Read strictly, a value that does not match fails the scan (so :func:`convert_csv` reports
    its line and column) even in a nullable column, where a null would otherwise slip through.
    """

    def parse(e: pl.Expr, strict: bool = True) -> pl.Expr:
        ok = e.str.contains(regex)
        if not strict:
            return pl.when(ok).then(e)
        # A NUL-prefixed copy of a bad value can never parse as a number: the cast raises.
        fail = pl.when(ok | e.is_null()).then(pl.lit("0")).otherwise(pl.lit("\0") + e).cast(pl.Int64, strict=True)
        return pl.when(ok | e.is_null()).then(e).otherwise(fail.cast(pl.String))

    return RawType(pl.String, describe, parse)


INT = RawType(pl.Int64, "an integer")
FLOAT = RawType(pl.Float64, "a number")
STR = RawType(pl.String, "text")
TS_NAIVE = RawType(pl.String, "a timestamp like 2023-11-16 18:17:03.9799600", _ts("%Y-%m-%d %H:%M:%S%.f"))
TS_OFFSET = RawType(
    pl.String, "a timestamp like 2024-05-10 00:00:00.009930+00:00", _ts("%Y-%m-%d %H:%M:%S%.f%:z", "UTC")
)
TS_ISO_Z = RawType(pl.String, "a timestamp like 2024-10-15T12:00:00.269Z", _ts("%Y-%m-%dT%H:%M:%S%.fZ", "UTC"))


@dataclass(frozen=True)
class CsvLayout:
    """One header variant of a raw CSV file and how its columns map to a table.

    ``columns`` maps a normalized column to the raw column it is read from (renamed, parsed
    per ``raw_types``). ``derive`` adds the columns that cannot be declarative. Raw columns
    in ``nullable`` may be empty; an empty cell anywhere else is an error.
    """

    name: str
    header: tuple[str, ...]
    raw_types: Mapping[str, RawType]
    columns: Mapping[str, str]
    nullable: frozenset[str] = field(default_factory=frozenset)
    derive: Callable[[pl.LazyFrame], pl.LazyFrame] | None = None

    def __post_init__(self) -> None:
        missing = set(self.header) - set(self.raw_types)
        if missing:
            raise ValueError(f"layout {self.name}: no raw type for {sorted(missing)}")


def read_header(
    path: Path, display: str, *, allow_empty: bool = False, strip_spaces: bool = False
) -> tuple[str, ...]:
    """The header fields of a CSV file (BOM, CR and quotes stripped; spaces too if asked).

    An empty file is an error; so is a header without data rows unless ``allow_empty``. The
    header line is read whole: wide files have thousands of columns.
    """
    with open(path, "rb") as fh:
        first = fh.readline()
        has_rows = allow_empty or _any_data_line(fh)
    if not first:
        raise InputFormatError("the file is empty (expected a CSV header line)", file=display)
    if not has_rows:
        raise InputFormatError("the file has a header but no data rows", file=display)
    text = first.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    fields = (h.strip() for h in text.split(",")) if strip_spaces else text.split(",")
    return tuple(h.strip('"') for h in fields)


def _any_data_line(fh) -> bool:
    """Whether the rest of ``fh`` has a non-blank byte (blank lines before the data are allowed)."""
    while chunk := fh.read(1 << 20):
        if chunk.strip():
            return True
    return False


def match_layout(header: tuple[str, ...], layouts: list[CsvLayout], display: str) -> CsvLayout:
    for layout in layouts:
        if header == layout.header:
            return layout
    expected = "\n".join("  " + ",".join(lay.header) for lay in layouts)
    raise InputFormatError(
        f"unexpected header {quote_input(','.join(header))}; expected one of:\n{expected}",
        file=display,
        line=1,
    )


def gunzip(path: Path, out_dir: Path, display: str) -> Path:
    """Stream-decompress ``path`` into ``out_dir``; a truncated or corrupt stream is an error."""
    out = out_dir / (path.name.removesuffix(".gz") or "decompressed")
    try:
        with gzip.open(path, "rb") as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except EOFError as e:
        out.unlink(missing_ok=True)
        raise InputFormatError(
            f"the gzip stream is truncated ({e}); the file is incomplete: download it again",
            file=display,
        ) from e
    except (gzip.BadGzipFile, OSError) as e:
        out.unlink(missing_ok=True)
        raise InputFormatError(f"not a valid gzip file ({e})", file=display) from e
    return out


def convert_csv(
    path: Path,
    layouts: list[CsvLayout],
    out_path: Path,
    *,
    display: str,
    extra: Mapping[str, pl.Expr] | None = None,
    select: list[str] | str,
    row_index: str | None = "request_id",
    table: str | None = None,
) -> tuple[CsvLayout, int]:
    """Stream ``path`` through the matching layout into ``out_path``; return (layout, rows).

    ``extra`` adds constant or derived columns (e.g. the trace name); ``select`` is the output
    column order, or a table name: then the table's declared columns in order and types, those
    the layout does not produce as typed nulls (:func:`wattlas.ingest.parts.select_table`).
    ``row_index`` names a 0-based Int64 row number column (None: none). ``table`` (default:
    ``select`` when it is a table name) declares the bounds the written values must keep.
    Raises :class:`InputFormatError` naming file, line and column, or :class:`StoreDiskError`
    when writing ``out_path`` fails (disk full, ...).
    """
    layout = match_layout(read_header(path, display), layouts, display)
    schema = {c: layout.raw_types[c].read_as for c in layout.header}
    # The reader numbers the rows itself: a later with_row_index would serialize the stream.
    lf = pl.scan_csv(path, schema=schema, has_header=True, raise_if_empty=True, row_index_name=row_index)
    if row_index:
        lf = lf.with_columns(pl.col(row_index).cast(pl.Int64))
    exprs = []
    for norm, raw in layout.columns.items():
        parse = layout.raw_types[raw].parse
        e = pl.col(raw)
        exprs.append((parse(e) if parse else e).alias(norm))
    lf = lf.with_columns(exprs)
    if layout.derive:
        lf = layout.derive(lf)
    if extra:
        lf = lf.with_columns([e.alias(k) for k, e in extra.items()])
    lf = select_table(lf, select) if isinstance(select, str) else lf.select(select)
    try:
        # Without projection pushdown every raw column is parsed, so a ragged row or a bad value
        # in a column the table does not keep (e.g. BurstGPT's `Total tokens`) is still caught.
        # polars' own sink, with the shared codec, level and row groups: streaming the batches
        # through the shared pyarrow writer (smaller files still) was 10-20% slower and took
        # 150 MiB more, and this path is the one raced against DuckDB's COPY.
        lf.sink_parquet(out_path, **sink_options(), optimizations=pl.QueryOptFlags(projection_pushdown=False))
    except (pl.exceptions.PolarsError, OSError) as e:
        out_path.unlink(missing_ok=True)
        raise write_failure(e, out_path, display) or diagnose(path, layout, display) or InputFormatError(
            f"could not be read as {layout.name} CSV: {quote_input(_first_line(str(e)))}", file=display
        ) from e
    _check_empty_cells(path, layout, out_path, display)
    table = table or (select if isinstance(select, str) else None)
    if table:
        _check_bounds(path, layout, out_path, table, display)
    return layout, pl.scan_parquet(out_path).select(pl.len()).collect().item()


def write_failure(exc: BaseException, out_path: Path, display: str) -> StoreDiskError | None:
    """A :class:`StoreDiskError` if ``exc`` is the output's disk failing (full, quota, read-only,
    I/O error), not a problem of the input ``display``; else None."""
    return store_disk_error(exc, out_path.parent, f"writing the rows converted from {display}")


def _check_bounds(path: Path, layout: CsvLayout, out_path: Path, table: str, display: str) -> None:
    """Refuse values outside ``table``'s declared bounds, naming line and raw column.

    ``out_path`` has one row per CSV record, in order, so its row number is the record number.
    """
    v = first_out_of_bounds(out_path, table)
    if v is None:
        return
    out_path.unlink(missing_ok=True)
    line, fields = record_at(path, v.row) or (None, [])
    raw = layout.columns.get(v.column)
    if raw is not None and layout.header.index(raw) < len(fields):
        # The value as written: "-5", "inf", "NaN" (the stored one may be converted, e.g. ms to s).
        cell = fields[layout.header.index(raw)]
        shown = cell if len(cell) <= 40 and cell.isprintable() else quote_input(cell)
        raise InputFormatError(f"{shown} {v.problem}", file=display, line=line, column=raw)
    raise InputFormatError(f"{v.column} = {v.value} {v.problem}", file=display, line=line)


def check_bounds_by_row(path: Path, part: Path, table: str, display: str, row_column: str = "row") -> None:
    """Refuse values of ``part`` outside ``table``'s bounds, naming the line through ``row_column``
    (the 0-based CSV record each output row came from)."""
    v = first_out_of_bounds(part, table)
    if v is None:
        return
    record = pl.scan_parquet(part).select(pl.col(row_column).gather(v.row)).collect().item()
    part.unlink(missing_ok=True)
    raise InputFormatError(
        f"{v.value} {v.problem}", file=display, line=record_line(path, int(record)), column=v.column
    )


def check_bounds_by_file(part: Path, table: str, files: list[Mapping], keys: tuple[str, ...]) -> None:
    """Refuse values of ``part`` outside ``table``'s bounds when its rows come from several CSV
    files, one after another in file order: ``files`` hold ``_path``, ``_display`` and the
    ``keys`` columns that tell a row's file. Names file, line and column."""
    v = first_out_of_bounds(part, table)
    if v is None:
        return
    lf = pl.scan_parquet(part).select(*keys).with_row_index("_r")
    key = lf.filter(pl.col("_r") == v.row).drop("_r").collect().row(0, named=True)
    same = pl.all_horizontal([pl.col(k) == key[k] for k in keys])
    record = lf.filter(same & (pl.col("_r") < v.row)).select(pl.len()).collect().item()
    part.unlink(missing_ok=True)
    f = next((f for f in files if all(f[k] == key[k] for k in keys)), None)
    if f is None:  # pragma: no cover - every row comes from one of the files
        raise InputFormatError(f"{v.describe()} ({key})", file=files[0]["_display"], column=v.column)
    raise InputFormatError(
        v.describe(), file=f["_display"], line=record_line(Path(f["_path"]), int(record)), column=v.column
    )


def _first_line(msg: str) -> str:
    return msg.strip().splitlines()[0] if msg.strip() else msg


# ------------------------------------------------------------------ locating a problem by line
# Lines are physical lines as an editor numbers them (the header is line 1): a quoted field
# with a newline spans two lines, and blank lines count.


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, fields) of each record after the header; a blank line is ``[]``.

    Per-record Python, so used only to locate a problem already found (the error path).
    """
    limit = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)  # a field may be as long as the file
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            prev = reader.line_num
            for fields in reader:
                yield prev + 1, fields
                prev = reader.line_num
    except csv.Error:
        return
    finally:
        csv.field_size_limit(limit)


def record_at(path: Path, record: int) -> tuple[int, list[str]] | None:
    """(physical line, fields) of 0-based data record ``record`` as polars counts records (a
    blank line is a record; a quoted newline is not a new one), or None past the end."""
    return next(islice(_records(path), record, None), None)


def record_line(path: Path, record: int) -> int | None:
    """The physical line where 0-based data record ``record`` starts (see :func:`record_at`)."""
    hit = record_at(path, record)
    return hit[0] if hit else None


def line_at_byte(path: Path, offset: int) -> int:
    """The physical line holding byte ``offset`` of ``path``: newlines before it, plus one."""
    lines, left = 1, offset
    with open(path, "rb") as fh:
        while left > 0 and (chunk := fh.read(min(left, 1 << 20))):
            lines += chunk.count(b"\n")
            left -= len(chunk)
    return lines


def first_wide_record(path: Path, fields: int) -> tuple[int, int, str] | None:
    """(physical line, field count, the fields joined) of the first record with more than
    ``fields`` fields, counting a trailing empty one (``a,b,``) as polars does."""
    for line, rec in _records(path):
        if len(rec) > fields:
            return line, len(rec), ",".join(rec)
    return None


def first_reject(
    path: Path, columns: Mapping[str, str], *, null_values: tuple[str, ...] = ("",)
) -> tuple[int, str | None, str, str] | None:
    """The first row DuckDB cannot read with ``columns`` (name -> DuckDB type), or None.

    Returns (physical line, column or None, error type with underscores, the raw line). Every
    column is parsed (``count(COLUMNS(*))``), ragged rows included; one pass, fast even on files
    with thousands of columns. DuckDB's own line number counts records, so the physical line is
    taken from the byte offset of the line it reports.
    """
    import duckdb

    spec = "{" + ", ".join(f"{_sql_str(c)}: '{t}'" for c, t in columns.items()) + "}"
    nulls = "[" + ", ".join(_sql_str(v) for v in null_values) + "]"
    con = duckdb.connect()
    try:
        con.execute(
            f"SELECT count(COLUMNS(*)) FROM read_csv(?, header = true, columns = {spec}, delim = ',', "
            f"quote = '\"', nullstr = {nulls}, store_rejects = true, auto_detect = false)",
            [str(path)],
        ).fetchall()
        rej = con.execute(
            "SELECT line, line_byte_position, column_name, error_type, csv_line FROM reject_errors "
            "ORDER BY line LIMIT 1"
        ).fetchone()
    except duckdb.Error:
        return None
    finally:
        con.close()
    if rej is None:
        return None
    line, offset, column, error_type, csv_line = rej
    physical = line_at_byte(path, int(offset)) if offset is not None else int(line)
    # DuckDB spells the types with spaces in recent versions ("TOO MANY COLUMNS").
    return physical, column, str(error_type).upper().replace(" ", "_"), str(csv_line).strip()


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def diagnose(path: Path, layout: CsvLayout, display: str) -> InputFormatError | None:
    """Find the first malformed row of ``path``: ragged lines first, then bad values."""
    rej = first_reject(path, dict.fromkeys(layout.header, "VARCHAR"))
    if rej is not None:
        line, _, kind, csv_line = rej
        what = {
            "TOO_MANY_COLUMNS": f"has more than {len(layout.header)} fields",
            "MISSING_COLUMNS": f"has fewer than {len(layout.header)} fields",
        }.get(kind, "is malformed (" + kind.lower().replace("_", " ") + ")")
        return InputFormatError(f"the row {what}: {quote_input(csv_line)}", file=display, line=line)
    strings = pl.scan_csv(
        path, schema={c: pl.String for c in layout.header}, has_header=True
    ).with_row_index("row")
    for col in layout.header:
        raw = layout.raw_types[col]
        if raw.read_as == pl.String and raw.parse is None:
            continue
        parsed = (
            raw.parse(pl.col(col), False) if raw.parse
            else pl.col(col).cast(raw.read_as, strict=False)
        )
        try:
            bad = (
                strings.filter(pl.col(col).is_not_null() & parsed.is_null())
                .select("row", col).head(1).collect()
            )
        except pl.exceptions.PolarsError:
            break  # the text scan fails too: a ragged row (below)
        if bad.height:
            row, value = bad.row(0)
            return InputFormatError(
                f"{quote_input(value)} is not {raw.describe}", file=display, line=record_line(path, int(row)),
                column=col,
            )
    # DuckDB accepts a trailing empty field (`a,b,c,`) that polars refuses: find it here.
    wide = first_wide_record(path, len(layout.header))
    if wide is not None:
        line, count, text = wide
        return InputFormatError(
            f"the row has more than {len(layout.header)} fields ({count}, counting a trailing empty one): "
            f"{quote_input(text)}", file=display, line=line,
        )
    return None


def _check_empty_cells(path: Path, layout: CsvLayout, out_path: Path, display: str) -> None:
    """Empty cells in required columns become nulls when scanned: find and report the first."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(out_path).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    for norm, raw in layout.columns.items():
        if raw in layout.nullable or norm not in names:
            continue
        idx = names.index(norm)
        nulls = 0
        for rg in range(meta.num_row_groups):
            stats = meta.row_group(rg).column(idx).statistics
            nulls += stats.null_count if stats is not None and stats.has_null_count else 0
        if nulls:
            # The raw column, read as text, has an empty cell where the parsed one is null.
            row = (
                pl.scan_csv(path, schema={c: pl.String for c in layout.header}, has_header=True)
                .with_row_index("_row").filter(pl.col(raw).is_null()).select("_row").head(1).collect()
            )
            if not row.height:  # a parse produced the null: say which value
                raise diagnose(path, layout, display) or InputFormatError(
                    f"a value could not be read (expected {layout.raw_types[raw].describe})",
                    file=display, column=raw,
                )
            row = row.item(0, 0)
            out_path.unlink(missing_ok=True)
            raise InputFormatError(
                f"empty value (expected {layout.raw_types[raw].describe})",
                file=display, line=record_line(path, int(row)), column=raw,
            )
