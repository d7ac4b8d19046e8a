"""Foundation commands: ingest, sql, tables, sources, quickstart."""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from ._common import (
    DEFAULT_TABLE_ROWS,
    FormatOpt,
    OutputFormat,
    StoreOpt,
    err,
    notice,
    open_store,
    out,
    print_frame,
    resolve,
    say,
)


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_cmd)
    app.command("sql")(sql_cmd)
    app.command("tables")(tables_cmd)
    app.command("sources")(sources_cmd)
    app.command("quickstart")(quickstart_cmd)


def _progress():
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )
    from rich.table import Column

    return Progress(
        TextColumn("{task.description}", table_column=Column(ratio=2, no_wrap=True, overflow="ellipsis")),
        BarColumn(bar_width=20),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[rows]}", table_column=Column(ratio=2, no_wrap=True)),
        console=err,
        transient=False,
    )


def run_ingest(source_id: str, paths: list[str | Path] | None, store_path: Path | None, workers: int | None,
               archive_limits=None, executor=None, staging: Path | None = None):
    """Ingest with a progress bar on stderr: files done, rows, bytes and MB/s."""
    from ..ingest import ingest

    store = open_store(store_path, write=True)
    with _progress() as progress:
        task = progress.add_task(source_id, total=None, rows="")
        state = {"rows": 0, "files": 0, "total_files": 0, "archives": 0}

        def on_event(kind: str, info: dict) -> None:
            if kind == "start":
                state["total_files"] = info["files"]
                state["archives"] = info.get("archives", 0)
                progress.update(task, total=info["bytes"], completed=0)
            elif kind == "file_done":
                state["rows"] += info["rows"]
                state["files"] += info.get("files", 1)
                # Archive members are counted as they are found: no total is known up front.
                total = "" if state["archives"] else f"/{state['total_files']}"
                progress.update(
                    task, advance=info["bytes"],
                    rows=f"{state['files']:,}{total} files, {state['rows']:,} rows",
                )
            elif kind == "progress":
                progress.update(task, advance=info["bytes"])

        # Downloads draw their own bars in the same progress display.
        return ingest(source_id, paths or None, store, workers=workers, on_event=on_event,
                      progress=progress, archive_limits=archive_limits, executor=executor, staging=staging)


def _source_id(text: str) -> str:
    """A registered source id (case-insensitive), or UnknownSourceError with a did-you-mean."""
    from ..errors import UnknownSourceError
    from ..ingest.registry import sources

    return resolve(text, [s.id for s in sources()], what="source", error=UnknownSourceError)


def _byte_size(text: str | None) -> int | None:
    from ..ingest.archive import parse_bytes

    if text is None:
        return None
    try:
        return parse_bytes(text)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e



