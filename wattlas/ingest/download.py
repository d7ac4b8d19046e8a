"""Fetch a source's official files into the cache, verified (pooch underneath).

Pinned files are checked against their SHA-256. An unpinned file has its SHA-256 computed on
first download and recorded in ``<cache>/recorded-hashes.json``; later fetches are verified
against that record (``wattlas sources --forget SOURCE/FILE`` drops one record). ``WATTLAS_MIRROR``
(a base URL) replaces the official host: files are then fetched from
``$WATTLAS_MIRROR/<source id>/<file name>``.

Downloads are bounded (:class:`DownloadLimits`, :class:`BoundedDownloader`): the body is read
raw (``Accept-Encoding: identity``; a ``Content-Encoding`` is refused, as it could expand without
bound), reading stops at the registry's size (or ``Content-Length``, or a cap), and a transfer
slower than a minimum rate over a window of time is abandoned and retried a few times.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import DownloadError, HashMismatchError, ManualDownloadError, WattlasError
from .archive import env_overrides, format_bytes
from .registry import Source, SourceFile

log = logging.getLogger("wattlas.ingest")

TIMEOUT_S = 30.0
RECORD = "recorded-hashes.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DownloadLimits:
    """When a download is abandoned (a stalled or dripping mirror) or refused (a flooding one).

    ``read_timeout_s`` bounds each read, but a server that sends a byte every few seconds never
    trips it: an attempt is therefore also abandoned when fewer than ``min_bytes_per_s`` arrive
    over any ``window_s`` seconds, or when it runs past ``deadline_s`` (none by default: big files
    on slow links are legitimate). Abandoned attempts are retried ``retries`` times, waiting
    ``retry_wait_s`` times the attempt number. A file whose size neither the registry nor the
    server's ``Content-Length`` gives is cut at ``max_bytes``.
    """

    read_timeout_s: float = TIMEOUT_S
    min_bytes_per_s: int = 10 << 10
    window_s: float = 30.0
    deadline_s: float | None = None
    retries: int = 2
    retry_wait_s: float = 2.0
    max_bytes: int = 64 << 30

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> DownloadLimits:
        """The defaults, with any ``WATTLAS_DOWNLOAD_*`` variables (see :data:`DOWNLOAD_ENV`) applied."""
        environ = os.environ if environ is None else environ
        durations = {name: float for name in ("read_timeout_s", "window_s", "deadline_s", "retry_wait_s")}
        values = env_overrides(DOWNLOAD_ENV, {**durations, "retries": int}, environ)
        for name, value in values.items():
            if value < 0:
                var = DOWNLOAD_ENV[name]
                raise WattlasError(f"environment variable {var}={environ[var].strip()!r} must not be negative")
        return cls(**values)


#: ``DownloadLimits`` field -> the environment variable that sets it (sizes accept 10KiB, 2GB).
DOWNLOAD_ENV = {
    "read_timeout_s": "WATTLAS_DOWNLOAD_TIMEOUT_S",
    "min_bytes_per_s": "WATTLAS_DOWNLOAD_MIN_RATE",
    "window_s": "WATTLAS_DOWNLOAD_WINDOW_S",
    "deadline_s": "WATTLAS_DOWNLOAD_DEADLINE_S",
    "retries": "WATTLAS_DOWNLOAD_RETRIES",
    "retry_wait_s": "WATTLAS_DOWNLOAD_RETRY_WAIT_S",
    "max_bytes": "WATTLAS_DOWNLOAD_MAX_BYTES",
}


class _Abandoned(Exception):
    """One attempt failed in a way a retry may fix (stall, timeout, dropped connection)."""


class BoundedDownloader:
    """A pooch downloader (``downloader(url, output_file, pooch)``) that cannot be flooded or stalled.

    It streams with requests and reads the socket raw (``read1``: returns as soon as any bytes
    arrive, so the rate rule is checked even when a server drips), never decoding the body.
    ``size_bytes`` is the file's pinned size (the registry's size of a pinned file): reading stops
    there. Without it, reading stops at ``Content-Length``, or at ``limits.max_bytes``.
    """

    def __init__(self, size_bytes: int | None, limits: DownloadLimits | None = None, progressbar: Any = False):
        self.size_bytes = size_bytes
        self.limits = limits or DownloadLimits.from_env()
        self.progressbar = progressbar

    def __call__(self, url: str, output_file: str | BinaryIO, pooch: Any = None) -> None:
        import requests
        import urllib3

        lim = self.limits
        attempts = lim.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                self._attempt(url, output_file)
                return
            except requests.HTTPError as e:
                if e.response is None or e.response.status_code < 500:
                    raise  # a 404 does not get better by asking again
                reason = str(e)
            except _Abandoned as e:
                reason = str(e)
            # Stalls and dropped transfers are retried; a refused connection (no network) is not.
            except (requests.Timeout, requests.exceptions.ChunkedEncodingError, urllib3.exceptions.HTTPError) as e:
                reason = f"{type(e).__name__}: {e}"
            if attempt < attempts:
                wait_s = lim.retry_wait_s * attempt
                log.warning("download of %s failed (%s); retry %d of %d in %.0f s", url, reason, attempt,
                            lim.retries, wait_s)
                time.sleep(wait_s)
        raise DownloadError(
            f"gave up downloading {url} after {attempts} attempt(s); the last one: {reason}. The limits "
            f"are set by {DOWNLOAD_ENV['min_bytes_per_s']} (bytes/s, now {lim.min_bytes_per_s:,}), "
            f"{DOWNLOAD_ENV['window_s']} (now {lim.window_s:g}), {DOWNLOAD_ENV['deadline_s']} and "
            f"{DOWNLOAD_ENV['retries']} (now {lim.retries})."
        )

    def _attempt(self, url: str, output_file: str | BinaryIO) -> None:
        import requests

        timeout_s = self.limits.read_timeout_s
        # identity: a compressed body could expand without bound before the hash is checked.
        with requests.get(url, stream=True, timeout=(timeout_s, timeout_s),
                          headers={"Accept-Encoding": "identity"}) as response:
            response.raise_for_status()
            _refuse_encodings(url, response.headers)
            limit = self._limit(url, response.headers)
            if isinstance(output_file, str | os.PathLike):
                with open(output_file, "wb") as out:
                    got = self._copy(url, response.raw, out, limit)
            else:
                output_file.seek(0)
                output_file.truncate()
                got = self._copy(url, response.raw, output_file, limit)
        if self.size_bytes is not None and got < self.size_bytes:
            raise _Abandoned(f"the transfer ended after {got:,} of the file's pinned {self.size_bytes:,} bytes")

    def _limit(self, url: str, headers: Any) -> int:
        """The most bytes this file may have: the registry's size, else Content-Length, else the cap."""
        announced = headers.get("Content-Length")
        announced_bytes = int(announced) if announced and announced.strip().isdigit() else None
        if self.size_bytes is not None:
            if announced_bytes is not None and announced_bytes > self.size_bytes:
                raise DownloadError(
                    f"{url} announces {announced_bytes:,} bytes (Content-Length) but the registry pins the "
                    f"file at {self.size_bytes:,}; refusing it unread (a wrong or hostile mirror)."
                )
            return self.size_bytes
        cap = self.limits.max_bytes
        if announced_bytes is not None and announced_bytes > cap:
            raise DownloadError(
                f"{url} announces {format_bytes(announced_bytes)} (Content-Length), over the cap of "
                f"{format_bytes(cap)} for a file whose size the registry does not give; raise it with "
                f"{DOWNLOAD_ENV['max_bytes']}=SIZE if you expect a file this large."
            )
        return min(announced_bytes, cap) if announced_bytes is not None else cap

    def _copy(self, url: str, raw: Any, out: BinaryIO, limit: int) -> int:
        lim = self.limits
        read = getattr(raw, "read1", None) or raw.read
        bar = self.progressbar
        if bar:
            bar.total = limit if limit < lim.max_bytes else 0
        start = window_start = time.monotonic()
        got = window_got = 0
        while True:
            # One byte past the limit tells a flood from a file that ends exactly there.
            block = read(min(_CHUNK, limit + 1 - got), decode_content=False)
            if not block:
                break
            got += len(block)
            if got > limit:
                raise DownloadError(
                    f"{url} sent more than the {limit:,} bytes {self._limit_origin(limit)}; stopped reading "
                    "there and discarded the download (a wrong or hostile mirror)."
                )
            out.write(block)
            if bar:
                bar.update(len(block))
            now = time.monotonic()
            if lim.deadline_s is not None and now - start > lim.deadline_s:
                raise _Abandoned(f"it ran past the deadline of {lim.deadline_s:g} s ({got:,} bytes received)")
            if now - window_start >= lim.window_s:
                rate = (got - window_got) / (now - window_start)
                if rate < lim.min_bytes_per_s:
                    raise _Abandoned(
                        f"{got - window_got:,} bytes arrived in {now - window_start:.1f} s ({rate:,.0f} B/s), "
                        f"under the minimum of {lim.min_bytes_per_s:,} B/s"
                    )
                window_start, window_got = now, got
        if bar:
            bar.reset()
            bar.update(got)
            bar.close()
        return got

    def _limit_origin(self, limit: int) -> str:
        if self.size_bytes is not None:
            return "the registry pins as its size"
        if limit == self.limits.max_bytes:
            return f"allowed for a file of unknown size ({DOWNLOAD_ENV['max_bytes']})"
        return "its Content-Length announced"


