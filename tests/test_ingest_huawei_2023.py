"""Huawei 2023: wide day files per metric folder; requests -> invocations, the rest -> metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from wattlas.errors import InputFormatError, WattlasError
from wattlas.ingest import ingest
from wattlas.store import Store

from ._ingest_helpers import snapshot, zip_file


def wide(n_functions: int, rows: list[tuple[int, int, dict[int, str]]]) -> bytes:
    """A day file with the published header ``day,time,0,1,...``; empty cell = no activity."""
    lines = ["day,time," + ",".join(str(i) for i in range(n_functions))]
    for day, time_s, cells in rows:
        lines.append(f"{day},{time_s}," + ",".join(cells.get(i, "") for i in range(n_functions)))
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def private(tmp_path: Path) -> Path:
    root = tmp_path / "datasets"
    p = root / "private_dataset"
    for folder, rows in {
        # Spec sample: `0,0,,,,,6.0,6.0,98.0,...` (floats in this file).
        "requests_minute": [(0, 0, {4: "6.0", 5: "6.0", 6: "98.0"}), (0, 60, {4: "3.0", 7: "0.0"})],
        # Integers in another file; day numbering with gaps (day_002 without day_001).
        "requests_second": [(2, 172800, {28: "816", 33: ""}), (2, 172801, {28: "1"})],
        "cpu_usage_minute": [(0, 0, {4: "0.0123", 5: "0.07"})],
        "function_delay_minute": [(0, 0, {4: "0.25"})],
    }.items():
        (p / folder).mkdir(parents=True)
        day = rows[0][0]
        (p / folder / f"day_{day:03d}.csv").write_bytes(wide(200, rows))
    return root


def test_private_folders(private: Path, store_dir: Path):
    report = ingest("huawei-2023", [private], store_dir, workers=1)
    assert report.rows["function_invocations"] == 6
    store = Store(store_dir)
    inv = store.sql(
        "select trace, function_id, day_index, time_s, bin_s, invocations from function_invocations "
        "order by bin_s desc, time_s, function_id::int"
    ).rows()
    assert inv == [
        ("private", "4", 0, 0, 60, 6), ("private", "5", 0, 0, 60, 6), ("private", "6", 0, 0, 60, 98),
        ("private", "4", 0, 60, 60, 3),  # the explicit 0.0 of function 7 is not a bin with invocations
        ("private", "28", 2, 172800, 1, 816), ("private", "28", 2, 172801, 1, 1),
    ]
    metrics = store.sql("select metric, stat, function_id, value, unit from function_metrics order by all").rows()
    assert metrics == [
        ("cpu_usage", "value", "4", 0.0123, "fraction"), ("cpu_usage", "value", "5", 0.07, "fraction"),
        ("function_delay", "value", "4", 0.25, None),
    ]
    assert sorted(store.sql("select distinct input_key from ingest_manifest").to_series()) == [
        "private-cpu_usage_minute", "private-function_delay_minute", "private-requests_minute",
        "private-requests_second",
    ]


def test_public_zip(tmp_path: Path, store_dir: Path):
    data = wide(5093, [(0, 0, {3: "6772", 4: "5996", 6: "1361"}), (0, 60, {5092: "2"})])
    archive = zip_file(tmp_path / "public_dataset.zip", {"public_dataset/csv_files/requests_minute/day_00.csv": data})
    ingest("huawei-2023", [archive], store_dir, workers=1)
    rows = Store(store_dir).sql(
        "select trace, function_id, time_s, invocations from function_invocations order by time_s, function_id::int"
    ).rows()
    assert rows == [("public", "3", 0, 6772), ("public", "4", 0, 5996), ("public", "6", 0, 1361),
                    ("public", "5092", 60, 2)]


def test_fractional_request_count_names_line_and_column(private: Path, store_dir: Path):
    path = private / "private_dataset" / "requests_minute" / "day_000.csv"
    path.write_bytes(path.read_bytes().replace(b",98.0,", b",98.5,"))
    with pytest.raises(InputFormatError) as e:
        ingest("huawei-2023", [path], store_dir, workers=1)
    assert (e.value.file, e.value.line, e.value.column) == ("requests_minute/day_000.csv", 2, "6")
    assert snapshot(store_dir) == {}


def test_group_guard_refuses_dropping_days(private: Path, store_dir: Path, tmp_path: Path):
    folder = private / "private_dataset" / "requests_minute"
    (folder / "day_005.csv").write_bytes(wide(200, [(5, 432000, {1: "2"})]))
    ingest("huawei-2023", [folder], store_dir, workers=1)
    before = snapshot(store_dir)
    # Re-ingesting only one day of the folder would replace the folder's rows with that day's.
    with pytest.raises(WattlasError, match=r"lacks 1 of them \(day_005.csv\)"):
        ingest("huawei-2023", [folder / "day_000.csv"], store_dir, workers=1)
    assert snapshot(store_dir) == before
    # The whole folder again is fine, and idempotent.
    ingest("huawei-2023", [folder], store_dir, workers=1)
    assert Store(store_dir).sql("select count(*) from function_invocations").item() == 5
