"""Ingest public traces and measurement sets into the store.

The registry of sources is :mod:`wattlas.ingest.registry`; one module per source family lives
in the subpackage :mod:`wattlas.ingest.sources`.

Examples
--------
>>> from wattlas.ingest import list_sources
>>> "burstgpt" in [s.id for s in list_sources()]
True
"""

from .engine import IngestReport, ingest
from .registry import Source, SourceFile, get_source
from .registry import sources as list_sources

__all__ = ["IngestReport", "Source", "SourceFile", "get_source", "ingest", "list_sources"]
