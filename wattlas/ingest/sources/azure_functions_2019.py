"""Azure Functions trace 2019 (Serverless in the Wild, ATC'20): 14 days of per-minute counts.

One ``.tar.xz`` of 40 flat CSVs (or those CSVs extracted): ``invocations_per_function_md.anon.dNN``
(1,444 columns: 3 hashes, trigger, minutes ``1``..``1440``), ``function_durations_percentiles.anon.dNN``
(ms) and ``app_memory_percentiles.anon.dNN`` (MB, days 1-12). Files carry no dates: the day is
the ``NN`` of the file name (``day_index``) and ``time_s`` counts from 00:00 of d01 (2019-07-15
by inference from the official plots, not stated). The minute columns are unpivoted to one row
per non-zero (function, minute); an empty minute cell counts as zero invocations. All 40 files
are one store key, so ``functions`` holds one row per function over all days.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import polars as pl

from ..._parquet import sink_options
from ...errors import InputFormatError, quote_input
from ...schemas import get_table
from ..csvread import FLOAT, STR, CsvLayout, convert_csv, write_failure
from ..parts import check_bounds, select_table, sink_table
from ..registry import Source, SourceFile
from ..wide import locate_bad_cell, read_header_fields, wide_frames

KEY = "azurefunctions-dataset2019"
ARCHIVE = "azurefunctions-dataset2019.tar.xz"

SOURCES = (
    Source(
        id="azure-functions-2019",
        title="Azure Functions trace 2019 (Serverless in the Wild): 14 days of per-minute invocations",
        tables=("function_invocations", "function_durations", "app_memory", "functions"),
        files=(
            SourceFile(
                ARCHIVE,
                "https://azurepublicdatasettraces.blob.core.windows.net/azurepublicdatasetv2/"
                "azurefunctions_dataset2019/azurefunctions-dataset2019.tar.xz",
            ),
        ),
        licence="CC-BY-4.0",
        citation=(
            "Shahrad, Fonseca, Goiri, Chaudhry, Batum, Cooke, Laureano, Tresness, Russinovich, "
            "Bianchini. Serverless in the Wild: Characterizing and Optimizing the Serverless Workload "
            "at a Large Cloud Provider. USENIX ATC 2020."
        ),
        paper="https://www.usenix.org/conference/atc20/presentation/shahrad",
        homepage="https://github.com/Azure/AzurePublicDataset/blob/master/AzureFunctionsDataset2019.md",
        description=(
            "Per-minute invocation counts per function (14 days), daily execution-time percentiles "
            "per function (ms, stored as s) and committed memory percentiles per app (12 days). "
            "Owner, app and function ids are salted HMAC-SHA256 hashes."
        ),
        notes=(
            "Third parties report the archive as 142,968,140 bytes; not authoritative, so its SHA-256 "
            "is recorded on first download.",
            "Day d01 = 2019-07-15 is an inference from the official analysis plots; the files carry no date.",
        ),
    ),
)

MINUTES = tuple(str(m) for m in range(1, 1441))
IDS = ("HashOwner", "HashApp", "HashFunction")
INVOCATIONS_HEADER = (*IDS, "Trigger", *MINUTES)
_PCT = ("0", "1", "25", "50", "75", "99", "100")
_MEM_PCT = ("1", "5", "25", "50", "75", "95", "99", "100")

_NAME = re.compile(
    r"^(invocations_per_function_md|function_durations_percentiles|app_memory_percentiles)\.anon\.d(\d+)\.csv$"
)
_ARCHIVE = re.compile(r"^azurefunctions[-_]dataset2019.*\.tar\.xz$")


def _ms_to_s(col: str) -> pl.Expr:
    return pl.col(col) / 1000.0


def _count(col: str) -> pl.Expr:
    # `Count` is written as 2880 or 2880.0 in the same file: read as float, store as an integer.
    return pl.col(col).cast(pl.Int64)


DURATIONS = CsvLayout(
    name="Azure Functions 2019 function_durations_percentiles",
    header=(*IDS, "Average", "Count", "Minimum", "Maximum", *(f"percentile_Average_{q}" for q in _PCT)),
    raw_types={**dict.fromkeys(IDS, STR), **{c: FLOAT for c in ("Average", "Count", "Minimum", "Maximum")},
               **{f"percentile_Average_{q}": FLOAT for q in _PCT}},
    columns={"owner_id": "HashOwner", "app_id": "HashApp", "function_id": "HashFunction"},
    nullable=frozenset({"Average", "Count", "Minimum", "Maximum", *(f"percentile_Average_{q}" for q in _PCT)}),
    derive=lambda lf: lf.with_columns(
        avg_duration_s=_ms_to_s("Average"), executions=_count("Count"),
        min_duration_s=_ms_to_s("Minimum"), max_duration_s=_ms_to_s("Maximum"),
        **{f"p{q}_duration_s": _ms_to_s(f"percentile_Average_{q}") for q in _PCT},
    ),
)
MEMORY = CsvLayout(
    name="Azure Functions 2019 app_memory_percentiles",
    header=("HashOwner", "HashApp", "SampleCount", "AverageAllocatedMb",
            *(f"AverageAllocatedMb_pct{q}" for q in _MEM_PCT)),
    raw_types={"HashOwner": STR, "HashApp": STR, "SampleCount": FLOAT, "AverageAllocatedMb": FLOAT,
               **{f"AverageAllocatedMb_pct{q}": FLOAT for q in _MEM_PCT}},
    columns={"owner_id": "HashOwner", "app_id": "HashApp"},
    nullable=frozenset({"SampleCount", "AverageAllocatedMb", *(f"AverageAllocatedMb_pct{q}" for q in _MEM_PCT)}),
    derive=lambda lf: lf.with_columns(
        sample_count=_count("SampleCount"), avg_allocated_mb=pl.col("AverageAllocatedMb"),
        **{f"p{q}_allocated_mb": pl.col(f"AverageAllocatedMb_pct{q}") for q in _MEM_PCT},
    ),
)


def accepts(source_id: str, path: Path | PurePosixPath) -> bool:
    return bool(_NAME.match(path.name) or _ARCHIVE.match(path.name))


def group(source_id: str, logical: PurePosixPath, path: Path) -> tuple[str, str]:
    # One key for all day files: `functions` is then one row per function over all days.
    return KEY, logical.name


def day_index(name: str) -> int:
    m = re.search(r"\.d(\d+)\.csv$", name)
    if not m:
        raise InputFormatError(
            "cannot tell the day: Azure Functions 2019 file names end in .dNN.csv (e.g. "
            "invocations_per_function_md.anon.d01.csv); keep the official names", file=name,
        )
    return int(m.group(1))


def convert(source_id: str, path: Path, out_dir: Path, *, logical: PurePosixPath) -> dict[str, list[Path]]:
    display = logical.name
    header = tuple(read_header_fields(path, display))
    day = day_index(display)
    if header[:4] == (*IDS, "Trigger"):
        if header != INVOCATIONS_HEADER:
            raise InputFormatError(
                f"the header has {len(header)} columns; expected {len(INVOCATIONS_HEADER)}: "
                "HashOwner,HashApp,HashFunction,Trigger,1,2,...,1440", file=display, line=1,
            )
        return _invocations(path, out_dir, display, day)
    extra = {"trace": pl.lit("all"), "day_index": pl.lit(day, pl.Int32)}
    if header[:3] == IDS:
        table, layout = "function_durations", DURATIONS
    elif header[:2] == ("HashOwner", "HashApp"):
        table, layout = "app_memory", MEMORY
    else:
        raise InputFormatError(
            f"unexpected header starting {quote_input(','.join(header[:5]))}: not an Azure Functions 2019 "
            "invocations, durations or memory file", file=display, line=1,
        )
    out = out_dir / f"{table}.parquet"
    cols = get_table(table).column_names
    convert_csv(path, [layout], out, display=display, extra=extra, select=cols, row_index=None, table=table)
    return {table: [out]}


def _invocations(path: Path, out_dir: Path, display: str, day: int) -> dict[str, list[Path]]:
    long, ids = wide_frames(
        path, ids=dict.fromkeys(IDS, pl.String), value_type=pl.Int64,
        keep=lambda v: v.is_not_null() & (v != 0), header=list(INVOCATIONS_HEADER), skip=frozenset({"Trigger"}),
    )
    inv = out_dir / "function_invocations.parquet"
    fun = out_dir / "_functions.parquet"
    base_s = (day - 1) * 86400
    invocations = select_table(
        long, "function_invocations", trace="all", owner_id=pl.col("HashOwner"), app_id=pl.col("HashApp"),
        function_id=pl.col("HashFunction"), day_index=day,
        time_s=base_s + (pl.col("_col").cast(pl.Int64) - 1) * 60, bin_s=60, invocations=pl.col("_value"),
    )
    functions = ids.select(
        pl.lit("all").alias("trace"), pl.col("HashOwner").alias("owner_id"), pl.col("HashApp").alias("app_id"),
        pl.col("HashFunction").alias("function_id"), pl.col("Trigger").alias("trigger"),
        pl.lit(day, pl.Int32).alias("day_index"),
    )
    try:
        pl.collect_all([
            # Two sinks of one scan: polars writes them, with the shared codec and row groups.
            invocations.sink_parquet(inv, lazy=True, **sink_options()),
            functions.sink_parquet(fun, lazy=True, **sink_options()),
        ])
    except (pl.exceptions.PolarsError, OSError) as e:
        inv.unlink(missing_ok=True)
        fun.unlink(missing_ok=True)
        types = {**dict.fromkeys(IDS, pl.String), **dict.fromkeys(MINUTES, pl.Int64)}
        raise write_failure(e, inv, display) or locate_bad_cell(
            path, types, display, {m: "an invocation count" for m in MINUTES}
        ) or InputFormatError(
            f"could not be read as an invocations file: {str(e).strip().splitlines()[0]}", file=display
        ) from e
    negative = pl.scan_parquet(inv).filter(pl.col("invocations") < 0).head(1).collect()
    if negative.height:
        bad = negative.row(0, named=True)
        inv.unlink()
        row = (
            ids.with_row_index("_line").filter(pl.col("HashFunction") == bad["function_id"])
            .select("_line").head(1).collect().item()
        )
        minute = str((bad["time_s"] - base_s) // 60 + 1)
        raise InputFormatError(
            f"{bad['invocations']} is not an invocation count (negative)", file=display, line=row + 2, column=minute
        )
    check_bounds(inv, "function_invocations", display)
    return {"function_invocations": [inv], "_functions": [fun]}


def reduce(source_id: str, key: str, parts: dict[str, list[Path]], out_dir: Path) -> dict[str, list[Path]]:
    """``_functions`` (one row per function and day) -> ``functions`` (one row per function)."""
    out = out_dir / "functions.parquet"
    rows = (
        pl.scan_parquet(parts["_functions"])
        .group_by("trace", "owner_id", "app_id", "function_id")
        .agg(
            trigger=pl.col("trigger").sort_by("day_index").first(),
            first_day_index=pl.col("day_index").min(),
            last_day_index=pl.col("day_index").max(),
        )
        .sort("owner_id", "app_id", "function_id")
    )
    sink_table(rows, "functions", out)
    return {"functions": [out]}

