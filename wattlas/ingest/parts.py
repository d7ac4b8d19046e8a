"""Small helpers that conversion tasks share: counters for the ingest summary, part merging.

A task reports counts the user should see (``[N/A]`` cells read as null, rows skipped, ...) by
calling :func:`record_stats` on its output directory; the engine adds them up over all tasks
into :attr:`wattlas.ingest.IngestReport.stats`, which ``wattlas ingest`` prints.

Examples
--------
>>> import tempfile
>>> d = Path(tempfile.mkdtemp())
>>> record_stats(d, {"gpu_samples: '[N/A]' cells read as null": 3})
>>> record_stats(d, {"gpu_samples: '[N/A]' cells read as null": 2})
>>> read_stats(d)
{"gpu_samples: '[N/A]' cells read as null": 5}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATS_FILE = "stats.json"
ROW_GROUP = 1 << 20


def record_stats(out_dir: Path, counters: Mapping[str, int]) -> None:
    """Add ``counters`` to the task's ``stats.json`` in ``out_dir`` (zero counts are dropped)."""
    current = read_stats(out_dir)
    for k, v in counters.items():
        if v:
            current[k] = current.get(k, 0) + int(v)
    if current:
        tmp = out_dir / f".{STATS_FILE}.tmp"
        tmp.write_text(json.dumps(current, sort_keys=True))
        os.replace(tmp, out_dir / STATS_FILE)