def _refuse_encodings(url: str, headers: Any) -> None:
    """Refuse bodies that a client would expand: any Content-Encoding, or a Transfer-Encoding but chunked."""
    encoding = headers.get("Content-Encoding", "identity").strip().lower() or "identity"
    transfer = {t.strip().lower() for t in headers.get("Transfer-Encoding", "").split(",") if t.strip()}
    if encoding != "identity" or transfer - {"chunked", "identity"}:
        raise DownloadError(
            f"{url} was sent with Content-Encoding {encoding!r} / Transfer-Encoding "
            f"{headers.get('Transfer-Encoding')!r} although wattlas asked for identity; refusing it unread "
            "(a compressed body can expand far past the file's size before its hash is checked)."
        )


def file_url(source: Source, f: SourceFile) -> str | None:
    mirror = os.environ.get("WATTLAS_MIRROR")
    if mirror:
        return f"{mirror.rstrip('/')}/{source.id}/{f.name}"
    return f.url


def require_automatic(source: Source) -> None:
    """Refuse, before any transfer, a source some of whose files must be downloaded by hand.

    The whole source is refused, not just those files: an ingest needs all of them, and
    downloading the others first would only waste the transfer. A ``WATTLAS_MIRROR`` serves every
    file by name, so nothing is refused then. Raises :class:`ManualDownloadError` listing each
    such file, where to get it and what to click, and the ``--from`` command to run after.
    """
    manual = source.manual_files
    if not manual or os.environ.get("WATTLAS_MIRROR"):
        return
    steps = "\n".join(
        f"- {f.name} from {f.url}: {f.manual_download}" if f.manual_download else f"- {f.name}: no download URL"
        for f in manual
    )
    raise ManualDownloadError(
        f"{source.id}: {len(manual)} of its {len(source.files)} files cannot be downloaded automatically "
        "(the publisher links them only on pages such as Google Drive that a plain HTTP client cannot "
        "fetch), so nothing was downloaded. Download each one by hand into one folder DIR, saved under "
        "the name shown, then run "
        f"`wattlas ingest {source.id} --from DIR` (or set WATTLAS_MIRROR to a mirror serving "
        f"<mirror>/{source.id}/<file name>).\n{steps}"
    )


