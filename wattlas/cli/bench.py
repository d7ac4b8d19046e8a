"""``wattlas bench ...``: measure GEMMs, LLM phases and co-location on this machine.

Imports nothing heavy at module level, and the write path needs only pyarrow: ``wattlas bench``
runs on GPU machines that have no polars or duckdb (pass ``--store``).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import FormatOpt, OutputFormat, StoreOpt, err, eta_progress

bench_app = typer.Typer(
    name="bench",
    help="Measure runtime and energy on this machine (GEMM, LLM phases, co-location) into the store.",
    no_args_is_help=True,
)

DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA if torch sees a GPU), cuda or cpu.")]
QuickOpt = Annotated[bool, typer.Option("--quick", help="A short smoke run: few points, short windows (flagged).")]
WindowOpt = Annotated[float | None, typer.Option(
    "--window-s", help="Energy window per point, >= 1 s (default 5; --quick 0.25).", show_default=False)]
WarmupOpt = Annotated[float | None, typer.Option("--warmup-s", help="Warm-up per point (default 1 s).",
                                                  show_default=False)]
MinTimeOpt = Annotated[float | None, typer.Option(
    "--min-time-s", help="Minimum timed duration per point (default 1 s).",
                                                   show_default=False)]
SamplerOpt = Annotated[float, typer.Option("--sampler-period-s", help="Power sampler period; 0 turns it off.")]
IdleOpt = Annotated[float | None, typer.Option(
    "--idle-s", help="Idle-power measurement at the start (default 5 s on GPU, 0 with --quick/CPU).",
    show_default=False)]
CooldownOpt = Annotated[float, typer.Option("--cooldown-s", help="Idle pause before each point.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the random inputs and weights.")]
EngineOpt = Annotated[str, typer.Option(
    "--engine", help="local (this machine) or ray (one actor per GPU of a Ray cluster; one per node without GPUs).")]
AddressOpt = Annotated[str | None, typer.Option(
    "--address", help="With --engine ray: the cluster (HOST:PORT or auto; default $RAY_ADDRESS, else a running "
    "cluster, else a local Ray instance).", show_default=False)]
GpusOpt = Annotated[str | None, typer.Option(
    "--gpus", help="With --engine ray: only GPUs whose type contains one of these names (e.g. H100,A100).",
    show_default=False)]


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app)
    if not any(getattr(c, "name", None) == "report" for c in app.registered_commands):
        # Until the general `wattlas report TABLE` exists, handle bench_results here.
        app.command("report")(report_cmd)


def _ints(text: str | None, what: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"{what}: expected comma-separated integers, got {text!r}") from None


def _floats(text: str | None, what: str) -> list[float]:
    if not text:
        return []
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"{what}: expected comma-separated numbers, got {text!r}") from None


def _strs(text: str | None) -> list[str] | None:
    return None if text is None else [x.strip() for x in text.split(",") if x.strip()]


class _Progress:
    """A rich progress bar with ETA on stderr, advanced once per committed point."""

    def __init__(self, label: str):
        from rich.progress import TextColumn

        self.progress = eta_progress("points", TextColumn("{task.fields[last]}"))
        self.label = label
        self.task: Any = None

    def __enter__(self) -> _Progress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def start(self, total: int | None) -> None:
        self.task = self.progress.add_task(self.label, total=total, last="")

    def point(self, row: dict[str, Any]) -> None:
        if self.task is None:
            return
        self.progress.update(self.task, advance=1, last=_describe(row))


def _describe(row: dict[str, Any]) -> str:
    if row.get("skipped"):
        return f"{row.get('kind')}: skipped ({row['skipped']})"
    kind = row.get("kind")
    if kind == "gemm":
        what = f"{row['dtype']} {row['m']}x{row['n']}x{row['k']}: {row['tflops'] or 0:.3g} TFLOP/s"
    elif kind == "colocation":
        what = f"{row['workload']}|{row.get('partner_workload') or 'solo'} x{row.get('slowdown') or 0:.2f}"
    else:
        what = (f"{kind} b={row.get('batch_size')} in={row.get('input_tokens')}: "
                f"{row.get('tokens_per_s') or 0:.4g} tok/s")
    w = row.get("avg_power_w")
    return what + (f", {w:.0f} W" if w is not None else "")


_SUMMARY = {
    "gemm": ["dtype", "m", "n", "k", "time_per_iter_s_median", "tflops", "peak_fraction", "avg_power_w",
             "energy_per_iter_j", "energy_source", "throttled", "window_too_short"],
    "llm": ["kind", "batch_size", "input_tokens", "output_tokens", "time_per_iter_s_median", "tokens_per_s",
            "energy_per_token_j", "energy_per_request_j", "avg_power_w", "energy_source", "window_too_short"],
    "colocate": ["colocation_mode", "workload", "partner_workload", "time_per_iter_s_mean", "solo_time_per_iter_s",
                 "slowdown", "combined_throughput", "energy_j", "solo_energy_sum_j", "energy_source"],
}
_SUMMARY["energy-check"] = _SUMMARY["gemm"]


#: Short headers for the human-readable summary (csv/json keep the column names).
_LABELS = {
    "time_per_iter_s_median": "t median s", "time_per_iter_s_mean": "t/iter s", "tflops": "TFLOP/s",
    "peak_fraction": "of peak", "avg_power_w": "W", "energy_per_iter_j": "J/iter", "energy_source": "energy",
    "throttled": "thr", "window_too_short": "short", "batch_size": "batch", "input_tokens": "in",
    "output_tokens": "out", "tokens_per_s": "tok/s", "energy_per_token_j": "J/tok", "energy_per_request_j": "J/req",
    "colocation_mode": "mode", "partner_workload": "partner", "solo_time_per_iter_s": "solo s",
    "combined_throughput": "combined", "energy_j": "pair J", "solo_energy_sum_j": "solo J",
}


#: Summary columns aligned left; the others hold numbers.
_TEXT_COLUMNS = frozenset(("dtype", "kind", "energy_source", "workload", "partner_workload", "colocation_mode"))


def print_summary(run: Any, fmt: OutputFormat) -> None:
    cols = _SUMMARY[run.bench]
    rows = [{c: r.get(c) for c in cols} for r in run.rows]
    if fmt is OutputFormat.json:
        sys.stdout.write(json.dumps(rows, default=str) + "\n")
    elif fmt is OutputFormat.csv:
        w = csv.DictWriter(sys.stdout, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    else:
        from ._common import cell_text, print_table

        print_table([_LABELS.get(c, c) for c in cols], [[cell_text(r[c]) for c in cols] for r in rows],
                    right=[c not in _TEXT_COLUMNS for c in cols],
                    title=f"{run.bench} run {run.run_id}: {len(rows)} rows")
    reasons = {r.get("energy_unavailable_reason") for r in run.rows if r.get("energy_source") == "unavailable"}
    if reasons:
        err.print(f"energy unavailable: {', '.join(sorted(str(x) for x in reasons))} (energy columns are null)")
    if any(r.get("window_too_short") for r in run.rows):
        err.print("some windows are flagged window_too_short (--quick, or under 1 s / a counter step)")
    err.print(f"run {run.run_id}: {run.points} point(s) committed to {run.store.root}")


def _go(label: str, fn, fmt: OutputFormat, engine: str = "local", address: str | None = None,
        gpus: str | None = None, **kwargs: Any) -> Any:
    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"{engine!r}: choose local or ray", param_hint="--engine")
    if engine == "local" and (address or gpus):
        raise typer.BadParameter("--address and --gpus apply to --engine ray", param_hint="--engine")
    if engine == "ray":
        import functools

        from ..bench.ray_bench import bench_on_ray

        fn = functools.partial(bench_on_ray, label, address=address, gpus=_strs(gpus))
    with _Progress(label) as prog:
        run = fn(on_start=prog.start, on_point=prog.point, command_line=["wattlas", *sys.argv[1:]], **kwargs)
    if isinstance(run, tuple):
        run = run[0]
    print_summary(run, fmt)
    return run


@bench_app.command("gemm")
def gemm_cmd(
    sizes: Annotated[str | None, typer.Option(
        "--sizes", help="Comma-separated N (square) or MxNxK shapes. Default: GPU 512..16384 squares plus "
        "Llama-3-8B MLP shapes; CPU 256,512,1024.", show_default=False)] = None,
    dtypes: Annotated[str | None, typer.Option(
        "--dtypes", help="Comma-separated: fp32,tf32,bf16,fp16,fp8,fp64. Default GPU bf16,fp16,fp8,tf32; CPU fp32.",
        show_default=False)] = None,
    device: DeviceOpt = "auto",
    quick: QuickOpt = False,
    window_s: WindowOpt = None,
    warmup_s: WarmupOpt = None,
    min_time_s: MinTimeOpt = None,
    l2_flush: Annotated[bool, typer.Option("--l2-flush", help="Flush L2 before each timed iteration (cold).")] = False,
    cooldown_s: CooldownOpt = 0.0,
    sampler_period_s: SamplerOpt = 0.1,
    idle_s: IdleOpt = None,
    power_limits: Annotated[str | None, typer.Option(
        "--power-limits", help="Sweep power limits in W (needs --allow-device-settings).", show_default=False)] = None,
    sm_clocks: Annotated[str | None, typer.Option(
        "--sm-clocks", help="Sweep locked SM clocks in MHz (needs --allow-device-settings).",
        show_default=False)] = None,
    allow_device_settings: Annotated[bool, typer.Option(
        "--allow-device-settings", help="Allow changing power limit/clocks (root; restored afterwards). "
        "Never on shared or rented machines.")] = False,
    seed: SeedOpt = 0,
    store: StoreOpt = None,
    fmt: FormatOpt = OutputFormat.table,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    gpus: GpusOpt = None,
) -> None:
    """GEMM sweep: (M, N, K) x dtype; time (median/p10/p90), TFLOP/s, energy per GEMM."""
    from ..bench.gemm import parse_shape
    from ..bench.run import bench_gemm

    shapes = [parse_shape(s) for s in _strs(sizes)] if sizes else None
    _go("gemm", bench_gemm, fmt, engine, address, gpus,
        store=store, device=device, shapes=shapes, dtypes=_strs(dtypes), quick=quick,
        window_s=window_s, warmup_s=warmup_s, min_time_s=min_time_s, l2_flush=l2_flush, cooldown_s=cooldown_s,
        sampler_period_s=sampler_period_s, idle_s=idle_s, power_limits_w=_floats(power_limits, "--power-limits"),
        sm_clocks_mhz=_ints(sm_clocks, "--sm-clocks") or [], allow_device_settings=allow_device_settings, seed=seed)


@bench_app.command("llm")
def llm_cmd(
    model: Annotated[str | None, typer.Option(
        "--model", help="Architecture: llama-3-8b, llama-2-7b, mistral-7b, qwen2-7b, tiny-llama. "
        "Default llama-3-8b on GPU, tiny-llama on CPU or with --quick.", show_default=False)] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="bf16, fp16 or fp32 (default bf16 GPU, fp32 CPU).",
                                              show_default=False)] = None,
    phases: Annotated[str, typer.Option(
        "--phases", help="Comma-separated: prefill,decode,e2e.")] = "prefill,decode,e2e",
    batch_sizes: Annotated[str | None, typer.Option("--batch-sizes", help="Default 1,8,32,128 (--quick 1,2).",
                                                    show_default=False)] = None,
    input_tokens: Annotated[str | None, typer.Option("--input-tokens", help="Default 512,2048 (--quick 16).",
                                                     show_default=False)] = None,
    output_tokens: Annotated[str | None, typer.Option("--output-tokens", help="Default 128 (--quick 4).",
                                                      show_default=False)] = None,
    max_prefill_tokens: Annotated[int, typer.Option(
        "--max-prefill-tokens", help="Skip prefill/e2e points with batch x input above this.")] = 65536,
    device: DeviceOpt = "auto",
    quick: QuickOpt = False,
    window_s: WindowOpt = None,
    warmup_s: WarmupOpt = None,
    min_time_s: MinTimeOpt = None,
    cooldown_s: CooldownOpt = 0.0,
    sampler_period_s: SamplerOpt = 0.1,
    idle_s: IdleOpt = None,
    seed: SeedOpt = 0,
    store: StoreOpt = None,
    fmt: FormatOpt = OutputFormat.table,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    gpus: GpusOpt = None,
) -> None:
    """LLM prefill/decode/e2e with random weights: time, tokens/s, J/token, J/request."""
    from ..bench.run import bench_llm

    _go("llm", bench_llm, fmt, engine, address, gpus,
        store=store, device=device, model=model, dtype=dtype, phases=_strs(phases),
        batch_sizes=_ints(batch_sizes, "--batch-sizes"), input_tokens=_ints(input_tokens, "--input-tokens"),
        output_tokens=_ints(output_tokens, "--output-tokens"), max_prefill_tokens=max_prefill_tokens, quick=quick,
        window_s=window_s, warmup_s=warmup_s, min_time_s=min_time_s, cooldown_s=cooldown_s,
        sampler_period_s=sampler_period_s, idle_s=idle_s, seed=seed)


@bench_app.command("colocate")
def colocate_cmd(
    workloads: Annotated[str | None, typer.Option(
        "--workloads", help="GPU: gemm,copy; CPU: cpu-gemm,cpu-stream (default: all of the device's).",
        show_default=False)] = None,
    modes: Annotated[str | None, typer.Option(
        "--modes", help="streams,processes (GPU default both; CPU processes).", show_default=False)] = None,
    target_s: Annotated[float | None, typer.Option(
        "--target-s", help="Solo seconds of work per workload and window (default 5; --quick 0.3).",
        show_default=False)] = None,
    device: DeviceOpt = "auto",
    quick: QuickOpt = False,
    sampler_period_s: SamplerOpt = 0.1,
    idle_s: IdleOpt = None,
    seed: SeedOpt = 0,
    store: StoreOpt = None,
    fmt: FormatOpt = OutputFormat.table,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    gpus: GpusOpt = None,
) -> None:
    """Two workloads at once (CUDA streams or processes) vs solo: slowdown and pair energy."""
    from ..bench.run import bench_colocate

    _go("colocate", bench_colocate, fmt, engine, address, gpus,
        store=store, device=device, workloads=_strs(workloads), modes=_strs(modes),
        quick=quick, target_s=target_s, sampler_period_s=sampler_period_s, idle_s=idle_s, seed=seed)


@bench_app.command("energy-check")
def energy_check_cmd(
    window_s: Annotated[float, typer.Option("--window-s", help="Window per trial.")] = 10.0,
    trials: Annotated[int, typer.Option("--trials", help="Windows per shape.")] = 2,
    sizes: Annotated[str, typer.Option("--sizes", help="GEMM shapes (different power levels).")] = "8192,2048",
    dtype: Annotated[str | None, typer.Option(
        "--dtype", help="GEMM dtype (default bf16 on GPU, fp32 on CPU).", show_default=False)] = None,
    sampler_period_s: SamplerOpt = 0.1,
    device: DeviceOpt = "auto",
    store: StoreOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Sanity check: NVML counter energy vs the integral of instant power samples (target within 3%)."""
    from ..bench.gemm import parse_shape
    from ..bench.run import energy_check

    with _Progress("energy-check") as prog:
        run, checks = energy_check(store=store, device=device, shapes=[parse_shape(s) for s in _strs(sizes) or []],
                                   dtype=dtype, trials=trials, window_s=window_s, sampler_period_s=sampler_period_s,
                                   command_line=["wattlas", *sys.argv[1:]], on_start=prog.start, on_point=prog.point)
    print_summary(run, OutputFormat.table if fmt is OutputFormat.table else fmt)
    diffs = [c["rel_diff"] for c in checks if c["rel_diff"] is not None]
    worst = max((abs(d) for d in diffs), default=None)
    summary = {"run_id": run.run_id, "windows": checks, "max_abs_rel_diff": worst,
               "within_3pct": None if worst is None else worst <= 0.03}
    err.print(json.dumps(summary, default=str))


