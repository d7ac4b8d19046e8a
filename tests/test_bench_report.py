"""`wattlas report bench_results`: every figure with data is drawn into one offline HTML page."""

from __future__ import annotations

from datetime import UTC, datetime

from wattlas.bench.report import figures, write_html
from wattlas.bench.session import rows_to_table
from wattlas.cli import main
from wattlas.store import Store


def _fill(store: Store) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    runs = [{"run_id": "r1", "bench": "gemm", "status": "complete", "started_at_utc": t0, "device_type": "cuda",
             "gpu_name": "NVIDIA H100 80GB HBM3", "peak_tflops_json": '{"bf16": 989.4}',
             "peak_mem_bandwidth_gb_s": 3350.0}]
    res = []
    for i, n in enumerate((1024, 4096, 8192)):
        res.append({"run_id": "r1", "point_id": i, "kind": "gemm", "device_type": "cuda",
                    "energy_source": "nvml_counter",
                    "dtype": "bf16", "m": n, "n": n, "k": n, "tflops": 300.0 + 60 * i,
                    "arithmetic_intensity_flop_per_byte": n / 3.0, "avg_power_w": 400.0 + 100 * i,
                    "started_at_utc": t0, "gpu_name": "NVIDIA H100 80GB HBM3"})
    for i, b in enumerate((1, 8, 32)):
        res.append({"run_id": "r1", "point_id": 3 + i, "kind": "decode", "device_type": "cuda", "model": "llama-3-8b",
                    "energy_source": "nvml_counter", "batch_size": b, "input_tokens": 512, "tokens_per_s": 50.0 * b,
                    "energy_per_token_j": 4.0 / b, "started_at_utc": t0})
    res += [{"run_id": "r1", "point_id": 6, "kind": "colocation", "device_type": "cuda", "energy_source": "unavailable",
             "energy_unavailable_reason": "no_gpu", "workload": w, "partner_workload": p, "colocation_mode": "streams",
             "slowdown": s} for w, p, s in (("gemm", "copy", 1.3), ("copy", "gemm", 1.8))]
    samples = [{"run_id": "r1", "point_id": 0, "device": "gpu0", "time_s": 0.1 * i, "power_w": 300.0 + i,
                "sm_clock_mhz": 1980.0} for i in range(20)]
    with store.transaction("wattlas-bench") as tx:
        tx.put("bench_runs", "r1", rows_to_table(runs))
        tx.put("bench_results", "r1.0", rows_to_table(res))
        tx.put("power_samples", "r1.0", rows_to_table(samples))


def test_figures_and_html(store_dir, tmp_path):
    store = Store(store_dir)
    _fill(store)
    con = store.connect()
    figs = figures(con)
    assert [f.layout.title.text.split(":")[0] for f in figs] == [
        "GEMM roofline", "Power and clock timeline (run r1)", "LLM", "Co-location"]
    roof = figs[0]
    names = [t.name for t in roof.data]
    assert "bf16" in names and any(n.startswith("roof bf16") for n in names)
    bf16 = next(t for t in roof.data if t.name == "bf16")
    assert list(bf16.y) == [300.0, 360.0, 420.0]
    roofline = next(t for t in roof.data if t.name.startswith("roof"))
    assert max(roofline.y) == 989.4  # compute roof
    assert "energy per token" in figs[2].layout.yaxis.title.text
    assert list(figs[3].data[0].y) == [1.8, 1.3]
    path = write_html(figs, tmp_path / "r.html")
    text = path.read_text()
    assert text.count("plotly.js") >= 1 and text.count('class="fig"') == 4
    assert '<script src="http' not in text  # self-contained: plotly.js inlined


def test_report_command(store_dir, tmp_path, capsys):
    _fill(Store(store_dir))
    out = tmp_path / "bench.html"
    assert main(["report", "bench_results", "-o", str(out), "--store", str(store_dir)]) == 0
    assert out.exists() and out.stat().st_size > 100_000
    assert main(["bench", "report", "-o", str(out), "--store", str(store_dir)]) == 0


def test_empty_store_report(store_dir, tmp_path):
    figs = figures(Store(store_dir).connect())
    assert figs == []
    assert "No bench results" in write_html(figs, tmp_path / "e.html").read_text()


def test_sections_for_the_general_report(store_dir, monkeypatch):
    import sys
    import types
    from dataclasses import dataclass, field

    from wattlas.analysis.bench_report import REPORTS

    @dataclass
    class Section:  # the shape wattlas.analysis.report.Section has
        title: str
        text: str = ""
        figures: list = field(default_factory=list)

    if "wattlas.analysis.report" not in sys.modules:
        try:
            import wattlas.analysis.report  # noqa: F401  (present once the analysis package has it)
        except ImportError:
            monkeypatch.setitem(sys.modules, "wattlas.analysis.report", types.SimpleNamespace(Section=Section))
    store = Store(store_dir)
    _fill(store)
    ctx = types.SimpleNamespace(input=types.SimpleNamespace(con=store.connect()))
    sections = REPORTS["bench_results"](ctx)
    assert len(sections) == 4 and all(len(s.figures) == 1 and s.text for s in sections)
