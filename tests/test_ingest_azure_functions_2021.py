"""Azure Functions 2021: a CSV (named .txt) inside a RAR v5 archive; start = end - duration."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from wattlas.errors import InputFormatError, WattlasError
from wattlas.ingest import ingest
from wattlas.store import Store

from ._ingest_helpers import FIXTURES, fixture_bytes, libarchive_available, rar5_stored, snapshot

MEMBER = "AzureFunctionsInvocationTraceForTwoWeeksJan2021.txt"
RAR = "AzureFunctionsInvocationTraceForTwoWeeksJan2021.rar"
needs_libarchive = pytest.mark.skipif(
    not libarchive_available(), reason="the libarchive C library is not installed (apt-get install libarchive13)"
)


def _check_rows(store: Store) -> None:
    rows = store.sql(
        "select app_id, start_s, end_s, duration_s, trace from function_events order by end_s"
    ).rows()
    assert len(rows) == 4
    by_end = {round(r[2], 6): r for r in rows}
    app, start_s, end_s, duration_s, trace = by_end[5241.56773]
    assert app == "7fa05b607ae861b85ec53cea12d3efaed8be0f9a92f5d6e8067244161d491e96"
    assert duration_s == 42.356  # seconds, although the repository README says ms
    assert start_s == pytest.approx(5241.567729949951 - 42.356)
    assert trace == "all"
    # File order is not by end time: 5241.57 precedes 5219.52 in the file (it is by start time).
    in_file_order = [r[0] for r in store.sql("select end_s from function_events").rows()]
    assert in_file_order != sorted(in_file_order)


@needs_libarchive
def test_rar5_archive_end_to_end(tmp_path: Path, store_dir: Path):
    archive = rar5_stored(tmp_path / RAR, [(MEMBER, fixture_bytes("serverless", MEMBER))])
    report = ingest("azure-functions-2021", [archive], store_dir, workers=1)
    assert report.rows["function_events"] == 4
    _check_rows(Store(store_dir))
    manifest = Store(store_dir).sql("select input_name, archive_name, size_bytes from ingest_manifest").rows()
    assert manifest == [(MEMBER, RAR, len(fixture_bytes("serverless", MEMBER)))]


@pytest.mark.skipif(shutil.which("rar") is None,
                    reason="no RAR writer installed (RARLAB `rar` is non-free); the stored-RAR5 test covers the reader")
@needs_libarchive
def test_compressed_rar5_made_by_rar(tmp_path: Path, store_dir: Path):
    shutil.copyfile(FIXTURES / "serverless" / MEMBER, tmp_path / MEMBER)
    subprocess.run(["rar", "a", "-ma5", "-m5", "-ep", str(tmp_path / RAR), str(tmp_path / MEMBER)],
                   check=True, capture_output=True)
    ingest("azure-functions-2021", [tmp_path / RAR], store_dir, workers=1)
    _check_rows(Store(store_dir))


def test_extracted_txt_gives_the_same_rows(tmp_path: Path, store_dir: Path):
    path = tmp_path / MEMBER
    path.write_bytes(fixture_bytes("serverless", MEMBER))
    ingest("azure-functions-2021", [tmp_path], store_dir, workers=1)
    _check_rows(Store(store_dir))


def test_non_numeric_duration_names_line_and_column(tmp_path: Path, store_dir: Path):
    path = tmp_path / MEMBER
    path.write_bytes(fixture_bytes("serverless", MEMBER).replace(b",0.013\n", b",0.0x3\n"))
    with pytest.raises(InputFormatError) as e:
        ingest("azure-functions-2021", [path], store_dir, workers=1)
    assert (e.value.file, e.value.line, e.value.column) == (MEMBER, 3, "duration")
    assert snapshot(store_dir) == {}


@needs_libarchive
def test_truncated_rar_is_a_clear_error(tmp_path: Path, store_dir: Path):
    archive = rar5_stored(tmp_path / RAR, [(MEMBER, fixture_bytes("serverless", MEMBER))])
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(InputFormatError, match="truncated") as e:
        ingest("azure-functions-2021", [archive], store_dir, workers=1)
    assert e.value.file == RAR
    assert snapshot(store_dir) == {}


def test_missing_libarchive_says_how_to_install_it(tmp_path: Path, store_dir: Path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_libarchive(name, *args, **kwargs):
        if name == "libarchive" or name.startswith("libarchive."):
            raise OSError("libarchive.so.13: cannot open shared object file")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_libarchive)
    archive = rar5_stored(tmp_path / RAR, [(MEMBER, fixture_bytes("serverless", MEMBER))])
    with pytest.raises(WattlasError, match=r"apt-get install libarchive13"):
        ingest("azure-functions-2021", [archive], store_dir, workers=1)
    assert snapshot(store_dir) == {}
