"""A background power sampler in its own process, so polling never runs in the timed thread.

The child polls at a fixed period: per GPU the NVML instant power field
(``NVML_FI_DEV_POWER_INSTANT``, not ``nvmlDeviceGetPowerUsage``, which is a 1-s average on recent
GPUs), the 1-s average as a cross-check, SM/memory clocks, temperature, clock-event reasons and
utilisation; for the CPU the busy share from ``/proc/stat`` and RAPL power where readable. It keeps
the samples with monotonic timestamps (``CLOCK_MONOTONIC`` is system-wide on Linux, so they compare
with the parent's window ends) and hands them over on request.

Examples
--------
>>> integrate_power([0.0, 1.0, 2.0], [100.0, 100.0, 100.0], 0.0, 2.0)
200.0
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._interrupt import ignore_sigint, sigint_blocked

log = logging.getLogger("wattlas.bench")

#: Field order of a sample tuple (kept as tuples: cheap to pickle across the pipe).
FIELDS = (
    "t", "device", "power_w", "power_source", "power_avg_w", "sm_clock_mhz", "mem_clock_mhz", "temp_c",
    "clock_event_reasons", "gpu_util_pct", "cpu_util_frac",
)
_T, _DEV, _P = 0, 1, 2


def integrate_power(times_s: Sequence[float], power_w: Sequence[float | None], t0: float, t1: float) -> float | None:
    """Trapezoid integral of power samples over ``[t0, t1]`` in J; edges hold the nearest sample.

    Samples outside the window are used only to interpolate its edges; ``None`` powers are
    skipped. Returns ``None`` with no usable sample.

    >>> integrate_power([0.5, 1.5], [100.0, 300.0], 0.0, 2.0)   # 100 W held, ramp, 300 W held
    400.0
    """
    pts = sorted((t, p) for t, p in zip(times_s, power_w, strict=True) if p is not None)
    if not pts or t1 <= t0:
        return None

    def at(t: float) -> float:
        if t <= pts[0][0]:
            return pts[0][1]
        if t >= pts[-1][0]:
            return pts[-1][1]
        lo, hi = 0, len(pts) - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if pts[mid][0] <= t:
                lo = mid
            else:
                hi = mid
        (ta, pa), (tb, pb) = pts[lo], pts[hi]
        return pa if tb == ta else pa + (pb - pa) * (t - ta) / (tb - ta)

    knots = [t0] + [t for t, _ in pts if t0 < t < t1] + [t1]
    vals = [at(t) for t in knots]
    return float(sum((knots[i + 1] - knots[i]) * (vals[i] + vals[i + 1]) / 2 for i in range(len(knots) - 1)))


@dataclass(frozen=True)
class WindowStats:
    """Summary of one device's samples inside a window."""

    n_samples: int
    power_mean_w: float | None
    power_max_w: float | None
    power_integral_j: float | None
    sm_clock_mean_mhz: float | None
    clock_event_reasons: int | None


def window_stats(samples: Sequence[tuple], device: str, t0: float, t1: float) -> WindowStats:
    """Stats of ``device``'s samples within ``[t0, t1]`` (the integral uses neighbours for edges)."""
    mine = [s for s in samples if s[_DEV] == device]
    inside = [s for s in mine if t0 <= s[_T] <= t1]
    powers = [s[_P] for s in inside if s[_P] is not None]
    clocks = [s[5] for s in inside if s[5] is not None]
    reasons = [s[8] for s in inside if s[8] is not None]
    mask = None
    for r in reasons:
        mask = (mask or 0) | int(r)
    integral = integrate_power([s[_T] for s in mine], [s[_P] for s in mine], t0, t1) if powers else None
    return WindowStats(
        n_samples=len(inside),
        power_mean_w=sum(powers) / len(powers) if powers else None,
        power_max_w=max(powers) if powers else None,
        power_integral_j=integral,
        sm_clock_mean_mhz=sum(clocks) / len(clocks) if clocks else None,
        clock_event_reasons=mask,
    )


