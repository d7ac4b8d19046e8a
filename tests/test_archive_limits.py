"""Archive bombs: what an archive may expand to is bounded while members are copied (issue 18, item 7).

Every bomb is built in the test: zeros compressed with xz or deflate, a GNU sparse tar member, a
zip whose header claims a size it does not hold, a RAR member yielding more than it declares.
Bytes written are counted by wrapping the engine's ``copy_member`` (the only place an ingest
writes archive members), so "refused before the disk fills" is a number, not a hope.
"""

from __future__ import annotations

import io
import lzma
import os
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest

from wattlas.cli import main
from wattlas.errors import InputFormatError, WattlasError
from wattlas.ingest import archive as archive_mod
from wattlas.ingest import engine, ingest
from wattlas.ingest.archive import ArchiveLimits, copy_member, iter_members, parse_bytes
from wattlas.store import Store

from ._ingest_helpers import _block, _vint, libarchive_available, snapshot, tar_xz
from .test_ingest_azure_functions_2019 import day_files

MIB = 1 << 20
#: A member name the azure-functions-2019 converter reads (so the ingest copies it out).
D01 = "invocations_per_function_md.anon.d01.csv"
ARCHIVE = "azurefunctions-dataset2019.tar.xz"


@pytest.fixture
def written(monkeypatch) -> list[int]:
    """Counts every byte the ingest writes from an archive member (through ``copy_member``)."""
    counts: list[int] = []

    def counting(member, dest, on_bytes=None):
        return archive_mod.copy_member(member, dest, lambda n: counts.append(n))

    monkeypatch.setattr(engine, "copy_member", counting)
    return counts


def _zeros_tar_xz(path: Path, members: list[tuple[str, bytes | int]]) -> Path:
    """A tar.xz; an int member is that many zero bytes (streamed, never held in memory)."""
    with tarfile.open(path, "w:xz", preset=0) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = data if isinstance(data, int) else len(data)
            tar.addfile(info, _Zeros(data) if isinstance(data, int) else io.BytesIO(data))
    return path


