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

    Checks that every file of ``SHA256SUMS`` exists with its checksum, that ``croissant.json``
    is valid JSON describing each data file with its true sha256 and size and each table's
    columns, that every Parquet file carries its row provenance, and (``croissant=True``) that
    the reference implementation ``mlcroissant`` validates ``croissant.json``.
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

    doc = _check_croissant(root, actual, problems, report)
    if (root / CARD_FILE).is_file():
        card = (root / CARD_FILE).read_text(encoding="utf-8", errors="replace")
        for rel in _front_matter_paths(card):
            if not (root / rel).is_file():
                problems.append(f"{CARD_FILE}: front matter lists data file {rel}, which is missing")
    elif CARD_FILE not in sums:
        problems.append(f"{CARD_FILE}: missing (the dataset card)")
    if croissant and doc is not None:
        _validate_with_mlcroissant(root / CROISSANT_FILE, problems, report)
    if problems:
        raise ReleaseVerificationError(str(root), problems)
    return report


def _check_croissant(
    root: Path, actual: dict[str, str], problems: list[str], report: VerifyReport
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
    try:
        tables = table_files(doc)
    except (ValueError, AttributeError, TypeError) as e:
        problems.append(f"{CROISSANT_FILE}: {e}")
        return doc
    by_url = {
        d.get("contentUrl"): d for d in doc.get("distribution") or [] if isinstance(d, dict)
    }
    for url, d in by_url.items():
        if d.get("encodingFormat") != PARQUET or not isinstance(url, str):
            continue
        p = root / url
        if PurePosixPath(url).is_absolute() or ".." in PurePosixPath(url).parts or not p.is_file():
            problems.append(f"{CROISSANT_FILE}: distribution {d.get('@id')!r} points to {url}, which is missing")
            continue
        sha = actual.get(url) or sha256_file(p)
        if d.get("sha256") != sha:
            problems.append(f"{CROISSANT_FILE}: sha256 of {url} is {d.get('sha256')!r} but the file's is {sha}")
        size = f"{p.stat().st_size} B"
        if d.get("contentSize") != size:
            problems.append(
                f"{CROISSANT_FILE}: contentSize of {url} is {d.get('contentSize')!r} but the file has {size}"
            )
    for rid, (url, columns) in tables.items():
        p = root / url
        if not p.is_file():
            continue  # reported above
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
