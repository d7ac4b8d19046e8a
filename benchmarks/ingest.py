"""Ingest speed and memory: `wattlas ingest burstgpt --from` vs raw DuckDB COPY to Parquet.

Generates an N-row CSV in the BurstGPT_1 format (header, integer timestamps, both models, both
log types, ~7% failures), then in the same run times, each in its own process:

- wattlas: ``wattlas ingest burstgpt --from FILE --store S`` (parse, normalize, validate,
  hash the input, write zstd Parquet, commit);
- DuckDB:  ``COPY (SELECT * FROM read_csv(FILE)) TO 'x.parquet' (FORMAT parquet, COMPRESSION zstd)``.

Both outputs must hold the same rows (count and token sums) before a ratio is printed. Then the
store's Parquet is compared with DuckDB's writer on the same rows (``parquet_bytes``,
``duckdb_parquet_bytes``, ``size_ratio``; DuckDB rewrites the store's table, so columns and
codec match) and the same three queries are timed on both (``query_s``, ``query_ratio``: DuckDB's
time / ours; see ``_parquet_compare.py``).

Peak RSS is each process's own maximum resident set (``wait4``). The ingest also runs at other
sizes (default 1M and 20M rows) to show how memory behaves as the file grows: it rises to a
plateau set by the streaming engine's buffers, then stays flat. The last line printed is one JSON object.

    python benchmarks/ingest.py [--rows 5000000] [--scaling-rows 1000000,20000000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _measure import run_child  # benchmarks/ is on sys.path when a script runs
from _parquet_compare import run_compare


def generate(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    chunk = 500_000
    t0 = 5
    with open(path, "w", newline="") as fh:
        fh.write("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            ts = t0 + np.cumsum(rng.gamma(0.5, 2.0, n)).astype(np.int64)
            t0 = int(ts[-1])
            model = np.where(rng.random(n) < 0.8, "ChatGPT", "GPT-4")
            req = rng.zipf(1.8, n).clip(0, 30_000)
            resp = rng.lognormal(5, 1, n).astype(np.int64)
            resp[rng.random(n) < 0.07] = 0
            log = np.where(rng.random(n) < 0.6, "Conversation log", "API log")
            lines = [
                f"{a},{b},{c},{d},{c + d},{e}"
                for a, b, c, d, e in zip(ts.tolist(), model.tolist(), req.tolist(), resp.tolist(),
                                         log.tolist(), strict=True)
            ]
            fh.write("\n".join(lines) + "\n")



def wattlas_cmd(csv: Path, store: Path) -> list[str]:
    return [sys.executable, "-m", "wattlas", "ingest", "burstgpt", "--from", str(csv), "--store", str(store)]


def duckdb_cmd(csv: Path, out: Path) -> list[str]:
    sql = (f"COPY (SELECT * FROM read_csv('{csv}')) TO '{out}' "
           "(FORMAT parquet, COMPRESSION zstd)")
    return [sys.executable, "-c", f"import duckdb; duckdb.sql({sql!r})"]


def same_work(store_files: list[Path], duck: Path) -> None:
    """Refuse to compare unless the store and DuckDB's raw COPY hold the same rows and tokens."""
    import duckdb

    con = duckdb.connect()
    ours = con.execute(f"SELECT count(*), sum(input_tokens), sum(output_tokens) FROM read_parquet("
                       f"{[str(f) for f in store_files]!r})").fetchone()
    theirs = con.execute(f'SELECT count(*), sum("Request tokens"), sum("Response tokens") FROM '
                         f"read_parquet('{duck}')").fetchone()
    if ours != theirs:
        raise SystemExit(f"wattlas and DuckDB wrote different rows: {ours} vs {theirs}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--scaling-rows", default="1000000,20000000",
                    help="other sizes to run, to show how peak RSS grows with the file")
    ap.add_argument("--repeat", type=int, default=2, help="best of N for each timing")
    ap.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:
        generate(args.generate, args.rows)
        return
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        rss_by_rows = {}
        sizes = {args.rows} | {int(x) for x in args.scaling_rows.split(",") if x}
        for rows in sorted(sizes):
            d = tmp / str(rows)
            d.mkdir()
            csv = d / "BurstGPT_1.csv"
            # In a child process: a child's peak RSS counts from its parent's size at fork time,
            # so this process must stay small.
            subprocess.run([sys.executable, __file__, "--generate", str(csv), "--rows", str(rows)], check=True)
            w_times, d_times, w_rss, d_rss = [], [], [], []
            for i in range(args.repeat):
                # interleaved, fresh outputs each time
                t, rss, _ = run_child(duckdb_cmd(csv, d / f"duck{i}.parquet"))
                d_times.append(t)
                d_rss.append(rss)
                t, rss, _ = run_child(wattlas_cmd(csv, d / f"store{i}"))
                w_times.append(t)
                w_rss.append(rss)
            rss_by_rows[rows] = max(w_rss)
            if rows == args.rows:
                result = {
                    "rows": rows,
                    "csv_mib": round(csv.stat().st_size / 2**20, 1),
                    "wattlas_s": round(min(w_times), 3),
                    "duckdb_copy_s": round(min(d_times), 3),
                    "ratio": round(min(d_times) / min(w_times), 3),
                    "peak_rss_mib": round(max(w_rss), 1),
                    "duckdb_peak_rss_mib": round(max(d_rss), 1),
                }
            print(f"{rows:>10,} rows: wattlas {min(w_times):.2f} s ({max(w_rss):.0f} MiB), "
                  f"duckdb COPY {min(d_times):.2f} s ({max(d_rss):.0f} MiB)", file=sys.stderr)
        # After every timed child: this process stays small while they run.
        d = tmp / str(args.rows)
        ours = sorted((d / "store0" / "tables" / "llm_requests").rglob("*.parquet"))
        same_work(ours, d / "duck0.parquet")
        layout = run_compare(ours)
        result.update({k: layout[k] for k in ("parquet_bytes", "duckdb_parquet_bytes", "size_ratio",
                                              "query_s", "query_ratio")})
        result["peak_rss_mib_by_rows"] = {str(k): round(v, 1) for k, v in rss_by_rows.items()}
        result["cpus"] = os.cpu_count()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
