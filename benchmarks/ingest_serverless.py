"""Benchmark: wattlas ingest of wide serverless files and many small GPU files vs a direct DuckDB query.

Two cases, each generated here with the real files' shape (no real data is needed):

* ``azure_2019_day``: one Azure Functions 2019 invocations day file, 46,000 functions x 1,440
  minute columns (~140 MB, ~12% non-zero cells: most functions fire rarely, a few every minute).
* ``supercloud_gpu_2000``: 2,000 Supercloud GPU files (nvidia-smi columns, ~3,000 rows each with
  one or two GPUs interleaved and some ``[N/A]`` cells) in two ``gpu/NNNN`` folders.

For each case it times ``wattlas.ingest.ingest`` into a fresh store (hashing, staging, commit
included) against the most direct DuckDB query that writes the same long-form Parquet (same
columns, rows and types), each in its own process so peak RSS is per run. Times are the best
of ``--repeat`` runs. The last line printed is one JSON object: per case ``ours_s``,
``duckdb_s``, ``ratio`` (DuckDB time / ours: > 1 means wattlas is faster), rows of both, and
peak RSS; top-level ``peak_rss_mib`` is the largest peak RSS of the wattlas runs.

Usage: ``python benchmarks/ingest_serverless.py [--repeat 2] [--workdir DIR]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AZURE_NAME = "invocations_per_function_md.anon.d01.csv"
GPU_HEADER = ("timestamp", "gpu_index", "utilization_gpu_pct", "utilization_memory_pct", "memory_free_MiB",
              "memory_used_MiB", "temperature_gpu", "temperature_memory", "power_draw_W", "pcie_link_width_current")
NA = "['[N/A]', '[Not Supported]', '[Unknown Error]', '[GPU is lost]', '[Insufficient Permissions]', 'N/A', '']"


# ------------------------------------------------------------------ data
def make_azure_day(path: Path, n: int = 46_000, seed: int = 1) -> None:
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    # Mostly rare functions, some bursty, a few busy (timers, queues): ~12% of cells non-zero.
    kind = rng.choice(3, n, p=[0.6, 0.28, 0.12])
    p = np.where(kind == 0, rng.uniform(0.0005, 0.01, n),
                 np.where(kind == 1, rng.uniform(0.01, 0.2, n), rng.uniform(0.5, 1.0, n)))
    lam = np.where(kind == 2, rng.lognormal(1.5, 1.5, n), rng.lognormal(0, 0.7, n))
    active = rng.random((n, 1440), dtype=np.float32) < p[:, None].astype(np.float32)
    counts = np.where(active, 1 + rng.poisson(lam[:, None], (n, 1440)), 0).astype(np.int32)

    def hexes(salt: str, k: int) -> list[str]:
        return [hashlib.sha256(f"{salt}{i}".encode()).hexdigest() for i in range(k)]

    owners, apps, funcs = hexes("o", n // 4 + 1), hexes("a", n // 2 + 1), hexes("f", n)
    ids = pl.DataFrame({
        "HashOwner": [owners[i // 4] for i in range(n)], "HashApp": [apps[i // 2] for i in range(n)],
        "HashFunction": funcs,
        "Trigger": rng.choice(["http", "timer", "event", "queue", "storage", "orchestration", "others"], n),
    })
    ids.hstack(pl.DataFrame(counts, schema=[str(m) for m in range(1, 1441)])).write_csv(path)


def make_gpu_files(root: Path, n_files: int = 2000, seed: int = 2) -> None:
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    for i in range(n_files):
        folder = root / "gpu" / f"{i * 2 // n_files:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        gpus = int(rng.integers(1, 3))
        samples = 3000 // gpus
        t = 1_614_556_800 + float(rng.integers(0, 10**7)) + np.repeat(np.arange(samples) * 0.1, gpus)
        util = rng.integers(0, 101, samples * gpus)
        used = rng.integers(0, 32_510, samples * gpus)
        temp_mem = (38 + util // 6).astype(str).astype(object)
        temp_mem[rng.random(samples * gpus) < 0.05] = "[N/A]"
        frame = pl.DataFrame({
            "timestamp": np.round(t, 3), "gpu_index": np.tile(np.arange(gpus), samples), "utilization_gpu_pct": util,
            "utilization_memory_pct": util // 3, "memory_free_MiB": 32_510 - used, "memory_used_MiB": used,
            "temperature_gpu": 40 + util // 5, "temperature_memory": pl.Series(temp_mem.tolist(), dtype=pl.String),
            "power_draw_W": np.round(50 + util * 2.5 + rng.random(samples * gpus), 2), "pcie_link_width_current": 16,
        })
        job = int(rng.integers(10**13, 10**14))
        frame.write_csv(folder / f"{job}-r{int(rng.integers(10**6, 10**7))}-n{int(rng.integers(10**5, 10**6))}.csv")


# ------------------------------------------------------------------ one timed run (in a child process)
def run_ours(case: str, data: Path, out: Path) -> dict:
    from wattlas.ingest import ingest

    source, table = {"azure": ("azure-functions-2019", "function_invocations"),
                     "gpu": ("supercloud", "gpu_samples")}[case]
    start = time.perf_counter()
    report = ingest(source, [data], out)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": report.rows[table]}


def run_duckdb(case: str, data: Path, out: Path) -> dict:
    import duckdb

    out.mkdir(parents=True, exist_ok=True)
    target = out / "out.parquet"
    if case == "azure":
        sql = f"""
        COPY (
          SELECT 'all' AS trace, HashOwner AS owner_id, HashApp AS app_id, HashFunction AS function_id,
                 1::INTEGER AS day_index, (minute::BIGINT - 1) * 60 AS time_s, 60::INTEGER AS bin_s,
                 invocations::BIGINT AS invocations
          FROM (UNPIVOT (SELECT * EXCLUDE (Trigger) FROM read_csv('{data}', header = true))
                ON COLUMNS(* EXCLUDE (HashOwner, HashApp, HashFunction)) INTO NAME minute VALUE invocations)
          WHERE invocations > 0
        ) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"""
    else:
        pattern = r"(\d+)-(r\d+-n\d+)\.csv$"
        sql = f"""
        COPY (
          SELECT regexp_extract(filename, '{pattern}', 1)::BIGINT AS job_id,
                 regexp_extract(filename, '{pattern}', 2) AS node, gpu_index::INTEGER AS gpu_index,
                 timestamp AS time_s, make_timestamp((timestamp * 1e6)::BIGINT) AT TIME ZONE 'UTC' AS time,
                 timestamp - min(timestamp) OVER (PARTITION BY filename) AS elapsed_s,
                 utilization_gpu_pct::DOUBLE AS utilization_gpu_pct,
                 utilization_memory_pct::DOUBLE AS utilization_memory_pct,
                 memory_free_MiB::DOUBLE AS memory_free_mib, memory_used_MiB::DOUBLE AS memory_used_mib,
                 temperature_gpu::DOUBLE AS temperature_gpu_c, temperature_memory::DOUBLE AS temperature_memory_c,
                 power_draw_W::DOUBLE AS power_w, pcie_link_width_current::DOUBLE AS pcie_link_width
          FROM read_csv('{data}/gpu/*/*.csv', header = true, filename = true, nullstr = {NA},
                        types = {{'temperature_memory': 'DOUBLE'}})
        ) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"""
    start = time.perf_counter()
    con = duckdb.connect()
    con.execute(sql)
    seconds = time.perf_counter() - start
    rows = con.execute(f"SELECT count(*) FROM '{target}'").fetchone()[0]
    return {"seconds": seconds, "rows": rows}


def _own_peak_kib() -> int:
    # VmHWM counts from this process's exec; ru_maxrss can carry the forking parent's peak.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(which: str, case: str, data: Path, out: Path) -> None:
    result = (run_ours if which == "ours" else run_duckdb)(case, data, out)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # pool workers, if any
    result["peak_rss_mib"] = round(max(_own_peak_kib(), kids) / 1024, 1)
    print(json.dumps(result))


def generate(work: Path) -> None:
    """Write both data sets under ``work`` (run in a child so this process stays small)."""
    azure_dir, gpu_dir = work / "azure", work / "supercloud"
    if not (azure_dir / AZURE_NAME).exists():
        azure_dir.mkdir(parents=True, exist_ok=True)
        make_azure_day(azure_dir / AZURE_NAME)
    if not (gpu_dir / "gpu").exists():
        make_gpu_files(gpu_dir)


def timed(which: str, case: str, data: Path, work: Path, repeat: int) -> dict:
    best: dict | None = None
    for i in range(repeat):
        out = work / f"{which}-{case}-{i}"
        shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.run(
            [sys.executable, __file__, "--child", which, case, str(data), str(out)],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"{which} {case} failed:\n{proc.stderr}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["out"] = str(out)
        if best is None or result["seconds"] < best["seconds"]:
            best = {**result, "peak_rss_mib": max(result["peak_rss_mib"], (best or {}).get("peak_rss_mib", 0))}
        elif best is not None:
            best["peak_rss_mib"] = max(best["peak_rss_mib"], result["peak_rss_mib"])
    assert best is not None
    return best


def same_rows(case: str, ours: Path, duck: Path) -> bool:
    """Both outputs hold the same rows (compared as sorted multisets of the key columns)."""
    import duckdb

    if case == "azure":
        cols = "owner_id, app_id, function_id, day_index, time_s, bin_s, invocations"
        a = f"read_parquet('{ours}/tables/function_invocations/*/*.parquet')"
    else:
        cols = "job_id, node, gpu_index, time_s, round(elapsed_s, 6), temperature_memory_c, power_w"
        a = f"read_parquet('{ours}/tables/gpu_samples/*/*.parquet')"
    b = f"read_parquet('{duck}/out.parquet')"
    q = f"SELECT count(*) FROM ((SELECT {cols} FROM {a} EXCEPT ALL SELECT {cols} FROM {b}) UNION ALL " \
        f"(SELECT {cols} FROM {b} EXCEPT ALL SELECT {cols} FROM {a}))"
    return duckdb.connect().execute(q).fetchone()[0] == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", nargs=4, metavar=("WHICH", "CASE", "DATA", "OUT"))
    parser.add_argument("--generate", type=Path, default=None)
    args = parser.parse_args()
    if args.child:
        which, case, data, out = args.child
        child(which, case, Path(data), Path(out))
        return
    if args.generate:
        generate(args.generate)
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="wattlas-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    azure_dir, gpu_dir = work / "azure", work / "supercloud"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--generate", str(work)], check=True)
    print(f"generated data in {time.perf_counter() - t0:.1f} s under {work}", file=sys.stderr)
    results = {}
    for case, name, data in (("azure", "azure_2019_day", azure_dir / AZURE_NAME),
                             ("gpu", "supercloud_gpu_2000", gpu_dir)):
        ours = timed("ours", case, data, work, args.repeat)
        duck = timed("duckdb", case, data, work, args.repeat)
        results[name] = {
            "ours_s": round(ours["seconds"], 2), "duckdb_s": round(duck["seconds"], 2),
            "ratio": round(duck["seconds"] / ours["seconds"], 2),
            "rows": ours["rows"], "duckdb_rows": duck["rows"],
            "same_rows": same_rows(case, Path(ours["out"]), Path(duck["out"])),
            "peak_rss_mib": ours["peak_rss_mib"], "duckdb_peak_rss_mib": duck["peak_rss_mib"],
        }
        print(f"{name}: {results[name]}", file=sys.stderr)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({
        **results,
        "peak_rss_mib": max(r["peak_rss_mib"] for r in results.values()),
        "repeat": args.repeat, "cpus": os.cpu_count(),
        "input_mb": {"azure_2019_day": round((azure_dir / AZURE_NAME).stat().st_size / 1e6, 1)
                     if (azure_dir / AZURE_NAME).exists() else None},
    }))


if __name__ == "__main__":
    main()
