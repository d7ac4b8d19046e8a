"""The measurement protocol shared by every workload (spec section 3, "Our protocol").

For one point: (1) warm up for at least ``warmup_s``; (2) time single iterations (CUDA events on
the GPU, ``perf_counter_ns`` on the CPU) until at least ``min_iters`` samples and ``min_time_s``;
(3) run a separate energy window of back-to-back iterations lasting at least ``window_s``,
synchronized and metered at both ends, with device state (clocks, temperature, clock-event
reasons, power limit, other processes, load) read at both ends and the sampler's timeline
attached. A workload is anything with ``step()`` (enqueue one iteration); the harness never
looks inside it.

Examples
--------
>>> import numpy as np
>>> target = open_target("cpu")
>>> a = np.ones((64, 64), np.float32)
>>> proto = TimingProtocol(warmup_s=0.01, min_iters=5, min_time_s=0.01, window_s=0.02)
>>> pm = measure_point(lambda: a @ a, target, proto)
>>> pm.n_iters >= 5 and pm.window.time_s >= 0.02
True
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .meters import EnergyMeter, Measurement, NullMeter, NvmlEnergyMeter, RaplMeter
from .nvml import THROTTLE_MASK, NvmlDevice, reason_names

log = logging.getLogger("wattlas.bench")


# ---------------------------------------------------------------------------- target
@dataclass
class Target:
    """Where workloads run and how they are synchronized, timed and metered."""

    device_type: str  # "cuda" | "cpu"
    cuda_index: int | None = None
    nvml: NvmlDevice | None = None
    nvml_reason: str | None = None
    meter: Any = None
    rapl: RaplMeter | None = None
    gpu_name: str | None = None
    gpu_uuid: str | None = None
    energy_scope: str | None = None
    own_pids: set[int] = field(default_factory=lambda: {os.getpid()})

    @property
    def is_cuda(self) -> bool:
        return self.device_type == "cuda"

    def sync(self) -> None:
        if self.is_cuda:
            import torch

            torch.cuda.synchronize(self.cuda_index)

    @property
    def timer(self) -> str:
        return "cuda_event" if self.is_cuda else "perf_counter"

    @property
    def sampler_device(self) -> str:
        return f"gpu{self.nvml.index}" if self.nvml is not None else "cpu"


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def open_target(device: str = "auto", cuda_index: int = 0) -> Target:
    """Resolve ``auto``/``cuda``/``cpu`` into a :class:`Target` with its energy meter.

    CUDA devices are matched to NVML by UUID (NVML counts in PCI order, CUDA fastest-first).
    Without NVML or without an energy counter the meter is a :class:`NullMeter` with the
    reason; on the CPU the meter is RAPL or a :class:`NullMeter` with RAPL's reason.
    """
    from ..errors import WattlasError

    if device not in ("auto", "cuda", "cpu"):
        raise WattlasError(f"unknown device {device!r}; use auto, cuda or cpu")
    use_cuda = device == "cuda" or (device == "auto" and cuda_available())
    rapl = RaplMeter()
    if not use_cuda:
        from .nvml import nvml_status

        ok, nvml_reason = nvml_status()
        primary = rapl if rapl.available else NullMeter(rapl.reason or "no_powercap")
        return Target("cpu", meter=EnergyMeter(primary, rapl if rapl.available else None), rapl=rapl,
                      nvml_reason="not_used (--device cpu)" if ok else nvml_reason,
                      energy_scope="package" if rapl.available else None)
    if not cuda_available():
        raise WattlasError("--device cuda: torch sees no CUDA device (is torch a CUDA build and a driver loaded?)")
    import torch

    from . import nvml

    torch.cuda.set_device(cuda_index)
    props = torch.cuda.get_device_properties(cuda_index)
    target = Target("cuda", cuda_index=cuda_index, rapl=rapl, gpu_name=props.name)
    ok, reason = nvml.nvml_status()
    dev = None
    if ok:
        uuid = str(getattr(props, "uuid", "") or "")
        dev = nvml.device_by_uuid(uuid) if uuid else None
        if dev is None and len(nvml.devices()) == 1:
            dev = nvml.devices()[0]
        if dev is None:
            reason = "nvml_device_not_matched"
            log.warning("could not match CUDA device %d (uuid %s) to an NVML device", cuda_index, uuid)
    target.nvml_reason = reason
    if dev is not None:
        target.nvml = dev
        target.gpu_name = dev.name or props.name
        target.gpu_uuid = dev.uuid
        scope = "module" if "GH200" in (target.gpu_name or "") else "gpu"
        if dev.supports_energy_counter():
            primary: Any = NvmlEnergyMeter([dev], sync=target.sync, scope=scope)
            target.energy_scope = scope
        else:
            primary = NullMeter("counter_not_supported", sync=target.sync)
        if (props.major, props.minor) < (7, 0):
            log.warning("pre-Volta GPU: no energy counter; energy is reported as unavailable")
    else:
        primary = NullMeter(reason or "nvml_unavailable", sync=target.sync)
    target.meter = EnergyMeter(primary, rapl if rapl.available else None)
    return target


# ---------------------------------------------------------------------------- protocol
@dataclass(frozen=True)
class TimingProtocol:
    """How long to warm up, how many samples to time, how long the energy window lasts."""

    warmup_s: float = 1.0
    min_iters: int = 100
    min_time_s: float = 1.0
    max_iters: int = 100_000
    window_s: float = 5.0
    cooldown_s: float = 0.0
    l2_flush: bool = False
    first_calls: int = 3


@dataclass
class DeviceState:
    """Readings taken at one end of a window."""

    t: float
    temp_c: float | None = None
    sm_clock_mhz: float | None = None
    mem_clock_mhz: float | None = None
    clock_event_reasons: int | None = None
    power_limit_w: float | None = None
    other_processes: int | None = None
    loadavg_1m: float | None = None
    cpu_stat: tuple[int, int] | None = None  # (total jiffies, steal jiffies)


def _cpu_stat() -> tuple[int, int] | None:
    try:
        with open("/proc/stat") as fh:
            vals = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(vals[:8]), (vals[7] if len(vals) > 7 else 0)


def read_state(target: Target) -> DeviceState:
    st = DeviceState(t=time.monotonic())
    d = target.nvml
    if d is not None:
        st.temp_c = d.temperature_c()
        st.sm_clock_mhz = d.sm_clock_mhz()
        st.mem_clock_mhz = d.mem_clock_mhz()
        st.clock_event_reasons = d.clock_event_reasons()
        st.power_limit_w = d.power_limits().enforced_w
        st.other_processes = d.other_compute_processes(target.own_pids)
    with contextlib.suppress(OSError):
        st.loadavg_1m = os.getloadavg()[0]
    st.cpu_stat = _cpu_stat()
    return st


@dataclass
class PointMeasurement:
    """Everything the harness measured for one point (turned into a row by :func:`base_row`)."""

    started_at: datetime
    t_start: float
    warmup_s: float
    times_s: list[float]
    window: Measurement
    window_iters: int
    state_start: DeviceState
    state_end: DeviceState
    window_requested_s: float
    samples: list[tuple] = field(default_factory=list)
    cooldown_s: float = 0.0
    l2_flush: bool = False

    @property
    def n_iters(self) -> int:
        return len(self.times_s)

    def quantile(self, q: float) -> float:
        xs = sorted(self.times_s)
        if not xs:
            return math.nan
        pos = q * (len(xs) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(xs) - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

    @property
    def median_s(self) -> float:
        return self.quantile(0.5)


def time_iterations(step: Callable[[], Any], n: int, target: Target,
                    before: Callable[[], Any] | None = None) -> list[float]:
    """Time ``n`` single iterations; seconds each. ``before`` (e.g. an L2 flush) runs outside the timing."""
    if target.is_cuda:
        import torch

        starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        for i in range(n):
            if before is not None:
                before()
            starts[i].record()
            step()
            ends[i].record()
        torch.cuda.synchronize(target.cuda_index)
        return [s.elapsed_time(e) / 1000.0 for s, e in zip(starts, ends, strict=True)]
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        if before is not None:
            before()
        t0 = clock()
        step()
        out.append((clock() - t0) / 1e9)
    return out


def run_for(step: Callable[[], Any], seconds: float, target: Target, per_iter_hint_s: float | None = None
            ) -> tuple[int, float]:
    """Run ``step`` back to back for at least ``seconds`` (synchronizing between batches).

    Returns ``(iterations, seconds per iteration of the last batch)``. The first batch is short
    (a tenth of the time, by the hint), later ones aim at the remaining time (at most 1 s each), so
    a wrong hint or a busy machine overshoots the end by little.
    """
    t_end = time.monotonic() + seconds
    n_total = 0
    hint = per_iter_hint_s if per_iter_hint_s and per_iter_hint_s > 0 else None
    batch = 1 if hint is None else max(1, int(min(0.1 * seconds, 0.2) / hint))
    per_iter = math.nan
    while True:
        t0 = time.monotonic()
        for _ in range(batch):
            step()
        target.sync()
        dt = time.monotonic() - t0
        n_total += batch
        per_iter = dt / batch
        remaining = t_end - time.monotonic()
        if remaining <= 0:
            return n_total, per_iter
        batch = max(1, min(int(min(remaining, 1.0) / max(per_iter, 1e-9)) + 1, 2 * batch + 1, 1_000_000))


def measure_point(
    step: Callable[[], Any],
    target: Target,
    proto: TimingProtocol,
    sampler: Any = None,
    *,
    flush: Callable[[], Any] | None = None,
    window_step: Callable[[], Any] | None = None,
) -> PointMeasurement:
    """Warm up, time, and meter one workload (see the module docstring).

    ``window_step`` replaces ``step`` inside the energy window (for workloads whose timed unit
    differs from what should loop, rarely needed).
    """
    started_at = datetime.now(UTC)
    if proto.cooldown_s > 0:
        target.sync()
        time.sleep(proto.cooldown_s)
    t_start = time.monotonic()
    # (1) warm-up: first calls pay for handles, heuristics, lazy loading; then >= warmup_s.
    for _ in range(proto.first_calls):
        step()
    target.sync()
    _, per_iter = run_for(step, max(proto.warmup_s, 0.0), target)
    warmup_s = time.monotonic() - t_start
    # (2) timed samples: per-iteration timing.
    per_iter = max(per_iter, 1e-7)
    n = max(proto.min_iters, math.ceil(proto.min_time_s / per_iter))
    n = min(n, proto.max_iters)
    times = time_iterations(step, n, target, before=flush if proto.l2_flush else None)
    median = sorted(times)[len(times) // 2]
    # (3) energy window: back-to-back iterations for >= window_s, synchronized, metered.
    ws = window_step or step
    state_start = read_state(target)
    target.meter.begin_window("point")
    iters, _ = run_for(ws, proto.window_s, target, per_iter_hint_s=median)
    window = target.meter.end_window("point")
    state_end = read_state(target)
    samples = sampler.samples(t_start, time.monotonic()) if sampler is not None else []
    return PointMeasurement(
        started_at=started_at, t_start=t_start, warmup_s=warmup_s, times_s=times, window=window,
        window_iters=iters, state_start=state_start, state_end=state_end, window_requested_s=proto.window_s,
        samples=samples, cooldown_s=proto.cooldown_s, l2_flush=proto.l2_flush,
    )


# ---------------------------------------------------------------------------- rows
def window_too_short(window_s: float, requested_s: float, below_resolution: bool) -> bool:
    """A window is too short when a counter step was missed, it lasted < 1 s or < the request,
    or the request itself was below 1 s (``--quick``): such rows stay flagged even when a slow
    iteration happened to stretch the window.

    >>> window_too_short(5.2, 5.0, False), window_too_short(0.3, 0.25, False), window_too_short(6, 5, True)
    (False, True, True)
    >>> window_too_short(1.4, 0.25, False)
    True
    """
    return below_resolution or requested_s < 1.0 or window_s < 1.0 or window_s < 0.95 * requested_s


def base_row(pm: PointMeasurement, target: Target, *, idle_power_w: float | None = None,
             sampler_period_s: float | None = None) -> dict[str, Any]:
    """The columns every ``bench_results`` row shares: timing, energy, state, flags."""
    from .sampler import window_stats

    w = pm.window
    energy = w.total_energy_j
    stats = window_stats(pm.samples, target.sampler_device, w.start_s, w.end_s) if pm.samples else None
    reasons = None
    for r in (pm.state_start.clock_event_reasons, pm.state_end.clock_event_reasons,
              stats.clock_event_reasons if stats else None):
        if r is not None:
            reasons = (reasons or 0) | int(r)
    other = max((x for x in (pm.state_start.other_processes, pm.state_end.other_processes) if x is not None),
                default=None)
    steal = None
    a, b = pm.state_start.cpu_stat, pm.state_end.cpu_stat
    if a and b and b[0] > a[0]:
        steal = (b[1] - a[1]) / (b[0] - a[0])
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    busy_others = pm.state_end.loadavg_1m is not None and pm.state_end.loadavg_1m > ncpu + 0.5
    sm_mean = stats.sm_clock_mean_mhz if stats else None
    mean_t = sum(pm.times_s) / len(pm.times_s) if pm.times_s else None
    return {
        "started_at_utc": pm.started_at,
        "device_type": target.device_type,
        "device_index": target.cuda_index,
        "gpu_name": target.gpu_name,
        "gpu_uuid": target.gpu_uuid,
        "l2_flush": pm.l2_flush,
        "warmup_s": pm.warmup_s,
        "n_iters": pm.n_iters,
        "time_per_iter_s_median": pm.median_s,
        "time_per_iter_s_p10": pm.quantile(0.1),
        "time_per_iter_s_p90": pm.quantile(0.9),
        "time_per_iter_s_mean": mean_t,
        "timer": target.timer,
        "window_s": w.time_s,
        "window_iters": pm.window_iters,
        "window_time_per_iter_s": w.time_s / pm.window_iters if pm.window_iters else None,
        "energy_j": energy,
        "energy_per_iter_j": energy / pm.window_iters if energy is not None and pm.window_iters else None,
        "avg_power_w": w.avg_power_w,
        "energy_source": w.energy_source,
        "energy_scope": w.energy_scope,
        "energy_unavailable_reason": w.energy_unavailable_reason,
        "idle_power_w": idle_power_w,
        "dynamic_energy_j": energy - idle_power_w * w.time_s if energy is not None and idle_power_w else None,
        "cpu_energy_j": w.cpu_energy_j,
        "dram_energy_j": w.dram_energy_j,
        "power_integral_j": stats.power_integral_j if stats else None,
        "power_instant_mean_w": stats.power_mean_w if stats else None,
        "power_instant_max_w": stats.power_max_w if stats else None,
        "n_power_samples": stats.n_samples if stats else 0,
        "sampler_period_s": sampler_period_s,
        "power_limit_w": pm.state_start.power_limit_w,
        "sm_clock_mhz_start": pm.state_start.sm_clock_mhz,
        "sm_clock_mhz_end": pm.state_end.sm_clock_mhz,
        "sm_clock_mhz_mean": sm_mean,
        "mem_clock_mhz": pm.state_start.mem_clock_mhz,
        "temp_c_start": pm.state_start.temp_c,
        "temp_c_end": pm.state_end.temp_c,
        "clock_event_reasons": reasons,
        "clock_event_reason_names": reason_names(reasons),
        "throttled": None if reasons is None else bool(reasons & THROTTLE_MASK),
        "window_too_short": window_too_short(w.time_s, pm.window_requested_s, w.below_resolution),
        "concurrent_activity": bool((other or 0) > 0 or busy_others),
        "other_processes": other,
        "loadavg_1m": pm.state_end.loadavg_1m,
        "steal_frac": steal,
        "cooldown_s": pm.cooldown_s,
    }


def sample_rows(samples: list[tuple], t_start: float, window: tuple[float, float] | None) -> list[dict[str, Any]]:
    """``power_samples`` rows (without run/point ids) from sampler tuples."""
    out = []
    for s in samples:
        t, dev, p, src, pavg, sm, mem, temp, reasons, gutil, cutil = s
        out.append({
            "device": dev, "time_s": t - t_start,
            "in_window": None if window is None else bool(window[0] <= t <= window[1]),
            "power_w": p, "power_source": src, "power_avg_w": pavg, "sm_clock_mhz": sm, "mem_clock_mhz": mem,
            "temp_c": temp, "clock_event_reasons": reasons, "gpu_util_pct": gutil, "cpu_util_frac": cutil,
        })
    return out


def host_name() -> str:
    return socket.gethostname()
