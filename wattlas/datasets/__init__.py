"""Versioned, checksummed dataset releases built from the store (see `wattlas release`).

A release is a directory others can cite, verify and load with the tools they already use:
zstd Parquet tables, MLCommons Croissant 1.1 metadata (``croissant.json``), a dataset card
(``README.md``, loadable by Hugging Face ``datasets``) and ``SHA256SUMS``.

Examples
--------
>>> from wattlas.datasets import ReleaseDefinition, build_release, verify_release, load_release
>>> d = ReleaseDefinition(name="azure-llm-2023", tables=("llm_requests",),
...                       where="source = 'azure-llm-2023'")
>>> build_release(d, "out/azure-llm-2023", store="S")     # doctest: +SKIP
>>> verify_release("out/azure-llm-2023")                   # doctest: +SKIP
>>> load_release("out/azure-llm-2023", store="S2")         # doctest: +SKIP
"""

from __future__ import annotations

from .build import ReleaseReport, ReleaseTable, build_release
from .definitions import ReleaseDefinition, SourceTerms, find_definition, load_definition
from .load import LoadReport, Replacement, load_release
from .verify import VerifyReport, verify_release

__all__ = [
    "LoadReport",
    "ReleaseDefinition",
    "ReleaseReport",
    "ReleaseTable",
    "Replacement",
    "SourceTerms",
    "VerifyReport",
    "build_release",
    "find_definition",
    "load_definition",
    "load_release",
    "verify_release",
]
