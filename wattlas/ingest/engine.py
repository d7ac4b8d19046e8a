"""Run a source's conversions and commit them to the store in one transaction.

Inputs are plain files or archives (``.tar.xz``, ``.zip``, ``.rar``) whose members are read one
at a time. Each raw data file (a plain file or an archive member) is an *item*; the source
module may put several items under one store *key* (``group``), e.g. the ~1,200 GPU files of one
Supercloud directory, so that the store holds a few large Parquet files instead of 120,000 tiny
ones. Items of one key are converted in *batches* (up to :data:`BATCH_BYTES` / :data:`BATCH_FILES`),
each batch a pure task run in this process or in a spawn process pool, writing one Parquet part
per table. Finished batches are kept in the store's staging area with a ``done.json`` written
last, so an interrupted ingest resumes where it stopped; the rows become visible only at the
final commit, which replaces the rows of the same keys and nothing else.

Source module protocol (``accepts`` and ``convert`` required, the rest optional):

``accepts(source_id, path) -> bool``
    Does a file (or archive member; ``path`` is then a ``PurePosixPath`` ending in the member
    name) belong to the source.
``convert(source_id, path, out_dir[, *, logical]) -> dict[table, list[Path]]``
    One raw file in, Parquet parts out. ``logical`` (passed only if the function takes it) is
    the item's logical path: the file's absolute path, or ``<archive path>/<member name>``.
``convert_batch(source_id, items, out_dir) -> dict[table, list[Path]]``
    Many raw files of one key at once (``items`` = list of ``(logical, path)``); used instead of
    ``convert`` when defined.
``group(source_id, logical, path) -> (key, name)``
    The store key the item's rows go under and its name within that key (default: the file
    name for both). Re-committing a key replaces all its rows, so an ingest that would commit a
    key without some files the key was committed from before is refused.
``reduce(source_id, key, parts, out_dir) -> dict[table, list[Path]]``
    Turns the intermediate tables (names starting with ``_``) of a complete key into store
    tables, e.g. to join a labels file into the jobs table.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

from .._files import sha256_file
from .._interrupt import Interrupted, ignore_sigint, sigint_blocked
from ..errors import InputFormatError, WattlasError, store_disk_error
from ..store import Store, _safe_file_part
from .archive import ArchiveLimits, archive_format, copy_member, iter_members
from .objstore import RemoteFile, is_remote, list_remote, run_batch_streamed
from .parts import collect_stats, merge_parts
from .registry import Source, get_source, source_module

log = logging.getLogger("wattlas.ingest")

#: A process pool is started when an ingest has at least this many batches (or any archive).
MANY_FILES = 4
#: A batch holds items of one key up to this many bytes (a larger file is a batch of its own) ...
BATCH_BYTES = 256 << 20
#: ... and up to this many files.
BATCH_FILES = 2000

EventCallback = Callable[[str, dict[str, Any]], None]
#: prctl(2) option: the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1
#: The run that owns a staging area (its PID and token), written when the run starts.
OWNER_FILE = "owner.json"


@dataclass
class IngestReport:
    """What an ingest wrote: rows per table, files read (and reused from staging), seconds.

    ``stats`` holds the counters tasks reported (e.g. ``[N/A]`` cells read as null).
    """

    source: str
    rows: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    resumed_files: list[str] = field(default_factory=list)
    bytes_read: int = 0
    seconds: float = 0.0
    stats: dict[str, int] = field(default_factory=dict)
    items: int = 0


@dataclass(frozen=True)
class InputFile:
    """A raw file as given on the command line or found in a ``--from`` directory."""

    key: str
    path: Path


@dataclass
class Item:
    """One raw data file: a plain file, or an archive member extracted to ``path``."""

    name: str
    key: str
    logical: str
    path: str
    size_bytes: int
    fingerprint: str
    input_path: str
    sha256: str | None = None
    archive: str | None = None
    extracted: bool = False
    progress_bytes: int = 0


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
                names = ", ".join(f.name for f in source.files[:6]) or "see `wattlas sources`"
                raise WattlasError(
                    f"{p} holds no files of source {source.id!r} (expected names like {names})"
                )
            found += hits
        elif p.is_file():
            found.append(p)
        else:
            raise WattlasError(f"--from {p}: no such file or directory")
    unique = list(dict.fromkeys(f.resolve() for f in found))
    return [InputFile(p.name, p) for p in unique]


def download_inputs(source: Source, store: Store, progress: Any = None) -> list[InputFile]:
    from .download import RichDownloadBar, fetch

    if not source.files:
        raise WattlasError(
            f"source {source.id!r} has no downloadable files; pass them with --from PATH"
        )
    out = []
    for f in source.files:
        bar = RichDownloadBar(progress, f"↓ {f.name}") if progress is not None else False
        out.append(InputFile(f.name, fetch(source, f, store.cache_dir, progressbar=bar)))
    return out


# ------------------------------------------------------------------ tasks (run in any process)
def _init_worker(threads: int, parent_pid: int) -> None:
    # Each worker runs multi-threaded polars/DuckDB: cap their pools so N workers share the cores.
    os.environ.setdefault("POLARS_MAX_THREADS", str(threads))
    os.environ.setdefault("WATTLAS_THREADS", str(threads))
    # Ctrl-C reaches the whole process group: the parent stops the run, workers finish quietly.
    ignore_sigint()
    _die_with_parent(parent_pid)


def _die_with_parent(parent_pid: int) -> None:
    """Make this worker exit when the ingest that started it dies, even by SIGKILL: an orphan
    would keep converting into the staging area that the next run uses."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the kernel kills us when the parent goes
    if os.getppid() != parent_pid:  # it died before prctl took effect
        os._exit(1)

    def watch() -> None:  # other systems have no parent-death signal: poll
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="wattlas-parent-watch", daemon=True).start()


