"""HPC and GPU clusters (MIT Supercloud): job sizes, waits and run times, GPU use and power.

Tables (issue-4 schemas): ``hpc_jobs`` (one row per Slurm job: ``wait_s``, ``run_s``, ``cpus``,
``gpus``, ``nodes``, ``mem_mb``, ``state``...), ``gpu_samples`` (nvidia-smi samples per job,
node and GPU: ``utilization_gpu_pct``, ``memory_used_mib``, ``power_w``, ``time_s``...).

A **GPU** is ``(job_id, node, gpu_index)``. A GPU is **idle** when its mean utilization over
its samples is below ``idle_pct`` (default 1 %); the idle-sample share counts samples at
exactly 0 %. Power statistics are of the sampled instantaneous readings as nvidia-smi wrote
them; no energy is derived here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._data import Data, as_input, by_clause, order_clause, qi, select_list
from .requests import token_histogram

if TYPE_CHECKING:
    import polars as pl

GPU_KEY = ("job_id", "node", "gpu_index")
JOB_COLUMNS = ("wait_s", "run_s", "cpus", "gpus", "nodes", "mem_mb")

__all__ = ["gpu_stats", "gpu_usage", "job_histogram", "job_stats"]


def _q(col: str, qs=(50, 90, 99), suffix: str = "") -> str:
    return ", ".join(f"quantile_cont({qi(col)}, {q / 100}) AS {col}{suffix}_p{q}" for q in qs)


def job_stats(data: Data = None, *, by: Sequence[str] | None = None, **select) -> pl.DataFrame:
    """Jobs per group: counts, GPU-job share, and quantiles of wait, run time and size.

    Columns: ``jobs``, ``gpu_jobs``, ``gpu_job_share``, ``<col>_p50/_p90/_p99`` for ``wait_s``,
    ``run_s``, ``cpus``, ``gpus``, ``nodes``, ``mem_mb`` (those present), ``gpu_hours``
    (sum of gpus x run_s / 3600).

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"job_id": [1, 2, 3], "gpus": [0, 1, 2], "run_s": [60, 3600, 7200], "wait_s": [0, 5, 10]})
    >>> job_stats(df).select("jobs", "gpu_jobs", "run_s_p50", "gpu_hours").row(0)
    (3, 2, 3600.0, 5.0)
    """
    inp = as_input(data, **{"table": "hpc_jobs", **select})
    cols = inp.group_by(by, ("source",))
    present = [c for c in JOB_COLUMNS if inp.has(c)]
    gpu = inp.has("gpus")
    parts = [
        "count(*) AS jobs",
        "count(*) FILTER (WHERE gpus > 0) AS gpu_jobs" if gpu else "NULL::BIGINT AS gpu_jobs",
        "avg(CASE WHEN gpus > 0 THEN 1.0 ELSE 0.0 END) AS gpu_job_share" if gpu else "NULL::DOUBLE AS gpu_job_share",
        *[_q(c) for c in present],
        "sum(gpus * run_s) / 3600.0 AS gpu_hours" if gpu and inp.has("run_s") else "NULL::DOUBLE AS gpu_hours",
    ]
    return inp.sql(f"SELECT {select_list(cols)}{', '.join(parts)} FROM _input {by_clause(cols)} {order_clause(cols)}")


def job_histogram(data: Data = None, *, column: str = "run_s", bins_per_decade: int = 10,
                  by: Sequence[str] | None = None, **select) -> pl.DataFrame:
    """Log-binned histogram of a job column (run time, wait, size); zeros in bin ``[0, 1)``.

    Examples
    --------
    >>> import polars as pl
    >>> job_histogram(pl.DataFrame({"run_s": [0, 5, 50, 60]}), bins_per_decade=1)["requests"].to_list()
    [1, 1, 2]
    """
    inp = as_input(data, **{"table": "hpc_jobs", **select})
    cols = inp.group_by(by, ("source",))
    return token_histogram(inp, column=column, bins_per_decade=bins_per_decade, by=cols)


def gpu_usage(data: Data = None, *, level: str = "gpu", idle_pct: float = 1.0, **select) -> pl.DataFrame:
    """Utilization, memory and power per GPU (``level="gpu"``) or per job (``level="job"``).

    Columns: the key, ``samples``, ``gpus`` (job level), ``duration_s`` (last - first sample),
    ``util_mean_pct``, ``util_p50_pct``, ``util_p95_pct``, ``zero_util_sample_share``,
    ``memory_used_mean_mib``, ``memory_used_max_mib``, ``power_mean_w``, ``power_max_w``,
    ``idle`` (gpu level: mean utilization < ``idle_pct``) / ``idle_gpu_share`` (job level).

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"job_id": [1] * 4, "node": "n1", "gpu_index": [0, 0, 1, 1],
    ...                    "time_s": [0.0, 1.0, 0.0, 1.0], "utilization_gpu_pct": [90.0, 70.0, 0.0, 0.0],
    ...                    "memory_used_mib": 1000.0, "power_w": [250.0, 230.0, 40.0, 40.0]})
    >>> gpu_usage(df).select("gpu_index", "util_mean_pct", "idle").rows()
    [(0, 80.0, False), (1, 0.0, True)]
    >>> gpu_usage(df, level="job").select("gpus", "idle_gpu_share").row(0)
    (2, 0.5)
    """
    inp = as_input(data, **{"table": "gpu_samples", **select})
    src = ["source"] if inp.has("source") else []
    key = src + [c for c in GPU_KEY if inp.has(c)]
    inp.require("utilization_gpu_pct", what="gpu_usage")
    mem = "memory_used_mib" if inp.has("memory_used_mib") else None
    pw = "power_w" if inp.has("power_w") else None
    t = "time_s" if inp.has("time_s") else None
    per_gpu = f"""
        SELECT {select_list(key)}count(*) AS samples,
               {f'max({t}) - min({t})' if t else 'NULL::DOUBLE'} AS duration_s,
               avg(utilization_gpu_pct) AS util_mean_pct,
               quantile_cont(utilization_gpu_pct, 0.5) AS util_p50_pct,
               quantile_cont(utilization_gpu_pct, 0.95) AS util_p95_pct,
               avg(CASE WHEN utilization_gpu_pct = 0 THEN 1.0 WHEN utilization_gpu_pct > 0 THEN 0.0 END)
                   AS zero_util_sample_share,
               {f'avg({mem})' if mem else 'NULL::DOUBLE'} AS memory_used_mean_mib,
               {f'max({mem})' if mem else 'NULL::DOUBLE'} AS memory_used_max_mib,
               {f'avg({pw})' if pw else 'NULL::DOUBLE'} AS power_mean_w,
               {f'max({pw})' if pw else 'NULL::DOUBLE'} AS power_max_w,
               avg(utilization_gpu_pct) < {float(idle_pct)} AS idle
        FROM _input {by_clause(key)}
    """
    if level == "gpu":
        return inp.sql(f"{per_gpu} {order_clause(key)}")
    if level != "job":
        from ..errors import AnalysisError

        raise AnalysisError(f"level must be 'gpu' or 'job', got {level!r}")
    jkey = src + (["job_id"] if inp.has("job_id") else [])
    return inp.sql(
        f"""
        SELECT {select_list(jkey)}sum(samples)::BIGINT AS samples, count(*) AS gpus, max(duration_s) AS duration_s,
               sum(util_mean_pct * samples) / sum(samples) AS util_mean_pct,
               avg(util_p50_pct) AS util_p50_pct, max(util_p95_pct) AS util_p95_pct,
               sum(zero_util_sample_share * samples) / sum(samples) AS zero_util_sample_share,
               avg(memory_used_mean_mib) AS memory_used_mean_mib, max(memory_used_max_mib) AS memory_used_max_mib,
               avg(power_mean_w) AS power_mean_w, max(power_max_w) AS power_max_w,
               avg(CASE WHEN idle THEN 1.0 ELSE 0.0 END) AS idle_gpu_share
        FROM ({per_gpu}) {by_clause(jkey)} {order_clause(jkey)}
        """
    )


def gpu_stats(data: Data = None, *, by: Sequence[str] | None = None, idle_pct: float = 1.0,
              **select) -> pl.DataFrame:
    """Cluster-wide GPU figures per group: distributions over samples and the idle-GPU share.

    Columns: ``samples``, ``jobs``, ``gpus``, ``util_p50_pct``/``_p90``/``_mean``,
    ``zero_util_sample_share``, ``memory_used_p50_mib``/``_p90``, ``power_p50_w``/``_p90``/
    ``_mean``, ``idle_gpu_share`` (GPUs whose mean utilization < ``idle_pct``).

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"job_id": [1, 1, 2, 2], "node": "n", "gpu_index": 0,
    ...                    "utilization_gpu_pct": [50.0, 50.0, 0.0, 0.0], "power_w": [200.0, 220.0, 40.0, 40.0]})
    >>> gpu_stats(df).select("gpus", "idle_gpu_share", "util_mean_pct").row(0)
    (2, 0.5, 25.0)
    """
    inp = as_input(data, **{"table": "gpu_samples", **select})
    cols = inp.group_by(by, ("source",))
    inp.require("utilization_gpu_pct", what="gpu_stats")
    gk = [c for c in GPU_KEY if inp.has(c)]
    gid = "(" + " || '/' || ".join(f"CAST({qi(c)} AS VARCHAR)" for c in gk) + ")" if gk else "NULL"
    if inp.has("memory_used_mib"):
        mem = [f"quantile_cont(memory_used_mib, {q / 100}) AS memory_used_p{q}_mib" for q in (50, 90)]
    else:
        mem = ["NULL::DOUBLE AS memory_used_p50_mib", "NULL::DOUBLE AS memory_used_p90_mib"]
    pw = ([f"quantile_cont(power_w, {q / 100}) AS power_p{q}_w" for q in (50, 90)] + ["avg(power_w) AS power_mean_w"]
          if inp.has("power_w") else ["NULL::DOUBLE AS power_p50_w", "NULL::DOUBLE AS power_p90_w",
                                      "NULL::DOUBLE AS power_mean_w"])
    sel = select_list(cols)
    join = f"JOIN idle USING ({', '.join(qi(c) for c in cols)})" if cols else "CROSS JOIN idle"
    return inp.sql(
        f"""
        WITH g AS (SELECT {sel}{gid} AS gid, avg(utilization_gpu_pct) AS u FROM _input
                   GROUP BY {', '.join([qi(c) for c in cols] + ['gid'])}),
        idle AS (SELECT {sel}count(*) AS gpus, avg(CASE WHEN u < {float(idle_pct)} THEN 1.0 ELSE 0.0 END)
                 AS idle_gpu_share FROM g {by_clause(cols)}),
        s AS (SELECT {sel}count(*) AS samples, {'count(DISTINCT job_id)' if inp.has('job_id') else 'NULL::BIGINT'}
                     AS jobs,
                     quantile_cont(utilization_gpu_pct, 0.5) AS util_p50_pct,
                     quantile_cont(utilization_gpu_pct, 0.9) AS util_p90_pct,
                     avg(utilization_gpu_pct) AS util_mean_pct,
                     avg(CASE WHEN utilization_gpu_pct = 0 THEN 1.0 WHEN utilization_gpu_pct > 0 THEN 0.0 END)
                         AS zero_util_sample_share,
                     {', '.join(mem + pw)}
              FROM _input {by_clause(cols)})
        SELECT * FROM s {join} {order_clause(cols)}
        """
    ).select(*cols, "samples", "jobs", "gpus", "util_p50_pct", "util_p90_pct", "util_mean_pct",
             "zero_util_sample_share", "memory_used_p50_mib", "memory_used_p90_mib", "power_p50_w", "power_p90_w",
             "power_mean_w", "idle_gpu_share")
