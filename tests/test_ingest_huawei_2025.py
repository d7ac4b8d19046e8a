"""Huawei 2025: per-region zips of cold starts, per-request rows, wide time series, runtime table."""

from __future__ import annotations

from pathlib import Path

import pytest

from wattlas.errors import InputFormatError
from wattlas.ingest import ingest
from wattlas.store import Store

from ._ingest_helpers import copy_fixture, fixture_bytes, snapshot, zip_file

S = "serverless"


@pytest.fixture
def zips(tmp_path: Path) -> Path:
    """The release's zips, named as wattlas downloads them; member layout as the notebook's folders."""
    d = tmp_path / "huawei"
    d.mkdir()
    zip_file(d / "cold_start-R1.zip", {"R1/day_00.csv": fixture_bytes(S, "huawei2025_cold_start_R1_day_00.csv")})
    zip_file(d / "cold_start-R5.zip", {"R5/day_30.csv": fixture_bytes(S, "huawei2025_cold_start_R5_day_30.csv")})
    zip_file(d / "per_request-R5.zip", {"R5/R5_00000.csv": fixture_bytes(S, "huawei2025_per_request_R5.csv")})
    quant = fixture_bytes(S, "huawei2025_requests_R2_day_00.csv")
    zip_file(d / "quantiles-R2.zip", {
        "R2/requests/day_00.csv": quant,
        # Same header, another metric folder: the folder, not the file, names the statistic.
        "R2/totalCost_quantile_050/day_00.csv": quant.replace(b"1.0,,,2.0", b"0.023,,,0.5"),
    })
    copy_fixture(S, "df_funcID_runtime_triggerType.csv", d / "df_funcID_runtime_triggerType.csv")
    return d


def test_all_four_kinds_from_zips(zips: Path, store_dir: Path):
    report = ingest("huawei-2025", [zips], store_dir, workers=1)
    assert report.rows == {"cold_starts": 4, "function_events": 3, "function_metrics": 6, "functions": 5,
                           "ingest_manifest": 6}
    store = Store(store_dir)
    cold = store.sql(
        "select trace, day_index, time_s, function_id, owner_id, cold_start_s, pool, cpu_limit_millicores, "
        "memory_limit_mb from cold_starts order by trace, time_s"
    ).rows()
    assert cold[0] == ("R1", 0, 0.104, "332---439---pool22-300-128", "439", 0.91109, "pool22-300-128", 300, 128)
    assert cold[-1] == ("R5", 30, 2678350.991, "224---201---pool35-6600-8192", "201", 6.913106,
                        "pool35-6600-8192", 6600, 8192)
    # The four components add up to the total (an integrity check the release documents).
    assert store.sql(
        "select max(abs(cold_start_s - pod_allocation_s - deploy_code_s - deploy_dependency_s - scheduling_s)) "
        "from cold_starts"
    ).item() < 1e-5
    events = store.sql(
        "select end_s, frontend_end_s, duration_s, frontend_total_s, request_body_bytes, cpu_usage_cores, "
        "function_id from function_events order by end_s"
    ).rows()
    assert events[0] == (2592000.02, 2592000.021, 0.000931, 0.002367, 2.0, 0.059806, "411---301---pool22-300-128")
    # No frontend record: frontend fields are null, the worker fields are kept.
    assert events[-1][:5] == (2678399.048, None, 0.027543, None, None)
    metrics = store.sql(
        "select metric, stat, function_id, time_s, value, unit from function_metrics order by metric, time_s, value"
    ).rows()
    assert metrics == [
        ("requests", "sum", "400---418---pool22-300-128", 0, 1.0, "count"),
        ("requests", "sum", "343---192---pool22-300-128", 0, 2.0, "count"),
        ("requests", "sum", "400---418---pool22-300-128", 180, 1.0, "count"),
        ("totalCost", "quantile_050", "400---418---pool22-300-128", 0, 0.023, "s"),
        ("totalCost", "quantile_050", "343---192---pool22-300-128", 0, 0.5, "s"),
        ("totalCost", "quantile_050", "400---418---pool22-300-128", 180, 1.0, "s"),
    ]
    functions = store.sql(
        "select function_id, function_name, owner_id, trigger, invocation_type, runtime, cpu_request_millicores, "
        "cpu_limit_millicores, memory_limit_mb, trace from functions order by function_id"
    ).rows()
    assert ("565---486---pool30-1800-2048", "565", "486", "APIG", "S", "http", 1000, 1800, 2048, "R2") in functions
    assert ("1060---777---pool23-400-256", "1060", "777", "unknown", "unknown", "Python3", 125, 400, 256,
            "R2") in functions
    keys = store.sql("select input_key, input_name from ingest_manifest order by all").rows()
    assert ("quantiles-R2", "requests/day_00.csv") in keys
    assert ("quantiles-R2", "totalCost_quantile_050/day_00.csv") in keys


