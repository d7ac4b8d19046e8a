"""What the LLM request-trace modules share: a one-file conversion to `llm_requests`."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ..csvread import CsvLayout, convert_csv, gunzip


def convert_llm_csv(
    path: Path, out_dir: Path, layouts: list[CsvLayout], trace: str, *, wall_clock: bool
) -> dict[str, list[Path]]:
    """Convert one raw LLM trace file (``.csv`` or ``.csv.gz``) to an ``llm_requests`` part.

    For wall-clock traces ``arrival_s`` counts from the first row's timestamp (the files are
    sorted; a later row earlier than the first gives a negative value, which is kept).
    """
    display = path.name
    src = gunzip(path, out_dir, display) if path.suffix == ".gz" else path
    out = out_dir / f"llm_requests-{trace}.parquet"
    extra: dict[str, pl.Expr] = {"trace": pl.lit(trace, pl.String)}
    if wall_clock:
        t0 = pl.col("arrival_time").first()
        extra["arrival_s"] = (pl.col("arrival_time") - t0).dt.total_microseconds() / 1e6
    try:
        convert_csv(src, layouts, out, display=display, extra=extra, select="llm_requests")
    finally:
        if src != path:
            src.unlink(missing_ok=True)
    return {"llm_requests": [out]}
