"""The source registry: every public data set wattlas knows, as plain data.

A source is what ``wattlas ingest SOURCE_ID`` reads: its official files (URL, size, SHA-256
where an authoritative hash is known), licence, citation, paper and the tables it fills. Each
source lives in one module of :mod:`wattlas.ingest.sources` beside the few lines of code that
convert its raw files; this module only gathers them and does no I/O.

Examples
--------
>>> from wattlas.ingest.registry import get_source
>>> src = get_source("azure-llm-2023")
>>> src.tables
('llm_requests',)
>>> [f.pinned for f in src.files]
[True, True]
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType

from ..errors import UnknownSourceError


@dataclass(frozen=True)
class SourceFile:
    """One official file of a source.

    ``sha256`` is pinned only from an authoritative origin (a Git LFS pointer, a checksum the
    publisher lists, or the byte-identical copy in ``../shared/data``); ``hash_origin`` says
    which. Unpinned files get their hash recorded on first download and verified afterwards.

    ``manual_download`` is set when the official host cannot be fetched by a plain HTTP client
    (a Google Drive page): it says where the official page is and what to click. ``url`` then
    holds the official link for the user, and wattlas never downloads it.
    """

    name: str
    url: str | None
    size_bytes: int | None = None
    sha256: str | None = None
    hash_origin: str | None = None
    manual_download: str | None = None

    @property
    def pinned(self) -> bool:
        return self.sha256 is not None

    @property
    def automatic(self) -> bool:
        """Can ``wattlas ingest`` download this file from its official URL by itself."""
        return self.url is not None and self.manual_download is None


@dataclass(frozen=True)
class Source:
    """A public data set: where it comes from, under what terms, and which tables it fills."""

    id: str
    title: str
    tables: tuple[str, ...]
    files: tuple[SourceFile, ...]
    licence: str
    citation: str
    paper: str
    homepage: str
    description: str = ""
    redistributable: bool = True
    kind: str = "trace"  # trace | measurement | sample
    notes: tuple[str, ...] = field(default=())

    def file(self, name: str) -> SourceFile | None:
        for f in self.files:
            if f.name == name:
                return f
        return None

    @property
    def manual_files(self) -> tuple[SourceFile, ...]:
        """The files a user must download by hand (see :attr:`SourceFile.manual_download`)."""
        return tuple(f for f in self.files if not f.automatic)


def google_drive_file(name: str, file_id: str, *, page: str, link: str) -> SourceFile:
    """A file the publisher links only as a Google Drive file page: to be downloaded by hand.

    ``page`` is the official page that links it and ``link`` the link's text there. Drive serves
    an HTML page, not the file, at the linked address, and large files only after a virus-scan
    confirmation page; the direct endpoints are undocumented and rate-limited. wattlas therefore
    never fetches these; the user downloads them and passes them with ``--from``.
    """
    return SourceFile(
        name, f"https://drive.google.com/file/d/{file_id}/view",
        manual_download=(
            f"open {page}, follow the link '{link}' and on Google Drive click Download (for a large "
            "file also 'Download anyway')"
        ),
    )


@cache
def _modules() -> dict[str, ModuleType]:
    pkg = importlib.import_module(f"{__package__}.sources")

    out: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        for src in getattr(module, "SOURCES", ()):
            if src.id in out:
                raise RuntimeError(f"source id {src.id!r} is declared twice")
            out[src.id] = module
    return out


def sources() -> list[Source]:
    """Every registered source, sorted by id."""
    found = {s.id: s for m in _modules().values() for s in m.SOURCES}
    return [found[k] for k in sorted(found)]


def get_source(source_id: str) -> Source:
    """The source with id ``source_id``; the error lists the known ids."""
    from .._names import resolve_name

    by_id = {s.id: s for s in sources()}
    # exact: callers go on using the string they passed (store partitions, staging paths).
    return by_id[resolve_name(source_id, by_id, what="source", error=UnknownSourceError, exact=True)]


def source_module(source_id: str) -> ModuleType:
    """The module that converts ``source_id``'s raw files."""
    get_source(source_id)
    return _modules()[source_id]
