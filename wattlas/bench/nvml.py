"""Every NVML call wattlas makes, behind one small device class.

``pynvml`` (the ``nvidia-ml-py`` package) is imported lazily, so this module imports on machines
without a driver. :func:`nvml_status` turns "no library", "no driver" and "no device" into a
reason string instead of an exception; readings a device does not support come back as ``None``.

Nothing here changes the card, except :meth:`NvmlDevice.set_power_limit_w` and
:meth:`NvmlDevice.lock_sm_clocks` / ``reset_sm_clocks``, which only the opt-in sweeps
(:mod:`wattlas.bench.sweep`, ``--allow-device-settings``) call.

Examples
--------
>>> ok, reason = nvml_status()
>>> ok or reason in {"nvml_library_not_found", "nvml_driver_not_loaded", "no_gpu", "nvml_not_installed",
...                  "nvml_error"}
True
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("wattlas.bench")

#: NVML field ids (nvml.h); pynvml exports them too, but older releases lack some.
FI_POWER_AVERAGE = 185
FI_POWER_INSTANT = 186
POWER_SCOPE_GPU = 0
POWER_SCOPE_MODULE = 1

#: Clock-event ("throttle") reason bits (nvml.h ``nvmlClocksEventReason*``).
CLOCK_EVENT_REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
#: Bits that mean the clocks were pulled down by power, heat or the hardware.
THROTTLE_MASK = 0x4 | 0x8 | 0x20 | 0x40 | 0x80

_ARCH_NAMES = {2: "kepler", 3: "maxwell", 4: "pascal", 5: "volta", 6: "turing", 7: "ampere", 8: "ada",
               9: "hopper", 10: "blackwell"}
ARCH_VOLTA = 5


def reason_names(mask: int | None) -> str | None:
    """Names of the set clock-event bits, comma-separated (``None`` for ``None``).

    >>> reason_names(0x4 | 0x40)
    'sw_power_cap,hw_thermal_slowdown'
    >>> reason_names(0)
    ''
    """
    if mask is None:
        return None
    return ",".join(name for bit, name in CLOCK_EVENT_REASONS.items() if mask & bit)


def _pynvml():
    import pynvml

    return pynvml


def nvml_status() -> tuple[bool, str | None]:
    """Initialise NVML if possible: ``(True, None)`` or ``(False, reason)``; never raises.

    Reasons: ``nvml_not_installed``, ``nvml_library_not_found``, ``nvml_driver_not_loaded``,
    ``no_gpu`` (NVML works but sees no device), ``nvml_error`` (anything else, logged).
    """
    try:
        pynvml = _pynvml()
    except ImportError:
        return False, "nvml_not_installed"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        code = getattr(e, "value", None)
        if code == pynvml.NVML_ERROR_LIBRARY_NOT_FOUND:
            return False, "nvml_library_not_found"
        if code == pynvml.NVML_ERROR_DRIVER_NOT_LOADED:
            return False, "nvml_driver_not_loaded"
        log.info("NVML init failed: %s", e)
        return False, "nvml_error"
    try:
        if pynvml.nvmlDeviceGetCount() == 0:
            return False, "no_gpu"
    except pynvml.NVMLError as e:
        log.info("NVML device count failed: %s", e)
        return False, "nvml_error"
    return True, None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def normalize_uuid(uuid: str) -> str:
    """Lower-case UUID without the ``GPU-``/``MIG-`` prefix, so torch's and NVML's forms compare.

    >>> normalize_uuid("GPU-1A2b3c4d-0000-1111-2222-333344445555")
    '1a2b3c4d-0000-1111-2222-333344445555'
    """
    u = uuid.strip().lower()
    for prefix in ("gpu-", "mig-"):
        if u.startswith(prefix):
            u = u[len(prefix):]
    return u


@dataclass(frozen=True)
class PowerLimits:
    """Power limits of a device in W (any may be ``None`` when not readable)."""

    enforced_w: float | None
    current_w: float | None
    default_w: float | None
    min_w: float | None
    max_w: float | None


class NvmlDevice:
    """One GPU as NVML sees it. Readings return ``None`` where the device does not support them.

    Parameters
    ----------
    index
        NVML index (PCI bus order; not necessarily the CUDA index: match by :attr:`uuid`).
    """

    def __init__(self, index: int, handle: Any = None):
        self.index = index
        self._nvml = _pynvml()
        self.handle = handle if handle is not None else self._nvml.nvmlDeviceGetHandleByIndex(index)
        self._energy_supported: bool | None = None

    def __repr__(self) -> str:
        return f"NvmlDevice({self.index}, {self.name!r})"

    # ------------------------------------------------------------ helpers
    def _call(self, fn_name: str, *args: Any) -> Any:
        """Call ``pynvml.<fn_name>(handle, *args)``; ``None`` on NVML errors (logged at debug)."""
        fn = getattr(self._nvml, fn_name, None)
        if fn is None:
            return None
        try:
            return fn(self.handle, *args)
        except self._nvml.NVMLError as e:
            log.debug("%s on GPU %d: %s", fn_name, self.index, e)
            return None

    # ------------------------------------------------------------ identity
    @property
    def name(self) -> str | None:
        v = self._call("nvmlDeviceGetName")
        return None if v is None else _text(v)

    @property
    def uuid(self) -> str | None:
        v = self._call("nvmlDeviceGetUUID")
        return None if v is None else _text(v)

    @property
    def pci_bus_id(self) -> str | None:
        info = self._call("nvmlDeviceGetPciInfo")
        return None if info is None else _text(info.busId)

    @property
    def architecture(self) -> int | None:
        return self._call("nvmlDeviceGetArchitecture")

    @property
    def arch_name(self) -> str | None:
        a = self.architecture
        return None if a is None else _ARCH_NAMES.get(a, f"arch{a}")

    def memory_total_mb(self) -> float | None:
        info = self._call("nvmlDeviceGetMemoryInfo")
        return None if info is None else info.total / 2**20

    # ------------------------------------------------------------ energy and power
    def supports_energy_counter(self) -> bool:
        """Volta or newer and the counter answers (checked once)."""
        if self._energy_supported is None:
            arch = self.architecture
            ok = arch is None or arch >= ARCH_VOLTA
            self._energy_supported = ok and self.energy_mj() is not None
        return self._energy_supported

    def energy_mj(self) -> int | None:
        """Total energy since the driver was loaded (NVML counter). Units: mJ."""
        return self._call("nvmlDeviceGetTotalEnergyConsumption")

    def power_fields_mw(self, scope: int = POWER_SCOPE_GPU) -> tuple[float | None, float | None]:
        """``(instant, 1-s average)`` board power in mW from NVML field values; ``None`` if unsupported."""
        vals = self._call("nvmlDeviceGetFieldValues", [(FI_POWER_INSTANT, scope), (FI_POWER_AVERAGE, scope)])
        if vals is None:
            return None, None
        return field_value(vals[0]), field_value(vals[1])

    def power_usage_mw(self) -> float | None:
        """``nvmlDeviceGetPowerUsage`` (a 1-s average on Ampere+ except GA100). Units: mW. Never integrate it."""
        return self._call("nvmlDeviceGetPowerUsage")

    def power_limits(self) -> PowerLimits:
        """Enforced, current, default, min and max power limits. Units: W."""
        def w(v):
            return None if v is None else v / 1000.0

        cons = self._call("nvmlDeviceGetPowerManagementLimitConstraints")
        return PowerLimits(
            enforced_w=w(self._call("nvmlDeviceGetEnforcedPowerLimit")),
            current_w=w(self._call("nvmlDeviceGetPowerManagementLimit")),
            default_w=w(self._call("nvmlDeviceGetPowerManagementDefaultLimit")),
            min_w=w(cons[0]) if cons else None,
            max_w=w(cons[1]) if cons else None,
        )

    # ------------------------------------------------------------ state
    def sm_clock_mhz(self) -> float | None:
        return self._call("nvmlDeviceGetClockInfo", self._nvml.NVML_CLOCK_SM)

    def mem_clock_mhz(self) -> float | None:
        return self._call("nvmlDeviceGetClockInfo", self._nvml.NVML_CLOCK_MEM)

    def temperature_c(self) -> float | None:
        return self._call("nvmlDeviceGetTemperature", self._nvml.NVML_TEMPERATURE_GPU)

    def clock_event_reasons(self) -> int | None:
        v = self._call("nvmlDeviceGetCurrentClocksEventReasons")
        if v is None:  # older drivers: the pre-rename name
            v = self._call("nvmlDeviceGetCurrentClocksThrottleReasons")
        return v

    def utilization_pct(self) -> float | None:
        u = self._call("nvmlDeviceGetUtilizationRates")
        return None if u is None else float(u.gpu)

    def persistence_mode(self) -> bool | None:
        v = self._call("nvmlDeviceGetPersistenceMode")
        return None if v is None else bool(v)

    def mig_mode(self) -> bool | None:
        v = self._call("nvmlDeviceGetMigMode")
        return None if v is None else bool(v[0])

    def application_clocks_default(self) -> bool | None:
        """Whether the SM application clock equals its default (``None`` when not readable)."""
        cur = self._call("nvmlDeviceGetApplicationsClock", self._nvml.NVML_CLOCK_SM)
        default = self._call("nvmlDeviceGetDefaultApplicationsClock", self._nvml.NVML_CLOCK_SM)
        if cur is None or default is None:
            return None
        return cur == default

    def other_compute_processes(self, own_pids: set[int] | None = None) -> int | None:
        """Compute processes on this GPU that are not ours (``None`` when not readable).

        In containers NVML may report pids of another namespace; a process listed with our own
        pid is ours, anything else counts as other.
        """
        procs = self._call("nvmlDeviceGetComputeRunningProcesses")
        if procs is None:
            return None
        own = own_pids if own_pids is not None else {os.getpid()}
        return sum(1 for p in procs if p.pid not in own)

    # ------------------------------------------------------------ settings (opt-in sweeps only)
    def set_power_limit_w(self, watts: float) -> None:
        """Set the power limit (root/SYS_ADMIN). Raises :class:`pynvml.NVMLError` on failure."""
        self._nvml.nvmlDeviceSetPowerManagementLimit(self.handle, round(watts * 1000))

    def lock_sm_clocks(self, min_mhz: int, max_mhz: int) -> None:
        """Lock SM clocks (Volta+, root). Raises :class:`pynvml.NVMLError` on failure."""
        self._nvml.nvmlDeviceSetGpuLockedClocks(self.handle, int(min_mhz), int(max_mhz))

    def reset_sm_clocks(self) -> None:
        self._nvml.nvmlDeviceResetGpuLockedClocks(self.handle)


def field_value(fv: Any) -> float | None:
    """The number in an NVML ``c_nvmlFieldValue_t``, or ``None`` when its return code is an error."""
    if getattr(fv, "nvmlReturn", 0) != 0:
        return None
    kind = getattr(fv, "valueType", 1)
    member = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}.get(kind, "uiVal")
    return float(getattr(fv.value, member))


def devices() -> list[NvmlDevice]:
    """All GPUs NVML sees (call :func:`nvml_status` first)."""
    pynvml = _pynvml()
    return [NvmlDevice(i) for i in range(pynvml.nvmlDeviceGetCount())]


def device_by_uuid(uuid: str) -> NvmlDevice | None:
    """The NVML device whose UUID matches ``uuid`` (any of the torch/NVML spellings)."""
    want = normalize_uuid(uuid)
    for d in devices():
        if d.uuid and normalize_uuid(d.uuid) == want:
            return d
    return None


def system_versions() -> dict[str, str | None]:
    """Driver, NVML and CUDA-driver versions (``None`` where not readable)."""
    pynvml = _pynvml()
    out: dict[str, str | None] = {}
    for key, fn in (("driver_version", "nvmlSystemGetDriverVersion"), ("nvml_version", "nvmlSystemGetNVMLVersion")):
        try:
            out[key] = _text(getattr(pynvml, fn)())
        except (pynvml.NVMLError, AttributeError):
            out[key] = None
    try:
        v = pynvml.nvmlSystemGetCudaDriverVersion()
        out["cuda_driver_version"] = f"{v // 1000}.{(v % 1000) // 10}"
    except (pynvml.NVMLError, AttributeError):
        out["cuda_driver_version"] = None
    return out
