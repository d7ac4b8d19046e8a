"""Azure Functions 2019: the .tar.xz of wide per-minute files, durations and memory."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from wattlas.cli import main
from wattlas.errors import InputFormatError
from wattlas.ingest import ingest
from wattlas.store import Store

from ._ingest_helpers import fixture_bytes, snapshot, tar_xz

O1 = "5640c1597ef75fa9a7e9c6925022a039a4ba982924170953a51cfe4ef3a54ee9"
A1 = "5126901eff078c9a1f5295c859c9327588284a43cc2c0b4b261426b009ddfe6e"
F1 = "c968871b4ef0123401975d026b85cae2ad7dad9d06ae94f13b978bd66dfd063f"
F2 = "1bc2d86badd21b18a8533d8e961e52585e5ad1fee0e2c2885220a8463a39492d"
O3 = "41d6e09d0f86f5aaa1df842c1ac4f14fbd4dc676bec7e0f42b778b1d58f58c9a"
A3 = "77a93348150f5281c32c9027870a77983ad6eba72e6c2835fe2d27879dfc0753"
F3 = "b4d7cb9985cd8c1b7fe5ef888bbde1883929e9a5b5d2a65348b00ded9e2f8033"
HEADER = "HashOwner,HashApp,HashFunction,Trigger," + ",".join(str(m) for m in range(1, 1441))
MEMORY_HEADER = (
    "HashOwner,HashApp,SampleCount,AverageAllocatedMb,AverageAllocatedMb_pct1,AverageAllocatedMb_pct5,"
    "AverageAllocatedMb_pct25,AverageAllocatedMb_pct50,AverageAllocatedMb_pct75,AverageAllocatedMb_pct95,"
    "AverageAllocatedMb_pct99,AverageAllocatedMb_pct100"
)


def _row(owner: str, app: str, func: str, trigger: str, cells: dict[int, str], default: str = "0") -> str:
    values = [cells.get(m, default) for m in range(1, 1441)]
    return f"{owner},{app},{func},{trigger}," + ",".join(values)


def day_files() -> dict[str, bytes]:
    d01 = "\n".join([
        HEADER,
        _row(O1, A1, F1, "http", {1: "3", 60: "1", 1440: "2"}),
        # Empty cells (no data) around one busy minute.
        _row(O1, A1, F2, "timer", {11: "5"}, default=""),
    ]) + "\n"
    d02 = "\n".join([
        HEADER,
        _row(O1, A1, F1, "queue", {1: "7"}),
        _row(O3, A3, F3, "event", {720: "12"}),
    ]) + "\n"
    memory = f"{MEMORY_HEADER}\n{O1},{A1},1440,173.0,140.0,142.0,160.0,172.0,185.0,201.0,230.0,256.0\n"
    return {
        "invocations_per_function_md.anon.d01.csv": d01.encode(),
        "invocations_per_function_md.anon.d02.csv": d02.encode(),
        "function_durations_percentiles.anon.d01.csv": fixture_bytes(
            "serverless", "function_durations_percentiles.anon.d01.csv"
        ),
        "app_memory_percentiles.anon.d01.csv": memory.encode(),
    }


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return tar_xz(tmp_path / "azurefunctions-dataset2019.tar.xz", day_files())


def test_tar_xz_end_to_end_through_the_cli(archive: Path, store_dir: Path, capsys):
    # Default workers: an archive input runs in the process pool.
    assert main(["ingest", "azure-functions-2019", "--from", str(archive), "--store", str(store_dir)]) == 0
    assert "function_invocations: 6 rows written" in capsys.readouterr().err
    store = Store(store_dir)
    inv = store.sql(
        "select function_id, day_index, time_s, bin_s, invocations from function_invocations "
        "order by day_index, function_id, time_s"
    ).rows()
    assert inv == [
        (F2, 1, 600, 60, 5),                # minute 11 of d01; empty cells store nothing
        (F1, 1, 0, 60, 3),                  # minute 1 = 00:00-00:01
        (F1, 1, 3540, 60, 1),
        (F1, 1, 86340, 60, 2),              # minute 1440
        (F3, 2, 86400 + 719 * 60, 60, 12),  # d02 counts from 00:00 of d01
        (F1, 2, 86400, 60, 7),
    ]
    functions = store.sql(
        "select function_id, trigger, first_day_index, last_day_index from functions order by function_id"
    ).rows()
    assert functions == [(F2, "timer", 1, 1), (F3, "event", 2, 2), (F1, "http", 1, 2)]
    dur = store.sql(
        "select avg_duration_s, executions, min_duration_s, max_duration_s, p99_duration_s, p100_duration_s "
        f"from function_durations where function_id = '{F1}'"
    ).rows()
    assert dur == [(pytest.approx(0.1), 2880, 0.0, pytest.approx(2.595), pytest.approx(1.376), pytest.approx(2.595))]
    mem = store.sql(
        "select app_id, day_index, sample_count, avg_allocated_mb, p100_allocated_mb from app_memory"
    ).rows()
    assert mem == [(A1, 1, 1440, 173.0, 256.0)]
    manifest = store.sql(
        "select input_name, input_key, archive_name, archive_sha256, sha256, size_bytes, tables "
        "from ingest_manifest order by input_name"
    ).rows()
    files = day_files()
    archive_sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert [m[0] for m in manifest] == sorted(files)
    for name, key, arch, arch_sha, sha, size, _tables in manifest:
        assert (key, arch, arch_sha) == ("azurefunctions-dataset2019", archive.name, archive_sha)
        assert (sha, size) == (hashlib.sha256(files[name]).hexdigest(), len(files[name]))
    tables = {m[0]: json.loads(m[-1]) for m in manifest}
    assert tables["invocations_per_function_md.anon.d01.csv"] == {"function_invocations": 4, "_functions": 2}
    assert tables["app_memory_percentiles.anon.d01.csv"] == {"app_memory": 1}


def test_extracted_files_give_the_same_rows_and_reingest_is_idempotent(archive: Path, tmp_path: Path, store_dir: Path):
    ingest("azure-functions-2019", [archive], store_dir, workers=1)
    store = Store(store_dir)
    before = store.sql("select * from function_invocations order by all").rows()
    folder = tmp_path / "extracted"
    folder.mkdir()
    for name, data in day_files().items():
        (folder / name).write_bytes(data)
    report = ingest("azure-functions-2019", [folder], store_dir, workers=1)
    assert report.rows["function_invocations"] == 6
    assert store.sql("select * from function_invocations order by all").rows() == before
    assert store.sql("select count(*) from functions").item() == 3
    assert store.sql("select count(*) from ingest_manifest").item() == 4


def test_non_numeric_minute_cell_names_file_line_column(archive: Path, tmp_path: Path, store_dir: Path):
    ingest("azure-functions-2019", [archive], store_dir, workers=1)
    before = snapshot(store_dir)
    files = day_files()
    bad = files["invocations_per_function_md.anon.d02.csv"].decode().replace(f"{F3},event,", f"{F3},event,x", 1)
    files["invocations_per_function_md.anon.d02.csv"] = bad.encode()
    (tmp_path / "b").mkdir()
    broken = tar_xz(tmp_path / "b" / "azurefunctions-dataset2019.tar.xz", files)
    with pytest.raises(InputFormatError) as e:
        ingest("azure-functions-2019", [broken], store_dir, workers=1)
    assert (e.value.file, e.value.line, e.value.column) == ("invocations_per_function_md.anon.d02.csv", 3, "1")
    assert "'x0' is not an invocation count" in str(e.value)
    assert snapshot(store_dir) == before


def test_wrong_header_and_truncated_archive_leave_the_store_unchanged(archive: Path, tmp_path: Path, store_dir: Path):
    ingest("azure-functions-2019", [archive], store_dir, workers=1)
    before = snapshot(store_dir)
    files = day_files()
    files["invocations_per_function_md.anon.d01.csv"] = files["invocations_per_function_md.anon.d01.csv"].replace(
        b",1440\n", b"\n", 1
    )
    (tmp_path / "h").mkdir()
    with pytest.raises(InputFormatError, match="expected 1444") as e:
        ingest("azure-functions-2019", [tar_xz(tmp_path / "h" / archive.name, files)], store_dir, workers=1)
    assert e.value.line == 1
    truncated = tmp_path / "t" / archive.name
    truncated.parent.mkdir()
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(InputFormatError, match="truncated or corrupt"):
        ingest("azure-functions-2019", [truncated], store_dir, workers=1)
    assert snapshot(store_dir) == before


def test_files_without_a_day_in_their_name_are_refused(tmp_path: Path, store_dir: Path):
    path = tmp_path / "invocations.csv"
    path.write_bytes(day_files()["invocations_per_function_md.anon.d01.csv"])
    with pytest.raises(InputFormatError, match="cannot tell the day"):
        ingest("azure-functions-2019", [path], store_dir, workers=1)
    assert snapshot(store_dir) == {}
