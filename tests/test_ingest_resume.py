"""An ingest killed half way, then run again, ends with exactly the rows of one clean run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wattlas.ingest import engine, ingest
from wattlas.store import Store

from ._ingest_helpers import supercloud_gpu_dir, table_rows

KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from wattlas.ingest import engine, ingest

    engine.BATCH_FILES = 2          # 20 GPU files -> 10 batches of one key
    done = 0

    def on_event(kind, info):
        global done
        if kind == "file_done":
            done += 1
            if done == 4:           # a hard crash: no cleanup, no commit
                os.kill(os.getpid(), signal.SIGKILL)

    ingest("supercloud", [sys.argv[1]], sys.argv[2], workers=1, on_event=on_event)
""")


@pytest.fixture
def gpu_dir(tmp_path: Path) -> Path:
    return supercloud_gpu_dir(tmp_path / "data")


def test_killed_ingest_resumes_to_exactly_one_clean_run(gpu_dir: Path, tmp_path: Path, monkeypatch):
    killed_store = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(gpu_dir), str(killed_store)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    # Killed before the commit: no table rows are visible, four finished batches wait in staging.
    assert not (killed_store / "catalog.json").exists()
    staged = sorted((killed_store / ".staging" / "supercloud").glob("b-*/done.json"))
    assert len(staged) == 4

    monkeypatch.setattr(engine, "BATCH_FILES", 2)  # the same batches as the killed run
    # One file changed while the ingest was down: its batch must be converted again, not reused.
    changed = gpu_dir / "gpu" / "0007" / "5001-r1-n1.csv"
    changed.write_text(changed.read_text().replace(",41.5,", ",41.75,"))
    resumed = ingest("supercloud", [gpu_dir], killed_store, workers=1)
    assert len(resumed.resumed_files) == 6  # 3 of the 4 staged batches; 5001's batch was stale
    assert "5001-r1-n1.csv" not in resumed.resumed_files

    clean = ingest("supercloud", [gpu_dir], tmp_path / "clean", workers=1)
    assert clean.resumed_files == []
    assert resumed.rows == clean.rows == {"gpu_samples": 100, "ingest_manifest": 20}
    order = "job_id, time_s, gpu_index"
    got = table_rows(Store(killed_store), "gpu_samples", order)
    assert got == table_rows(Store(tmp_path / "clean"), "gpu_samples", order)
    assert (41.75 in {r[-2] for r in got}) and len(set(got)) == 100
    # Staging is gone after the commit; a third run changes nothing.
    assert not (killed_store / ".staging" / "supercloud").exists()
    ingest("supercloud", [gpu_dir], killed_store, workers=1)
    assert table_rows(Store(killed_store), "gpu_samples", order) == got
    manifest = Store(killed_store).sql("select tables from ingest_manifest").to_series().to_list()
    assert all(json.loads(t) == {"gpu_samples": 5} for t in manifest)


def test_process_pool_gives_the_same_rows_as_one_process(gpu_dir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(engine, "BATCH_FILES", 3)
    pooled = ingest("supercloud", [gpu_dir], tmp_path / "pooled", workers=2)
    single = ingest("supercloud", [gpu_dir], tmp_path / "single", workers=1)
    assert pooled.rows == single.rows
    order = "job_id, time_s, gpu_index"
    assert table_rows(Store(tmp_path / "pooled"), "gpu_samples", order) == table_rows(
        Store(tmp_path / "single"), "gpu_samples", order
    )
