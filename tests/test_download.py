"""Downloads against a real HTTP server on 127.0.0.1: verified, recorded, refused when corrupt."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest

from wattlas.errors import DownloadError, HashMismatchError
from wattlas.ingest import ingest
from wattlas.ingest.download import fetch, recorded_hashes
from wattlas.ingest.registry import Source, SourceFile
from wattlas.store import Store

from .llm_fixtures import AZURE_2023_CODE, write


def _source(url: str, sha256: str | None) -> Source:
    return Source(
        id="demo", title="demo", tables=("llm_requests",),
        files=(SourceFile("AzureLLMInferenceTrace_code.csv", url, len(AZURE_2023_CODE), sha256),),
        licence="CC0-1.0", citation="-", paper="-", homepage="-",
    )


def test_pinned_download_verified(http_root, tmp_path):
    root, base = http_root
    write(root, "AzureLLMInferenceTrace_code.csv", AZURE_2023_CODE)
    sha = hashlib.sha256(AZURE_2023_CODE).hexdigest()
    src = _source(f"{base}/AzureLLMInferenceTrace_code.csv", sha)
    path = fetch(src, src.files[0], tmp_path / "cache")
    assert path.read_bytes() == AZURE_2023_CODE


def test_corrupted_download_refused(http_root, tmp_path):
    root, base = http_root
    write(root, "AzureLLMInferenceTrace_code.csv", AZURE_2023_CODE.replace(b"4808", b"4809"))
    sha = hashlib.sha256(AZURE_2023_CODE).hexdigest()
    src = _source(f"{base}/AzureLLMInferenceTrace_code.csv", sha)
    with pytest.raises(HashMismatchError, match="does not match its pinned SHA-256"):
        fetch(src, src.files[0], tmp_path / "cache")
    assert not (tmp_path / "cache" / "demo" / "AzureLLMInferenceTrace_code.csv").exists()


def test_unpinned_hash_recorded_then_enforced(http_root, tmp_path):
    root, base = http_root
    served = write(root, "AzureLLMInferenceTrace_code.csv", AZURE_2023_CODE)
    src = _source(f"{base}/AzureLLMInferenceTrace_code.csv", None)
    cache = tmp_path / "cache"
    fetch(src, src.files[0], cache)
    sha = hashlib.sha256(AZURE_2023_CODE).hexdigest()
    assert recorded_hashes(cache) == {"demo/AzureLLMInferenceTrace_code.csv": sha}
    # The server now serves different bytes: the recorded hash refuses them.
    (cache / "demo" / "AzureLLMInferenceTrace_code.csv").unlink()
    served.write_bytes(AZURE_2023_CODE + b"\r\n")
    with pytest.raises(HashMismatchError, match="recorded SHA-256"):
        fetch(src, src.files[0], cache)


def test_no_network_names_url_and_fix(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("WATTLAS_MIRROR", f"http://127.0.0.1:{port}")
    with pytest.raises(DownloadError) as info:
        ingest("azure-llm-2023", store=tmp_path / "store")
    msg = str(info.value)
    assert f"http://127.0.0.1:{port}/azure-llm-2023/AzureLLMInferenceTrace_code.csv" in msg
    assert "wattlas ingest azure-llm-2023 --from PATH" in msg


@pytest.mark.shared
def test_ingest_by_download_from_mirror(http_root, shared_data, tmp_path, monkeypatch):
    root, base = http_root
    for name in ("AzureLLMInferenceTrace_code.csv", "AzureLLMInferenceTrace_conv.csv"):
        write(root / "azure-llm-2023", name, (shared_data / "azure_llm_2023" / name).read_bytes())
    monkeypatch.setenv("WATTLAS_MIRROR", base)
    report = ingest("azure-llm-2023", store=tmp_path / "store")
    assert report.rows["llm_requests"] == 8819 + 19366
    # a corrupted mirror copy is refused by the pinned hash, and the store keeps its rows
    cached = tmp_path / "store" / "cache" / "azure-llm-2023" / "AzureLLMInferenceTrace_code.csv"
    cached.unlink()
    bad = root / "azure-llm-2023" / "AzureLLMInferenceTrace_code.csv"
    bad.write_bytes(bad.read_bytes().replace(b"4808", b"4809", 1))
    with pytest.raises(HashMismatchError):
        ingest("azure-llm-2023", store=tmp_path / "store")
    assert Store(tmp_path / "store").sql("select count(*) from llm_requests").item() == 8819 + 19366


def test_registry_sources_are_well_formed():
    from wattlas.ingest.registry import sources
    from wattlas.schemas import TABLES

    for src in sources():
        assert set(src.tables) <= set(TABLES), src.id
        for f in src.files:
            assert f.url and f.url.startswith("https://"), (src.id, f.name)
            assert f.sha256 is None or (len(f.sha256) == 64 and f.hash_origin), (src.id, f.name)


def test_pinned_hashes_match_shared_copies(shared_data):
    from wattlas.ingest import get_source

    for f in get_source("azure-llm-2023").files:
        data = (shared_data / "azure_llm_2023" / f.name).read_bytes()
        assert len(data) == f.size_bytes
        assert hashlib.sha256(data).hexdigest() == f.sha256


def test_cached_file_reused_without_network(http_root, tmp_path):
    root, base = http_root
    served = write(root, "AzureLLMInferenceTrace_code.csv", AZURE_2023_CODE)
    sha = hashlib.sha256(AZURE_2023_CODE).hexdigest()
    src = _source(f"{base}/AzureLLMInferenceTrace_code.csv", sha)
    first = fetch(src, src.files[0], tmp_path / "cache")
    served.unlink()  # the server no longer has it: the verified cache answers
    assert fetch(src, src.files[0], tmp_path / "cache") == Path(first)