def ingest_cmd(
    source_id: Annotated[str, typer.Argument(metavar="SOURCE_ID", help="A source id from `wattlas sources`.")],
    from_: Annotated[
        list[str] | None,
        typer.Option("--from", metavar="PATH", help="Local raw files or directories, or s3://bucket/prefix/ "
                                                    "URLs, instead of downloading (repeatable)."),
    ] = None,
    store: StoreOpt = None,
    workers: Annotated[int | None, typer.Option(help="Processes for multi-file sources (default: all cores).")] = None,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="With `ingest release`: also replace rows an ingest wrote (listed first)."),
    ] = False,
    max_expand_ratio: Annotated[float | None, typer.Option(
        help="Archives: most bytes written per compressed byte read (default 200, or "
             "$WATTLAS_MAX_EXPAND_RATIO).", show_default=False)] = None,
    max_member_bytes: Annotated[str | None, typer.Option(
        metavar="SIZE", help="Archives: largest member (default 16GiB, or $WATTLAS_MAX_MEMBER_BYTES).",
        show_default=False)] = None,
    max_archive_bytes: Annotated[str | None, typer.Option(
        metavar="SIZE", help="Archives: most bytes one archive may expand to (default 64GiB, or "
                             "$WATTLAS_MAX_ARCHIVE_BYTES).", show_default=False)] = None,
    engine: Annotated[str, typer.Option(
        help="Where batches run: local (this machine's process pool) or ray (a Ray cluster).")] = "local",
    address: Annotated[str | None, typer.Option(
        help="With --engine ray: the cluster (HOST:PORT, ray://HOST:PORT or auto; default $RAY_ADDRESS, "
             "else a running cluster, else a local Ray instance).", show_default=False)] = None,
    staging: Annotated[Path | None, typer.Option(
        help="Folder for finished batches before the commit (default: the store's .staging); with "
             "--engine ray every node must reach it, e.g. a shared filesystem.", show_default=False)] = None,
) -> None:
    """Ingest a source into the store: download (or read --from) its raw files and write tables.

    `wattlas ingest release --from DIR` loads a dataset release, its rows under their original sources:
    each table it carries replaces those keys' rows in that table only. It refuses to replace rows an
    ingest wrote (naming keys and row counts) unless --replace is given.
    """
    from ..ingest.objstore import is_remote

    if source_id == "release":
        from .release import ingest_release

        return ingest_release([Path(p) for p in from_] if from_ else from_, store, replace=replace)
    # Local paths as Path (expanding ~); URLs stay strings (a Path would drop the // of s3://).
    paths = [p if is_remote(p) else Path(p) for p in from_ or []]
    executor = _executor(engine, address)
    source_id = _source_id(source_id)
    if replace:
        from ..errors import WattlasError

        raise WattlasError(
            "--replace applies only to `wattlas ingest release`; an ingest of raw files always replaces "
            "the rows of the files it reads"
        )
    limits = None
    if (max_expand_ratio, max_member_bytes, max_archive_bytes) != (None, None, None):
        from ..ingest.archive import ArchiveLimits

        limits = ArchiveLimits.from_env().replace(
            max_expand_ratio=max_expand_ratio, max_member_bytes=_byte_size(max_member_bytes),
            max_archive_bytes=_byte_size(max_archive_bytes),
        )
    report = run_ingest(source_id, paths, store, workers, limits, executor, staging)
    for table, rows in sorted(report.rows.items()):
        err.print(f"{table}: {rows:,} rows written")
    for what, count in sorted(report.stats.items()):
        err.print(f"{what}: {count:,}", highlight=False)
    if report.resumed_files:
        err.print(f"resumed {len(report.resumed_files)} file(s) finished by an interrupted run")
    err.print(f"{report.source}: {len(report.files)} file(s), {report.seconds:.2f} s")


def _executor(engine: str, address: str | None):
    """None for the local pool, or the Ray executor (Ray imported only here)."""
    if engine == "local":
        if address is not None:
            raise typer.BadParameter("--address applies to --engine ray", param_hint="--address")
        return None
    if engine != "ray":
        raise typer.BadParameter(f"{engine!r}: choose local or ray", param_hint="--engine")
    from ..ingest.ray_engine import RayExecutor, require_ray

    require_ray()
    return RayExecutor(address)


def sql_cmd(
    query: Annotated[str, typer.Argument(metavar="QUERY", help="SQL over the store's tables ('-' reads stdin).")],
    store: StoreOpt = None,
    fmt: FormatOpt = OutputFormat.table,
    allow_writes: Annotated[
        bool,
        typer.Option("--allow-writes", help="Allow COPY ... TO 'path' for paths outside the store (never into it)."),
    ] = False,
    allow_read: Annotated[
        list[Path] | None,
        typer.Option("--allow-read", metavar="PATH", help="A file or folder the query may also read (repeatable)."),
    ] = None,
    limit: Annotated[int, typer.Option(
        "--limit", metavar="N", min=0,
        help="Rows the table shows; stderr says how many were left out (csv and json: every row).")
    ] = DEFAULT_TABLE_ROWS,
    show_all: Annotated[bool, typer.Option("--all", help="Show every row in the table.")] = False,
) -> None:
    """Run a read-only SQL query (DuckDB dialect) over the store's tables.

    May: SELECT (also WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE) over the
    store's tables, and read the files named with --allow-read.

    May not: write files (COPY ... TO needs --allow-writes, and never writes
    into the store), ATTACH databases, INSTALL or LOAD extensions, SET or
    PRAGMA, CREATE, INSERT, UPDATE, DELETE or EXPORT, or read any other file
    (read_csv, read_text, glob, URLs).
    """
    from ..sqlguard import run_query

    if query == "-":
        query = sys.stdin.read()
    df = run_query(query, open_store(store, write=False), allow_writes=allow_writes, allow_read=allow_read or ())
    print_frame(df, fmt, max_rows=None if show_all else limit)


