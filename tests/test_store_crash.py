"""Crash safety of the store: SIGKILL at any instruction of an ingest and its commit, readers
that keep their snapshot while writers commit, staging that is verified before reuse, and pool
workers that die with their parent.

The kill points are *instructions*: the killed process traces its own wattlas lines and sends
itself SIGKILL at the N-th, with N drawn from a seeded generator over a count measured first.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import duckdb
import pytest

from wattlas.errors import StoreDiskError
from wattlas.ingest import engine, ingest
from wattlas.store import Store

from ._ingest_helpers import live_processes, supercloud_gpu_dir, table_rows

ROOT = Path(__file__).resolve().parents[1]
_REAL_CHECK_GROUPS = engine._check_groups
ORDER = "job_id, time_s, gpu_index"

# Runs an ingest of argv[1] into argv[2] with a pool of two workers, sending itself SIGKILL at
# line event number argv[3] of the phase argv[4] ("any": every wattlas line of the main
# process; "commit": the lines of the store's commit). argv[3] = 0 counts and prints the total.
KILLER = textwrap.dedent("""
    import os, signal, sys
    from wattlas.ingest import engine, ingest

    engine.BATCH_FILES = 2
    target, phase = int(sys.argv[3]), sys.argv[4]
    package = os.path.dirname(engine.__file__).rsplit(os.sep, 1)[0]
    commit = {"_commit", "_place", "_fsync_write", "_fsync_dir"}
    count = 0

    def local(frame, event, arg):
        global count
        if event == "line" and (phase == "any" or frame.f_code.co_name in commit):
            count += 1
            if count == target:
                os.kill(os.getpid(), signal.SIGKILL)
        return local

    def tracer(frame, event, arg):
        return local if frame.f_code.co_filename.startswith(package) else None

    sys.settrace(tracer)
    ingest("supercloud", [sys.argv[1]], sys.argv[2], workers=2)
    sys.settrace(None)
    print(count)
