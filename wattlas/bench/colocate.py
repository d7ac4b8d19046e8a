"""Co-location: two workloads at once, with solo baselines from the same run (spec §6).

Workloads (each a fixed-size iteration):

- GPU: ``gemm`` (compute-bound, bf16 8192^3), ``copy`` (memory-bound, device-to-device copy of
  1 GiB).
- CPU: ``cpu-gemm`` (compute-bound: a 96x96 fp32 matmul that fits in L1/L2, one BLAS thread),
  ``cpu-stream`` (memory-bound: a STREAM-triad ``a = b + s*c`` over arrays far larger than the LLC).

Modes: ``streams`` (one process, one CUDA stream per workload, each driven by its own thread),
``processes`` (one process per workload; on the CPU each pinned to its own core). Both sides start
on a barrier once both are warmed up; each runs at least its fixed work (about ``target_s`` of solo
time) and keeps going until the other has finished its fixed work, so the two overlap for the
whole measured interval. Progress is logged per chunk (a few ms of work, then a synchronize), and

- co-located time per iteration = overlap length / iterations done in the overlap,
- ``slowdown`` = co-located / solo time per iteration, ``combined_throughput`` = sum of 1/slowdown,
- ``pair_energy_j`` = device energy of the pair window (the device total: NVML cannot split it
  per process), ``solo_energy_sum_j`` = what the same iterations cost alone (solo J/iteration x
  iterations, summed over both).

Solo baselines run the same chunked loop: in-process on one stream for CUDA, in one pinned child
process for the CPU.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .._interrupt import ignore_sigint, sigint_blocked
from ..errors import WattlasError
from .harness import PointMeasurement, Target, read_state, run_for

log = logging.getLogger("wattlas.bench")

GPU_WORKLOADS = ("gemm", "copy")
CPU_WORKLOADS = ("cpu-gemm", "cpu-stream")
MODES = ("streams", "processes")
_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


# ------------------------------------------------------------------------ workloads
class _CudaGemm:
    def __init__(self, device_index: int, quick: bool, seed: int):
        import torch

        n = 2048 if quick else 8192
        dev = torch.device("cuda", device_index)
        g = torch.Generator(device=dev).manual_seed(seed)
        self.a = torch.randn(n, n, device=dev, dtype=torch.bfloat16, generator=g)
        self.b = torch.randn(n, n, device=dev, dtype=torch.bfloat16, generator=g)
        self.c = torch.empty(n, n, device=dev, dtype=torch.bfloat16)
        self.shape = (n, n, n)

    def step(self) -> None:
        import torch

        torch.mm(self.a, self.b, out=self.c)


class _CudaCopy:
    def __init__(self, device_index: int, quick: bool, seed: int):
        import torch

        nbytes = (64 if quick else 1024) * 2**20
        dev = torch.device("cuda", device_index)
        g = torch.Generator(device=dev).manual_seed(seed)
        self.src = torch.randn(nbytes // 2, device=dev, dtype=torch.bfloat16, generator=g)
        self.dst = torch.empty_like(self.src)

    def step(self) -> None:
        self.dst.copy_(self.src)


class _CpuGemm:
    def __init__(self, quick: bool, seed: int):
        import numpy as np

        rng = np.random.default_rng(seed)
        self.a = rng.standard_normal((96, 96), dtype=np.float32)
        self.b = rng.standard_normal((96, 96), dtype=np.float32)
        self.c = np.empty((96, 96), dtype=np.float32)
        self._mm = np.matmul

    def step(self) -> None:
        self._mm(self.a, self.b, out=self.c)


class _CpuStream:
    def __init__(self, quick: bool, seed: int):
        import numpy as np

        n = (32 if quick else 128) * 2**20 // 8
        rng = np.random.default_rng(seed)
        self.b = rng.standard_normal(n)
        self.c = rng.standard_normal(n)
        self.a = np.empty(n)
        self._np = np

    def step(self) -> None:
        np = self._np
        np.multiply(self.c, 3.0, out=self.a)
        np.add(self.a, self.b, out=self.a)


def make_workload(name: str, device_index: int | None, quick: bool, seed: int = 0) -> Any:
    if name == "gemm":
        return _CudaGemm(device_index or 0, quick, seed)
    if name == "copy":
        return _CudaCopy(device_index or 0, quick, seed)
    if name == "cpu-gemm":
        return _CpuGemm(quick, seed)
    if name == "cpu-stream":
        return _CpuStream(quick, seed)
    raise WattlasError(f"unknown co-location workload {name!r}; known: {', '.join(GPU_WORKLOADS + CPU_WORKLOADS)}")


def is_cuda_workload(name: str) -> bool:
    return name in GPU_WORKLOADS


# ------------------------------------------------------------------------ the chunked loop
def _run_loop(step, sync, fixed_iters: int, chunk: int, flags: Sequence[Any], me: int) -> list[tuple[float, int]]:
    """Run chunks until ``fixed_iters`` are done and every partner has set its flag."""
    clock = time.monotonic
    progress = [(clock(), 0)]
    n = 0
    mine_done = False
    while True:
        for _ in range(chunk):
            step()
        sync()
        n += chunk
        progress.append((clock(), n))
        if not mine_done and n >= fixed_iters:
            flags[me].set()
            mine_done = True
        if mine_done and all(f.is_set() for f in flags):
            return progress


def _limit_blas_threads() -> None:
    for var in _BLAS_ENV:
        os.environ[var] = "1"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass


def _child_main(name: str, device_index: int | None, quick: bool, seed: int, fixed_iters: int, chunk: int,
                ready: Any, go: Any, flags: Sequence[Any], me: int, cpu: int | None, conn: Any) -> None:
    ignore_sigint()  # Ctrl-C reaches the whole process group: the parent decides and stops us
    try:
        if cpu is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {cpu})
        if not is_cuda_workload(name):
            _limit_blas_threads()
        work = make_workload(name, device_index, quick, seed)
        if is_cuda_workload(name):
            import torch

            torch.cuda.set_device(device_index or 0)

            def sync() -> None:
                torch.cuda.synchronize(device_index or 0)
        else:
            def sync() -> None:
                return None
        for _ in range(max(3, chunk)):  # warm-up outside the measured interval
            work.step()
        sync()
        ready.wait()
        go.wait()
        conn.send(("ok", _run_loop(work.step, sync, fixed_iters, chunk, flags, me)))
    except BaseException as e:
        for f in flags:  # let the partner stop
            f.set()
        for b in (ready, go):  # and the parent stop waiting
            b.abort()
        with contextlib.suppress(OSError):
            conn.send(("error", repr(e)))
        raise


# ------------------------------------------------------------------------ analysis
def progress_at(progress: Sequence[tuple[float, int]], t: float) -> float:
    """Iterations done at time ``t``, linearly interpolated between chunk ends.

    >>> progress_at([(0.0, 0), (1.0, 10), (2.0, 20)], 1.5)
    15.0
    """
    if t <= progress[0][0]:
        return float(progress[0][1])
    for (ta, na), (tb, nb) in zip(progress, progress[1:], strict=False):
        if ta <= t <= tb:
            return na + (nb - na) * (t - ta) / (tb - ta) if tb > ta else float(nb)
    return float(progress[-1][1])


@dataclass(frozen=True)
class Overlap:
    """Co-located rates of each side over the interval where both ran."""

    start_s: float
    end_s: float
    iters: tuple[float, ...]
    time_per_iter_s: tuple[float, ...]


def overlap(progresses: Sequence[Sequence[tuple[float, int]]], fixed_iters: Sequence[int]) -> Overlap:
    """The interval from the later start to the moment the last side finished its fixed work.

    >>> ov = overlap([[(0.0, 0), (1.0, 10), (2.0, 20)], [(0.0, 0), (2.0, 4)]], [10, 4])
    >>> ov.end_s, ov.time_per_iter_s
    (2.0, (0.1, 0.5))
    """
    start = max(p[0][0] for p in progresses)
    finish = []
    for p, fixed in zip(progresses, fixed_iters, strict=True):
        finish.append(next((t for t, n in p if n >= fixed), p[-1][0]))
    end = max(finish)
    end = min(end, min(p[-1][0] for p in progresses))
    iters = tuple(progress_at(p, end) - progress_at(p, start) for p in progresses)
    per = tuple((end - start) / n if n > 0 else math.nan for n in iters)
    return Overlap(start, end, iters, per)


def chunk_rates(progress: Sequence[tuple[float, int]], start: float | None = None,
                end: float | None = None) -> list[float]:
    """Seconds per iteration of each chunk (optionally only chunks within ``[start, end]``)."""
    out = []
    for (ta, na), (tb, nb) in zip(progress, progress[1:], strict=False):
        if (start is not None and ta < start) or (end is not None and tb > end):
            continue
        if nb > na:
            out.append((tb - ta) / (nb - na))
    return out


# ------------------------------------------------------------------------ runs
@dataclass
class RunResult:
    """One solo or pair run: per-side progress logs, the energy window, state, samples."""

    names: tuple[str, ...]
    mode: str
    fixed_iters: tuple[int, ...]
    progress: list[list[tuple[float, int]]]
    pm: PointMeasurement


def calibrate(name: str, target: Target, quick: bool, seed: int = 0, seconds: float = 0.3) -> tuple[float, int]:
    """Seconds per iteration of ``name`` alone (in this process) and a chunk of ~10 ms of work."""
    if not is_cuda_workload(name):
        _limit_blas_threads()
    work = make_workload(name, target.cuda_index, quick, seed)
    for _ in range(3):
        work.step()
    target.sync()
    _, per_iter = run_for(work.step, seconds, target)
    del work
    chunk = max(1, int(0.01 / max(per_iter, 1e-9)))
    return per_iter, chunk


def _measure(target: Target, sampler: Any, names: Sequence[str], mode: str, fixed: Sequence[int],
             chunks: Sequence[int], quick: bool, window_s: float, seed: int) -> RunResult:
    started = datetime.now(UTC)
    n = len(names)
    flags_ctx: Any
    if mode == "processes":
        ctx = mp.get_context("spawn")
        ready, go = ctx.Barrier(n + 1), ctx.Barrier(n + 1)
        flags = [ctx.Event() for _ in names]
        ncpu = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        procs, conns = [], []
        env_before = {v: os.environ.get(v) for v in _BLAS_ENV}
        try:
            for v in _BLAS_ENV:  # children import numpy with one BLAS thread
                os.environ[v] = "1"
            for i, name in enumerate(names):
                parent, child = ctx.Pipe()
                cpu = ncpu[i % len(ncpu)] if (ncpu and not is_cuda_workload(name)) else None
                p = ctx.Process(target=_child_main, args=(
                    name, target.cuda_index, quick, seed + i, fixed[i], chunks[i], ready, go, flags, i, cpu, child),
                    daemon=True, name=f"wattlas-colocate-{name}")
                with sigint_blocked():  # born ignoring Ctrl-C (see _child_main)
                    p.start()
                child.close()
                procs.append(p)
                conns.append(parent)
        finally:
            for v, val in env_before.items():
                if val is None:
                    os.environ.pop(v, None)
                else:
                    os.environ[v] = val
        # The children's own CUDA contexts are ours, not "other processes" on the GPU.
        own_before = set(target.own_pids)
        target.own_pids |= {p.pid for p in procs if p.pid is not None}
        try:
            try:
                ready.wait(timeout=600)
                t_start = time.monotonic()
                state_start = read_state(target)
                target.meter.begin_window("pair")
                go.wait(timeout=60)
            except threading.BrokenBarrierError:
                errors = [c.recv()[1] for c in conns if c.poll(10)]
                raise WattlasError(f"co-location worker failed to start: {'; '.join(map(str, errors))}") from None
            results = [c.recv() for c in conns]
            window = target.meter.end_window("pair")
            state_end = read_state(target)
        except KeyboardInterrupt:
            for p in procs:  # interrupted: the pair's window is lost, do not wait it out
                p.terminate()
            raise
        finally:
            target.own_pids = own_before
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.terminate()
        errors = [r[1] for r in results if r[0] != "ok"]
        if errors:
            raise WattlasError(f"co-location worker failed: {'; '.join(errors)}")
        progress = [r[1] for r in results]
    elif mode in ("streams", "solo"):
        works = [make_workload(nm, target.cuda_index, quick, seed + i) for i, nm in enumerate(names)]
        ready, go = threading.Barrier(n + 1), threading.Barrier(n + 1)
        flags_ctx = [threading.Event() for _ in names]
        progress = [[] for _ in names]
        errs: list[BaseException] = []

        def worker(i: int) -> None:
            try:
                if target.is_cuda:
                    import torch

                    torch.cuda.set_device(target.cuda_index or 0)
                    stream = torch.cuda.Stream()
                    with torch.cuda.stream(stream):
                        for _ in range(max(3, chunks[i])):
                            works[i].step()
                        stream.synchronize()
                        ready.wait()
                        go.wait()
                        progress[i] = _run_loop(works[i].step, stream.synchronize, fixed[i], chunks[i], flags_ctx, i)
                else:
                    for _ in range(max(3, chunks[i])):
                        works[i].step()
                    ready.wait()
                    go.wait()
                    progress[i] = _run_loop(works[i].step, lambda: None, fixed[i], chunks[i], flags_ctx, i)
            except BaseException as e:
                errs.append(e)
                for f in flags_ctx:
                    f.set()
                ready.abort()
                go.abort()

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        try:
            ready.wait()
            t_start = time.monotonic()
            state_start = read_state(target)
            target.meter.begin_window("pair")
            go.wait()
        except threading.BrokenBarrierError:
            pass
        for t in threads:
            t.join()
        if errs:
            raise errs[0]
        window = target.meter.end_window("pair")
        state_end = read_state(target)
        del works
    else:
        raise WattlasError(f"unknown co-location mode {mode!r}; known: solo, {', '.join(MODES)}")
    samples = sampler.samples(t_start, time.monotonic()) if sampler is not None else []
    rates = [r for p in progress for r in chunk_rates(p)]
    pm = PointMeasurement(
        started_at=started, t_start=t_start, warmup_s=0.0, times_s=rates, window=window,
        window_iters=int(sum(p[-1][1] for p in progress)), state_start=state_start, state_end=state_end,
        window_requested_s=window_s, samples=samples,
    )
    return RunResult(tuple(names), mode, tuple(fixed), progress, pm)


def run_solo(name: str, target: Target, sampler: Any, per_iter_s: float, chunk: int, quick: bool,
             target_s: float, seed: int = 0) -> RunResult:
    """Solo baseline: in-process on one stream (CUDA) or one pinned child process (CPU)."""
    fixed = max(chunk, math.ceil(target_s / per_iter_s))
    mode = "solo" if is_cuda_workload(name) else "processes"
    res = _measure(target, sampler, [name], mode, [fixed], [chunk], quick, target_s, seed)
    res.mode = "solo"
    return res


def run_pair(names: Sequence[str], mode: str, target: Target, sampler: Any, per_iter_s: Sequence[float],
             chunks: Sequence[int], quick: bool, target_s: float, seed: int = 0) -> RunResult:
    """Both workloads at once, each with about ``target_s`` of solo work."""
    if mode == "streams" and not target.is_cuda:
        raise WattlasError("co-location mode 'streams' needs CUDA; on the CPU use --modes processes")
    fixed = [max(c, math.ceil(target_s / t)) for t, c in zip(per_iter_s, chunks, strict=True)]
    return _measure(target, sampler, names, mode, fixed, chunks, quick, target_s, seed)


def pairs_of(workloads: Sequence[str]) -> list[tuple[str, str]]:
    """Unordered pairs with repetition: (a, a), (a, b), (b, b) for two workloads.

    >>> pairs_of(["gemm", "copy"])
    [('gemm', 'gemm'), ('gemm', 'copy'), ('copy', 'copy')]
    """
    out = []
    for i, a in enumerate(workloads):
        for b in workloads[i:]:
            out.append((a, b))
    return out
