"""Byte-identical model files: skops output rewritten without addresses and clock times.

skops names each array member after ``id()`` of the array (a memory address), stores that
address as the node's ``__id__`` in ``schema.json``, and stamps every zip member with the wall
clock. Two trainings of the same model on the same rows therefore wrote different files.
:func:`canonical_skops` renumbers both in the order they appear in ``schema.json`` (from 1: a
reader may treat an ``__id__`` of 0 as absent) and dates every member 1980-01-01, the zip
format's epoch. Only names change, never what they point to, so the file loads to the same
estimator.

Examples
--------
>>> import io, zipfile
>>> buf = io.BytesIO()
>>> with zipfile.ZipFile(buf, "w") as z:
...     z.writestr("140230.npy", b"x")
...     z.writestr("schema.json", '{"file": "140230.npy", "__id__": 99}')
>>> out = zipfile.ZipFile(io.BytesIO(canonical_skops(buf.getvalue())))
>>> out.namelist(), out.read("schema.json").decode().split()
(['1.npy', 'schema.json'], ['{', '"file":', '"1.npy",', '"__id__":', '1', '}'])
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import PurePosixPath
from typing import Any

from ..errors import WattlasError

SCHEMA = "schema.json"
#: The date every member gets: the earliest a zip header can hold.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _renumber(node: Any, ids: dict[int, int], files: dict[str, str]) -> None:
    """Rewrite ``__id__`` and ``file`` values in place, numbering in document order."""
    if isinstance(node, dict):
        for key, value in node.items():  # values are replaced, never keys: safe while iterating
            if key == "__id__" and isinstance(value, int) and not isinstance(value, bool):
                node[key] = ids.setdefault(value, len(ids) + 1)
            elif key == "file" and isinstance(value, str):
                node[key] = files.setdefault(value, f"{len(files) + 1}{PurePosixPath(value).suffix}")
            else:
                _renumber(value, ids, files)
    elif isinstance(node, list):
        for value in node:
            _renumber(value, ids, files)


def canonical_skops(data: bytes, *, compresslevel: int = 9) -> bytes:
    """``data`` (a skops file) with deterministic member names, ``__id__`` values and dates."""
    with zipfile.ZipFile(io.BytesIO(data)) as zin:
        infos = zin.infolist()
        names = [i.filename for i in infos]
        if SCHEMA not in names:
            raise WattlasError("not a skops file: no schema.json member")
        schema = json.loads(zin.read(SCHEMA))
        ids: dict[int, int] = {}
        files: dict[str, str] = {}
        _renumber(schema, ids, files)
        unreferenced = sorted(set(names) - set(files) - {SCHEMA})
        if unreferenced:  # skops writes no such member; renaming one could break a reader
            raise WattlasError(f"skops file has members schema.json does not name: {unreferenced[:5]}")
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zout:
            for info in infos:
                new = SCHEMA if info.filename == SCHEMA else files[info.filename]
                body = (json.dumps(schema, indent=2).encode() if new == SCHEMA else zin.read(info.filename))
                member = zipfile.ZipInfo(new, date_time=ZIP_EPOCH)
                member.compress_type = info.compress_type
                member.external_attr = 0o600 << 16  # rw for the owner, as zipfile's writestr sets it
                level = compresslevel if info.compress_type == zipfile.ZIP_DEFLATED else None
                zout.writestr(member, body, compresslevel=level)
    return out.getvalue()
