"""BurstGPT (HPMLL): ChatGPT / GPT-4 request traces from an Azure OpenAI deployment.

Two header layouts: releases ``_1``/``_2`` and ``_3`` (which inserts ``Session ID`` and
``Elapsed time`` at positions 2-3). Columns are mapped by name. ``Timestamp`` keeps the
shared origin of all files (``_3`` starts near day 225); failures are ``Response tokens == 0``.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from ..csvread import FLOAT, INT, STR, CsvLayout
from ..registry import Source, SourceFile
from ._llm import convert_llm_csv

BASE = "https://github.com/HPMLL/BurstGPT/releases/download/v1.2"
FILES = (
    SourceFile(
        "BurstGPT_1.csv", f"{BASE}/BurstGPT_1.csv", 52_283_111,
        "4bb3783693d0a435686fbfc885615d2349bd067239079fa4b749f2e679e12122",
        "Git LFS pointer of data/BurstGPT_1.csv in HPMLL/BurstGPT",
    ),
    SourceFile("BurstGPT_2.csv", f"{BASE}/BurstGPT_2.csv", 144_819_209),
    SourceFile("BurstGPT_3.csv", f"{BASE}/BurstGPT_3.csv", 231_682_327),
    SourceFile("BurstGPT_without_fails_1.csv", f"{BASE}/BurstGPT_without_fails_1.csv", 51_429_517),
    SourceFile("BurstGPT_without_fails_2.csv", f"{BASE}/BurstGPT_without_fails_2.csv", 142_376_815),
    SourceFile("BurstGPT_without_fails_3.csv", f"{BASE}/BurstGPT_without_fails_3.csv", 217_312_026),
)

SOURCES = (
    Source(
        id="burstgpt",
        title="BurstGPT: ChatGPT/GPT-4 request traces (Azure OpenAI), releases 1-3",
        tables=("llm_requests",),
        files=FILES,
        licence="CC-BY-4.0",
        citation=(
            "Wang, Chen, Li, Kang, Fang, Zhou, Zheng, Tang, He, Guo, Wang, Wang, Zhou, Chu. "
            "BurstGPT: A Real-World Workload Dataset to Optimize LLM Serving Systems. KDD 2025. "
            "doi:10.1145/3711896.3737413"
        ),
        paper="https://arxiv.org/abs/2401.17644",
        homepage="https://github.com/HPMLL/BurstGPT",
        description=(
            "Request timestamps (s, local-day origin shared by all files), model, request and "
            "response tokens, log type; release 3 adds session id and elapsed time. "
            "`*_without_fails_*` are the same rows minus failures."
        ),
        notes=("Sizes of files other than BurstGPT_1.csv are third-party reports; their hashes are "
               "recorded on first download.",),
    ),
)

_COMMON = {
    "Timestamp": FLOAT, "Model": STR, "Request tokens": INT, "Response tokens": INT,
    "Total tokens": INT, "Log Type": STR,
}
_MAP = {
    "arrival_s": "Timestamp", "model": "Model", "log_type": "Log Type",
    "input_tokens": "Request tokens", "output_tokens": "Response tokens",
}


def _failed(lf: pl.LazyFrame) -> pl.LazyFrame:
    return lf.with_columns(failed=pl.col("output_tokens") == 0)


LAYOUT_1_2 = CsvLayout(
    name="BurstGPT release 1/2",
    header=("Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type"),
    raw_types=_COMMON,
    columns=_MAP,
    derive=_failed,
)
LAYOUT_3 = CsvLayout(
    name="BurstGPT release 3",
    header=("Timestamp", "Session ID", "Elapsed time", "Model", "Request tokens",
            "Response tokens", "Total tokens", "Log Type"),
    raw_types={**_COMMON, "Session ID": STR, "Elapsed time": FLOAT},
    columns={**_MAP, "session_id": "Session ID", "elapsed_s": "Elapsed time"},
    # Only conversation rows have a session id.
    nullable=frozenset({"Session ID"}),
    derive=_failed,
)

_NAME = re.compile(r"BurstGPT_(without_fails_)?\d+\.csv$")


def accepts(source_id: str, path: Path) -> bool:
    return bool(_NAME.match(path.name))


def convert(source_id: str, path: Path, out_dir: Path) -> dict[str, list[Path]]:
    trace = path.name.removesuffix(".csv")
    return convert_llm_csv(path, out_dir, [LAYOUT_1_2, LAYOUT_3], trace, wall_clock=False)
