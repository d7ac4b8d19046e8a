"""HPC cluster traces: the MIT Supercloud dataset (Slurm jobs, GPU/CPU/node time series).

Times are Unix epoch seconds (``*_s``) with the same instant as a UTC timestamp beside them;
nodes are named ``r<rack>-n<node>`` as in the dataset's file names and ``node-data.csv``.
"""

from ._base import Column, TableSchema

JOB = Column("job_id", "int64", "Slurm job id (anonymized), `id_job` or the number in the file name", required=True)
NODE = Column("node", "string", "Node as `r<rack>-n<node>` (anonymized)")


def _when(name: str, what: str) -> tuple[Column, Column]:
    return (
        Column(f"{name}_s", "int64", f"{what}, Unix epoch seconds (Slurm writes 0 for 'not set': stored as null)",
               unit="s"),
        Column(f"{name}_time", "timestamp[us, UTC]", f"{what} as a UTC timestamp"),
    )


HPC_JOBS = TableSchema(
    name="hpc_jobs",
    description="One row per Slurm job record of the Supercloud scheduler log, with resources parsed from TRES.",
    columns=(
        JOB,
        Column("array_job_id", "int64", "`id_array_job` (0 when not an array job)"),
        Column("array_task_id", "int64", "`id_array_task` (Slurm uses 4294967294 for 'none')"),
        Column("user", "string", "`id_user` (anonymized)"),
        Column("partition", "string", "`partition`"),
        Column(
            "state", "string",
            "`state`: Slurm's numeric job state mapped to its name (0 PENDING, 1 RUNNING, 3 COMPLETED, "
            "4 CANCELLED, 5 FAILED, 6 TIMEOUT, 7 NODE_FAIL, 8 PREEMPTED, 11 OUT_OF_MEMORY, ...; flag "
            "bits above the low byte ignored); a textual state is kept as written",
        ),
        Column("exit_code", "int64", "`exit_code` as written (the `code` of a `code:signal` value)"),
        Column("derived_exit_code", "int64", "`derived_ec` as written (the `code` of a `code:signal` value)"),
        *_when("submit", "`time_submit`"),
        *_when("eligible", "`time_eligible`"),
        *_when("start", "`time_start`"),
        *_when("end", "`time_end`"),
        Column("wait_s", "int64", "start - submit; null when either is not set", unit="s"),
        Column("run_s", "int64", "end - start; null when either is not set", unit="s"),
        Column("time_limit_min", "int64", "`timelimit`", unit="min"),
        Column("cpus", "int64", "Allocated CPUs: TRES id 1 (`cpu`) of `tres_alloc`", unit="cpus", min=0),
        Column("mem_mb", "int64", "Allocated memory: TRES id 2 (`mem`) of `tres_alloc`", unit="MB", min=0),
        Column("nodes", "int64", "Allocated nodes: TRES id 4 (`node`) of `tres_alloc`", unit="nodes", min=0),
        Column(
            "gpus", "int64",
            "Allocated GPUs: sum of the GPU TRES (ids 1001 `gpu:tesla`, 1002 `gpu:volta`, or those "
            "`tres-mapping.txt` names gpu) of `tres_alloc`; 0 when it has none",
            unit="gpus",
            min=0,
        ),
        Column("req_cpus", "int64", "Requested CPUs (TRES id 1 of `tres_req`)", unit="cpus", min=0),
        Column("req_mem_mb", "int64", "Requested memory (TRES id 2 of `tres_req`)", unit="MB", min=0),
        Column("req_nodes", "int64", "Requested nodes (TRES id 4 of `tres_req`)", unit="nodes", min=0),
        Column("req_gpus", "int64", "Requested GPUs (GPU TRES of `tres_req`)", unit="gpus", min=0),
        Column("gpu_type", "string", "GPU TRES name(s) allocated (`gpu:volta`, ...), `,`-joined; null without GPUs"),
        Column("tres_alloc", "string", "`tres_alloc` as written: `<tres id>=<count>` pairs"),
        Column("tres_req", "string", "`tres_req` as written"),
        Column(
            "node_list", "string",
            "`nodelist` as written: a Python list literal of node names, e.g. `['r9189566-n911952']` "
            "(older copies: bare `r1-n1,r2-n2`)",
        ),
        Column(
            "node_names", "list<string>",
            "The node names of `nodelist`, parsed (`r<rack>-n<node>`, as in the GPU file names and "
            "`node-data.csv`); empty for `[]` and Slurm's `None assigned`",
        ),
        Column("node_count", "int64", "Number of names in `node_names` (compare `nodes`, the TRES allocation)",
               unit="nodes", min=0),
        Column("gres_used", "string", "`gres_used`"),
        Column("job_type", "string", "`job_type`"),
        Column("label", "string",
               "`model` of the job in `labelled_jobids.csv` (the workload's DNN); null if unlabelled"),
    ),
    notes=(
        "TRES strings are parsed as `id=count` pairs, never by substring: `1=8,2=10010,4=1` is 8 CPUs, "
        "10,010 MB and 1 node, and no GPU (the official notebook's substring test for `1001` would call "
        "it a GPU job).",
    ),
)

