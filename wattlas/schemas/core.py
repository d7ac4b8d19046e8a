"""Tables every source shares: the ingest manifest."""

from ._base import Column, TableSchema

INGEST_MANIFEST = TableSchema(
    name="ingest_manifest",
    description=(
        "One row per raw input file committed to the store: what was read, its checksum, and "
        "how many rows it produced. Re-ingesting the same file replaces its row."
    ),
    columns=(
        Column("input_name", "string", "Input file name as ingested (the key of its rows)", required=True),
        Column("input_path", "string", "Path the file was read from at ingest time"),
        Column("size_bytes", "int64", "Size of the raw file", unit="bytes", required=True),
        Column("sha256", "string", "SHA-256 of the raw file (hex)"),
        Column("tables", "string", "Tables filled from this file and rows written to each, as JSON"),
        Column("rows", "int64", "Rows written from this file, all tables together", unit="rows", required=True),
        Column("ingested_at", "timestamp[us, UTC]", "When the rows were committed", required=True),
        Column("wattlas_version", "string", "wattlas version that wrote the rows", required=True),
    ),
)

TABLES = (INGEST_MANIFEST,)
