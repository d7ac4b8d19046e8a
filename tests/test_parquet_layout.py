"""The Parquet layout every writer shares (wattlas._parquet): encodings, row groups, order, size.

Sizes are compared with DuckDB's writer on the same rows and codec, the file users would
otherwise write; the target is at most 1.05x. No timing here: speed is in benchmarks/.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wattlas._parquet import CODEC_LEVEL, ROW_GROUP_ROWS, ParquetSink
from wattlas.datasets import ReleaseDefinition, build_release
from wattlas.errors import InputFormatError
from wattlas.ingest import ingest
from wattlas.store import Store

ROWS = 300_000
HEADER = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"


def burstgpt_csv(path: Path, rows: int = ROWS, seed: int = 0) -> Path:
    """A BurstGPT_1-format file shaped like the benchmark's (benchmarks/ingest.py)."""
    rng = np.random.default_rng(seed)
    ts = 5 + np.cumsum(rng.gamma(0.5, 2.0, rows)).astype(np.int64)
    model = np.where(rng.random(rows) < 0.8, "ChatGPT", "GPT-4")
    req = rng.zipf(1.8, rows).clip(0, 30_000)
    resp = rng.lognormal(5, 1, rows).astype(np.int64)
    resp[rng.random(rows) < 0.07] = 0
    log = np.where(rng.random(rows) < 0.6, "Conversation log", "API log")
    lines = [f"{a},{b},{c},{d},{c + d},{e}" for a, b, c, d, e in
             zip(ts.tolist(), model.tolist(), req.tolist(), resp.tolist(), log.tolist(), strict=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "\n".join(lines) + "\n")
    return path


def llm_table(rows: int, seed: int = 1) -> pa.Table:
    """llm_requests rows like benchmarks/release.py's: two traces, arrival-ordered, an hour."""
    rng = np.random.default_rng(seed)
    parts = []
    for trace, share in (("code", 0.4), ("conv", 0.6)):
        n = int(rows * share)
        t = np.sort(rng.uniform(0, 3600, n))
        parts.append(pa.table({
            "trace": pa.array([trace] * n),
            "request_id": np.arange(n, dtype=np.int64),
            "arrival_s": t,
            "arrival_time": np.datetime64("2024-05-10T00:00:00", "us") + (t * 1e6).astype("timedelta64[us]"),
            "input_tokens": rng.zipf(1.6, n).clip(1, 30_000).astype(np.int64),
            "output_tokens": rng.lognormal(4.5, 1.0, n).astype(np.int64),
        }))
    return pa.concat_tables(parts)


def duckdb_bytes(files: list[Path], out: Path) -> int:
    """DuckDB's file for the same rows, columns and codec."""
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_parquet({[str(f) for f in files]!r})) TO '{out}' "
                "(FORMAT parquet, COMPRESSION zstd)")
    return out.stat().st_size


def encodings(path: Path) -> dict[str, set[str]]:
    meta = pq.ParquetFile(path).metadata
    out: dict[str, set[str]] = {}
    for rg in range(meta.num_row_groups):
        for i in range(meta.num_columns):
            col = meta.row_group(rg).column(i)
            out.setdefault(col.path_in_schema, set()).update(col.encodings)
    return out


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> tuple[Path, list[Path]]:
    tmp = tmp_path_factory.mktemp("layout")
    csv = burstgpt_csv(tmp / "in" / "BurstGPT_1.csv")
    store = Store(tmp / "store")
    ingest("burstgpt", [csv], store=store, workers=1)
    return csv, store.table_files("llm_requests")


