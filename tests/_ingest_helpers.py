"""Helpers for the serverless/HPC ingest tests: archives built in the test, store snapshots.

``rar5_stored`` writes a real RAR v5 archive with uncompressed ("stored") members following
RARLAB's published format description (technote: signature, vint-coded block headers with
CRC32, file headers with a data area, the file-system redirection extra record for links, the
end-of-archive block). No RAR tool can be assumed on a test machine (RARLAB's ``rar`` is the only
common writer); libarchive, which wattlas reads RAR with, is an independent implementation of
the same format, so these archives test the real reader. Compressed RAR members need ``rar``
itself: that test skips without it.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _vint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _block(htype: int, body: bytes, extra: bytes = b"", data_size: int | None = None) -> bytes:
    flags = (0x0001 if extra else 0) | (0x0002 if data_size is not None else 0)
    fields = _vint(htype) + _vint(flags)
    if extra:
        fields += _vint(len(extra))
    if data_size is not None:
        fields += _vint(data_size)
    fields += body + extra
    header = _vint(len(fields)) + fields
    return struct.pack("<I", zlib.crc32(header)) + header


def _rar_file(name: str, data: bytes, link_target: str | None) -> bytes:
    mode = 0o120777 if link_target is not None else 0o100644
    body = _vint(0x0004) + _vint(len(data)) + _vint(mode) + struct.pack("<I", zlib.crc32(data))
    body += _vint(0)  # compression info: version 0, not solid, method 0 (store)
    body += _vint(1)  # host OS: Unix
    raw = name.encode()
    body += _vint(len(raw)) + raw
    extra = b""
    if link_target is not None:
        target = link_target.encode()
        record = _vint(5) + _vint(1) + _vint(0) + _vint(len(target)) + target  # redirection: Unix symlink
        extra = _vint(len(record)) + record
    return _block(2, body, extra, len(data)) + data


def rar5_stored(path: Path, members: list[tuple[str, bytes] | tuple[str, bytes, str]]) -> Path:
    """Write a RAR v5 archive of stored members; a 3-tuple member is a symlink to its third item."""
    out = b"Rar!\x1a\x07\x01\x00" + _block(1, _vint(0))
    for m in members:
        out += _rar_file(m[0], m[1], m[2] if len(m) > 2 else None)
    out += _block(5, _vint(0))
    path.write_bytes(out)
    return path


def libarchive_available() -> bool:
    try:
        import libarchive  # noqa: F401
    except (ImportError, OSError, AttributeError):
        return False
    return True


def tar_xz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:xz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return path


def zip_file(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def fixture_bytes(area: str, name: str) -> bytes:
    return (FIXTURES / area / name).read_bytes()


def copy_fixture(area: str, name: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FIXTURES / area / name, dest)
    return dest


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(store_dir: Path) -> dict[str, object]:
    """What a query can see: the catalog's tables (files and rows) - to prove a store unchanged."""
    cat = store_dir / "catalog.json"
    if not cat.exists():
        return {}
    return json.loads(cat.read_text())["tables"]


def table_rows(store, table: str, order: str) -> list[tuple]:
    return store.sql(f"select * exclude (source) from {table} order by {order}").rows()


def supercloud_gpu_dir(root: Path, n_files: int = 20, power_w: int = 40) -> Path:
    """``n_files`` small Supercloud GPU files of one key (``gpu/0007``) under ``root``, in the real
    format; ``power_w`` tells datasets apart. Returns ``root``."""
    header, *_ = (FIXTURES / "hpc" / "409499185-r8939293-n208531.csv").read_text().splitlines()
    folder = root / "gpu" / "0007"
    folder.mkdir(parents=True)
    for i in range(n_files):
        rows = [f"{1614556921 + i * 10 + k}.000,{k % 2},{i},{k},32500,10,30,[N/A],{power_w + i}.5,16"
                for k in range(5)]
        (folder / f"{5000 + i}-r1-n{i}.csv").write_text("\n".join([header, *rows]) + "\n")
    return root


def live_processes(match) -> list[int]:
    """PIDs of live (not zombie) processes for which ``match(proc_dir, stat_fields)`` is true;
    ``stat_fields`` are the fields of ``/proc/PID/stat`` after the command name (state first)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z" and match(entry, fields):
                found.append(int(entry.name))
        except OSError:
            continue
    return found