def _call_convert(module: ModuleType, source_id: str, item: dict[str, Any], out: Path) -> dict[str, list[Path]]:
    fn = module.convert
    if "logical" in inspect.signature(fn).parameters:
        return fn(source_id, Path(item["path"]), out, logical=PurePosixPath(item["logical"]))
    return fn(source_id, Path(item["path"]), out)


def _convert_items(
    module: ModuleType, source_id: str, items: list[dict[str, Any]], stage: Path
) -> tuple[dict[str, list[Path]], list[dict[str, int]]]:
    """Parts per table and rows per table of each item."""
    import pyarrow.parquet as pq

    if hasattr(module, "convert_batch"):
        pairs = [(PurePosixPath(i["logical"]), Path(i["path"])) for i in items]
        parts, item_rows = module.convert_batch(source_id, pairs, stage)
        if len(item_rows) != len(items):
            raise RuntimeError(
                f"{module.__name__}.convert_batch returned rows of {len(item_rows)} of {len(items)} files"
            )
        return parts, item_rows
    parts: dict[str, list[Path]] = {}
    item_rows = []
    for n, item in enumerate(items):
        out = stage / f"{n:05d}"
        out.mkdir()
        rows: dict[str, int] = {}
        for table, ps in _call_convert(module, source_id, item, out).items():
            parts.setdefault(table, []).extend(ps)
            rows[table] = sum(pq.ParquetFile(p).metadata.num_rows for p in ps)
        item_rows.append(rows)
    return parts, item_rows


