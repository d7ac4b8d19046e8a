"""Path traversal ("zip slip") is refused for every archive format, and nothing is written outside."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from wattlas.errors import InputFormatError
from wattlas.ingest import ingest
from wattlas.ingest.archive import extract_all, iter_members
from wattlas.store import Store

from ._ingest_helpers import fixture_bytes, libarchive_available, rar5_stored, snapshot

MEMBER = "AzureFunctionsInvocationTraceForTwoWeeksJan2021.txt"
DATA = fixture_bytes("serverless", MEMBER)


def _tar(path: Path, entries: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:xz") as tar:
        good = tarfile.TarInfo(MEMBER)
        good.size = len(DATA)
        tar.addfile(good, io.BytesIO(DATA))
        for info in entries:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    return path


def _tar_entry(name: str, *, link: str | None = None, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    if link is not None:
        info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
        info.linkname = link
    else:
        info.size = 1
    return info


def _zip(path: Path, evil: str, *, symlink_to: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(MEMBER, DATA)
        info = zipfile.ZipInfo(evil)
        if symlink_to is not None:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, symlink_to)
        else:
            zf.writestr(info, b"x")
    return path


CASES = {
    "tar-dotdot": lambda p: _tar(p / "a.tar.xz", [_tar_entry("../evil.csv")]),
    "tar-absolute": lambda p: _tar(p / "a.tar.xz", [_tar_entry("/tmp/evil.csv")]),
    "tar-symlink-out": lambda p: _tar(p / "a.tar.xz", [_tar_entry("data/link", link="../../etc/passwd")]),
    "tar-hardlink-out": lambda p: _tar(p / "a.tar.xz", [_tar_entry("data/hl", link="../outside", hard=True)]),
    "zip-dotdot": lambda p: _zip(p / "a.zip", "sub/../../evil.csv"),
    "zip-absolute": lambda p: _zip(p / "a.zip", "/etc/cron.d/evil"),
    "zip-backslash": lambda p: _zip(p / "a.zip", "..\\evil.csv"),
    "zip-symlink-out": lambda p: _zip(p / "a.zip", "link", symlink_to="/etc/passwd"),
    "rar-dotdot": lambda p: rar5_stored(p / "a.rar", [(MEMBER, DATA), ("../up.csv", b"x")]),
    "rar-absolute": lambda p: rar5_stored(p / "a.rar", [(MEMBER, DATA), ("/tmp/abs.csv", b"x")]),
    "rar-symlink-out": lambda p: rar5_stored(p / "a.rar", [(MEMBER, DATA), ("evil", b"", "../../etc/passwd")]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_traversal_is_refused(case: str, tmp_path: Path, store_dir: Path):
    if case.startswith("rar") and not libarchive_available():
        pytest.skip("the libarchive C library is not installed (apt-get install libarchive13)")
    work = tmp_path / "deep" / "er"
    work.mkdir(parents=True)
    absolute_targets = [Path("/tmp/evil.csv"), Path("/tmp/abs.csv")]
    existed = [p.exists() for p in absolute_targets]
    archive = CASES[case](work)
    # Directly: the reader refuses the archive ...
    with pytest.raises(InputFormatError, match="path traversal") as e:
        extract_all(archive, tmp_path / "deep" / "er" / "out")
    assert e.value.file == archive.name
    # ... and an ingest fails with it and leaves the store as it was.
    with pytest.raises(InputFormatError, match="path traversal"):
        ingest("azure-functions-2021", [archive], store_dir, workers=1)
    assert snapshot(store_dir) == {}
    outside = [p for p in tmp_path.rglob("*") if p.name in {"evil.csv", "up.csv", "abs.csv", "passwd", "outside"}]
    assert outside == []
    assert [p.exists() for p in absolute_targets] == existed


def test_links_inside_the_archive_are_skipped_not_followed(tmp_path: Path, store_dir: Path):
    archive = _tar(tmp_path / "a.tar.xz", [_tar_entry("data/alias.txt", link=f"../{MEMBER}")])
    names = [m.name for m in iter_members(archive)]
    assert names == [MEMBER]
    ingest("azure-functions-2021", [archive], store_dir, workers=1)
    assert Store(store_dir).sql("select count(*) from function_events").item() == 4


def test_device_files_are_refused(tmp_path: Path):
    info = tarfile.TarInfo("dev/sda")
    info.type = tarfile.BLKTYPE
    archive = _tar(tmp_path / "a.tar.xz", [info])
    with pytest.raises(InputFormatError, match="special file"):
        extract_all(archive, tmp_path / "out")
