"""Release definitions: one small declarative TOML file per release.

The repository's ``datasets/`` folder holds one folder per release with a ``release.toml``::

    name = "azure-llm-2023"
    version = "1.0.0"
    title = "Azure LLM inference trace 2023, normalized"
    description = "What the release holds and why."
    tables = ["llm_requests"]
    where = "source = 'azure-llm-2023'"      # optional, applied to every table
    caveats = ["..."]                        # optional, copied into the dataset card

    [filters]                                # optional, per table, ANDed with `where`
    llm_requests = "input_tokens > 0"

    [sources.my-lab-gpus]                    # required for sources not in the registry
    licence = "CC-BY-4.0"
    citation = "Doe et al., ..."

Licences and citations of registered sources always come from the source registry
(:func:`wattlas.ingest.sources`); a definition only states them for rows whose source the
registry does not know (for example measurements made with ``wattlas bench``).

Examples
--------
>>> d = ReleaseDefinition(name="demo", tables=("llm_requests",), where="source = 'burstgpt'")
>>> d.filter_for("llm_requests")
"(source = 'burstgpt')"
>>> d.with_overrides(version="2.0.0").version
'2.0.0'
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ReleaseError

DEFINITION_FILE = "release.toml"
DEFAULT_VERSION = "1.0.0"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,95}$")
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


@dataclass(frozen=True)
class SourceTerms:
    """Licence and citation a definition states for a source the registry does not know."""

    licence: str
    citation: str
    title: str | None = None
    homepage: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class ReleaseDefinition:
    """What goes into a release: name, version, tables, row filters and the card's text.

    Parameters
    ----------
    name
        Release name: lower-case letters, digits, ``.``, ``_`` and ``-``.
    tables
        Store tables to include, each as one Parquet file and one Croissant RecordSet.
    version
        ``MAJOR.MINOR.PATCH`` (Croissant recommends Semantic Versioning).
    where
        DuckDB SQL condition applied to every table (``source`` and the table's columns): one
        expression, without subqueries (:func:`wattlas.sqlguard.check_condition`).
    filters
        Extra per-table conditions, ANDed with ``where``, under the same rule.
    sources
        :class:`SourceTerms` for source ids that are not in the registry.
    """

    name: str
    tables: tuple[str, ...] = ()
    version: str = DEFAULT_VERSION
    title: str | None = None
    description: str = ""
    where: str | None = None
    filters: dict[str, str] = field(default_factory=dict)
    caveats: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    url: str | None = None
    creator: str | None = None
    citation: str | None = None
    sources: dict[str, SourceTerms] = field(default_factory=dict)
    path: Path | None = None

    def filter_for(self, table: str) -> str | None:
        """The SQL condition for ``table`` (``where`` AND its own filter), or ``None``."""
        parts = [p for p in (self.where, self.filters.get(table)) if p and p.strip()]
        return " AND ".join(f"({p})" for p in parts) or None

    def with_overrides(self, **changes: Any) -> ReleaseDefinition:
        """A copy with the given non-``None`` fields replaced (command-line flags win)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def validate(self) -> ReleaseDefinition:
        """Check names, version and tables; raise :class:`ReleaseError` saying what to fix."""
        from ..schemas import TABLES

        where = f"{self.path}: " if self.path else ""
        if not _NAME.match(self.name):
            raise ReleaseError(
                f"{where}release name {self.name!r} is not allowed: use lower-case letters, digits, "
                "'.', '_' and '-' (it names files and the Hugging Face dataset)"
            )
        if not _SEMVER.match(self.version):
            raise ReleaseError(
                f"{where}version {self.version!r} is not MAJOR.MINOR.PATCH (e.g. 1.0.0), as Croissant "
                "recommends (https://semver.org)"
            )
        if not self.tables:
            raise ReleaseError(f"{where}no tables given: pass --tables T[,T...] or list them in {DEFINITION_FILE}")
        dupes = sorted({t for t in self.tables if self.tables.count(t) > 1})
        if dupes:
            raise ReleaseError(f"{where}table(s) {dupes} listed twice")
        unknown = [t for t in self.tables if t not in TABLES]
        if unknown:
            raise ReleaseError(
                f"{where}unknown table(s) {unknown}; known tables: {', '.join(sorted(TABLES))}"
            )
        stray = sorted(set(self.filters) - set(self.tables))
        if stray:
            raise ReleaseError(f"{where}[filters] names table(s) {stray} that are not in tables = {list(self.tables)}")
        self._check_conditions(where)
        return self

    def _check_conditions(self, where: str) -> None:
        """Each condition must be one SQL expression: a second statement or a subquery would run."""
        from ..sqlguard import check_condition

        named = [("where", self.where), *((f"[filters] {t}", f) for t, f in sorted(self.filters.items()))]
        for label, text in named:
            if text and text.strip():  # blank conditions select every row (filter_for skips them)
                check_condition(text, origin=f"{where}{label}", error=ReleaseError)


_TOP_KEYS = {
    "name": str, "version": str, "title": str, "description": str, "where": str, "url": str,
    "creator": str, "citation": str, "tables": list, "caveats": list, "keywords": list,
    "filters": dict, "sources": dict,
}
_SOURCE_KEYS = {"licence": str, "citation": str, "title": str, "homepage": str, "description": str}


def _check_types(data: dict[str, Any], spec: dict[str, type], where: str) -> None:
    for key, value in data.items():
        if key not in spec:
            hint = " (spelled 'licence')" if key == "license" else ""
            raise ReleaseError(f"{where}: unknown key {key!r}{hint}; known keys: {', '.join(sorted(spec))}")
        if not isinstance(value, spec[key]):
            raise ReleaseError(
                f"{where}: {key!r} must be a {spec[key].__name__}, got {type(value).__name__} ({value!r})"
            )


def _str_list(value: list[Any], key: str, where: str) -> tuple[str, ...]:
    if not all(isinstance(v, str) for v in value):
        raise ReleaseError(f"{where}: every item of {key!r} must be a string")
    return tuple(value)


def load_definition(path: str | Path) -> ReleaseDefinition:
    """Read and validate a ``release.toml`` (``path`` is the file or its folder).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "release.toml"
    >>> _ = p.write_text('name = "demo"\\ntables = ["llm_requests"]\\n')
    >>> load_definition(p).tables
    ('llm_requests',)
    """
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / DEFINITION_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReleaseError(f"release definition {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ReleaseError(f"{path}: not valid TOML: {e}") from None
    where = str(path)
    _check_types(data, _TOP_KEYS, where)
    if "name" not in data:
        raise ReleaseError(f"{where}: 'name' is required")
    sources = {}
    for sid, terms in data.get("sources", {}).items():
        if not isinstance(terms, dict):
            raise ReleaseError(f"{where}: [sources.{sid}] must be a table with licence and citation")
        _check_types(terms, _SOURCE_KEYS, f"{where} [sources.{sid}]")
        missing = [k for k in ("licence", "citation") if not str(terms.get(k, "")).strip()]
        if missing:
            raise ReleaseError(f"{where}: [sources.{sid}] must state {' and '.join(missing)}")
        sources[sid] = SourceTerms(**terms)
    filters = data.get("filters", {})
    if not all(isinstance(v, str) for v in filters.values()):
        raise ReleaseError(f"{where}: every value of [filters] must be a SQL condition string")
    definition = ReleaseDefinition(
        name=data["name"],
        tables=_str_list(data.get("tables", []), "tables", where),
        version=data.get("version", DEFAULT_VERSION),
        title=data.get("title"),
        description=data.get("description", "").strip(),
        where=data.get("where"),
        filters=dict(filters),
        caveats=_str_list(data.get("caveats", []), "caveats", where),
        keywords=_str_list(data.get("keywords", []), "keywords", where),
        url=data.get("url"),
        creator=data.get("creator"),
        citation=data.get("citation"),
        sources=sources,
        path=path,
    )
    return definition.validate()


def find_definition(name: str, roots: list[Path] | None = None) -> Path | None:
    """``ROOT/NAME/release.toml`` for the first root that has it (default: ``./datasets``)."""
    for root in roots if roots is not None else [Path.cwd() / "datasets"]:
        candidate = Path(root) / name / DEFINITION_FILE
        if candidate.is_file():
            return candidate
    return None