def recorded_hashes(cache_dir: Path) -> dict[str, str]:
    try:
        return json.loads((cache_dir / RECORD).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _write_record(cache_dir: Path, hashes: dict[str, str]) -> None:
    tmp = cache_dir / f".{RECORD}.{os.getpid()}"
    tmp.write_text(json.dumps(hashes, indent=1, sort_keys=True))
    os.replace(tmp, cache_dir / RECORD)


def _record_hash(cache_dir: Path, key: str, sha256: str) -> None:
    hashes = recorded_hashes(cache_dir)
    hashes[key] = sha256
    _write_record(cache_dir, hashes)


def forget_recorded_hash(cache_dir: Path, key: str) -> str:
    """Drop the first-seen hash of ``key`` (``SOURCE/FILE``) so the next download records it anew.

    Returns the hash that was recorded; raises :class:`WattlasError` listing the recorded keys when
    ``key`` has none.
    """
    hashes = recorded_hashes(cache_dir)
    if key not in hashes:
        known = ", ".join(sorted(hashes)) or "none"
        raise WattlasError(f"no first-seen hash is recorded for {key!r} in {cache_dir / RECORD}; recorded: {known}")
    old = hashes.pop(key)
    _write_record(cache_dir, hashes)
    return old


def forget_command(cache_dir: Path, key: str) -> str:
    """The shell command that forgets ``key``'s recorded hash in ``cache_dir``."""
    from ..store import Store

    cmd = f"wattlas sources --forget {shlex.quote(key)}"
    if Store(cache_dir.parent).cache_dir == cache_dir:
        return f"{cmd} --store {shlex.quote(str(cache_dir.parent))}"
    return f"WATTLAS_CACHE={shlex.quote(str(cache_dir))} {cmd}"


def _offline_fix(source: Source, cache_dir: Path) -> str:
    """What to do without network: every file of ``source`` not in the cache yet, with its URL.

    An ingest stops at the first failed download; naming only that file would send the user
    back for the next one, run after run.
    """
    missing = [g for g in source.files if not (cache_dir / source.id / g.name).is_file()]
    listed = "; ".join(f"{g.name} ({file_url(source, g) or 'no download URL'})" for g in missing)
    return (f"Without network access, download the {len(missing)} file(s) of {source.id} not in the cache "
            f"yourself: {listed}; and pass them with `wattlas ingest {source.id} --from PATH` (files or "
            "a directory).")


def fetch(source: Source, f: SourceFile, cache_dir: Path, *, progressbar: Any = False,
          limits: DownloadLimits | None = None) -> Path:
    """Download ``f`` (or reuse the verified cached copy) and return its path.

    Raises :class:`DownloadError` naming the URL when the download fails, stalls or is refused
    (see :class:`DownloadLimits`), and :class:`HashMismatchError` when the bytes differ from the
    pinned or recorded hash. A refused download leaves nothing in the cache. Raises
    :class:`ManualDownloadError` before any transfer when any file of ``source`` must be
    downloaded by hand (see :func:`require_automatic`).
    """
    require_automatic(source)
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
    # A pinned file's size is exact; an unpinned file may change upstream (size and all), and the
    # first-seen hash, not the size, then says so (with the command that resets it).
    downloader = BoundedDownloader(f.size_bytes if f.pinned else None, limits, progressbar)
    fix = _offline_fix(source, cache_dir)
    try:
        path = pooch.retrieve(
            url,
            known_hash=f"sha256:{known}" if known else None,
            fname=Path(f.name).name,
            path=dest,
            downloader=downloader,
        )
    except requests.RequestException as e:
        raise DownloadError(f"could not download {url} ({type(e).__name__}: {e}). {fix}") from e
    except DownloadError as e:
        raise DownloadError(f"{e} {fix}") from e
    except ValueError as e:
        if "hash" not in str(e).lower():
            raise
        if f.sha256:
            raise HashMismatchError(
                f"{f.name} from {url} does not match its pinned SHA-256 {known}; the download was "
                f"discarded. {e}"
            ) from e
        raise HashMismatchError(
            f"{f.name} from {url} does not match its recorded SHA-256 {known} (recorded on first "
            f"download: the file is unpinned); the download was discarded. {e} If the publisher "
            f"changed the file and you trust the new one, forget the record with "
            f"`{forget_command(cache_dir, key)}` (or delete the key {key!r} from "
            f"{cache_dir / RECORD}) and run the ingest again."
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
