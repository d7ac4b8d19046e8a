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
from ..registry import Source, SourceFile
from ..wide import locate_bad_cell, read_header_fields, wide_frames

OBS = "https://sir-dataset.obs.cn-east-3.myhuaweicloud.com/datasets/cold_start_dataset"
_PER_REQUEST = {
    "R1": [f"R1_{i:05d}_{i + 9:05d}" for i in range(0, 200, 10)],
    "R2": [f"R2_{i:05d}_{i + 19:05d}" for i in range(0, 200, 20)],
    "R4": ["R4_00000_00099", "R4_00100_00199"],
    "R5": ["R5"],
}
RUNTIME_FILE = "df_funcID_runtime_triggerType.csv"

SOURCES = (
    Source(
        id="huawei-2025",
        title="Huawei public cloud serverless traces 2025: cold starts, requests, per-minute metrics (5 regions)",
        tables=("cold_starts", "function_events", "function_metrics", "functions"),
        files=(
            *(SourceFile(f"cold_start-R{r}.zip", f"{OBS}/cold_start/R{r}.zip") for r in range(1, 6)),
            *(SourceFile(f"per_request-{p}.zip", f"{OBS}/per_request/{reg}/{p}.zip")
              for reg, ps in _PER_REQUEST.items() for p in ps),
            *(SourceFile(f"quantiles-R{r}.zip", f"{OBS}/quantiles/R{r}.zip") for r in range(1, 6)),
            SourceFile(RUNTIME_FILE, f"{OBS}/runtime_triggerType/{RUNTIME_FILE}"),
        ),
        licence="CC-BY-4.0",
        citation=(
            "Joosen, Hassan, Asenov, Singh, Darlow, Wang, Deng, Barker. Serverless Cold Starts and "
            "Where to Find Them. EuroSys 2025. doi:10.1145/3689031.3696073"
        ),
        paper="https://arxiv.org/abs/2410.06145",
        homepage="https://github.com/sir-lab/data-release/blob/main/README_data_release_2025.md",
        description=(
            "11.9M cold start events (31 days, 5 regions) with their components; per-request worker and "
            "frontend timings of day 30 (R1, R2, R4, R5); per-minute per-function request counts, pods, "
            "cold starts and quantiles of every timing; runtime and trigger type per function (R2)."
        ),
        notes=(
            "Files are renamed locally (`cold_start-R1.zip`, `quantiles-R1.zip`, `per_request-...zip`) "
            "because the originals share names; the README also links the same zips on Google Drive.",
            "No sizes or hashes are published; they are recorded on first download.",
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
