"""Analysis commands: ``report`` and ``workload export|synth``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ._common import StoreOpt, err, open_store, out, resolve_selection, resolve_table


class WorkloadFormat(StrEnum):
    burstgpt = "burstgpt"
    vidur = "vidur"
    splitwise = "splitwise"
    jsonl = "jsonl"


class PrefixSharing(StrEnum):
    none = "none"
    sessions = "sessions"


class TimeUnit(StrEnum):
    ms = "ms"
    s = "s"


FORMAT_HELP = (
    "burstgpt (vLLM's BurstGPT loader; it ignores Timestamp), vidur/splitwise (arrived_at,num_prefill_tokens,"
    "num_decode_tokens: microsoft/vidur's TraceReplayRequestGenerator, not the PyPI vidur 0.0.26) or jsonl "
    "(Mooncake trace: timestamp ms, input_length, output_length, hash_ids)."
)
HashBlockOpt = Annotated[int | None, typer.Option(
    "--hash-block", min=1, metavar="N",
    help="jsonl only: tokens per hash_ids block; ceil(input_length / N) ids per request (default 512, "
         "Mooncake's; 16 for the Alibaba/Qwen traces). Replay tools need the same block size (vLLM: "
         "--timed-trace-chunk-hash-size N).")]
TimeUnitOpt = Annotated[TimeUnit | None, typer.Option(
    "--time-unit", help="jsonl only: timestamp unit, ms (integer, Mooncake's convention; default) or s (float "
                        "seconds, for consumers that cannot scale ms).")]
OutOpt = Annotated[Path, typer.Option("--output", "-o", help="File to write (workload export: - for stdout).")]
SourceOpt = Annotated[str | None, typer.Option("--source", help="Only rows of this source id.")]
TraceOpt = Annotated[str | None, typer.Option("--trace", help="Only rows of this trace (e.g. code, conv, BurstGPT_1).")]

workload_app = typer.Typer(
    help="Turn a trace into load for a load generator or simulator.", no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)
    workload_app.command("export")(export_cmd)
    workload_app.command("synth")(synth_cmd)
    app.add_typer(workload_app, name="workload")


def report_cmd(
    table: Annotated[str, typer.Argument(metavar="TABLE", help="Table to report on (e.g. llm_requests).")],
    output: OutOpt = Path("report.html"),
    source: SourceOpt = None,
    trace: TraceOpt = None,
    store: StoreOpt = None,
) -> None:
    """Write a self-contained interactive HTML report (plotly, works offline) for TABLE."""
    import time

    from ..analysis.report import build_report

    started = time.perf_counter()
    table = resolve_table(table)  # before the store: a misspelt argument is the first thing to say
    st = open_store(store, write=False)
    source, trace = resolve_selection(st, table, source, trace)
    path = build_report(table, output, store=st, source=source, trace=trace)
    err.print(f"report written in {time.perf_counter() - started:.1f} s")
    out.print(str(path.resolve()), highlight=False, soft_wrap=True)


def export_cmd(
    table: Annotated[str, typer.Argument(metavar="TABLE", help="Only llm_requests can be exported.")],
    fmt: Annotated[WorkloadFormat, typer.Option("--format", "-f", help=FORMAT_HELP)],
    output: OutOpt,
    source: Annotated[str, typer.Option("--source", help="Source id of the trace.")],
    trace: TraceOpt = None,
    start: Annotated[float, typer.Option("--start", help="Slice start, s after the trace's first request.")] = 0.0,
    duration: Annotated[float | None, typer.Option("--duration", help="Slice length, s (default: to the end).")] = None,
    rate_scale: Annotated[float, typer.Option("--rate-scale", help="Speed-up: 2 replays twice as fast.")] = 1.0,
    model: Annotated[str, typer.Option("--model", help="burstgpt only: Model written where the trace records "
                                       "none (vLLM keeps only GPT-4 rows).")] = "GPT-4",
    log_type: Annotated[str, typer.Option("--log-type", help="burstgpt only: Log Type where the trace records "
                                          "none.")] = "API log",
    hash_block: HashBlockOpt = None,
    prefix_sharing: Annotated[PrefixSharing | None, typer.Option(
        "--prefix-sharing",
        help="jsonl only: none (default: every hash id is unique, no shared prefix claimed) or sessions (each "
             "turn of a conversation repeats the previous turn's complete-block ids; needs session ids, e.g. "
             "BurstGPT release 3).")] = None,
    time_unit: TimeUnitOpt = None,
    store: StoreOpt = None,
) -> None:
    """Write a slice of a request trace in a format a load generator or simulator reads.

    Prints what it wrote to stderr (requests, span, mean rate, inter-arrival CV) and the file's
    path to stdout.
    """
    from ..analysis.workload import export_workload
    from ..errors import AnalysisError

    if table != "llm_requests":
        raise AnalysisError(f"only llm_requests can be exported as a workload, not {table!r}")
    st = open_store(store, write=False)
    source, trace = resolve_selection(st, table, source, trace)
    f = export_workload(store=st, source=source, trace=trace, start_s=start, duration_s=duration,
                        rate_scale=rate_scale, fmt=fmt.value, path=output, model=model, log_type=log_type,
                        hash_block=hash_block, prefix_sharing=prefix_sharing.value if prefix_sharing else None,
                        time_unit=time_unit.value if time_unit else None)
    err.print(f.summary(), highlight=False, soft_wrap=True, markup=False)
    if str(output) != "-":  # with -o - the file itself went to stdout
        out.print(str(f.path.resolve()), highlight=False, soft_wrap=True)


def synth_cmd(
    like: Annotated[str, typer.Option("--like", help="SOURCE/TRACE to imitate, e.g. azure-llm-2023/conv.")],
    duration: Annotated[float, typer.Option("--duration", help="Length of the synthetic trace, s.")],
    output: OutOpt,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same trace).")] = 0,
    rate: Annotated[float | None, typer.Option("--rate", help="Mean rate, req/s (default: the original's).")] = None,
    fmt: Annotated[WorkloadFormat, typer.Option("--format", "-f", help="Output format, as for export.")] = (
        WorkloadFormat.jsonl),
    hash_block: HashBlockOpt = None,
    time_unit: TimeUnitOpt = None,
    store: StoreOpt = None,
) -> None:
    """Generate a synthetic trace with the original's inter-arrival CV, rate shape and token mix.

    Prints what it wrote to stderr, with the target CV and rate beside the achieved ones, and
    the file's path to stdout.
    """
    from ..analysis.workload import parse_like, synthesize_workload_with_target, write_workload

    src, tr = parse_like(like)
    st = open_store(store, write=False)
    src, tr = resolve_selection(st, "llm_requests", src, tr)
    df, target = synthesize_workload_with_target(store=st, source=src, trace=tr,
                                                 duration_s=duration, rate_per_s=rate, seed=seed)
    f = write_workload(df, output, fmt.value, hash_block=hash_block, time_unit=time_unit.value if time_unit else None,
                       what=f"the synthetic trace like {like}")
    achieved_cv = "n/a" if f.interarrival_cv is None else f"{f.interarrival_cv:.4f}"
    achieved_rate = "n/a" if f.mean_rate_per_s is None else f"{f.mean_rate_per_s:,.4f}"
    err.print(f"{f.summary()} (synthetic, seed {seed})\n"
              f"inter-arrival CV: target {target.interarrival_cv:.4f} (the original's; {target.shape_free_cv:.4f} "
              f"with its rate shape removed), achieved {achieved_cv}\n"
              f"mean rate: target {target.mean_rate_per_s:,.4f} req/s, achieved {achieved_rate} req/s",
              highlight=False, soft_wrap=True, markup=False)
    out.print(str(f.path.resolve()), highlight=False, soft_wrap=True)
