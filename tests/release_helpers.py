"""Fixture stores for the release tests: every column type, nulls, several sources and keys."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from wattlas.store import Store

TS = pa.timestamp("us")


def llm_rows(trace: str, n: int, *, offset: float = 0.0, burst: bool = False) -> pa.Table:
    """``n`` llm_requests rows; BurstGPT-like (no wall clock, model, failures) when ``burst``."""
    base = datetime(2023, 11, 16, 18, 15, 0, 123456)
    return pa.table({
        "trace": [trace] * n,
        "request_id": list(range(n)),
        "arrival_s": [offset + 0.25 * i for i in range(n)],
        "arrival_time": pa.array(
            [None] * n if burst else [base.replace(second=i % 60) for i in range(n)], TS
        ),
        "arrival_tz": [None] * n,
        "model": ["ChatGPT" if i % 2 else "GPT-4" for i in range(n)] if burst else [None] * n,
        "log_type": ["Conversation log"] * n if burst else [None] * n,
        "session_id": [f"sess-é{i}" if burst and i % 3 == 0 else None for i in range(n)],
        "input_tokens": [100 + i for i in range(n)],
        "output_tokens": [i * 7 % 13 for i in range(n)],
        "images": pa.array([None] * n, pa.int32()),
        "elapsed_s": [1.5 + i if burst else None for i in range(n)],
        "failed": [i % 4 == 0 for i in range(n)] if burst else pa.array([None] * n, pa.bool_()),
    })


def manifest_row(name: str, rows: int) -> pa.Table:
    return pa.table({
        "input_name": [name],
        "input_path": [f"/data/{name}"],
        "size_bytes": [1000 + rows],
        "sha256": ["ab" * 32],
        "tables": [f'{{"llm_requests": {rows}}}'],
        "rows": [rows],
        "ingested_at": pa.array([datetime(2024, 5, 1, 12, 0, 0, 5, tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
        "wattlas_version": ["0.1.0"],
    })


def fixture_store(root: Path, *, extra_source: str | None = None) -> Store:
    """A store with three registered sources (two licences) and, optionally, one unregistered."""
    store = Store(root)
    with store.transaction("azure-llm-2023") as tx:
        for name, n in (("AzureLLMInferenceTrace_code.csv", 7), ("AzureLLMInferenceTrace_conv.csv", 5)):
            trace = name.split("_")[1].split(".")[0]
            tx.put("llm_requests", name, llm_rows(trace, n))
            tx.put("ingest_manifest", name, manifest_row(name, n))
    with store.transaction("burstgpt") as tx:
        tx.put("llm_requests", "BurstGPT_1.csv", llm_rows("BurstGPT_1", 9, offset=-2.0, burst=True))
        tx.put("ingest_manifest", "BurstGPT_1.csv", manifest_row("BurstGPT_1.csv", 9))
    with store.transaction("azure-llm-2023-sample") as tx:
        tx.put("llm_requests", "AzureLLMInferenceTrace_code.csv", llm_rows("code", 4, offset=1.0))
    if extra_source:
        with store.transaction(extra_source) as tx:
            tx.put("llm_requests", "run-0001", llm_rows("bench", 3))
    return store


def table(store: Store, name: str, where: str | None = None) -> pl.DataFrame:
    return store.sql(f"select * from {name}" + (f" where {where}" if where else ""))


def wattlas(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wattlas", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def plain(value: Any) -> Any:
    """mlcroissant's record values as plain Python (bytes -> str, pandas -> datetime, NA -> None)."""
    import pandas as pd

    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, list | tuple) or getattr(value, "ndim", 0) == 1:  # list columns
        return [plain(v) for v in value]
    if value is None or (not isinstance(value, str | bytes) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def expected_records(df: pl.DataFrame, table_name: str) -> list[dict[str, Any]]:
    """Store rows in the shape mlcroissant yields (dates become midnight datetimes)."""
    out = []
    for row in df.iter_rows(named=True):
        rec = {}
        for k, v in row.items():
            if isinstance(v, date) and not isinstance(v, datetime):
                v = datetime(v.year, v.month, v.day)
            rec[f"{table_name}/{k}"] = v
        out.append(rec)
    return out


def utc(df: pl.DataFrame) -> pl.DataFrame:
    """Zone-aware columns in UTC: DuckDB views give them in the host's session zone (e.g. Etc/UTC)."""
    return df.with_columns(
        pl.col(n).dt.convert_time_zone("UTC")
        for n, t in df.schema.items() if isinstance(t, pl.Datetime) and t.time_zone
    )
