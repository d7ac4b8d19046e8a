"""CPU energy from Linux RAPL through the powercap sysfs interface.

Reads ``/sys/class/powercap/intel-rapl:N/energy_uj`` (package zones, also used by AMD since
Linux 5.8) and the ``dram`` sub-zones, unwrapping each counter with its ``max_energy_range_uj``.
Only package zones are summed; ``core``/``uncore`` are parts of a package and ``psys`` contains
it, so adding them would double count. ``intel-rapl-mmio`` duplicates of a package are skipped.

When nothing can be read the reader says why instead of raising: ``no_powercap`` (no such
directory, as in most VMs), ``permission_denied`` (``energy_uj`` is root-only since
CVE-2020-8694), ``no_package_zone`` or ``read_error``.

Examples
--------
>>> reader = RaplReader("/nonexistent")
>>> reader.available, reader.reason
(False, 'no_powercap')
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("wattlas.bench")

POWERCAP_ROOT = Path("/sys/class/powercap")


@dataclass(frozen=True)
class RaplZone:
    """One powercap zone: ``kind`` is ``package`` or ``dram``."""

    path: Path
    name: str
    kind: str
    max_energy_range_uj: int


def unwrap_delta_uj(start_uj: int, end_uj: int, max_range_uj: int) -> int:
    """Energy between two readings of a counter that wraps at ``max_range_uj`` (at most one wrap).

    >>> unwrap_delta_uj(100, 350, 1000)
    250
    >>> unwrap_delta_uj(900, 50, 1000)     # wrapped once: 900 -> 1000 -> 0 -> 50
    150
    """
    delta = end_uj - start_uj
    if delta < 0:
        delta += max_range_uj
    return delta


class RaplReader:
    """Package and DRAM energy counters of this machine.

    Parameters
    ----------
    root
        The powercap directory (tests point it at a fake tree).
    """

    def __init__(self, root: str | os.PathLike[str] = POWERCAP_ROOT):
        self.root = Path(root)
        self.zones: list[RaplZone] = []
        self.reason: str | None = None
        self._discover()

    @property
    def available(self) -> bool:
        return self.reason is None

    def _discover(self) -> None:
        if not self.root.is_dir():
            self.reason = "no_powercap"
            return
        zones: list[RaplZone] = []
        seen_packages: set[str] = set()
        # intel-rapl first so its packages win over intel-rapl-mmio duplicates.
        candidates = sorted(self.root.glob("intel-rapl:*"), key=lambda p: p.name) + sorted(
            self.root.glob("intel-rapl-mmio:*"), key=lambda p: p.name
        )
        error: str | None = None
        for path in candidates:
            try:
                name = (path / "name").read_text().strip()
            except OSError:
                continue
            parts = path.name.split(":")
            if len(parts) == 2 and name.startswith("package"):
                kind = "package"
                if name in seen_packages:
                    continue
                seen_packages.add(name)
            elif len(parts) == 3 and name == "dram":
                kind = "dram"
            else:
                continue  # core, uncore, psys: parts or supersets of a package
            try:
                max_range = int((path / "max_energy_range_uj").read_text())
                int((path / "energy_uj").read_text())  # readable at all?
            except PermissionError:
                error = error or "permission_denied"
                continue
            except (OSError, ValueError):
                error = error or "read_error"
                continue
            zones.append(RaplZone(path, name, kind, max_range))
        self.zones = zones
        if not any(z.kind == "package" for z in zones):
            self.reason = error or "no_package_zone"

    def read_uj(self) -> dict[Path, int] | None:
        """Current counter of every zone (µJ), or ``None`` if any read fails (reason set)."""
        out: dict[Path, int] = {}
        for z in self.zones:
            try:
                out[z.path] = int((z.path / "energy_uj").read_text())
            except PermissionError:
                self.reason = "permission_denied"
                return None
            except (OSError, ValueError) as e:
                log.debug("RAPL read failed for %s: %s", z.path, e)
                self.reason = "read_error"
                return None
        return out

    def delta_j(self, start: dict[Path, int], end: dict[Path, int]) -> tuple[float, float | None]:
        """``(package_j, dram_j)`` between two :meth:`read_uj` results (dram ``None`` if no zone)."""
        pkg = 0
        dram = 0
        has_dram = False
        for z in self.zones:
            d = unwrap_delta_uj(start[z.path], end[z.path], z.max_energy_range_uj)
            if z.kind == "package":
                pkg += d
            else:
                dram += d
                has_dram = True
        return pkg / 1e6, (dram / 1e6 if has_dram else None)
