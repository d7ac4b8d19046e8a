"""Exceptions that callers (and the CLI) tell apart.

Every message names the thing that is wrong, what was expected, and the fix where one exists.
"""

from __future__ import annotations


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
