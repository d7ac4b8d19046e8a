"""``croissant.json``: the release described in MLCommons Croissant 1.1 (JSON-LD).

One ``cr:FileObject`` per Parquet file (relative ``contentUrl``, ``sha256``, ``contentSize``)
and one ``cr:RecordSet`` per table whose fields are the table's columns, typed and described
from :mod:`wattlas.schemas`. The document is plain JSON written by wattlas; the reference
implementation (``mlcroissant``) is needed only to validate or load it.

Examples
--------
>>> DATA_TYPES["timestamp[us, UTC]"]
'sc:DateTime'
>>> field_description(Column("arrival_s", "float64", "Arrival time", unit="s", required=True))
'Arrival time. Unit: s. Never null.'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..schemas import Column, get_table
from .upstream import licence_url

if TYPE_CHECKING:
    from .build import ReleaseTable
    from .definitions import ReleaseDefinition
    from .upstream import Upstream

CONFORMS_TO = "http://mlcommons.org/croissant/1.1"
PARQUET = "application/x-parquet"

#: The standard JSON-LD context of Croissant 1.1 documents (as in the specification's examples).
CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "description": {"@container": "@language"},
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "name": {"@container": "@language"},
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}

#: Croissant atomic data type of each wattlas column type.
DATA_TYPES = {
    "string": "sc:Text",
    "bool": "sc:Boolean",
    "int32": "sc:Integer",
    "int64": "sc:Integer",
    "float32": "sc:Float",
    "float64": "sc:Float",
    "timestamp[us]": "sc:DateTime",
    "timestamp[us, UTC]": "sc:DateTime",
    "date": "sc:Date",
    "list<string>": "sc:Text",  # with isArray (see _record_set)
    "list<float64>": "sc:Float",
    "list<int64>": "sc:Integer",
}

SOURCE_COLUMN = Column(
    "source", "string",
    "Source id: the upstream data set this row comes from (its licence and citation are in the "
    "dataset card); the store's partition key",
    required=True,
)


def field_description(col: Column) -> str:
    """A column's documentation as one sentence block: meaning, unit, nullability."""
    text = col.description if col.description.endswith((".", "?", "!")) else col.description + "."
    if col.unit:
        text += f" Unit: {col.unit}."
    if col.type == "timestamp[us]":
        text += " Wall-clock time without a time zone."
    elif col.type == "timestamp[us, UTC]":
        text += " UTC."
    if col.required:
        text += " Never null."
    return text


def _creator(definition: ReleaseDefinition) -> dict[str, str]:
    if definition.creator:
        return {"@type": "sc:Person", "name": definition.creator}
    return {"@type": "sc:Organization", "name": "wattlas"}


def _licences(upstream: list[Upstream]) -> list[Any]:
    out: list[Any] = []
    for u in upstream:
        url = licence_url(u.licence)
        item: Any = url if url else {"@type": "sc:CreativeWork", "name": u.licence}
        if item not in out:
            out.append(item)
    return out


def cite_as(definition: ReleaseDefinition, upstream: list[Upstream]) -> str:
    """How to cite the release: its own citation (if given), then every upstream source's."""
    parts = [definition.citation] if definition.citation else []
    parts += [f"{u.id}: {u.citation}" for u in upstream]
    return "\n".join(parts)


def croissant_metadata(
    definition: ReleaseDefinition,
    tables: list[ReleaseTable],
    upstream: list[Upstream],
    *,
    date_published: str,
    description: str,
) -> dict[str, Any]:
    """The Croissant 1.1 JSON-LD document of a release (a plain dict, ready for ``json.dump``)."""
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "name": definition.name,
        "description": description,
        "conformsTo": CONFORMS_TO,
        "version": definition.version,
        "datePublished": date_published,
        "license": _licences(upstream),
        "creator": _creator(definition),
        "citeAs": cite_as(definition, upstream),
        "keywords": list(dict.fromkeys(("wattlas", *definition.keywords))),
        "isBasedOn": list(dict.fromkeys(u for x in upstream for u in (x.homepage, x.paper) if u)),
    }
    if definition.url:
        doc["url"] = definition.url
    doc["distribution"] = [
        {
            "@type": "cr:FileObject",
            "@id": t.file,
            "name": t.file.rsplit("/", 1)[-1],
            "description": f"Table {t.name}: {t.rows:,} rows from {', '.join(t.sources)} (zstd Parquet).",
            "contentUrl": t.file,
            "encodingFormat": PARQUET,
            "contentSize": f"{t.size_bytes} B",
            "sha256": t.sha256,
        }
        for t in tables
    ]
    doc["recordSet"] = [_record_set(t) for t in tables]
    return doc


def _record_set(t: ReleaseTable) -> dict[str, Any]:
    schema = get_table(t.name)
    fields = []
    for col in (SOURCE_COLUMN, *schema.columns):
        fields.append({
            "@type": "cr:Field",
            "@id": f"{t.name}/{col.name}",
            "name": col.name,
            "description": field_description(col),
            "dataType": DATA_TYPES[col.type],
            "source": {"fileObject": {"@id": t.file}, "extract": {"column": col.name}},
            # Croissant 1.1 arrays: a list of any length of the data type.
            **({"isArray": True, "arrayShape": "-1"} if col.type.startswith("list<") else {}),
        })
    description = schema.description
    if schema.notes:
        description += " " + " ".join(schema.notes)
    return {
        "@type": "cr:RecordSet",
        "@id": t.name,
        "name": t.name,
        "description": description,
        "field": fields,
    }


def _text(value: Any) -> str:
    """A JSON-LD text value that may be a language map (``{"en": ...}``)."""
    if isinstance(value, dict):
        return str(value.get("en", next(iter(value.values()), "")))
    return "" if value is None else str(value)


def table_files(doc: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    """``{record set id: (contentUrl of its file, [columns])}`` from a release's Croissant document.

    Raises ``ValueError`` naming what is missing when the document does not have the shape
    wattlas writes (one FileObject per RecordSet, fields extracting columns).
    """
    objects = {}
    for d in doc.get("distribution") or []:
        if isinstance(d, dict) and d.get("@type") == "cr:FileObject" and "@id" in d:
            objects[d["@id"]] = d
    out: dict[str, tuple[str, list[str]]] = {}
    for rs in doc.get("recordSet") or []:
        rid = rs.get("@id") if isinstance(rs, dict) else None
        if not rid:
            raise ValueError("a recordSet has no @id")
        files: set[str] = set()
        columns: list[str] = []
        for f in rs.get("field") or []:
            src = f.get("source") or {}
            ref = (src.get("fileObject") or {}).get("@id")
            column = (src.get("extract") or {}).get("column")
            if ref not in objects:
                raise ValueError(f"field {f.get('@id')!r} of recordSet {rid!r} refers to unknown file {ref!r}")
            if not column:
                raise ValueError(f"field {f.get('@id')!r} of recordSet {rid!r} extracts no column")
            files.add(ref)
            columns.append(column)
        if len(files) != 1:
            raise ValueError(f"recordSet {rid!r} must read exactly one file, reads {sorted(files)}")
        url = objects[files.pop()].get("contentUrl")
        if not isinstance(url, str):
            raise ValueError(f"the file of recordSet {rid!r} has no contentUrl")
        out[rid] = (url, columns)
    if not out:
        raise ValueError("no recordSet")
    return out
