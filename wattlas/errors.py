"""Exceptions that callers (and the CLI) tell apart.

Every message names the thing that is wrong, what was expected, and the fix where one exists.
"""

from __future__ import annotations

import errno as _errno

#: Input quoted into a message is cut to this many characters (a header line can be 100 MiB).
QUOTE_LIMIT = 200


def quote_input(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``value`` quoted for a message (as ``repr``), cut to ``limit`` characters with its length.

    >>> quote_input("abc")
    "'abc'"
    >>> quote_input("a" * 1000, limit=4)
    "'aaaa…' (1000 characters)"
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    # repr() of the cut part only: never build the repr of a 100 MiB string.
    return f"{repr(text[:limit])[:-1]}…{repr(text[:limit])[-1]} ({len(text)} characters)"



class WattlasError(Exception):
    """Base class: the CLI prints these as a one-paragraph message, no traceback."""


class InputFormatError(WattlasError, ValueError):
    """A raw input file does not follow its documented format.

    ``file``, ``line`` (1-based physical line, the header being line 1) and ``column`` locate the
    problem where it can be located.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.detail = message
        where = []
        if file:
            where.append(file)
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column '{column}'")
        prefix = (" ".join(where[:2]) + (", " + where[2] if len(where) > 2 else "")) if where else ""
        super().__init__(f"{prefix}: {message}" if prefix else message)

    def __reduce__(self):
        # Crosses process-pool boundaries by pickling: keep file, line and column.
        return (_input_format_error, (self.detail, self.file, self.line, self.column))


def _input_format_error(detail, file, line, column) -> InputFormatError:
    return InputFormatError(detail, file=file, line=line, column=column)


class StoreError(WattlasError):
    """The store is missing, damaged or used in a way it does not support."""


#: errno values that say the output side (the store's disk) failed, not the input file.
STORE_DISK_ERRNOS = frozenset(
    {_errno.ENOSPC, _errno.EDQUOT, _errno.EROFS, _errno.EFBIG, _errno.EIO}
)


class StoreDiskError(StoreError):
    """Writing into the store (or its staging area) failed: disk full, quota, read-only, I/O error."""


def disk_errno(exc: BaseException) -> int | None:
    """The errno of ``exc`` (or of an exception it was raised from) if it is one of
    :data:`STORE_DISK_ERRNOS`, else None.

    Polars reports OS errors inside its own exceptions as text ending in ``(os error 28)``.
    """
    import re

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        code = getattr(exc, "errno", None)
        if code is None:
            m = re.search(r"\(os error (\d+)\)", str(exc))
            code = int(m.group(1)) if m else None
        if code in STORE_DISK_ERRNOS:
            return code
        exc = exc.__cause__ or exc.__context__
    return None


def store_disk_error(exc: BaseException, where: object, doing: str) -> StoreDiskError | None:
    """A :class:`StoreDiskError` if ``exc`` is the disk of ``where`` failing, else None."""
    import os

    code = disk_errno(exc)
    if code is None or isinstance(exc, StoreDiskError):
        return None
    return StoreDiskError(
        f"{doing} in {where} failed: {os.strerror(code)} (errno {code}). The input is not at fault: "
        "free space on that disk (or fix its quota or permissions) and run again; the store is as it "
        "was and finished work is reused."
    )


class StoreLockedError(StoreError):
    """Another process holds the store's write lock for longer than we were willing to wait."""


class UnknownSourceError(WattlasError, KeyError):
    """A source id that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownTableError(WattlasError, KeyError):
    """A table name that no schema declares."""

    def __str__(self) -> str:
        return str(self.args[0])


class DownloadError(WattlasError, OSError):
    """A file could not be fetched from its official URL."""


class ManualDownloadError(DownloadError):
    """A source has files that only a person can download (e.g. Google Drive pages): nothing was fetched."""


class HashMismatchError(WattlasError, ValueError):
    """A file's SHA-256 differs from the pinned (or previously recorded) value."""


class ReleaseError(WattlasError):
    """A dataset release cannot be built or loaded as asked (definition, licence, selection)."""


class ReleaseVerificationError(ReleaseError):
    """A release directory fails verification; ``problems`` names each file that is wrong."""

    def __init__(self, directory: str, problems: list[str]) -> None:
        self.directory = directory
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"release {directory} failed verification ({len(self.problems)} problem(s)):\n{lines}")


class AnalysisError(WattlasError, ValueError):
    """An analysis cannot run on the data given (missing column, empty selection, bad option)."""


class QueryRefusedError(WattlasError):
    """User SQL asks for what it may not do: write the store or files, attach, load, read outside."""
