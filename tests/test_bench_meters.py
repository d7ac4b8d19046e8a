"""Meter logic against fakes: counter arithmetic, wrap-around, missing counters and fields.

Real NVML/CUDA paths are in test_bench_gpu.py (marked ``gpu``).
"""

from __future__ import annotations

import doctest
import importlib
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from wattlas.bench import meters, nvml, rapl, sampler
from wattlas.bench.meters import EnergyMeter, NullMeter, NvmlEnergyMeter, RaplMeter, window_from_counters
from wattlas.bench.rapl import RaplReader, unwrap_delta_uj
from wattlas.bench.sampler import integrate_power, window_stats


# ------------------------------------------------------------------ NVML counter windows
class FakeGpu:
    """An NVML-like device whose energy counter the test drives."""

    def __init__(self, index: int, readings: list[int | None]):
        self.index = index
        self.readings = list(readings)

    def energy_mj(self):
        return self.readings.pop(0)


def test_counter_window_arithmetic_and_average_power():
    m = window_from_counters(10.0, 15.0, {"gpu0": 1_000_000, "gpu1": 50}, {"gpu0": 1_002_500, "gpu1": 1_050})
    assert m.energy_j == {"gpu0": 2.5, "gpu1": 1.0}
    assert m.total_energy_j == pytest.approx(3.5)
    assert m.avg_power_w == pytest.approx(0.7)
    assert m.time_s == 5.0
    assert (m.energy_source, m.energy_scope, m.energy_unavailable_reason) == ("nvml_counter", "gpu", None)


@pytest.mark.parametrize(
    ("start", "end", "reason"),
    [
        (5_000, 5_000, "below_counter_resolution"),  # no step: not 0 J
        (9_000, 1_000, "counter_reset"),  # driver reloaded during the window
        (None, 1_000, "counter_not_supported"),
        (1_000, None, "counter_not_supported"),
    ],
)
def test_counter_window_never_invents_energy(start, end, reason):
    m = window_from_counters(0.0, 1.0, {"gpu0": start}, {"gpu0": end})
    assert m.total_energy_j is None
    assert m.avg_power_w is None
    assert m.energy_source == "unavailable"
    assert m.energy_unavailable_reason == reason
    assert m.energy_scope is None
    assert m.below_resolution == (reason == "below_counter_resolution")


def test_one_unmeasurable_gpu_makes_the_total_unavailable():
    m = window_from_counters(0.0, 1.0, {"gpu0": 0, "gpu1": 0}, {"gpu0": 400, "gpu1": 0})
    assert m.energy_j["gpu0"] == 0.4
    assert m.total_energy_j is None


def test_nvml_meter_synchronizes_and_reads_each_device_at_both_ends():
    calls = []
    gpus = [FakeGpu(0, [1000, 6000]), FakeGpu(3, [0, 2000])]
    meter = NvmlEnergyMeter(gpus, sync=lambda: calls.append("sync"), scope="module")
    meter.begin_window("a")
    time.sleep(0.01)
    m = meter.end_window("a")
    assert calls == ["sync", "sync"]
    assert m.energy_j == {"gpu0": 5.0, "gpu3": 2.0}
    assert m.energy_scope == "module"
    assert m.time_s >= 0.01
    assert m.end_s - m.start_s == pytest.approx(m.time_s)


def test_window_keys_are_checked():
    meter = NvmlEnergyMeter([FakeGpu(0, [1, 2, 3, 4])])
    meter.begin_window("a")
    with pytest.raises(ValueError, match="already open"):
        meter.begin_window("a")
    with pytest.raises(ValueError, match="no open"):
        meter.end_window("b")
    meter.begin_window("b")  # nested/overlapping windows are allowed
    assert meter.end_window("a").energy_j == {"gpu0": 2.0 / 1000}
    assert meter.end_window("b").energy_j == {"gpu0": 2.0 / 1000}


def test_null_meter_reports_reason():
    m = NullMeter("no_gpu")
    m.begin_window("w")
    out = m.end_window("w")
    assert (out.energy_source, out.energy_unavailable_reason, out.total_energy_j) == ("unavailable", "no_gpu", None)