def tables_cmd(
    name: Annotated[str | None, typer.Argument(metavar="NAME", help="Show this table only (even if empty).",
                                               show_default=False)] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also list the tables that hold no rows.")] = False,
    store: StoreOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """List the tables that hold rows: row counts, sources, and every column with type, unit and meaning."""
    import polars as pl

    from ..schemas import TABLES, TYPE_NAMES
    from ._common import resolve_table

    infos = open_store(store, write=False).tables()
    if name is not None:
        name = resolve_table(name)
        infos = [i for i in infos if i.name == name]
    elif not show_all:
        empty = [i.name for i in infos if not i.rows]
        infos = [i for i in infos if i.rows]
        if empty:
            # Said on stderr, so that csv/json on stdout stay clean.
            notice(f"{len(empty)} table(s) hold no rows and are not shown ({', '.join(empty)}): --all lists them")
    if fmt is not OutputFormat.table:
        rows = []
        for info in infos:
            schema = TABLES.get(info.name)
            cols = [] if schema is None else [
                {"name": c.name, "type": TYPE_NAMES[c.type], "unit": c.unit,
                 "required": c.required, "description": c.description}
                for c in schema.columns
            ]
            rows.append({"table": info.name, "rows": info.rows, "files": info.files,
                         "sources": ",".join(info.sources),
                         "columns": json.dumps(cols) if fmt is OutputFormat.csv else cols})
        if fmt is OutputFormat.json:
            sys.stdout.write(json.dumps(rows) + "\n")
        else:
            print_frame(pl.DataFrame(rows), fmt)
        return
    from ._common import print_table

    for n, info in enumerate(infos):
        schema = TABLES.get(info.name)
        if n:
            sys.stdout.write("\n")  # a blank line between tables
        title = f"{info.name}: {info.rows} rows" + (
            f" from {', '.join(info.sources)}" if info.sources else ""
        )
        rows = [["source", "VARCHAR", "", "Source id (partition key)"]] + [
            [c.name, TYPE_NAMES[c.type], c.unit or "", c.description] for c in (schema.columns if schema else ())
        ]
        print_table(("column", "type", "unit", "meaning"), rows, title=title,
                    caption=schema.description if schema else None)


def sources_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print the registry as JSON.")] = False,
    fmt: FormatOpt = OutputFormat.table,
    forget: Annotated[list[str] | None, typer.Option(
        "--forget", metavar="SOURCE/FILE",
        help="Forget the hash recorded on first download of an unpinned file (repeatable), so that "
             "the next download records the publisher's new file.", show_default=False)] = None,
    store: StoreOpt = None,
) -> None:
    """List the registered sources: files, hashes (pinned or not), licence and citation.

    A file marked "manual download" (`"automatic": false` in --json, with `manual_download`
    saying where to get it) cannot be fetched by wattlas: download it by hand and ingest with --from.
    """
    from dataclasses import asdict

    from ..ingest.registry import sources

    if forget:
        from ..ingest.download import RECORD, forget_recorded_hash

        cache_dir = open_store(store, write=True).cache_dir  # the store's download cache
        for key in forget:
            old = forget_recorded_hash(cache_dir, key)
            err.print(f"forgot sha256:{old} of {key} (in {cache_dir / RECORD}); the next download records it anew",
                      highlight=False)
        return

    srcs = sources()
    if as_json or fmt is OutputFormat.json:
        data = []
        for s in srcs:
            d = asdict(s)
            for f, spec in zip(d["files"], s.files, strict=True):
                f["pinned"] = spec.pinned
                f["automatic"] = spec.automatic
            data.append(d)
        sys.stdout.write(json.dumps(data, indent=1) + "\n")
        return
    import polars as pl

    def file_list(s) -> str:
        # Name, size and hash (its first 16 hex digits; `--json` has them whole) or "unpinned".
        def one(f) -> str:
            facts = [f"{f.size_bytes:,} B"] if f.size_bytes else []
            facts.append(f"sha256 {f.sha256[:16]}" if f.pinned and f.sha256 else "unpinned")
            if not f.automatic:
                facts.append("manual download")
            return f"{f.name} ({', '.join(facts)})"

        return "; ".join(one(f) for f in s.files) or "generated locally"

    # One frame for the table and the CSV, so the table shows everything the CSV holds.
    print_frame(pl.DataFrame([
        {"id": s.id, "title": s.title, "tables": ",".join(s.tables), "files": len(s.files),
         "unpinned_files": sum(not f.pinned for f in s.files),
         "manual_download_files": len(s.manual_files), "licence": s.licence,
         "citation": s.citation, "paper": s.paper, "file_list": file_list(s)} for s in srcs
    ]), fmt, title="wattlas sources", caption=(
        "Files marked manual download are on hosts wattlas cannot fetch (Google Drive pages): "
        "`wattlas ingest SOURCE` lists each with where to get it; ingest them with --from DIR. "
        "All other files download automatically."))


