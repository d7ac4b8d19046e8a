"""Raw files on object storage (``s3://bucket/prefix/``): listed by the driver, read by the tasks.

The driver of an ingest only lists a prefix (names, sizes, modification times); the batch task
that converts a file streams it from the bucket into a scratch folder of the process running it
(another machine's, on a cluster), converts it like an extracted archive member, and deletes it.
So the data set is never copied to the driver's disk, and a node holds at most its running
batches.

Access goes through :class:`pyarrow.fs.S3FileSystem` (no extra package). Credentials come from
the AWS chain (environment, ``~/.aws``, instance or pod role); with none in sight, and for public
buckets such as the MIT Supercloud release, requests are unsigned. ``WATTLAS_S3_ANONYMOUS=1``
(or ``0``) forces the choice, e.g. ``0`` on a machine whose credentials come from an instance
role. ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``) points at another S3-compatible server
(MinIO, Ceph, a test server), ``AWS_REGION`` names the region (default: asked of the bucket).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ..errors import WattlasError

if TYPE_CHECKING:
    import pyarrow.fs

    from .registry import Source

SCHEMES = ("s3://",)
#: Objects of one batch fetched at once: S3 GETs are latency-bound, many small files per batch.
FETCH_THREADS = 8
_CHUNK_BYTES = 8 << 20
#: Environment variables that mean the AWS credential chain has something to sign with.
_CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")


@dataclass(frozen=True)
class RemoteFile:
    """One listed object: its URL, size and a fingerprint (size and modification time)."""

    key: str
    url: str
    size_bytes: int
    fingerprint: str

    @property
    def logical(self) -> str:
        return self.url


def is_remote(path: str | os.PathLike[str]) -> bool:
    """Is ``path`` an object-storage URL (a ``pathlib.Path`` never is: it drops the ``//``)."""
    return isinstance(path, str) and path.startswith(SCHEMES)


def _anonymous() -> bool:
    forced = os.environ.get("WATTLAS_S3_ANONYMOUS")
    if forced is not None:
        return forced.strip().lower() in ("1", "true", "yes")
    if any(os.environ.get(v) for v in _CREDENTIAL_VARS):
        return False
    aws = Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE", Path.home() / ".aws" / "credentials"))
    return not aws.is_file()


def _endpoint() -> tuple[str | None, str]:
    """The endpoint override and scheme from the standard AWS variables."""
    url = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not url:
        return None, "https"
    scheme, sep, rest = url.partition("://")
    return (rest.rstrip("/"), scheme) if sep else (url.rstrip("/"), "https")


@functools.cache
def _region(bucket: str) -> str:
    import pyarrow.fs

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        return region
    if _endpoint()[0] is not None:
        return "us-east-1"  # S3-compatible servers ignore it
    try:
        return pyarrow.fs.resolve_s3_region(bucket)
    except OSError as e:
        raise WattlasError(f"s3://{bucket}: cannot find the bucket's region ({e}); set AWS_REGION") from e


def filesystem(url: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The filesystem of ``url`` and the path within it (``bucket/key``)."""
    import pyarrow.fs

    if not url.startswith("s3://"):
        raise WattlasError(f"{url}: unsupported URL (supported: {', '.join(SCHEMES)})")
    path = url.removeprefix("s3://")
    bucket = path.split("/", 1)[0]
    if not bucket:
        raise WattlasError(f"{url}: no bucket name")
    endpoint, scheme = _endpoint()
    fs = pyarrow.fs.S3FileSystem(anonymous=_anonymous(), region=_region(bucket),
                                 endpoint_override=endpoint, scheme=scheme)
    return fs, path


def list_remote(source: Source, urls: list[str]) -> list[RemoteFile]:
    """The objects of ``source`` under each URL (an object, or a prefix listed recursively)."""
    import pyarrow.fs

    from .registry import source_module

    module = source_module(source.id)
    found: dict[str, RemoteFile] = {}
    for url in urls:
        fs, path = filesystem(url)
        try:
            info = fs.get_file_info(path.rstrip("/"))
            if info.type == pyarrow.fs.FileType.File:
                infos = [info]
            elif info.type == pyarrow.fs.FileType.Directory:
                infos = fs.get_file_info(pyarrow.fs.FileSelector(path.rstrip("/"), recursive=True))
            else:
                raise WattlasError(f"--from {url}: no such object or prefix")
        except OSError as e:
            raise WattlasError(f"--from {url}: cannot list it: {e}") from e
        hits = sorted((i for i in infos if i.type == pyarrow.fs.FileType.File
                       and module.accepts(source.id, PurePosixPath(i.path))), key=lambda i: i.path)
        if not hits:
            names = ", ".join(f.name for f in source.files[:6]) or "see `wattlas sources`"
            raise WattlasError(f"{url} holds no files of source {source.id!r} (expected names like {names})")
        for i in hits:
            obj_url = f"s3://{i.path}"
            found[obj_url] = RemoteFile(PurePosixPath(i.path).name, obj_url, i.size, f"{i.size}-{i.mtime_ns}")
    return list(found.values())


def _fetch(url: str, size_bytes: int, dest: Path) -> None:
    fs, path = filesystem(url)
    try:
        with fs.open_input_stream(path) as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out, _CHUNK_BYTES)
    except OSError as e:
        raise WattlasError(f"{url}: cannot read it: {e}") from e
    got = dest.stat().st_size
    if got != size_bytes:
        raise WattlasError(f"{url} changed during the ingest: listed at {size_bytes} bytes, read {got}; run again")


def run_batch_streamed(source_id: str, items: list[dict[str, Any]], stage_dir: str, fingerprint: str,
                       run_token: str = "") -> dict[str, Any]:
    """:func:`wattlas.ingest.engine.run_batch` for a batch with remote items: fetch them into a
    scratch folder of this process's machine first; ``run_batch`` deletes them when done."""
    from .engine import run_batch

    scratch = Path(tempfile.mkdtemp(prefix="wattlas-fetch-"))
    try:
        local = []
        jobs = []
        for n, item in enumerate(items):
            if is_remote(item["path"]):
                # The object's own name: converters may read it from the path (e.g. the trace name).
                dest = scratch / f"{n:05d}" / PurePosixPath(item["path"]).name
                dest.parent.mkdir()
                jobs.append((item["path"], item["size_bytes"], dest))
                item = {**item, "path": str(dest), "extracted": True}
            local.append(item)
        with ThreadPoolExecutor(min(FETCH_THREADS, max(1, len(jobs)))) as pool:
            for fut in [pool.submit(_fetch, *job) for job in jobs]:
                fut.result()
        return run_batch(source_id, local, stage_dir, fingerprint, run_token)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
