"""Fetch a source's official files into the cache, verified (pooch underneath).

Pinned files are checked against their SHA-256. An unpinned file has its SHA-256 computed on
first download and recorded in ``<cache>/recorded-hashes.json``; later fetches are verified
against that record. ``WATTLAS_MIRROR`` (a base URL) replaces the official host: files are
then fetched from ``$WATTLAS_MIRROR/<source id>/<file name>``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ..errors import DownloadError, HashMismatchError
from .registry import Source, SourceFile

log = logging.getLogger("wattlas.ingest")

TIMEOUT_S = 30.0
RECORD = "recorded-hashes.json"


def file_url(source: Source, f: SourceFile) -> str | None:
    mirror = os.environ.get("WATTLAS_MIRROR")
    if mirror:
        return f"{mirror.rstrip('/')}/{source.id}/{f.name}"
    return f.url


def recorded_hashes(cache_dir: Path) -> dict[str, str]:
    try:
        return json.loads((cache_dir / RECORD).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _record_hash(cache_dir: Path, key: str, sha256: str) -> None:
    hashes = recorded_hashes(cache_dir)
    hashes[key] = sha256
    tmp = cache_dir / f".{RECORD}.{os.getpid()}"
    tmp.write_text(json.dumps(hashes, indent=1, sort_keys=True))
    os.replace(tmp, cache_dir / RECORD)


def fetch(source: Source, f: SourceFile, cache_dir: Path, *, progressbar: Any = False) -> Path:
    """Download ``f`` (or reuse the verified cached copy) and return its path.

    Raises :class:`DownloadError` naming the URL when the download fails, and
    :class:`HashMismatchError` when the bytes differ from the pinned or recorded hash.
    """
    import pooch
    import requests

    url = file_url(source, f)
    if url is None:
        raise DownloadError(
            f"{source.id}: {f.name} has no download URL; pass a local copy with "
            f"`wattlas ingest {source.id} --from PATH`."
        )
    # A name with folders (``a100/<org>/<model>/mlp.csv``) keeps them in the cache: converters
    # read the GPU and model from that path.
    dest = cache_dir / source.id / Path(f.name).parent
    dest.mkdir(parents=True, exist_ok=True)
    key = f"{source.id}/{f.name}"
    known = f.sha256 or recorded_hashes(cache_dir).get(key)
    # pooch announces every download on its own stderr handler; our progress bar says it.
    pooch.get_logger().setLevel(logging.WARNING)
    downloader = pooch.HTTPDownloader(progressbar=progressbar, timeout=TIMEOUT_S)
    try:
        path = pooch.retrieve(
            url,
            known_hash=f"sha256:{known}" if known else None,
            fname=Path(f.name).name,
            path=dest,
            downloader=downloader,
        )
    except requests.RequestException as e:
        raise DownloadError(
            f"could not download {url} ({type(e).__name__}: {e}). Without network access, "
            f"download {f.name} yourself and pass it with "
            f"`wattlas ingest {source.id} --from PATH` (a file or a directory)."
        ) from e
    except ValueError as e:
        if "hash" not in str(e).lower():
            raise
        raise HashMismatchError(
            f"{f.name} from {url} does not match its {'pinned' if f.sha256 else 'recorded'} "
            f"SHA-256 {known}; the download was discarded. {e}"
        ) from e
    if not known:
        sha = pooch.file_hash(path, alg="sha256")
        _record_hash(cache_dir, key, sha)
        log.warning(
            "%s has no pinned hash; recorded sha256:%s on first download (unpinned)", key, sha
        )
    return Path(path)


class RichDownloadBar:
    """The small tqdm-like object pooch drives, drawn as a rich progress task.

    The task appears only once bytes flow, so a file served from the cache draws nothing.
    """

    def __init__(self, progress: Any, description: str):
        self._progress = progress
        self._description = description
        self._task: Any = None
        self.total = 0

    def _ensure(self) -> Any:
        if self._task is None:
            self._task = self._progress.add_task(self._description, total=self.total or None, rows="")
        return self._task

    def update(self, n: int) -> None:
        self._progress.update(self._ensure(), total=self.total or None, advance=n)

    def reset(self) -> None:
        self._progress.reset(self._ensure(), total=self.total or None)

    def close(self) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=self.total or 0)
