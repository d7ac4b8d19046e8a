"""Load the committed H100 measurement tables into a store, one input key per bench run.

    python datasets/wattlas-h100-2026-11-23/load.py STORE_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

from wattlas.store import Store

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "measurements" / "h100" / "2026-11-23"


def main(store_dir: str) -> None:
    with Store(store_dir).transaction("wattlas-bench") as tx:
        for table in ("bench_runs", "bench_results", "power_samples"):
            frame = pl.read_parquet(DATA / f"{table}.parquet")
            for (run_id,), rows in frame.group_by("run_id", maintain_order=True):
                tx.put(table, str(run_id), rows)


if __name__ == "__main__":
    main(sys.argv[1])
