"""Real NVML and CUDA paths. Marked ``gpu``: skipped without an NVIDIA GPU, a driver and CUDA torch."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def target():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    from wattlas.bench.harness import open_target
    from wattlas.bench.nvml import nvml_status

    ok, reason = nvml_status()
    if not ok:
        pytest.skip(f"NVML unavailable: {reason}")
    return open_target("cuda")


def _busy(seconds: float):
    import torch

    a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        for _ in range(20):
            a @ a
        torch.cuda.synchronize()


def test_cuda_device_matched_to_nvml_by_uuid(target):
    import torch

    from wattlas.bench.nvml import normalize_uuid

    assert target.nvml is not None, target.nvml_reason
    props = torch.cuda.get_device_properties(target.cuda_index)
    if getattr(props, "uuid", None):
        assert normalize_uuid(str(props.uuid)) == normalize_uuid(target.nvml.uuid)
    assert target.gpu_name and target.gpu_uuid


def test_counter_window_measures_a_busy_gpu(target):
    dev = target.nvml
    assert dev.supports_energy_counter()
    target.meter.begin_window("busy")
    _busy(2.0)
    m = target.meter.end_window("busy")
    assert m.energy_source == "nvml_counter" and m.energy_unavailable_reason is None
    assert m.time_s >= 2.0
    limit = dev.power_limits().enforced_w or 1000.0
    assert 20.0 < m.avg_power_w < 1.2 * limit


def test_instant_power_field_and_state(target):
    dev = target.nvml
    inst, avg = dev.power_fields_mw()
    assert inst is not None and 10_000 < inst < 1_500_000  # mW
    assert dev.sm_clock_mhz() > 0 and dev.temperature_c() is not None
    assert dev.clock_event_reasons() is not None


def test_sampler_reads_the_gpu(target):
    from wattlas.bench.sampler import PowerSampler, window_stats

    with PowerSampler([target.nvml.index], period_s=0.05) as s:
        t0 = time.monotonic()
        _busy(1.0)
        t1 = time.monotonic()
        samples = s.samples(t0, t1)
    st = window_stats(samples, f"gpu{target.nvml.index}", t0, t1)
    assert st.n_samples >= 10 and st.power_mean_w > 20 and st.sm_clock_mean_mhz > 0
    assert st.power_integral_j > 0


def test_gemm_quick_on_cuda(target, store_dir):
    from wattlas.bench.gemm import supported_dtypes
    from wattlas.bench.run import bench_gemm

    dtypes = [d for d in ("bf16", "fp8", "tf32", "fp32") if supported_dtypes(target)[d] is None]
    run = bench_gemm(store=store_dir, device="cuda", quick=True, shapes=[(4096, 4096, 4096)], dtypes=dtypes,
                     window_s=1.0)
    assert [r["dtype"] for r in run.rows] == dtypes
    for r in run.rows:
        assert r["timer"] == "cuda_event" and r["device_type"] == "cuda"
        assert r["energy_source"] == "nvml_counter" and r["energy_j"] > 0 and r["window_s"] >= 1.0
        assert r["power_limit_w"] and r["sm_clock_mhz_start"] and r["temp_c_end"] is not None
        assert r["n_power_samples"] > 0 and r["power_integral_j"] > 0
        if r["peak_tflops"]:
            assert 0.01 < r["peak_fraction"] < 1.05
    by = {r["dtype"]: r["tflops"] for r in run.rows}
    if "fp32" in by and "tf32" in by:
        assert by["tf32"] > by["fp32"]  # TF32 really was switched on for the tf32 row
    import torch

    assert getattr(torch.backends.cuda.matmul, "fp32_precision", "none") in ("none", "ieee")


def test_llm_and_colocate_quick_on_cuda(target, store_dir):
    pytest.importorskip("transformers")
    from wattlas.bench.run import bench_colocate, bench_llm

    run = bench_llm(store=store_dir, device="cuda", quick=True, phases=("prefill", "decode"), window_s=1.0)
    assert all(r["energy_source"] == "nvml_counter" and r["tokens_per_s"] > 0 for r in run.rows)
    co = bench_colocate(store=store_dir, device="cuda", quick=True, target_s=1.0)
    modes = {r["colocation_mode"] for r in co.rows}
    assert modes == {"solo", "streams", "processes"}
    assert all(r["slowdown"] > 0 for r in co.rows)