def quickstart_cmd(
    store: StoreOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """The main job: ingest the Azure LLM 2023 trace (or an offline sample), summarize it, write report.html."""
    from ..analysis import trace_summary
    from ..errors import DownloadError

    started = time.perf_counter()
    st = open_store(store, write=True)
    source = "azure-llm-2023"
    if st.input_keys(source, "llm_requests"):
        # Already ingested (downloaded, or --from a local copy): no download, so no network error
        # on every run.
        notice(f"using the {source} rows already in the store (`wattlas ingest {source}` refreshes them)")
    else:
        try:
            run_ingest(source, None, st.root, None)
        except DownloadError as e:
            source = _ingest_sample(st, e)
    con = st.connect()
    try:
        summary = trace_summary(con, source)
    finally:
        con.close()
    if fmt is OutputFormat.table:
        _print_summary(summary, title=f"{source}: per-trace summary")
    else:
        print_frame(summary, fmt)
    from ..analysis.report import build_report

    report = build_report("llm_requests", st.root / "report.html", store=st, source=source)
    err.print(f"store: {st.root}  ({time.perf_counter() - started:.1f} s)", highlight=False, soft_wrap=True)
    # The report's path ends the run; on stdout only where stdout is not machine-readable.
    (out if fmt is OutputFormat.table else err).print(f"report: {report.resolve()}", highlight=False,
                                                      soft_wrap=True)


def _ingest_sample(st, reason: Exception) -> str:
    """Offline fallback: generate the sample in the raw 2023 format and ingest it, loudly."""
    from ..ingest.sources import sample

    if st.input_keys(sample.SOURCE_ID, "llm_requests"):
        # Offline again: the sample is in the store already; the full network error was shown
        # by the run that generated it.
        say(
            f"the Azure LLM 2023 trace could not be downloaded "
            f"({type(reason).__name__}); using the GENERATED SAMPLE already in the store (source "
            f"'{sample.SOURCE_ID}'): the statistics below are synthetic. `--debug` shows the error.",
            label="notice:", style="bold yellow",
        )
        logging.getLogger(__name__).debug("download failed: %s", reason)
        return sample.SOURCE_ID
    say(
        "the Azure LLM 2023 trace could not be downloaded "
        f"({reason}).\nFalling back to a GENERATED SAMPLE with the same raw format and schema "
        f"(source '{sample.SOURCE_ID}'): the statistics below are synthetic, not the real "
        "trace. With network access, run `wattlas quickstart` again, or pass a local copy: "
        "`wattlas ingest azure-llm-2023 --from DIR`.",
        label="notice:", style="bold yellow",
    )
    with tempfile.TemporaryDirectory() as tmp:
        paths = sample.generate(Path(tmp))
        run_ingest(sample.SOURCE_ID, paths, st.root, None)
    return sample.SOURCE_ID


def _print_summary(summary, title: str) -> None:
    """One column per trace, one row per statistic: readable in an 80-column terminal."""
    from ._common import frame_cells, print_table

    stats = summary.drop("source", "trace", strict=False)
    by_trace = frame_cells(stats)  # the CSV text of each value, one list per trace
    rows = [[col, *(cells[k] for cells in by_trace)] for k, col in enumerate(stats.columns)]
    print_table(["statistic", *summary["trace"].cast(str).to_list()], rows,
                right=[False] + [True] * summary.height, title=title)