def read_stats(out_dir: Path) -> dict[str, int]:
    """The counters recorded in ``out_dir`` (empty when none)."""
    try:
        return json.loads((out_dir / STATS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def collect_stats(root: Path) -> dict[str, int]:
    """Sum every ``stats.json`` under ``root``."""
    out: dict[str, int] = {}
    for f in sorted(root.rglob(STATS_FILE)):
        for k, v in read_stats(f.parent).items():
            out[k] = out.get(k, 0) + v
    return out


def merge_parts(parts: list[Path], out: Path) -> Path:
    """Concatenate Parquet ``parts`` (same columns) into ``out`` in order, streamed; remove them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(parts[0])
    pending: list[pa.Table] = []
    rows = 0
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for p in parts:
            pf = pq.ParquetFile(p)
            for i in range(pf.num_row_groups):
                t = pf.read_row_group(i).cast(schema)
                pending.append(t)
                rows += t.num_rows
                # Tiny parts would become tiny row groups: buffer up to ROW_GROUP rows.
                if rows >= ROW_GROUP:
                    writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP)
                    pending, rows = [], 0
        if pending:
            writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP)
    for p in parts:
        if p != out:
            p.unlink(missing_ok=True)
    return out


def polars_type(name: str):
    """The polars dtype for a schema type name (see :data:`wattlas.schemas.TYPE_NAMES`)."""
    import polars as pl

    return {
        "string": pl.String, "bool": pl.Boolean, "int32": pl.Int32, "int64": pl.Int64,
        "float32": pl.Float32, "float64": pl.Float64, "timestamp[us]": pl.Datetime("us"),
        "timestamp[us, UTC]": pl.Datetime("us", "UTC"), "date": pl.Date, "list<string>": pl.List(pl.String),
        "list<float64>": pl.List(pl.Float64), "list<int64>": pl.List(pl.Int64),
    }[name]


def select_table(lf, table: str, **values):
    """``lf`` reduced to ``table``'s columns in order and declared types.

    Keyword arguments give expressions for columns (by name); every other declared column is
    taken from ``lf`` if it has it, else null.
    """
    import polars as pl

    from ..schemas import get_table

    have = set(lf.collect_schema().names())
    exprs = []
    for c in get_table(table).columns:
        t = polars_type(c.type)
        if c.name in values:
            e = values[c.name]
            e = e if isinstance(e, pl.Expr) else pl.lit(e)
        elif c.name in have:
            e = pl.col(c.name)
        else:
            e = pl.lit(None)
        exprs.append(e.cast(t).alias(c.name))
    return lf.select(exprs)


def sink_table(lf, table: str, out: Path, *, display: str | None = None, **values) -> Path:
    """Write ``lf`` as a part of ``table`` (see :func:`select_table`) to ``out``; return ``out``.

    Values outside the table's declared bounds are refused (:func:`check_bounds`), naming
    ``display`` (the raw file) or else ``out``.
    """
    select_table(lf, table, **values).sink_parquet(out, compression="zstd", statistics=True)
    check_bounds(out, table, display or out.name)
    return out


def null_columns(table: str, *, have: set[str] | frozenset[str] = frozenset()):
    """``{column: typed null}`` for every column of ``table`` not in ``have`` (for ``convert_csv`` extras)."""
    import polars as pl

    from ..schemas import get_table

    return {c.name: pl.lit(None, polars_type(c.type)) for c in get_table(table).columns if c.name not in have}


def cast_table(lf, table: str):
    """``lf`` with each column of ``table`` it has cast to the declared type (others untouched)."""
    import polars as pl

    from ..schemas import get_table

    have = set(lf.collect_schema().names())
    return lf.with_columns(
        pl.col(c.name).cast(polars_type(c.type)) for c in get_table(table).columns if c.name in have
    )


@dataclass(frozen=True)
class BoundViolation:
    """The first value of a Parquet part outside its column's declared bounds."""

    row: int  # 0-based row of the part
    column: str
    value: object
    problem: str  # e.g. "is below the minimum 0"

    def describe(self) -> str:
        return f"{self.value} {self.problem}"


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def bound_checks(table: str, have: set[str] | frozenset[str]) -> dict[str, list[tuple[Any, str]]]:
    """Per column of ``table`` in ``have``: (polars expression true where the value breaks a bound,
    the problem in words). A null is never a violation: the expressions are null there."""
    import polars as pl

    from ..schemas import get_table

    out: dict[str, list[tuple[Any, str]]] = {}
    for c in get_table(table).columns:
        if c.name not in have or not c.bounded:
            continue
        col, checks = pl.col(c.name), []
        if c.must_be_finite:
            checks.append((~col.is_finite(), "is not a finite number"))
        if c.min is not None:
            checks.append((col < c.min, f"is below the minimum {_bound(c.min)}"))
        if c.max is not None:
            checks.append((col > c.max, f"is above the maximum {_bound(c.max)}"))
        out[c.name] = checks
    return out


def first_out_of_bounds(part: Path, table: str) -> BoundViolation | None:
    """The first value of ``part`` (a Parquet file of ``table``'s columns, or some of them) that
    breaks its column's declared bounds, or None.

    One vectorized pass over the bounded columns: Parquet columns decode far faster than the
    CSV they came from, so this adds little to an ingest. Only on a hit is the row looked up.
    """
    import polars as pl
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(part)
    checks = bound_checks(table, set(pf.schema_arrow.names))
    for name in [n for n in checks if _within_by_statistics(pf, table, n)]:
        del checks[name]
    if not checks:
        return None
    lf = pl.scan_parquet(part)
    flat = [(name, expr, problem) for name, cs in checks.items() for expr, problem in cs]
    hits = lf.select([expr.any().alias(str(i)) for i, (_, expr, _) in enumerate(flat)]).collect().row(0)
    bad = [f for f, hit in zip(flat, hits, strict=True) if hit]
    if not bad:
        return None
    found = (
        lf.with_row_index("_row")
        .filter(pl.any_horizontal([expr for _, expr, _ in bad]))
        .select("_row", *dict.fromkeys(name for name, _, _ in bad))
        .head(1).collect().row(0, named=True)
    )
    for name, expr, problem in bad:  # the first broken bound of that row, in column order
        if pl.DataFrame({name: [found[name]]}).select(expr).item():
            return BoundViolation(int(found["_row"]), name, found[name], problem)
    raise AssertionError("a row flagged out of bounds breaks no bound")  # pragma: no cover


def _within_by_statistics(pf: Any, table: str, name: str) -> bool:
    """Whether the row-group statistics alone prove integer column ``name`` inside its bounds.

    Integers are always finite, so min and max settle it without decoding a value; floats are
    always scanned (Parquet statistics leave NaN out).
    """
    from ..schemas import get_table

    column = next(c for c in get_table(table).columns if c.name == name)
    if column.type.startswith("float"):
        return False
    meta = pf.metadata
    idx = pf.schema_arrow.get_field_index(name)
    for rg in range(meta.num_row_groups):
        stats = meta.row_group(rg).column(idx).statistics
        if stats is None or not stats.has_min_max:
            if stats is not None and stats.null_count == meta.row_group(rg).num_rows:
                continue  # all null: nothing to check
            return False
        if (column.min is not None and stats.min < column.min) or (column.max is not None and stats.max > column.max):
            return False
    return True


def check_bounds(part: Path, table: str, display: str) -> None:
    """Raise :class:`InputFormatError` (file and column) if ``part`` holds an out-of-bounds value.

    For parts whose rows map to raw lines (one row per CSV record) use
    :func:`wattlas.ingest.csvread.convert_csv`, which also names the line.
    """
    from ..errors import InputFormatError

    v = first_out_of_bounds(part, table)
    if v is not None:
        part.unlink(missing_ok=True)
        raise InputFormatError(
            f"{v.describe()} (row {v.row + 1} of the converted {table} rows)", file=display, column=v.column
        )
