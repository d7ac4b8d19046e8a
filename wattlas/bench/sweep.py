"""Opt-in power-limit and locked-clock sweeps.

Nothing on the card changes unless the user passed ``--allow-device-settings``. A setting is
applied for a block of points and the previous state is restored in a ``finally``: the previous
power limit is set back, locked clocks are reset to the driver default. The value actually in
force (enforced power limit, locked SM clock) is recorded in every row measured under it.

Examples
--------
>>> settings_grid([], [])
[DeviceSetting(power_limit_w=None, sm_clock_mhz=None)]
>>> [s.label for s in settings_grid([300, 500], [])]
['power_limit=300W', 'power_limit=500W']
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import WattlasError

log = logging.getLogger("wattlas.bench")


@dataclass(frozen=True)
class DeviceSetting:
    """A power limit and/or a locked SM clock; ``None`` means "leave as found"."""

    power_limit_w: float | None = None
    sm_clock_mhz: int | None = None

    @property
    def changes_device(self) -> bool:
        return self.power_limit_w is not None or self.sm_clock_mhz is not None

    @property
    def label(self) -> str:
        parts = []
        if self.power_limit_w is not None:
            parts.append(f"power_limit={self.power_limit_w:g}W")
        if self.sm_clock_mhz is not None:
            parts.append(f"sm_clock={self.sm_clock_mhz}MHz")
        return ",".join(parts) or "as found"


def settings_grid(power_limits_w: Sequence[float], sm_clocks_mhz: Sequence[int]) -> list[DeviceSetting]:
    """Every combination of the given limits and clocks (one "as found" setting when both are empty)."""
    limits: list[float | None] = list(power_limits_w) or [None]
    clocks: list[int | None] = list(sm_clocks_mhz) or [None]
    return [DeviceSetting(p, c) for p in limits for c in clocks]


def check_allowed(grid: Sequence[DeviceSetting], allowed: bool) -> None:
    """Refuse any setting that changes the card unless ``allowed`` (``--allow-device-settings``)."""
    if any(s.changes_device for s in grid) and not allowed:
        raise WattlasError(
            "power-limit and clock sweeps change the GPU's settings, which needs root and must never be done "
            "on a shared or rented machine you do not administer. Pass --allow-device-settings to confirm "
            "(the previous settings are restored when the sweep ends)."
        )


def _nvml_error(e: Exception, what: str) -> WattlasError:
    code = getattr(e, "value", None)
    hint = " (needs root or CAP_SYS_ADMIN)" if code == 4 else ""  # NVML_ERROR_NO_PERMISSION
    return WattlasError(f"could not {what}: {e}{hint}")


@contextlib.contextmanager
def applied(setting: DeviceSetting, device: Any, allowed: bool) -> Iterator[dict[str, Any]]:
    """Apply ``setting`` to ``device`` (an :class:`~wattlas.bench.nvml.NvmlDevice`) and restore it after.

    Yields the values in force: ``power_limit_w`` (enforced, as NVML reports it) and
    ``locked_sm_clock_mhz`` (``None`` unless this block locked the clocks).
    """
    if not setting.changes_device:
        yield {"locked_sm_clock_mhz": None}
        return
    check_allowed([setting], allowed)
    if device is None:
        raise WattlasError(f"cannot apply {setting.label}: no NVML device")
    previous_limit = device.power_limits().current_w
    limit_changed = clocks_locked = False
    try:
        if setting.power_limit_w is not None:
            try:
                device.set_power_limit_w(setting.power_limit_w)
            except Exception as e:
                raise _nvml_error(e, f"set the power limit to {setting.power_limit_w:g} W") from e
            limit_changed = True
        if setting.sm_clock_mhz is not None:
            try:
                device.lock_sm_clocks(setting.sm_clock_mhz, setting.sm_clock_mhz)
            except Exception as e:
                raise _nvml_error(e, f"lock SM clocks at {setting.sm_clock_mhz} MHz") from e
            clocks_locked = True
        log.warning("device setting applied: %s (enforced limit %s W)", setting.label,
                    device.power_limits().enforced_w)
        yield {"locked_sm_clock_mhz": float(setting.sm_clock_mhz) if clocks_locked else None,
               "power_limit_w": device.power_limits().enforced_w}
    finally:
        errors = []
        if clocks_locked:
            try:
                device.reset_sm_clocks()
            except Exception as e:  # keep restoring the rest
                errors.append(f"reset locked clocks: {e}")
        if limit_changed and previous_limit is not None:
            try:
                device.set_power_limit_w(previous_limit)
            except Exception as e:
                errors.append(f"restore power limit {previous_limit:g} W: {e}")
        if errors:
            log.error("could not restore the GPU's settings: %s. Restore them by hand (nvidia-smi).",
                      "; ".join(errors))
        elif limit_changed or clocks_locked:
            log.warning("device settings restored (power limit %s W, clocks reset)", previous_limit)
