"""The committed GPU measurements load into a store as they are documented."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from wattlas.store import Store

DATA = Path(__file__).resolve().parents[1] / "datasets" / "measurements"


@pytest.mark.parametrize("folder", sorted(p.parent for p in DATA.glob("*/*/bench_results.parquet")))
def test_measurements_load_and_are_consistent(folder, store_dir, tmp_path):
    store = Store(store_dir)
    with store.transaction("wattlas-bench") as tx:
        for table in ("bench_runs", "bench_results", "power_samples"):
            copy = tmp_path / f"{table}.parquet"
            shutil.copy(folder / f"{table}.parquet", copy)  # put() moves the file into the store
            tx.put(table, folder.name, copy)
    runs = store.sql("select run_id, status, device_type from bench_runs").to_dicts()
    assert runs and all(r["status"] == "complete" and r["device_type"] == "cuda" for r in runs)
    orphans = store.sql("""select count(*) as n from bench_results r anti join bench_runs using (run_id)""")
    assert orphans["n"][0] == 0
    bad = store.sql("""select count(*) as n from bench_results
                       where energy_source = 'nvml_counter' and not (energy_j > 0 and avg_power_w > 0)
                          or energy_source = 'unavailable' and energy_j is not null
                          or window_s < 5""")
    assert bad["n"][0] == 0
    assert "README.md" in {p.name for p in folder.iterdir()}
