"""MIT Supercloud: Slurm jobs with TRES parsed as pairs, GPU files with [N/A], CPU and node series."""

from __future__ import annotations

from pathlib import Path

import pytest

from wattlas.cli import main
from wattlas.errors import InputFormatError
from wattlas.ingest import ingest
from wattlas.store import Store

from ._ingest_helpers import copy_fixture, fixture_bytes, snapshot

H = "hpc"
GPU_A = "32585007376605-r8939293-n208530.csv"
GPU_B = "409499185-r8939293-n208531.csv"


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """The bucket's layout: top-level files, cpu/NNNN/ and gpu/NNNN/ folders."""
    root = tmp_path / "202201"
    for name in ("slurm-log.csv", "labelled_jobids.csv", "tres-mapping.txt", "node-data.csv"):
        copy_fixture(H, name, root / name)
    copy_fixture(H, GPU_A, root / "gpu" / "0000" / GPU_A)
    copy_fixture(H, GPU_B, root / "gpu" / "0001" / GPU_B)
    copy_fixture(H, "409499185-timeseries.csv", root / "cpu" / "0000" / "409499185-timeseries.csv")
    (root / "cpu" / "0000" / "409499185-summary.csv").write_text("Step,Node\n")  # aggregates: not ingested
    return root


def test_whole_dataset_through_the_cli(dataset: Path, store_dir: Path, capsys):
    assert main(["ingest", "supercloud", "--from", str(dataset), "--store", str(store_dir), "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert "hpc_jobs: 4 rows written" in err
    assert "cells read as null" in err and ": 4" in err  # [N/A] x2, [Not Supported] x2
    store = Store(store_dir)
    jobs = {r[0]: r for r in store.sql(
        "select job_id, cpus, mem_mb, nodes, gpus, req_gpus, gpu_type, label, state, wait_s, run_s, exit_code "
        "from hpc_jobs"
    ).rows()}
    assert jobs[32585007376605] == (32585007376605, 20, 10010, 1, 1, 1, "gpu:volta", "resnet50", "COMPLETED",
                                    60, 3600, 0)
    # `2=10010` holds the digits 1001 but is memory: no GPU (the notebook's substring test says GPU).
    assert jobs[409499185][1:7] == (8, 10010, 1, 0, 0, None)
    assert jobs[82691694838059][4:10] == (4, 4, "gpu:tesla,gpu:volta", "bert", "FAILED", 60)
    assert jobs[82691694838059][11] == 256  # `256:0` -> code 256
    # Never started (time_start = 0): no wait or run time, no allocation.
    assert jobs[12345][1:] == (None, None, None, None, 0, None, None, "CANCELLED", None, None, 0)
    start = store.sql("select start_time, start_s from hpc_jobs where job_id = 409499185").row(0)
    assert start[0].isoformat() == "2021-03-01T00:02:00+00:00" and start[1] == 1614556920

    gpu = store.sql(
        "select job_id, node, gpu_index, time_s, elapsed_s, temperature_memory_c, power_w from gpu_samples "
        "order by job_id desc, time_s, gpu_index"
    ).rows()
    assert gpu[0][:4] == (32585007376605, "r8939293-n208530", 0, 1614556860.1)
    assert gpu[1][5] is None and gpu[2][6] is None  # [N/A] -> null
    # Elapsed from the file's first timestamp (float64 epoch seconds carry ~2e-7 s of rounding).
    assert gpu[1][4] == pytest.approx(0.1, abs=1e-6)
    assert [(g[2], g[5]) for g in gpu if g[0] == 409499185] == [(0, 30.0), (1, None), (0, 30.0), (1, None)]
    cpu = store.sql(
        "select job_id, step, node, time_s, cpu_utilization_pct from cpu_samples order by time_s, step"
    ).rows()
    assert cpu[0] == (409499185, "batch", "r8939293-n208531", 1614556930.0, 95.0)
    assert len(cpu) == 3
    node = store.sql("select node, user_processes, load_avg, time from node_samples order by node").rows()
    assert [(n[0], n[1], n[2]) for n in node] == [("r4858666-n911952", 40, 4.07), ("r7217787-n911952", 26, 29.24)]
    assert store.sql("select count(*) from ingest_manifest where input_name like '%summary%'").item() == 0
    keys = sorted(store.sql("select distinct input_key from ingest_manifest").to_series())
    assert keys == ["cpu-0000", "gpu-0000", "gpu-0001", "jobs", "node-data.csv"]


def test_many_gpu_files_become_few_parquet_files(tmp_path: Path, store_dir: Path, monkeypatch):
    from wattlas.ingest import engine

    monkeypatch.setattr(engine, "BATCH_FILES", 8)
    header, *body = fixture_bytes(H, GPU_B).decode().splitlines()
    for i in range(40):
        folder = tmp_path / "gpu" / f"{i % 2:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{1000 + i}-r1-n{i}.csv").write_text("\n".join([header, *body]) + "\n")
    report = ingest("supercloud", [tmp_path / "gpu"], store_dir, workers=1)
    assert report.rows["gpu_samples"] == 160
    assert report.stats["gpu_samples: nvidia-smi cells read as null ([N/A], [Not Supported], ... or empty)"] == 80
    files = list((store_dir / "tables" / "gpu_samples").rglob("*.parquet"))
    assert len(files) == 6  # 2 folders x ceil(20 files / 8 per batch), not 40
    per_file = Store(store_dir).sql("select input_name, rows from ingest_manifest order by input_name").rows()
    assert len(per_file) == 40 and {r for _, r in per_file} == {4}


def test_non_numeric_gpu_cell_names_file_line_column(dataset: Path, store_dir: Path):
    ingest("supercloud", [dataset], store_dir, workers=1)
    before = snapshot(store_dir)
    bad = dataset / "gpu" / "0001" / GPU_B
    bad.write_bytes(bad.read_bytes().replace(b",42.5,", b",42.5W,"))
    with pytest.raises(InputFormatError) as e:
        ingest("supercloud", [dataset], store_dir, workers=1)
    assert (e.value.file, e.value.line, e.value.column) == (f"0001/{GPU_B}", 4, "power_draw_W")
    assert snapshot(store_dir) == before


def test_bad_tres_and_wrong_header(dataset: Path, store_dir: Path):
    slurm = dataset / "slurm-log.csv"
    good = slurm.read_bytes()
    slurm.write_bytes(good.replace(b'"1=8,2=10010,4=1","1=8', b'"1=8,2=lots,4=1","1=8', 1))
    with pytest.raises(InputFormatError) as e:
        ingest("supercloud", [slurm, dataset / "labelled_jobids.csv"], store_dir, workers=1)
    assert (e.value.file, e.value.line, e.value.column) == ("slurm-log.csv", 3, "tres_alloc")
    slurm.write_bytes(good.replace(b"id_job,", b"job,", 1))
    with pytest.raises(InputFormatError, match="unexpected header") as e:
        ingest("supercloud", [slurm], store_dir, workers=1)
    assert e.value.line == 1
    assert snapshot(store_dir) == {}


def test_labels_need_the_slurm_log(dataset: Path, store_dir: Path):
    with pytest.raises(InputFormatError, match="ingest them together"):
        ingest("supercloud", [dataset / "labelled_jobids.csv"], store_dir, workers=1)
    assert snapshot(store_dir) == {}


def test_tables_and_sources_document_the_new_tables(capsys, tmp_path):
    import json

    (tmp_path / "s").mkdir()  # `tables --all` lists every declared table, also on an empty store
    (tmp_path / "s" / "catalog.json").write_text('{"format": 1, "generation": 0, "tables": {}}')
    assert main(["tables", "--all", "--format", "json", "--store", str(tmp_path / "s")]) == 0
    tables = {t["table"]: t for t in json.loads(capsys.readouterr().out)}
    for name in ("function_invocations", "function_durations", "app_memory", "functions", "function_events",
                 "cold_starts", "function_metrics", "hpc_jobs", "gpu_samples", "cpu_samples", "node_samples"):
        assert tables[name]["columns"], name
        assert all(c["description"] for c in tables[name]["columns"])
    assert main(["sources", "--json"]) == 0
    srcs = {s["id"]: s for s in json.loads(capsys.readouterr().out)}
    for sid in ("azure-functions-2019", "azure-functions-2021", "huawei-2025", "huawei-2023", "supercloud"):
        assert srcs[sid]["citation"] and srcs[sid]["paper"] and srcs[sid]["files"]
        assert all(f["url"].startswith("https://") for f in srcs[sid]["files"])


def test_gpu_sample_without_timestamp_is_an_error(dataset: Path, store_dir: Path):
    bad = dataset / "gpu" / "0000" / GPU_A
    bad.write_bytes(bad.read_bytes().replace(b"1614556860.200,", b"[N/A],"))
    with pytest.raises(InputFormatError, match="needs its timestamp") as e:
        ingest("supercloud", [dataset / "gpu"], store_dir, workers=1)
    assert (e.value.file, e.value.line, e.value.column) == (f"0000/{GPU_A}", 3, "timestamp")
    assert snapshot(store_dir) == {}
