"""The bench runs behind ``wattlas bench ...``: plan points, measure, commit each to the store.

Each function returns the finished :class:`~wattlas.bench.session.BenchRun` (``run.run_id``,
``run.rows``). ``on_start(total_points)`` and ``on_point(row)`` let a caller draw progress.

Examples
--------
>>> run = bench_gemm(store=tmp_store, device="cpu", quick=True)     # doctest: +SKIP
>>> run.rows[0]["energy_source"]                                       # doctest: +SKIP
'unavailable'
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import WattlasError
from .harness import Target, TimingProtocol, open_target
from .session import BenchRun

log = logging.getLogger("wattlas.bench")

OnStart = Callable[[int], None] | None
OnPoint = Callable[[dict[str, Any]], None] | None


def protocol(target: Target, quick: bool, *, window_s: float | None = None, warmup_s: float | None = None,
             min_time_s: float | None = None, min_iters: int | None = None, l2_flush: bool = False,
             cooldown_s: float = 0.0, first_calls: int = 3) -> TimingProtocol:
    """Defaults: 1 s warm-up, >= 100 samples and >= 1 s timed, >= 5 s energy window (``--quick``: short
    windows, flagged ``window_too_short``)."""
    if window_s is not None and window_s < 1.0 and not quick:
        raise WattlasError(f"--window-s {window_s} is under 1 s: the NVML counter steps about every 100 ms, "
                           "so such windows are noise. Use >= 1 s (default 5), or --quick for a flagged smoke run.")
    return TimingProtocol(
        warmup_s=warmup_s if warmup_s is not None else (0.1 if quick else 1.0),
        min_iters=min_iters if min_iters is not None else (10 if quick else 100),
        min_time_s=min_time_s if min_time_s is not None else (0.05 if quick else 1.0),
        window_s=window_s if window_s is not None else (0.25 if quick else 5.0),
        l2_flush=l2_flush, cooldown_s=cooldown_s, first_calls=first_calls,
    )


def _idle_default(target: Target, quick: bool, idle_s: float | None) -> float:
    if idle_s is not None:
        return idle_s
    return 5.0 if (target.is_cuda and not quick) else 0.0


def _settings(**kw: Any) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}


#: What each reason for a missing energy counter means, and what would give one.
_NEEDS = {
    "no_powercap": "this machine exposes no RAPL counter (/sys/class/powercap is absent, as in most VMs)",
    "permission_denied": "the RAPL counters are root-only here (run as root, or make "
                         "/sys/class/powercap/intel-rapl:*/energy_uj readable)",
    "counter_not_supported": "this GPU has no NVML total-energy counter (it needs Volta or newer)",
}


def energy_refusal(target: Target, what: str) -> WattlasError | None:
    """The error for a request (``what``) that needs an energy counter this target lacks, else ``None``.

    Refusing at once beats a run of minutes whose every window comes back ``unavailable``.
    """
    from .meters import NullMeter

    primary = target.meter.primary if target.meter is not None else None
    if primary is not None and not isinstance(primary, NullMeter):
        return None
    reason = getattr(primary, "reason", None) or "no energy meter"
    why = _NEEDS.get(reason, f"the energy counter is unavailable ({reason})")
    return WattlasError(
        f"{what} needs an energy counter, and there is none on this {target.device_type} device "
        f"({reason}: {why}). It needs an NVIDIA GPU with NVML's energy counter (--device cuda), or a CPU with "
        "readable RAPL counters; `wattlas bench info` shows what this machine can measure."
    )


def refuse_unmeasurable(target: Target, grid: Sequence[Any], idle_s: float | None) -> None:
    """Refuse, before any workload runs, requests this target cannot measure or apply."""
    if any(s.changes_device for s in grid) and target.nvml is None:
        raise WattlasError(
            f"power-limit and clock sweeps need an NVML GPU, and there is none here ({target.nvml_reason}); "
            "run on a machine with an NVIDIA driver and --device cuda"
        )
    if idle_s and (err := energy_refusal(target, f"--idle-s {idle_s:g} (idle power)")) is not None:
        raise err


# ---------------------------------------------------------------------------- gemm
def bench_gemm(
    *,
    store: Any = None,
    device: str = "auto",
    shapes: Sequence[tuple[int, int, int]] | None = None,
    dtypes: Sequence[str] | None = None,
    quick: bool = False,
    window_s: float | None = None,
    warmup_s: float | None = None,
    min_time_s: float | None = None,
    l2_flush: bool = False,
    cooldown_s: float = 0.0,
    sampler_period_s: float = 0.1,
    idle_s: float | None = None,
    power_limits_w: Sequence[float] = (),
    sm_clocks_mhz: Sequence[int] = (),
    allow_device_settings: bool = False,
    seed: int = 0,
    bench: str = "gemm",
    command_line: Sequence[str] | None = None,
    on_start: OnStart = None,
    on_point: OnPoint = None,
) -> BenchRun:
    """GEMM sweep: shapes x dtypes (x device settings, opt-in); one row per point."""
    from . import gemm, sweep
    from .peaks import peak_for

    grid = sweep.settings_grid(power_limits_w, sm_clocks_mhz)
    sweep.check_allowed(grid, allow_device_settings)
    target = open_target(device)
    refuse_unmeasurable(target, grid, idle_s)
    if bench == "energy-check" and (err := energy_refusal(target, "bench energy-check")) is not None:
        raise err
    if shapes is None:
        if target.is_cuda:
            sizes = gemm.QUICK_GPU_SIZES if quick else gemm.GPU_SIZES
            shapes = [(s, s, s) for s in sizes] + ([] if quick else list(gemm.GPU_LLM_SHAPES))
        else:
            shapes = [(s, s, s) for s in (gemm.QUICK_CPU_SIZES if quick else gemm.CPU_SIZES)]
    if dtypes is None and bench == "energy-check":  # one dtype the device runs well
        dtypes = ("bf16",) if target.is_cuda else gemm.CPU_DTYPES[:1]
    if dtypes is None:
        dtypes = (("bf16", "fp8") if quick else gemm.GPU_DTYPES) if target.is_cuda else gemm.CPU_DTYPES
    points = gemm.plan(shapes, dtypes, target)
    if not points:
        raise WattlasError(f"nothing to measure: none of the dtypes {list(dtypes)} is supported here")
    proto = protocol(target, quick, window_s=window_s, warmup_s=warmup_s, min_time_s=min_time_s,
                     l2_flush=l2_flush, cooldown_s=cooldown_s)
    peak = peak_for(target.gpu_name) if target.is_cuda else None
    settings = _settings(shapes=[list(s) for s in shapes], dtypes=list(dtypes), device=target.device_type,
                         protocol=proto.__dict__, seed=seed, power_limits_w=power_limits_w,
                         sm_clocks_mhz=sm_clocks_mhz, clocks_locked_by_run=any(s.sm_clock_mhz for s in grid))
    run = BenchRun(store, bench, target, settings, quick=quick, sampler_period_s=sampler_period_s,
                   window_s=proto.window_s, warmup_s=proto.warmup_s, idle_s=_idle_default(target, quick, idle_s),
                   allow_device_settings=allow_device_settings, command_line=command_line)
    with run:
        if on_start:
            on_start(len(points) * len(grid))
        for setting in grid:
            with sweep.applied(setting, target.nvml, allow_device_settings) as enforced:
                for pt in points:
                    pm, cols = gemm.measure_gemm(pt, target, proto, run.sampler, peak.tflops if peak else None, seed)
                    row = {**run.row(pm), **cols, "locked_sm_clock_mhz": enforced.get("locked_sm_clock_mhz")}
                    run.commit([row], pm)
                    if on_point:
                        on_point(row)
    return run


# ---------------------------------------------------------------------------- energy check
def energy_check(
    *,
    store: Any = None,
    device: str = "auto",
    shapes: Sequence[tuple[int, int, int]] = ((8192, 8192, 8192), (2048, 2048, 2048)),
    dtype: str | None = None,
    trials: int = 2,
    window_s: float = 10.0,
    sampler_period_s: float = 0.1,
    command_line: Sequence[str] | None = None,
    on_start: OnStart = None,
    on_point: OnPoint = None,
) -> tuple[BenchRun, list[dict[str, Any]]]:
    """Counter energy vs the integral of instant-power samples on long GEMM windows.

    Returns the run and one dict per window with ``counter_j``, ``integral_j`` and
    ``rel_diff`` = integral / counter - 1 (the spec asks for |rel_diff| <= 3% on 10 s windows).
    ``dtype`` defaults to bf16 on a GPU and fp32 on the CPU. Refuses at once (before any GEMM)
    where there is no energy counter or no power sampler (``sampler_period_s`` 0).
    """
    if sampler_period_s <= 0:
        raise WattlasError("bench energy-check integrates power samples: --sampler-period-s must be > 0")
    run = bench_gemm(store=store, device=device, shapes=[s for s in shapes for _ in range(trials)],
                     dtypes=[dtype] if dtype else None, window_s=window_s, sampler_period_s=sampler_period_s,
                     idle_s=0.0,
                     bench="energy-check", command_line=command_line, on_start=on_start, on_point=on_point)
    out = []
    for r in run.rows:
        c, i = r.get("energy_j"), r.get("power_integral_j")
        out.append({"m": r["m"], "n": r["n"], "k": r["k"], "dtype": r["dtype"], "window_s": r["window_s"],
                    "counter_j": c, "integral_j": i, "avg_power_w": r.get("avg_power_w"),
                    "n_power_samples": r.get("n_power_samples"),
                    "rel_diff": (i / c - 1.0) if c and i is not None else None})
    return run, out


# ---------------------------------------------------------------------------- llm
def bench_llm(
    *,
    store: Any = None,
    device: str = "auto",
    model: str | None = None,
    dtype: str | None = None,
    phases: Sequence[str] = ("prefill", "decode", "e2e"),
    batch_sizes: Sequence[int] | None = None,
    input_tokens: Sequence[int] | None = None,
    output_tokens: Sequence[int] | None = None,
    max_prefill_tokens: int | None = 65536,
    quick: bool = False,
    window_s: float | None = None,
    warmup_s: float | None = None,
    min_time_s: float | None = None,
    cooldown_s: float = 0.0,
    sampler_period_s: float = 0.1,
    idle_s: float | None = None,
    attn_implementation: str = "sdpa",
    seed: int = 0,
    command_line: Sequence[str] | None = None,
    on_start: OnStart = None,
    on_point: OnPoint = None,
) -> BenchRun:
    """LLM phases over batch x input x output for one architecture with random weights."""
    from . import llm

    target = open_target(device)
    model = model or ("llama-3-8b" if target.is_cuda and not quick else "tiny-llama")
    dtype = dtype or ("bf16" if target.is_cuda else "fp32")
    spec = llm.get_arch(model)
    if batch_sizes is None:
        batch_sizes = [1, 2] if quick else [1, 8, 32, 128]
    if input_tokens is None:
        input_tokens = [16] if quick else [512, 2048]
    if output_tokens is None:
        output_tokens = [4] if quick else [128]
    points = llm.plan(list(phases), list(batch_sizes), list(input_tokens), list(output_tokens), max_prefill_tokens)
    if not points:
        raise WattlasError("nothing to measure: every point exceeds --max-prefill-tokens")
    base = protocol(target, quick, window_s=window_s, warmup_s=warmup_s, min_time_s=min_time_s,
                    cooldown_s=cooldown_s, first_calls=1)
    settings = _settings(model=model, model_reference=spec.reference, dtype=dtype, phases=phases,
                         batch_sizes=batch_sizes, input_tokens=input_tokens, output_tokens=output_tokens,
                         max_prefill_tokens=max_prefill_tokens, protocol=base.__dict__, seed=seed,
                         attn_implementation=attn_implementation, device=target.device_type)
    llm._require_transformers()
    import torch

    run = BenchRun(store, "llm", target, settings, quick=quick, sampler_period_s=sampler_period_s,
                   window_s=base.window_s, warmup_s=base.warmup_s, idle_s=_idle_default(target, quick, idle_s),
                   command_line=command_line)
    with run:
        if on_start:
            on_start(len(points))
        built, config = llm.build_model(spec, dtype, target, seed, attn_implementation)
        for pt in points:
            proto = TimingProtocol(**{**base.__dict__, "min_iters": min(base.min_iters, llm.MIN_ITERS[pt.phase])
                                      if not quick else 3})
            try:
                pm, cols = llm.measure_llm(pt, built, config, spec, dtype, target, proto, run.sampler, seed)
            except torch.cuda.OutOfMemoryError:
                log.warning("out of GPU memory at %s batch %d, %d+%d tokens: point skipped (no row)",
                            pt.phase, pt.batch_size, pt.input_tokens, pt.output_tokens)
                torch.cuda.empty_cache()
                if on_point:
                    on_point({"kind": pt.phase, "skipped": "out of memory"})
                continue
            row = {**run.row(pm), **cols}
            run.commit([row], pm)
            if on_point:
                on_point(row)
    return run


# ---------------------------------------------------------------------------- colocate
def bench_colocate(
    *,
    store: Any = None,
    device: str = "auto",
    workloads: Sequence[str] | None = None,
    modes: Sequence[str] | None = None,
    quick: bool = False,
    target_s: float | None = None,
    sampler_period_s: float = 0.1,
    idle_s: float | None = None,
    seed: int = 0,
    command_line: Sequence[str] | None = None,
    on_start: OnStart = None,
    on_point: OnPoint = None,
) -> BenchRun:
    """Solo baselines, then every pair of ``workloads`` in every mode; rows per workload."""
    from . import colocate as co

    target = open_target(device)
    if workloads is None:
        workloads = co.GPU_WORKLOADS if target.is_cuda else co.CPU_WORKLOADS
    for w in workloads:
        if co.is_cuda_workload(w) and not target.is_cuda:
            raise WattlasError(f"workload {w!r} needs CUDA; on the CPU use {', '.join(co.CPU_WORKLOADS)}")
    if modes is None:
        modes = co.MODES if target.is_cuda else ("processes",)
    if target_s is None:
        target_s = 0.3 if quick else 5.0
    if target_s < 1.0 and not quick:
        raise WattlasError("--target-s under 1 s gives energy windows that are noise; use >= 1 (default 5) or --quick")
    pairs = co.pairs_of(list(workloads))
    settings = _settings(workloads=workloads, modes=modes, target_s=target_s, seed=seed, device=target.device_type)
    run = BenchRun(store, "colocate", target, settings, quick=quick, sampler_period_s=sampler_period_s,
                   window_s=target_s, idle_s=_idle_default(target, quick, idle_s), command_line=command_line)
    with run:
        if on_start:
            on_start(len(workloads) + len(pairs) * len(modes))
        cal = {w: co.calibrate(w, target, quick, seed) for w in workloads}
        solo: dict[str, dict[str, Any]] = {}
        for w in workloads:
            res = co.run_solo(w, target, run.sampler, cal[w][0], cal[w][1], quick, target_s, seed)
            row = _colocation_row(run, res, 0, solo)
            solo[w] = row
            run.commit([row], res.pm)
            if on_point:
                on_point(row)
        for mode in modes:
            for a, b in pairs:
                res = co.run_pair([a, b], mode, target, run.sampler, [cal[a][0], cal[b][0]],
                                  [cal[a][1], cal[b][1]], quick, target_s, seed)
                rows = [_colocation_row(run, res, i, solo) for i in range(2)]
                run.commit(rows, res.pm)
                if on_point:
                    on_point(rows[0])
    return run


def _colocation_row(run: BenchRun, res: Any, i: int, solo: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from . import colocate as co

    base = run.row(res.pm)
    name = res.names[i]
    is_pair = len(res.names) == 2
    energy = res.pm.window.total_energy_j
    if not is_pair:
        rates = co.chunk_rates(res.progress[0])
        total = res.progress[0][-1][1]
        span = res.progress[0][-1][0] - res.progress[0][0][0]
        per_iter = span / total if total else math.nan
        row = {**base, "time_per_iter_s_mean": per_iter, "window_iters": total,
               "window_time_per_iter_s": res.pm.window.time_s / total if total else None,
               "energy_per_iter_j": energy / total if energy is not None and total else None}
        extra = {"colocation_mode": "solo", "partner_workload": None, "solo_time_per_iter_s": per_iter,
                 "slowdown": 1.0, "combined_throughput": 1.0}
    else:
        ov = co.overlap(res.progress, res.fixed_iters)
        rates = co.chunk_rates(res.progress[i], ov.start_s, ov.end_s)
        solo_row = solo.get(name, {})
        solo_t = solo_row.get("solo_time_per_iter_s")
        slowdowns = []
        for j, nm in enumerate(res.names):
            st = solo.get(nm, {}).get("solo_time_per_iter_s")
            slowdowns.append(ov.time_per_iter_s[j] / st if st else None)
        done = [p[-1][1] for p in res.progress]
        solo_e = [solo.get(nm, {}).get("energy_per_iter_j") for nm in res.names]
        solo_sum = sum(e * n for e, n in zip(solo_e, done, strict=True)) if all(
            e is not None for e in solo_e) else None
        row = {**base, "time_per_iter_s_mean": ov.time_per_iter_s[i], "window_iters": done[i],
               "window_time_per_iter_s": None, "energy_per_iter_j": None, "dynamic_energy_j": None}
        extra = {"colocation_mode": res.mode, "partner_workload": res.names[1 - i], "solo_time_per_iter_s": solo_t,
                 "slowdown": slowdowns[i],
                 "combined_throughput": sum(1.0 / s for s in slowdowns) if all(slowdowns) else None,
                 "pair_energy_j": energy, "solo_energy_sum_j": solo_sum}
    rates_sorted = sorted(rates)

    def q(p: float) -> float | None:
        if not rates_sorted:
            return None
        pos = p * (len(rates_sorted) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(rates_sorted) - 1)
        return rates_sorted[lo] + (rates_sorted[hi] - rates_sorted[lo]) * (pos - lo)

    row.update({
        # Quantiles are over chunks; the rate over the whole (overlap) interval is the mean, and
        # slowdowns use it.
        "time_per_iter_s_median": q(0.5), "time_per_iter_s_p10": q(0.1),
        "time_per_iter_s_p90": q(0.9), "n_iters": len(rates), "timer": "perf_counter",
        "kind": "colocation", "workload": name, "backend": "torch" if co.is_cuda_workload(name) else "numpy",
        "input_init": "normal(0,1)", **extra,
    })
    return row
