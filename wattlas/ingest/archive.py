"""Read raw files out of ``.tar.xz``, ``.zip`` and ``.rar`` archives, one member at a time.

Every member name is checked before a byte of it is used: absolute paths, ``..`` components,
drive letters and links (symbolic or hard) whose target leaves the archive are refused with an
:class:`~wattlas.errors.InputFormatError` naming the archive and the member. Members are never
written to a path derived from their name (the caller picks the destination), so a hostile name
cannot escape even if a check were missed; the refusal is there so that such an archive fails
loudly instead of being half-read.

Members are streamed in archive order (``tarfile`` stream mode for tar, ``zipfile`` for zip,
libarchive for RAR v5); nothing is unpacked to disk that the caller does not ask for.

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
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import lzma
import posixpath
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
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


def iter_members(path: Path, display: str | None = None) -> Iterator[Member]:
    """Yield the regular-file members of archive ``path`` in archive order.

    Each member's stream is valid until the next member is requested. Directories are
    skipped; links inside the archive are skipped (never followed) after their target is
    checked; links leaving the archive, absolute or ``..`` names, and device files are refused.
    A truncated or corrupt archive raises :class:`InputFormatError`.
    """
    display = display or path.name
    fmt = archive_format(path)
    if fmt == "tar":
        yield from _iter_tar(path, display)
    elif fmt == "zip":
        yield from _iter_zip(path, display)
    elif fmt == "rar":
        yield from _iter_rar(path, display)
    else:
        raise WattlasError(f"{display}: not an archive wattlas reads (.tar.xz, .tar.gz, .zip, .rar)")


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


def _iter_tar(path: Path, display: str) -> Iterator[Member]:
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
                    yield Member(name, info.size, stream, counter.pos, display, _TAR_ERRORS)
        except (tarfile.ReadError, EOFError, OSError) as e:
            raise InputFormatError(
                f"the archive is truncated or corrupt ({type(e).__name__}: {e}); download it again",
                file=display,
            ) from e
        except tarfile.TarError as e:
            raise InputFormatError(f"not a readable tar archive ({e})", file=display) from e


def _iter_zip(path: Path, display: str) -> Iterator[Member]:
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
            try:
                with zf.open(info) as stream:
                    yield Member(name, info.file_size, stream, info.header_offset + info.compress_size, display,
                                 _ZIP_ERRORS)
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


def _iter_rar(path: Path, display: str) -> Iterator[Member]:
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
                             None, display, (ArchiveError, EOFError))
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
    """Write ``member`` to ``dest`` (streamed); return (bytes written, sha256 hex)."""
    h = hashlib.sha256()
    n = 0
    try:
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
                out.write(block)
                h.update(block)
                n += len(block)
                if on_bytes:
                    on_bytes(len(block))
    except BaseException:
        with contextlib.suppress(OSError):
            dest.unlink()
        raise
    return n, h.hexdigest()


def extract_all(path: Path, dest: Path, display: str | None = None) -> list[Path]:
    """Extract every regular file of ``path`` under ``dest`` (checked names); for tests and tools."""
    out = []
    for m in iter_members(path, display):
        target = dest / m.name
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_member(m, target)
        out.append(target)
    return out
