"""Every normalized table wattlas writes, in one place.

Each domain module declares its tables as :class:`TableSchema` data; this package gathers them.
``python -m wattlas.schemas`` prints the Markdown schema reference used in the README.

Examples
--------
>>> from wattlas.schemas import get_table
>>> get_table("llm_requests").column("arrival_s").unit
's'
"""

from __future__ import annotations

from ..errors import UnknownTableError
from . import bench, core, hpc, llm, measurements, serverless, serving
from ._base import TYPE_NAMES, Column, TableSchema, arrow_type

_MODULES = (core, llm, serverless, hpc, bench, measurements, serving)

TABLES: dict[str, TableSchema] = {t.name: t for m in _MODULES for t in m.TABLES}

__all__ = ["TABLES", "TYPE_NAMES", "Column", "TableSchema", "arrow_type", "get_table", "markdown"]


def get_table(name: str) -> TableSchema:
    """The schema of table ``name``; raises :class:`UnknownTableError` listing the known ones."""
    from .._names import resolve_name

    return TABLES[resolve_name(name, TABLES, what="table", error=UnknownTableError, exact=True)]


def markdown() -> str:
    """The schema reference as Markdown: one section per table, one row per column."""
    out: list[str] = []
    for table in sorted(TABLES.values(), key=lambda t: (t.name != "ingest_manifest", t.name)):
        out.append(f"#### `{table.name}`\n\n{table.description}\n")
        out.append("| column | type | unit | meaning |\n|---|---|---|---|")
        out.append("| `source` | VARCHAR | | Source id (hive partition key `source=<id>`) |")
        for c in table.columns:
            req = " (never null)" if c.required else ""
            desc = c.description.replace("|", "\\|")
            out.append(f"| `{c.name}` | {TYPE_NAMES[c.type]} | {c.unit or ''} | {desc}{req} |")
        for note in table.notes:
            out.append(f"\n{note}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
