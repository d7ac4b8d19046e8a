"""Hostile or broken mirrors on 127.0.0.1: drip, flood, gzip bodies, changed unpinned files (issue 18, item 8).

Each server is a real ``http.server`` in a thread. Bytes written to the cache are counted through
the progress-bar hook (both pooch's downloader and wattlas's call ``update`` after each write),
and measured on disk where the downloader is driven directly.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wattlas.cli import main
from wattlas.errors import DownloadError, HashMismatchError, WattlasError
from wattlas.ingest.download import BoundedDownloader, DownloadLimits, fetch, recorded_hashes
from wattlas.ingest.registry import Source, SourceFile

from .llm_fixtures import AZURE_2023_CODE

NAME = "AzureLLMInferenceTrace_code.csv"
SHA = hashlib.sha256(AZURE_2023_CODE).hexdigest()
MIB = 1 << 20


class _Counter:
    """A progress bar that counts the bytes the downloader wrote."""

    total = 0

    def __init__(self) -> None:
        self.written = 0

    def update(self, n: int) -> None:
        self.written += n

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass


Behaviour = Callable[[http.server.BaseHTTPRequestHandler], None]


@pytest.fixture
def mirror() -> Iterator[Callable[[Behaviour], tuple[str, list[str]]]]:
    """Start a server on 127.0.0.1 whose GET handler is ``behaviour``; returns (URL, request log)."""
    servers = []

    def start(behaviour: Behaviour) -> tuple[str, list[str]]:
        requests: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                requests.append(self.headers.get("Accept-Encoding", ""))
                # The client hanging up early is what a bounded client does.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    behaviour(self)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/{NAME}", requests

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _source(url: str, sha256: str | None) -> Source:
    return Source(
        id="demo", title="demo", tables=("llm_requests",),
        files=(SourceFile(NAME, url, len(AZURE_2023_CODE), sha256),),
        licence="CC0-1.0", citation="-", paper="-", homepage="-",
    )


def _headers(h: http.server.BaseHTTPRequestHandler, length: int | None, **extra: str) -> None:
    h.send_response(200)
    if length is not None:
        h.send_header("Content-Length", str(length))
    for k, v in extra.items():
        h.send_header(k.replace("_", "-"), v)
    h.end_headers()


def _cache_files(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.is_file() and p.name != "recorded-hashes.json"]


def _drip(h: http.server.BaseHTTPRequestHandler) -> None:
    # An honest body, one byte every 0.1 s: every read returns well within any read timeout.
    _headers(h, len(AZURE_2023_CODE))
    for byte in AZURE_2023_CODE:
        h.wfile.write(bytes([byte]))
        h.wfile.flush()
        time.sleep(0.1)


def test_dripping_mirror_is_abandoned_after_the_window_and_retried(mirror, tmp_path, monkeypatch):
    url, requests = mirror(_drip)
    monkeypatch.setenv("WATTLAS_DOWNLOAD_WINDOW_S", "0.5")
    monkeypatch.setenv("WATTLAS_DOWNLOAD_MIN_RATE", "1KiB")
    monkeypatch.setenv("WATTLAS_DOWNLOAD_RETRIES", "1")
    monkeypatch.setenv("WATTLAS_DOWNLOAD_RETRY_WAIT_S", "0.1")
    src = _source(url, SHA)
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            fetch(src, src.files[0], tmp_path / "cache")
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome.append(e)

    started = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    # Today's client reads on for 18.5 s (185 bytes at 10 B/s), or forever for an endless drip.
    worker.join(timeout=10)
    elapsed = time.monotonic() - started
    assert not worker.is_alive(), "the dripping download was not abandoned"
    assert isinstance(outcome[0], DownloadError)
    msg = str(outcome[0])
    assert elapsed < 4, elapsed
    assert f"gave up downloading {url} after 2 attempt(s)" in msg
    assert "under the minimum of 1,024 B/s" in msg and "WATTLAS_DOWNLOAD_MIN_RATE" in msg
    assert "--from PATH" in msg
    assert len(requests) == 2
    assert _cache_files(tmp_path / "cache") == []


def _flood(h: http.server.BaseHTTPRequestHandler) -> None:
    # No Content-Length: the body ends when the server closes, after 32 MiB.
    _headers(h, None)
    block = b"A" * MIB
    for _ in range(32):
        h.wfile.write(block)


def test_flooding_mirror_is_cut_at_the_pinned_size(mirror, tmp_path):
    url, _ = mirror(_flood)
    src = _source(url, SHA)
    bar = _Counter()
    with pytest.raises((DownloadError, HashMismatchError)) as e:
        fetch(src, src.files[0], tmp_path / "cache", progressbar=bar)
    # Today's client writes all 32 MiB, then the hash check refuses them.
    assert bar.written <= len(AZURE_2023_CODE)
    assert isinstance(e.value, DownloadError)
    assert f"sent more than the {len(AZURE_2023_CODE):,} bytes the registry pins as its size" in str(e.value)
    assert _cache_files(tmp_path / "cache") == []


def test_flood_measured_on_disk(mirror, tmp_path):
    url, _ = mirror(_flood)
    out = tmp_path / "out.bin"
    with pytest.raises(DownloadError):
        BoundedDownloader(len(AZURE_2023_CODE), DownloadLimits())(url, str(out))
    assert out.stat().st_size <= len(AZURE_2023_CODE)
    # Unpinned and no Content-Length: the absolute cap stops it.
    with pytest.raises(DownloadError, match="allowed for a file of unknown size"):
        BoundedDownloader(None, DownloadLimits(max_bytes=MIB))(url, str(out))
    assert out.stat().st_size <= MIB


def test_content_length_over_the_pinned_size_is_refused_unread(mirror, tmp_path):
    def big(h):
        _headers(h, 1 << 30)
        h.wfile.write(b"A" * MIB)

    url, _ = mirror(big)
    src = _source(url, SHA)
    bar = _Counter()
    with pytest.raises(DownloadError, match="announces 1,073,741,824 bytes"):
        fetch(src, src.files[0], tmp_path / "cache", progressbar=bar)
    assert bar.written == 0 and _cache_files(tmp_path / "cache") == []


def test_gzip_content_encoding_is_refused(mirror, tmp_path):
    body = gzip.compress(bytes(16 * MIB))  # ~16 KB on the wire, 16 MiB once decoded

    def gzipped(h):
        _headers(h, len(body), Content_Encoding="gzip")
        h.wfile.write(body)

    url, requests = mirror(gzipped)
    for sha in (SHA, None):  # pinned, and unpinned (first download)
        src = _source(url, sha)
        bar = _Counter()
        with pytest.raises((DownloadError, HashMismatchError)) as e:
            fetch(src, src.files[0], tmp_path / "cache", progressbar=bar)
        # Today's client decodes and writes the 16 MiB (then a pinned hash refuses it; an unpinned
        # first download is recorded as the truth).
        assert bar.written == 0
        assert isinstance(e.value, DownloadError)
        assert "Content-Encoding 'gzip'" in str(e.value) and url in str(e.value)
        assert _cache_files(tmp_path / "cache") == [] and recorded_hashes(tmp_path / "cache") == {}
    assert requests == ["identity", "identity"]


def test_changed_unpinned_file_says_how_to_forget_its_first_seen_hash(mirror, tmp_path, capsys):
    served = [AZURE_2023_CODE]

    def honest(h):
        _headers(h, len(served[0]))
        h.wfile.write(served[0])

    url, _ = mirror(honest)
    src = _source(url, None)
    store = tmp_path / "store"
    cache = store / "cache"
    fetch(src, src.files[0], cache)
    key = f"demo/{NAME}"
    assert recorded_hashes(cache) == {key: SHA}
    # The publisher changes the file (a longer one): the record refuses it and says how to reset.
    served[0] = AZURE_2023_CODE + b"1,2,3\r\n"
    (cache / "demo" / NAME).unlink()
    with pytest.raises(HashMismatchError) as e:
        fetch(src, src.files[0], cache)
    msg = str(e.value)
    command = f"wattlas sources --forget {key} --store {store}"
    assert command in msg and f"delete the key {key!r} from {cache / 'recorded-hashes.json'}" in msg
    assert _cache_files(cache) == []  # the changed download was not kept
    # The command it names works, and the next download records the new file.
    assert main(command.split()[1:]) == 0
    assert f"forgot sha256:{SHA} of {key}" in capsys.readouterr().err.replace("\n", "")
    assert recorded_hashes(cache) == {}
    assert fetch(src, src.files[0], cache).read_bytes() == served[0]
    assert recorded_hashes(cache) == {key: hashlib.sha256(served[0]).hexdigest()}
    assert main(command.split()[1:]) == 0
    assert main(["sources", "--forget", "demo/other.csv", "--store", str(store)]) != 0
    assert "no first-seen hash is recorded for 'demo/other.csv'" in capsys.readouterr().err.replace("\n", "")


def test_download_limits_from_env():
    lim = DownloadLimits.from_env({"WATTLAS_DOWNLOAD_MIN_RATE": "2KiB", "WATTLAS_DOWNLOAD_DEADLINE_S": "60",
                                   "WATTLAS_DOWNLOAD_RETRIES": "0"})
    assert (lim.min_bytes_per_s, lim.deadline_s, lim.retries, lim.window_s) == (2048, 60.0, 0, 30.0)
    with pytest.raises(WattlasError, match="WATTLAS_DOWNLOAD_WINDOW_S='soon'"):
        DownloadLimits.from_env({"WATTLAS_DOWNLOAD_WINDOW_S": "soon"})
