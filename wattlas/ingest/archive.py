"""Read raw files out of ``.tar.xz``, ``.zip`` and ``.rar`` archives, one member at a time.

Every member name is checked before a byte of it is used: absolute paths, ``..`` components,
drive letters and links (symbolic or hard) whose target leaves the archive are refused with an
:class:`~wattlas.errors.InputFormatError` naming the archive and the member. Members are never
written to a path derived from their name (the caller picks the destination), so a hostile name
cannot escape even if a check were missed; the refusal is there so that such an archive fails
loudly instead of being half-read.

Members are streamed in archive order (``tarfile`` stream mode for tar, ``zipfile`` for zip,
libarchive for RAR v5); nothing is unpacked to disk that the caller does not ask for.

What an archive may expand to is bounded by :class:`ArchiveLimits` (archive bombs): bytes written
may not exceed ``max_expand_ratio`` times the compressed bytes read so far (after a small grace),
nor ``max_member_bytes`` per member or ``max_archive_bytes`` per archive, and no member may yield
more bytes than its header declares. :func:`copy_member` enforces this while it writes: it stops
before the block that would cross a bound, removes the partial file and raises
:class:`~wattlas.errors.InputFormatError` naming the archive, the member and the limit. The
limits come from ``WATTLAS_MAX_EXPAND_RATIO``, ``WATTLAS_EXPAND_GRACE_BYTES``,
``WATTLAS_MAX_MEMBER_BYTES`` and ``WATTLAS_MAX_ARCHIVE_BYTES`` (or ``wattlas ingest`` flags).

Examples
--------
>>> archive_format(Path("azurefunctions-dataset2019.tar.xz"))
'tar'
>>> archive_format(Path("R1.zip")), archive_format(Path("trace.csv"))
('zip', None)
>>> check_member_name("d01/invocations.csv", "a.zip")
'd01/invocations.csv'
>>> try:
...     check_member_name("../evil.csv", "a.zip")
... except InputFormatError as e:
...     print(e.detail.split(";")[0])
member '../evil.csv' has a '..' path component
>>> parse_bytes("64GiB"), parse_bytes("1.5 MB"), parse_bytes("4096")
(68719476736, 1500000, 4096)
>>> format_bytes(3 << 30)
'3.0 GiB'
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import lzma
import os
import posixpath
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import InputFormatError, WattlasError, quote_input

#: Suffixes recognised as archives, longest first.
ARCHIVE_SUFFIXES = (
    (".tar.xz", "tar"), (".txz", "tar"), (".tar.gz", "tar"), (".tgz", "tar"), (".tar.bz2", "tar"),
    (".tar", "tar"), (".zip", "zip"), (".rar", "rar"),
)

LIBARCHIVE_HELP = (
    "reading .rar (RAR v5) archives needs the libarchive C library (libarchive 3.4 or newer). "
    "Install it with `apt-get install libarchive13` (Debian/Ubuntu; `libarchive13t64` on Debian 13+), "
    "`dnf install libarchive` (Fedora/RHEL) or `brew install libarchive` (macOS, then "
    "`export LIBARCHIVE=$(brew --prefix libarchive)/lib/libarchive.dylib`), then run the ingest "
    "again. Alternatively unpack the archive yourself (`unrar x FILE.rar` or `bsdtar -xf FILE.rar`) "
    "and pass the extracted file with --from."
)

_DRIVE = re.compile(r"^[A-Za-z]:")
_TAR_ERRORS = (tarfile.TarError, lzma.LZMAError, zlib.error, EOFError, OSError)
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError)
_CHUNK = 1 << 20

#: ``ArchiveLimits`` field -> the environment variable that sets it.
LIMIT_ENV = {
    "max_expand_ratio": "WATTLAS_MAX_EXPAND_RATIO",
    "expand_grace_bytes": "WATTLAS_EXPAND_GRACE_BYTES",
    "max_member_bytes": "WATTLAS_MAX_MEMBER_BYTES",
    "max_archive_bytes": "WATTLAS_MAX_ARCHIVE_BYTES",
}
#: ``ArchiveLimits`` field -> the ``wattlas ingest`` flag that sets it (the grace has none).
LIMIT_FLAGS = {
    "max_expand_ratio": "--max-expand-ratio",
    "max_member_bytes": "--max-member-bytes",
    "max_archive_bytes": "--max-archive-bytes",
}
_BYTE_UNITS = {
    "": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
    "t": 10**12, "tb": 10**12, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([A-Za-z]*)\s*$")


def parse_bytes(text: str) -> int:
    """``'64GiB'``, ``'500MB'``, ``'4096'`` -> bytes; ``ValueError`` for anything else."""
    match = _SIZE.match(text)
    unit = _BYTE_UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise ValueError(f"{text!r} is not a size (examples: 4096, 500MB, 64GiB)")
    return int(float(match.group(1)) * unit)


def env_overrides(
    variables: Mapping[str, str], parsers: Mapping[str, Callable[[str], float | int]],
    environ: Mapping[str, str] | None = None,
) -> dict[str, float | int]:
    """The limits set in the environment: for each ``field -> VARIABLE`` of ``variables`` that is
    set, ``parsers[field]`` of its text (:func:`parse_bytes` by default, so sizes take 10KiB, 2GB);
    an unparsable value is an error naming the variable."""
    environ = os.environ if environ is None else environ
    values: dict[str, float | int] = {}
    for name, var in variables.items():
        text = environ.get(var, "").strip()
        if not text:
            continue
        try:
            values[name] = parsers.get(name, parse_bytes)(text)
        except ValueError as e:
            raise WattlasError(f"environment variable {var}={text!r} is not valid: {e}") from e
    return values


def format_bytes(n: float) -> str:
    """A byte count for people: ``'292 B'``, ``'16.0 MiB'``."""
    if abs(n) < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if abs(n) < 1024 or unit == "TiB":
            break
    return f"{n:.1f} {unit}"


@dataclass(frozen=True)
class ArchiveLimits:
    """How far an archive may expand on disk while its members are copied out (archive bombs).

    Bytes written from one archive may not exceed ``expand_grace_bytes`` plus
    ``max_expand_ratio`` times the compressed bytes read so far, nor ``max_archive_bytes`` in
    all, nor ``max_member_bytes`` for one member. The defaults admit every registered archive with
    a wide margin: CSV text compresses 5-30x (Azure Functions 2019's ~143 MB ``.tar.xz`` expands
    to a few GB, a ratio near 20), while zeros expand ~1,000x under deflate and far more under
    xz or a sparse tar member. The grace lets small archives of very regular text through.
    """

    max_expand_ratio: float = 200.0
    expand_grace_bytes: int = 16 << 20
    max_member_bytes: int = 16 << 30
    max_archive_bytes: int = 64 << 30

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value < 0 or (value == 0 and f.name != "expand_grace_bytes"):
                raise WattlasError(f"archive limit {f.name} must be positive, not {value!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ArchiveLimits:
        """The defaults, with any ``WATTLAS_MAX_*`` / ``WATTLAS_EXPAND_GRACE_BYTES`` variables applied."""
        return cls(**env_overrides(LIMIT_ENV, {"max_expand_ratio": float}, environ))

    def replace(self, **changes: float | int | None) -> ArchiveLimits:
        """A copy with the given fields changed; ``None`` keeps a field (unset CLI flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _how_to_raise(field: str) -> str:
    flag = LIMIT_FLAGS.get(field)
    where = f"`wattlas ingest SOURCE {flag} N` or " if flag else ""
    return (f"If this is a known large release you trust, raise the limit: {where}the environment "
            f"variable {LIMIT_ENV[field]}=N.")


class _Budget:
    """What one archive has written so far, checked against its limits (shared by its members)."""

    def __init__(self, limits: ArchiveLimits, display: str, archive_bytes: int):
        self.limits = limits
        self.display = display
        self.archive_bytes = archive_bytes
        self.written_bytes = 0

    def ratio_cap(self, compressed_bytes: int) -> int:
        return self.limits.expand_grace_bytes + int(self.limits.max_expand_ratio * compressed_bytes)

    def refuse(self, name: str, what: str, field: str) -> InputFormatError:
        return InputFormatError(
            f"member {name!r} {what}; refusing a likely archive bomb (nothing of the member is kept). "
            + _how_to_raise(field), file=self.display,
        )

    def check_declared(self, name: str, declared: int | None) -> None:
        """Refuse, before a byte is written, a member whose header alone exceeds a limit."""
        if declared is None:
            return
        lim = self.limits
        if declared > lim.max_member_bytes:
            raise self.refuse(name, f"declares {format_bytes(declared)}, over the per-member limit of "
                              f"{format_bytes(lim.max_member_bytes)}", "max_member_bytes")
        total = self.written_bytes + declared
        if total > lim.max_archive_bytes:
            raise self.refuse(name, f"would bring the archive to {format_bytes(total)}, over the "
                              f"per-archive limit of {format_bytes(lim.max_archive_bytes)}", "max_archive_bytes")
        if total > self.ratio_cap(self.archive_bytes):
            raise self.refuse(name, self._ratio_what(total, self.archive_bytes), "max_expand_ratio")

    def check_write(self, member: Member, member_bytes: int) -> None:
        """Refuse before writing a block that would bring the member to ``member_bytes``."""
        lim = self.limits
        name = member.name
        if member.size_bytes is not None and member_bytes > member.size_bytes:
            raise InputFormatError(
                f"member {name!r} holds more bytes than the {member.size_bytes:,} its header declares; "
                "the archive is corrupt or crafted, refusing it (nothing of the member is kept)",
                file=self.display,
            )
        if member_bytes > lim.max_member_bytes:
            raise self.refuse(name, f"expands past the per-member limit of {format_bytes(lim.max_member_bytes)}",
                              "max_member_bytes")
        total = self.written_bytes + member_bytes
        if total > lim.max_archive_bytes:
            raise self.refuse(name, f"brings the archive past the per-archive limit of "
                              f"{format_bytes(lim.max_archive_bytes)}", "max_archive_bytes")
        compressed = min(member.compressed_pos(), self.archive_bytes) if member.compressed_pos else self.archive_bytes
        if total > self.ratio_cap(compressed):
            raise self.refuse(name, self._ratio_what(total, compressed), "max_expand_ratio")

    def _ratio_what(self, total: int, compressed: int) -> str:
        lim = self.limits
        return (f"would expand the archive to {format_bytes(total)} from {format_bytes(compressed)} of compressed "
                f"data, over the limit of {lim.max_expand_ratio:g}x the compressed bytes read plus "
                f"{format_bytes(lim.expand_grace_bytes)} ({format_bytes(self.ratio_cap(compressed))})")


def archive_format(path: Path | str) -> str | None:
    """``'tar'``, ``'zip'``, ``'rar'`` for an archive file name, else ``None``."""
    name = str(path).lower()
    for suffix, fmt in ARCHIVE_SUFFIXES:
        if name.endswith(suffix):
            return fmt
    return None


def check_member_name(name: str, display: str) -> str:
    """Return ``name`` as a clean relative POSIX path or raise :class:`InputFormatError`."""
    raw = name
    name = name.replace("\\", "/")
    if not name or "\0" in name:
        raise InputFormatError(f"member {quote_input(raw)} has an empty or NUL-containing name", file=display)
    if name.startswith("/") or _DRIVE.match(name):
        raise InputFormatError(
            f"member {quote_input(raw)} has an absolute path; refusing to read an archive that could write "
            "outside its folder (path traversal)", file=display,
        )
    if ".." in name.split("/"):
        raise InputFormatError(
            f"member {quote_input(raw)} has a '..' path component; refusing to read an archive that could "
            "write outside its folder (path traversal)", file=display,
        )
    clean = posixpath.normpath(name)
    return clean.removeprefix("./")


def check_link(name: str, target: str, display: str, *, hard: bool = False) -> None:
    """Refuse a link member whose target is absolute or resolves outside the archive root."""
    kind = "hard link" if hard else "symbolic link"
    tgt = target.replace("\\", "/")
    if not tgt or tgt.startswith("/") or _DRIVE.match(tgt):
        raise InputFormatError(
            f"member {quote_input(name)} is a {kind} to {quote_input(target)}, outside the archive; refusing it "
            "(path traversal)", file=display,
        )
    # Hard link targets are archive-root relative; symlink targets relative to the link's folder.
    base = "" if hard else posixpath.dirname(name)
    resolved = posixpath.normpath(posixpath.join(base, tgt))
    if resolved == ".." or resolved.startswith("../"):
        raise InputFormatError(
            f"member {quote_input(name)} is a {kind} to {quote_input(target)}, which points outside the archive; "
            "refusing it (path traversal)", file=display,
        )


@dataclass
class Member:
    """A regular file inside an archive: its checked name, size and a stream of its bytes."""

    name: str
    size_bytes: int | None
    stream: BinaryIO
    #: Bytes of the archive file consumed so far, when the reader can tell (progress).
    archive_pos: int | None = None
    #: The archive, as named in errors.
    archive: str = ""
    #: Exceptions that reading ``stream`` raises on a truncated or corrupt archive.
    errors: tuple[type[BaseException], ...] = (EOFError,)
    #: The archive's expansion budget, which :func:`copy_member` enforces (None: unbounded).
    budget: _Budget | None = None
    #: Compressed bytes of the archive read so far, live while the member is read.
    compressed_pos: Callable[[], int] | None = None


def iter_members(path: Path, display: str | None = None, limits: ArchiveLimits | None = None) -> Iterator[Member]:
    """Yield the regular-file members of archive ``path`` in archive order.

    Each member's stream is valid until the next member is requested. Directories are
    skipped; links inside the archive are skipped (never followed) after their target is
    checked; links leaving the archive, absolute or ``..`` names, and device files are refused.
    A truncated or corrupt archive raises :class:`InputFormatError`. ``limits`` (default:
    :meth:`ArchiveLimits.from_env`) bound what :func:`copy_member` may write from the members.
    """
    display = display or path.name
    fmt = archive_format(path)
    readers = {"tar": _iter_tar, "zip": _iter_zip, "rar": _iter_rar}
    if fmt not in readers:
        raise WattlasError(f"{display}: not an archive wattlas reads (.tar.xz, .tar.gz, .zip, .rar)")
    budget = _Budget(limits or ArchiveLimits.from_env(), display, path.stat().st_size)
    for member in readers[fmt](path, display, budget):
        # Also for members the caller skips: skipping a tar member still decompresses it.
        budget.check_declared(member.name, member.size_bytes)
        yield member


class _CountingReader(io.RawIOBase):
    """Wraps the raw archive file and counts the bytes read from it (for progress)."""

    def __init__(self, fh: BinaryIO):
        self._fh = fh
        self.pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self._fh.readinto(b)
        if n:
            self.pos += n
        return n


def _iter_tar(path: Path, display: str, budget: _Budget) -> Iterator[Member]:
    with open(path, "rb") as raw:
        counter = _CountingReader(raw)
        buffered = io.BufferedReader(counter, _CHUNK)
        try:
            # Stream mode: one pass over the compressed file, no seeking, bounded memory.
            with tarfile.open(fileobj=buffered, mode="r|*") as tar:
                for info in tar:
                    name = check_member_name(info.name, display)
                    if info.isdir():
                        continue
                    if info.issym() or info.islnk():
                        check_link(name, info.linkname, display, hard=info.islnk())
                        continue
                    if not info.isreg():
                        raise InputFormatError(
                            f"member {quote_input(info.name)} is a device, FIFO or other special file; "
                            "refusing it", file=display,
                        )
                    stream = tar.extractfile(info)
                    if stream is None:  # pragma: no cover - regular files always have data
                        continue
                    # info.size is what tarfile will yield (for a sparse member too): the declared size.
                    yield Member(name, info.size, stream, counter.pos, display, _TAR_ERRORS, budget,
                                 lambda: counter.pos)
        except (tarfile.ReadError, EOFError, OSError) as e:
            raise InputFormatError(
                f"the archive is truncated or corrupt ({type(e).__name__}: {e}); download it again",
                file=display,
            ) from e
        except tarfile.TarError as e:
            raise InputFormatError(f"not a readable tar archive ({e})", file=display) from e


def _iter_zip(path: Path, display: str, budget: _Budget) -> Iterator[Member]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise InputFormatError(
            f"not a readable zip archive, or truncated ({e}); download it again", file=display
        ) from e
    with zf:
        infos = zf.infolist()
        # The central directory lists every member: check all names before reading any.
        checked = []
        for info in infos:
            name = check_member_name(info.filename, display)
            mode = info.external_attr >> 16
            if info.is_dir():
                continue
            if stat.S_ISLNK(mode):
                target = zf.read(info).decode("utf-8", "replace")
                check_link(name, target, display)
                continue
            if mode and not (stat.S_ISREG(mode) or stat.S_IFMT(mode) == 0):
                raise InputFormatError(
                    f"member {quote_input(info.filename)} is a device, FIFO or other special file; refusing it",
                    file=display,
                )
            checked.append((name, info))
        for name, info in checked:
            end = info.header_offset + info.compress_size
            try:
                with zf.open(info) as stream:
                    # The central directory's sizes: zipfile reads no more than file_size bytes.
                    yield Member(name, info.file_size, stream, end, display, _ZIP_ERRORS, budget,
                                 lambda end=end: end)
            except (zipfile.BadZipFile, EOFError, zlib.error) as e:
                raise InputFormatError(
                    f"member {quote_input(info.filename)} is corrupt or truncated ({e}); download the archive again",
                    file=display,
                ) from e


def _libarchive():
    try:
        import libarchive
    except (ImportError, OSError, AttributeError) as e:
        raise WattlasError(f"{LIBARCHIVE_HELP} (import failed: {e})") from e
    return libarchive


class _BlockStream(io.RawIOBase):
    """A readable stream over a libarchive entry's data blocks."""

    def __init__(self, blocks: Iterator[bytes]):
        self._blocks = blocks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            try:
                self._buf = next(self._blocks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _iter_rar(path: Path, display: str, budget: _Budget) -> Iterator[Member]:
    libarchive = _libarchive()
    from libarchive.exception import ArchiveError

    try:
        with libarchive.file_reader(str(path), "rar5" if _is_rar5(path) else "rar") as archive:
            for entry in archive:
                name = check_member_name(entry.pathname or "", display)
                if entry.isdir:
                    continue
                if entry.issym or entry.islnk:
                    check_link(name, entry.linkpath or "", display, hard=entry.islnk)
                    continue
                if not entry.isreg:
                    raise InputFormatError(
                        f"member {quote_input(entry.pathname)} is a device, FIFO or other special file; "
                        "refusing it", file=display,
                    )
                yield Member(name, entry.size, io.BufferedReader(_BlockStream(entry.get_blocks()), _CHUNK),
                             None, display, (ArchiveError, EOFError), budget, lambda: archive.bytes_read)
    except ArchiveError as e:
        raise InputFormatError(
            f"not a readable RAR archive, or truncated ({e}); download it again", file=display
        ) from e


def _is_rar5(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"Rar!\x1a\x07\x01\x00"):
        return True
    if head.startswith(b"Rar!\x1a\x07\x00"):
        return False
    raise InputFormatError("not a RAR archive (no RAR signature)", file=path.name)


def copy_member(member: Member, dest: Path, on_bytes: Callable[[int], None] | None = None) -> tuple[int, str]:
    """Write ``member`` to ``dest`` (streamed); return (bytes written, sha256 hex).

    The member's archive budget is checked before anything is written (its declared size) and
    before every block (bytes actually read): a block that would cross a limit is not written,
    the partial file is removed and :class:`InputFormatError` names the archive, member and limit.
    """
    budget = member.budget
    h = hashlib.sha256()
    n = 0
    try:
        if budget is not None:
            budget.check_declared(member.name, member.size_bytes)
        with open(dest, "wb") as out:
            while True:
                try:
                    block = member.stream.read(_CHUNK)
                except member.errors as e:
                    raise InputFormatError(
                        f"member {quote_input(member.name)} is truncated or corrupt ({type(e).__name__}: {e}); "
                        "download the archive again", file=member.archive or None,
                    ) from e
                if not block:
                    break
                if budget is not None:
                    budget.check_write(member, n + len(block))
                out.write(block)
                h.update(block)
                n += len(block)
                if on_bytes:
                    on_bytes(len(block))
        if member.size_bytes is not None and n < member.size_bytes:
            raise InputFormatError(
                f"member {member.name!r} holds {n:,} bytes, fewer than the {member.size_bytes:,} its "
                "header declares; the archive is truncated or corrupt, download it again",
                file=member.archive or None,
            )
    except BaseException:
        with contextlib.suppress(OSError):
            dest.unlink()
        raise
    if budget is not None:
        budget.written_bytes += n
    return n, h.hexdigest()


def extract_all(path: Path, dest: Path, display: str | None = None,
                limits: ArchiveLimits | None = None) -> list[Path]:
    """Extract every regular file of ``path`` under ``dest`` (checked names); for tests and tools."""
    out = []
    for m in iter_members(path, display, limits):
        target = dest / m.name
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_member(m, target)
        out.append(target)
    return out
