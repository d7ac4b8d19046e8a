"""Issue 12, items 3-6: what each time of `function_events` is, the Azure 2021 order, Supercloud
node lists and GPU files without `gpu_index`."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from wattlas.ingest import ingest
from wattlas.schemas import get_table
from wattlas.store import Store

from ._ingest_helpers import fixture_bytes, zip_file

S = "serverless"
HUAWEI = "huawei2025_per_request_R5.csv"
AZURE = "AzureFunctionsInvocationTraceForTwoWeeksJan2021.txt"


def _raw_rows(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(fixture_bytes(S, name).decode())))


def _events(store_dir: Path) -> list[dict]:
    return Store(store_dir).sql("select * from function_events").rows(named=True)


@pytest.fixture
def huawei_events(tmp_path: Path, store_dir: Path) -> list[dict]:
    zipped = zip_file(tmp_path / "per_request-R5.zip", {"R5/R5_00000.csv": fixture_bytes(S, HUAWEI)})
    ingest("huawei-2025", [zipped], store_dir, workers=1)
    return _events(store_dir)


@pytest.fixture
def azure_events(tmp_path: Path, store_dir: Path) -> list[dict]:
    (tmp_path / AZURE).write_bytes(fixture_bytes(S, AZURE))
    ingest("azure-functions-2021", [tmp_path / AZURE], store_dir, workers=1)
    return _events(store_dir)


# ------------------------------------------------------------------ item 3: end times
def test_huawei_request_times_are_completion_times_in_the_fixture():
    """The evidence, on the notebook's rows: only the end-time reading nests the two intervals."""
    both = [{k: float(v) for k, v in r.items() if k.startswith(("time_", "totalCost_"))}
            for r in _raw_rows(HUAWEI) if r["time_frontend"] and r["time_worker"]]
    assert len(both) == 2
    eps = 1e-9  # float parsing of 3-decimal times
    for r in both:
        gap = r["time_frontend"] - r["time_worker"]
        assert -eps <= gap <= r["totalCost_frontend"] - r["totalCost_worker"] + eps

    def nested(r: dict, worker_is_end: bool, frontend_is_end: bool) -> bool:
        w = (r["time_worker"] - r["totalCost_worker"], r["time_worker"]) if worker_is_end else \
            (r["time_worker"], r["time_worker"] + r["totalCost_worker"])
        f = (r["time_frontend"] - r["totalCost_frontend"], r["time_frontend"]) if frontend_is_end else \
            (r["time_frontend"], r["time_frontend"] + r["totalCost_frontend"])
        return f[0] <= w[0] + eps and w[1] <= f[1] + eps

    assert all(nested(r, True, True) for r in both)
    for reading in ((False, False), (False, True), (True, False)):
        assert not all(nested(r, *reading) for r in both), reading


def test_huawei_rows_get_start_and_end(huawei_events: list[dict]):
    raw = {r["requestID"]: r for r in _raw_rows(HUAWEI)}
    assert len(huawei_events) == 3
    for e in huawei_events:
        r = raw[e["request_id"]]
        assert e["end_s"] == float(r["time_worker"])
        assert e["duration_s"] == float(r["totalCost_worker"])
        assert e["end_s"] - e["start_s"] == pytest.approx(e["duration_s"], abs=1e-9)
        if r["time_frontend"]:
            assert e["frontend_end_s"] == float(r["time_frontend"])
            assert e["frontend_end_s"] - e["frontend_start_s"] == pytest.approx(e["frontend_total_s"], abs=1e-9)
            # The frontend's interval holds the worker's.
            assert e["frontend_start_s"] <= e["start_s"] and e["end_s"] <= e["frontend_end_s"]
        else:
            assert e["frontend_start_s"] is None and e["frontend_end_s"] is None
    first = min(huawei_events, key=lambda e: e["end_s"])
    assert first["start_s"] == pytest.approx(2592000.020 - 0.000931, abs=1e-9)


def test_azure_rows_get_end_equal_start_plus_duration(azure_events: list[dict]):
    raw = _raw_rows(AZURE)
    assert [e["end_s"] for e in azure_events] == [float(r["end_timestamp"]) for r in raw]
    for e in azure_events:
        assert e["start_s"] + e["duration_s"] == pytest.approx(e["end_s"], abs=1e-9)
        assert e["frontend_start_s"] is None and e["frontend_end_s"] is None


def test_function_events_names_every_time_as_a_start_or_an_end():
    table = get_table("function_events")
    times = [c.name for c in table.columns if c.unit == "s" and not c.name.endswith(("_cost_s", "_total_s"))]
    assert times == ["start_s", "end_s", "duration_s", "frontend_start_s", "frontend_end_s"]
    assert table.column("end_s").required and not table.column("start_s").required
    notes = " ".join(table.notes)
    assert "time_frontend - time_worker" in notes and "totalCost_frontend - totalCost_worker" in notes
    assert "time_worker" in table.column("end_s").description


# ------------------------------------------------------------------ item 4: Azure 2021 order
def test_azure_2021_file_is_in_start_order_and_the_notes_say_so(azure_events: list[dict]):
    # File order as stored (the table keeps the file order): the public sample's rows.
    starts = [e["start_s"] for e in azure_events]
    ends = [e["end_s"] for e in azure_events]
    assert starts == sorted(starts) and ends != sorted(ends)
    notes = " ".join(get_table("function_events").notes)
    assert "ordered by end time" not in notes
    assert "The Azure 2021 file is ordered by start time" in notes


