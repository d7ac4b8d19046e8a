"""Check a release directory: every checksum, the Croissant metadata, the card's data files.

:func:`verify_release` collects every problem before failing, each naming the file that is
wrong, so one run tells the whole story of a damaged or edited release.

Examples
--------
>>> report = verify_release("out/azure-llm-2023")          # doctest: +SKIP
>>> report.tables                                           # doctest: +SKIP
{'llm_requests': 28185}
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from ..errors import ReleaseError, ReleaseVerificationError
from .build import CARD_FILE, CROISSANT_FILE, FOOTER_FORMAT, FOOTER_KEY, SUMS_FILE, Segment, sha256_file
from .croissant import CONFORMS_TO, PARQUET, table_files

log = logging.getLogger("wattlas.datasets")

_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


@dataclass
class VerifyReport:
    """A release that passed verification: what was checked."""

    path: Path
    files: dict[str, int] = field(default_factory=dict)  # relative path -> bytes
    tables: dict[str, int] = field(default_factory=dict)  # table -> rows
    croissant_validated: bool = False
    mlcroissant_version: str | None = None
    warnings: list[str] = field(default_factory=list)


def read_sums(path: Path, problems: list[str]) -> dict[str, str]:
    """``{relative path: sha256}`` from a ``SHA256SUMS`` file; bad lines become problems."""
    sums: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(f"{SUMS_FILE}: missing, so no file can be checked")
        return sums
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"{SUMS_FILE}: unreadable ({e})")
        return sums
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _SUM_LINE.match(line)
        rel = m.group(2) if m else ""
        pure = PurePosixPath(rel)
        if not m or pure.is_absolute() or ".." in pure.parts:
            problems.append(f"{SUMS_FILE} line {n}: expected '<sha256>  <relative path>', got {line[:80]!r}")
            continue
        sums[rel] = m.group(1).lower()
    return sums


def _lexical_reason(ref: object) -> str | None:
    if not isinstance(ref, str) or not ref.strip():
        return f"{ref!r} is not a relative file path"
    if urlsplit(ref).scheme:
        return f"{ref} is a URL"
    pure = PurePosixPath(ref)
    if pure.is_absolute():
        return f"{ref} is an absolute path"
    if ".." in pure.parts:
        return f"{ref} leaves the directory through '..'"
    return None


def outside_reason(root: Path, ref: object) -> str | None:
    """Why ``ref``, a path a release's metadata gives, does not name a file inside ``root``; None if it does.

    A release is its directory: every file it references must be one whose checksum
    ``SHA256SUMS`` holds, so URLs, absolute paths, ``..`` and links leading out are refused
    (whatever the entry's ``encodingFormat``), before anything opens them.
    """
    reason = _lexical_reason(ref)
    if reason is not None:
        return reason
    target = (root / str(ref)).resolve()
    if not target.is_relative_to(root.resolve()):
        return f"{ref} is a symbolic link to {target}"
    return None


def listed_name(ref: str, sums: dict[str, str]) -> str | None:
    """The ``SHA256SUMS`` entry naming the file ``ref`` (``./`` and ``//`` aside), or None."""
    want = PurePosixPath(ref).as_posix()
    return next((k for k in sums if PurePosixPath(k).as_posix() == want), None)


def unlisted_reason(root: Path, ref: object, sums: dict[str, str]) -> str | None:
    """Why ``ref`` is not a checksummed file of the release in ``root`` (see :func:`outside_reason`)."""
    reason = outside_reason(root, ref)
    if reason is not None:
        return f"points outside the release: {reason}"
    assert isinstance(ref, str)
    if listed_name(ref, sums) is None:
        return f"points to {ref}, which {SUMS_FILE} does not list, so no checksum covers it"
    if not (root / ref).is_file():
        return f"points to {ref}, which is missing"
    return None


def read_segments(path: Path) -> tuple[str, list[Segment], int]:
    """(table, segments, rows) recorded in a release Parquet file's footer.

    Raises ``ValueError`` saying what is wrong when the footer is absent or inconsistent.
    """
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except (OSError, ValueError) as e:  # pyarrow raises ArrowInvalid (a ValueError) on garbage
        raise ValueError(f"not a readable Parquet file ({e})") from e
    raw = (meta.metadata or {}).get(FOOTER_KEY.encode())
    if raw is None:
        raise ValueError(f"no '{FOOTER_KEY}' footer: not written by `wattlas release build`")
    try:
        footer = json.loads(raw)
        if footer.get("format") != FOOTER_FORMAT:
            raise ValueError(f"footer format {footer.get('format')!r}; this wattlas reads {FOOTER_FORMAT}")
        segments = [Segment(s["source"], s["key"], int(s["rows"])) for s in footer["segments"]]
        table = footer["table"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"damaged '{FOOTER_KEY}' footer ({e})") from e
    total = sum(s.rows for s in segments)
    if total != meta.num_rows:
        raise ValueError(f"footer accounts for {total} rows, the file has {meta.num_rows}")
    return table, segments, meta.num_rows


def _front_matter_paths(card: str) -> list[str]:
    if not card.startswith("---"):
        return []
    block = card.split("\n---", 1)[0]
    return [m.group(1) for m in re.finditer(r'^\s+path:\s*"?([^"\n]+?)"?\s*$', block, re.M)]


def verify_release(path: str | os.PathLike[str], *, croissant: bool = True) -> VerifyReport:
    """Verify the release in ``path``; raise :class:`ReleaseVerificationError` listing every problem.

    Checks that every file of ``SHA256SUMS`` exists inside the directory with its checksum, that
    every file ``croissant.json`` or the card references (whatever its encodingFormat) is one of
    them (no URL, absolute path, ``..`` or link leading out), that ``croissant.json`` is valid
    JSON describing each data file with its true sha256 and size and each table's columns, that
    every Parquet file carries its row provenance, and (``croissant=True``) that the reference
    implementation ``mlcroissant`` validates ``croissant.json``. The checks of wattlas's own do
    not depend on ``mlcroissant``: ``croissant=False`` (as a load runs) makes them all.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ReleaseError(f"{root}: no such release directory")
    problems: list[str] = []
    report = VerifyReport(root)
    sums = read_sums(root / SUMS_FILE, problems)
    actual: dict[str, str] = {}
    for rel, expected in sorted(sums.items()):
        p = root / rel
        reason = outside_reason(root, rel)
        if reason is not None:  # a link out: the checksum would vouch for a file not in the release
            problems.append(f"{rel}: listed in {SUMS_FILE} but outside the release ({reason})")
            continue
        if not p.is_file():
            problems.append(f"{rel}: missing (listed in {SUMS_FILE})")
            continue
        got = sha256_file(p)
        actual[rel] = got
        report.files[rel] = p.stat().st_size
        if got != expected:
            problems.append(
                f"{rel}: changed since the release was built (SHA-256 {got}, {SUMS_FILE} says {expected})"
            )
    for required in (CARD_FILE, CROISSANT_FILE):
        if (root / required).is_file() and required not in sums and (root / SUMS_FILE).is_file():
            problems.append(f"{required}: not listed in {SUMS_FILE}")
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        hidden = any(part.startswith(".") for part in p.relative_to(root).parts)
        if p.is_file() and not hidden and rel != SUMS_FILE and rel not in sums:
            report.warnings.append(f"{rel}: not covered by {SUMS_FILE} (not part of the release)")

    doc = _check_croissant(root, sums, actual, problems, report)
    if (root / CARD_FILE).is_file():
        card = (root / CARD_FILE).read_text(encoding="utf-8", errors="replace")
        for rel in _front_matter_paths(card):
            reason = unlisted_reason(root, rel, sums)
            if reason is not None:
                problems.append(f"{CARD_FILE}: front matter data file {reason}")
    elif CARD_FILE not in sums:
        problems.append(f"{CARD_FILE}: missing (the dataset card)")
    if croissant and doc is not None:
        _validate_with_mlcroissant(root / CROISSANT_FILE, problems, report)
    if problems:
        raise ReleaseVerificationError(str(root), problems)
    return report


def _check_croissant(
    root: Path, sums: dict[str, str], actual: dict[str, str], problems: list[str], report: VerifyReport
) -> dict[str, Any] | None:
    import pyarrow.parquet as pq

    path = root / CROISSANT_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"{CROISSANT_FILE}: missing (the Croissant metadata)")
        return None
    except UnicodeDecodeError as e:
        problems.append(f"{CROISSANT_FILE}: not UTF-8 text ({e})")
        return None
    except json.JSONDecodeError as e:
        problems.append(f"{CROISSANT_FILE}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})")
        return None
    if not isinstance(doc, dict):
        problems.append(f"{CROISSANT_FILE}: the top level is not a JSON object")
        return None
    conforms = doc.get("conformsTo")
    if CONFORMS_TO not in (conforms if isinstance(conforms, list) else [conforms]):
        problems.append(f"{CROISSANT_FILE}: conformsTo is {conforms!r}, expected {CONFORMS_TO!r}")
    good = _check_distributions(root, doc, sums, actual, problems)
    try:
        tables = table_files(doc)
    except (ValueError, AttributeError, TypeError) as e:
        problems.append(f"{CROISSANT_FILE}: {e}")
        return doc
    for rid, (url, columns) in tables.items():
        p = root / url
        if url not in good:
            continue  # reported above
        if good[url] != PARQUET:
            problems.append(
                f"{CROISSANT_FILE}: recordSet {rid!r} reads {url}, whose encodingFormat is {good[url]!r}; "
                f"wattlas releases are Parquet ({PARQUET})"
            )
            continue
        try:
            names = set(pq.read_schema(p).names)
        except (OSError, ValueError) as e:
            problems.append(f"{url}: not a readable Parquet file ({e})")
            continue
        missing = [c for c in columns if c not in names]
        if missing:
            problems.append(f"{CROISSANT_FILE}: recordSet {rid!r} reads column(s) {missing} that {url} lacks")
        try:
            table, _, rows = read_segments(p)
        except ValueError as e:
            problems.append(f"{url}: {e}")
            continue
        if table != rid:
            problems.append(f"{url}: holds table {table!r} but croissant.json reads it as {rid!r}")
        report.tables[rid] = rows
    return doc


def _check_distributions(
    root: Path, doc: dict[str, Any], sums: dict[str, str], actual: dict[str, str], problems: list[str]
) -> dict[str, Any]:
    """Check every distribution, whatever its encodingFormat; ``{contentUrl: encodingFormat}`` of good ones.

    Each must name a file of the release that SHA256SUMS covers, with its true sha256 and size:
    mlcroissant and other readers open every distribution, not only the ones wattlas loads.
    """
    good: dict[str, Any] = {}
    distribution = doc.get("distribution") or []
    if not isinstance(distribution, list):
        problems.append(f"{CROISSANT_FILE}: distribution is not a list of files")
        return good
    for d in distribution:
        kind = d.get("@type") if isinstance(d, dict) else None
        if kind == "cr:FileSet":
            _check_file_set(root, d, sums, problems)
            continue
        if kind != "cr:FileObject":
            problems.append(f"{CROISSANT_FILE}: distribution {_entry(d)} is not a cr:FileObject or cr:FileSet")
            continue
        url = d.get("contentUrl")
        reason = unlisted_reason(root, url, sums)
        if reason is not None:
            problems.append(f"{CROISSANT_FILE}: distribution {_entry(d)} {reason}")
            continue
        p = root / url
        sha = actual.get(listed_name(url, sums) or url) or sha256_file(p)
        if d.get("sha256") != sha:
            problems.append(f"{CROISSANT_FILE}: sha256 of {url} is {d.get('sha256')!r} but the file's is {sha}")
        size = f"{p.stat().st_size} B"
        if d.get("contentSize") != size:
            problems.append(
                f"{CROISSANT_FILE}: contentSize of {url} is {d.get('contentSize')!r} but the file has {size}"
            )
        good[url] = d.get("encodingFormat")
    return good


def _check_file_set(root: Path, d: dict[str, Any], sums: dict[str, str], problems: list[str]) -> None:
    """A FileSet's patterns stay inside the release and every file they match is checksummed."""
    includes = d.get("includes")
    for pattern in includes if isinstance(includes, list) else [includes]:
        reason = _lexical_reason(pattern)
        if reason is not None:
            problems.append(f"{CROISSANT_FILE}: distribution {_entry(d)} includes files outside the release: {reason}")
            continue
        for p in sorted(root.glob(pattern)):
            reason = unlisted_reason(root, p.relative_to(root).as_posix(), sums)
            if reason is not None:
                problems.append(f"{CROISSANT_FILE}: distribution {_entry(d)} matches a file that {reason}")


def _entry(d: object) -> str:
    return repr(d.get("@id")) if isinstance(d, dict) else repr(d)[:80]


def _validate_with_mlcroissant(path: Path, problems: list[str], report: VerifyReport) -> None:
    try:
        import mlcroissant as mlc
    except ImportError:
        problems.append(
            f"{CROISSANT_FILE}: cannot validate: the reference implementation mlcroissant is not "
            "installed (pip install 'wattlas[release]')"
        )
        return
    from importlib.metadata import version

    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)  # warnings are collected below instead of logged
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # rdflib internals, not ours to fix
            ds = mlc.Dataset(jsonld=str(path))
    except mlc.ValidationError as e:
        problems.append(f"{CROISSANT_FILE}: mlcroissant validation failed: {e}")
        return
    except Exception as e:  # mlcroissant raises bare ValueError/KeyError/rdflib errors on odd input
        problems.append(f"{CROISSANT_FILE}: mlcroissant cannot read it: {type(e).__name__}: {e}")
        return
    finally:
        absl.setLevel(level)
    report.warnings += [f"{CROISSANT_FILE} (mlcroissant): {w}" for w in sorted(ds.metadata.ctx.issues.warnings)]
    report.croissant_validated = True
    report.mlcroissant_version = version("mlcroissant")
