"""Serverless (FaaS) traces: Azure Functions 2019/2021, Huawei cold starts 2025, Huawei 2023.

Function identity is (source, ``trace``, ``owner_id``, ``app_id``, ``function_id``) with the
parts a source lacks left null. Times are seconds from each source's own origin (no calendar
date is published for any of these traces): Azure 2019 ``time_s`` counts from 00:00 of day file
``d01``; Azure 2021 from the (shifted) trace start; Huawei from 00:00 of day 0.
"""

from ._base import Column, TableSchema

TRACE = Column(
    "trace", "string",
    "Trace within the source: Huawei 2025 region `R1`..`R5`; Huawei 2023 `private` or `public`; "
    "`all` for the Azure traces (one trace each)",
    required=True,
)
OWNER = Column(
    "owner_id", "string",
    "Owner of the function: Azure 2019 `HashOwner` (HMAC-SHA256 hex); Huawei 2025 `userID`; null elsewhere",
)
APP = Column("app_id", "string", "Application: Azure 2019 `HashApp`, Azure 2021 `app` (hex hashes); null elsewhere")
FUNCTION = Column(
    "function_id", "string",
    "Function: Azure `HashFunction`/`func` (unique only within its app); Huawei 2025 `funcID` = "
    "`funcName---userID---poolName`; Huawei 2023 the column name (`0`..`199` private, `0`..`5092` public)",
    required=True,
)
DAY = Column(
    "day_index", "int32",
    "Day as the source numbers it: Azure 2019 `NN` of the day file `dNN` (1 = first day; d01 is "
    "2019-07-15 by inference only); Huawei `day` (0 = first day)",
    required=True,
    min=0,
)

FUNCTIONS = TableSchema(
    name="functions",
    description=(
        "One row per function with whatever static metadata the source publishes: trigger, runtime, "
        "CPU and memory configuration."
    ),
    columns=(
        TRACE, OWNER, APP, FUNCTION,
        Column("function_name", "string", "Huawei 2025 `funcName` (not unique on its own); null elsewhere"),
        Column(
            "trigger", "string",
            "Trigger type: Azure 2019 `Trigger` (`http`, `timer`, `event`, `queue`, `storage`, "
            "`orchestration`, `others`); Huawei 2025 the part of `triggerType-invocationType` before the last `-`",
        ),
        Column(
            "invocation_type", "string",
            "Huawei 2025: `S` (synchronous), `A` (asynchronous) or `unknown`, after the last `-` of "
            "`triggerType-invocationType`; null elsewhere",
        ),
        Column("runtime", "string", "Runtime language as given (`Python3`, `Node.js`, `Java`, ...); Huawei 2025 only"),
        Column("pool", "string", "Huawei 2025 pod pool (`pool22-300-128`), the third part of `funcID`"),
        Column("cpu_request_millicores", "int32", "CPU requested per pod (Huawei 2025 `cpu_request`)",
               unit="millicores", min=0),
        Column("cpu_limit_millicores", "int32", "CPU limit per pod, from the pool name", unit="millicores", min=0),
        Column("memory_limit_mb", "int32", "Memory limit per pod, from the pool name", unit="MB", min=0),
        Column(
            "first_day_index", "int32",
            "Azure 2019: first day file the function appears in (functions appear and disappear per day)",
            min=0,
        ),
        Column("last_day_index", "int32", "Azure 2019: last day file the function appears in", min=0),
    ),
    notes=(
        "Azure 2019: one row per (owner, app, function) over all ingested day files; `trigger` is the "
        "one of the first day it appears. Huawei 2025: the runtime/trigger table (Region 2 only). "
        "Azure 2021 and Huawei 2023 publish no per-function metadata.",
    ),
)

FUNCTION_INVOCATIONS = TableSchema(
    name="function_invocations",
    description=(
        "Invocation counts per function and time bin, unpivoted from the wide per-minute/per-second "
        "files. Only bins with at least one invocation are stored: a missing (function, bin) means zero "
        "invocations (Azure 2019: `0` or empty cell; Huawei 2023: empty cell = no activity)."
    ),
    columns=(
        TRACE, OWNER, APP, FUNCTION, DAY,
        Column(
            "time_s", "int64",
            "Start of the bin in seconds from the source origin: Azure 2019 (day_index - 1) * 86400 + "
            "(minute - 1) * 60 from 00:00 of d01; Huawei 2023 `time` (from 00:00 of day 0)",
            unit="s", required=True,
        ),
        Column("bin_s", "int32", "Bin width: 60 (per-minute files) or 1 (Huawei 2023 per-second)", unit="s",
               required=True, min=1),
        Column("invocations", "int64", "Invocations in the bin (Azure: completed in that minute); always > 0",
               unit="invocations", required=True, min=1),
    ),
    notes=(
        "Zero bins are not stored (the wide files are >85% zeros/empty): to get a dense series, "
        "left-join a generated range of bins and coalesce with 0.",
    ),
)

