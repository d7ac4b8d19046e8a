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
    try:
        if wall_clock:
            # The first row's time as a literal: `col.first()` in the stream made polars hold the
            # whole column (2.4 GiB for the 44M rows of the Azure 2024 week).
            t0 = _first_arrival(src, out_dir, layouts, display)
            extra["arrival_s"] = (pl.col("arrival_time") - t0).dt.total_microseconds() / 1e6
        convert_csv(src, layouts, out, display=display, extra=extra, select="llm_requests")
    finally:
        if src != path:
            src.unlink(missing_ok=True)
    return {"llm_requests": [out]}


def _first_arrival(src: Path, out_dir: Path, layouts: list[CsvLayout], display: str) -> pl.Expr:
    """The first data row's ``arrival_time``, parsed by the same layout, as a typed literal."""
    head = out_dir / f"{src.name}.head.csv"
    with src.open("rb") as f:
        head.write_bytes(f.readline() + f.readline())  # the header and the first data row (line 2)
    first = out_dir / f"{src.name}.head.parquet"
    try:
        convert_csv(head, layouts, first, display=display, select=["arrival_time"], row_index=None)
        col = pl.read_parquet(first).get_column("arrival_time")
    finally:
        head.unlink(missing_ok=True)
        first.unlink(missing_ok=True)
    return pl.lit(col[0], dtype=col.dtype)
