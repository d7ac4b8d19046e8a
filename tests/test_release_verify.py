"""`wattlas release verify`: checksums and mlcroissant validation, each bad file named."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from wattlas.datasets import ReleaseDefinition, build_release, verify_release
from wattlas.errors import ReleaseVerificationError

from .release_helpers import fixture_store, wattlas

pytest.importorskip("mlcroissant")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    store = fixture_store(root / "store")
    d = ReleaseDefinition(name="mix", tables=("llm_requests", "ingest_manifest"), url="https://example.org/mix")
    build_release(d, root / "rel", store)
    return root / "rel"


@pytest.fixture
def release(built, tmp_path):
    copy = tmp_path / "rel"
    shutil.copytree(built, copy)
    return copy


def problems(path) -> list[str]:
    with pytest.raises(ReleaseVerificationError) as e:
        verify_release(path)
    assert str(path) in str(e.value)
    return e.value.problems


def resum(path, rel):
    """Rewrite the SHA256SUMS line of ``rel`` (an edit made by someone who knows what they do)."""
    lines = (path / "SHA256SUMS").read_text().splitlines()
    sha = hashlib.sha256((path / rel).read_bytes()).hexdigest()
    fixed = [f"{sha}  {rel}" if line.endswith(f"  {rel}") else line for line in lines]
    (path / "SHA256SUMS").write_text("\n".join(fixed) + "\n")


def test_a_fresh_release_verifies(release):
    report = verify_release(release)
    assert report.croissant_validated and report.mlcroissant_version
    assert report.tables == {"llm_requests": 25, "ingest_manifest": 3}
    assert set(report.files) == {"README.md", "croissant.json", "data/llm_requests.parquet",
                                 "data/ingest_manifest.parquet"}
    assert report.warnings == []


def test_a_changed_byte_is_named(release):
    data = release / "data/llm_requests.parquet"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    found = problems(release)
    assert any(p.startswith("data/llm_requests.parquet: changed since the release was built") for p in found)
    assert any(p.startswith("croissant.json: sha256 of data/llm_requests.parquet") for p in found)
    assert not any("ingest_manifest" in p for p in found)


def test_a_missing_file_is_named(release):
    (release / "data/ingest_manifest.parquet").unlink()
    found = problems(release)
    assert "data/ingest_manifest.parquet: missing (listed in SHA256SUMS)" in found
    assert any(p.startswith("croissant.json: distribution 'data/ingest_manifest.parquet'") for p in found)


def test_a_missing_sums_file_or_bad_line(release):
    sums = (release / "SHA256SUMS").read_text()
    (release / "SHA256SUMS").write_text(sums + "not a checksum line\n")
    assert "SHA256SUMS line 5: expected '<sha256>  <relative path>', got 'not a checksum line'" in problems(release)
    (release / "SHA256SUMS").unlink()
    assert "SHA256SUMS: missing, so no file can be checked" in problems(release)


def test_croissant_json_that_is_not_json(release):
    path = release / "croissant.json"
    path.write_text(path.read_text()[:-20])
    found = problems(release)
    assert any(p.startswith("croissant.json: changed since the release was built") for p in found)
    assert any(p.startswith("croissant.json: not valid JSON (line ") for p in found)


def test_croissant_json_that_mlcroissant_rejects(release):
    # Checksums made to match: only the reference validator can tell what is wrong.
    path = release / "croissant.json"
    doc = json.loads(path.read_text())
    doc["recordSet"][0]["field"][1]["dataType"] = "sc:Nonsense"
    path.write_text(json.dumps(doc))
    resum(release, "croissant.json")
    found = problems(release)
    assert len(found) == 1 and found[0].startswith("croissant.json: mlcroissant validation failed")
    assert "Field(trace)" in found[0] and "dataType" in found[0]


def test_mlcroissant_warnings_are_reported(release):
    path = release / "croissant.json"
    doc = json.loads(path.read_text())
    doc["version"] = "first"
    path.write_text(json.dumps(doc))
    resum(release, "croissant.json")
    report = verify_release(release)
    assert any(w.startswith("croissant.json (mlcroissant): ") and "MAJOR.MINOR.PATCH" in w for w in report.warnings)


def test_croissant_json_describing_a_column_the_file_lacks(release):
    path = release / "croissant.json"
    doc = json.loads(path.read_text())
    doc["recordSet"][0]["field"][2]["source"]["extract"]["column"] = "no_such_column"
    path.write_text(json.dumps(doc))
    resum(release, "croissant.json")
    assert problems(release) == [
        "croissant.json: recordSet 'llm_requests' reads column(s) ['no_such_column'] that "
        "data/llm_requests.parquet lacks"
    ]


def test_extra_files_are_warnings(release):
    (release / "notes.txt").write_text("hello")
    report = verify_release(release)
    assert report.warnings == ["notes.txt: not covered by SHA256SUMS (not part of the release)"]


def test_cli_verify_messages_and_exit_codes(release):
    r = wattlas("release", "verify", str(release))
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout and "valid Croissant 1.1" in r.stdout
    r = wattlas("release", "verify", str(release), "--format", "json")
    assert json.loads(r.stdout)["tables"] == {"llm_requests": 25, "ingest_manifest": 3}
    data = release / "data/llm_requests.parquet"
    raw = bytearray(data.read_bytes())
    raw[100] ^= 0xFF
    data.write_bytes(bytes(raw))
    (release / "README.md").unlink()
    r = wattlas("release", "verify", str(release))
    assert r.returncode == 1 and r.stdout == ""
    assert "data/llm_requests.parquet: changed since the release was built" in r.stderr
    assert "README.md: missing (listed in SHA256SUMS)" in r.stderr
    assert "Traceback" not in r.stderr
