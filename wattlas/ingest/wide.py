"""Wide CSV files (one column per minute or per function) unpivoted to long form, streaming.

Azure Functions 2019 has 1,440 minute columns per function row; Huawei's time series have one
column per function (200 to 5,093) per time row. :func:`unpivot_wide` turns such a file into
``(id columns..., _col, _value)`` rows with polars' lazy engine: the id columns travel through a
row index join, not through the unpivot (repeating 64-character hashes 1,440 times per row would
cost gigabytes), and only cells the caller keeps (non-empty, non-zero) are materialized.

On a parse failure :func:`locate_bad_cell` finds the first bad cell (line and column) in one
more pass, so the error can name it.

Examples
--------
>>> import tempfile
>>> p = Path(tempfile.mkdtemp()) / "w.csv"
>>> _ = p.write_text("id,1,2,3\\na,0,5,\\nb,1,,0\\n")
>>> lf = unpivot_wide(p, ids={"id": pl.String}, value_type=pl.Int64,
...                   keep=lambda v: v.is_not_null() & (v > 0))
>>> lf.collect().rows()
[('a', '2', 5), ('b', '1', 1)]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import polars as pl

from ..errors import InputFormatError, quote_input
from .csvread import first_reject, read_header


def read_header_fields(path: Path, display: str, *, allow_empty: bool = False) -> list[str]:
    """The header fields of a wide CSV file (BOM, CR, spaces and quotes stripped)."""
    return list(read_header(path, display, allow_empty=allow_empty, strip_spaces=True))


def unpivot_wide(
    path: Path,
    *,
    ids: Mapping[str, pl.DataType],
    value_type: pl.DataType,
    keep: Callable[[pl.Expr], pl.Expr],
    header: list[str] | None = None,
    skip: frozenset[str] = frozenset(),
) -> pl.LazyFrame:
    """Lazy long form of a wide CSV: the ``ids`` columns, ``_col`` (header name) and ``_value``.

    Every column not in ``ids`` or ``skip`` is a value column read as ``value_type``; only cells
    where ``keep(_value)`` holds are returned, in file order (row by row, then column by column).
    """
    return wide_frames(path, ids=ids, value_type=value_type, keep=keep, header=header, skip=skip)[0]


def wide_frames(
    path: Path,
    *,
    ids: Mapping[str, pl.DataType],
    value_type: pl.DataType,
    keep: Callable[[pl.Expr], pl.Expr],
    header: list[str] | None = None,
    skip: frozenset[str] = frozenset(),
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """(long form as in :func:`unpivot_wide`, one row per file row with ``ids`` and ``skip`` columns).

    Both come from one scan: sink them together with ``pl.collect_all`` to read the file once.
    """
    header = header or read_header_fields(path, path.name)
    values = [c for c in header if c not in ids and c not in skip]
    schema = {c: ids.get(c, pl.String if c in skip else value_type) for c in header}
    lf = pl.scan_csv(path, schema=schema, has_header=True).with_row_index("_row")
    id_frame = lf.select("_row", *ids)
    long = (
        lf.select("_row", *values)
        .unpivot(index="_row", on=values, variable_name="_col", value_name="_value")
        .filter(keep(pl.col("_value")))
        # unpivot yields column-major order; row-major keeps one function's bins together,
        # which is how queries read them and what compresses best.
        .sort("_row", maintain_order=True)
    )
    long = long.join(id_frame, on="_row", how="left", maintain_order="left").select(*ids, "_col", "_value")
    return long, lf.select(*ids, *[c for c in header if c in skip])


def locate_bad_cell(
    path: Path,
    types: Mapping[str, pl.DataType],
    display: str,
    describe: Mapping[str, str] | None = None,
    null_values: tuple[str, ...] = (),
) -> InputFormatError | None:
    """The first cell of ``path`` that does not parse as its column's type, as an error to raise.

    Also finds rows with more or fewer fields than the header. ``types`` maps column names to
    polars types (String columns are not checked); ``describe`` names a type for the message;
    cells equal to one of ``null_values`` are not errors. One DuckDB pass with rejects stored:
    fast on thousands of columns, where one polars expression per column is not.
    """
    header = read_header_fields(path, display, allow_empty=True)
    ddb = {c: _DUCK.get(types.get(c, pl.String), "VARCHAR") if types.get(c) is not None else "VARCHAR"
           for c in header}
    rej = first_reject(path, ddb, null_values=("", *null_values))
    if rej is None:
        return None
    line, column, error_type, csv_line = rej
    if error_type in ("TOO_MANY_COLUMNS", "MISSING_COLUMNS"):
        more = "more" if error_type == "TOO_MANY_COLUMNS" else "fewer"
        return InputFormatError(f"the row has {more} fields than the header's {len(header)}",
                                file=display, line=int(line))
    if error_type != "CAST" or column not in ddb:
        return InputFormatError(f"the row cannot be read ({error_type.lower()}): {quote_input(csv_line)}",
                                file=display, line=int(line))
    fields = csv_line.split(",")
    value = fields[header.index(column)] if len(fields) == len(header) else csv_line
    what = (describe or {}).get(column) or _describe(types[column])
    return InputFormatError(f"{quote_input(value)} is not {what}", file=display, line=int(line), column=column)


_DUCK = {pl.Int64: "BIGINT", pl.Int32: "INTEGER", pl.Float64: "DOUBLE", pl.Float32: "FLOAT", pl.String: "VARCHAR"}


def _describe(t: pl.DataType) -> str:
    if t.is_integer():
        return "an integer"
    if t.is_float():
        return "a number"
    return f"a {t}"
