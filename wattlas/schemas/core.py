"""Tables every source shares: the ingest manifest."""

from ._base import Column, TableSchema

INGEST_MANIFEST = TableSchema(
    name="ingest_manifest",
    description=(
        "One row per raw input file committed to the store (a plain file, or a member of an "
        "archive): what was read, its checksum, and how many rows it produced. Re-ingesting the "
        "same file replaces its row."
    ),
    columns=(
        Column(
            "input_name", "string",
            "Raw file name as ingested: the file name, or a name the source gives it within its key "
            "(e.g. `requests/day_00.csv`)",
            required=True,
        ),
        Column(
            "input_key", "string",
            "Store key the file's rows are committed under, when a source groups several files under "
            "one key (e.g. one Supercloud `gpu/NNNN` directory); re-ingesting a key replaces all its "
            "rows. Null in rows written before this column existed (key = `input_name`)",
        ),
        Column(
            "input_path", "string",
            "Path the file was read from at ingest time (`ARCHIVE:MEMBER` for archive members)",
        ),
        Column(
            "archive_name", "string",
            "Archive the file was read from (`.tar.xz`, `.zip`, `.rar`); null for plain files",
        ),
        Column("archive_sha256", "string", "SHA-256 of that archive (hex); null for plain files"),
        Column("size_bytes", "int64", "Size of the raw file (uncompressed size for archive members)", unit="bytes",
               required=True, min=0),
        Column("sha256", "string", "SHA-256 of the raw file (hex; of the member's bytes for archive members)"),
        Column(
            "tables", "string",
            "Tables filled from this file and rows written to each, as JSON (names starting with `_` are "
            "intermediate tables a source combines per key, e.g. Supercloud's job labels)",
        ),
        Column("rows", "int64", "Rows written from this file, all tables together", unit="rows", required=True, min=0),
        Column("ingested_at", "timestamp[us, UTC]", "When the rows were committed", required=True),
        Column("wattlas_version", "string", "wattlas version that wrote the rows", required=True),
    ),
)

TABLES = (INGEST_MANIFEST,)
