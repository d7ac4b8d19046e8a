"""What user-written SQL may do: ``wattlas sql``, :func:`wattlas.sql` and release filters.

DuckDB can write files (``COPY ... TO``), attach databases, install and load extensions, read
any file (``read_csv('/etc/passwd')``, ``glob``) and change its own settings. A query over the
store needs none of that, so user SQL runs on a connection closed with DuckDB's own guards:

- ``enable_external_access = false`` with ``allowed_directories`` holding only the store's
  ``tables/`` folder (and paths the caller opts into), so no other file can be opened;
- ``autoinstall/autoload_known_extensions = false``: no extension code is fetched or loaded;
- ``lock_configuration = true``: no ``SET`` can take any of it back.

DuckDB's allowed folders are readable *and* writable, so statements are checked as well, before
anything runs: only ``SELECT`` (with ``DESCRIBE``, ``SHOW``, ``SUMMARIZE``, ``WITH``, ``FROM``
...) is allowed, and ``COPY ... TO`` only when the caller allows writes, to a path outside the
store, which alone is then made writable.

A release definition's ``where`` is a row condition, not SQL to run: :func:`check_condition`
accepts exactly one expression without subqueries.

Examples
--------
>>> import tempfile
>>> from wattlas.store import Store
>>> run_query("select 42 as answer", Store(tempfile.mkdtemp())).item()
42
>>> check_condition("source in ('burstgpt', 'azure-llm-2023')", origin="where")
"source in ('burstgpt', 'azure-llm-2023')"
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import QueryRefusedError, WattlasError

if TYPE_CHECKING:
    import duckdb
    import polars as pl

    from .store import Store

#: Longest piece of a query quoted back in an error message.
_QUOTE_CHARS = 200

_READ_ONLY_HELP = (
    "`wattlas sql` runs reading statements (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, "
    "SUMMARIZE) over the store's tables; it does not write files, attach databases, install or "
    "load extensions, or change settings."
)


@dataclass(frozen=True)
class CheckedQuery:
    """A query split into statements that passed :func:`check_query`, and the paths it writes."""

    statements: tuple[str, ...]
    write_paths: tuple[Path, ...] = ()


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= _QUOTE_CHARS else text[:_QUOTE_CHARS] + "...")


def _parser() -> duckdb.DuckDBPyConnection:
    import duckdb

    # Parsing never touches a file; a bare connection has nothing to leak.
    return duckdb.connect()


def check_query(query: str, store_root: str | os.PathLike[str], *, allow_writes: bool = False) -> CheckedQuery:
    """Split ``query`` into statements and refuse any that is not a read (or an allowed COPY TO).

    Raises :class:`~wattlas.errors.QueryRefusedError` naming the statement and what to do.
    """
    import duckdb

    con = _parser()
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as e:
        raise QueryRefusedError(f"query could not be parsed: {e}") from None
    finally:
        con.close()
    if not statements:
        raise QueryRefusedError("query holds no SQL statement")
    writes: list[Path] = []
    for st in statements:
        kind = st.type.name
        if kind == "SELECT":
            continue
        if kind == "COPY" and allow_writes:
            writes += _copy_target(st.query, Path(store_root))
            continue
        if kind == "COPY":
            raise QueryRefusedError(
                f"refused {_quote(st.query)}: COPY writes files and `wattlas sql` only reads. To write "
                "query results to a file of your own, pass --allow-writes (wattlas.sql(..., "
                "allow_writes=True)); the store itself is never writable."
            )
        raise QueryRefusedError(f"refused {_quote(st.query)}: {kind} is not a reading statement. {_READ_ONLY_HELP}")
    return CheckedQuery(tuple(st.query for st in statements), tuple(writes))


def _tokens(sql: str) -> list[tuple[str, str]]:
    """(text, kind) of each DuckDB token; comments dropped. DuckDB counts positions in UTF-8 bytes."""
    import duckdb

    raw = sql.encode()
    found = duckdb.tokenize(sql)
    out = []
    for i, (start, kind) in enumerate(found):
        end = found[i + 1][0] if i + 1 < len(found) else len(raw)
        if kind.name != "comment":
            out.append((raw[start:end].decode().strip(), kind.name))
    return out


def _copy_target(sql: str, store_root: Path) -> tuple[Path, ...]:
    """The file a ``COPY ... TO 'path'`` writes, refused when it is in (or holds) the store."""
    depth = 0
    tokens = _tokens(sql)
    for i, (text, kind) in enumerate(tokens[1:], start=1):
        if kind == "operator":
            depth += text.count("(") - text.count(")")
            continue
        if depth or kind != "keyword" or text.lower() not in ("to", "from"):
            continue
        if text.lower() == "from":
            raise QueryRefusedError(
                f"refused {_quote(sql)}: COPY ... FROM loads files into tables; `wattlas sql` writes "
                "only with COPY (SELECT ...) TO 'path'."
            )
        target, target_kind = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        if target_kind != "string_const" or not target.startswith("'"):
            break
        return _outside_store(target[1:-1].replace("''", "'"), store_root, sql)
    raise QueryRefusedError(
        f"refused {_quote(sql)}: write the COPY target as one quoted path, "
        "e.g. COPY (SELECT ...) TO 'out.csv'."
    )


def _outside_store(target: str, store_root: Path, sql: str) -> tuple[Path, ...]:
    """``target`` as written (absolute) and with links resolved; refused where either meets the store."""
    given = Path(os.path.abspath(Path(target).expanduser()))
    resolved = given.resolve()
    store = store_root.expanduser().resolve()
    for path in (given, resolved):
        # Both ways: a file inside the store, or a partitioned write into a folder holding it.
        if path.is_relative_to(store) or store.is_relative_to(path):
            where = "inside" if path.is_relative_to(store) else "a folder holding"
            raise QueryRefusedError(
                f"refused {_quote(sql)}: it writes {path}, which is {where} the store {store}. "
                "`wattlas sql` never writes the store, even with --allow-writes; COPY to a path outside it."
            )
    return (given, resolved) if given != resolved else (given,)


def _dir(path: Path) -> str:
    return str(path).rstrip(os.sep) + os.sep


def guard_connection(
    con: duckdb.DuckDBPyConnection,
    store_root: str | os.PathLike[str],
    *,
    temp_dir: str | os.PathLike[str] | None = None,
    read_paths: Iterable[str | os.PathLike[str]] = (),
    write_paths: Iterable[Path] = (),
) -> None:
    """Close ``con`` to everything but reading ``STORE/tables`` (and the paths given), for good.

    ``temp_dir`` is where DuckDB may spill (a folder of the caller's own; ``None``: no spilling).
    ``read_paths`` are files or folders the user opted to read; ``write_paths`` are checked
    :class:`CheckedQuery` targets. Afterwards no statement can change a setting.
    """
    from .store import Store

    store = Store(store_root)
    # The tables, and the hard-link snapshots that Store.connect() reads them through.
    readable = (store.tables_dir, store.snapshots_dir)
    dirs = {_dir(p) for d in readable for p in (d.absolute(), d.resolve())}
    paths: set[str] = set()
    for p in read_paths:
        p = Path(p).expanduser().resolve()
        if p.is_dir():
            dirs.add(_dir(p))
        else:
            paths.add(str(p))
    for p in write_paths:
        # A file, or the folder of a partitioned write; DuckDB replaces an existing file
        # through tmp_<name> beside it.
        paths |= {str(p), str(p.parent / f"tmp_{p.name}")}
        dirs.add(_dir(p))
    settings: list[tuple[str, Any]] = [
        ("temp_directory", str(temp_dir) if temp_dir is not None else ""),
        ("allowed_directories", sorted(dirs)),
        ("allowed_paths", sorted(paths)),
        ("autoinstall_known_extensions", False),
        ("autoload_known_extensions", False),
        ("allow_community_extensions", False),
        # Python variables are not the store's tables: no scanning the caller's data frames.
        ("python_enable_replacements", False),
        ("enable_external_access", False),
        ("lock_configuration", True),
    ]
    import duckdb

    for name, value in settings:
        try:
            con.execute(f"SET {name} = ?", [value])
        except duckdb.Error as e:
            raise QueryRefusedError(
                f"cannot restrict the DuckDB connection ({name}): {e}. wattlas needs DuckDB >= 1.2 "
                f"for read-only SQL; this is DuckDB {duckdb.__version__}."
            ) from e


def run_query(
    query: str,
    store: Store,
    *,
    allow_writes: bool = False,
    allow_read: Sequence[str | os.PathLike[str]] = (),
) -> pl.DataFrame:
    """Run user ``query`` over ``store``'s tables on a guarded connection; the last statement's rows.

    ``allow_writes`` permits ``COPY ... TO`` paths outside the store; ``allow_read`` names files
    or folders the query may read besides the store's tables.
    """
    import duckdb
    import polars as pl

    checked = check_query(query, store.root, allow_writes=allow_writes)
    with tempfile.TemporaryDirectory(prefix="wattlas-sql-") as spill, store.reader() as con:
        guard_connection(con, store.root, temp_dir=spill, read_paths=allow_read,
                         write_paths=checked.write_paths)
        try:
            for st in checked.statements[:-1]:
                con.execute(st).fetchall()  # run to its end, as one query of several does
            rel = con.sql(checked.statements[-1])
            return rel.pl() if rel is not None else pl.DataFrame()
        except duckdb.PermissionException as e:
            raise QueryRefusedError(_permission_message(e, store, allow_read)) from None


def _permission_message(e: Exception, store: Store, allow_read: Sequence[Any]) -> str:
    extra = "".join(f", {Path(p).expanduser()}" for p in allow_read)
    return (
        f"refused: {e}. The query may read only the store's tables ({store.tables_dir}{extra}). "
        "To read other files too, name them with --allow-read PATH (wattlas.sql(..., "
        "allow_read=[PATH])). " + _READ_ONLY_HELP
    )


# --------------------------------------------------------------- conditions
_PROBE_TABLE = "__wattlas_rows"
_REFUSED_IN_CONDITIONS = {
    "SUBQUERY": "a subquery, which could read other tables or files",
    "PARAMETER": "a parameter placeholder, which has no value here",
}


def _serialize(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, Any]:
    return json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])


def _strip_locations(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_locations(v) for k, v in node.items() if not k.startswith("query_location")}
    if isinstance(node, list):
        return [_strip_locations(v) for v in node]
    return node


def _expression_classes(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        if isinstance(node.get("class"), str):
            yield node["class"]
        for v in node.values():
            yield from _expression_classes(v)
    elif isinstance(node, list):
        for v in node:
            yield from _expression_classes(v)


def _balanced(sql: str) -> bool:
    import duckdb

    try:
        tokens = _tokens(sql)
    except duckdb.Error:
        return False
    depth = 0
    for text, kind in tokens:
        if kind == "operator":
            depth += text.count("(") - text.count(")")
            if depth < 0:
                return False
    return depth == 0


def check_condition(text: str, *, origin: str, error: type[WattlasError] = QueryRefusedError) -> str:
    """Refuse ``text`` unless it is exactly one SQL expression without subqueries; return it.

    The text is parsed in the form it is used in, ``SELECT * FROM t WHERE (text)``, and the parse
    tree must equal that of ``SELECT * FROM t WHERE true`` but for the condition: a second
    statement, a ``UNION``, an ``ORDER BY`` or a closing parenthesis that escapes are all refused.
    ``origin`` names where the text came from (a file, a flag) in the ``error`` raised.
    """
    import duckdb

    def refuse(why: str) -> WattlasError:
        return error(
            f"{origin} {_quote(text)} is not one SQL condition on a table's columns ({why}); write a "
            "single expression such as source in ('burstgpt', 'azure-llm-2023') AND input_tokens > 0"
        )

    if not text.strip():
        raise refuse("it is empty")
    if not _balanced(text):
        # A ')' that closes the caller's '(' would change the meaning of what follows it.
        raise refuse("its parentheses do not balance")
    con = _parser()
    try:
        try:
            statements = con.extract_statements(f"SELECT * FROM {_PROBE_TABLE} WHERE ({text})")
        except duckdb.Error as e:
            raise refuse(str(e).splitlines()[0]) from None
        if len(statements) != 1:
            raise refuse(f"it holds {len(statements)} statements")
        tree = _serialize(con, statements[0].query)
        base = _serialize(con, f"SELECT * FROM {_PROBE_TABLE} WHERE true")
    finally:
        con.close()
    if tree.get("error") or len(tree.get("statements", [])) != 1:
        raise refuse(tree.get("error_message", "it does not parse as one SELECT"))
    node = tree["statements"][0]["node"]
    where = node.get("where_clause") if isinstance(node, dict) else None
    shape = _strip_locations({**node, "where_clause": None})
    if where is None or shape != _strip_locations({**base["statements"][0]["node"], "where_clause": None}):
        raise refuse("it reaches beyond the condition: a set operation, ORDER BY, LIMIT or similar")
    for cls in _expression_classes(where):
        if cls in _REFUSED_IN_CONDITIONS:
            raise refuse(f"it holds {_REFUSED_IN_CONDITIONS[cls]}")
    return text
