"""Run a source's per-file conversions and commit them to the store in one transaction.

Each raw file is a pure task (raw file in, Parquet parts and a manifest row out) run in this
process or in a process pool. Finished tasks are kept in the store's staging area with a
``done.json`` written last, so an interrupted ingest resumes where it stopped; the rows become
visible only at the final commit, which replaces the rows of the same files and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import WattlasError
from ..store import Store, _safe_file_part
from .registry import Source, get_source, source_module

log = logging.getLogger("wattlas.ingest")

MANY_FILES = 4

EventCallback = Callable[[str, dict[str, Any]], None]


@dataclass
class IngestReport:
    """What an ingest wrote: rows per table, files read (and reused from staging), seconds."""

    source: str
    rows: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    resumed_files: list[str] = field(default_factory=list)
    bytes_read: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class InputFile:
    key: str
    path: Path


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _fingerprint(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}-{st.st_mtime_ns}"


def resolve_inputs(source: Source, paths: Sequence[str | os.PathLike[str]]) -> list[InputFile]:
    """Expand ``--from`` arguments: files are taken as given, directories are searched."""
    module = source_module(source.id)
    found: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            hits = sorted(f for f in p.rglob("*") if f.is_file() and module.accepts(source.id, f))
            if not hits:
                names = ", ".join(f.name for f in source.files) or "see `wattlas sources`"
                raise WattlasError(
                    f"{p} holds no files of source {source.id!r} (expected names like {names})"
                )
            found += hits
        elif p.is_file():
            found.append(p)
        else:
            raise WattlasError(f"--from {p}: no such file or directory")
    # Sources whose files share a name (Vidur's mlp.csv) key them by a longer, unique path.
    key_of = getattr(module, "input_key", None)
    inputs = [InputFile(key_of(source.id, p) if key_of else p.name, p) for p in found]
    keys = [i.key for i in inputs]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise WattlasError(f"two input files share the name(s) {dupes}; pass only one of each")
    return inputs


def download_inputs(source: Source, store: Store, progress: Any = None) -> list[InputFile]:
    from .download import RichDownloadBar, fetch

    if not source.files:
        raise WattlasError(
            f"source {source.id!r} has no downloadable files; pass them with --from PATH"
        )
    out = []
    key_of = getattr(source_module(source.id), "input_key", None)
    for f in source.files:
        bar = RichDownloadBar(progress, f"download {f.name}") if progress is not None else False
        path = fetch(source, f, store.cache_dir, progressbar=bar)
        out.append(InputFile(key_of(source.id, path) if key_of else f.name, path))
    return out


def run_task(source_id: str, path: str, stage_dir: str, fingerprint: str) -> dict[str, Any]:
    """Convert one raw file into ``stage_dir``; a pure task, safe to run in another process."""
    stage = Path(stage_dir)
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    module = source_module(source_id)
    with ThreadPoolExecutor(1) as pool:
        # Hashing runs beside the conversion: both stream the file, hashlib releases the GIL.
        digest: Future[str] = pool.submit(sha256_file, Path(path))
        try:
            parts = module.convert(source_id, Path(path), stage)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        sha = digest.result()
    import pyarrow.parquet as pq

    result = {
        "fingerprint": fingerprint,
        "sha256": sha,
        "size_bytes": Path(path).stat().st_size,
        "parts": {t: [str(Path(p).relative_to(stage)) for p in ps] for t, ps in parts.items()},
        "rows": {t: sum(pq.ParquetFile(p).metadata.num_rows for p in ps) for t, ps in parts.items()},
    }
    tmp = stage / "done.json.tmp"
    tmp.write_text(json.dumps(result))
    os.replace(tmp, stage / "done.json")
    return result


def _staged(stage: Path, fingerprint: str) -> dict[str, Any] | None:
    try:
        done = json.loads((stage / "done.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return done if done.get("fingerprint") == fingerprint else None


def ingest(
    source_id: str,
    paths: Sequence[str | os.PathLike[str]] | None = None,
    store: Store | str | os.PathLike[str] | None = None,
    *,
    workers: int | None = None,
    on_event: EventCallback | None = None,
    progress: Any = None,
) -> IngestReport:
    """Ingest ``source_id`` from local ``paths`` (files or directories) or by downloading.

    Returns an :class:`IngestReport`. Raises :class:`~wattlas.errors.InputFormatError` (file,
    line, column) on malformed input, in which case the store's tables are unchanged.

    Examples
    --------
    >>> report = ingest("azure-llm-2023", ["../shared/data/azure_llm_2023"], store=tmp)  # doctest: +SKIP
    >>> report.rows                                                                     # doctest: +SKIP
    {'llm_requests': 28185, 'ingest_manifest': 2}
    """
    started = time.perf_counter()
    source = get_source(source_id)
    store = store if isinstance(store, Store) else Store(store)
    emit = on_event or (lambda kind, info: None)
    if paths:
        inputs = resolve_inputs(source, paths)
        _warn_unofficial(source, inputs)
    else:
        inputs = download_inputs(source, store, progress)
    report = IngestReport(source.id, files=[i.key for i in inputs])
    report.bytes_read = sum(i.path.stat().st_size for i in inputs)
    emit("start", {"files": len(inputs), "bytes": report.bytes_read})
    staging = store.staging_dir(source.id)
    with store.transaction(source.id) as tx:
        results = _run_all(source.id, inputs, staging, workers, emit, report)
        for item in inputs:
            _put_results(tx, item, staging / _safe_file_part(item.key), results[item.key], report)
    shutil.rmtree(staging, ignore_errors=True)
    report.seconds = time.perf_counter() - started
    return report


def _run_all(
    source_id: str,
    inputs: list[InputFile],
    staging: Path,
    workers: int | None,
    emit: EventCallback,
    report: IngestReport,
) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    pending = []
    for item in inputs:
        fp = _fingerprint(item.path)
        done = _staged(staging / _safe_file_part(item.key), fp)
        if done is not None:
            results[item.key] = done
            report.resumed_files.append(item.key)
            emit("file_done", {"key": item.key, "rows": sum(done["rows"].values()),
                               "bytes": done["size_bytes"], "resumed": True})
        else:
            pending.append((item, fp))
    if workers is None:
        # Polars already uses every core on one file; processes pay off for many files.
        workers = (os.cpu_count() or 1) if len(pending) >= MANY_FILES else 1
    n_workers = min(workers, len(pending))
    if n_workers <= 1:
        for item, fp in pending:
            res = run_task(source_id, str(item.path), str(staging / _safe_file_part(item.key)), fp)
            results[item.key] = res
            emit("file_done", {"key": item.key, "rows": sum(res["rows"].values()),
                               "bytes": res["size_bytes"], "resumed": False})
        return results
    # spawn, not fork: polars and DuckDB keep thread pools that a fork would copy mid-state.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(n_workers, mp_context=ctx) as pool:
        futures = {
            pool.submit(run_task, source_id, str(item.path),
                        str(staging / _safe_file_part(item.key)), fp): item
            for item, fp in pending
        }
        for fut in as_completed(futures):
            item = futures[fut]
            res = fut.result()
            results[item.key] = res
            emit("file_done", {"key": item.key, "rows": sum(res["rows"].values()),
                               "bytes": res["size_bytes"], "resumed": False})
    return results


def _put_results(tx, item: InputFile, stage: Path, result: dict[str, Any], report: IngestReport) -> None:
    import pyarrow as pa

    from .. import __version__

    for table, parts in result["parts"].items():
        for part in parts:
            tx.put(table, item.key, stage / part)
        report.rows[table] = report.rows.get(table, 0) + result["rows"][table]
    manifest = pa.table({
        "input_name": [item.key],
        "input_path": [str(item.path.resolve())],
        "size_bytes": [result["size_bytes"]],
        "sha256": [result["sha256"]],
        "tables": [json.dumps(result["rows"], sort_keys=True)],
        "rows": [sum(result["rows"].values())],
        "ingested_at": pa.array([datetime.now(UTC)], pa.timestamp("us", tz="UTC")),
        "wattlas_version": [__version__],
    })
    tx.put("ingest_manifest", item.key, manifest)
    report.rows["ingest_manifest"] = report.rows.get("ingest_manifest", 0) + 1


def _warn_unofficial(source: Source, inputs: list[InputFile]) -> None:
    """Say when a local file carries an official name but not the official size."""
    for item in inputs:
        official = source.file(item.key)
        if official and official.size_bytes and item.path.stat().st_size != official.size_bytes:
            log.warning(
                "%s is %d bytes, the official %s is %d bytes: ingesting it as a local file",
                item.path, item.path.stat().st_size, item.key, official.size_bytes,
            )
