"""Opt-in device-setting sweeps: refused without the flag, always restored, enforced value recorded."""

from __future__ import annotations

import pytest

from wattlas.bench.nvml import PowerLimits
from wattlas.bench.sweep import DeviceSetting, applied, check_allowed, settings_grid
from wattlas.errors import WattlasError


class FakeDevice:
    def __init__(self, limit_w=700.0, fail_set=False):
        self.limit_w = limit_w
        self.locked = None
        self.calls: list[tuple] = []
        self.fail_set = fail_set

    def power_limits(self):
        return PowerLimits(self.limit_w, self.limit_w, 700.0, 200.0, 700.0)

    def set_power_limit_w(self, w):
        self.calls.append(("set_limit", w))
        if self.fail_set:
            raise RuntimeError("Insufficient Permissions")
        self.limit_w = w

    def lock_sm_clocks(self, lo, hi):
        self.calls.append(("lock", lo, hi))
        self.locked = (lo, hi)

    def reset_sm_clocks(self):
        self.calls.append(("reset",))
        self.locked = None


def test_grid_and_refusal_without_flag():
    grid = settings_grid([300, 500], [1200])
    assert [s.label for s in grid] == ["power_limit=300W,sm_clock=1200MHz", "power_limit=500W,sm_clock=1200MHz"]
    with pytest.raises(WattlasError, match="--allow-device-settings"):
        check_allowed(grid, allowed=False)
    check_allowed(settings_grid([], []), allowed=False)  # "as found" needs no permission


def test_as_found_touches_nothing():
    dev = FakeDevice()
    with applied(DeviceSetting(), dev, allowed=False) as enforced:
        assert enforced == {"locked_sm_clock_mhz": None}
    assert dev.calls == []


def test_refused_setting_changes_nothing():
    dev = FakeDevice()
    with pytest.raises(WattlasError), applied(DeviceSetting(power_limit_w=300), dev, allowed=False):
        pass
    assert dev.calls == []


def test_restored_after_an_error_inside_the_block():
    dev = FakeDevice(limit_w=650.0)
    with pytest.raises(KeyboardInterrupt), applied(DeviceSetting(300, 1200), dev, allowed=True) as enforced:
        assert enforced == {"locked_sm_clock_mhz": 1200.0, "power_limit_w": 300.0}
        assert dev.limit_w == 300 and dev.locked == (1200, 1200)
        raise KeyboardInterrupt
    assert dev.limit_w == 650.0 and dev.locked is None
    assert dev.calls[-2:] == [("reset",), ("set_limit", 650.0)]


def test_failed_set_reports_and_restores_nothing_it_did_not_change():
    dev = FakeDevice(fail_set=True)
    with pytest.raises(WattlasError, match="could not set the power limit"), \
            applied(DeviceSetting(300), dev, allowed=True):
        pass
    assert dev.calls == [("set_limit", 300)]
