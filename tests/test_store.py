"""The store: atomic commits, empty views, conformity checks, and one writer at a time."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pyarrow as pa
import pytest

from wattlas.errors import StoreError, StoreLockedError
from wattlas.ingest import ingest
from wattlas.store import Store

from .llm_fixtures import BURSTGPT_1, write


def _manifest(name: str = "a.csv") -> pa.Table:
    return pa.table({
        "input_name": [name], "size_bytes": [1], "rows": [1],
        "ingested_at": pa.array([0], pa.timestamp("us", tz="UTC")), "wattlas_version": ["t"],
    })


def test_empty_store_has_typed_empty_views(store_dir):
    con = Store(store_dir).connect()
    cols = con.sql("describe llm_requests").fetchall()
    assert [c[0] for c in cols][:4] == ["source", "trace", "request_id", "arrival_s"]
    assert con.sql("select count(*) from llm_requests").fetchall() == [(0,)]


def test_put_refuses_unknown_columns_and_required_nulls(store_dir):
    store = Store(store_dir)
    with pytest.raises(StoreError, match="has no column"), store.transaction("demo") as tx:
        tx.put("ingest_manifest", "a", _manifest().append_column("bogus", pa.array([1])))
    bad = _manifest().set_column(2, "rows", pa.array([None], pa.int64()))
    with pytest.raises(StoreError, match="may not be null"), store.transaction("demo") as tx:
        tx.put("ingest_manifest", "a", bad)
    assert not store.catalog_path.exists()


def test_exception_inside_transaction_commits_nothing(store_dir):
    store = Store(store_dir)
    with store.transaction("demo") as tx:
        tx.put("ingest_manifest", "a", _manifest("a"))
    before = store.catalog_path.read_bytes()
    with pytest.raises(KeyboardInterrupt), store.transaction("demo") as tx:
        tx.put("ingest_manifest", "b", _manifest("b"))
        raise KeyboardInterrupt
    assert store.catalog_path.read_bytes() == before
    assert store.sql("select input_name from ingest_manifest").rows() == [("a",)]


def test_crash_before_catalog_swap_leaves_old_tables(store_dir, monkeypatch):
    store = Store(store_dir)
    with store.transaction("demo") as tx:
        tx.put("ingest_manifest", "a", _manifest("a"))
    before = store.catalog_path.read_bytes()
    real_replace = os.replace

    def crash_on_catalog(src, dst):
        if str(dst).endswith("catalog.json"):
            raise OSError("simulated crash")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_catalog)
    with pytest.raises(OSError, match="simulated crash"), store.transaction("demo") as tx:
        tx.put("ingest_manifest", "a", _manifest("a2"))
    monkeypatch.setattr(os, "replace", real_replace)
    assert store.catalog_path.read_bytes() == before
    assert store.sql("select input_name from ingest_manifest").rows() == [("a",)]
    # The failed commit undid itself through its journal: no file the catalog does not list.
    assert len(list((store_dir / "tables").rglob("*.parquet"))) == 1
    assert not any((store_dir / ".pending").iterdir())


def test_lock_timeout_names_holder(store_dir):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from wattlas.store import Store\n"
         f"with Store({str(store_dir)!r}).lock():\n print('locked', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with (
            pytest.raises(StoreLockedError, match=f"locked by pid {holder.pid}"),
            Store(store_dir, lock_timeout_s=0.5).transaction("demo"),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_second_ingest_waits_for_the_first(tmp_path, store_dir):
    raw = write(tmp_path, "BurstGPT_1.csv", BURSTGPT_1)
    store = Store(store_dir)
    with store.lock():
        proc = subprocess.Popen(
            [sys.executable, "-m", "wattlas", "ingest", "burstgpt", "--from", str(raw), "--store", str(store_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        time.sleep(2.0)
        assert proc.poll() is None, "the second writer must wait while the lock is held"
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "waiting" in err
    assert store.sql("select count(*) from llm_requests").item() == 5


def test_concurrent_ingests_leave_one_copy(tmp_path, store_dir):
    raw = write(tmp_path, "BurstGPT_1.csv", BURSTGPT_1)
    cmd = [sys.executable, "-m", "wattlas", "ingest", "burstgpt", "--from", str(raw), "--store", str(store_dir)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    store = Store(store_dir)
    assert store.sql("select count(*) from llm_requests").item() == 5
    assert store.sql("select count(*) from ingest_manifest").item() == 1


def test_interrupted_multi_file_ingest_resumes(tmp_path, store_dir, monkeypatch):
    """Files finished before a failure are staged and reused; rows appear once, at the end."""
    from wattlas.ingest import engine

    raw = tmp_path / "raw"
    write(raw, "BurstGPT_1.csv", BURSTGPT_1)
    write(raw, "BurstGPT_2.csv", BURSTGPT_1)
    real = engine.run_batch
    calls = []

    def flaky(source_id, items, stage, fp, *rest):
        names = [os.path.basename(i["path"]) for i in items]
        calls.extend(names)
        if "BurstGPT_2.csv" in names and calls.count("BurstGPT_2.csv") == 1:
            raise KeyboardInterrupt
        return real(source_id, items, stage, fp, *rest)

    monkeypatch.setattr(engine, "run_batch", flaky)
    with pytest.raises(KeyboardInterrupt):
        ingest("burstgpt", [raw], store=store_dir, workers=1)
    assert Store(store_dir).sql("select count(*) from llm_requests").item() == 0
    report = ingest("burstgpt", [raw], store=store_dir, workers=1)
    assert report.resumed_files == ["BurstGPT_1.csv"]
    assert calls == ["BurstGPT_1.csv", "BurstGPT_2.csv", "BurstGPT_2.csv"]
    assert Store(store_dir).sql("select count(*) from llm_requests").item() == 10
    assert not (store_dir / ".staging" / "burstgpt").exists()


def test_put_copies_files_from_outside_the_store(tmp_path, store_dir):
    import pyarrow.parquet as pq

    outside = tmp_path / "release" / "manifest.parquet"
    outside.parent.mkdir()
    from wattlas.schemas import get_table
    from wattlas.store import _conform

    pq.write_table(_conform(_manifest("kept"), get_table("ingest_manifest")), outside)
    before = outside.read_bytes()
    with Store(store_dir).transaction("demo") as tx:
        tx.put("ingest_manifest", "kept", outside)
    assert outside.read_bytes() == before  # the caller's file is not consumed
    assert Store(store_dir).sql("select input_name from ingest_manifest").rows() == [("kept",)]


def test_column_added_after_files_were_written_reads_as_null(store_dir, monkeypatch):
    """Schema evolution: files without a newly declared column still query, with nulls."""
    import dataclasses

    from wattlas import schemas
    from wattlas.schemas import Column

    store = Store(store_dir)
    with store.transaction("demo") as tx:
        tx.put("ingest_manifest", "a", _manifest("a"))
    table = schemas.TABLES["ingest_manifest"]
    grown = dataclasses.replace(table, columns=(*table.columns, Column("added_later", "float64", "new")))
    monkeypatch.setitem(schemas.TABLES, "ingest_manifest", grown)
    assert store.sql("select input_name, added_later from ingest_manifest").rows() == [("a", None)]
