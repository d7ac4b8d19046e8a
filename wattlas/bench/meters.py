"""Energy meters with named windows, in the style of Zeus' ``begin_window``/``end_window``.

A window is bracketed by a device synchronize and a counter read at both ends; ``end_window``
returns a frozen :class:`Measurement` with the window length, energy per device, where the
energy came from, and a reason when it could not be measured. Energy is never invented: a
missing counter, a zero delta (the window was shorter than one counter step) or a counter that
went backwards (driver reload) give ``None`` with a reason.

- :class:`NvmlEnergyMeter`: GPU total-energy counters (mJ, Volta+).
- :class:`RaplMeter`: CPU package (and DRAM) counters, wrap-around handled.
- :class:`NullMeter`: nothing to read; every window is ``unavailable`` with the reason given.
- :class:`EnergyMeter`: a primary meter plus RAPL as a secondary CPU reading.

Examples
--------
>>> meter = NullMeter("no_gpu")
>>> meter.begin_window("x")
>>> m = meter.end_window("x")
>>> m.energy_source, m.energy_unavailable_reason, m.total_energy_j
('unavailable', 'no_gpu', None)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .rapl import RaplReader

log = logging.getLogger("wattlas.bench")

#: Energy sources, as stored in ``bench_results.energy_source``.
NVML_COUNTER = "nvml_counter"
RAPL = "rapl"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Measurement:
    """One finished window.

    Attributes
    ----------
    time_s
        Window length (monotonic clock, after synchronizing at both ends). Units: s.
    energy_j
        Energy per measured device (``gpu0``, ``package``), ``None`` where not measurable. Units: J.
    energy_source
        ``nvml_counter``, ``rapl`` or ``unavailable``.
    energy_scope
        ``gpu``, ``module`` (GH200) or ``package``; ``None`` when unavailable.
    energy_unavailable_reason
        Why energy is missing (``None`` when it was measured).
    start_s, end_s
        Monotonic timestamps of the window ends (comparable with the sampler's). Units: s.
    cpu_energy_j, dram_energy_j
        RAPL readings of the same window when a CPU meter rode along. Units: J.
    """

    time_s: float
    energy_j: dict[str, float | None]
    energy_source: str
    energy_scope: str | None
    energy_unavailable_reason: str | None
    start_s: float
    end_s: float
    cpu_energy_j: float | None = None
    dram_energy_j: float | None = None
    cpu_unavailable_reason: str | None = None
    below_resolution: bool = field(default=False)

    @property
    def total_energy_j(self) -> float | None:
        """Sum over devices, or ``None`` if any device (or all) could not be measured."""
        vals = list(self.energy_j.values())
        if not vals or any(v is None for v in vals):
            return None
        return float(sum(vals))

    @property
    def avg_power_w(self) -> float | None:
        e = self.total_energy_j
        return None if e is None or self.time_s <= 0 else e / self.time_s


class Meter(Protocol):
    """What every meter offers."""

    def begin_window(self, key: str) -> None: ...

    def end_window(self, key: str) -> Measurement: ...


class _Windows:
    """Named open windows: duplicate or unknown keys are errors, as in Zeus."""

    def __init__(self) -> None:
        self._open: dict[str, Any] = {}

    def open(self, key: str, read: Callable[[], Any]) -> None:
        """Check ``key`` first, then take the reading (so a refused window consumes none)."""
        if key in self._open:
            raise ValueError(f"measurement window {key!r} is already open")
        self._open[key] = read()

    def close(self, key: str) -> Any:
        try:
            return self._open.pop(key)
        except KeyError:
            raise ValueError(f"no open measurement window {key!r}") from None


class NullMeter:
    """A meter with nothing to read: every window is ``unavailable`` with ``reason``."""

    def __init__(self, reason: str, sync: Callable[[], None] | None = None):
        self.reason = reason
        self.sync = sync
        self._w = _Windows()

    def begin_window(self, key: str) -> None:
        if self.sync:
            self.sync()
        self._w.open(key, time.monotonic)

    def end_window(self, key: str) -> Measurement:
        start = self._w.close(key)
        if self.sync:
            self.sync()
        end = time.monotonic()
        return Measurement(end - start, {}, UNAVAILABLE, None, self.reason, start, end)


class NvmlEnergyMeter:
    """GPU energy from NVML's total-energy counter (mJ), one reading per device at each end.

    Parameters
    ----------
    devices
        Objects with ``index`` and ``energy_mj()`` (:class:`wattlas.bench.nvml.NvmlDevice`).
    sync
        Called before each counter read so queued GPU work lands inside the window
        (``torch.cuda.synchronize``).
    scope
        ``gpu`` (board) or ``module`` (GH200, where the counter covers CPU and memory too).
    """

    def __init__(self, devices: Sequence[Any], sync: Callable[[], None] | None = None, scope: str = "gpu"):
        self.devices = list(devices)
        self.sync = sync
        self.scope = scope
        self._w = _Windows()

    def _read(self) -> dict[str, int | None]:
        return {f"gpu{d.index}": d.energy_mj() for d in self.devices}

    def begin_window(self, key: str) -> None:
        if self.sync:
            self.sync()
        self._w.open(key, lambda: (time.monotonic(), self._read()))

    def end_window(self, key: str) -> Measurement:
        start, start_mj = self._w.close(key)
        if self.sync:
            self.sync()
        end = time.monotonic()
        end_mj = self._read()
        return window_from_counters(start, end, start_mj, end_mj, scope=self.scope)


def window_from_counters(
    start_s: float,
    end_s: float,
    start_mj: dict[str, int | None],
    end_mj: dict[str, int | None],
    *,
    scope: str = "gpu",
) -> Measurement:
    """Turn two NVML counter readings into a :class:`Measurement` (pure; tested with fakes).

    A missing reading gives ``counter_not_supported``; a zero delta ``below_counter_resolution``
    (the counter steps about every 100 ms: no step is not 0 J); a negative delta
    ``counter_reset`` (the driver was reloaded during the window).

    >>> m = window_from_counters(0.0, 2.0, {"gpu0": 1_000}, {"gpu0": 801_000})
    >>> m.total_energy_j, m.avg_power_w
    (800.0, 400.0)
    >>> window_from_counters(0.0, 0.05, {"gpu0": 5}, {"gpu0": 5}).energy_unavailable_reason
    'below_counter_resolution'
    """
    energy: dict[str, float | None] = {}
    reasons: list[str] = []
    below = False
    for dev, a in start_mj.items():
        b = end_mj.get(dev)
        if a is None or b is None:
            energy[dev] = None
            reasons.append("counter_not_supported")
        elif b < a:
            energy[dev] = None
            reasons.append("counter_reset")
        elif b == a:
            energy[dev] = None
            below = True
            reasons.append("below_counter_resolution")
        else:
            energy[dev] = (b - a) / 1000.0
    if not energy:
        reasons.append("no_gpu")
    reason = reasons[0] if reasons else None
    source = NVML_COUNTER if reason is None else UNAVAILABLE
    return Measurement(
        end_s - start_s, energy, source, scope if reason is None else None, reason, start_s, end_s,
        below_resolution=below,
    )


class RaplMeter:
    """CPU package energy (and DRAM where present) from RAPL.

    Windows are assumed shorter than one counter wrap (minutes at full load; bench windows are
    seconds); a single wrap is unwrapped with ``max_energy_range_uj``.
    """

    def __init__(self, reader: RaplReader | None = None, sync: Callable[[], None] | None = None):
        self.reader = reader if reader is not None else RaplReader()
        self.sync = sync
        self._w = _Windows()

    @property
    def available(self) -> bool:
        return self.reader.available

    @property
    def reason(self) -> str | None:
        return self.reader.reason

    def begin_window(self, key: str) -> None:
        if self.sync:
            self.sync()
        self._w.open(key, lambda: (time.monotonic(), self.reader.read_uj() if self.reader.available else None))

    def end_window(self, key: str) -> Measurement:
        start, start_uj = self._w.close(key)
        if self.sync:
            self.sync()
        end = time.monotonic()
        end_uj = self.reader.read_uj() if self.reader.available else None
        if start_uj is None or end_uj is None:
            reason = self.reader.reason or "read_error"
            return Measurement(end - start, {"package": None}, UNAVAILABLE, None, reason, start, end,
                               cpu_unavailable_reason=reason)
        pkg, dram = self.reader.delta_j(start_uj, end_uj)
        if pkg == 0:
            return Measurement(end - start, {"package": None}, UNAVAILABLE, None, "below_counter_resolution",
                               start, end, below_resolution=True)
        return Measurement(end - start, {"package": pkg}, RAPL, "package", None, start, end,
                           cpu_energy_j=pkg, dram_energy_j=dram)


class EnergyMeter:
    """A primary meter (GPU counter, RAPL or null) plus RAPL riding along for CPU energy.

    The primary decides ``energy_j``/``energy_source``; the RAPL reading of the same window goes
    to ``cpu_energy_j``/``dram_energy_j`` (or its reason to ``cpu_unavailable_reason``).
    """

    def __init__(self, primary: Meter, cpu: RaplMeter | None = None):
        self.primary = primary
        self.cpu = cpu if cpu is not None and cpu is not primary else None

    def begin_window(self, key: str) -> None:
        # Primary last: its synchronize is the one right before the workload starts.
        if self.cpu:
            self.cpu.begin_window(key)
        self.primary.begin_window(key)

    def end_window(self, key: str) -> Measurement:
        m = self.primary.end_window(key)
        if not self.cpu:
            return m
        c = self.cpu.end_window(key)
        return Measurement(
            m.time_s, m.energy_j, m.energy_source, m.energy_scope, m.energy_unavailable_reason, m.start_s, m.end_s,
            cpu_energy_j=c.cpu_energy_j if c.cpu_energy_j is not None else m.cpu_energy_j,
            dram_energy_j=c.dram_energy_j if c.dram_energy_j is not None else m.dram_energy_j,
            cpu_unavailable_reason=c.energy_unavailable_reason,
            below_resolution=m.below_resolution,
        )