""")


def _glob_rows(store: Path, table: str) -> int:
    """What the README's no-wattlas query reads: every Parquet file under the table's folders."""
    files = list((store / "tables" / table).glob("*/*.parquet"))
    if not files:
        return 0
    return duckdb.sql(f"select count(*) from read_parquet({[str(f) for f in files]})").fetchall()[0][0]


def _marked_processes(mark: str) -> list[int]:
    """Live processes (not zombies) whose environment carries ``mark``."""
    needle = f"WATTLAS_KILL_MARK={mark}".encode()
    return live_processes(lambda proc, _: needle in (proc / "environ").read_bytes())


def _run_killer(data: Path, store: Path, target: int, phase: str) -> subprocess.CompletedProcess[str]:
    mark = uuid.uuid4().hex
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WATTLAS_KILL_MARK": mark}
    proc = subprocess.run([sys.executable, "-c", KILLER, str(data), str(store), str(target), phase],
                          env=env, capture_output=True, text=True, timeout=300)
    deadline = time.monotonic() + 10
    while (left := _marked_processes(mark)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes of the killed ingest still alive: {left}"
    return proc


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find leftover processes")
def test_kill_anywhere_then_rerun_gives_one_clean_run(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(engine, "BATCH_FILES", 2)
    old = supercloud_gpu_dir(tmp_path / "old", power_w=40)
    new = supercloud_gpu_dir(tmp_path / "new", power_w=60)
    ingest("supercloud", [old], tmp_path / "clean-old", workers=1)
    ingest("supercloud", [new], tmp_path / "clean-new", workers=1)
    old_rows = table_rows(Store(tmp_path / "clean-old"), "gpu_samples", ORDER)
    new_rows = table_rows(Store(tmp_path / "clean-new"), "gpu_samples", ORDER)
    assert len(new_rows) == 100 and old_rows != new_rows

    totals = {}
    for phase in ("any", "commit"):
        counted = _run_killer(new, tmp_path / f"count-{phase}", 0, phase)
        assert counted.returncode == 0, counted.stderr
        totals[phase] = int(counted.stdout.split()[-1])
    rng = random.Random(18)
    points = [("any", rng.randint(1, totals["any"])) for _ in range(12)]
    points += [("commit", rng.randint(1, totals["commit"])) for _ in range(8)]

    for n, (phase, target) in enumerate(points):
        store = tmp_path / f"s{n}"
        ingest("supercloud", [old], store, workers=1)  # a store that holds the old rows
        killed = _run_killer(new, store, target, phase)
        where = f"kill {n} at {phase} line {target} of {totals[phase]}"
        assert killed.returncode == -signal.SIGKILL, f"{where}: {killed.stderr[-2000:]}"
        # Whatever the moment: the old rows or the new ones, never a mixture.
        seen = table_rows(Store(store), "gpu_samples", ORDER)
        assert seen in (old_rows, new_rows), where
        # Opening the store (above) removed what the crash left: the plain glob agrees.
        assert _glob_rows(store, "gpu_samples") == 100, where
        rerun = ingest("supercloud", [new], store, workers=1)
        assert rerun.rows == {"gpu_samples": 100, "ingest_manifest": 20}, where
        assert table_rows(Store(store), "gpu_samples", ORDER) == new_rows, where
        assert Store(store).sql("select count(*) from ingest_manifest").item() == 20, where
        assert _glob_rows(store, "gpu_samples") == 100, where
        assert not (store / ".staging" / "supercloud").exists(), where
        assert not list(store.glob(".pending/*")), where


def test_rerun_after_a_kill_between_placing_parts_and_the_swap(tmp_path: Path, monkeypatch):
    """The red team's stuck store: a commit killed half way once consumed staged parts."""
    monkeypatch.setattr(engine, "BATCH_FILES", 2)
    data = supercloud_gpu_dir(tmp_path / "data", power_w=40)
    store = tmp_path / "store"
    # The third commit line that places a part: some parts are in tables/, the catalog is old.
    killed = _run_killer(data, store, _first_line_of_place(data, tmp_path) + 3, "commit")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (store / "catalog.json").exists()
    assert any((store / ".pending").iterdir())  # the journal of the commit that died
    staged = list((store / ".staging" / "supercloud").glob("b-*/done.json"))
    assert len(staged) == 10
    report = ingest("supercloud", [data], store, workers=1)
    assert len(report.resumed_files) == 20 and report.rows["gpu_samples"] == 100
    assert _glob_rows(store, "gpu_samples") == 100