def run_batch(
    source_id: str, items: list[dict[str, Any]], stage_dir: str, fingerprint: str, run_token: str = ""
) -> dict[str, Any]:
    """Convert one batch of raw files into ``stage_dir``; a pure task, safe in another process.

    The batch is written into a directory of its own and renamed to ``stage_dir`` when done,
    with ``done.json`` (the parts and their SHA-256) inside: a staged batch is whole or absent.
    A batch of a run that no longer owns the staging area (``run_token``) is thrown away.
    """
    import pyarrow.parquet as pq

    final = Path(stage_dir)
    stage = final.with_name(f"{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    stage.mkdir(parents=True)
    module = source_module(source_id)
    try:
        with ThreadPoolExecutor(1) as pool:
            # Hashing runs beside the conversion: both stream the files, hashlib releases the GIL.
            digests: Future[list[str]] = pool.submit(
                lambda: [i["sha256"] or sha256_file(Path(i["path"])) for i in items]
            )
            parts, item_rows = _convert_items(module, source_id, items, stage)
            shas = digests.result()
        parts = {
            t: [merge_parts(ps, stage / f"merged-{t}.parquet")] if len(ps) > 1 else list(ps)
            for t, ps in parts.items()
        }
        rel = {t: [str(Path(p).relative_to(stage)) for p in ps] for t, ps in parts.items()}
        result = {
            "fingerprint": fingerprint,
            "items": [{**i, "sha256": s, "rows": r} for i, s, r in zip(items, shas, item_rows, strict=True)],
            "parts": rel,
            "checksums": {p: sha256_file(stage / p) for ps in rel.values() for p in ps},
            "rows": {t: sum(pq.ParquetFile(p).metadata.num_rows for p in ps) for t, ps in parts.items()},
            "stats": collect_stats(stage),
        }
        (stage / "done.json").write_text(json.dumps(result))
        if run_token and _owner_token(final.parent) != run_token:
            raise WattlasError(f"staging area {final.parent} was taken over by another run")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(stage, final)
    except BaseException as e:
        shutil.rmtree(stage, ignore_errors=True)
        # Whichever converter met it, a full disk is the store's problem, not the input's.
        disk = store_disk_error(e, final.parent, f"converting {items[0]['name']}")
        if disk is not None:
            raise disk from e
        raise
    finally:
        for item in items:
            if item["extracted"]:
                Path(item["path"]).unlink(missing_ok=True)
    return result


def _owner_token(staging: Path) -> str | None:
    try:
        return json.loads((staging / OWNER_FILE).read_text()).get("token")
    except (OSError, ValueError):
        return None


def _staged(stage: Path, fingerprint: str) -> dict[str, Any] | None:
    """The finished batch in ``stage`` if it is of these inputs and every part is intact."""
    try:
        done = json.loads((stage / "done.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if done.get("fingerprint") != fingerprint:
        return None
    checksums = done.get("checksums") or {}
    for table_parts in done.get("parts", {}).values():
        for part in table_parts:
            try:
                ok = sha256_file(stage / part) == checksums.get(part)
            except OSError:
                ok = False
            if not ok:
                log.warning("staged part %s is missing or changed; converting its batch again", stage / part)
                return None
    return done


# ------------------------------------------------------------------ the ingest
def ingest(
    source_id: str,
    paths: Sequence[str | os.PathLike[str]] | None = None,
    store: Store | str | os.PathLike[str] | None = None,
    *,
    workers: int | None = None,
    on_event: EventCallback | None = None,
    progress: Any = None,
    archive_limits: ArchiveLimits | None = None,
    executor: Executor | None = None,
    staging: str | os.PathLike[str] | None = None,
) -> IngestReport:
    """Ingest ``source_id`` from local ``paths`` (files, archives or directories) or by downloading.

    Returns an :class:`IngestReport`. Raises :class:`~wattlas.errors.InputFormatError` (file,
    line, column) on malformed input, in which case the store's tables are unchanged. Events
    for a progress display go to ``on_event(kind, info)``: ``start`` (files, bytes, archives),
    ``file_done`` (files, rows, bytes, resumed) and ``progress`` (bytes). ``archive_limits``
    bound what archives may expand to (default: :meth:`ArchiveLimits.from_env`).

    ``paths`` may also be object-storage prefixes (``s3://bucket/prefix/``): the driver lists
    them and the tasks stream the objects (:mod:`wattlas.ingest.objstore`). ``executor`` runs
    the batch tasks instead of the local process pool (e.g. :class:`wattlas.ingest.ray_engine.RayExecutor`);
    ``staging`` puts the staged batches in ``staging/<source>`` instead of the store's
    ``.staging`` (it must be reachable by every worker; the commit is this process's alone).

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
    local = [p for p in paths or () if not is_remote(p)]
    remote = list_remote(source, [str(p) for p in paths or () if is_remote(p)])
    if local:
        inputs = resolve_inputs(source, local)
        _warn_unofficial(source, inputs)
    elif not remote:
        inputs = download_inputs(source, store, progress)
    else:
        inputs = []
    report = IngestReport(source.id, files=[i.key for i in [*inputs, *remote]])
    report.bytes_read = sum(i.path.stat().st_size for i in inputs) + sum(r.size_bytes for r in remote)
    n_archives = sum(archive_format(i.path) is not None for i in inputs)
    emit("start", {"files": len(inputs) + len(remote) - n_archives, "bytes": report.bytes_read,
                   "archives": n_archives})
    staging = Path(staging) / source.id if staging is not None else store.staging_dir(source.id)
    with store.transaction(source.id) as tx:
        run = _Run(source.id, staging, emit, report, archive_limits, executor, remote)
        try:
            results = run.execute(inputs, workers)
        except KeyboardInterrupt as e:
            # The pool is shut down by now; what is staged is whole and a re-run reuses it.
            n = len(list(staging.glob("b-*/done.json")))
            raise Interrupted(f"{n} batches staged; run the same command to resume") from e
        keys = _by_key(results)
        _check_groups(store, source.id, keys)
        for key, batches in keys.items():
            parts = _key_parts(run.module, source.id, key, batches, staging)
            _put_key(tx, key, parts, batches, report, run.archive_shas)
        # Removed under the lock: a run waiting for it claims this same staging area next.
        tx.after_commit(lambda: shutil.rmtree(staging, ignore_errors=True))
    report.seconds = time.perf_counter() - started
    return report


class _Run:
    """Plans batches, runs them (inline or in a pool), and collects their results."""

    def __init__(self, source_id: str, staging: Path, emit: EventCallback, report: IngestReport,
                 archive_limits: ArchiveLimits | None = None, executor: Executor | None = None,
                 remote: Sequence[RemoteFile] = ()):
        self.source_id = source_id
        self.module = source_module(source_id)
        self.staging = staging
        self.emit = emit
        self.report = report
        self.results: list[dict[str, Any]] = []
        self.archive_shas: dict[str, str] = {}
        # Where batches run: None (inline), the local process pool, or a given executor (Ray).
        self.pool: Executor | None = None
        self.executor = executor
        self.remote = list(remote)
        self.max_inflight = 1
        self.inflight: dict[Future[dict[str, Any]], tuple[list[Item], Path]] = {}
        self.open: dict[str, list[Item]] = {}
        self.seen: dict[tuple[str, str], str] = {}
        self.extract_dir = staging / "_in"
        self._n_extracted = 0
        self.token = uuid.uuid4().hex
        self.archive_limits = archive_limits

    # ---------------------------------------------------------------- driver
    def execute(self, inputs: list[InputFile], workers: int | None) -> list[dict[str, Any]]:
        self._claim_staging()
        try:
            return self._execute(inputs, workers)
        finally:
            # Extracted members are transient; finished batches stay staged for a resume.
            shutil.rmtree(self.extract_dir, ignore_errors=True)

    def _claim_staging(self) -> None:
        """Make the staging area this run's: the caller holds the store lock, so the run that
        wrote it before is dead; its half-written batches and extracted members go."""
        self.staging.mkdir(parents=True, exist_ok=True)
        owner = {"pid": os.getpid(), "token": self.token, "started": datetime.now(UTC).isoformat()}
        tmp = self.staging / f".{OWNER_FILE}.tmp"
        tmp.write_text(json.dumps(owner))
        os.replace(tmp, self.staging / OWNER_FILE)
        shutil.rmtree(self.extract_dir, ignore_errors=True)
        for stale in self.staging.glob("*.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)

    def _execute(self, inputs: list[InputFile], workers: int | None) -> list[dict[str, Any]]:
        plain = [i for i in inputs if archive_format(i.path) is None]
        archives = [i for i in inputs if archive_format(i.path) is not None]
        items = [self._plain_item(i) for i in plain] + [self._remote_item(r) for r in self.remote]
        # Plan the plain files first: their batch count decides whether a pool pays off.
        planned: list[list[Item]] = []
        for item in items:
            planned += self._add(item)
        planned += self._flush_all()
        if workers is None:
            # Polars and DuckDB already use every core on one batch; processes pay off for many.
            many = len(planned) + (MANY_FILES if archives else 0) >= MANY_FILES
            workers = (os.cpu_count() or 1) if many else 1
        workers = max(1, workers)
        with contextlib.ExitStack() as stack:
            if self.executor is not None:
                # Same tasks, same throttle; the executor (a cluster) sets how many run at once.
                self.pool = stack.enter_context(self.executor)
                stack.callback(self._cancel)
                self.max_inflight = getattr(self.executor, "max_inflight", workers + 1)
            elif workers > 1:
                ctx = multiprocessing.get_context("spawn")
                threads = max(1, (os.cpu_count() or 1) // workers)
                # spawn, not fork: polars and DuckDB keep thread pools that a fork would copy mid-state.
                self.pool = stack.enter_context(
                    ProcessPoolExecutor(
                        workers, mp_context=ctx, initializer=_init_worker, initargs=(threads, os.getpid())
                    )
                )
                stack.callback(self._cancel)
                self.max_inflight = workers + 1
            for batch in planned:
                self._submit(batch)
            for archive in archives:
                self._stream_archive(archive)
            for batch in self._flush_all():
                self._submit(batch)
            while self.inflight:
                self._wait_one()
        return self.results

    def _cancel(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    # ---------------------------------------------------------------- items
    def _group(self, logical: PurePosixPath, path: Path) -> tuple[str, str]:
        fn = getattr(self.module, "group", None)
        return fn(self.source_id, logical, path) if fn else (logical.name, logical.name)

    def _plain_item(self, inp: InputFile) -> Item:
        path = inp.path.resolve()
        logical = PurePosixPath(path.as_posix())
        key, name = self._group(logical, path)
        size = path.stat().st_size
        return Item(name, key, str(logical), str(path), size, _fingerprint(path), str(path),
                    progress_bytes=size)

    def _remote_item(self, obj: RemoteFile) -> Item:
        # The object is read by the task (run_batch_streamed), never here: the driver only lists.
        logical = PurePosixPath(obj.logical)
        key, name = self._group(logical, Path(logical.name))
        return Item(name, key, obj.logical, obj.url, obj.size_bytes, obj.fingerprint, obj.url,
                    progress_bytes=obj.size_bytes)

    def _stream_archive(self, inp: InputFile) -> None:
        path = inp.path.resolve()
        archive_fp = _fingerprint(path)
        # The archive's own checksum, for the manifest, computed beside the extraction.
        with ThreadPoolExecutor(1) as hasher:
            sha = hasher.submit(sha256_file, path)
            self.extract_dir.mkdir(parents=True, exist_ok=True)
            last_pos = 0
            n_members = 0
            for member in iter_members(path, inp.key, self.archive_limits):
                logical = PurePosixPath(path.as_posix()) / member.name
                if not self.module.accepts(self.source_id, logical):
                    log.debug("%s: skipping member %s (not part of %s)", inp.key, member.name, self.source_id)
                    continue
                n_members += 1
                self._n_extracted += 1
                dest = self.extract_dir / f"{self._n_extracted:07d}-{_safe_file_part(PurePosixPath(member.name).name)}"
                # Wait for a free slot first, so extracted-but-unconverted data stays bounded.
                self._throttle()
                size, member_sha = copy_member(member, dest)
                key, name = self._group(logical, dest)
                pos = member.archive_pos if member.archive_pos is not None else last_pos
                item = Item(
                    name, key, str(logical), str(dest), size,
                    f"{archive_fp}:{member.name}:{size}", f"{path}:{member.name}",
                    sha256=member_sha, archive=inp.key, extracted=True,
                    progress_bytes=max(0, min(pos, path.stat().st_size) - last_pos),
                )
                last_pos = max(last_pos, pos)
                for batch in self._add(item):
                    self._submit(batch)
            if n_members == 0:
                raise InputFormatError(
                    f"the archive holds no files of source {self.source_id!r}", file=inp.key
                )
            self.archive_shas[inp.key] = sha.result()
        remainder = path.stat().st_size - last_pos
        if remainder > 0:
            self.emit("progress", {"bytes": remainder})

    def _add(self, item: Item) -> list[list[Item]]:
        """Add ``item`` to its key's open batch; return the batches that are now full."""
        prev = self.seen.get((item.key, item.name))
        if prev is not None:
            raise WattlasError(
                f"two raw files map to {item.name!r} in {self.source_id} key {item.key!r}: {prev} and "
                f"{item.input_path}; pass only one of them (an archive and its extracted files, or "
                "two copies of a file, cannot be ingested together)"
            )
        self.seen[(item.key, item.name)] = item.input_path
        out = []
        batch = self.open.setdefault(item.key, [])
        size = sum(i.size_bytes for i in batch)
        if batch and (size + item.size_bytes > BATCH_BYTES or len(batch) >= BATCH_FILES):
            out.append(self.open.pop(item.key))
            batch = self.open.setdefault(item.key, [])
        batch.append(item)
        return out

    def _flush_all(self) -> list[list[Item]]:
        out = [b for b in self.open.values() if b]
        self.open = {}
        return out

    # ---------------------------------------------------------------- execution
    def _batch_stage(self, batch: list[Item]) -> tuple[Path, str]:
        key = batch[0].key
        ident = hashlib.sha1("\0".join([key, *(i.name for i in batch)]).encode()).hexdigest()[:12]
        fp = hashlib.sha1("\n".join(i.fingerprint for i in batch).encode()).hexdigest()
        return self.staging / f"b-{_safe_file_part(key)[:40]}-{ident}", fp

    def _submit(self, batch: list[Item]) -> None:
        stage, fp = self._batch_stage(batch)
        done = _staged(stage, fp)
        if done is not None:
            for item in batch:
                if item.extracted:
                    Path(item.path).unlink(missing_ok=True)
            self._finish(batch, stage, done, resumed=True)
            return
        args = (self.source_id, [asdict(i) for i in batch], str(stage), fp, self.token)
        task = run_batch_streamed if any(is_remote(i.path) for i in batch) else run_batch
        if self.pool is None:
            self._finish(batch, stage, task(*args), resumed=False)
            return
        self._throttle()
        with sigint_blocked():  # a submit may start a worker: it must not die of an early Ctrl-C
            self.inflight[self.pool.submit(task, *args)] = (batch, stage)

    def _throttle(self) -> None:
        while self.pool is not None and len(self.inflight) >= self.max_inflight:
            self._wait_one()

    def _wait_one(self) -> None:
        done, _ = wait(list(self.inflight), return_when=FIRST_COMPLETED)
        for fut in done:
            batch, stage = self.inflight.pop(fut)
            self._finish(batch, stage, fut.result(), resumed=False)

    def _finish(self, batch: list[Item], stage: Path, result: dict[str, Any], *, resumed: bool) -> None:
        result = {**result, "stage": str(stage), "key": batch[0].key}
        self.results.append(result)
        if resumed:
            self.report.resumed_files += [i.name for i in batch]
        self.report.items += len(batch)
        for k, v in result.get("stats", {}).items():
            self.report.stats[k] = self.report.stats.get(k, 0) + v
        self.emit("file_done", {
            "key": batch[0].key, "files": len(batch),
            "rows": sum(n for t, n in result["rows"].items() if not t.startswith("_")),
            "bytes": sum(i.progress_bytes for i in batch), "resumed": resumed,
        })


def _by_key(results: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    keys: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        keys.setdefault(r["key"], []).append(r)
    for batches in keys.values():
        # Deterministic part order whatever order the pool finished in.
        batches.sort(key=lambda r: [i["name"] for i in r["items"]])
    return dict(sorted(keys.items()))


def _check_groups(store: Store, source_id: str, keys: dict[str, list[dict[str, Any]]]) -> None:
    """Refuse to re-commit a key without files it was committed from (that would lose their rows)."""
    import pyarrow.parquet as pq

    committed = store.catalog()["tables"].get("ingest_manifest", {}).get(source_id, {})
    for key, batches in keys.items():
        entry = committed.get(key)
        if not entry:
            continue
        before: set[str] = set()
        for f in entry["files"]:
            before |= set(pq.read_table(store.tables_dir / "ingest_manifest" / f, columns=["input_name"])
                          .column("input_name").to_pylist())
        now = {i["name"] for r in batches for i in r["items"]}
        missing = sorted(before - now)
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise WattlasError(
                f"{source_id}: the store's rows under {key!r} came from {len(before)} file(s), and this "
                f"ingest lacks {len(missing)} of them ({shown}). Committing would drop their rows: pass "
                "all files of that group again (the whole directory or archive)."
            )


def _key_parts(
    module: ModuleType, source_id: str, key: str, batches: list[dict[str, Any]], staging: Path
) -> dict[str, list[Path]]:
    parts: dict[str, list[Path]] = {}
    for r in batches:
        for table, ps in r["parts"].items():
            parts.setdefault(table, []).extend(Path(r["stage"]) / p for p in ps)
    inter = {t: ps for t, ps in parts.items() if t.startswith("_")}
    if not inter:
        return parts
    reduce = getattr(module, "reduce", None)
    if reduce is None:
        raise WattlasError(f"source {source_id!r} wrote intermediate tables {sorted(inter)} but has no reduce()")
    out_dir = staging / "_reduce" / _safe_file_part(key)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    final = {t: ps for t, ps in parts.items() if not t.startswith("_")}
    for table, ps in reduce(source_id, key, inter, out_dir).items():
        final.setdefault(table, []).extend(ps)
    return final


def _put_key(tx, key: str, parts: dict[str, list[Path]], batches: list[dict[str, Any]],
             report: IngestReport, archive_shas: dict[str, str]) -> None:
    # polars, not pyarrow.array(): building Arrow arrays from Python lists imports pandas
    # (a quarter of a second) just to check whether the lists are pandas objects.
    import polars as pl

    from .. import __version__

    for table, ps in sorted(parts.items()):
        for part in ps:
            n = tx.put(table, key, part)
            report.rows[table] = report.rows.get(table, 0) + n
    items = [i for r in batches for i in r["items"]]
    manifest = pl.DataFrame({
        "input_name": [i["name"] for i in items],
        "input_key": [key] * len(items),
        "input_path": [i["input_path"] for i in items],
        "archive_name": [i["archive"] for i in items],
        "archive_sha256": [archive_shas.get(i["archive"]) if i["archive"] else None for i in items],
        "size_bytes": [i["size_bytes"] for i in items],
        "sha256": [i["sha256"] for i in items],
        "tables": [json.dumps(i["rows"], sort_keys=True) for i in items],
        "rows": [sum(n for t, n in i["rows"].items() if not t.startswith("_")) for i in items],
        "ingested_at": [datetime.now(UTC)] * len(items),
        "wattlas_version": [__version__] * len(items),
    }, schema_overrides={"archive_name": pl.String, "archive_sha256": pl.String, "input_path": pl.String,
                         "sha256": pl.String})
    tx.put("ingest_manifest", key, manifest)
    report.rows["ingest_manifest"] = report.rows.get("ingest_manifest", 0) + len(items)


def _warn_unofficial(source: Source, inputs: list[InputFile]) -> None:
    """Say when a local file carries an official name but not the official size."""
    for item in inputs:
        official = source.file(item.key)
        if official and official.size_bytes and item.path.stat().st_size != official.size_bytes:
            log.warning(
                "%s is %d bytes, the official %s is %d bytes: ingesting it as a local file",
                item.path, item.path.stat().st_size, item.key, official.size_bytes,
            )
