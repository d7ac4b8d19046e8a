"""Ctrl-C and impossible requests (issue 13, section 4): one line, exit 130, nothing left running;
refusals before any work; reports that say why a figure is missing; outputs that go where asked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from wattlas.store import Store

from ._ingest_helpers import live_processes, supercloud_gpu_dir, table_rows

ROOT = Path(__file__).resolve().parents[1]

# The CLI entry, with small batches (many staged batches from few files) and a parent that takes
# a while per finished batch, so a SIGINT surely lands mid-run.
CLI_SLOW_INGEST = textwrap.dedent("""
    import sys, time
    from wattlas.ingest import engine
    from wattlas.cli import main

    engine.BATCH_FILES = 2
    finish = engine._Run._finish

    def slow_finish(self, *args, **kwargs):
        finish(self, *args, **kwargs)
        time.sleep(0.3)

    engine._Run._finish = slow_finish
    sys.exit(main(sys.argv[1:]))
""")


def _group_alive(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    return live_processes(lambda _, fields: int(fields[2]) == pgid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find leftover processes")
def test_ctrl_c_during_ingest_prints_one_line_exits_130_and_resumes(tmp_path: Path):
    data = supercloud_gpu_dir(tmp_path / "data", n_files=40)
    store = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = ["ingest", "supercloud", "--from", str(data), "--workers", "2", "--store", str(store)]
    proc = subprocess.Popen([sys.executable, "-c", CLI_SLOW_INGEST, *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    staging = store / ".staging" / "supercloud"
    _, err, left = _interrupt_group_when(proc, lambda: bool(list(staging.glob("b-*/done.json"))))

    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("interrupted:")]
    assert len(lines) == 1, repr(err)
    staged = len(list(staging.glob("b-*/done.json")))
    assert 0 < staged < 20
    assert lines[0] == f"interrupted: {staged} batches staged; run the same command to resume"
    assert not left, f"processes of the interrupted ingest still alive: {left}"
    assert not (store / "catalog.json").exists()  # nothing committed

    # The same command again resumes the staged batches and ends with exactly a clean run's rows.
    rerun = subprocess.run([sys.executable, "-c", CLI_SLOW_INGEST.replace("0.3", "0"), *argv],
                           env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resumed {2 * staged} file(s)" in rerun.stderr
    clean = subprocess.run([sys.executable, "-m", "wattlas", *argv[:-1], str(tmp_path / "clean")],
                           env=env, capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stderr
    order = "job_id, time_s, gpu_index"
    assert table_rows(Store(store), "gpu_samples", order) == table_rows(Store(tmp_path / "clean"), "gpu_samples", order)


def _interrupt_group_when(proc: subprocess.Popen[str], ready) -> tuple[str, str, list[int]]:
    """SIGINT ``proc``'s process group once ``ready()``; its output and what is left of the group."""
    deadline = time.monotonic() + 90
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"the command ended before the interrupt: {proc.communicate()}"
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    out, err = proc.communicate(timeout=60)
    deadline = time.monotonic() + 10
    while (left := _group_alive(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return out, err, left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find leftover processes")
def test_ctrl_c_during_a_bench_keeps_the_points_and_prints_one_line(tmp_path: Path):
    import duckdb

    store = tmp_path / "store"
    sizes = ",".join(str(n) for n in range(64, 84))  # 20 points, each after a 0.3 s cool-down
    cmd = [sys.executable, "-m", "wattlas", "bench", "gemm", "--device", "cpu", "--quick", "--sizes", sizes,
           "--dtypes", "fp32", "--cooldown-s", "0.3", "--store", str(store)]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    results = store / "tables" / "bench_results"
    out, err, left = _interrupt_group_when(proc, lambda: len(list(results.rglob("*.parquet"))) >= 2)

    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    kept = len(list(results.rglob("*.parquet")))
    assert [ln for ln in err.splitlines() if ln.startswith("interrupted:")] == [f"interrupted: {kept} points kept"]
    assert not left, f"processes of the interrupted bench still alive: {left}"
    runs = duckdb.sql(f"select status, points from read_parquet('{store}/tables/bench_runs/*/*.parquet')").fetchall()
    assert runs == [("interrupted", kept)]


# ------------------------------------------------------------------ benches that cannot measure
@pytest.fixture
def no_rapl(monkeypatch):
    """This process sees no RAPL counter, whatever the machine has."""
    from wattlas.bench.rapl import RaplReader

    monkeypatch.setattr(RaplReader, "available", property(lambda self: False))
    monkeypatch.setattr(RaplReader, "reason", "no_powercap", raising=False)


@pytest.fixture
def no_energy_counter(no_rapl, monkeypatch):
    """No RAPL, and a GEMM that must never run."""
    from wattlas.bench import gemm

    def never(*args, **kwargs):
        raise AssertionError("a workload ran although the bench cannot measure it")

    monkeypatch.setattr(gemm, "measure_gemm", never)


@pytest.mark.parametrize("extra", [[], ["--dtype", "fp32"]])
def test_energy_check_without_an_energy_counter_refuses_before_any_work(
        tmp_path: Path, capsys, no_energy_counter, extra: list[str]):
    from wattlas.cli import main

    code = main(["bench", "energy-check", "--device", "cpu", "--store", str(tmp_path / "s"), *extra])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1
    assert "bench energy-check needs an energy counter" in err and "no_powercap" in err
    assert not (tmp_path / "s" / "tables").exists()  # not even a bench_runs row


@pytest.mark.parametrize("extra", [["--idle-s", "2"], ["--power-limits", "200", "--allow-device-settings"]])
def test_gemm_asked_for_what_it_cannot_measure_or_set_refuses_first(
        tmp_path: Path, capsys, no_energy_counter, extra: list[str]):
    from wattlas.cli import main

    code = main(["bench", "gemm", "--device", "cpu", "--quick", "--store", str(tmp_path / "s"), *extra])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1
    assert ("needs an energy counter" in err) if "--idle-s" in extra else ("need an NVML GPU" in err), err
    assert not (tmp_path / "s" / "tables").exists()


class _Stop(Exception):
    pass


def test_energy_check_default_dtype_on_cpu_is_one_the_cpu_runs(tmp_path: Path, monkeypatch):
    from wattlas.bench import gemm, run

    seen: list[str] = []

    def measured(pt, *args, **kwargs):
        seen.append(pt.dtype)
        raise _Stop  # enough: the GEMM that would run is known

    monkeypatch.setattr(run, "energy_refusal", lambda *a: None, raising=False)  # as if RAPL were readable
    monkeypatch.setattr(gemm, "measure_gemm", measured)
    with pytest.raises(_Stop):
        run.energy_check(store=tmp_path / "s", device="cpu", shapes=[(64, 64, 64)], trials=1, window_s=1.0)
    assert seen == ["fp32"]


# ------------------------------------------------------------------ bench reports without power
class _NoPowerSampler:
    """What the sampler gives on a machine without RAPL: CPU busy share, no power."""

    running = True

    def __init__(self, *args, **kwargs) -> None:
        pass

    def start(self) -> _NoPowerSampler:
        return self

    def samples(self, t0: float, t1: float) -> list[tuple]:
        return [(t, "cpu", None, None, None, None, None, None, None, None, 0.5) for t in (t0, t1)]

    def drop_before(self, t: float) -> None:
        pass

    def stop(self) -> None:
        pass


@pytest.fixture
def cpu_bench_store(tmp_path: Path, no_rapl, monkeypatch) -> Path:
    """A store with one tiny CPU GEMM run whose power samples carry no power (no RAPL)."""
    from wattlas.bench import run, sampler

    monkeypatch.setattr(sampler, "PowerSampler", _NoPowerSampler)
    store = tmp_path / "store"
    run.bench_gemm(store=store, device="cpu", shapes=[(64, 64, 64)], dtypes=["fp32"], quick=True)
    return store


def test_bench_figures_are_never_empty_and_say_why_power_is_missing(cpu_bench_store: Path):
    import wattlas
    from wattlas.bench import report

    con = wattlas.connect(cpu_bench_store)
    assert con.sql("select count(*) from power_samples").fetchall() == [(2,)]
    figs = report.figures(con)
    assert figs and all(len(f.data) > 0 for f in figs), [f.layout.title.text for f in figs]
    assert report.figures_and_notes(con)[1] == ["no power samples: no_powercap"]
    (roofline,) = figs  # a CPU run: no datasheet peaks, so no roofs drawn and none claimed
    assert not [t for t in roofline.data if t.name.startswith("roof")]
    assert "roofs dotted" not in roofline.layout.title.text


@pytest.mark.parametrize("argv", [["bench", "report"], ["report", "bench_results"]])
def test_bench_report_commands_say_why_there_is_no_timeline(cpu_bench_store: Path, tmp_path: Path, argv: list[str]):
    out = tmp_path / "r.html"
    proc = subprocess.run([sys.executable, "-m", "wattlas", *argv, "--store", str(cpu_bench_store), "-o", str(out)],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert "no power samples: no_powercap" in page
    assert "Power and clock timeline" not in page
    if argv[0] == "bench":
        assert "no power samples: no_powercap" in proc.stderr


# ------------------------------------------------------------------ outputs where they are asked for
@pytest.fixture(scope="module")
def llm_store(tmp_path_factory) -> Path:
    """The sample LLM trace (15 minutes of requests) in a store."""
    from wattlas.ingest import ingest
    from wattlas.ingest.sources import sample

    root = tmp_path_factory.mktemp("llm")
    ingest(sample.SOURCE_ID, sample.generate(root / "raw", duration_s=900), store=Store(root / "store"), workers=1)
    return root / "store"


def _wattlas(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wattlas", *argv], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)


def _export(store: Path, *extra: str) -> list[str]:
    from wattlas.ingest.sources import sample

    return ["workload", "export", "llm_requests", "-f", "vidur", "--source", sample.SOURCE_ID, "--trace", "conv",
            "--store", str(store), *extra]


def test_workload_export_to_dash_writes_the_file_to_stdout(llm_store: Path, tmp_path: Path):
    to_file = _wattlas(*_export(llm_store, "-o", str(tmp_path / "w.csv"), "--duration", "60"))
    to_stdout = _wattlas(*_export(llm_store, "-o", "-", "--duration", "60"))
    assert to_file.returncode == 0 and to_stdout.returncode == 0, to_stdout.stderr
    assert to_stdout.stdout == (tmp_path / "w.csv").read_text()  # the file, and nothing else
    assert to_stdout.stdout.startswith("arrived_at,num_prefill_tokens,num_decode_tokens\n")
    assert not Path("-").exists()


@pytest.mark.parametrize(("extra", "wrong"), [(["--start", "100000"], "--start 100000 s is outside the trace"),
                                              (["--duration", "0"], "--duration must be > 0 s"),
                                              (["--duration", "-5"], "--duration must be > 0 s")])
def test_workload_export_window_outside_the_trace_is_an_error_naming_its_span(
        llm_store: Path, tmp_path: Path, extra: list[str], wrong: str):
    proc = _wattlas(*_export(llm_store, "-o", str(tmp_path / "w.csv"), *extra))
    msg = " ".join(proc.stderr.split())
    assert proc.returncode == 1, proc.stderr
    assert wrong in msg and "the trace spans 0 to " in msg, msg
    assert not (tmp_path / "w.csv").exists()


@pytest.mark.parametrize("argv", [["report", "llm_requests"], ["bench", "report"]])
def test_report_into_a_missing_folder_fails_without_creating_it(llm_store: Path, tmp_path: Path, argv: list[str]):
    target = tmp_path / "nonexistent" / "dir" / "r.html"
    proc = _wattlas(*argv, "--store", str(llm_store), "-o", str(target))
    msg = " ".join(proc.stderr.split())
    assert proc.returncode == 1, proc.stderr
    assert f"the folder {target.parent} does not exist" in msg, msg
    assert not (tmp_path / "nonexistent").exists()
