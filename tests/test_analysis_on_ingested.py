"""The serverless/HPC analyses and reports on tables the ingestors actually wrote.

The analysis tests build frames by hand; this one closes the loop: fixture files in the raw
formats go through each ingestor into one store, then every report builder and the analyses
behind them run on those tables as stored.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wattlas.analysis.report import build_report, report_builders
from wattlas.ingest import ingest
from wattlas.store import Store

from ._ingest_helpers import copy_fixture, fixture_bytes, tar_xz, zip_file
from .test_ingest_azure_functions_2019 import day_files


@pytest.fixture
def cluster_store(tmp_path: Path, store_dir: Path) -> Store:
    ingest("azure-functions-2019", [tar_xz(tmp_path / "azurefunctions-dataset2019.tar.xz", day_files())],
           store_dir, workers=1)
    azure21 = copy_fixture("serverless", "AzureFunctionsInvocationTraceForTwoWeeksJan2021.txt",
                           tmp_path / "a21" / "AzureFunctionsInvocationTraceForTwoWeeksJan2021.txt")
    ingest("azure-functions-2021", [azure21], store_dir, workers=1)
    hw = tmp_path / "huawei"
    hw.mkdir()
    for kind, region, member, name in (
        ("cold_start", "R1", "R1/day_00.csv", "huawei2025_cold_start_R1_day_00.csv"),
        ("cold_start", "R5", "R5/day_30.csv", "huawei2025_cold_start_R5_day_30.csv"),
        ("per_request", "R5", "R5/R5_00000.csv", "huawei2025_per_request_R5.csv"),
        ("quantiles", "R2", "R2/requests/day_00.csv", "huawei2025_requests_R2_day_00.csv"),
    ):
        zip_file(hw / f"{kind}-{region}.zip", {member: fixture_bytes("serverless", name)})
    copy_fixture("serverless", "df_funcID_runtime_triggerType.csv", hw / "df_funcID_runtime_triggerType.csv")
    ingest("huawei-2025", [hw], store_dir, workers=1)
    root = tmp_path / "202201"
    for name in ("slurm-log.csv", "labelled_jobids.csv", "tres-mapping.txt", "node-data.csv"):
        copy_fixture("hpc", name, root / name)
    for sub, name in (("0000", "32585007376605-r8939293-n208530.csv"), ("0001", "409499185-r8939293-n208531.csv")):
        copy_fixture("hpc", name, root / "gpu" / sub / name)
    copy_fixture("hpc", "409499185-timeseries.csv", root / "cpu" / "0000" / "409499185-timeseries.csv")
    ingest("supercloud", [root], store_dir, workers=1)
    return Store(store_dir)


def test_every_cluster_report_builds_from_ingested_tables(cluster_store: Store, tmp_path: Path):
    counts = {t.name: t.rows for t in cluster_store.tables()}
    built = []
    for table in sorted(report_builders()):
        if table == "llm_requests" or not counts.get(table):
            continue
        out = build_report(table, tmp_path / f"{table}.html", store=cluster_store)
        assert out.stat().st_size > 10_000, table
        built.append(table)
    assert {"function_invocations", "function_events", "function_durations", "app_memory",
            "cold_starts", "hpc_jobs", "gpu_samples"} <= set(built)