FUNCTION_DURATIONS = TableSchema(
    name="function_durations",
    description=(
        "Azure 2019 per-function, per-day execution time summary (`function_durations_percentiles`), "
        "converted from ms to s. Excludes cold start time. Percentiles are weighted percentiles of "
        "30-second averages, not of individual invocations."
    ),
    columns=(
        TRACE, OWNER, APP, FUNCTION, DAY,
        Column("avg_duration_s", "float64", "`Average` execution time over the day", unit="s", min=0),
        Column(
            "executions", "int64",
            "`Count`: executions behind the average (can differ from the summed invocation counts)",
            unit="invocations",
            min=0,
        ),
        Column("min_duration_s", "float64", "`Minimum` (null when the file leaves it empty)", unit="s", min=0),
        Column("max_duration_s", "float64", "`Maximum` (null when the file leaves it empty)", unit="s", min=0),
        *(
            Column(f"p{q}_duration_s", "float64", f"`percentile_Average_{q}`", unit="s", min=0)
            for q in (0, 1, 25, 50, 75, 99, 100)
        ),
    ),
    notes=(
        "The official analysis drops rows whose `Average`, `Minimum` or `Maximum` is 0 or missing "
        "(collection errors); wattlas keeps them, so filter the same way where it matters.",
    ),
)

APP_MEMORY = TableSchema(
    name="app_memory",
    description=(
        "Azure 2019 committed memory per application and day (`app_memory_percentiles`, days 1-12 "
        "only): 5-s samples averaged per minute, then weighted percentiles of those averages."
    ),
    columns=(
        TRACE, OWNER, APP, DAY,
        Column("sample_count", "int64", "`SampleCount`: samples behind the statistics", unit="samples", min=0),
        Column("avg_allocated_mb", "float64", "`AverageAllocatedMb`", unit="MB", min=0),
        *(
            Column(f"p{q}_allocated_mb", "float64", f"`AverageAllocatedMb_pct{q}`", unit="MB", min=0)
            for q in (1, 5, 25, 50, 75, 95, 99, 100)
        ),
    ),
)

FUNCTION_EVENTS = TableSchema(
    name="function_events",
    description=(
        "One row per function invocation (Azure 2021) or request (Huawei 2025 per-request tables, day 30)."
    ),
    columns=(
        TRACE, OWNER, APP, FUNCTION,
        Column(
            "start_s", "float64",
            "When the function began the invocation, seconds from the source origin: always `end_s - "
            "duration_s`, derived, since both sources publish end times. Azure 2021: `end_timestamp - "
            "duration` (negative for a few long invocations near 0); Huawei 2025: `time_worker - "
            "totalCost_worker`, the worker's start (null where `totalCost_worker` is empty)",
            unit="s",
        ),
        Column(
            "end_s", "float64",
            "When the function finished the invocation, seconds from the source origin, as published: "
            "Azure 2021 `end_timestamp`; Huawei 2025 `time_worker`, the worker's completion time (see the "
            "notes for the evidence)",
            unit="s", required=True,
        ),
        Column(
            "duration_s", "float64",
            "Execution time, `end_s - start_s`: Azure 2021 `duration` (seconds, although the repository "
            "README says ms); Huawei `totalCost_worker` (time in the function's worker pod)",
            unit="s",
            min=0,
        ),
        Column("request_id", "string", "Huawei `requestID` (hex hash)"),
        Column("cluster", "int32", "Huawei `clusterName` (1-4)", min=0),
        Column("pod_id", "string", "Huawei `podID` (`pool<k>-<cpu millicores>-<memory MB>-<serial>`)"),
        Column(
            "frontend_start_s", "float64",
            "Huawei: when the frontend received the request, `time_frontend - totalCost_frontend`; null "
            "when the frontend record is missing",
            unit="s",
        ),
        Column(
            "frontend_end_s", "float64",
            "Huawei `time_frontend`: when the frontend finished the request (a completion time, like "
            "`time_worker`); null when the frontend record is missing",
            unit="s",
        ),
        Column("worker_cost_s", "float64", "Huawei `workerCost`: time in the worker component", unit="s", min=0),
        Column("runtime_cost_s", "float64", "Huawei `runtimeCost`: time in the runtime", unit="s", min=0),
        Column("frontend_total_s", "float64", "Huawei `totalCost_frontend`: end-to-end time seen by the frontend",
               unit="s", min=0),
        Column("frontend_cost_s", "float64", "Huawei `frontendCost`", unit="s", min=0),
        Column("bus_cost_s", "float64", "Huawei `busCost`: time in busProxy", unit="s", min=0),
        Column("read_body_cost_s", "float64", "Huawei `readBodyCost`", unit="s", min=0),
        Column("write_rsp_cost_s", "float64", "Huawei `writeRspCost`", unit="s", min=0),
        Column("cpu_usage_cores", "float64", "Huawei `cpu_usage`: the pod's CPU use averaged over the request",
               unit="cores", min=0),
        Column("memory_usage_mb", "float64", "Huawei `memory_usage`: the pod's memory averaged over the request",
               unit="MB", min=0),
        Column("request_body_bytes", "float64", "Huawei `requestBodySize` (float because of missing values)",
               unit="bytes", min=0),
    ),
    notes=(
        "Every published time is an end time; starts are derived as end - duration. Azure 2021 documents "
        "`end_timestamp` as the invocation's end. The Huawei 2025 release does not say what `time_worker` "
        "and `time_frontend` are, but its data does: in every notebook row that has both, "
        "0 <= `time_frontend - time_worker` <= `totalCost_frontend - totalCost_worker` (R5 day 30: "
        "0.001 <= 0.001436, 0 <= 0.002994), i.e. the frontend's interval [`frontend_start_s`, "
        "`frontend_end_s`] contains the worker's [`start_s`, `end_s`], as it must when the frontend "
        "forwards the request to the worker and returns its reply. Read as start times, or as a worker "
        "start and a frontend end, the same rows break that nesting. Huawei times are given to the "
        "millisecond, so derived starts and the nesting hold to about 1 ms.",
        "Rows keep the file order. The Azure 2021 file is ordered by start time (`start_s`, end - "
        "duration), as both public samples are, not by `end_s`; the order of the Huawei files is not "
        "documented. Sort by `start_s` before computing inter-arrival gaps.",
    ),
)

