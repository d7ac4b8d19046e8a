"""Our Parquet files vs DuckDB's for the same rows: bytes, and three queries timed on both.

``python benchmarks/_parquet_compare.py --ours F... [--duckdb FILE]`` prints one JSON object.
Without ``--duckdb``, DuckDB first writes the rows of ``--ours`` itself with ``COPY ... TO
(FORMAT parquet, COMPRESSION zstd)``: same rows, same columns, same codec. Both sides must hold
the same rows (count, and sums of two columns) and give the same answers to the three queries
before any size or time ratio is printed. Run it as a child process: the scripts that call it
measure their other children's peak RSS, which counts from the parent's size.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# Three queries an analysis runs on llm_requests: a grouped full scan of text and counts, one
# minute of arrivals (row-group statistics prune the rest), and ids and times per trace.
QUERIES = {
    "group_by_model": "SELECT model, log_type, count(*), sum(input_tokens), sum(output_tokens) FROM t "
                      "GROUP BY ALL ORDER BY ALL",
    "one_minute": "SELECT count(*), sum(output_tokens) FROM t WHERE arrival_s >= {mid} AND arrival_s < {mid} + 60",
    "per_trace": "SELECT trace, count(*), max(request_id), round(avg(arrival_s), 6) FROM t "
                 "GROUP BY trace ORDER BY trace",
}


def _scan(files: list[str]) -> str:
    return f"read_parquet({files!r}, union_by_name = true)"


def _run(con, files: list[str], sql: str) -> tuple[float, list]:
    con.execute(f"CREATE OR REPLACE TEMP VIEW t AS SELECT * FROM {_scan(files)}")
    started = time.perf_counter()
    rows = con.execute(sql).fetchall()
    return time.perf_counter() - started, rows


def compare(ours: list[str], theirs: str | None, repeat: int) -> dict:
    import duckdb

    con = duckdb.connect()
    tmp = None
    if theirs is None:
        tmp = tempfile.TemporaryDirectory()
        theirs = str(Path(tmp.name) / "duckdb.parquet")
        con.execute(f"COPY (SELECT * FROM {_scan(ours)}) TO '{theirs}' (FORMAT parquet, COMPRESSION zstd)")
    check = "SELECT count(*), sum(input_tokens), sum(output_tokens) FROM t"
    a, b = _run(con, ours, check)[1], _run(con, [theirs], check)[1]
    if a != b:
        raise SystemExit(f"the two sides hold different rows: {a} vs {b}")
    lo, hi = _run(con, ours, "SELECT min(arrival_s), max(arrival_s) FROM t")[1][0]
    mid = float((lo + hi) / 2)
    times: dict[str, list[float]] = {}
    for name, q in QUERIES.items():
        sql = q.format(mid=mid)
        best = [float("inf"), float("inf")]
        for _ in range(repeat):  # interleaved, best of N: the machine is shared
            for i, files in enumerate((ours, [theirs])):
                t, rows = _run(con, files, sql)
                best[i] = min(best[i], t)
                if i == 0:
                    answer = rows
                elif rows != answer:
                    raise SystemExit(f"{name}: the two files answer differently: {answer} vs {rows}")
        times[name] = [round(best[0], 4), round(best[1], 4)]
    ours_bytes = sum(os.path.getsize(f) for f in ours)
    theirs_bytes = os.path.getsize(theirs)
    if tmp is not None:
        tmp.cleanup()
    return {
        "rows": a[0][0],
        "parquet_bytes": ours_bytes,
        "duckdb_parquet_bytes": theirs_bytes,
        "size_ratio": round(ours_bytes / theirs_bytes, 3),
        "query_s": times,  # [ours, DuckDB's file], best of N
        # DuckDB's time / ours, summed over the queries: >= 1 means ours answers at least as fast.
        "query_ratio": round(sum(t[1] for t in times.values()) / sum(t[0] for t in times.values()), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ours", nargs="+", required=True)
    ap.add_argument("--duckdb", help="DuckDB's own file of the same rows (default: DuckDB rewrites --ours)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(json.dumps(compare(args.ours, args.duckdb, args.repeat)))


def run_compare(ours: list[Path], theirs: Path | None = None, repeat: int = 5) -> dict:
    """:func:`compare` in a child process (keeps the caller's RSS small); returns its JSON."""
    import subprocess

    cmd = [sys.executable, __file__, "--ours", *map(str, ours), "--repeat", str(repeat)]
    if theirs is not None:
        cmd += ["--duckdb", str(theirs)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