class _Zeros(io.RawIOBase):
    def __init__(self, n: int):
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def _zeros_zip(path: Path, name: str, n_bytes: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf, zf.open(name, "w") as out:
        for _ in range(n_bytes // MIB):
            out.write(bytes(MIB))
    return path


def _sparse_tar_xz(path: Path, name: str, real_size: int) -> Path:
    """An old-GNU sparse member: one data byte at the end of ``real_size`` bytes of holes."""
    header = bytearray(512)
    header[0:len(name)] = name.encode()
    header[100:108] = b"0000644\0"
    header[108:116] = header[116:124] = b"0000000\0"
    header[124:136] = b"%011o\0" % 1  # one stored byte
    header[136:148] = b"%011o\0" % 1_600_000_000
    header[156:157] = b"S"  # GNUTYPE_SPARSE
    header[257:265] = b"ustar  \0"
    header[386:398] = b"%011o\0" % (real_size - 1)  # sparse map: (offset, numbytes)
    header[398:410] = b"%011o\0" % 1
    header[483:495] = b"%011o\0" % real_size
    header[148:156] = b"        "
    header[148:156] = b"%06o\0 " % sum(header)
    raw = bytes(header) + b"x".ljust(512, b"\0") + bytes(1024)
    path.write_bytes(lzma.compress(raw, preset=9))
    return path


def _refused(archive: Path, store_dir: Path, written: list[int], **kw) -> InputFormatError:
    with pytest.raises(InputFormatError) as info:
        ingest("azure-functions-2019", [archive], store_dir, workers=1, **kw)
    assert snapshot(store_dir) == {}
    # No partial member is left in staging (only the run's owner record).
    assert [p for p in (store_dir / ".staging").rglob("*") if p.is_file() and p.name != "owner.json"] == []
    return info.value


@pytest.mark.parametrize("kind", ["tar.xz", "zip"])
def test_bomb_of_zeros_is_refused_before_a_byte_is_written(kind: str, tmp_path: Path, store_dir: Path, written):
    # 64 MiB of zeros: a ~10 KB tar.xz and a ~65 KB zip. Today's code writes all 64 MiB.
    if kind == "zip":
        bomb = _zeros_zip(tmp_path / "azurefunctions-dataset2019.zip", D01, 64 * MIB)
    else:
        bomb = _zeros_tar_xz(tmp_path / ARCHIVE, [(D01, 64 * MIB)])
    assert bomb.stat().st_size < 100_000
    err = _refused(bomb, store_dir, written)
    assert sum(written) == 0  # the header's declared size alone exceeds the bound
    msg = str(err)
    assert err.file == bomb.name and f"member '{D01}'" in msg
    assert "archive bomb" in msg and "200x" in msg
    assert "--max-expand-ratio" in msg and "WATTLAS_MAX_EXPAND_RATIO" in msg


def test_sparse_tar_member_of_a_300_byte_archive_is_refused(tmp_path: Path, store_dir: Path, written):
    # The red team's 292-byte .tar.xz that wrote 128 MiB: a sparse member of holes.
    bomb = _sparse_tar_xz(tmp_path / ARCHIVE, D01, 128 * MIB)
    assert bomb.stat().st_size < 400
    assert [(m.name, m.size_bytes) for m in iter_members(bomb, limits=ArchiveLimits(expand_grace_bytes=1 << 40))] == [
        (D01, 128 * MIB)
    ]
    err = _refused(bomb, store_dir, written)
    assert sum(written) == 0
    assert "declares" not in str(err) and "would expand the archive to 128.0 MiB" in str(err)


def test_bound_is_enforced_while_copying(tmp_path: Path, store_dir: Path, written):
    # The member's declared 12 MiB fits the whole archive's allowance (4 MiB of incompressible
    # padding, ratio 4: 17 MiB), but when it is copied only ~1 MiB of compressed data has been
    # read: the live bound (1 MiB + 4 x 1 MiB) stops it. Today's code writes all 12 MiB.
    bomb = _zeros_tar_xz(tmp_path / ARCHIVE, [(D01, 12 * MIB), ("padding.bin", os.urandom(4 * MIB))])
    limits = ArchiveLimits(max_expand_ratio=4, expand_grace_bytes=MIB)
    err = _refused(bomb, store_dir, written, archive_limits=limits)
    assert 0 < sum(written) <= 5 * MIB
    assert "would expand the archive to" in str(err) and "over the limit of 4x" in str(err)


def _lying_zip(path: Path, name: str, declared: int, data: bytes) -> Path:
    """A one-member zip whose local header and central directory both claim ``declared`` bytes."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = comp.compress(data) + comp.flush()
    raw = name.encode()
    crc = zlib.crc32(data)
    local = struct.pack("<4s5H3L2H", b"PK\3\4", 20, 0, 8, 0, 0, crc, len(body), declared, len(raw), 0) + raw
    central = struct.pack("<4s6H3L5H2L", b"PK\1\2", 20, 20, 0, 8, 0, 0, crc, len(body), declared,
                          len(raw), 0, 0, 0, 0, 0o100644 << 16, 0) + raw
    end = struct.pack("<4s4H2LH", b"PK\5\6", 0, 0, 1, 1, len(central), len(local) + len(body), 0)
    path.write_bytes(local + body + central + end)
    return path


def test_zip_declaring_a_huge_member_is_refused_unread(tmp_path: Path, store_dir: Path, written):
    # The header claims 3 GiB; the data is 4 MiB of zeros. Today's code writes the 4 MiB first.
    bomb = _lying_zip(tmp_path / "azurefunctions-dataset2019.zip", D01, 3 << 30, bytes(4 * MIB))
    err = _refused(bomb, store_dir, written)
    assert sum(written) == 0
    assert "would expand the archive to 3.0 GiB" in str(err)


def test_zip_whose_header_understates_its_data_writes_no_more_than_declared(tmp_path: Path, written, store_dir):
    # The header says 1 KiB, the deflate stream holds 16 MiB. A guard, not a regression: Python's
    # zipfile already stops at the central directory's size and then fails the CRC.
    bomb = _lying_zip(tmp_path / "azurefunctions-dataset2019.zip", D01, 1024, bytes(16 * MIB))
    err = _refused(bomb, store_dir, written)
    assert sum(written) <= 1024
    assert "corrupt" in str(err)


@pytest.mark.skipif(not libarchive_available(), reason="the libarchive C library is not installed")
def test_rar_member_yielding_more_than_declared_is_stopped(tmp_path: Path):
    # A stored RAR v5 member that declares 10 bytes and carries 1 MiB: libarchive yields it all.
    data = b"x" * MIB
    body = _vint(0x0004) + _vint(10) + _vint(0o100644) + struct.pack("<I", zlib.crc32(data)) + _vint(0) + _vint(1)
    body += _vint(len(b"a.csv")) + b"a.csv"
    rar = tmp_path / "lie.rar"
    rar.write_bytes(b"Rar!\x1a\x07\x01\x00" + _block(1, _vint(0)) + _block(2, body, b"", len(data)) + data
                    + _block(5, _vint(0)))
    counts: list[int] = []
    dest = tmp_path / "out.csv"
    with pytest.raises(InputFormatError, match="more bytes than the 10 its header declares") as e:
        for member in iter_members(rar):
            copy_member(member, dest, counts.append)
    assert sum(counts) == 0 and not dest.exists()
    assert e.value.file == "lie.rar"


def test_control_characters_in_member_names_are_escaped(tmp_path: Path):
    # A member the source would skip is still checked (skipping a tar member decompresses it).
    bomb = _zeros_tar_xz(tmp_path / "b.tar.xz", [("evil\x1b[2J\n.csv", 64 * MIB)])
    with pytest.raises(InputFormatError) as e:
        list(iter_members(bomb))
    assert "\x1b" not in str(e.value) and "\n" not in str(e.value)
    assert "'evil\\x1b[2J\\n.csv'" in str(e.value)


def test_limits_from_env_and_cli_flags_and_a_normal_archive(tmp_path: Path, store_dir: Path, monkeypatch, capsys):
    archive = tar_xz(tmp_path / ARCHIVE, day_files())
    # Limits so tight that the honest fixture archive is refused, set through the environment...
    monkeypatch.setenv("WATTLAS_MAX_EXPAND_RATIO", "1")
    monkeypatch.setenv("WATTLAS_EXPAND_GRACE_BYTES", "0")
    assert main(["ingest", "azure-functions-2019", "--from", str(archive), "--store", str(store_dir),
                 "--workers", "1"]) != 0
    assert "over the limit of 1x" in capsys.readouterr().err
    assert snapshot(store_dir) == {}
    # ... and overridden on the command line for a release the user trusts.
    assert main(["ingest", "azure-functions-2019", "--from", str(archive), "--store", str(store_dir),
                 "--workers", "1", "--max-expand-ratio", "1000"]) == 0
    assert Store(store_dir).sql("select count(*) from function_invocations").item() == 6
    # The per-member cap from the command line, in human units.
    assert main(["ingest", "azure-functions-2019", "--from", str(archive), "--store", str(tmp_path / "s2"),
                 "--workers", "1", "--max-expand-ratio", "1000", "--max-member-bytes", "1KiB"]) != 0
    assert "over the per-member limit of 1.0 KiB" in capsys.readouterr().err
    # Defaults admit the normal archive.
    monkeypatch.delenv("WATTLAS_MAX_EXPAND_RATIO")
    monkeypatch.delenv("WATTLAS_EXPAND_GRACE_BYTES")
    assert ingest("azure-functions-2019", [archive], tmp_path / "s3", workers=1).rows["function_invocations"] == 6


def test_limit_values_are_checked():
    assert parse_bytes("64GiB") == 64 << 30 and parse_bytes("1.5 MB") == 1_500_000
    with pytest.raises(WattlasError, match="WATTLAS_MAX_ARCHIVE_BYTES='lots'"):
        ArchiveLimits.from_env({"WATTLAS_MAX_ARCHIVE_BYTES": "lots"})
    with pytest.raises(WattlasError, match="max_expand_ratio must be positive"):
        ArchiveLimits(max_expand_ratio=0)
    assert ArchiveLimits.from_env({"WATTLAS_MAX_MEMBER_BYTES": "2GB"}).max_member_bytes == 2_000_000_000