COLD_STARTS = TableSchema(
    name="cold_starts",
    description="Huawei 2025 cold start events, one row per cold start (11.9 million over 5 regions, 31 days).",
    columns=(
        TRACE,
        Column("owner_id", "string", "`userID`", required=True),
        FUNCTION,
        Column("function_name", "string", "`funcName`", required=True),
        DAY,
        Column("time_s", "float64", "`time`: seconds since 00:00 of day 0 (ms precision)", unit="s", required=True),
        Column("cluster", "int32", "`clusterName` (1-4)", min=0),
        Column("request_id", "string", "`requestID` of the request that triggered the scale-out (one request "
               "can trigger several cold starts)"),
        Column("cold_start_s", "float64", "`totalCost_cold_start`: the cold start time (sum of the four parts)",
               unit="s", required=True, min=0),
        Column("pod_allocation_s", "float64", "`podAllocationCost`", unit="s", min=0),
        Column("deploy_code_s", "float64", "`deployCodeCost`", unit="s", min=0),
        Column("deploy_dependency_s", "float64", "`deployDependencyCost`", unit="s", min=0),
        Column("scheduling_s", "float64", "`schedulingCost`", unit="s", min=0),
        Column("pod_id", "string", "`podID`"),
        Column("pool", "string", "Pool name: the first three `-` fields of `podID`"),
        Column("cpu_limit_millicores", "int32", "CPU limit from the pool name", unit="millicores", min=0),
        Column("memory_limit_mb", "int32", "Memory limit from the pool name", unit="MB", min=0),
    ),
)

FUNCTION_METRICS = TableSchema(
    name="function_metrics",
    description=(
        "Per-function metric time series in long form: Huawei 2025 per-minute quantile files "
        "(`<metric>[_<stat>]` directories) and the Huawei 2023 metrics other than requests. Only "
        "non-empty cells are stored (an empty cell means no activity in that bin)."
    ),
    columns=(
        TRACE, FUNCTION, DAY,
        Column("time_s", "int64", "Start of the bin, seconds from 00:00 of day 0", unit="s", required=True),
        Column("bin_s", "int32", "Bin width: 60 or 1", unit="s", required=True, min=1),
        Column(
            "metric", "string",
            "Metric as the source names it: Huawei 2025 `requests`, `num_pods`, `num_cold_starts`, "
            "`totalCost`, `cpu_usage`, ...; Huawei 2023 `function_delay`, `platform_delay`, `cpu_usage`, "
            "`memory_usage`, `cpu_limit`, `memory_limit`, `instances`",
            required=True,
        ),
        Column(
            "stat", "string",
            "Statistic of the bin: `sum` (Huawei 2025 requests/num_pods/num_cold_starts), `quantile_000` .. "
            "`quantile_100`, `avg`, `std`; Huawei 2023 `value` (delays are per-bin means, see notes)",
            required=True,
        ),
        Column("value", "float64", "The value, in `unit`", required=True),
        Column(
            "unit", "string",
            "Unit of `value`: `s`, `cores`, `MB`, `bytes`, `count`, `fraction` (Huawei 2023 usage is a "
            "0-1 fraction of the limit, although its README says percentage); null where the source does "
            "not state it (Huawei 2023 delays)",
        ),
    ),
    notes=(
        "Huawei 2023 per-minute delays are means of the per-second values and usages are fractions "
        "of the limit: never sum them over bins; absolute cores = cpu_usage x cpu_limit (x instances "
        "for the whole function).",
    ),
)

TABLES = (
    FUNCTIONS, FUNCTION_INVOCATIONS, FUNCTION_DURATIONS, APP_MEMORY, FUNCTION_EVENTS, COLD_STARTS,
    FUNCTION_METRICS,
)
