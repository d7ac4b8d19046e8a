"""The building blocks of table schemas: plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

#: Logical type names used in schemas, and what they are in Arrow / Parquet / DuckDB.
TYPE_NAMES = {
    "string": "VARCHAR",
    "bool": "BOOLEAN",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "timestamp[us]": "TIMESTAMP",
    "timestamp[us, UTC]": "TIMESTAMP WITH TIME ZONE",
    "date": "DATE",
    "list<string>": "VARCHAR[]",
    "list<float64>": "DOUBLE[]",
    "list<int64>": "BIGINT[]",
}


def arrow_type(name: str) -> pa.DataType:
    """The Arrow type for a logical type name of :data:`TYPE_NAMES`."""
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "bool": pa.bool_(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "float32": pa.float32(),
        "float64": pa.float64(),
        "timestamp[us]": pa.timestamp("us"),
        "timestamp[us, UTC]": pa.timestamp("us", tz="UTC"),
        "date": pa.date32(),
        # As polars writes it (64-bit offsets, item field "element"), so that the store's check of
        # a converter's Parquet schema matches; pyarrow writers keep it through the Arrow metadata.
        "list<string>": pa.large_list(pa.field("element", pa.large_string())),
        "list<float64>": pa.large_list(pa.field("element", pa.float64())),
        "list<int64>": pa.large_list(pa.field("element", pa.int64())),
    }
    try:
        return types[name]
    except KeyError:
        raise ValueError(f"unknown column type {name!r}; known: {sorted(types)}") from None


@dataclass(frozen=True)
class Column:
    """One column of a normalized table.

    ``unit`` is the physical unit (``s``, ``J``, ``W``, ``tokens``...) or ``None`` for
    identifiers and labels; ``required`` columns may never be null.

    Bounds, enforced when raw files are ingested: ``min`` and ``max`` (inclusive, in the column's
    unit) for numeric columns; ``finite`` refuses ``inf``, ``-inf`` and ``NaN`` and is the
    default for float columns (declare ``finite=False`` where the source really writes them).
    A null is never out of bounds (``required`` says whether it may occur).
    """

    name: str
    type: str
    description: str
    unit: str | None = None
    required: bool = False
    min: float | None = None
    max: float | None = None
    finite: bool | None = None

    def __post_init__(self) -> None:
        if self.type not in TYPE_NAMES:
            raise ValueError(f"column {self.name!r}: unknown type {self.type!r}")
        numeric = self.type.startswith(("int", "float"))
        if (self.min is not None or self.max is not None or self.finite) and not numeric:
            raise ValueError(f"column {self.name!r}: bounds are for numeric columns, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"column {self.name!r}: min {self.min} is above max {self.max}")

    @property
    def must_be_finite(self) -> bool:
        """Whether ``inf``/``NaN`` are refused: declared, else true for float columns."""
        return self.type.startswith("float") if self.finite is None else self.finite

    @property
    def bounded(self) -> bool:
        return self.min is not None or self.max is not None or self.must_be_finite


@dataclass(frozen=True)
class TableSchema:
    """A normalized table: its documented columns, partitioned by ``source`` in the store.

    ``source`` is not stored inside the Parquet files; it is the hive partition key of the
    directory (``source=<id>``) and appears as the first column of every view.
    """

    name: str
    description: str
    columns: tuple[Column, ...]
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name!r} declares a column twice")
        if "source" in names:
            raise ValueError(f"table {self.name!r}: 'source' is the partition key, not a column")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name!r} has no column {name!r}")

    def arrow_schema(self) -> pa.Schema:
        import pyarrow as pa

        return pa.schema(
            [pa.field(c.name, arrow_type(c.type), nullable=not c.required) for c in self.columns]
        )

    def duckdb_columns(self) -> list[tuple[str, str]]:
        return [(c.name, TYPE_NAMES[c.type]) for c in self.columns]
