"""Release files: `wattlas release build` vs a plain DuckDB `COPY ... TO parquet` export.

Generates a store holding an N-row ``llm_requests`` table (two traces, arrival-ordered, an
hour of traffic), then in the same run, each in its own process (wall time, peak RSS):

- wattlas: ``wattlas release build bench --tables llm_requests --store S -o R`` (Parquet,
  croissant.json, dataset card, checksums);
- DuckDB:  ``COPY (SELECT * FROM read_parquet(<store files>, hive_partitioning = true)) TO
  'x.parquet' (FORMAT parquet, COMPRESSION zstd)``, the obvious one-line export.

Both files are then read the way a remote client reads them, through a file object that counts
every read call (one call is one HTTP range request for a remote reader) and every byte:

- ``select``: one minute of one trace, three columns (row-group statistics prune the rest);
- ``scan``: one column over the whole table (a full aggregate).

``parquet_bytes``, ``duckdb_parquet_bytes`` and ``size_ratio`` compare the two files, and the
same three queries run on both through DuckDB (``query_s``, ``query_ratio``: DuckDB's time / ours;
see ``_parquet_compare.py``, which first checks that both files hold the same rows).
The last line printed is one JSON object.

    python benchmarks/release.py [--rows 4000000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _measure import run_child  # benchmarks/ is on sys.path when a script runs
from _parquet_compare import run_compare


def generate(store_root: Path, rows: int, seed: int = 0) -> None:
    import numpy as np
    import pyarrow as pa

    from wattlas.store import Store

    rng = np.random.default_rng(seed)
    store = Store(store_root)
    with store.transaction("azure-llm-2024") as tx:
        for trace, share in (("code", 0.4), ("conv", 0.6)):
            n = int(rows * share)
            t = np.sort(rng.uniform(0, 3600, n))
            start = np.datetime64("2024-05-10T00:00:00", "us")
            tx.put("llm_requests", f"AzureLLMInferenceTrace_{trace}_1week.csv", pa.table({
                "trace": pa.array([trace] * n),
                "request_id": np.arange(n, dtype=np.int64),
                "arrival_s": t,
                "arrival_time": start + (t * 1e6).astype("timedelta64[us]"),
                "arrival_tz": pa.array(["UTC"] * n),
                "input_tokens": rng.zipf(1.6, n).clip(1, 30_000).astype(np.int64),
                "output_tokens": rng.lognormal(4.5, 1.0, n).astype(np.int64),
            }))


class CountingFile(io.RawIOBase):
    """A read-only file that counts read calls and bytes (a stand-in for HTTP range requests)."""

    def __init__(self, path: Path):
        self._f = open(path, "rb")  # noqa: SIM115 - closed in close()
        self.calls = 0
        self.bytes = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def readinto(self, buf) -> int:
        n = self._f.readinto(buf)
        self.calls += 1
        self.bytes += n
        return n

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self.calls += 1
        self.bytes += len(data)
        return data

    def close(self) -> None:
        self._f.close()
        super().close()


def remote_reads(path: Path) -> dict[str, int]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out: dict[str, int] = {}
    f = CountingFile(path)
    t = pq.read_table(f, columns=["arrival_s", "input_tokens", "output_tokens"],
                      filters=[("trace", "=", "conv"), ("arrival_s", ">=", 1800.0), ("arrival_s", "<", 1860.0)])
    out.update(select_rows=t.num_rows, select_calls=f.calls, select_bytes=f.bytes)
    f.close()
    f = CountingFile(path)
    total = pc.sum(pq.read_table(f, columns=["input_tokens"])["input_tokens"]).as_py()
    out.update(scan_sum=total, scan_calls=f.calls, scan_bytes=f.bytes)
    f.close()
    meta = pq.ParquetFile(path).metadata
    out.update(row_groups=meta.num_row_groups, size_bytes=path.stat().st_size)
    return out



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4_000_000)
    ap.add_argument("--repeat", type=int, default=2, help="best of N for each timing")
    ap.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:
        generate(args.generate, args.rows)
        return
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        store = tmp / "store"
        subprocess.run([sys.executable, __file__, "--generate", str(store), "--rows", str(args.rows)], check=True)
        files = sorted(str(p) for p in (store / "tables" / "llm_requests").rglob("*.parquet"))
        w_times, d_times, w_rss, d_rss = [], [], [], []
        for i in range(args.repeat):
            duck = tmp / f"duck{i}.parquet"
            sql = (f"COPY (SELECT * FROM read_parquet({files!r}, hive_partitioning = true)) TO '{duck}' "
                   "(FORMAT parquet, COMPRESSION zstd)")
            t, rss, _ = run_child([sys.executable, "-c", f"import duckdb; duckdb.sql({sql!r})"])
            d_times.append(t)
            d_rss.append(rss)
            rel = tmp / f"rel{i}"
            t, rss, _ = run_child([sys.executable, "-m", "wattlas", "release", "build", "bench",
                                   "--tables", "llm_requests", "--store", str(store), "-o", str(rel)])
            w_times.append(t)
            w_rss.append(rss)
        layout = run_compare([tmp / "rel0" / "data" / "llm_requests.parquet"], tmp / "duck0.parquet")
        ours = remote_reads(tmp / "rel0" / "data" / "llm_requests.parquet")
        theirs = remote_reads(tmp / "duck0.parquet")
        if ours["select_rows"] != theirs["select_rows"] or ours["scan_sum"] != theirs["scan_sum"]:
            raise SystemExit(f"the two files disagree: {ours} vs {theirs}")
        for name, r in (("wattlas", ours), ("duckdb", theirs)):
            print(f"{name:>8}: {r['size_bytes'] / 2**20:.1f} MiB, {r['row_groups']} row groups; "
                  f"select {r['select_calls']} reads / {r['select_bytes'] / 2**20:.2f} MiB; "
                  f"scan {r['scan_calls']} reads / {r['scan_bytes'] / 2**20:.2f} MiB", file=sys.stderr)
        result = {
            "rows": args.rows,
            "wattlas_build_s": round(min(w_times), 3),
            "duckdb_copy_s": round(min(d_times), 3),
            "ratio": round(min(d_times) / min(w_times), 3),
            "peak_rss_mib": round(max(w_rss), 1),
            "duckdb_peak_rss_mib": round(max(d_rss), 1),
            "wattlas_file_mib": round(ours["size_bytes"] / 2**20, 2),
            "duckdb_file_mib": round(theirs["size_bytes"] / 2**20, 2),
            "wattlas_row_groups": ours["row_groups"],
            "duckdb_row_groups": theirs["row_groups"],
            "select_reads": [ours["select_calls"], theirs["select_calls"]],
            "select_mib": [round(ours["select_bytes"] / 2**20, 3), round(theirs["select_bytes"] / 2**20, 3)],
            "scan_reads": [ours["scan_calls"], theirs["scan_calls"]],
            "scan_mib": [round(ours["scan_bytes"] / 2**20, 3), round(theirs["scan_bytes"] / 2**20, 3)],
            **{k: layout[k] for k in ("parquet_bytes", "duckdb_parquet_bytes", "size_ratio", "query_s",
                                      "query_ratio")},
            "cpus": os.cpu_count(),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