def test_extracted_folders_work_too(tmp_path: Path, store_dir: Path):
    root = tmp_path / "cold_start_dataset"
    copy_fixture(S, "huawei2025_cold_start_R1_day_00.csv", root / "cold_start" / "R1" / "day_00.csv")
    copy_fixture(S, "huawei2025_requests_R2_day_00.csv", root / "quantiles" / "R2" / "num_pods" / "day_00.csv")
    report = ingest("huawei-2025", [root], store_dir, workers=1)
    assert report.rows["cold_starts"] == 3
    assert Store(store_dir).sql("select distinct metric, trace from function_metrics").rows() == [("num_pods", "R2")]


def test_bad_pod_id_names_line_and_column(tmp_path: Path, store_dir: Path, zips: Path):
    ingest("huawei-2025", [zips], store_dir, workers=1)
    before = snapshot(store_dir)
    bad = fixture_bytes(S, "huawei2025_cold_start_R1_day_00.csv").replace(b"pool22-300-128-0005156468", b"pod-7")
    path = zip_file(tmp_path / "cold_start-R1.zip", {"R1/day_00.csv": bad})
    with pytest.raises(InputFormatError) as e:
        ingest("huawei-2025", [path], store_dir, workers=1)
    assert (e.value.file, e.value.line, e.value.column) == ("cold_start-R1.zip:R1/day_00.csv", 3, "podID")
    assert "'pod-7' is not a pod id" in str(e.value)
    assert snapshot(store_dir) == before


def test_non_numeric_time_series_cell(tmp_path: Path, store_dir: Path):
    bad = fixture_bytes(S, "huawei2025_requests_R2_day_00.csv").replace(b"0,180,1.0", b"0,180,one")
    path = zip_file(tmp_path / "quantiles-R2.zip", {"R2/requests/day_00.csv": bad})
    with pytest.raises(InputFormatError) as e:
        ingest("huawei-2025", [path], store_dir, workers=1)
    assert (e.value.line, e.value.column) == (4, "400---418---pool22-300-128")
    assert snapshot(store_dir) == {}


def test_truncated_zip_and_unknown_folder(tmp_path: Path, store_dir: Path, zips: Path):
    truncated = tmp_path / "cold_start-R1.zip"
    truncated.write_bytes((zips / "cold_start-R1.zip").read_bytes()[:100])
    with pytest.raises(InputFormatError, match="truncated"):
        ingest("huawei-2025", [truncated], store_dir, workers=1)
    series = fixture_bytes(S, "huawei2025_requests_R2_day_00.csv")
    odd = zip_file(tmp_path / "quantiles-R3.zip", {"R3/misc/day_00.csv": series})
    with pytest.raises(InputFormatError, match="cannot tell the metric"):
        ingest("huawei-2025", [odd], store_dir, workers=1)
    assert snapshot(store_dir) == {}


def test_folder_and_header_must_agree(tmp_path: Path, store_dir: Path):
    cold = fixture_bytes(S, "huawei2025_cold_start_R1_day_00.csv")
    path = zip_file(tmp_path / "quantiles-R1.zip", {"R1/requests/day_00.csv": cold})
    with pytest.raises(InputFormatError, match="sits in a quantiles folder or zip but has the header of a cold_start"):
        ingest("huawei-2025", [path], store_dir, workers=1)
    assert snapshot(store_dir) == {}
