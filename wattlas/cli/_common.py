"""What every command shares: the store and output options, and how rows are printed.

Machine-readable output (``--format csv|json``) goes to stdout with nothing else on it;
progress, notices and errors go to stderr.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import textwrap
from collections.abc import Sequence
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    import polars as pl

    from ..store import Store

#: Everything for humans (progress, notices, errors) goes here; stdout is for results.
#: Neither console reads markup by default: messages quote user data and hints such as
#: `[sources.wattlas-bench]`, which markup would swallow. Style with rich Text, or `say`.
err = Console(stderr=True, markup=False, highlight=False)
out = Console(markup=False, highlight=False)

#: `sql` in table mode shows this many rows unless --limit/--all says otherwise.
DEFAULT_TABLE_ROWS = 40
#: In a terminal, a text column that does not fit is wrapped if this much room is left; else hidden.
_MIN_WRAP_CELLS = 20


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


def eta_progress(unit: str, *extra: Any) -> Any:
    """A rich progress bar on stderr (stdout stays clean for --format csv/json): description,
    bar, ``done/total unit``, ETA, elapsed, then ``extra`` columns. Only the description may be
    shortened, to what the console leaves beside the rest: counts and times are never cut."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Column

    room = max(20, err.width - 44)  # about 44 characters of bar, counts and times
    fixed = Column(no_wrap=True)
    return Progress(
        TextColumn("{task.description}", table_column=Column(max_width=room, no_wrap=True, overflow="ellipsis")),
        BarColumn(bar_width=10), MofNCompleteColumn(table_column=fixed),
        TextColumn(f"{unit}, ETA", table_column=Column(no_wrap=True)),
        TimeRemainingColumn(table_column=Column(no_wrap=True)), TimeElapsedColumn(table_column=Column(no_wrap=True)),
        *extra, console=err, transient=False,
    )


def say(message: str, *, label: str = "", style: str = "") -> None:
    """One message on stderr, printed as is (never read as markup), after an optional styled label."""
    text = Text()
    if label:
        text.append(label, style=style)
        text.append(" ")
    text.append(message)
    err.print(text, soft_wrap=True)


def print_frame(
    df: pl.DataFrame, fmt: OutputFormat, *, title: str | None = None, caption: str | None = None,
    max_rows: int | None = None,
) -> None:
    """Print a polars frame as a table, CSV with a header row, or a JSON array of objects.

    The table shows each value as the text of its CSV field (nulls as ``null``), so a number in the
    table is the number in the CSV. ``max_rows`` limits the table only (CSV and JSON get every row),
    and stderr says how many rows were left out.
    """
    if fmt is OutputFormat.csv:
        sys.stdout.write(df.write_csv())
    elif fmt is OutputFormat.json:
        rows = [{k: _jsonable(v) for k, v in r.items()} for r in df.iter_rows(named=True)]
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
    else:
        shown = df if max_rows is None else df.head(max_rows)
        right = [dtype.is_numeric() for dtype in df.schema.values()]
        print_table(df.columns, frame_cells(shown), right=right, title=title, caption=caption)
        if max_rows is not None and df.height > max_rows:
            say(f"{df.height - max_rows:,} of {df.height:,} rows not shown: use --limit N, --all, "
                "or --format csv")


def frame_cells(df: pl.DataFrame) -> list[list[str]]:
    """Each value of ``df`` as the text polars writes for it in CSV; nulls as ``null``."""
    import polars as pl

    # CSV has no nested values: those (lists, structs) are shown as the JSON that --format json writes.
    flat = df.with_columns(
        pl.Series(name, [json.dumps(_jsonable(v), default=str) for v in df[name].to_list()], dtype=pl.String)
        for name, dtype in df.schema.items() if dtype.is_nested() or dtype == pl.Object
    )
    n_cols = flat.width
    text = flat.write_csv(include_header=False) if n_cols else ""
    rows = [row + [""] * (n_cols - len(row)) for row in csv.reader(io.StringIO(text))]
    nulls = [flat[name].is_null().to_list() for name in flat.columns]
    return [["null" if nulls[j][i] else cell for j, cell in enumerate(row)] for i, row in enumerate(rows)]


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[bool] = (),
    title: str | None = None, caption: str | None = None,
) -> None:
    """The one table renderer of the CLI: plain aligned text on stdout that never cuts a value.

    Outside a terminal (pipe, file, subprocess, notebook) every column is printed at full width. In
    a terminal too narrow for the table, the last text column that fits is wrapped and the columns
    right of it are hidden, and stderr names them.
    """
    width = out.width if out.is_terminal else None
    lines, hidden = layout_table(headers, rows, right=right, width=width)
    parts = [_safe(title)] if title else []
    parts += lines
    if caption:
        parts.append(_safe(caption))
    sys.stdout.write("\n".join(parts) + "\n")
    sys.stdout.flush()
    if hidden:
        say(f"{len(hidden)} column{'s' if len(hidden) > 1 else ''} hidden ({', '.join(hidden)}): "
            "use --format csv, or a wider terminal")


def layout_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[bool] = (),
    width: int | None = None,
) -> tuple[list[str], list[str]]:
    """The lines of a table (header, rule, rows) and the names of the columns left out to fit ``width``."""
    cells = [[_safe(c) for c in r] for r in [headers, *rows]]
    right = list(right) + [False] * (len(headers) - len(right))
    widths = [max(cell_len(r[j]) for r in cells) for j in range(len(headers))]
    keep: list[int] = []
    wrap_at: dict[int, int] = {}
    used = 0
    for j, w in enumerate(widths):
        sep = 2 if keep else 0
        if width is None or used + sep + w <= width:
            keep.append(j)
            used += sep + w
            continue
        room = width - used - sep
        if not keep and right[j]:
            keep.append(j)  # a number wider than the terminal: the terminal folds the line, nothing is cut
        elif not keep or (not right[j] and room >= _MIN_WRAP_CELLS):
            keep.append(j)  # wrapped at word boundaries, never cut
            wrap_at[j] = widths[j] = max(room, 1)
        break  # the columns right of here are hidden, and named
    lines = []
    for i, row in enumerate(cells):
        pieces = [textwrap.wrap(row[j], wrap_at[j], break_on_hyphens=False) or [""] if j in wrap_at
                  else [row[j]] for j in keep]
        for k in range(max(len(p) for p in pieces)):
            parts = [_pad(p[k] if k < len(p) else "", widths[j], right[j]) for p, j in zip(pieces, keep, strict=True)]
            lines.append("  ".join(parts).rstrip())
        if i == 0:
            lines.append("  ".join("-" * widths[j] for j in keep))
    return lines, [headers[j] for j in range(len(headers)) if j not in keep]


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * max(width - cell_len(text), 0)
    return gap + text if right else text + gap


#: Control characters (C0, DEL, C1) shown as escapes: raw, they would drive the terminal.
_CONTROL = {c: repr(chr(c))[1:-1] for c in (*range(0x20), *range(0x7F, 0xA0))}


def _safe(text: str) -> str:
    """Data as printable text: control characters become escapes (``\\n``, ``\\x1b``)."""
    return str(text).translate(_CONTROL)


def cell_text(value: Any) -> str:
    """One Python value as a table cell: the text the csv module writes for it; None as ``null``."""
    return "null" if value is None else str(value)


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