def _first_line_of_place(data: Path, tmp_path: Path) -> int:
    """How many commit lines run before the first part is placed (measured by counting)."""
    probe = textwrap.dedent("""
        import sys
        from wattlas import store as st
        from wattlas.ingest import engine, ingest
        engine.BATCH_FILES = 2
        count, first = 0, []
        commit = {"_commit", "_place", "_fsync_write", "_fsync_dir"}
        def local(frame, event, arg):
            global count
            if event == "line" and frame.f_code.co_name in commit:
                count += 1
                if frame.f_code.co_name == "_place" and not first:
                    first.append(count)
            return local
        sys.settrace(lambda f, e, a: local if f.f_code.co_filename == st.__file__ else None)
        ingest("supercloud", [sys.argv[1]], sys.argv[2], workers=1)
        print(first[0])
    """)
    out = subprocess.run([sys.executable, "-c", probe, str(data), str(tmp_path / "probe")],
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


def test_changed_or_missing_staged_part_is_converted_again(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(engine, "BATCH_FILES", 2)
    data = supercloud_gpu_dir(tmp_path / "data", power_w=40)
    store = tmp_path / "store"

    def interrupt(*args):  # runs after every batch is staged, before anything is committed
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "_check_groups", interrupt)
    with pytest.raises(KeyboardInterrupt):
        ingest("supercloud", [data], store, workers=1)
    monkeypatch.setattr(engine, "_check_groups", _REAL_CHECK_GROUPS)
    stages = sorted((store / ".staging" / "supercloud").glob("b-*"))
    assert len(stages) == 10
    parts = [sorted(s.rglob("*.parquet"))[0] for s in stages[:2]]
    parts[0].unlink()                                   # missing
    parts[1].write_bytes(parts[1].read_bytes()[:-9] + b"corrupted")  # changed, same name
    report = ingest("supercloud", [data], store, workers=1)
    assert len(report.resumed_files) == 16  # 8 intact batches of two files; two redone
    ingest("supercloud", [data], tmp_path / "clean", workers=1)
    assert table_rows(Store(store), "gpu_samples", ORDER) == table_rows(Store(tmp_path / "clean"), "gpu_samples", ORDER)


def test_open_connection_keeps_reading_its_snapshot_while_a_commit_replaces_rows(tmp_path: Path):
    old = supercloud_gpu_dir(tmp_path / "old", power_w=40)
    new = supercloud_gpu_dir(tmp_path / "new", power_w=60)
    store = tmp_path / "store"
    ingest("supercloud", [old], store, workers=1)
    con = Store(store).connect()
    before = con.sql("select sum(power_w) from gpu_samples").fetchall()[0][0]
    ingest("supercloud", [new], store, workers=1)  # retires the files the connection reads
    assert con.sql("select sum(power_w) from gpu_samples").fetchall()[0][0] == before
    assert Store(store).sql("select sum(power_w) from gpu_samples").item() == before + 100 * 20
    snapshots = store / ".snapshots"
    assert any(snapshots.iterdir())
    del con
    import gc

    gc.collect()
    assert not any(snapshots.iterdir())  # closed with its connection


def test_readers_never_fail_while_four_writers_commit(tmp_path: Path):
    store = tmp_path / "store"
    dirs = [supercloud_gpu_dir(tmp_path / f"d{i}", power_w=40 + i) for i in range(2)]
    ingest("supercloud", [dirs[0]], store, workers=1)
    cmd = [sys.executable, "-m", "wattlas", "ingest", "supercloud", "--store", str(store), "--from"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [subprocess.Popen([*cmd, str(dirs[i % 2])], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE) for i in range(4)]
    reads = 0
    while any(w.poll() is None for w in writers):
        n = Store(store).sql("select count(*) from gpu_samples").item()
        assert n == 100
        reads += 1
    for w in writers:
        assert w.wait() == 0, w.stderr.read()
    assert reads > 0
    assert _glob_rows(store, "gpu_samples") == 100


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 4 MiB tmpfs (root only; skipped elsewhere): a disk that really fills up."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_at_any_point_then_space_freed_reruns_clean(tmp_path: Path, small_disk: Path, monkeypatch):
    monkeypatch.setattr(engine, "BATCH_FILES", 2)
    old = supercloud_gpu_dir(tmp_path / "old", power_w=40)
    new = supercloud_gpu_dir(tmp_path / "new", power_w=60)
    ingest("supercloud", [new], tmp_path / "clean", workers=1)
    new_rows = table_rows(Store(tmp_path / "clean"), "gpu_samples", ORDER)
    filler = small_disk / "filler"
    outcomes = set()
    for free_kib in range(8, 400, 24):  # from nothing fits to everything fits
        store = small_disk / "store"
        ingest("supercloud", [old], store, workers=1)
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        filler.write_bytes(b"\0" * max(0, free - free_kib * 1024))
        before = (store / "catalog.json").read_bytes()
        try:
            ingest("supercloud", [new], store, workers=1)
            outcomes.add("ok")
        except StoreDiskError as e:  # the disk, never blamed on the input
            assert "No space left on device (errno 28)" in str(e), repr(e)
            outcomes.add("full")
            assert (store / "catalog.json").read_bytes() == before, free_kib
        filler.unlink()
        rerun = ingest("supercloud", [new], store, workers=1)
        assert rerun.rows["gpu_samples"] == 100, free_kib
        assert table_rows(Store(store), "gpu_samples", ORDER) == new_rows, free_kib
        assert _glob_rows(store, "gpu_samples") == 100, free_kib
        subprocess.run(["rm", "-rf", str(store)], check=True)
    assert outcomes == {"ok", "full"}
