"""Ingest public traces and measurement sets into the store.

Examples
--------
>>> from wattlas.ingest import sources
>>> "burstgpt" in [s.id for s in sources()]
True
"""

from .engine import IngestReport, ingest
from .registry import Source, SourceFile, get_source, sources

__all__ = ["IngestReport", "Source", "SourceFile", "get_source", "ingest", "sources"]
