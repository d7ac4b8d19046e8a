"""A bench run: its ``bench_runs`` row, the sampler, and one store commit per measured point.

Each point is committed in its own transaction (``bench_results`` and ``power_samples`` keyed by
``<run_id>.<point_id>``), so Ctrl-C keeps every finished point and the store is never
half-written; the ``bench_runs`` row (key ``run_id``) is written at start with status
``running`` and rewritten at the end as ``complete``, ``interrupted`` or ``failed``.

Only pyarrow and filelock are needed to write: ``wattlas bench`` runs on GPU machines without
polars or duckdb.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._interrupt import Interrupted
from .harness import PointMeasurement, Target, base_row, read_state, sample_rows
from .peaks import SOURCE as PEAK_SOURCE
from .peaks import peak_for

log = logging.getLogger("wattlas.bench")

SOURCE = "wattlas-bench"


def rows_to_table(rows: Sequence[dict[str, Any]]):
    """An Arrow table with the union of the rows' keys as columns (missing values null).

    ``pyarrow.Table.from_pylist`` takes its columns from the first row only; rows here differ.
    """
    import pyarrow as pa

    names: dict[str, None] = {}
    for r in rows:
        names.update(dict.fromkeys(r))
    return pa.table({n: pa.array([r.get(n) for r in rows]) for n in names})


def new_run_id() -> str:
    """``YYYYmmddTHHMMSSZ-xxxxxx``: sortable by start time, unique by the suffix."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def _version(pkg: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _git_commit() -> str | None:
    env = os.environ.get("WATTLAS_COMMIT")
    if env:
        return env
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _wattlas_version() -> str:
    """Package version; in an uninstalled source tree, pyproject's version marked as such."""
    from .. import __version__

    if "unknown" not in __version__:
        return __version__
    try:
        import tomllib

        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        return tomllib.loads(pyproject.read_text())["project"]["version"] + "+source-tree"
    except (OSError, KeyError, ValueError):
        return __version__


def tf32_default() -> bool | None:
    """torch's TF32 setting for fp32 matmuls as found (``None`` without torch)."""
    try:
        import torch
    except ImportError:
        return None
    m = torch.backends.cuda.matmul
    prec = getattr(m, "fp32_precision", None)
    if prec in ("tf32", "ieee"):
        return prec == "tf32"
    try:
        return bool(m.allow_tf32)
    except RuntimeError:
        return None


def run_info(target: Target) -> dict[str, Any]:
    """Machine, versions and device settings for the ``bench_runs`` row."""
    info: dict[str, Any] = {
        "host": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "python_version": platform.python_version(),
        "wattlas_version": _wattlas_version(),
        "wattlas_commit": _git_commit(),
        "device_type": target.device_type,
        "numpy_version": _version("numpy"),
        "cpu_model": _cpu_model(),
        "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "rapl_status": "available" if target.rapl and target.rapl.available else (
            target.rapl.reason if target.rapl else None),
        "nvml_unavailable_reason": target.nvml_reason if target.nvml is None else None,
    }
    if "torch" in sys.modules or target.is_cuda:
        import torch

        info["torch_version"] = torch.__version__
        info["cuda_version"] = torch.version.cuda
        info["tf32_allowed"] = tf32_default()
    if "transformers" in sys.modules:
        info["transformers_version"] = _version("transformers")
    if target.is_cuda:
        import torch

        props = torch.cuda.get_device_properties(target.cuda_index)
        info.update(
            gpu_name=target.gpu_name, gpu_uuid=target.gpu_uuid,
            compute_capability=f"{props.major}.{props.minor}", sm_count=props.multi_processor_count,
            gpu_memory_total_mb=props.total_memory / 2**20,
            l2_cache_mb=getattr(props, "L2_cache_size", 0) / 2**20 or None,
        )
        peak = peak_for(target.gpu_name)
        if peak is not None:
            info.update(peak_tflops_json=json.dumps(peak.tflops, sort_keys=True), peak_source=PEAK_SOURCE,
                        peak_mem_bandwidth_gb_s=peak.mem_bandwidth_gb_s)
    if target.nvml is not None:
        from . import nvml

        d = target.nvml
        lim = d.power_limits()
        app_default = d.application_clocks_default()
        info.update(nvml.system_versions())
        info.update(
            gpu_count=len(nvml.devices()), pci_bus_id=d.pci_bus_id, gpu_arch=d.arch_name,
            power_limit_w=lim.enforced_w, power_limit_default_w=lim.default_w, power_limit_min_w=lim.min_w,
            power_limit_max_w=lim.max_w, persistence_mode=d.persistence_mode(), mig_mode=d.mig_mode(),
            clocks_locked="unknown" if app_default is not True else "false",
            other_gpu_processes_start=d.other_compute_processes(target.own_pids),
        )
    with contextlib.suppress(OSError):
        info["loadavg_1m_start"] = os.getloadavg()[0]
    return info


