"""The committed release of the project's own H100 measurements verifies and loads exactly."""

from __future__ import annotations

import polars as pl
import pytest

from wattlas.datasets import load_release
from wattlas.store import Store

from .conftest import ROOT

RELEASE = ROOT / "datasets" / "releases" / "wattlas-h100-2026-11-23"
RAW = ROOT / "datasets" / "measurements" / "h100" / "2026-11-23"


def test_committed_release_verifies():
    pytest.importorskip("mlcroissant")
    from wattlas.datasets import verify_release

    verify_release(RELEASE)  # raises, naming the file, if anything was changed


@pytest.mark.parametrize("table", ["bench_runs", "bench_results", "power_samples"])
def test_release_loads_the_measured_rows(table, store_dir):
    load_release(RELEASE, store=store_dir)
    got = Store(store_dir).sql(f"select * exclude (source) from {table}")
    raw = pl.read_parquet(RAW / f"{table}.parquet")
    assert got.height == raw.height
    key = ["run_id", "point_id", "time_s"] if table == "power_samples" else (
        ["run_id", "point_id"] if table == "bench_results" else ["run_id"])
    key = [k for k in key if k in raw.columns]
    assert got.select(raw.columns).sort(key).equals(raw.sort(key))
