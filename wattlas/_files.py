"""Small file helpers shared by ingest and datasets."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .errors import WattlasError


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in 4 MiB blocks (hashlib releases the GIL on large blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def require_parent_dir(path: str | Path, what: str = "output") -> Path:
    """``path`` if its folder exists; a clear error otherwise (a typo in ``-o`` must not create
    folders at random places, such as under ``/``)."""
    path = Path(path)
    parent = path.expanduser().absolute().parent
    if not parent.is_dir():
        raise WattlasError(
            f"cannot write the {what} to {path}: the folder {parent} does not exist (create it first, "
            "or give a path in an existing folder)"
        )
    return path