class BenchRun:
    """Context manager around one run: see the module docstring.

    Parameters
    ----------
    store_root
        Store directory (``None``: the default store).
    bench
        ``gemm``, ``llm``, ``colocate`` or ``energy-check``.
    target
        From :func:`wattlas.bench.harness.open_target`.
    settings
        Every option of the run (stored as JSON).
    sampler_period_s
        Power sampler period; 0 disables the sampler.
    idle_s
        Seconds of idle measurement at the start (0: none). Gives ``idle_power_w`` where energy
        is measurable.
    """

    def __init__(
        self,
        store_root: str | os.PathLike[str] | None,
        bench: str,
        target: Target,
        settings: dict[str, Any],
        *,
        quick: bool = False,
        sampler_period_s: float = 0.1,
        window_s: float | None = None,
        warmup_s: float | None = None,
        idle_s: float = 0.0,
        allow_device_settings: bool = False,
        command_line: Sequence[str] | None = None,
    ):
        from ..store import Store

        self.store = Store(store_root)
        self.bench = bench
        self.target = target
        self.settings = settings
        self.quick = quick
        self.sampler_period_s = sampler_period_s
        self.window_s = window_s
        self.warmup_s = warmup_s
        self.idle_s = idle_s
        self.allow_device_settings = allow_device_settings
        self.command_line = " ".join(command_line if command_line is not None else sys.argv)
        self.run_id = new_run_id()
        self.sampler: Any = None
        self.idle_power_w: float | None = None
        self.points = 0
        self.rows: list[dict[str, Any]] = []
        self._info: dict[str, Any] = {}
        self._started = datetime.now(UTC)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> BenchRun:
        self._info = run_info(self.target)
        if self.sampler_period_s > 0:
            from .sampler import PowerSampler

            gpus = [self.target.nvml.index] if self.target.nvml is not None else []
            self.sampler = PowerSampler(gpus, period_s=self.sampler_period_s, cpu=True).start()
        if self.idle_s > 0:
            self.idle_power_w = self._measure_idle()
        self._write_run("running")
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        status = "complete" if exc_type is None else (
            "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed")
        try:
            if self.sampler is not None:
                self.sampler.stop()
        finally:
            try:
                self._write_run(status, error=None if exc is None or status == "interrupted" else repr(exc))
            except BaseException as e:  # never mask the original error
                log.error("could not record the end of run %s: %s", self.run_id, e)
                if exc_type is None:
                    raise
        if status == "interrupted" and not isinstance(exc, Interrupted):
            # The committed points stay in the store; the CLI prints this as its one line.
            raise Interrupted(f"{self.points} points kept") from exc

    def _measure_idle(self) -> float | None:
        self.target.sync()
        self.target.meter.begin_window("idle")
        time.sleep(self.idle_s)
        m = self.target.meter.end_window("idle")
        return m.avg_power_w

    def _write_run(self, status: str, error: str | None = None) -> None:
        row = {
            "run_id": self.run_id, "bench": self.bench, "status": status, "started_at_utc": self._started,
            "ended_at_utc": None if status == "running" else datetime.now(UTC), "points": self.points,
            "command_line": self.command_line, "settings_json": json.dumps(self.settings, sort_keys=True, default=str),
            "quick": self.quick, "allow_device_settings": self.allow_device_settings,
            "energy_source": self._energy_source(), "energy_unavailable_reason": self._energy_reason(),
            "idle_power_w": self.idle_power_w, "idle_s": self.idle_s or None,
            "sampler_period_s": self.sampler_period_s or None, "window_s": self.window_s, "warmup_s": self.warmup_s,
            "error": error, **self._info,
        }
        if self.settings.get("clocks_locked_by_run"):
            row["clocks_locked"] = "true"
        with self.store.transaction(SOURCE) as tx:
            tx.put("bench_runs", self.run_id, rows_to_table([row]))

    def _energy_source(self) -> str:
        srcs = {r.get("energy_source") for r in self.rows}
        if not srcs:
            return "unavailable" if self._energy_reason() else "pending"
        return srcs.pop() if len(srcs) == 1 else "mixed"

    def _energy_reason(self) -> str | None:
        m = self.target.meter.primary if self.target.meter is not None else None
        return getattr(m, "reason", None)

    # ------------------------------------------------------------------ points
    def row(self, pm: PointMeasurement) -> dict[str, Any]:
        """The shared columns of a point's row (the workload adds its own)."""
        return base_row(pm, self.target, idle_power_w=self.idle_power_w,
                        sampler_period_s=self.sampler_period_s or None)

    def state(self):
        return read_state(self.target)

    def commit(self, rows: Sequence[dict[str, Any]], pm: PointMeasurement | None = None,
               samples: Sequence[dict[str, Any]] | None = None) -> int:
        """Commit one point's rows (and its power samples) in one transaction; returns its point id."""
        point_id = self.points
        full = [{"run_id": self.run_id, "point_id": point_id, **r} for r in rows]
        if samples is None and pm is not None:
            samples = sample_rows(pm.samples, pm.t_start, (pm.window.start_s, pm.window.end_s))
        srows = [{"run_id": self.run_id, "point_id": point_id, **s} for s in (samples or [])]
        key = f"{self.run_id}.{point_id:05d}"
        with self.store.transaction(SOURCE) as tx:
            tx.put("bench_results", key, rows_to_table(full))
            if srows:
                tx.put("power_samples", key, rows_to_table(srows))
        self.points += 1
        self.rows.extend(full)
        if self.sampler is not None and pm is not None:
            self.sampler.drop_before(pm.window.end_s)
        return point_id
