"""Huawei serverless traces 2023 (How Does It Function?, SoCC'23): Huawei Private and Public.

One zip per metric, each a folder of daily wide CSVs ``day,time,<function>...`` (Private: 200
functions, 141 of 235 days, per-minute and per-second; Public: 5,093 functions, 26 days,
per-minute requests). The folder name carries the metric and bin (``requests_minute``,
``function_delay_second``, ...); for day files at the root of a zip, the zip's name does
(``cpu_limit_minute.zip``). Requests go to ``function_invocations`` (non-zero bins only);
every other metric to ``function_metrics``. An empty cell means the function had no activity in
that bin and is not stored. Times are seconds since 00:00 of day 0.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import polars as pl

from ..._parquet import sink_options
from ...errors import InputFormatError, quote_input
from ..csvread import write_failure
from ..parts import check_bounds, select_table
from ..registry import Source, google_drive_file
from ..wide import locate_bad_cell, read_header_fields, wide_frames

README = "https://github.com/sir-lab/data-release/blob/main/README_data_release_2023.md"
#: Until 2025-11-20 the README linked Huawei OBS: <OBS>/private_dataset/<metric>.zip, <OBS>/public_dataset/...
OBS = "https://sir-dataset.obs.cn-east-3.myhuaweicloud.com/datasets"
#: Sections of the README that link the files (GitHub's anchors of its headings).
PRIVATE = f"{README}#huawei-private"
PUBLIC = f"{README}#huawei-public"
#: (file name, README section, link text there, Google Drive file id), in the README's order at
#: sir-lab/data-release 84a9d77. Names are its former OBS file names. Checked against
#: tests/fixtures/serverless/sir_lab_readme_*.tsv.
DRIVE_FILES = (
    ("requests_minute.zip", PRIVATE, "Requests per minute", "1W9dQvqRGylfUeHJcYqWwJrpYHIsYCVq_"),
    ("requests_second.zip", PRIVATE, "Requests per second", "11XC-gLyg1hYr39qT-oKDwzkpvseRdDIv"),
    ("function_delay_minute.zip", PRIVATE, "Function delay per minute", "1Ooentp5nUeC2qKig8QSvJAaRgk3Kix_v"),
    ("function_delay_second.zip", PRIVATE, "Function delay per second", "1T_G_CRrqzYE2sGSkcnZgntygoZrxaUC0"),
    ("platform_delay_minute.zip", PRIVATE, "Platform delay per minute", "1PEHdfOdmMfzWz-MSnj5q5Zy_9kKeDRqD"),
    ("platform_delay_second.zip", PRIVATE, "Platform delay per second", "1h24PsYMXSDl7QZ7CgI1UQWfjaNe-sJRc"),
    ("cpu_usage_minute.zip", PRIVATE, "CPU usage per minute", "1K0zaP6rGi-eaH2yJvPAhEo6zNBOC-TwK"),
    ("memory_usage_minute.zip", PRIVATE, "Memory usage per minute", "1S7TnHspI4FnR5ed1eIEJWl6nlqyNw73b"),
    ("cpu_limit_minute.zip", PRIVATE, "CPU limit per minute", "1OX2zfHJ79ACfwrzUgBoX78r4zv7uoVmN"),
    ("memory_limit_minute.zip", PRIVATE, "Memory limit per minute", "1COvoR8VwQnwxstOHuJj_YjlSaMv_jDLT"),
    ("instances_minute.zip", PRIVATE, "Instances per minute", "15_YwzY7lcUnfytof9D6mY7TAJAdhOfDH"),
    ("public_dataset.zip", PUBLIC, "Requests per minute", "1RfkSxt9TddpOHiybEJFwUXfWqpsJyqSK"),
)

SOURCES = (
    Source(
        id="huawei-2023",
        title="Huawei serverless traces 2023: Private (200 functions, 141 days) and Public (5,093 functions, 26 days)",
        tables=("function_invocations", "function_metrics"),
        files=tuple(google_drive_file(name, file_id, page=page, link=link)
                    for name, page, link, file_id in DRIVE_FILES),
        licence="CC-BY-4.0",
        citation=(
            "Joosen, Hassan, Asenov, Singh, Darlow, Wang, Barker. How Does It Function? Characterizing "
            "Long-term Trends in Production Serverless Workloads. ACM SoCC 2023. doi:10.1145/3620678.3624783"
        ),
        paper="https://arxiv.org/abs/2312.10127",
        homepage=README,
        description=(
            "Per-minute (and per-second for requests and delays) requests, function and platform delay, "
            "CPU/memory usage (fractions of the limit), limits and instances per function."
        ),
        notes=(
            "Since 2025-11-20 the README links every zip on Google Drive only (before: Huawei OBS, "
            f"{OBS}/...): download them by hand and ingest with --from DIR.",
            "No sizes or hashes are published; a download from a WATTLAS_MIRROR records them.",
        ),
    ),
)

_METRIC = re.compile(
    r"^(?P<metric>requests|function_delay|platform_delay|cpu_usage|memory_usage|cpu_limit|memory_limit|instances)"
    r"_(?P<bin>minute|second)$"
)
_DAY = re.compile(r"^day_(\d+)\.csv$")
_ZIP = re.compile(r"^(?:(?:requests|function_delay|platform_delay|cpu_usage|memory_usage|cpu_limit|memory_limit"
                  r"|instances)_(?:minute|second)|public_dataset|private_dataset)\.zip$")
_INDEX = ("", "Unnamed: 0")
# Units: usage is a 0-1 fraction of the limit (the README's "percentage" notwithstanding); delays: not stated.
UNITS = {"function_delay": None, "platform_delay": None, "cpu_usage": "fraction", "memory_usage": "fraction",
         "cpu_limit": "cores", "memory_limit": "MB", "instances": "count"}


def accepts(source_id: str, path: Path | PurePosixPath) -> bool:
    if _ZIP.match(path.name):
        return True
    return bool(_DAY.match(path.name)) and _metric_folder(PurePosixPath(str(path))) is not None


def _metric_folder(logical: PurePosixPath) -> str | None:
    """The ``<metric>_<bin>`` name that says what a day file holds, or None.

    The member's own folder when it is a metric folder (the public zip:
    ``public_dataset/csv_files/requests_minute/day_00.csv``); else, for a file at the root of an
    archive, the archive's name (``cpu_limit_minute.zip`` -> ``cpu_limit_minute``): nothing
    public shows the layout of the private per-metric zips, so both are taken.
    """
    folder = logical.parent.name
    if _METRIC.match(folder):
        return folder
    stem = folder.removesuffix(".zip")
    if stem != folder and _METRIC.match(stem):
        return stem
    return None


def trace_of(logical: PurePosixPath) -> str:
    parts = logical.parts
    for p in reversed(parts):
        if p in ("private_dataset", "public_dataset.zip", "public_dataset"):
            return "private" if p == "private_dataset" else "public"
    # File names: 3-digit days in Huawei Private (day_000), 2-digit in Huawei Public (day_00).
    m = _DAY.match(logical.name)
    return "private" if m and len(m.group(1)) == 3 else "public"


def metric_of(logical: PurePosixPath, display: str) -> tuple[str, int]:
    folder = _metric_folder(logical)
    m = _METRIC.match(folder or "")
    if not m:
        raise InputFormatError(
            f"cannot tell the metric: the file must sit in its metric folder (requests_minute, "
            f"cpu_usage_minute, ...) or at the root of a zip named after it (cpu_usage_minute.zip), "
            f"not in {logical.parent.name!r}", file=display,
        )
    return m.group("metric"), 60 if m.group("bin") == "minute" else 1


def _display(logical: PurePosixPath) -> str:
    for i, part in enumerate(logical.parts):
        if part.endswith(".zip"):
            return f"{part}:{'/'.join(logical.parts[i + 1:])}"
    return "/".join(logical.parts[-2:])


def group(source_id: str, logical: PurePosixPath, path: Path) -> tuple[str, str]:
    # One key per trace and metric folder: 141 daily files become a few large Parquet parts.
    # Both zip layouts (folder inside, or files at the root) give the same key.
    return f"{trace_of(logical)}-{_metric_folder(logical) or logical.parent.name}", logical.name


def convert(source_id: str, path: Path, out_dir: Path, *, logical: PurePosixPath) -> dict[str, list[Path]]:
    display = _display(logical)
    metric, bin_s = metric_of(logical, display)
    trace = trace_of(logical)
    header = read_header_fields(path, display)
    skip = frozenset(header[:1]) if header[0] in _INDEX else frozenset()
    if [h for h in header if h not in skip][:2] != ["day", "time"]:
        raise InputFormatError(
            f"unexpected header starting {quote_input(','.join(header[:4]))}; expected day,time,0,1,...",
            file=display, line=1,
        )
    # Int columns in one file, floats (6.0) in another: read every number as float.
    long, _ = wide_frames(
        path, ids={"day": pl.Float64, "time": pl.Float64}, value_type=pl.Float64, header=header, skip=skip,
        keep=(lambda v: v.is_not_null() & v.is_not_nan() & (v != 0)) if metric == "requests"
        else (lambda v: v.is_not_null() & v.is_not_nan()),
    )
    common = {
        "trace": trace, "function_id": pl.col("_col"), "day_index": pl.col("day").cast(pl.Int32, strict=True),
        "time_s": pl.col("time").cast(pl.Int64, strict=True), "bin_s": bin_s,
    }
    if metric == "requests":
        table = "function_invocations"
        # A count must be whole: a fraction becomes null here and is reported below.
        lf = select_table(long, table, **common, invocations=pl.when(pl.col("_value") == pl.col("_value").floor())
                          .then(pl.col("_value")))
    else:
        table = "function_metrics"
        lf = select_table(long, table, **common, metric=metric, stat="value", value=pl.col("_value"),
                          unit=UNITS[metric])
    out = out_dir / f"{table}.parquet"
    types = {c: pl.Float64 for c in header if c not in skip}
    try:
        lf.sink_parquet(out, **sink_options())
    except (pl.exceptions.PolarsError, OSError) as e:
        out.unlink(missing_ok=True)
        raise write_failure(e, out, display) or locate_bad_cell(path, types, display) or InputFormatError(
            f"could not be read as a Huawei 2023 {metric} file: {str(e).strip().splitlines()[0]}", file=display
        ) from e
    if table == "function_invocations":
        _check_whole(path, out, display, header, skip)
    check_bounds(out, table, display)
    return {table: [out]}


def _check_whole(path: Path, out: Path, display: str, header: list[str], skip: frozenset[str]) -> None:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(out).metadata
    idx = [meta.schema.column(i).name for i in range(meta.num_columns)].index("invocations")
    nulls = sum(meta.row_group(g).column(idx).statistics.null_count for g in range(meta.num_row_groups))
    if not nulls:
        return
    out.unlink()
    values = [c for c in header if c not in skip and c not in ("day", "time")]
    raw = pl.scan_csv(path, schema={c: pl.String if c in skip else pl.Float64 for c in header})
    hit = (
        raw.with_row_index("_row")
        .filter(pl.any_horizontal([pl.col(c) != pl.col(c).floor() for c in values]))
        .head(1).collect().row(0, named=True)
    )
    col = next(c for c in values if hit[c] is not None and hit[c] != int(hit[c]))
    raise InputFormatError(f"{hit[col]!r} is not a whole number of requests", file=display,
                           line=hit["_row"] + 2, column=col)
