"""`wattlas release build|verify`: dataset releases (loading one is `wattlas ingest release --from DIR`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ._common import FormatOpt, OutputFormat, StoreOpt, err, open_store, print_frame, say

release_app = typer.Typer(
    name="release",
    help="Versioned, checksummed, Croissant-described dataset releases built from the store.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(release_app, name="release")


@release_app.command("build")
def build_cmd(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Release name (also finds datasets/NAME/release.toml).")],
    out_dir: Annotated[Path, typer.Option("-o", "--out", help="Release directory to write.", show_default=False)],
    tables: Annotated[
        str | None, typer.Option("--tables", help="Comma-separated tables, e.g. llm_requests.", show_default=False)
    ] = None,
    where: Annotated[
        str | None,
        typer.Option("--where", help="DuckDB SQL condition applied to every table: one expression, no subqueries.",
                     show_default=False),
    ] = None,
    version: Annotated[str | None, typer.Option("--version", help="MAJOR.MINOR.PATCH (default 1.0.0).")] = None,
    definition: Annotated[
        Path | None,
        typer.Option("--definition", help="A release.toml (default: datasets/NAME/release.toml if present)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an earlier release in the -o directory.")] = False,
    store: StoreOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Build a release: Parquet tables, croissant.json, dataset card README.md and SHA256SUMS."""
    from ..datasets import ReleaseDefinition, build_release, find_definition, load_definition
    from ..errors import ReleaseError
    from ..sqlguard import check_condition

    if where is not None:  # checked here so that the error names the flag, not the definition file
        check_condition(where, origin="--where", error=ReleaseError)
    path = definition or find_definition(name)
    if path is not None:
        base = load_definition(path)
        if base.name != name:
            raise ReleaseError(f"NAME {name!r} differs from the name {base.name!r} in {path}")
        err.print(f"definition: {path}", highlight=False)
    else:
        base = ReleaseDefinition(name=name)
    table_list = tuple(t.strip() for t in tables.split(",") if t.strip()) if tables else None
    spec = base.with_overrides(tables=table_list, where=where, version=version)
    report = build_release(spec, out_dir, open_store(store, write=False), force=force)
    rows = [
        {"file": rel, "bytes": size, "sha256": sha,
         "rows": next((t.rows for t in report.tables if t.file == rel), None)}
        for rel, (size, sha) in sorted(report.files.items())
    ]
    import polars as pl

    print_frame(pl.DataFrame(rows), fmt, title=f"{spec.name} {spec.version} -> {report.path}")
    licences = ", ".join(f"{u.id} ({u.licence})" for u in report.upstream)
    err.print(f"sources: {licences}\nbuilt in {report.seconds:.2f} s", highlight=False)


@release_app.command("verify")
def verify_cmd(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="A release directory.")],
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Check every checksum and validate croissant.json with mlcroissant; name each bad file."""
    from ..datasets import verify_release

    report = verify_release(directory)
    for w in report.warnings:
        say(w, label="warning:", style="yellow")
    if fmt is OutputFormat.json:
        sys.stdout.write(json.dumps({
            "path": str(report.path), "ok": True, "files": report.files, "tables": report.tables,
            "croissant_validated": report.croissant_validated,
            "mlcroissant_version": report.mlcroissant_version, "warnings": report.warnings,
        }) + "\n")
        return
    if fmt is OutputFormat.csv:
        import polars as pl

        print_frame(pl.DataFrame([{"file": f, "bytes": b} for f, b in sorted(report.files.items())]), fmt)
        return
    from ._common import out

    tables = ", ".join(f"{t} ({n:,} rows)" for t, n in report.tables.items())
    out.print(
        f"OK {report.path}: {len(report.files)} files match SHA256SUMS; croissant.json is valid Croissant 1.1 "
        f"(mlcroissant {report.mlcroissant_version}); tables: {tables}",
        highlight=False,
    )


def ingest_release(dirs: list[Path] | None, store: Path | None, *, replace: bool = False) -> None:
    """`wattlas ingest release --from DIR [--replace]`: load releases into the store under their sources."""
    from ..datasets import load_release
    from ..errors import ReleaseError

    if not dirs:
        raise ReleaseError("`wattlas ingest release` needs --from DIR (a release directory)")
    st = open_store(store, write=True)
    for d in dirs:
        report = load_release(d, st, replace=replace)
        for r in report.replaced:
            who = f"a load of release {r.written_by}" if r.written_by else "an ingest"
            err.print(f"replaced {r.table} {r.source}/{r.key}: {r.store_rows:,} rows (written by {who}) "
                      f"with {r.release_rows:,}", highlight=False)
        for table, rows in sorted(report.rows.items()):
            err.print(f"{table}: {rows:,} rows written", highlight=False)
        err.print(
            f"release {d}: sources {', '.join(report.sources)}, {report.keys} input key(s), {report.seconds:.2f} s",
            highlight=False,
        )