GPU_SAMPLES = TableSchema(
    name="gpu_samples",
    description=(
        "nvidia-smi samples (nominally every 100 ms) of the GPUs of each Supercloud job, one row per "
        "(sample, GPU). Non-numeric nvidia-smi cells (`[N/A]`, `[Not Supported]`, ...) are null and "
        "counted in the ingest summary."
    ),
    columns=(
        JOB,
        Column("node", "string", "Node from the file name `<job>-r<rack>-n<node>.csv`", required=True),
        Column(
            "gpu_index", "int32",
            "`gpu_index`: GPU on the node; 0 for a file without that column (a single GPU: its timestamps "
            "never repeat; such files are counted in the ingest summary)",
            required=True, min=0,
        ),
        Column("time_s", "float64", "`timestamp`: Unix epoch seconds with fraction", unit="s", required=True),
        Column("time", "timestamp[us, UTC]", "`timestamp` as a UTC timestamp", required=True),
        Column("elapsed_s", "float64", "`ElapsedTime` where the file has it, else time_s - the file's first timestamp",
               unit="s"),
        Column("utilization_gpu_pct", "float64", "`utilization_gpu_pct`", unit="%", min=0, max=100),
        Column("utilization_memory_pct", "float64", "`utilization_memory_pct`", unit="%", min=0, max=100),
        Column("memory_free_mib", "float64", "`memory_free_MiB`", unit="MiB", min=0),
        Column("memory_used_mib", "float64", "`memory_used_MiB`", unit="MiB", min=0),
        Column("temperature_gpu_c", "float64", "`temperature_gpu`", unit="°C"),
        Column("temperature_memory_c", "float64", "`temperature_memory`", unit="°C"),
        Column("power_w", "float64", "`power_draw_W`: board power draw", unit="W", min=0),
        Column("pcie_link_width", "float64", "`pcie_link_width_current`", unit="lanes", min=0),
    ),
)

CPU_SAMPLES = TableSchema(
    name="cpu_samples",
    description=(
        "Slurm profiler samples (nominally every 10 s) of each Supercloud job's CPU use, per step, node "
        "and task series (`cpu/*/<job>-timeseries.csv`; the `-summary.csv` files are aggregates of these "
        "and are not ingested)."
    ),
    columns=(
        JOB,
        Column("step", "string", "`Step`: `batch`, `extern` or a step number (the official notebook keeps `batch`)"),
        NODE,
        Column("series", "string", "`Series`"),
        Column("elapsed_s", "float64", "`ElapsedTime`", unit="s"),
        Column("time_s", "float64", "`EpochTime`: Unix epoch seconds", unit="s"),
        Column("time", "timestamp[us, UTC]", "`EpochTime` as a UTC timestamp"),
        Column("cpu_frequency", "float64", "`CPUFrequency` (presumably kHz; unit not documented)"),
        Column("cpu_time_s", "float64", "`CPUTime`", unit="s", min=0),
        Column("cpu_utilization_pct", "float64", "`CPUUtilization`", unit="%", min=0),
        Column("rss", "float64", "`RSS` (presumably KiB; unit not documented)", min=0),
        Column("vm_size", "float64", "`VMSize` (presumably KiB; unit not documented)", min=0),
        Column("pages", "float64", "`Pages`", unit="pages", min=0),
        Column("read_mb", "float64", "`ReadMB`", unit="MB", min=0),
        Column("write_mb", "float64", "`WriteMB`", unit="MB", min=0),
    ),
)

NODE_SAMPLES = TableSchema(
    name="node_samples",
    description="Supercloud node snapshots every 5 minutes (`node-data.csv`), independent of Slurm.",
    columns=(
        Column("node", "string", "`Node` (`r<rack>-n<node>`)", required=True),
        Column("time_s", "float64", "`Time`: Unix epoch seconds", unit="s", required=True),
        Column("time", "timestamp[us, UTC]", "`Time` as a UTC timestamp", required=True),
        Column("user_pid_count", "string", "`UserPIDCount` as written: `<user>:<processes>` pairs joined by `|`"),
        Column("user_processes", "int64", "Sum of the process counts in `UserPIDCount`", unit="processes", min=0),
        Column("fs_latency", "float64", "`FSlatency` (unit not documented)"),
        Column("load_avg", "float64", "`LoadAvg`: load average"),
        Column(
            "memory_free_inactive", "float64",
            "`MemoryFreeInactiveKB` (values ~360-390 are implausible as KB for a node: unit unverified)",
        ),
        Column("lustre_rpc_totals", "float64", "`LustreRPCTotals`", unit="RPCs", min=0),
    ),
)

TABLES = (HPC_JOBS, GPU_SAMPLES, CPU_SAMPLES, NODE_SAMPLES)
