"""What every command shares: the store and output options, and how rows are printed.

Machine-readable output (``--format csv|json``) goes to stdout with nothing else on it;
progress, notices and errors go to stderr.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    import polars as pl

    from ..store import Store

#: Everything for humans (progress, notices, errors) goes here; stdout is for results.
err = Console(stderr=True)
out = Console()


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="Store directory (default: $WATTLAS_STORE, else the platform's user data dir).",
        show_default=False,
    ),
]
FormatOpt = Annotated[
    OutputFormat,
    typer.Option("--format", "-f", help="table (for people), csv or json (for programs, on stdout)."),
]


def open_store(path: Path | None) -> Store:
    from ..store import Store

    store = Store(path)
    store.recover()  # a commit that crashed leaves files only the next opening may delete
    return store


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def print_frame(df: pl.DataFrame, fmt: OutputFormat, *, title: str | None = None) -> None:
    """Print a polars frame as a rich table, CSV with a header row, or a JSON array of objects."""
    if fmt is OutputFormat.csv:
        sys.stdout.write(df.write_csv())
    elif fmt is OutputFormat.json:
        rows = [{k: _jsonable(v) for k, v in r.items()} for r in df.iter_rows(named=True)]
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
    else:
        from rich.table import Table

        table = Table(title=title, show_lines=False)
        for name, dtype in df.schema.items():
            numeric = dtype.is_numeric()
            table.add_column(_cell(name), justify="right" if numeric else "left")
        for row in df.iter_rows():
            table.add_row(*[_cell(v) for v in row])
        out.print(table)


#: Control characters (C0, DEL, C1) shown as escapes: raw, they would drive the terminal.
_CONTROL = {c: repr(chr(c))[1:-1] for c in (*range(0x20), *range(0x7F, 0xA0))}


def _cell(value: Any) -> str:
    """One table cell as rich markup: data is escaped, never read as markup or terminal codes."""
    from rich.markup import escape

    if value is None:
        return "[dim]null[/dim]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return escape(str(value).translate(_CONTROL))