# ------------------------------------------------------------------ item 6: GPU files without gpu_index
H = "hpc"
GPU_A = "32585007376605-r8939293-n208530.csv"  # one GPU
GPU_B = "409499185-r8939293-n208531.csv"  # two GPUs interleaved


def _without_gpu_index(data: bytes) -> bytes:
    rows = list(csv.reader(io.StringIO(data.decode())))
    i = rows[0].index("gpu_index")
    return "".join(",".join(r[:i] + r[i + 1:]) + "\n" for r in rows).encode()


def test_single_gpu_file_without_gpu_index_is_gpu_0_and_counted(tmp_path: Path, store_dir: Path):
    folder = tmp_path / "gpu" / "0000"
    folder.mkdir(parents=True)
    (folder / GPU_A).write_bytes(_without_gpu_index(fixture_bytes(H, GPU_A)))
    (folder / GPU_B).write_bytes(fixture_bytes(H, GPU_B))  # same batch, with the column
    report = ingest("supercloud", [tmp_path / "gpu"], store_dir, workers=1)
    from wattlas.ingest.sources.supercloud import NO_INDEX_STAT

    assert report.stats[NO_INDEX_STAT] == 1
    rows = Store(store_dir).sql(
        "select job_id, gpu_index, count(*) from gpu_samples group by all order by all").rows()
    assert rows == [(409499185, 0, 2), (409499185, 1, 2), (32585007376605, 0, 3)]


def test_multi_gpu_file_without_gpu_index_is_refused_naming_file_and_line(tmp_path: Path, store_dir: Path):
    from wattlas.errors import InputFormatError

    folder = tmp_path / "gpu" / "0001"
    folder.mkdir(parents=True)
    (folder / GPU_B).write_bytes(_without_gpu_index(fixture_bytes(H, GPU_B)))
    with pytest.raises(InputFormatError, match="no gpu_index column but rows of several GPUs") as e:
        ingest("supercloud", [tmp_path / "gpu"], store_dir, workers=1)
    # Lines 2 and 3 share timestamp 1614556921.000 (GPUs 0 and 1 of one sample).
    assert (e.value.file, e.value.line, e.value.column) == (f"0001/{GPU_B}", 3, "timestamp")
    assert "repeats line 2" in str(e.value)


# ------------------------------------------------------------------ item 5: Supercloud node lists
SLURM = "slurm-log.csv"


def _jobs(tmp_path: Path, store_dir: Path, slurm: bytes) -> dict[int, tuple]:
    (tmp_path / SLURM).write_bytes(slurm)
    ingest("supercloud", [tmp_path / SLURM], store_dir, workers=1)
    rows = Store(store_dir).sql("select job_id, node_names, node_count, node_list from hpc_jobs").rows()
    return {r[0]: r[1:] for r in rows}


def test_real_form_node_lists_are_parsed(tmp_path: Path, store_dir: Path):
    jobs = _jobs(tmp_path, store_dir, fixture_bytes(H, SLURM))
    assert jobs[32585007376605] == (["r8939293-n208530"], 1, "['r8939293-n208530']")
    assert jobs[82691694838059][:2] == (["r9189566-n911952", "r4858666-n911952"], 2)
    assert jobs[12345][:2] == ([], 0)
    types = dict(Store(store_dir).sql("describe hpc_jobs").select("column_name", "column_type").rows())
    assert (types["node_names"], types["node_count"]) == ("VARCHAR[]", "BIGINT")
    # The names join the GPU files' node names (`<job>-r<rack>-n<node>.csv`).
    assert Store(store_dir).sql(
        "select count(*) from hpc_jobs where list_contains(node_names, 'r8939293-n208530')").item() == 1


def test_bare_names_and_none_assigned_are_accepted(tmp_path: Path, store_dir: Path):
    older = (fixture_bytes(H, SLURM)
             .replace(b"['r8939293-n208530']", b"r8939293-n208530")
             .replace(b"\"['r9189566-n911952', 'r4858666-n911952']\"", b'"r9189566-n911952,r4858666-n911952"')
             .replace(b",[],", b",None assigned,"))
    jobs = _jobs(tmp_path, store_dir, older)
    assert jobs[32585007376605][:2] == (["r8939293-n208530"], 1)
    assert jobs[82691694838059][:2] == (["r9189566-n911952", "r4858666-n911952"], 2)
    assert jobs[12345][:2] == ([], 0)


@pytest.mark.parametrize("bad", [b"['r8939293-n208531'", b"r[8939293-8939294]-n208531", b"['r8939293 n208531']"])
def test_unparsable_node_list_names_file_line_column(tmp_path: Path, store_dir: Path, bad: bytes):
    from wattlas.errors import InputFormatError

    slurm = fixture_bytes(H, SLURM).replace(b"['r8939293-n208531']", b'"' + bad + b'"')
    with pytest.raises(InputFormatError, match="node list") as e:
        _jobs(tmp_path, store_dir, slurm)
    assert (e.value.file, e.value.line, e.value.column) == (SLURM, 3, "nodelist")
