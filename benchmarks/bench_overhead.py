"""Overhead of the bench harness and of the power sampler, against bare loops in the same run.

- ``harness_ratio``: the harness's median time per GEMM (per-iteration timing: CUDA events on the
  GPU, perf_counter on the CPU) over the time per GEMM of a bare loop timed once around all
  iterations. Target: within 2% of 1.
- ``sampler_overhead``: slowdown of a bare GEMM loop while the power sampler process polls at its
  default period (0.1 s), vs the same loop without it. Target: < 1%.

Rounds alternate the two variants so drift hits both; each figure is the median over rounds.
Runs on the CPU (numpy) everywhere and on CUDA (torch, bf16) where a GPU is present. The last
line printed is one JSON object.

    python benchmarks/bench_overhead.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wattlas.bench.harness import cuda_available, open_target, time_iterations  # noqa: E402
from wattlas.bench.sampler import PowerSampler  # noqa: E402


def bare_loop_s(step, n, target) -> float:
    """Seconds per iteration of ``n`` back-to-back iterations timed as one block."""
    if target.is_cuda:
        import torch

        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            step()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1000.0 / n
    t0 = time.perf_counter_ns()
    for _ in range(n):
        step()
    return (time.perf_counter_ns() - t0) / 1e9 / n


def measure(target, step, n: int, rounds: int, period_s: float) -> dict:
    for _ in range(max(3, n // 4)):  # warm-up
        step()
    target.sync()
    harness, harness_mean, bare, with_sampler, without_sampler = [], [], [], [], []
    gpus = [target.nvml.index] if target.nvml is not None else []
    for _ in range(rounds):
        times = time_iterations(step, n, target)
        harness.append(statistics.median(times))
        harness_mean.append(statistics.fmean(times))
        bare.append(bare_loop_s(step, n, target))
        without_sampler.append(bare_loop_s(step, n, target))
        with PowerSampler(gpus, period_s=period_s, cpu=True):
            time.sleep(3 * period_s)  # let it settle into its polling rhythm
            with_sampler.append(bare_loop_s(step, n, target))
    h, b = statistics.median(harness), statistics.median(bare)
    w, wo = statistics.median(with_sampler), statistics.median(without_sampler)
    return {
        "harness_ratio": h / b,
        "sampler_overhead": w / wo - 1.0,
        "harness_mean_ratio": statistics.median(harness_mean) / b,
        "harness_median_s": h,
        "bare_loop_s": b,
        "loop_with_sampler_s": w,
        "loop_without_sampler_s": wo,
        "iterations_per_round": n,
        "rounds": rounds,
        "bare_spread": (max(bare) - min(bare)) / b,
    }


def cpu_case(rounds: int, period_s: float) -> dict:
    import numpy as np
    from threadpoolctl import threadpool_limits

    # One BLAS thread: on a small shared machine a multi-threaded BLAS waits for descheduled
    # threads and the loop times swing by whole scheduler slices.
    threadpool_limits(1)
    target = open_target("cpu")
    rng = np.random.default_rng(0)
    n = 384
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)

    def step():
        np.matmul(a, b, out=c)

    t0 = time.perf_counter()
    for _ in range(20):
        step()
    per = (time.perf_counter() - t0) / 20
    iters = max(50, int(1.0 / per))  # about 1 s per loop
    out = measure(target, step, iters, rounds, period_s)
    out["op"] = f"numpy fp32 matmul {n}x{n}x{n}, 1 BLAS thread"
    return out


def cuda_case(rounds: int, period_s: float) -> dict:
    import torch

    target = open_target("cuda")
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    c = torch.empty(n, n, device="cuda", dtype=torch.bfloat16)

    def step():
        torch.mm(a, b, out=c)

    out = measure(target, step, 1000, rounds, period_s)  # ~1.4 s per loop on an H100
    out["op"] = f"torch bf16 mm {n}x{n}x{n} on {target.gpu_name}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--period-s", type=float, default=0.1)
    args = ap.parse_args()
    cpu = cpu_case(args.rounds, args.period_s)
    print(f"cpu: {json.dumps(cpu)}", file=sys.stderr)
    cuda = cuda_case(args.rounds, args.period_s) if cuda_available() else None
    if cuda:
        print(f"cuda: {json.dumps(cuda)}", file=sys.stderr)
    result = {
        "harness_ratio": {"cpu": round(cpu["harness_ratio"], 4),
                          "cuda": round(cuda["harness_ratio"], 4) if cuda else None},
        "sampler_overhead": {"cpu": round(cpu["sampler_overhead"], 4),
                             "cuda": round(cuda["sampler_overhead"], 4) if cuda else None},
        "sampler_period_s": args.period_s,
        "targets": {"harness_ratio": "within 0.98..1.02", "sampler_overhead": "< 0.01"},
        "cpu": cpu,
        "cuda": cuda,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
