"""Azure Functions invocation trace 2021 (SOSP'21): 1,980,951 invocations over two weeks.

One RAR v5 archive holding ``AzureFunctionsInvocationTraceForTwoWeeksJan2021.txt``, a CSV
(``app,func,end_timestamp,duration``) despite its name. Times are **seconds** (the repository
README says milliseconds; the 14-day span and durations like 0.013 say seconds) from the shifted
trace start; the published time is the invocation's *end*, so ``start_s`` =
``end_timestamp - duration`` (negative for a few long invocations near t=0) and ``end_s`` keeps
the original. The file is ordered by start time, not by ``end_timestamp``. The RAR is read
through libarchive (see :mod:`wattlas.ingest.archive`).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import polars as pl

from ...schemas import get_table
from ..csvread import FLOAT, STR, CsvLayout, convert_csv
from ..parts import null_columns
from ..registry import Source, SourceFile

NAME = "AzureFunctionsInvocationTraceForTwoWeeksJan2021"

SOURCES = (
    Source(
        id="azure-functions-2021",
        title="Azure Functions invocation trace 2021 (SOSP'21): every invocation of ~424 functions, two weeks",
        tables=("function_events",),
        files=(
            SourceFile(
                f"{NAME}.rar",
                f"https://github.com/Azure/AzurePublicDataset/raw/master/data/{NAME}.rar",
            ),
        ),
        licence="CC-BY-4.0",
        citation=(
            "Zhang, Goiri, Chaudhry, Fonseca, Elnikety, Delimitrou, Bianchini. Faster and Cheaper "
            "Serverless Computing on Harvested Resources. SOSP 2021."
        ),
        paper="https://www.microsoft.com/en-us/research/publication/faster-and-cheaper-serverless-computing-on-harvested-resources/",
        homepage="https://github.com/Azure/AzurePublicDataset/blob/master/AzureFunctionsInvocationTrace2021.md",
        description=(
            "Per-invocation end time and duration (seconds) of ~119 apps / ~424 functions over 14 days "
            "starting 2021-01-31; timestamps shifted from production."
        ),
        notes=(
            "Third parties report 18,444,269 bytes and a SHA-256 for the .rar; not authoritative, so the "
            "hash is recorded on first download.",
            "Reading the .rar needs the libarchive C library (`apt-get install libarchive13`).",
        ),
    ),
)

LAYOUT = CsvLayout(
    name="Azure Functions 2021 invocation trace",
    header=("app", "func", "end_timestamp", "duration"),
    raw_types={"app": STR, "func": STR, "end_timestamp": FLOAT, "duration": FLOAT},
    columns={"app_id": "app", "function_id": "func", "end_s": "end_timestamp", "duration_s": "duration"},
    derive=lambda lf: lf.with_columns(start_s=pl.col("end_s") - pl.col("duration_s")),
)

_NAME = re.compile(r"^AzureFunctionsInvocationTrace\w*\.(rar|txt|csv)$")


def accepts(source_id: str, path: Path | PurePosixPath) -> bool:
    return bool(_NAME.match(path.name))


def convert(source_id: str, path: Path, out_dir: Path, *, logical: PurePosixPath) -> dict[str, list[Path]]:
    out = out_dir / "function_events.parquet"
    have = {"app_id", "function_id", "end_s", "duration_s", "start_s"}
    extra = {**null_columns("function_events", have=have | {"trace"}), "trace": pl.lit("all")}
    convert_csv(path, [LAYOUT], out, display=logical.name, extra=extra,
                select=get_table("function_events").column_names, row_index=None, table="function_events")
    return {"function_events": [out]}