def test_ingested_store_file_encodings_row_groups_and_order(ingested):
    _, files = ingested
    assert len(files) == 1
    enc = encodings(files[0])
    # polars chooses this path's encodings (see wattlas._parquet.sink_options): text is dictionary-encoded.
    for col in ("model", "log_type", "trace"):
        assert "RLE_DICTIONARY" in enc[col], (col, enc[col])
    meta = pq.ParquetFile(files[0]).metadata
    assert meta.num_rows == ROWS
    assert meta.num_row_groups == -(-ROWS // ROW_GROUP_ROWS)
    for rg in range(meta.num_row_groups):
        group = meta.row_group(rg)
        assert group.num_rows == min(ROW_GROUP_ROWS, ROWS - rg * ROW_GROUP_ROWS)
        for i in range(group.num_columns):
            assert group.column(i).compression == "ZSTD"
            assert group.column(i).statistics is not None and group.column(i).statistics.has_null_count
    # Rows stay in the raw file's order: request_id is the record number, so errors name lines.
    ids = pq.read_table(files[0], columns=["request_id", "arrival_s"])
    assert ids["request_id"].to_pylist() == list(range(ROWS))
    assert np.all(np.diff(ids["arrival_s"].to_numpy()) >= 0)


def test_ingested_store_file_is_no_larger_than_duckdbs(ingested, tmp_path):
    _, files = ingested
    ours = sum(f.stat().st_size for f in files)
    theirs = duckdb_bytes(files, tmp_path / "duck.parquet")
    assert ours <= 1.05 * theirs, (ours, theirs)


def test_put_writes_the_same_layout_within_duckdbs_size(tmp_path):
    """Transaction.put (bench runs, generated stores, manifests) writes the shared layout; pyarrow's
    default, a dictionary on every column, made these 1.07-1.11x DuckDB's file."""
    store = Store(tmp_path / "store")
    with store.transaction("azure-llm-2024") as tx:
        tx.put("llm_requests", "trace.csv", llm_table(400_000))
    files = store.table_files("llm_requests")
    ours = sum(f.stat().st_size for f in files)
    theirs = duckdb_bytes(files, tmp_path / "duck.parquet")
    assert ours <= 1.05 * theirs, (ours, theirs, ours / theirs)
    enc = encodings(files[0])
    assert "DELTA_BINARY_PACKED" in enc["request_id"] and "DELTA_BINARY_PACKED" in enc["arrival_time"]


def test_release_file_within_duckdbs_size_and_layout(tmp_path):
    store = Store(tmp_path / "store")
    with store.transaction("azure-llm-2024") as tx:
        tx.put("llm_requests", "trace.csv", llm_table(400_000))
    out = tmp_path / "rel"
    build_release(ReleaseDefinition(name="bench", tables=("llm_requests",)), out, store)
    ours = out / "data" / "llm_requests.parquet"
    duck = tmp_path / "duck.parquet"
    files = [str(f) for f in store.table_files("llm_requests")]
    duckdb.connect().execute(
        f"COPY (SELECT * FROM read_parquet({files!r}, hive_partitioning = true)) TO '{duck}' "
        "(FORMAT parquet, COMPRESSION zstd)"
    )
    assert ours.stat().st_size <= 1.05 * duck.stat().st_size, (ours.stat().st_size, duck.stat().st_size)
    enc = encodings(ours)
    assert "DELTA_BINARY_PACKED" in enc["request_id"] and "RLE_DICTIONARY" in enc["source"]


def test_sink_buffers_small_writes_into_whole_row_groups(tmp_path):
    path = tmp_path / "t.parquet"
    with ParquetSink(path, row_group_rows=1000) as sink:
        for start in range(0, 2500, 100):
            sink.write(pa.table({"id": np.arange(start, start + 100), "name": ["x"] * 100}))
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [1000, 1000, 500]
    assert pq.read_table(path)["id"].to_pylist() == list(range(2500))
    assert CODEC_LEVEL == 3  # DuckDB's default zstd level: the comparison above is like for like


def test_sink_removes_its_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "t.parquet"
    with pytest.raises(RuntimeError), ParquetSink(path, row_group_rows=10) as sink:
        sink.write(pa.table({"id": np.arange(25)}))
        raise RuntimeError("the query failed")
    assert not path.exists()


# Bad values past the first row group: the streamed write must still name file, line and column
# exactly as before (the messages are the ones tests/test_ingest_errors.py checks on 5 rows).
BAD = {
    "not-an-integer": (lambda line: line.replace(",GPT-4,", ",GPT-4,abc_") if ",GPT-4," in line else None,
                       "column 'Request tokens': 'abc_"),
    "empty-cell": (lambda line: ",".join(line.split(",")[:3] + [""] + line.split(",")[4:]),
                   "column 'Response tokens': empty value (expected an integer)"),
    "negative": (lambda line: ",".join(line.split(",")[:2] + ["-5"] + line.split(",")[3:]),
                 "column 'Request tokens': -5 is below the minimum 0"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_value_deep_in_a_large_file_names_file_line_and_column(case, tmp_path):
    edit, message = BAD[case]
    lines = burstgpt_csv(tmp_path / "good.csv", rows=200_000).read_text().splitlines()
    target = 150_000  # a data line, far past the first row group
    while edit(lines[target]) is None:
        target += 1
    lines[target] = edit(lines[target])
    bad = tmp_path / "in" / "BurstGPT_1.csv"
    bad.parent.mkdir()
    bad.write_text("\n".join(lines) + "\n")
    store = Store(tmp_path / "store")
    with pytest.raises(InputFormatError) as info:
        ingest("burstgpt", [bad], store=store, workers=1)
    assert str(info.value).startswith(f"BurstGPT_1.csv line {target + 1}, {message}"), str(info.value)
    assert store.table_files("llm_requests") == []