@bench_app.command("info")
def info_cmd(device: DeviceOpt = "auto") -> None:
    """What this machine can measure: GPU, NVML counter and instant power, RAPL, library versions (JSON)."""
    from ..bench.harness import open_target
    from ..bench.session import run_info

    target = open_target(device)
    info = run_info(target)
    info["energy_meter"] = type(target.meter.primary).__name__
    info["energy_unavailable_reason"] = getattr(target.meter.primary, "reason", None)
    if target.nvml is not None:
        inst, avg = target.nvml.power_fields_mw()
        info["power_instant_w"] = None if inst is None else inst / 1000
        info["power_average_w"] = None if avg is None else avg / 1000
        info["energy_counter_mj"] = target.nvml.energy_mj()
    sys.stdout.write(json.dumps(info, indent=1, default=str) + "\n")


@bench_app.command("report")
def bench_report_cmd(
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")] = Path("bench-report.html"),
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run (default: all runs).")] = None,
    store: StoreOpt = None,
) -> None:
    """Write the bench figures (roofline, power/clock timeline, J/token, co-location) to one HTML page."""
    from ..bench.report import figures_and_notes, write_html
    from ._common import open_store

    con = open_store(store, write=False).connect()
    try:
        figs, notes = figures_and_notes(con, run_id)
    finally:
        con.close()
    path = write_html(figs, output, notes=notes)
    for note in notes:
        err.print(note, markup=False, highlight=False)
    err.print(f"{len(figs)} figure(s) written to {path}")
    sys.stdout.write(str(path) + "\n")


def report_cmd(
    table: Annotated[str, typer.Argument(metavar="TABLE", help="bench_results")],
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")] = Path("report.html"),
    store: StoreOpt = None,
) -> None:
    """Write an interactive HTML report of a table (this build handles bench_results)."""
    from ..errors import WattlasError

    if table not in ("bench_results", "bench_runs", "power_samples"):
        raise WattlasError(f"`wattlas report {table}` is not available in this build; it handles bench_results")
    bench_report_cmd(output=output, run_id=None, store=store)
