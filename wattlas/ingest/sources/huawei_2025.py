"""Huawei public cloud serverless traces 2025 (Serverless Cold Starts and Where to Find Them).

Per-region zips of four kinds of CSV, told apart by their header (the zips' own names are not
unique: ``cold_start/R1.zip`` and ``quantiles/R1.zip``): cold start events -> ``cold_starts``;
per-request tables of day 30 -> ``function_events``; per-minute time series with one column per
``funcID`` in ``<metric>[_<stat>]`` folders -> ``function_metrics`` (empty cell = no activity, not
stored); the Region 2 runtime/trigger table -> ``functions``. The region (``R1``..``R5``) comes
from the folder or zip name. Units are the release's (s, cores, MB), not the paper's Table 1.
Times are seconds since 00:00 of day 0; no calendar date is published.

A leading unnamed index column (as pandas writes) is accepted and ignored.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import polars as pl

from ...errors import InputFormatError, quote_input
from ...schemas import get_table
from ..csvread import FLOAT, INT, STR, CsvLayout, convert_csv, matching, write_failure
from ..parts import cast_table, null_columns, sink_table
from ..registry import Source, google_drive_file
from ..wide import locate_bad_cell, read_header_fields, wide_frames

README = "https://github.com/sir-lab/data-release/blob/main/README_data_release_2025.md"
#: Until 2025-11-20 the README linked Huawei OBS: <OBS>/<kind>/R1.zip, <OBS>/per_request/R1/R1_00000_00009.zip.
OBS = "https://sir-dataset.obs.cn-east-3.myhuaweicloud.com/datasets/cold_start_dataset"
RUNTIME_FILE = "df_funcID_runtime_triggerType.csv"
#: Sections of the README that link the files (GitHub's anchors of its headings).
COLD_STARTS = f"{README}#huawei-public-cold-starts"
REQUESTS = f"{README}#huawei-public-request-tables"
RUNTIMES = f"{README}#huawei-public-trigger-types-and-runtime-languages-2025"
TIME_SERIES = f"{README}#huawei-public-time-series-2025"
#: (local name, README section, link text there, Google Drive file id), in the README's order at
#: sir-lab/data-release 84a9d77. Local names are its former OBS paths made unique (`cold_start/R1.zip`,
#: `quantiles/R1.zip` -> `cold_start-R1.zip`, `quantiles-R1.zip`). Checked against
#: tests/fixtures/serverless/sir_lab_readme_*.tsv.
DRIVE_FILES = (
    ("cold_start-R1.zip", COLD_STARTS, "Region 1 cold starts", "1mMQtfZNtg-EPmGmGYuOzC5KPbZoXRd8e"),
    ("cold_start-R2.zip", COLD_STARTS, "Region 2 cold starts", "1qjnBBH_yEOnxAG5vFPQwx6xyITZrrP8L"),
    ("cold_start-R3.zip", COLD_STARTS, "Region 3 cold starts", "1WlUk-tQLao6mU0FoMx9YO2-HIMevEDjX"),
    ("cold_start-R4.zip", COLD_STARTS, "Region 4 cold starts", "1YywoClXTZ1Q0jKfB2Y3Hgu0xh0lrDoBZ"),
    ("cold_start-R5.zip", COLD_STARTS, "Region 5 cold starts", "1ah7nj5fyedMpOeaFgNVA7oMx3815D8BZ"),
    ("per_request-R1_00000_00009.zip", REQUESTS, "Region 1 part 1", "1o0xBCshTLnposeLmEzyoWn4xiqRERsmS"),
    ("per_request-R1_00010_00019.zip", REQUESTS, "Region 1 part 2", "101CKU4xeJWlmzxWc96RHs4llstnGnKSm"),
    ("per_request-R1_00020_00029.zip", REQUESTS, "Region 1 part 3", "16fNuon4FMD2QNq5S0egYWKxjkzp5lgGb"),
    ("per_request-R1_00030_00039.zip", REQUESTS, "Region 1 part 4", "1h-e9P2pEf9NUjv99YZLxN3ZWtwQ1rjuP"),
    ("per_request-R1_00040_00049.zip", REQUESTS, "Region 1 part 5", "1n4xMD5Z1EmL0ALU6D9JNZz3XGaHqtNCT"),
    ("per_request-R1_00050_00059.zip", REQUESTS, "Region 1 part 6", "1zn7aHFOppEltS76jHDNWWcol5zKwjDrc"),
    ("per_request-R1_00060_00069.zip", REQUESTS, "Region 1 part 7", "16_usg9vZpoQjzUa92RZqdZkQD05YKD5E"),
    ("per_request-R1_00070_00079.zip", REQUESTS, "Region 1 part 8", "1Ujo--ZO-jaF6lY9kMTmW8SPoOHh-8_NN"),
    ("per_request-R1_00080_00089.zip", REQUESTS, "Region 1 part 9", "1oSN7QEopQZVUNbf0wSI19Gofz-FijfQ1"),
    ("per_request-R1_00090_00099.zip", REQUESTS, "Region 1 part 10", "1_kAOnjD4X4ZXPAtfe3k6MOT71a4Vv953"),
    ("per_request-R1_00100_00109.zip", REQUESTS, "Region 1 part 11", "16DN7Kfw901_7BsT1SGf_schmDDXKCGBl"),
    ("per_request-R1_00110_00119.zip", REQUESTS, "Region 1 part 12", "1tlyXZ8YrzN3hFnZ3sZm3IxFsIlnyRFNI"),
    ("per_request-R1_00120_00129.zip", REQUESTS, "Region 1 part 13", "1eNdNmlI8764bNlMbo4_2ImlbJO52DWHg"),
    ("per_request-R1_00130_00139.zip", REQUESTS, "Region 1 part 14", "1zAQSWkd69GzGkxaG6Z4go0d72oeUKZZz"),
    ("per_request-R1_00140_00149.zip", REQUESTS, "Region 1 part 15", "1UhOBGYkntbPcLlEB3SPfLrn3aCkuqrrr"),
    ("per_request-R1_00150_00159.zip", REQUESTS, "Region 1 part 16", "1n0gNdAuFgJHQWtR30uSEU28Ccl_TYBP8"),
    ("per_request-R1_00160_00169.zip", REQUESTS, "Region 1 part 17", "1mJHff0ZaErn4qK0q9aHrfme9QhzU9352"),
    ("per_request-R1_00170_00179.zip", REQUESTS, "Region 1 part 18", "135Sn5elbnDZxtxplKSlobolDUO7aOhK1"),
    ("per_request-R1_00180_00189.zip", REQUESTS, "Region 1 part 19", "17BVGWjJaZvrZkMpqiRRgMLmPxfR_UQVH"),
    ("per_request-R1_00190_00199.zip", REQUESTS, "Region 1 part 20", "1GPC8s9TvhLEFbm09pPnJacxqN2vhSEeC"),
    ("per_request-R2_00000_00019.zip", REQUESTS, "Region 2 part 1", "1clZwg5z6vAIF38K3NSkAxuzASsa5GN4B"),
    ("per_request-R2_00020_00039.zip", REQUESTS, "Region 2 part 2", "1S-MpmXdRSxiADKMXKlDnVdHM5Hlw2cKv"),
    ("per_request-R2_00040_00059.zip", REQUESTS, "Region 2 part 3", "1o4_KES_thVoC-P98uneeVbGrQH1G3VqM"),
    ("per_request-R2_00060_00079.zip", REQUESTS, "Region 2 part 4", "1jcFk5XBhmkwiz9EH8c69WW0BGDJ1UFeQ"),
    ("per_request-R2_00080_00099.zip", REQUESTS, "Region 2 part 5", "1PqeJp9DrpkD3UHHbvizPOCfNGptpRgBI"),
    ("per_request-R2_00100_00119.zip", REQUESTS, "Region 2 part 6", "1eT9n9yQZUeKFAyIblS0ks1XqQ_g2OJZl"),
    ("per_request-R2_00120_00139.zip", REQUESTS, "Region 2 part 7", "1SG7tHcuflIE-EE8AoAp99aMVqEF0vJL8"),
    ("per_request-R2_00140_00159.zip", REQUESTS, "Region 2 part 8", "1mCFakKPn8crcNrzFjmBttIJY7-TW3c3r"),
    ("per_request-R2_00160_00179.zip", REQUESTS, "Region 2 part 9", "1lW4N3SrN_z5BgjkHjU2QtDolROs8YhP5"),
    ("per_request-R2_00180_00199.zip", REQUESTS, "Region 2 part 10", "1TBD_1GysKZyGUaFll0qUz5FPR1gVjX0B"),
    ("per_request-R3_00000_00039.zip", REQUESTS, "Region 3 part 1", "1MxtVaHCpIdKIVk9Rz-0ySBoscXrziuP2"),
    ("per_request-R3_00040_00079.zip", REQUESTS, "Region 3 part 2", "1w4Zrwp_8L60TgqreBi6p0pr_sp2QmBJ2"),
    ("per_request-R3_00080_00119.zip", REQUESTS, "Region 3 part 3", "1KoHz5IGQuLkjtUKUlm_xAOk-wmVot6vV"),
    ("per_request-R3_00120_00159.zip", REQUESTS, "Region 3 part 4", "1ll08z7HqaHNuyjiwbeVcS3pqKOg_0naD"),
    ("per_request-R3_00160_00199.zip", REQUESTS, "Region 3 part 5", "1dgMkKTLOEDigx7-HAHdOuIF5P9d2FZon"),
    ("per_request-R4_00000_00099.zip", REQUESTS, "Region 4 part 1", "195kYupynaq2wAz2LIDFBYLX11QXx-Yuw"),
    ("per_request-R4_00100_00199.zip", REQUESTS, "Region 4 part 2", "1uGoaXPEvOoCehVgHt-3cIX_QMc5qKBJ6"),
    ("per_request-R5.zip", REQUESTS, "Region 5", "102AFIHkEQHuvG8-hZeWHVFqXeeI-a8xS"),
    (RUNTIME_FILE, RUNTIMES, "Region 2 runtimes and trigger types", "1dUg_yxeLR5OyldivPZGW5djYF31166EG"),
    ("quantiles-R1.zip", TIME_SERIES, "Region 1 quantiles", "1XMSCDTRSEhJRSHA2gLuRM_WEYuuXVyWJ"),
    ("quantiles-R2.zip", TIME_SERIES, "Region 2 quantiles", "1iZk-n_5IT7j3M_pHpRzhwSPTuJ2vxvlR"),
    ("quantiles-R3.zip", TIME_SERIES, "Region 3 quantiles", "1xDPmacasZqVB_lM5UwJSiRKRNjg-ImvD"),
    ("quantiles-R4.zip", TIME_SERIES, "Region 4 quantiles", "1KNDZ1rHEvcfdp92xklmJFlLUPxFbQ75N"),
    ("quantiles-R5.zip", TIME_SERIES, "Region 5 quantiles", "1BxLz8ETUHZXbxr8PkDRFDwnBjLtCfidR"),
)

SOURCES = (
    Source(
        id="huawei-2025",
        title="Huawei public cloud serverless traces 2025: cold starts, requests, per-minute metrics (5 regions)",
        tables=("cold_starts", "function_events", "function_metrics", "functions"),
        files=tuple(google_drive_file(name, file_id, page=page, link=link)
                    for name, page, link, file_id in DRIVE_FILES),
        licence="CC-BY-4.0",
        citation=(
            "Joosen, Hassan, Asenov, Singh, Darlow, Wang, Deng, Barker. Serverless Cold Starts and "
            "Where to Find Them. EuroSys 2025. doi:10.1145/3689031.3696073"
        ),
        paper="https://arxiv.org/abs/2410.06145",
        homepage=README,
        description=(
            "11.9M cold start events (31 days, 5 regions) with their components; per-request worker and "
            "frontend timings of day 30 (5 regions; R1: the top 100 pods per function, R3: a subsample); "
            "per-minute per-function request counts, pods, cold starts and quantiles of every timing; "
            "runtime and trigger type per function (R2)."
        ),
        notes=(
            "Files are renamed locally (`cold_start-R1.zip`, `quantiles-R1.zip`, `per_request-...zip`) "
            "because the originals share names.",
            "Since 2025-11-20 the README links every file on Google Drive only (before: Huawei OBS, "
            f"{OBS}/...): download them by hand and ingest with --from DIR.",
            "No sizes or hashes are published; a download from a WATTLAS_MIRROR records them.",
        ),
    ),
)

KINDS = ("cold_start", "per_request", "quantiles", "runtime_triggerType")
_REGION = re.compile(r"(?:^|[-_])(R\d+)(?=[-_.]|$)")
_ZIP = re.compile(r"^(?:(?:cold_start|quantiles|per_request)-)?R\d+(?:_\d+_\d+)?\.zip$")
_INDEX = ("", "Unnamed: 0")
SUM_METRICS = ("requests", "num_pods", "num_cold_starts")
_STAT = re.compile(r"^(?P<metric>.+)_(?P<stat>quantile_\d{3}|avg|std)$")

# Pod ids encode the pool: pool22-300-128-0006319574 = pool 22, 300 millicores, 128 MB, serial.
_POD = r"^(?P<pool>[A-Za-z]+\d*-(?P<cpu>\d+)-(?P<mem>\d+))-\S+$"
POD = matching(_POD, "a pod id like pool22-300-128-0006319574")
FUNC_ID = matching(r"^[^,]+---[^,]+---[A-Za-z]+\d*-\d+-\d+$", "a funcID like 400---418---pool22-300-128")


def _pool_columns(pod: str) -> dict[str, pl.Expr]:
    return {
        "pool": pl.col(pod).str.extract(_POD, 1),
        "cpu_limit_millicores": pl.col(pod).str.extract(_POD, 2).cast(pl.Int32),
        "memory_limit_mb": pl.col(pod).str.extract(_POD, 3).cast(pl.Int32),
    }


def _function_id(name: str, user: str) -> pl.Expr:
    return pl.concat_str([pl.col(name), pl.col(user), pl.col("pool")], separator="---")


COLD_START = CsvLayout(
    name="Huawei 2025 cold starts",
    header=("day", "time", "clusterName", "funcName", "userID", "requestID", "totalCost_cold_start",
            "podAllocationCost", "deployCodeCost", "deployDependencyCost", "schedulingCost", "podID"),
    raw_types={"day": INT, "time": FLOAT, "clusterName": INT, "funcName": STR, "userID": STR, "requestID": STR,
               "totalCost_cold_start": FLOAT, "podAllocationCost": FLOAT, "deployCodeCost": FLOAT,
               "deployDependencyCost": FLOAT, "schedulingCost": FLOAT, "podID": POD},
    columns={"day_index": "day", "time_s": "time", "cluster": "clusterName", "function_name": "funcName",
             "owner_id": "userID", "request_id": "requestID", "cold_start_s": "totalCost_cold_start",
             "pod_allocation_s": "podAllocationCost", "deploy_code_s": "deployCodeCost",
             "deploy_dependency_s": "deployDependencyCost", "scheduling_s": "schedulingCost", "pod_id": "podID"},
    nullable=frozenset({"clusterName", "requestID", "podAllocationCost", "deployCodeCost",
                        "deployDependencyCost", "schedulingCost"}),
    derive=lambda lf: cast_table(
        lf.with_columns(**_pool_columns("pod_id")).with_columns(function_id=_function_id("function_name", "owner_id")),
        "cold_starts",
    ),
)

_FRONTEND = ("time_frontend", "totalCost_frontend", "frontendCost", "busCost", "readBodyCost", "writeRspCost",
             "requestBodySize")
PER_REQUEST = CsvLayout(
    name="Huawei 2025 per-request table",
    header=("time_worker", "time_frontend", "requestID", "clusterName", "funcName", "podID", "userID",
            "totalCost_worker", "workerCost", "runtimeCost", "totalCost_frontend", "frontendCost", "busCost",
            "readBodyCost", "writeRspCost", "cpu_usage", "memory_usage", "requestBodySize"),
    raw_types={"time_worker": FLOAT, "time_frontend": FLOAT, "requestID": STR, "clusterName": INT, "funcName": STR,
               "podID": POD, "userID": STR, "totalCost_worker": FLOAT, "workerCost": FLOAT, "runtimeCost": FLOAT,
               "totalCost_frontend": FLOAT, "frontendCost": FLOAT, "busCost": FLOAT, "readBodyCost": FLOAT,
               "writeRspCost": FLOAT, "cpu_usage": FLOAT, "memory_usage": FLOAT, "requestBodySize": FLOAT},
    columns={"end_s": "time_worker", "frontend_end_s": "time_frontend", "request_id": "requestID",
             "cluster": "clusterName", "function_name": "funcName", "pod_id": "podID", "owner_id": "userID",
             "duration_s": "totalCost_worker", "worker_cost_s": "workerCost", "runtime_cost_s": "runtimeCost",
             "frontend_total_s": "totalCost_frontend", "frontend_cost_s": "frontendCost",
             "bus_cost_s": "busCost", "read_body_cost_s": "readBodyCost", "write_rsp_cost_s": "writeRspCost",
             "cpu_usage_cores": "cpu_usage", "memory_usage_mb": "memory_usage",
             "request_body_bytes": "requestBodySize"},
    # The frontend record can be missing (empty time_frontend and frontend costs).
    nullable=frozenset({*_FRONTEND, "requestID", "clusterName", "workerCost", "runtimeCost", "totalCost_worker",
                        "cpu_usage", "memory_usage"}),
    # Both times are completion times (see the function_events notes): starts are end - duration.
    derive=lambda lf: cast_table(
        lf.with_columns(
            **_pool_columns("pod_id"),
            start_s=pl.col("end_s") - pl.col("duration_s"),
            frontend_start_s=pl.col("frontend_end_s") - pl.col("frontend_total_s"),
        ).with_columns(function_id=_function_id("function_name", "owner_id")),
        "function_events",
    ),
)

RUNTIME = CsvLayout(
    name="Huawei 2025 runtime/trigger table",
    header=("funcID", "cpu_request", "runtime", "triggerType-invocationType"),
    raw_types={"funcID": FUNC_ID, "cpu_request": INT, "runtime": STR, "triggerType-invocationType": STR},
    columns={"function_id": "funcID", "cpu_request_millicores": "cpu_request", "runtime": "runtime",
             "_trigger": "triggerType-invocationType"},
    nullable=frozenset({"cpu_request", "runtime", "triggerType-invocationType"}),
    derive=lambda lf: cast_table(
        lf.with_columns(
            function_name=pl.col("function_id").str.split("---").list.get(0),
            owner_id=pl.col("function_id").str.split("---").list.get(1),
            _pod=pl.col("function_id").str.split("---").list.get(2) + "-0",
            trigger=pl.col("_trigger").str.extract(r"^(.*)-[^-]*$", 1).fill_null(pl.col("_trigger")),
            invocation_type=pl.col("_trigger").str.extract(r"-([^-]*)$", 1),
        ).with_columns(**_pool_columns("_pod")),
        "functions",
    ),
)

# Units of the quantile metrics, from the release README.
_UNITS = {"requests": "count", "num_pods": "count", "num_cold_starts": "count", "cpu_usage": "cores",
          "memory_usage": "MB", "requestBodySize": "bytes"}


def _with_index(layout: CsvLayout) -> CsvLayout:
    return CsvLayout(
        name=f"{layout.name} (with a leading index column)", header=("", *layout.header),
        raw_types={"": STR, **layout.raw_types}, columns=layout.columns, nullable=layout.nullable | {""},
        derive=layout.derive,
    )


LAYOUTS = {
    "cold_start": ("cold_starts", [COLD_START, _with_index(COLD_START)]),
    "per_request": ("function_events", [PER_REQUEST, _with_index(PER_REQUEST)]),
    "runtime_triggerType": ("functions", [RUNTIME, _with_index(RUNTIME)]),
}


# ------------------------------------------------------------------ classification
def accepts(source_id: str, path: Path | PurePosixPath) -> bool:
    name = path.name
    if _ZIP.match(name) or name == RUNTIME_FILE:
        return True
    parts = PurePosixPath(str(path)).parts
    # Inside an archive, or below one of the release's folders.
    return name.endswith(".csv") and (
        any(p.endswith(".zip") for p in parts[:-1]) or any(k in parts for k in KINDS)
    )


def kind_of(header: list[str], display: str) -> str:
    h = header[1:] if header and header[0] in _INDEX else header
    if h[:3] == ["day", "time", "clusterName"]:
        return "cold_start"
    if h[:1] == ["time_worker"]:
        return "per_request"
    if h[:1] == ["funcID"]:
        return "runtime_triggerType"
    if h[:2] == ["day", "time"]:
        return "quantiles"
    raise InputFormatError(
        f"unexpected header starting {quote_input(','.join(header[:4]))}: not a Huawei 2025 cold start, per-request, "
        "time series (day,time,<funcID>...) or runtime/trigger file", file=display, line=1,
    )


def region_of(logical: PurePosixPath, kind: str, display: str) -> str:
    for part in reversed(logical.parts):
        m = _REGION.search(part)
        if m:
            return m.group(1)
    if kind == "runtime_triggerType":
        return "R2"  # the release publishes this table for Region 2 only
    raise InputFormatError(
        "cannot tell the region: keep the R1..R5 folder or zip name (e.g. cold_start/R1/, quantiles-R2.zip)",
        file=display,
    )


def metric_of(logical: PurePosixPath, display: str) -> tuple[str, str]:
    folder = logical.parent.name
    if folder in SUM_METRICS:
        return folder, "sum"
    m = _STAT.match(folder)
    if not m:
        raise InputFormatError(
            f"cannot tell the metric of a time series file in folder {folder!r}: the release keeps each in "
            "a <metric>[_<stat>] folder (requests, num_pods, totalCost_quantile_050, cpu_usage_avg, ...)",
            file=display,
        )
    return m.group("metric"), m.group("stat")


def _display(logical: PurePosixPath) -> str:
    # Archive member: <zip name>:<member path>; plain file: the last three path parts.
    for i, part in enumerate(logical.parts):
        if part.endswith(".zip"):
            return f"{part}:{'/'.join(logical.parts[i + 1:])}"
    return "/".join(logical.parts[-3:])


def _path_kind(logical: PurePosixPath) -> str | None:
    """The kind a release folder (`cold_start/`, `quantiles/`, ...) or zip name says, if any."""
    for part in reversed(logical.parts[:-1]):
        for kind in KINDS:
            if part == kind or (part.startswith(f"{kind}-") and part.endswith(".zip")):
                return kind
    return None


def group(source_id: str, logical: PurePosixPath, path: Path) -> tuple[str, str]:
    display = _display(logical)
    # The folder names the kind without opening the file (26k time series files per release).
    kind = _path_kind(logical) or kind_of(read_header_fields(path, display, allow_empty=True), display)
    region = region_of(logical, kind, display)
    if kind == "quantiles":
        # Thousands of small daily files per region: one key, one name per metric folder and day.
        return f"quantiles-{region}", f"{logical.parent.name}/{logical.name}"
    if kind == "per_request":
        return f"per_request-{region}-{logical.name}", logical.name
    if kind == "cold_start":
        return f"cold_start-{region}", logical.name
    return "runtime_triggerType", logical.name


# ------------------------------------------------------------------ conversion
def convert(source_id: str, path: Path, out_dir: Path, *, logical: PurePosixPath) -> dict[str, list[Path]]:
    display = _display(logical)
    header = read_header_fields(path, display)
    kind = kind_of(header, display)
    said = _path_kind(logical)
    if said is not None and said != kind:
        raise InputFormatError(
            f"the file sits in a {said} folder or zip but has the header of a {kind} file", file=display, line=1
        )
    region = region_of(logical, kind, display)
    if kind == "quantiles":
        return _quantiles(path, out_dir, display, header, region, *metric_of(logical, display))
    table, layouts = LAYOUTS[kind]
    out = out_dir / f"{table}.parquet"
    cols = get_table(table).column_names
    have = set(layouts[0].columns) | {"pool", "cpu_limit_millicores", "memory_limit_mb", "function_id",
                                       "function_name", "owner_id", "trigger", "invocation_type",
                                       "start_s", "frontend_start_s"}
    extra = {**null_columns(table, have=have | {"trace"}), "trace": pl.lit(region)}
    convert_csv(path, layouts, out, display=display, extra=extra, select=cols, row_index=None, table=table)
    return {table: [out]}


def _quantiles(
    path: Path, out_dir: Path, display: str, header: list[str], region: str, metric: str, stat: str
) -> dict[str, list[Path]]:
    skip = frozenset(header[:1]) if header[0] in _INDEX else frozenset()
    # Integers in the notebooks, but pandas writes them as 0.0 once a NaN is near: read as numbers.
    ids = {"day": pl.Float64, "time": pl.Float64}
    long, _ = wide_frames(
        path, ids=ids, value_type=pl.Float64, header=header, skip=skip,
        # Empty cell = no activity in that minute: not stored.
        keep=lambda v: v.is_not_null() & v.is_not_nan(),
    )
    out = out_dir / "function_metrics.parquet"
    unit = _UNITS.get(metric, "s")
    try:
        sink_table(
            long, "function_metrics", out, trace=region, function_id=pl.col("_col"),
            day_index=pl.col("day").cast(pl.Int32, strict=True),
            time_s=pl.col("time").cast(pl.Int64, strict=True), bin_s=60, metric=metric, stat=stat,
            value=pl.col("_value"), unit=unit, display=display,
        )
    except (pl.exceptions.PolarsError, OSError) as e:
        out.unlink(missing_ok=True)
        types = {c: pl.Float64 for c in header if c not in skip}
        raise write_failure(e, out, display) or locate_bad_cell(path, types, display) or InputFormatError(
            f"could not be read as a time series file: {str(e).strip().splitlines()[0]}", file=display
        ) from e
    return {"function_metrics": [out]}