# ------------------------------------------------------------------ RAPL
def make_zone(root: Path, name: str, label: str, energy_uj: int, max_uj: int = 1_000_000) -> Path:
    z = root / name
    z.mkdir(parents=True)
    (z / "name").write_text(label + "\n")
    (z / "energy_uj").write_text(f"{energy_uj}\n")
    (z / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return z


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    root = tmp_path / "powercap"
    make_zone(root, "intel-rapl:0", "package-0", 100)
    make_zone(root, "intel-rapl:0:0", "core", 10)  # part of the package: never added
    make_zone(root, "intel-rapl:0:1", "dram", 20)
    make_zone(root, "intel-rapl:1", "package-1", 999_000)
    make_zone(root, "intel-rapl:2", "psys", 5)  # contains the packages: never added
    make_zone(root, "intel-rapl-mmio:0", "package-0", 7)  # duplicate of package-0
    return root


def test_rapl_discovers_packages_and_dram_only(powercap: Path):
    r = RaplReader(powercap)
    assert r.available and r.reason is None
    assert sorted((z.name, z.kind) for z in r.zones) == [("dram", "dram"), ("package-0", "package"),
                                                          ("package-1", "package")]


def test_rapl_window_unwraps_counter(powercap: Path):
    meter = RaplMeter(RaplReader(powercap))
    meter.begin_window("w")
    (powercap / "intel-rapl:0" / "energy_uj").write_text("500100\n")  # +500,000 uJ
    (powercap / "intel-rapl:1" / "energy_uj").write_text("1000\n")  # wrapped: 999,000 -> 1,000,000 -> 1,000
    (powercap / "intel-rapl:0:1" / "energy_uj").write_text("250020\n")  # dram +250,000 uJ
    m = meter.end_window("w")
    assert m.energy_source == "rapl" and m.energy_scope == "package"
    assert m.total_energy_j == pytest.approx(0.5 + 0.002)
    assert m.cpu_energy_j == pytest.approx(0.502)
    assert m.dram_energy_j == pytest.approx(0.25)


def test_unwrap_delta():
    assert unwrap_delta_uj(10, 30, 100) == 20
    assert unwrap_delta_uj(90, 5, 100) == 15


def test_rapl_absent(tmp_path: Path):
    r = RaplReader(tmp_path / "nothing")
    assert (r.available, r.reason) == (False, "no_powercap")
    meter = RaplMeter(r)
    meter.begin_window("w")
    m = meter.end_window("w")
    assert (m.energy_source, m.energy_unavailable_reason, m.total_energy_j) == ("unavailable", "no_powercap", None)


def test_rapl_without_package_zone(tmp_path: Path):
    make_zone(tmp_path / "pc", "intel-rapl:0", "psys", 1)
    assert RaplReader(tmp_path / "pc").reason == "no_package_zone"


def test_rapl_permission_denied(powercap: Path, monkeypatch: pytest.MonkeyPatch):
    real = Path.read_text

    def read_text(self, *a, **k):
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", read_text)
    assert RaplReader(powercap).reason == "permission_denied"


def test_rapl_read_error_and_zero_delta(powercap: Path):
    (powercap / "intel-rapl:1" / "energy_uj").write_text("not a number\n")
    r = RaplReader(powercap)
    assert r.available  # package-0 still readable
    assert [z.name for z in r.zones if z.kind == "package"] == ["package-0"]
    meter = RaplMeter(r)
    meter.begin_window("w")
    m = meter.end_window("w")  # nothing changed: below resolution, not 0 J
    assert m.energy_unavailable_reason == "below_counter_resolution" and m.total_energy_j is None


def test_energy_meter_adds_cpu_reading_to_gpu_window(powercap: Path):
    gpu = NvmlEnergyMeter([FakeGpu(0, [0, 3000])])
    cpu = RaplMeter(RaplReader(powercap))
    em = EnergyMeter(gpu, cpu)
    em.begin_window("w")
    (powercap / "intel-rapl:0" / "energy_uj").write_text("600100\n")
    m = em.end_window("w")
    assert m.energy_source == "nvml_counter" and m.total_energy_j == 3.0
    assert m.cpu_energy_j == pytest.approx(0.6)
    assert m.dram_energy_j == pytest.approx(0.0)


def test_energy_meter_passes_cpu_reason_through(tmp_path: Path):
    em = EnergyMeter(NullMeter("no_gpu"), RaplMeter(RaplReader(tmp_path / "none")))
    em.begin_window("w")
    m = em.end_window("w")
    assert m.energy_unavailable_reason == "no_gpu"
    assert m.cpu_unavailable_reason == "no_powercap" and m.cpu_energy_j is None


# ------------------------------------------------------------------ NVML device wrapper with a fake library
class FakeNvmlError(Exception):
    def __init__(self, value):
        self.value = value


def fake_pynvml(**overrides):
    def not_supported(*a):
        raise FakeNvmlError(3)

    lib = SimpleNamespace(
        NVMLError=FakeNvmlError, NVML_CLOCK_SM=1, NVML_CLOCK_MEM=2, NVML_TEMPERATURE_GPU=0,
        nvmlDeviceGetTotalEnergyConsumption=lambda h: 123_456,
        nvmlDeviceGetArchitecture=lambda h: 9,
        nvmlDeviceGetClockInfo=lambda h, kind: {1: 1755, 2: 2619}[kind],
        nvmlDeviceGetTemperature=not_supported,
        nvmlDeviceGetCurrentClocksEventReasons=not_supported,
        nvmlDeviceGetCurrentClocksThrottleReasons=lambda h: 0x4,
        nvmlDeviceGetEnforcedPowerLimit=lambda h: 700_000,
        nvmlDeviceGetPowerManagementLimit=lambda h: 700_000,
        nvmlDeviceGetPowerManagementDefaultLimit=not_supported,
        nvmlDeviceGetPowerManagementLimitConstraints=lambda h: [200_000, 700_000],
        nvmlDeviceGetFieldValues=lambda h, ids: [
            SimpleNamespace(nvmlReturn=0, valueType=1, value=SimpleNamespace(uiVal=612_345)),
            SimpleNamespace(nvmlReturn=3, valueType=1, value=SimpleNamespace(uiVal=0)),  # not supported
        ],
        nvmlDeviceGetComputeRunningProcesses=lambda h: [SimpleNamespace(pid=1), SimpleNamespace(pid=2)],
    )
    for k, v in overrides.items():
        setattr(lib, k, v)
    return lib


def test_nvml_device_missing_fields_are_none(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(nvml, "_pynvml", lambda: fake_pynvml())
    d = nvml.NvmlDevice(0, handle=object())
    assert d.energy_mj() == 123_456
    assert d.supports_energy_counter()
    assert d.temperature_c() is None  # NOT_SUPPORTED -> None, no crash
    assert d.clock_event_reasons() == 0x4  # falls back to the pre-rename call
    assert d.power_fields_mw() == (612_345.0, None)  # instant read, average not supported
    lim = d.power_limits()
    assert (lim.enforced_w, lim.default_w, lim.min_w, lim.max_w) == (700.0, None, 200.0, 700.0)
    assert d.sm_clock_mhz() == 1755 and d.mem_clock_mhz() == 2619
    assert d.other_compute_processes({1}) == 1
    assert d.name is None  # function absent from the fake library -> None
    assert d.utilization_pct() is None


def test_pre_volta_has_no_counter(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(nvml, "_pynvml", lambda: fake_pynvml(nvmlDeviceGetArchitecture=lambda h: 4))
    assert not nvml.NvmlDevice(0, handle=object()).supports_energy_counter()


def test_nvml_status_without_library(monkeypatch: pytest.MonkeyPatch):
    import pynvml

    def fail():
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", fail)
    assert nvml.nvml_status() == (False, "nvml_library_not_found")


def test_reason_names():
    assert nvml.reason_names(0x4 | 0x8) == "sw_power_cap,hw_slowdown"
    assert nvml.reason_names(None) is None


# ------------------------------------------------------------------ sampler arithmetic
def test_integrate_power_constant_and_ramp():
    assert integrate_power([0.0, 1.0, 2.0, 3.0], [200.0] * 4, 0.5, 2.5) == pytest.approx(400.0)
    # linear ramp 0..300 W over 3 s, window [1, 2]: mean 150 W
    assert integrate_power([0.0, 3.0], [0.0, 300.0], 1.0, 2.0) == pytest.approx(150.0)
    assert integrate_power([0.0, 1.0], [None, None], 0.0, 1.0) is None
    assert integrate_power([0.0], [100.0], 1.0, 1.0) is None


def test_window_stats_only_counts_inside_samples():
    s = [
        (0.0, "gpu0", 100.0, "nvml_instant", None, 1000, 2619, 40, 0x1, 0.0, None),
        (1.0, "gpu0", 500.0, "nvml_instant", None, 1980, 2619, 50, 0x4, 99.0, None),
        (2.0, "gpu0", 700.0, "nvml_instant", None, 1800, 2619, 60, 0x0, 99.0, None),
        (1.5, "cpu", None, None, None, None, None, None, None, None, 0.5),
        (5.0, "gpu0", 100.0, "nvml_instant", None, 1000, 2619, 40, 0x1, 0.0, None),
    ]
    st = window_stats(s, "gpu0", 0.5, 2.5)
    assert st.n_samples == 2
    assert st.power_mean_w == 600.0 and st.power_max_w == 700.0
    assert st.sm_clock_mean_mhz == 1890.0
    assert st.clock_event_reasons == 0x4
    # integral with neighbours interpolating the edges: 0.5-1: 300->500, 1-2: 500->700, 2-2.5: 700->600
    assert st.power_integral_j == pytest.approx(0.5 * 400 + 600 + 0.5 * 650)


def test_sampler_process_collects_cpu_samples():
    with sampler.PowerSampler([], period_s=0.02, cpu=True) as s:
        t0 = time.monotonic()
        time.sleep(0.3)
        got = s.samples(t0, time.monotonic())
        s.drop_before(time.monotonic())
        assert s.samples(0, time.monotonic() - 0.05) == []
    assert len(got) >= 3
    assert all(x[1] == "cpu" for x in got)
    assert all(x[10] is None or 0.0 <= x[10] <= 1.0 for x in got)
    assert not s.running


@pytest.mark.parametrize("module", ["meters", "nvml", "rapl", "sampler", "harness", "gemm", "colocate", "sweep",
                                    "peaks", "llm"])
def test_docstring_examples_run(module):
    mod = importlib.import_module(f"wattlas.bench.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_modules_import_without_side_effects():
    # The meters must import on a machine with no GPU and no powercap.
    assert meters.NVML_COUNTER == "nvml_counter" and rapl.POWERCAP_ROOT