# ---------------------------------------------------------------------- the child process
class _CpuProbe:
    def __init__(self) -> None:
        from .rapl import RaplReader

        self.rapl = RaplReader()
        self._stat = self._read_stat()
        self._uj = self.rapl.read_uj() if self.rapl.available else None
        self._t = time.monotonic()

    @staticmethod
    def _read_stat() -> tuple[int, int] | None:
        try:
            with open("/proc/stat") as fh:
                vals = [int(x) for x in fh.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        return sum(vals[:8]), idle

    def sample(self, now: float) -> tuple:
        stat = self._read_stat()
        util = None
        if stat and self._stat and stat[0] > self._stat[0]:
            util = 1.0 - (stat[1] - self._stat[1]) / (stat[0] - self._stat[0])
        self._stat = stat
        power = None
        if self._uj is not None:
            uj = self.rapl.read_uj()
            if uj is not None and now > self._t:
                pkg, _ = self.rapl.delta_j(self._uj, uj)
                power = pkg / (now - self._t)
            self._uj = uj
        self._t = now
        return (now, "cpu", power, "rapl_delta" if power is not None else None, None, None, None, None, None,
                None, util)


class _GpuProbe:
    def __init__(self, index: int):
        from .nvml import NvmlDevice

        self.dev = NvmlDevice(index)
        self.name = f"gpu{index}"

    def sample(self, now: float) -> tuple:
        d = self.dev
        inst, avg = d.power_fields_mw()
        return (
            now, self.name,
            None if inst is None else inst / 1000.0, "nvml_instant" if inst is not None else None,
            None if avg is None else avg / 1000.0,
            d.sm_clock_mhz(), d.mem_clock_mhz(), d.temperature_c(), d.clock_event_reasons(),
            d.utilization_pct(), None,
        )


def _sampler_main(conn: Any, gpu_indices: list[int], period_s: float, cpu: bool) -> None:
    ignore_sigint()  # Ctrl-C reaches the whole process group: the parent stops us
    probes: list[Any] = []
    try:
        if gpu_indices:
            from .nvml import nvml_status

            ok, reason = nvml_status()
            if ok:
                probes += [_GpuProbe(i) for i in gpu_indices]
            else:
                log.warning("sampler: NVML unavailable (%s)", reason)
        if cpu:
            probes.append(_CpuProbe())
    except Exception as e:  # report instead of dying silently
        conn.send(("error", repr(e)))
        return
    conn.send(("ready", len(probes)))
    buf: list[tuple] = []
    next_t = time.monotonic()
    while True:
        timeout = max(0.0, next_t - time.monotonic())
        if conn.poll(timeout):
            msg = conn.recv()
            if msg[0] == "stop":
                break
            if msg[0] == "get":
                t0, t1 = msg[1], msg[2]
                conn.send([s for s in buf if t0 <= s[_T] <= t1])
            elif msg[0] == "drop":
                buf = [s for s in buf if s[_T] >= msg[1]]
                conn.send(len(buf))
            continue
        now = time.monotonic()
        for p in probes:
            buf.append(p.sample(now))
        next_t += period_s
        if next_t < now:  # fell behind (machine busy): skip, do not burst
            next_t = now + period_s
    conn.close()


class PowerSampler:
    """Start/stop a sampler process; fetch samples of a time range.

    Parameters
    ----------
    gpu_indices
        NVML indices to sample (empty: none).
    period_s
        Polling period (default 0.1 s; below 0.05 s NVML may return repeated values, and fast
        polling costs CPU: measure with ``benchmarks/bench_overhead.py``).
    cpu
        Sample CPU busy share and RAPL power too.

    Examples
    --------
    >>> with PowerSampler([], period_s=0.05) as s:            # doctest: +SKIP
    ...     t0 = time.monotonic(); time.sleep(0.3)
    ...     rows = s.samples(t0, time.monotonic())
    """

    def __init__(self, gpu_indices: Sequence[int] = (), period_s: float = 0.1, cpu: bool = True):
        if period_s <= 0:
            raise ValueError(f"sampler period must be > 0 s, got {period_s}")
        self.gpu_indices = list(gpu_indices)
        self.period_s = period_s
        self.cpu = cpu
        self._proc: Any = None
        self._conn: Any = None

    def start(self) -> PowerSampler:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_sampler_main, args=(child, self.gpu_indices, self.period_s, self.cpu),
            name="wattlas-power-sampler", daemon=True,
        )
        with sigint_blocked():  # born ignoring Ctrl-C (see _sampler_main)
            self._proc.start()
        child.close()
        self._conn = parent
        if not parent.poll(60):
            self.stop()
            raise RuntimeError("power sampler did not start within 60 s")
        kind, info = parent.recv()
        if kind != "ready":
            self.stop()
            raise RuntimeError(f"power sampler failed to start: {info}")
        return self

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def samples(self, t0: float, t1: float) -> list[tuple]:
        """Samples taken in ``[t0, t1]`` (monotonic seconds), as tuples in :data:`FIELDS` order."""
        if not self.running:
            return []
        self._conn.send(("get", t0, t1))
        return self._conn.recv()

    def drop_before(self, t: float) -> None:
        """Forget samples older than ``t`` (keeps the child's memory flat over long runs)."""
        if self.running:
            self._conn.send(("drop", t))
            self._conn.recv()

    def stop(self) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(OSError, BrokenPipeError):
            self._conn.send(("stop",))
        self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=5)
        with contextlib.suppress(OSError):
            self._conn.close()
        self._proc = None

    def __enter__(self) -> PowerSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
