"""MIT Supercloud Dataset (HPEC'21): Slurm jobs and GPU/CPU/node time series of a real cluster.

Files as published under ``datacenter-challenge/202201/``: the Slurm log (``slurm-log.csv``, or
``scheduler-log.csv`` / ``labelled-slurm-log.csv``), ``tres-mapping.txt``, ``labelled_jobids.csv``,
``node-data.csv``, ``cpu/NNNN/<job>-timeseries.csv`` and ``gpu/NNNN/<job>-r<rack>-n<node>.csv``.

* The Slurm log, the TRES mapping and the labels form one store key (``jobs``): a reduce step
  parses ``tres_alloc``/``tres_req`` as ``id=count`` pairs (never by substring: ``2=10010`` is
  memory, not GPU 1001) with the mapping's ids, and joins the labels into ``hpc_jobs``.
  ``nodelist`` (a Python list literal, ``['r9189566-n911952']``) is checked by a regex and split
  into ``node_names`` with string operations, never evaluated.
* The ~120k GPU files are read many per task (polars multi-file scans) and stored under one key
  per ``gpu/NNNN`` folder, so the store holds a few hundred Parquet files, not 120,000.
  nvidia-smi's non-numeric cells (``[N/A]``, ``[Not Supported]``, ...) become null and are
  counted in the ingest summary; any other non-numeric cell is an error naming file, line, column.
  A file without ``gpu_index`` (some real ones) is read as GPU 0 and counted, unless a timestamp
  repeats in it (rows of several GPUs): that is an error naming the file and line.
* CPU ``-summary.csv`` files are aggregates of the time series and are not ingested.

Times are Unix epoch seconds (UTC).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import polars as pl

from ..._parquet import sink_options
from ...errors import InputFormatError, quote_input
from ...schemas import get_table
from ..csvread import FLOAT, INT, STR, CsvLayout, RawType, check_bounds_by_file, convert_csv, matching
from ..parts import record_stats, select_table, sink_table
from ..registry import Source, SourceFile
from ..wide import locate_bad_cell, read_header_fields

S3 = "https://mit-supercloud-dataset.s3.amazonaws.com/datacenter-challenge/202201"

SOURCES = (
    Source(
        id="supercloud",
        title="MIT Supercloud Dataset: Slurm jobs, GPU (100 ms), CPU (10 s) and node (5 min) time series",
        tables=("hpc_jobs", "gpu_samples", "cpu_samples", "node_samples"),
        files=(
            SourceFile("slurm-log.csv", f"{S3}/slurm-log.csv"),
            SourceFile("tres-mapping.txt", f"{S3}/tres-mapping.txt"),
            SourceFile("labelled_jobids.csv", f"{S3}/labelled_jobids.csv"),
            SourceFile("node-data.csv", f"{S3}/node-data.csv"),
        ),
        licence="see the dataset's LICENSE file (s3://mit-supercloud-dataset/datacenter-challenge/202201/LICENSE)",
        citation=(
            "Samsi, Weiss, Bestor, Li, Jones, Reuther, Edelman, Arcand, Byun, Holodnak, Hubbell, Houle, "
            "Jananthan, Klein, Kepner, Leiserson, Michaleas, Milechin, Prout, Rosa, Gadepally. The MIT "
            "Supercloud Dataset. IEEE HPEC 2021. doi:10.1109/HPEC49654.2021.9622850"
        ),
        paper="https://arxiv.org/abs/2108.02037",
        homepage="https://dcc.mit.edu/data",
        description=(
            "~460k Slurm jobs with requested/allocated resources and timing, DNN labels for ~3,400 jobs, "
            "nvidia-smi samples of every GPU job, Slurm profiler CPU samples and node snapshots."
        ),
        redistributable=False,
        notes=(
            "The cpu/ and gpu/ folders (~120k GPU files, ~1.5 TB) are not in the download list: fetch them "
            "with `aws s3 sync --no-sign-request s3://mit-supercloud-dataset/datacenter-challenge/202201/ DIR` "
            "and ingest with --from DIR.",
            "The repository's code is MIT-licensed; the data's own LICENSE was not checked: do not "
            "redistribute derived tables until it is.",
        ),
    ),
)

SLURM_NAMES = ("slurm-log.csv", "scheduler-log.csv", "labelled-slurm-log.csv")
_GPU = re.compile(r"^(\d+)-(r\d+-n\d+)\.csv$")
_CPU = re.compile(r"^(\d+)-timeseries\.csv$")
#: nvidia-smi writes these instead of a number when it cannot read a value.
NA_VALUES = ("[N/A]", "[Not Supported]", "[Unknown Error]", "[GPU is lost]", "[Insufficient Permissions]", "N/A")
#: TRES ids of the dataset's tres-mapping.txt (README); replaced by the file's own when ingested.
DEFAULT_TRES = {1: "cpu", 2: "mem", 3: "energy", 4: "node", 5: "billing", 6: "fs/disk", 7: "vmem",
                8: "pages", 1001: "gpu:tesla", 1002: "gpu:volta"}
_STATES = {0: "PENDING", 1: "RUNNING", 2: "SUSPENDED", 3: "COMPLETED", 4: "CANCELLED", 5: "FAILED",
           6: "TIMEOUT", 7: "NODE_FAIL", 8: "PREEMPTED", 9: "BOOT_FAIL", 10: "DEADLINE", 11: "OUT_OF_MEMORY"}


def kind_of(name: str) -> str | None:
    if name in SLURM_NAMES:
        return "slurm"
    if name == "labelled_jobids.csv":
        return "labels"
    if name == "tres-mapping.txt":
        return "tres"
    if name == "node-data.csv":
        return "node"
    if _GPU.match(name):
        return "gpu"
    if _CPU.match(name):
        return "cpu"
    return None


def accepts(source_id: str, path: Path | PurePosixPath) -> bool:
    return kind_of(path.name) is not None


def group(source_id: str, logical: PurePosixPath, path: Path) -> tuple[str, str]:
    kind = kind_of(logical.name)
    if kind in ("slurm", "labels", "tres"):
        return "jobs", logical.name
    if kind in ("gpu", "cpu"):
        # One key per gpu/NNNN (cpu/NNNN) folder: ~1,200 files, a handful of Parquet parts.
        return f"{kind}-{logical.parent.name}", logical.name
    return logical.name, logical.name


# ------------------------------------------------------------------ Slurm log
def _code(e: pl.Expr, strict: bool = True) -> pl.Expr:
    # `0` or `0:0` (code:signal): keep the code; anything else fails the strict cast.
    return pl.coalesce(e.str.extract(r"^\s*(-?\d+)(?::-?\d+)?\s*$", 1), e).cast(pl.Int64, strict=strict)


_TRES_RE = r"^\d+=\d+(,\d+=\d+)*$"
CODE = RawType(pl.String, "an exit code like 0 or 0:0", _code)
TRES = matching(_TRES_RE, "a TRES list like 1=8,2=10010,4=1")
# `nodelist` as the real log writes it: a Python list literal, `['r9189566-n911952']` (quoted by
# the CSV when it holds a comma). Also accepted: bare names `r1-n1` / `r1-n1,r2-n2` (older form)
# and Slurm's `None assigned` for a job without nodes, alone or as the list's only item.
_NODE_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_NO_NODES = "None assigned"
_ITEM = rf"(?:'(?:{_NODE_NAME}|{_NO_NODES})'|\"(?:{_NODE_NAME}|{_NO_NODES})\")"
_NODELIST_RE = (rf"^\s*(?:\[\s*(?:{_ITEM}(?:\s*,\s*{_ITEM})*)?\s*\]|{_NODE_NAME}(?:,{_NODE_NAME})*"
                rf"|{_NO_NODES})\s*$")
NODELIST = matching(_NODELIST_RE, "a node list like ['r9189566-n911952'] (a Python list literal of node names)")


def _node_names(raw: pl.Expr) -> pl.Expr:
    """The node names of a `nodelist` that :data:`NODELIST` accepted: every name-like token.

    Vectorized (no per-row literal_eval over the ~500k jobs): the validation regex leaves only
    brackets, quotes, commas and spaces between the names.
    """
    return raw.str.replace_all(_NO_NODES, "", literal=True).str.extract_all(_NODE_NAME)
_SLURM_COLUMNS = (
    "id_job", "id_array_job", "id_array_task", "id_user", "kill_requid", "nodes_alloc", "nodelist", "cpus_req",
    "derived_ec", "exit_code", "gres_used", "array_max_tasks", "array_task_pending", "constraints", "flags",
    "mem_req", "partition", "priority", "state", "timelimit", "time_submit", "time_eligible", "time_start",
    "time_end", "time_suspended", "track_steps", "tres_alloc", "tres_req", "job_type",
)
_INTS = {"id_job", "id_array_job", "id_array_task", "timelimit", "time_submit", "time_eligible", "time_start",
         "time_end"}


def _epoch(col: str) -> pl.Expr:
    return pl.when(pl.col(col) > 0).then(pl.col(col))


def _slurm_derive(lf: pl.LazyFrame) -> pl.LazyFrame:
    state = pl.col("state")
    numeric = state.str.strip_chars().cast(pl.Int64, strict=False)
    lf = lf.with_columns(
        state=pl.when(numeric.is_not_null())
        .then(pl.concat_str(pl.lit("UNKNOWN("), numeric.cast(pl.String), pl.lit(")")))
        .otherwise(state),
        _low=(numeric % 256),
        submit_s=_epoch("time_submit"), eligible_s=_epoch("time_eligible"), start_s=_epoch("time_start"),
        end_s=_epoch("time_end"),
        node_names=_node_names(pl.col("node_list")),
    )
    lf = lf.with_columns(
        state=pl.when(pl.col("_low").is_in(list(_STATES))).then(
            pl.col("_low").replace_strict(_STATES, default=None, return_dtype=pl.String)
        ).otherwise(pl.col("state")),
        **{f"{w}_time": pl.from_epoch(f"{w}_s", time_unit="s").dt.replace_time_zone("UTC")
           for w in ("submit", "eligible", "start", "end")},
        wait_s=pl.col("start_s") - pl.col("submit_s"),
        run_s=pl.col("end_s") - pl.col("start_s"),
        node_count=pl.col("node_names").list.len().cast(pl.Int64),
    )
    return lf


SLURM = CsvLayout(
    name="Supercloud Slurm log",
    header=_SLURM_COLUMNS,
    raw_types={**{c: INT if c in _INTS else STR for c in _SLURM_COLUMNS},
               "derived_ec": CODE, "exit_code": CODE, "tres_alloc": TRES, "tres_req": TRES, "nodelist": NODELIST},
    columns={"job_id": "id_job", "array_job_id": "id_array_job", "array_task_id": "id_array_task",
             "user": "id_user", "partition": "partition", "state": "state", "exit_code": "exit_code",
             "derived_exit_code": "derived_ec", "time_limit_min": "timelimit", "tres_alloc": "tres_alloc",
             "tres_req": "tres_req", "node_list": "nodelist", "gres_used": "gres_used", "job_type": "job_type",
             "time_submit": "time_submit", "time_eligible": "time_eligible", "time_start": "time_start",
             "time_end": "time_end"},
    nullable=frozenset(set(_SLURM_COLUMNS) - {"id_job"}),
    derive=_slurm_derive,
)
#: Columns of the intermediate `_jobs` table: hpc_jobs minus what the reduce step computes.
_JOB_COLUMNS = [c for c in get_table("hpc_jobs").column_names
                if c not in {"cpus", "mem_mb", "nodes", "gpus", "req_cpus", "req_mem_mb", "req_nodes", "req_gpus",
                             "gpu_type", "label"}]

NODE = CsvLayout(
    name="Supercloud node-data.csv",
    header=("Node", "Time", "UserPIDCount", "FSlatency", "LoadAvg", "MemoryFreeInactiveKB", "LustreRPCTotals"),
    raw_types={"Node": STR, "Time": FLOAT, "UserPIDCount": STR, "FSlatency": FLOAT, "LoadAvg": FLOAT,
               "MemoryFreeInactiveKB": FLOAT, "LustreRPCTotals": FLOAT},
    columns={"node": "Node", "time_s": "Time", "user_pid_count": "UserPIDCount", "fs_latency": "FSlatency",
             "load_avg": "LoadAvg", "memory_free_inactive": "MemoryFreeInactiveKB",
             "lustre_rpc_totals": "LustreRPCTotals"},
    nullable=frozenset({"UserPIDCount", "FSlatency", "LoadAvg", "MemoryFreeInactiveKB", "LustreRPCTotals"}),
    derive=lambda lf: lf.with_columns(
        time=pl.from_epoch(pl.col("time_s") * 1e6, time_unit="us").dt.replace_time_zone("UTC"),
        user_processes=pl.col("user_pid_count").str.split("|")
        .list.eval(pl.element().str.split(":").list.get(1, null_on_oob=True).cast(pl.Int64, strict=False))
        .list.sum(),
    ),
)


# ------------------------------------------------------------------ conversion
def convert(source_id: str, path: Path, out_dir: Path, *, logical: PurePosixPath) -> dict[str, list[Path]]:
    parts, _ = convert_batch(source_id, [(logical, path)], out_dir)
    return parts


def convert_batch(
    source_id: str, items: list[tuple[PurePosixPath, Path]], out_dir: Path
) -> tuple[dict[str, list[Path]], list[dict[str, int]]]:
    kinds = {kind_of(logical.name) for logical, _ in items}
    if kinds == {"gpu"}:
        return _gpu(items, out_dir)
    if kinds == {"cpu"}:
        return _cpu(items, out_dir)
    parts: dict[str, list[Path]] = {}
    rows = []
    for n, (logical, path) in enumerate(items):
        out = out_dir / f"{n:05d}"
        out.mkdir()
        table, part = _single(kind_of(logical.name), logical, path, out)
        parts.setdefault(table, []).append(part)
        rows.append({table: pl.scan_parquet(part).select(pl.len()).collect().item()})
    return parts, rows


def _single(kind: str | None, logical: PurePosixPath, path: Path, out: Path) -> tuple[str, Path]:
    display = logical.name
    if kind == "slurm":
        part = out / "_jobs.parquet"
        convert_csv(path, [SLURM], part, display=display, select=_JOB_COLUMNS, row_index=None, table="hpc_jobs")
        return "_jobs", part
    if kind == "node":
        part = out / "node_samples.parquet"
        convert_csv(path, [NODE], part, display=display, select=get_table("node_samples").column_names,
                    row_index=None, table="node_samples")
        return "node_samples", part
    if kind == "labels":
        return "_labels", _labels(path, out / "_labels.parquet", display)
    if kind == "tres":
        return "_tres", _tres(path, out / "_tres.parquet", display)
    raise InputFormatError("not a file of the Supercloud dataset", file=display)


def _labels(path: Path, out: Path, display: str) -> Path:
    header = read_header_fields(path, display)
    missing = [c for c in ("id_job", "model") if c not in header]
    if missing:
        raise InputFormatError(
            f"the header lacks {missing}; labelled_jobids.csv has at least id_job,model", file=display, line=1
        )
    lf = pl.scan_csv(path, schema={c: pl.String for c in header}).select(
        pl.col("id_job").str.strip_chars().cast(pl.Int64, strict=True).alias("job_id"), pl.col("model").alias("label")
    )
    try:
        lf.sink_parquet(out, **sink_options())
    except pl.exceptions.PolarsError as e:
        raise locate_bad_cell(path, {"id_job": pl.Int64}, display) or InputFormatError(str(e), file=display) from e
    return out


def _tres(path: Path, out: Path, display: str) -> Path:
    # A handful of `id name` lines (separator: comma, colon, '=' or spaces); a first line without
    # an id is a header.
    ids, names = [], []
    with open(path, encoding="utf-8-sig") as fh:
        for n, line in enumerate(fh, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            m = re.match(r"^(\d+)\s*[,:=\s]\s*(\S.*)$", text)
            if not m:
                if n == 1:
                    continue
                raise InputFormatError(f"expected '<tres id> <name>', got {text!r}", file=display, line=n)
            ids.append(int(m.group(1)))
            names.append(m.group(2).strip().strip('"'))
    if not ids:
        raise InputFormatError("no '<tres id> <name>' lines", file=display)
    pl.DataFrame({"tres_id": ids, "name": names}, schema={"tres_id": pl.Int64, "name": pl.String}).write_parquet(out)
    return out


def _tokens(name: str) -> set[str]:
    return set(re.split(r"[,/:\s=]+", name.lower()))


def reduce(source_id: str, key: str, parts: dict[str, list[Path]], out_dir: Path) -> dict[str, list[Path]]:
    """``_jobs`` + ``_tres`` + ``_labels`` of key ``jobs`` -> ``hpc_jobs``."""
    if "_jobs" not in parts:
        raise InputFormatError(
            "labelled_jobids.csv and tres-mapping.txt are joined into the Slurm jobs: ingest them together "
            f"with the Slurm log ({' or '.join(SLURM_NAMES)})", file=key,
        )
    mapping = dict(DEFAULT_TRES)
    if "_tres" in parts:
        mapping = dict(pl.read_parquet(parts["_tres"]).iter_rows())
    by_token: dict[str, list[int]] = {}
    for tid, name in mapping.items():
        for tok in _tokens(name):
            by_token.setdefault(tok, []).append(tid)
    gpu_ids = sorted(by_token.get("gpu", []))

    def one(col: str, token: str) -> pl.Expr:
        ids = sorted(by_token.get(token, []))
        if not ids:
            return pl.lit(None, pl.Int64)
        return _pair(col, ids[0])

    def gpus(col: str) -> pl.Expr:
        total = pl.sum_horizontal([_pair(col, g).fill_null(0) for g in gpu_ids]) if gpu_ids else pl.lit(0, pl.Int64)
        return pl.when(pl.col(col).is_null()).then(None).otherwise(total)

    gpu_type = pl.concat_str(
        [pl.when(_pair("tres_alloc", g) > 0).then(pl.lit(mapping[g])) for g in gpu_ids] or [pl.lit(None, pl.String)],
        separator=",", ignore_nulls=True,
    )
    jobs = pl.scan_parquet(parts["_jobs"]).with_columns(
        cpus=one("tres_alloc", "cpu"), mem_mb=one("tres_alloc", "mem"), nodes=one("tres_alloc", "node"),
        gpus=gpus("tres_alloc"), req_cpus=one("tres_req", "cpu"), req_mem_mb=one("tres_req", "mem"),
        req_nodes=one("tres_req", "node"), req_gpus=gpus("tres_req"),
        gpu_type=pl.when(gpu_type != "").then(gpu_type),
    )
    if "_labels" in parts:
        labels = pl.scan_parquet(parts["_labels"]).unique("job_id", keep="first", maintain_order=True)
        jobs = jobs.join(labels, on="job_id", how="left", maintain_order="left")
    out = out_dir / "hpc_jobs.parquet"
    sink_table(jobs, "hpc_jobs", out)
    return {"hpc_jobs": [out]}


def _pair(col: str, tres_id: int) -> pl.Expr:
    # Exact `id=count` pair between commas: 2=10010 never matches id 1001.
    return pl.col(col).str.extract(rf"(?:^|,){tres_id}=(\d+)(?:,|$)", 1).cast(pl.Int64)


# ------------------------------------------------------------------ GPU and CPU time series
GPU_COLUMNS = (
    "timestamp", "gpu_index", "utilization_gpu_pct", "utilization_memory_pct", "memory_free_MiB",
    "memory_used_MiB", "temperature_gpu", "temperature_memory", "power_draw_W", "pcie_link_width_current",
)
_GPU_RENAME = {"utilization_gpu_pct": "utilization_gpu_pct", "utilization_memory_pct": "utilization_memory_pct",
               "memory_free_MiB": "memory_free_mib", "memory_used_MiB": "memory_used_mib",
               "temperature_gpu": "temperature_gpu_c", "temperature_memory": "temperature_memory_c",
               "power_draw_W": "power_w", "pcie_link_width_current": "pcie_link_width"}
CPU_COLUMNS = ("Step", "Node", "Series", "ElapsedTime", "EpochTime", "CPUFrequency", "CPUTime", "CPUUtilization",
               "RSS", "VMSize", "Pages", "ReadMB", "WriteMB")
_CPU_RENAME = {"Step": "step", "Node": "node", "Series": "series", "ElapsedTime": "elapsed_s", "EpochTime": "time_s",
               "CPUFrequency": "cpu_frequency", "CPUTime": "cpu_time_s", "CPUUtilization": "cpu_utilization_pct",
               "RSS": "rss", "VMSize": "vm_size", "Pages": "pages", "ReadMB": "read_mb", "WriteMB": "write_mb"}


#: Ingest summary counter of the GPU files read as GPU 0 because they have no gpu_index column.
NO_INDEX_STAT = "gpu_samples: files without gpu_index, read as GPU 0 (one GPU per file)"


def _check_one_gpu(f: dict, out: Path) -> None:
    """Refuse a file without ``gpu_index`` whose rows are of several GPUs (a timestamp repeats).

    nvidia-smi writes one row per GPU per sample with the same timestamp; without the index
    those rows cannot be told apart, and reading them all as GPU 0 would mix the GPUs.
    """
    header = read_header_fields(Path(f["_path"]), f["_display"], allow_empty=True)
    repeat = (
        pl.scan_csv(f["_path"], schema={c: pl.String for c in header}).with_row_index("_row")
        .with_columns(_first=pl.col("_row").min().over("timestamp"))
        .filter(pl.col("_row") != pl.col("_first")).head(1).collect()
    )
    if repeat.height:
        row = repeat.row(0, named=True)
        out.unlink(missing_ok=True)
        raise InputFormatError(
            f"timestamp {row['timestamp']} repeats line {row['_first'] + 2}: the file has no gpu_index column but "
            "rows of several GPUs, which cannot be told apart (a single-GPU file without gpu_index is read as "
            "GPU 0)", file=f["_display"], line=row["_row"] + 2, column="timestamp",
        )


def _first_data_line(path: Path) -> bytes:
    with open(path, "rb") as fh:
        fh.readline()
        return fh.readline()


def _gpu(items: list[tuple[PurePosixPath, Path]], out_dir: Path) -> tuple[dict[str, list[Path]], list[dict[str, int]]]:
    variants: dict[tuple[str, ...], list[dict]] = {}
    for logical, path in items:
        display = f"{logical.parent.name}/{logical.name}"
        header = tuple(read_header_fields(path, display, allow_empty=True))
        extra = set(header) - set(GPU_COLUMNS) - {"ElapsedTime"}
        # Some real files lack gpu_index: single-GPU files, read as GPU 0 (see _check_one_gpu).
        missing = set(GPU_COLUMNS) - set(header) - {"gpu_index"}
        if extra or missing:
            raise InputFormatError(
                f"unexpected GPU file header {quote_input(','.join(header))}: expected {','.join(GPU_COLUMNS)} "
                "(optionally with ElapsedTime, or without gpu_index for a single GPU)", file=display, line=1,
            )
        job, node = _GPU.match(logical.name).groups()
        # elapsed_s where the file lacks ElapsedTime: timestamp - the file's first timestamp.
        first = _first_data_line(path).split(b",")[header.index("timestamp")] if "ElapsedTime" not in header else b""
        try:
            t0 = float(first) if first.strip() else None
        except ValueError:
            t0 = None  # reported with its line by the scan below
        variants.setdefault(header, []).append(
            {"_path": str(path), "job_id": int(job), "node": node, "_t0": t0, "_display": display}
        )
    frames = []
    for header, files in variants.items():
        meta = pl.LazyFrame(files, schema={"_path": pl.String, "job_id": pl.Int64, "node": pl.String,
                                           "_t0": pl.Float64, "_display": pl.String})
        schema = {c: pl.Int32 if c == "gpu_index" else pl.Float64 for c in header}
        lf = pl.scan_csv([f["_path"] for f in files], schema=schema, null_values=list(NA_VALUES),
                         include_file_paths="_path", has_header=True)
        lf = lf.join(meta, on="_path", how="left", maintain_order="left")
        elapsed = pl.col("ElapsedTime") if "ElapsedTime" in header else pl.col("timestamp") - pl.col("_t0")
        index = pl.col("gpu_index") if "gpu_index" in header else pl.lit(0, pl.Int32)
        frames.append(select_table(
            lf, "gpu_samples", gpu_index=index, time_s=pl.col("timestamp"),
            time=pl.from_epoch((pl.col("timestamp") * 1e6).round().cast(pl.Int64), time_unit="us")
            .dt.replace_time_zone("UTC"),
            elapsed_s=elapsed, **{new: pl.col(old) for old, new in _GPU_RENAME.items()},
        ))
    out = out_dir / "gpu_samples.parquet"
    all_files = [f for files in variants.values() for f in files]
    try:
        pl.concat(frames, how="vertical").sink_parquet(out, **sink_options())
    except (pl.exceptions.PolarsError, OSError) as e:
        out.unlink(missing_ok=True)
        raise _locate_gpu(all_files) or InputFormatError(
            f"could not read the GPU files: {str(e).strip().splitlines()[0]}", file=all_files[0]["_display"]
        ) from e
    _check_required(out, ("gpu_index", "time_s"), all_files, GPU_COLUMNS)
    check_bounds_by_file(out, "gpu_samples", all_files, ("job_id", "node"))
    no_index = [f for header, files in variants.items() if "gpu_index" not in header for f in files]
    for f in no_index:
        _check_one_gpu(f, out)
    nulls = _null_count(out, list(_GPU_RENAME.values()))
    record_stats(out_dir, {"gpu_samples: nvidia-smi cells read as null ([N/A], [Not Supported], ... or empty)": nulls,
                           NO_INDEX_STAT: len(no_index)})
    counts = dict(
        pl.scan_parquet(out).group_by("job_id", "node").len().select(
            pl.concat_str(pl.col("job_id").cast(pl.String), pl.col("node"), separator="-"), "len"
        ).collect().iter_rows()
    )
    rows = [{"gpu_samples": counts.get("-".join(_GPU.match(lg.name).groups()), 0)} for lg, _ in items]
    return {"gpu_samples": [out]}, rows


def _cpu(items: list[tuple[PurePosixPath, Path]], out_dir: Path) -> tuple[dict[str, list[Path]], list[dict[str, int]]]:
    files = []
    for logical, path in items:
        display = f"{logical.parent.name}/{logical.name}"
        header = tuple(read_header_fields(path, display, allow_empty=True))
        if header != CPU_COLUMNS:
            raise InputFormatError(
                f"unexpected CPU time series header {quote_input(','.join(header))}; expected {','.join(CPU_COLUMNS)}",
                file=display, line=1,
            )
        files.append({"_path": str(path), "job_id": int(_CPU.match(logical.name).group(1)), "_display": display})
    meta = pl.LazyFrame(files, schema={"_path": pl.String, "job_id": pl.Int64, "_display": pl.String})
    schema = {c: pl.String if c in ("Step", "Node", "Series") else pl.Float64 for c in CPU_COLUMNS}
    lf = pl.scan_csv([f["_path"] for f in files], schema=schema, include_file_paths="_path", has_header=True)
    lf = lf.join(meta, on="_path", how="left", maintain_order="left").rename(_CPU_RENAME)
    lf = select_table(
        lf, "cpu_samples",
        time=pl.from_epoch((pl.col("time_s") * 1e6).round().cast(pl.Int64), time_unit="us").dt.replace_time_zone("UTC"),
    )
    out = out_dir / "cpu_samples.parquet"
    try:
        lf.sink_parquet(out, **sink_options())
    except (pl.exceptions.PolarsError, OSError) as e:
        out.unlink(missing_ok=True)
        for f in files:
            err = locate_bad_cell(Path(f["_path"]), schema, f["_display"])
            if err:
                raise err from e
        raise InputFormatError(f"could not read the CPU files: {e}", file=files[0]["_display"]) from e
    check_bounds_by_file(out, "cpu_samples", files, ("job_id",))
    counts = dict(pl.scan_parquet(out).group_by("job_id").len().collect().iter_rows())
    return {"cpu_samples": [out]}, [{"cpu_samples": counts.get(int(_CPU.match(lg.name).group(1)), 0)}
                                    for lg, _ in items]


def _gpu_types(header: list[str]) -> dict[str, pl.DataType]:
    return {c: pl.Int32 if c == "gpu_index" else pl.Float64 for c in header}


def _locate_gpu(files: list[dict]) -> InputFormatError | None:
    for f in files:
        path = Path(f["_path"])
        err = locate_bad_cell(path, _gpu_types(read_header_fields(path, f["_display"], allow_empty=True)),
                              f["_display"], null_values=NA_VALUES)
        if err:
            return err
    return None


def _null_count(out: Path, columns: list[str]) -> int:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(out).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    total = 0
    for c in columns:
        i = names.index(c)
        total += sum(meta.row_group(g).column(i).statistics.null_count for g in range(meta.num_row_groups))
    return total


def _check_required(out: Path, columns: tuple[str, ...], files: list[dict], raw: tuple[str, ...]) -> None:
    """A required measurement (timestamp, gpu_index) read as null: name the file, line and column."""
    if not _null_count(out, list(columns)):
        return
    out.unlink()
    for f in files:
        path = Path(f["_path"])
        header = read_header_fields(path, f["_display"], allow_empty=True)
        present = [c for c in ("timestamp", "gpu_index") if c in header]  # gpu_index can be absent
        hit = (
            pl.scan_csv(path, schema={c: pl.String for c in header}).with_row_index("_row")
            .filter(pl.any_horizontal(pl.col(c).is_null() | pl.col(c).is_in(list(NA_VALUES)) for c in present))
            .head(1).collect()
        )
        if hit.height:
            row = hit.row(0, named=True)
            col = next(c for c in present if row[c] is None or row[c] in NA_VALUES)
            raise InputFormatError(
                f"{row[col]!r}: a GPU sample needs its {col}", file=f["_display"], line=row["_row"] + 2, column=col
            )
    raise InputFormatError("a GPU sample without timestamp or gpu_index", file=files[0]["_display"])


