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


#: Set by ``--quiet`` (anywhere on the line): no ``store: PATH`` notice and no name notices.
QUIET = False
#: Stores already announced in this process (a command may open the same store twice).
_ANNOUNCED: set[Path] = set()


def open_store(path: Path | None, *, write: bool) -> Store:
    """The store at ``path`` (None: the default store), announced on stderr as ``store: PATH``.

    ``write=False`` (a command that only reads) refuses a path that holds no store, i.e. no
    ``catalog.json``, and creates nothing there: a typo in ``--store`` must fail, not answer from
    an empty store. Only commands that add rows (``write=True``) may start a new store.
    """
    from ..store import Store

    store = Store(path)
    root = store.root.absolute()
    if root not in _ANNOUNCED:
        _ANNOUNCED.add(root)
        notice(f"store: {root}")
    if not write and not store.catalog_path.is_file():
        raise _no_store_error(store, given=path is not None)
    store.recover()  # a commit that crashed leaves files only the next opening may delete
    return store


def _no_store_error(store: Store, *, given: bool) -> Exception:
    from ..errors import StoreError
    from ..store import ENV_STORE

    root = store.root
    state = ("does not exist" if not root.exists() else "is not a directory" if not root.is_dir()
             else "is empty" if not any(root.iterdir()) else "has no catalog.json")
    origin = "--store" if given else f"the default store (${ENV_STORE}, else the platform's user data dir)"
    return StoreError(
        f"no wattlas store at {root} ({origin}): the directory {state}. Check the path, or fill a store "
        "first: `wattlas quickstart --store DIR` or `wattlas ingest SOURCE --store DIR`. Commands that "
        "only read never create a store."
    )


def notice(message: str) -> None:
    """A one-line note for people on stderr (hidden by ``--quiet``), printed without markup."""
    if not QUIET:
        err.print(message, highlight=False, soft_wrap=True, markup=False)


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


def resolve(name: str, choices: Any, *, what: str, error: type[Exception] | None = None, **kw: Any) -> str:
    """:func:`wattlas._names.resolve_name`, saying on stderr when a name was read case-insensitively."""
    from .._names import resolve_name
    from ..errors import WattlasError

    found = resolve_name(name, choices, what=what, error=error or WattlasError, **kw)
    if found != name:
        notice(f"{what} {name!r} read as {found!r}")
    return found


def resolve_table(name: str) -> str:
    """A declared table's name (case-insensitive), or UnknownTableError with a did-you-mean."""
    from ..errors import UnknownTableError
    from ..schemas import TABLES

    return resolve(name, TABLES, what="table", error=UnknownTableError)


def resolve_selection(store: Store, table: str, source: str | None, trace: str | None) -> tuple[str | None, str | None]:
    """``--source``/``--trace`` as the store spells them, or an error that lists what it holds.

    An unknown or mistyped name would otherwise select no rows, which reads as "no data";
    the error names the closest names and every one the store holds (``traces here: code, conv``).
    """
    from ..errors import AnalysisError
    from ..schemas import TABLES

    if source is not None:
        held = store.catalog()["tables"].get(table, {})
        names = [s for s, keys in held.items() if any(v["rows"] for v in keys.values())]
        source = resolve(source, names, what="source", where=f"in {table} of this store",
                         here="sources here", error=AnalysisError)
    schema = TABLES.get(table)
    if trace is not None and schema is not None and any(c.name == "trace" for c in schema.columns):
        where, params = ("where source = ?", [source]) if source else ("", [])
        with store.reader() as con:
            rows = con.execute(f"select distinct trace from {table} {where}", params).fetchall()
        traces = [r[0] for r in rows if r[0] is not None]
        trace = resolve(trace, traces, what="trace", where=f"in {source or table}", here="traces here",
                        error=AnalysisError)
    return source, trace
